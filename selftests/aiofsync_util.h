/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the aiofsync selftests: raw ioctl wrappers, the module's
 * counters, and "stalled buffers" — anonymous memory registered with
 * userfaultfd, so that a WRITE whose buffer lies there blocks on the
 * device's worker until the test supplies the page. That makes "this write
 * is still running" a state the test controls, not a race it hopes to win.
 */
#ifndef AIOFSYNC_SELFTEST_UTIL_H
#define AIOFSYNC_SELFTEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <linux/aiofsync.h>

#define AFS_STATS	"/sys/class/misc/aiofsync/stats/"
#define AFS_PARAMS	"/sys/module/aiofsync/parameters/"
#define AFS_WQ		"/sys/devices/virtual/workqueue/"
#define AFS_MS		1000000ULL	/* nanoseconds */
/* An address no process can map: the kernel's direct map on x86-64. */
#define AFS_KERNEL_ADDR	0xffff888000000000ULL

static inline int afs_open(void)
{
	return open(AIOFSYNC_DEVICE, O_RDWR | O_CLOEXEC);
}

/*
 * Load the module from the file @ko (finit_module, no parameters, as insmod
 * does) and unload it without waiting for its users (delete_module with
 * O_NONBLOCK: EWOULDBLOCK while a descriptor of the device is open). The
 * test runner names the file in AIOFSYNC_KO. 0, or -1 with errno.
 */
static inline int afs_module_load(const char *ko)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0)
		return -1;
	ret = syscall(__NR_finit_module, fd, "", 0);
	close(fd);
	return ret;
}

static inline int afs_module_unload(void)
{
	return syscall(__NR_delete_module, "aiofsync", O_NONBLOCK);
}

static inline struct aiofsync_req afs_req(__u32 opcode, int fd, __u64 offset,
					  __u64 len, const void *buf, __u64 tag)
{
	struct aiofsync_req r = {
		.user_tag = tag,
		.opcode = opcode,
		.fd = (__u32)fd,
		.offset = offset,
		.len = len,
		.addr = (uintptr_t)buf,
	};
	return r;
}

static inline int afs_submit_sized(int dev, const void *reqs, __u32 nr,
				   __u32 req_size)
{
	struct aiofsync_submit s = {
		.nr = nr,
		.req_size = req_size,
		.reqs = (uintptr_t)reqs,
	};

	return ioctl(dev, AIOFSYNC_IOC_SUBMIT, &s);
}

static inline int afs_submit(int dev, const struct aiofsync_req *reqs, __u32 nr)
{
	return afs_submit_sized(dev, reqs, nr, sizeof(*reqs));
}

/* AIOFSYNC_IOC_REAP with AIOFSYNC_REAP_* @flags. */
/* AIOFSYNC_IOC_REAP, or with @takes AIOFSYNC_IOC_REAP_TAKES (*@takes). */
static inline int afs_reap_cmd(int dev, struct aiofsync_event *ev,
			       __u32 min_nr, __u32 max_nr, __u64 timeout_ns,
			       __u32 flags, __u32 *takes)
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

	if (takes && ret >= 0)
		*takes = r.fg_takes;
	return ret;
}

static inline int afs_reap_flags(int dev, struct aiofsync_event *ev,
				 __u32 min_nr, __u32 max_nr, __u64 timeout_ns,
				 __u32 flags)
{
	return afs_reap_cmd(dev, ev, min_nr, max_nr, timeout_ns, flags, NULL);
}

/* AIOFSYNC_IOC_REAP_TAKES: as afs_reap_flags(), and *@takes on success. */
static inline int afs_reap_takes(int dev, struct aiofsync_event *ev,
				 __u32 min_nr, __u32 max_nr, __u64 timeout_ns,
				 __u32 flags, __u32 *takes)
{
	return afs_reap_cmd(dev, ev, min_nr, max_nr, timeout_ns, flags, takes);
}

static inline int afs_reap(int dev, struct aiofsync_event *ev, __u32 min_nr,
			   __u32 max_nr, __u64 timeout_ns)
{
	return afs_reap_flags(dev, ev, min_nr, max_nr, timeout_ns, 0);
}

