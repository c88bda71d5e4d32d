# SPDX-License-Identifier: GPL-2.0
#
# A guest whose power the host can cut (sourced by stress/powercut).
#
# tools/vm runs a command to its end on a fresh disk; a power-cut test needs
# the same guest on a disk that outlives it, served by stress/crashdisk, a
# third serial port for the guest's acknowledgements, and a kill -9 at a
# moment of the host's choosing. So this starts QEMU itself, with the
# runner's own pieces: its initramfs (build/initramfs/<release>.cpio, made
# by tools/vm), its stage 2 (tools/vm-guest: modules, mount, insmod, the
# command on hvc0, status on ttyS1) and its kernel command line.
#
# Ports of a guest started by guest_start, as files in its directory:
#   console.log  ttyS0, the kernel console
#   status       ttyS1, tools/vm-guest's start/exit/done lines
#   acks         ttyS2, for the command
#   out          hvc0, the command's output
#   disk.stats   crashdisk's counters, once the guest is gone

GUEST_QPID= GUEST_DPID= GUEST_DIR=

# guest_prepare KERNEL: the kernel, the module, the initramfs, the programs.
guest_prepare() {
	resolve_kernel "$1" || return 1
	GUEST_KO=$("$AIOFSYNC_REPO/tools/build-module" "$1" 2>/dev/null) || {
		echo "guest: building the module for $KREL failed (tools/build-module $1)" >&2
		return 1
	}
	GUEST_INITRD=$AIOFSYNC_BUILD/initramfs/$KREL.cpio
	# tools/vm makes (and keeps up to date) the initramfs of a kernel.
	"$AIOFSYNC_REPO/tools/vm" --kernel "$1" --fs none --no-module -q -- true ||
		{ echo "guest: tools/vm cannot boot $1" >&2; return 1; }
	[ -e "$GUEST_INITRD" ] || { echo "guest: no $GUEST_INITRD" >&2; return 1; }
	make -s -C "$AIOFSYNC_REPO/stress" all >&2 || return 1
}

# guest_start DIR IMAGE FS LOSE SEED COMMAND...: boot a guest on IMAGE
# (served by crashdisk with --lose/--lying as LOSE says), running COMMAND
# with FS mounted at /mnt/scratch. Returns once QEMU is started.
guest_start() {
	local dir=$1 img=$2 fs=$3 lose=$4 seed=$5
	shift 5
	local sock=$dir/nbd.sock dargs=(--seed "$seed") cmdline
	GUEST_DIR=$dir
	case $lose in
	lose-all) dargs+=(--lose all) ;;
	lose-random) dargs+=(--lose random) ;;
	lying) dargs+=(--lose all --lying) ;;
	esac
	: >"$dir/console.log"; : >"$dir/status"; : >"$dir/acks"; : >"$dir/out"
	rm -f "$dir/ready"
	"$AIOFSYNC_BUILD/stress/crashdisk" "${dargs[@]}" --ready "$dir/ready" \
		--stats "$dir/disk.stats" "$sock" "$img" 2>"$dir/crashdisk.err" &
	GUEST_DPID=$!
	while [ ! -e "$dir/ready" ]; do
		kill -0 $GUEST_DPID 2>/dev/null ||
			{ echo "guest: crashdisk failed: $(cat "$dir/crashdisk.err")" >&2; return 1; }
		sleep 0.05
	done
	{
		printf 'VM_CWD=/\n'
		printf 'VM_MODULE=%q\n' "$GUEST_KO"
		printf 'VM_FS=%q\n' "$fs"
		printf 'VM_CMD=('
		printf ' %q' "$@"
		printf ' )\n'
	} >"$dir/job"
	cmdline="console=ttyS0,115200 panic=-1 oops=panic panic_on_warn=1"
	cmdline+=" softlockup_panic=1 hung_task_panic=1 mitigations=off random.trust_cpu=on"
	cmdline+=" aiofsyncvm_stage2=$AIOFSYNC_REPO/tools/vm-guest aiofsyncvm_job=$dir/job"
	qemu-system-x86_64 -accel "${AIOFSYNC_ACCEL:-tcg,thread=multi}" -cpu max -M pc \
		-smp "${AIOFSYNC_VM_SMP:-2}" -m 1G -nodefaults -no-user-config -display none -no-reboot \
		-kernel "$KIMAGE" -initrd "$GUEST_INITRD" -append "$cmdline" \
		-serial "file:$dir/console.log" -serial "file:$dir/status" \
		-serial "file:$dir/acks" \
		-device virtio-serial-pci \
		-chardev "file,id=out,path=$dir/out" -device virtconsole,chardev=out \
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
		-blockdev "driver=nbd,server.type=unix,server.path=$sock,node-name=scratch" \
		-device virtio-blk-pci,drive=scratch,write-cache=on \
		-device virtio-rng-pci >"$dir/qemu.err" 2>&1 &
	GUEST_QPID=$!
}

guest_alive() { [ -n "$GUEST_QPID" ] && kill -0 "$GUEST_QPID" 2>/dev/null; }

# guest_wait PORT REGEX SECS: wait until a whole line of PORT (acks, status)
# matches (0), the guest is gone or SECS passed (1).
guest_wait() {
	local end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do
		tr -d '\r' <"$GUEST_DIR/$1" | grep -q -E -- "$2" && return 0
		guest_alive || return 1
		sleep 0.1
	done
	return 1
}

# guest_wait_exit SECS: wait for the guest to power off by itself; 0 if it
# did and tools/vm-guest reported the command's exit and "done". GUEST_RC is
# the command's exit status.
guest_wait_exit() {
	local end=$((SECONDS + $1))
	GUEST_RC=
	while guest_alive && [ $SECONDS -lt $end ]; do sleep 0.2; done
	guest_alive && { guest_cut; return 1; }
	wait "$GUEST_QPID" 2>/dev/null || true
	GUEST_QPID=
	guest_reap_disk
	GUEST_RC=$(tr -d '\r' <"$GUEST_DIR/status" | awk '$1 == "exit" { print $2 }' | tail -n1)
	tr -d '\r' <"$GUEST_DIR/status" | grep -qx done && [ -n "$GUEST_RC" ]
}

guest_reap_disk() {
	[ -n "$GUEST_DPID" ] || return 0
	wait "$GUEST_DPID" 2>/dev/null || true
	GUEST_DPID=
}

# guest_cut: the power cut. QEMU dies at once; crashdisk sees the connection
# end without a disconnect and drops what was not flushed.
guest_cut() {
	if [ -n "$GUEST_QPID" ]; then
		kill -9 "$GUEST_QPID" 2>/dev/null || true
		wait "$GUEST_QPID" 2>/dev/null || true
		GUEST_QPID=
	fi
	guest_reap_disk
}

# On exit: nothing of ours left running.
guest_stop() {
	[ -z "$GUEST_QPID" ] || kill -9 "$GUEST_QPID" 2>/dev/null || true
	[ -z "$GUEST_DPID" ] || kill -9 "$GUEST_DPID" 2>/dev/null || true
}
