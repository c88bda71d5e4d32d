# SPDX-License-Identifier: GPL-2.0
#
# aiofsync: ordered asynchronous fsync for Linux.
#
#   make            build the module for KERNELRELEASE (default: running kernel)
#                   and the library
#   make install    install both (modules_install, then the library to PREFIX)
#   make run        demonstration in a QEMU guest (installs what it needs)
#   make check      the whole test suite on three kernels in QEMU
#   make bench      benchmarks against the peers, in QEMU
#
# Variables: KERNELRELEASE, KDIR, PREFIX, DESTDIR; for `make check`:
# KERNELS (e.g. "6.1 6.12 debug"), T (run one test program), see README.md.

KERNELRELEASE ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KERNELRELEASE)/build
PREFIX ?= /usr/local

all: module lib

module:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

modules_install: module
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules_install

lib:
	$(MAKE) -C userlib

selftests:
	$(MAKE) -C selftests

install: modules_install
	$(MAKE) -C userlib install PREFIX=$(PREFIX) DESTDIR=$(DESTDIR)

check:
	tools/install-deps
	tools/check $(if $(KERNELS),--kernels "$(KERNELS)") $(if $(T),--test "$(T)") \
		$(if $(JOBS),--jobs $(JOBS))

run:
	tools/install-deps
	tools/run-demo

bench:
	tools/install-deps
	bench/run

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean 2>/dev/null || true
	$(MAKE) -C userlib clean
	$(MAKE) -C selftests clean
	rm -rf build

.PHONY: all module modules_install lib selftests install check run bench clean