static inline int afs_cancel(int dev, __u32 flags, int fd, __u64 tag,
			     struct aiofsync_cancel *out)
{
	struct aiofsync_cancel c = {
		.flags = flags,
		.fd = (__u32)fd,
		.user_tag = tag,
	};
	int ret = ioctl(dev, AIOFSYNC_IOC_CANCEL, &c);

	if (out)
		*out = c;
	return ret;
}

static inline long long afs_read_num(const char *path)
{
	char buf[64] = "";
	long long v = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (read(fd, buf, sizeof(buf) - 1) > 0)
		v = strtoll(buf, NULL, 10);
	close(fd);
	return v;
}

static inline int afs_write_num(const char *path, long long v)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CLOEXEC), n, ret;

	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%lld\n", v);
	ret = write(fd, buf, n) == n ? 0 : -1;
	close(fd);
	return ret;
}

/* A counter of /sys/class/misc/aiofsync/stats/. */
static inline long long afs_stat(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), AFS_STATS "%s", name);
	return afs_read_num(path);
}

static inline long long afs_param(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), AFS_PARAMS "%s", name);
	return afs_read_num(path);
}

static inline int afs_set_param(const char *name, long long v)
{
	char path[128];

	snprintf(path, sizeof(path), AFS_PARAMS "%s", name);
	return afs_write_num(path, v);
}

/* The nice value of workqueue @wq's workers (aiofsync_io, aiofsync_flush). */
static inline long long afs_wq_nice(const char *wq)
{
	char path[128];

	snprintf(path, sizeof(path), AFS_WQ "%s/nice", wq);
	return afs_read_num(path);
}

static inline int afs_set_wq_nice(const char *wq, int nice)
{
	char path[128];

	snprintf(path, sizeof(path), AFS_WQ "%s/nice", wq);
	return afs_write_num(path, nice);
}

/* The nice value of task @pid (field 19 of /proc/PID/stat), or -100. */
static inline int afs_task_nice(int pid)
{
	char path[64], buf[1024], *p;
	int fd, n, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -100;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	/* The name, field 2, may hold blanks: count from its closing ')'. */
	p = strrchr(buf, ')');
	for (field = 2; p && field < 19; field++)
		p = strchr(p + 1, ' ');
	return p ? atoi(p + 1) : -100;
}

/*
 * Field @field (0-based) of /sys/dev/block/MAJ:MIN/stat for the disk under
 * @fd; field 15 is "flush requests completed" (Documentation/block/stat.rst).
 * Partitions have no flush fields, so the whole disk is read.
 */
static inline long long afs_disk_stat(int fd, int field)
{
	char path[96];
	struct stat st;
	unsigned long long v[17] = { 0 };
	FILE *f;
	int n;

	if (fstat(fd, &st))
		return -1;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/stat",
		 major(st.st_dev), minor(st.st_dev));
	f = fopen(path, "re");
	if (!f)
		return -1;
	n = fscanf(f, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
		   "%llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
		   &v[12], &v[13], &v[14], &v[15], &v[16]);
	fclose(f);
	return n > field ? (long long)v[field] : -1;
}

/* A scratch file in the current directory (the test disk), opened @flags. */
static inline int afs_tmpfile(const char *name, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "./aiofsync-%d-%s", getpid(), name);
	return open(path, flags | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
}

struct afs_stall {
	int uffd;
	char *addr;
	size_t len;
};

/* Map @len bytes whose first touch blocks until afs_stall_release(). */
static inline int afs_stall_init(struct afs_stall *s, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };

	s->len = len;
	s->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (s->uffd < 0 || ioctl(s->uffd, UFFDIO_API, &api))
		return -1;
	s->addr = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->addr == MAP_FAILED)
		return -1;
	reg.range.start = (uintptr_t)s->addr;
	reg.range.len = len;
	return ioctl(s->uffd, UFFDIO_REGISTER, &reg);
}

/* Wait up to @ms for a fault on the stalled buffer: the write is blocked. */
static inline int afs_stall_wait_fault(struct afs_stall *s, int ms)
{
	struct pollfd p = { .fd = s->uffd, .events = POLLIN };
	struct uffd_msg msg;

	if (poll(&p, 1, ms) != 1)
		return -1;
	if (read(s->uffd, &msg, sizeof(msg)) != sizeof(msg))
		return -1;
	return msg.event == UFFD_EVENT_PAGEFAULT ? 0 : -1;
}

