// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The /dev/aiofsync descriptor: opening a context, the ioctls, and markers.
 *
 * Every caller of the library (the POSIX reaper, each libaio context) holds
 * its own context; this file only wraps the ioctls so that the rest of the
 * library speaks -errno, and maps "no device" to ENOSYS, as the Linux page
 * of aio_fsync(3) says a missing implementation reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "internal.h"

/*
 * AIOFSYNC_DEVICE names another device node, for tests that must see the
 * device missing (AIOFSYNC_DEVICE=/nonexistent). secure_getenv(): a setuid
 * program must not be pointed elsewhere by its caller.
 */
static const char *afs_dev_path(void)
{
	const char *path = secure_getenv("AIOFSYNC_DEVICE");

	return path && *path ? path : AIOFSYNC_DEVICE;
}

/* The device must speak the ABI this library was built for. */
static int afs_dev_check(int dev, struct aiofsync_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = sizeof(*info);
	if (ioctl(dev, AIOFSYNC_IOC_GET_INFO, info))
		return errno == ENOTTY || errno == EINVAL ? -ENOSYS : -errno;
	if (info->abi_version != AIOFSYNC_ABI_VERSION ||
	    !(info->opcodes & (1ULL << AIOFSYNC_OP_FSYNC)))
		return -ENOSYS;
	return 0;
}

int afs_dev_open(struct aiofsync_info *info)
{
	struct aiofsync_info local;
	int dev, ret;

	dev = open(afs_dev_path(), O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		switch (errno) {
		case ENOENT:
		case ENODEV:
		case ENXIO:
		case ENOTDIR:
		case EACCES:
		case EPERM:
			/* No device for us: not implemented, never glibc. */
			return -ENOSYS;
		case EMFILE:
		case ENFILE:
		case ENOMEM:
			return -EAGAIN;
		default:
			return -errno;
		}
	}
	ret = afs_dev_check(dev, info ? info : &local);
	if (ret) {
		close(dev);
		return ret;
	}
	return dev;
}

int afs_dev_submit(int dev, struct aiofsync_req *reqs, unsigned int nr)
{
	struct aiofsync_submit s = {
		.nr = nr,
		.req_size = sizeof(*reqs),
		.reqs = (uintptr_t)reqs,
	};
	int ret;

	if (!nr)
		return 0;
	ret = ioctl(dev, AIOFSYNC_IOC_SUBMIT, &s);
	return ret < 0 ? -errno : ret;
}

int afs_dev_reap_takes(int dev, struct aiofsync_event *ev, unsigned int min_nr,
		       unsigned int max_nr, uint64_t timeout_ns, uint32_t flags,
		       uint32_t *takes)
{
	struct aiofsync_reap r = {
		.min_nr = min_nr,
		.max_nr = max_nr,
		.events = (uintptr_t)ev,
		.timeout_ns = timeout_ns,
		.flags = flags,
	};
	int ret = ioctl(dev, takes ? AIOFSYNC_IOC_REAP_TAKES : AIOFSYNC_IOC_REAP,
			&r);

	if (ret < 0)
		return -errno;
	if (takes)
		*takes = r.fg_takes;
	return ret;
}

int afs_dev_reap(int dev, struct aiofsync_event *ev, unsigned int min_nr,
		 unsigned int max_nr, uint64_t timeout_ns)
{
	return afs_dev_reap_takes(dev, ev, min_nr, max_nr, timeout_ns, 0, NULL);
}

void afs_dev_wake(int dev, unsigned long flags)
{
	ioctl(dev, AIOFSYNC_IOC_WAKE, flags);
}

int afs_dev_cancel(int dev, uint32_t flags, int fd, uint64_t tag,
		   uint32_t *canceled, uint32_t *running)
{
	struct aiofsync_cancel c = {
		.flags = flags,
		.fd = flags == AIOFSYNC_CANCEL_FD ? (uint32_t)fd : 0,
		.user_tag = flags == AIOFSYNC_CANCEL_TAG ? tag : 0,
	};

	if (ioctl(dev, AIOFSYNC_IOC_CANCEL, &c))
		return -errno;
	*canceled = c.canceled;
	*running = c.running;
	return 0;
}

void afs_dev_req_init(struct aiofsync_req *r, uint32_t opcode, int fd,
		      uint64_t tag)
{
	memset(r, 0, sizeof(*r));
	r->opcode = opcode;
	r->fd = (uint32_t)fd;
	r->user_tag = tag;
}

/*
 * The marker file: a memfd per process, created on first use (a lost race
 * closes the extra one). A child after fork() gets its own, or its markers
 * would queue behind the parent's flushes of the shared inode.
 */
static atomic_int afs_marker_fd = -1;

static void afs_marker_child(void)
{
	int fd = atomic_exchange(&afs_marker_fd, -1);

	if (fd >= 0)
		close(fd);
}

static struct afs_fork_hook afs_marker_fork = { .child = afs_marker_child };

static int afs_marker_file(void)
{
	int fd = atomic_load(&afs_marker_fd), expected = -1;

	if (fd >= 0)
		return fd;
	afs_fork_hook_add(&afs_marker_fork);
	fd = memfd_create("aiofsync-marker", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (atomic_compare_exchange_strong(&afs_marker_fd, &expected, fd))
		return fd;
	close(fd);
	return expected;
}

int afs_dev_post_marker(int dev, uint64_t tag)
{
	struct aiofsync_req r;
	int mfd = afs_marker_file(), ret;

	if (mfd < 0)
		return mfd;
	afs_dev_req_init(&r, AIOFSYNC_OP_FDATASYNC, mfd, tag);
	ret = afs_dev_submit(dev, &r, 1);
	return ret < 0 ? ret : ret ? 0 : -EAGAIN;
}

int afs_dev_eventfd_dup(int fd)
{
	static const char want[] = "anon_inode:[eventfd]";
	char path[32], link[sizeof(want)];
	struct stat st;
	ssize_t n;
	int dup;

	dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup < 0)
		return errno == EBADF ? -EBADF : -EAGAIN;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", dup);
	n = readlink(path, link, sizeof(link));
	if (n >= 0) {
		if (n == sizeof(want) - 1 && !memcmp(link, want, (size_t)n))
			return dup;
	} else if (!fstat(dup, &st) && !(st.st_mode & S_IFMT)) {
		/* No /proc: at least an anonymous inode; the device decides. */
		return dup;
	}
	close(dup);
	return -EINVAL;
}