/* Supply every page of the buffer, filled with @fill: the write goes on. */
static inline int afs_stall_release(struct afs_stall *s, int fill)
{
	long page = sysconf(_SC_PAGESIZE);
	char *src = aligned_alloc(page, page);
	size_t off;
	int ret = 0;

	if (!src)
		return -1;
	memset(src, fill, page);
	for (off = 0; off < s->len; off += page) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)s->addr + off,
			.src = (uintptr_t)src,
			.len = page,
		};

		if (ioctl(s->uffd, UFFDIO_COPY, &c) && errno != EEXIST)
			ret = -1;
	}
	free(src);
	return ret;
}

/* Submit a WRITE of the whole stalled buffer to @fd, and wait until it blocks. */
static inline int afs_stall_write(struct afs_stall *s, int dev, int fd,
				  __u64 tag)
{
	struct aiofsync_req w = afs_req(AIOFSYNC_OP_WRITE, fd, 0, s->len,
					s->addr, tag);

	if (afs_submit(dev, &w, 1) != 1)
		return -1;
	return afs_stall_wait_fault(s, 5000);
}

static inline void afs_stall_destroy(struct afs_stall *s)
{
	munmap(s->addr, s->len);
	close(s->uffd);
}

/*
 * Wait up to @ms for thread @tid of this process to sleep in
 * ioctl(@fd, @cmd). /proc/self/task/TID/syscall names the system call a
 * sleeping thread is in, with its arguments ("running" while it runs), so
 * a reaper seen there has come into AIOFSYNC_IOC_REAP and waits in it: no
 * guess that it got there within some sleep. When @returned is not NULL,
 * the caller's thread sets *@returned once its call is back: the wait
 * stops then, as the call never waited or its wait already ended.
 * 0 once it sleeps there; -1 if it never did.
 */
static inline int afs_wait_blocked_in_ioctl(pid_t tid, int fd,
					    unsigned long cmd,
					    const int *returned, int ms)
{
	unsigned long long a0, a1;
	char path[64];
	int i, in;
	long nr;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	for (i = 0; i <= ms / 10; i++) {
		if (returned && __atomic_load_n(returned, __ATOMIC_ACQUIRE))
			return -1;
		f = fopen(path, "re");
		if (!f)
			return -1;
		in = fscanf(f, "%ld %llx %llx", &nr, &a0, &a1) == 3 &&
		     nr == SYS_ioctl && a0 == (unsigned int)fd &&
		     a1 == (unsigned long long)cmd;
		fclose(f);
		if (in)
			return 0;
		usleep(10000);
	}
	return -1;
}

/*
 * A signal sent to one thread again and again, every @ms, until
 * afs_signaler_stop(): what ends a wait with EINTR without assuming that
 * the thread is already in the wait when the signal comes. (One signal
 * that arrives before the wait starts is handled and gone, and a wait
 * with no timeout would then never end.)
 */
struct afs_signaler {
	pthread_t thread, target;
	int sig, ms;
	int stop, sent;
};

static inline void *afs_signaler_main(void *arg)
{
	struct afs_signaler *s = arg;

	for (;;) {
		usleep(s->ms * 1000);
		if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE) ||
		    pthread_kill(s->target, s->sig))
			break;
		__atomic_add_fetch(&s->sent, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Send @sig to the calling thread every @ms from now on. 0, or an errno. */
static inline int afs_signaler_start(struct afs_signaler *s, int sig, int ms)
{
	*s = (struct afs_signaler){ .target = pthread_self(), .sig = sig,
				    .ms = ms };
	return pthread_create(&s->thread, NULL, afs_signaler_main, s);
}

/*
 * Stop the signals; the calling thread (the target) has handled the last
 * one when this returns. Returns how many were sent.
 */
static inline int afs_signaler_stop(struct afs_signaler *s)
{
	sigset_t set, old;

	/* Blocked meanwhile: no signal interrupts the join. */
	sigemptyset(&set);
	sigaddset(&set, s->sig);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	pthread_join(s->thread, NULL);
	/* A signal still pending is handled as this call returns. */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return __atomic_load_n(&s->sent, __ATOMIC_ACQUIRE);
}

#endif /* AIOFSYNC_SELFTEST_UTIL_H */
