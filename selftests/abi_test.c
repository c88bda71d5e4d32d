// SPDX-License-Identifier: GPL-2.0
/*
 * The ioctl ABI: what each ioctl accepts, and each error it gives, one test
 * per error path. A refused request must leave no trace: the tests check
 * that nothing was submitted.
 */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/time.h>

#include "aiofsync_util.h"
#include "kselftest_harness.h"

/* The layout is the ABI: the same for 32-bit and 64-bit processes. */
_Static_assert(sizeof(struct aiofsync_req) == AIOFSYNC_REQ_SIZE_VER0, "req");
_Static_assert(sizeof(struct aiofsync_submit) == 24, "submit");
_Static_assert(sizeof(struct aiofsync_event) == 32, "event");
_Static_assert(sizeof(struct aiofsync_reap) == 32, "reap");
_Static_assert(sizeof(struct aiofsync_cancel) == 24, "cancel");
_Static_assert(sizeof(struct aiofsync_info) == 48, "info");
_Static_assert(offsetof(struct aiofsync_req, addr) == 40, "req.addr");

FIXTURE(abi)
{
	int dev;
	int fd;		/* a scratch file, read-write */
	char buf[4096];
	long long submitted;
};

FIXTURE_SETUP(abi)
{
	self->dev = afs_open();
	ASSERT_LE(0, self->dev);
	self->fd = afs_tmpfile("abi", O_RDWR);
	ASSERT_LE(0, self->fd);
	memset(self->buf, 'a', sizeof(self->buf));
	self->submitted = afs_stat("submitted");
}

FIXTURE_TEARDOWN(abi)
{
	close(self->fd);
	close(self->dev);
}

/* Submit one request expecting error @err, and that nothing was queued. */
#define EXPECT_REFUSED(err, req) do {					\
	struct aiofsync_req __r = (req);				\
	EXPECT_EQ(-1, afs_submit(self->dev, &__r, 1));			\
	EXPECT_EQ(err, errno);						\
	EXPECT_EQ(self->submitted, afs_stat("submitted"));		\
} while (0)

TEST_F(abi, get_info)
{
	struct aiofsync_info info;

	memset(&info, 0xcc, sizeof(info));
	info.size = sizeof(info);
	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_GET_INFO, &info));
	EXPECT_EQ(sizeof(info), info.size);
	EXPECT_EQ(AIOFSYNC_ABI_VERSION, info.abi_version);
	EXPECT_EQ((1ULL << AIOFSYNC_OP_FSYNC) | (1ULL << AIOFSYNC_OP_FDATASYNC) |
		  (1ULL << AIOFSYNC_OP_WRITE) | (1ULL << AIOFSYNC_OP_READ),
		  info.opcodes);
	EXPECT_EQ(AIOFSYNC_REQ_FLAGS_ALL, info.req_flags);
	EXPECT_EQ(sizeof(struct aiofsync_req), info.req_size);
	EXPECT_EQ(sizeof(struct aiofsync_event), info.event_size);
	EXPECT_EQ(afs_param("max_ctx_requests"), info.max_ctx_requests);
	EXPECT_EQ(afs_param("max_requests"), info.max_requests);
	EXPECT_EQ(AIOFSYNC_PRIO_MAX, info.max_prio);
	EXPECT_EQ(AIOFSYNC_REAP_BACKGROUND, info.reap_flags);
}

/* An older caller with a shorter struct gets only what it knows. */
TEST_F(abi, get_info_short_struct)
{
	struct aiofsync_info info;

	memset(&info, 0xcc, sizeof(info));
	info.size = 8;
	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_GET_INFO, &info));
	EXPECT_EQ(sizeof(info), info.size);
	EXPECT_EQ(AIOFSYNC_ABI_VERSION, info.abi_version);
	EXPECT_EQ(0xccccccccccccccccULL, info.opcodes);
}

TEST_F(abi, get_info_too_small)
{
	struct aiofsync_info info = { .size = 4 };

	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_GET_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(abi, get_info_bad_pointer)
{
	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_GET_INFO, (void *)8));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(abi, unknown_ioctl)
{
	EXPECT_EQ(-1, ioctl(self->dev, _IO(AIOFSYNC_IOC_MAGIC, 0x7f), 0));
	EXPECT_EQ(ENOTTY, errno);
}

TEST_F(abi, submit_write_and_read_back)
{
	char back[4096];
	struct aiofsync_req reqs[2] = {
		afs_req(AIOFSYNC_OP_WRITE, self->fd, 4096, sizeof(self->buf),
			self->buf, 11),
		afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 12),
	};
	struct aiofsync_req rd = afs_req(AIOFSYNC_OP_READ, self->fd, 4096,
					 sizeof(back), back, 13);
	struct aiofsync_event ev[2];

	ASSERT_EQ(2, afs_submit(self->dev, reqs, 2));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 2, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(11, ev[0].user_tag);
	EXPECT_EQ(sizeof(self->buf), ev[0].res);
	EXPECT_EQ(AIOFSYNC_OP_WRITE, ev[0].opcode);
	EXPECT_EQ(0, ev[0].res2);
	EXPECT_EQ(12, ev[1].user_tag);
	EXPECT_EQ(0, ev[1].res);

	ASSERT_EQ(1, afs_submit(self->dev, &rd, 1));
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 1, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(13, ev[0].user_tag);
	EXPECT_EQ(sizeof(back), ev[0].res);
	EXPECT_EQ(AIOFSYNC_OP_READ, ev[0].opcode);
	EXPECT_EQ(0, memcmp(back, self->buf, sizeof(back)));
}

/* A READ past the end of file returns 0 bytes, as pread(2). */
TEST_F(abi, read_at_eof)
{
	char back[16];
	struct aiofsync_req rd = afs_req(AIOFSYNC_OP_READ, self->fd, 1 << 20,
					 sizeof(back), back, 1);
	struct aiofsync_event ev;

	ASSERT_EQ(1, afs_submit(self->dev, &rd, 1));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(0, ev.res);
}

/*
 * RLIMIT_FSIZE is the submitter's, as for pwrite(2), though the write runs on
 * a worker. SIGXFSZ is ignored and blocked, so that a signal raised stays
 * pending where the test can see it: pwrite(2) raises one, a WRITE never
 * does (its completion carries -EFBIG).
 */
static int limit_fsize(rlim_t limit)
{
	struct rlimit rl = { .rlim_cur = limit, .rlim_max = RLIM_INFINITY };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGXFSZ);
	if (signal(SIGXFSZ, SIG_IGN) == SIG_ERR ||
	    sigprocmask(SIG_BLOCK, &set, NULL))
		return -1;
	return setrlimit(RLIMIT_FSIZE, &rl);
}

/*
 * Whether a SIGXFSZ is pending; takes it (setting SIG_IGN again discards
 * a pending one). No sigtimedwait(): a 32-bit program's fails with ENOSYS
 * on a kernel built without CONFIG_COMPAT_32BIT_TIME, and a signal pending
 * would have looked like none.
 */
static int xfsz_raised(void)
{
	sigset_t set;

	if (sigpending(&set) || !sigismember(&set, SIGXFSZ))
		return 0;
	signal(SIGXFSZ, SIG_IGN);
	return 1;
}

/*
 * The control of the "no signal from the device" checks, asserted: a
 * pwrite(2) of @len bytes of @buf at @off, at or past the limit, fails
 * with EFBIG and leaves a SIGXFSZ that xfsz_raised() sees (and takes).
 * Without it, "no SIGXFSZ pending" after a device write proves nothing.
 */
static void xfsz_control(struct __test_metadata *_metadata, int fd,
			 const void *buf, size_t len, off_t off)
{
	EXPECT_EQ(0, xfsz_raised());
	EXPECT_EQ(-1, pwrite(fd, buf, len, off));
	EXPECT_EQ(EFBIG, errno);
	EXPECT_EQ(1, xfsz_raised()) TH_LOG("pwrite(2) raised no SIGXFSZ");
}

static long long file_size(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? -1 : (long long)st.st_size;
}

/* A WRITE starting at the limit fails with EFBIG and writes nothing. */
TEST_F(abi, write_at_fsize_limit)
{
	struct aiofsync_req w = afs_req(AIOFSYNC_OP_WRITE, self->fd, 8192,
					sizeof(self->buf), self->buf, 1);
	struct aiofsync_event ev;

	ASSERT_EQ(0, limit_fsize(8192));
	/* pwrite(2) in the same place: EFBIG, and a signal. */
	xfsz_control(_metadata, self->fd, self->buf, sizeof(self->buf), 8192);
	EXPECT_EQ(0, file_size(self->fd));

	/* The WRITE: the same error, no signal. */
	ASSERT_EQ(1, afs_submit(self->dev, &w, 1));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(-EFBIG, ev.res);
	EXPECT_EQ(0, file_size(self->fd));
	EXPECT_EQ(0, xfsz_raised());

	/* An empty write is not checked, by either. */
	w.len = 0;
	ASSERT_EQ(1, afs_submit(self->dev, &w, 1));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(0, ev.res);
	EXPECT_EQ(0, pwrite(self->fd, self->buf, 0, 8192));
}

/* A WRITE crossing the limit is cut short at it, as pwrite(2). */
TEST_F(abi, write_across_fsize_limit)
{
	static char big[8192];
	struct aiofsync_req w = afs_req(AIOFSYNC_OP_WRITE, self->fd, 4096,
					sizeof(big), big, 1);
	struct aiofsync_event ev;

	memset(big, 'b', sizeof(big));
	ASSERT_EQ(0, limit_fsize(8192));
	/* The control: a pwrite(2) at the limit raises one. */
	xfsz_control(_metadata, self->fd, big, sizeof(big), 8192);
	EXPECT_EQ(0, file_size(self->fd));

	ASSERT_EQ(1, afs_submit(self->dev, &w, 1));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(4096, ev.res);
	EXPECT_EQ(8192, file_size(self->fd));
	EXPECT_EQ(0, xfsz_raised());

	/* pwrite(2) cut short raises none either. */
	ASSERT_EQ(0, ftruncate(self->fd, 0));
	EXPECT_EQ(4096, pwrite(self->fd, big, sizeof(big), 4096));
	EXPECT_EQ(8192, file_size(self->fd));
	EXPECT_EQ(0, xfsz_raised());
}

/*
 * O_APPEND: the write starts at the end of file whatever its offset, and the
 * limit applies from there (pwrite(2) on Linux appends too).
 */
TEST_F(abi, write_append_fsize_limit)
{
	static char big[8192];
	int fd = afs_tmpfile("append", O_RDWR | O_APPEND);
	struct aiofsync_req w = afs_req(AIOFSYNC_OP_WRITE, fd, 0, sizeof(big),
					big, 1);
	struct aiofsync_event ev;

	ASSERT_LE(0, fd);
	memset(big, 'c', sizeof(big));
	ASSERT_EQ(4096, write(fd, big, 4096));
	ASSERT_EQ(0, limit_fsize(8192));

	/* From 4096: cut short at the limit. */
	ASSERT_EQ(1, afs_submit(self->dev, &w, 1));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(4096, ev.res);
	EXPECT_EQ(8192, file_size(fd));
	/* From 8192: nothing. */
	ASSERT_EQ(1, afs_submit(self->dev, &w, 1));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(-EFBIG, ev.res);
	EXPECT_EQ(8192, file_size(fd));
	EXPECT_EQ(0, xfsz_raised());

	ASSERT_EQ(0, ftruncate(fd, 4096));
	EXPECT_EQ(4096, pwrite(fd, big, sizeof(big), 0));
	EXPECT_EQ(8192, file_size(fd));
	/* pwrite(2) from 8192: EFBIG, and a signal, the control. */
	xfsz_control(_metadata, fd, big, sizeof(big), 0);
	EXPECT_EQ(8192, file_size(fd));
	close(fd);
}

/* AIOFSYNC_REQ_NO_APPEND: an O_APPEND file's WRITE is refused, untouched. */
TEST_F(abi, no_append_refuses_append_write)
{
	int fd = afs_tmpfile("noappend", O_RDWR | O_APPEND);
	struct aiofsync_req w = afs_req(AIOFSYNC_OP_WRITE, fd, 0,
					sizeof(self->buf), self->buf, 1);

	ASSERT_LE(0, fd);
	w.flags = AIOFSYNC_REQ_NO_APPEND;
	EXPECT_REFUSED(EINVAL, w);
	EXPECT_EQ(0, file_size(fd));
	close(fd);
}

/* ... and the flag changes nothing for other files and other opcodes. */
TEST_F(abi, no_append_accepts_the_rest)
{
	int fd = afs_tmpfile("noappend-sync", O_RDWR | O_APPEND);
	struct aiofsync_req reqs[3] = {
		afs_req(AIOFSYNC_OP_WRITE, self->fd, 0, sizeof(self->buf),
			self->buf, 1),
		afs_req(AIOFSYNC_OP_FSYNC, fd, 0, 0, NULL, 2),
		afs_req(AIOFSYNC_OP_READ, fd, 0, sizeof(self->buf),
			self->buf, 3),
	};
	struct aiofsync_event ev[3];
	int i;

	ASSERT_LE(0, fd);
	for (i = 0; i < 3; i++)
		reqs[i].flags = AIOFSYNC_REQ_NO_APPEND;
	ASSERT_EQ(3, afs_submit(self->dev, reqs, 3));
	ASSERT_EQ(3, afs_reap(self->dev, ev, 3, 3, AIOFSYNC_TIMEOUT_INFINITE));
	for (i = 0; i < 3; i++) {
		long want = ev[i].user_tag == 1 ? sizeof(self->buf) : 0;

		EXPECT_EQ(want, ev[i].res);
	}
	EXPECT_EQ(sizeof(self->buf), file_size(self->fd));
	close(fd);
}

/* O_APPEND set after open (fcntl F_SETFL) is seen at submit too. */
TEST_F(abi, no_append_sees_setfl)
{
	struct aiofsync_req w = afs_req(AIOFSYNC_OP_WRITE, self->fd, 0,
					sizeof(self->buf), self->buf, 1);

	w.flags = AIOFSYNC_REQ_NO_APPEND;
	ASSERT_EQ(0, fcntl(self->fd, F_SETFL, O_APPEND));
	EXPECT_REFUSED(EINVAL, w);
	EXPECT_EQ(0, file_size(self->fd));
}

TEST_F(abi, fdatasync_with_range)
{
	struct aiofsync_req reqs[2] = {
		afs_req(AIOFSYNC_OP_WRITE, self->fd, 0, sizeof(self->buf),
			self->buf, 1),
		afs_req(AIOFSYNC_OP_FDATASYNC, self->fd, 0, 4096, NULL, 2),
	};
	struct aiofsync_event ev[2];

	ASSERT_EQ(2, afs_submit(self->dev, reqs, 2));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 2, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(0, ev[1].res);
	EXPECT_EQ(AIOFSYNC_OP_FDATASYNC, ev[1].opcode);
}

TEST_F(abi, submit_nothing)
{
	EXPECT_EQ(0, afs_submit(self->dev, NULL, 0));
}

TEST_F(abi, submit_bad_opcode)
{
	EXPECT_REFUSED(EINVAL, afs_req(0, self->fd, 0, 0, NULL, 0));
	EXPECT_REFUSED(EINVAL, afs_req(AIOFSYNC_OP_READ + 1, self->fd, 0, 0,
				       NULL, 0));
}

TEST_F(abi, submit_unknown_flag)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 0);

	r.flags = 0x80000000;
	EXPECT_REFUSED(EINVAL, r);
}

TEST_F(abi, submit_reserved0)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 0);

	r.reserved0 = 1;
	EXPECT_REFUSED(EINVAL, r);
}

TEST_F(abi, submit_reserved1)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 0);

	r.reserved1 = 1ULL << 63;
	EXPECT_REFUSED(EINVAL, r);
}

TEST_F(abi, submit_prio_above_max)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 0);

	r.prio = AIOFSYNC_PRIO_MAX + 1;
	EXPECT_REFUSED(EINVAL, r);
}

TEST_F(abi, submit_resfd_without_flag)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 0);

	r.resfd = 3;
	EXPECT_REFUSED(EINVAL, r);
}

TEST_F(abi, submit_negative_offset)
{
	EXPECT_REFUSED(EINVAL, afs_req(AIOFSYNC_OP_WRITE, self->fd, 1ULL << 63,
				       1, self->buf, 0));
	EXPECT_REFUSED(EINVAL, afs_req(AIOFSYNC_OP_FSYNC, self->fd, -1ULL, 0,
				       NULL, 0));
}

TEST_F(abi, submit_range_overflow)
{
	EXPECT_REFUSED(EINVAL, afs_req(AIOFSYNC_OP_FSYNC, self->fd,
				       (1ULL << 62), (1ULL << 62), NULL, 0));
	EXPECT_REFUSED(EINVAL, afs_req(AIOFSYNC_OP_WRITE, self->fd,
				       (1ULL << 63) - 2, 4, self->buf, 0));
}

TEST_F(abi, submit_fsync_with_buffer)
{
	EXPECT_REFUSED(EINVAL, afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0,
				       self->buf, 0));
}

TEST_F(abi, submit_write_too_long)
{
	EXPECT_REFUSED(EINVAL, afs_req(AIOFSYNC_OP_WRITE, self->fd, 0,
				       1ULL << 32, self->buf, 0));
}

TEST_F(abi, submit_bad_fd)
{
	EXPECT_REFUSED(EBADF, afs_req(AIOFSYNC_OP_FSYNC, 1000000, 0, 0, NULL, 0));
	EXPECT_REFUSED(EBADF, afs_req(AIOFSYNC_OP_FSYNC, -1, 0, 0, NULL, 0));
}

TEST_F(abi, submit_fsync_read_only_fd)
{
	int ro = afs_tmpfile("ro", O_RDONLY);

	ASSERT_LE(0, ro);
	EXPECT_REFUSED(EBADF, afs_req(AIOFSYNC_OP_FSYNC, ro, 0, 0, NULL, 0));
	EXPECT_REFUSED(EBADF, afs_req(AIOFSYNC_OP_FDATASYNC, ro, 0, 0, NULL, 0));
	close(ro);
}

TEST_F(abi, submit_write_read_only_fd)
{
	int ro = afs_tmpfile("ro", O_RDONLY);

	ASSERT_LE(0, ro);
	EXPECT_REFUSED(EBADF, afs_req(AIOFSYNC_OP_WRITE, ro, 0, 1, self->buf, 0));
	close(ro);
}

TEST_F(abi, submit_read_write_only_fd)
{
	int wo = afs_tmpfile("wo", O_WRONLY);

	ASSERT_LE(0, wo);
	EXPECT_REFUSED(EBADF, afs_req(AIOFSYNC_OP_READ, wo, 0, 1, self->buf, 0));
	close(wo);
}

TEST_F(abi, submit_o_path_fd)
{
	int p = open(".", O_PATH | O_CLOEXEC);

	ASSERT_LE(0, p);
	EXPECT_REFUSED(EBADF, afs_req(AIOFSYNC_OP_FSYNC, p, 0, 0, NULL, 0));
	close(p);
}

/* A pipe cannot be written at an offset (ESPIPE) nor synced (EINVAL). */
TEST_F(abi, submit_pipe)
{
	int p[2];

	ASSERT_EQ(0, pipe(p));
	EXPECT_REFUSED(ESPIPE, afs_req(AIOFSYNC_OP_WRITE, p[1], 0, 1, self->buf, 0));
	EXPECT_REFUSED(ESPIPE, afs_req(AIOFSYNC_OP_READ, p[0], 0, 1, self->buf, 0));
	EXPECT_REFUSED(EINVAL, afs_req(AIOFSYNC_OP_FSYNC, p[1], 0, 0, NULL, 0));
	close(p[0]);
	close(p[1]);
}

TEST_F(abi, submit_kernel_buffer)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_WRITE, self->fd, 0, 4096,
					NULL, 0);

	r.addr = AFS_KERNEL_ADDR;
	EXPECT_REFUSED(EFAULT, r);
}

TEST_F(abi, submit_bad_array_pointer)
{
	EXPECT_EQ(-1, afs_submit(self->dev, (void *)8, 1));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(abi, submit_bad_struct_pointer)
{
	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_SUBMIT, (void *)8));
	EXPECT_EQ(EFAULT, errno);
}

TEST_F(abi, submit_flags_and_reserved)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 0);
	struct aiofsync_submit s = {
		.nr = 1, .req_size = sizeof(r), .reqs = (uintptr_t)&r, .flags = 1,
	};

	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_SUBMIT, &s));
	EXPECT_EQ(EINVAL, errno);
	s.flags = 0;
	s.reserved = 1;
	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_SUBMIT, &s));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(self->submitted, afs_stat("submitted"));
}

TEST_F(abi, submit_req_size_too_small)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 0);

	EXPECT_EQ(-1, afs_submit_sized(self->dev, &r, 1, sizeof(r) - 8));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, afs_submit_sized(self->dev, &r, 1, 65536));
	EXPECT_EQ(EINVAL, errno);
}

/* A newer caller's larger struct is fine while the unknown tail is zero. */
TEST_F(abi, submit_req_size_larger)
{
	struct {
		struct aiofsync_req r;
		__u64 future;
	} big[2];
	struct aiofsync_event ev[2];

	memset(big, 0, sizeof(big));
	big[0].r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 1);
	big[1].r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 2);
	ASSERT_EQ(2, afs_submit_sized(self->dev, big, 2, sizeof(big[0])));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 2, AIOFSYNC_TIMEOUT_INFINITE));

	big[0].future = 1;
	EXPECT_EQ(-1, afs_submit_sized(self->dev, big, 2, sizeof(big[0])));
	EXPECT_EQ(EINVAL, errno);
}

/* Like io_submit: accepted up to the first bad request, which is not. */
TEST_F(abi, submit_stops_at_first_bad)
{
	struct aiofsync_req reqs[3] = {
		afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 1),
		afs_req(99, self->fd, 0, 0, NULL, 2),
		afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 3),
	};
	struct aiofsync_event ev[3];

	EXPECT_EQ(1, afs_submit(self->dev, reqs, 3));
	EXPECT_EQ(1, afs_reap(self->dev, ev, 1, 3, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(0, afs_reap(self->dev, ev, 1, 3, 100 * AFS_MS));
}

/*
 * A write accepted before the bad request still runs: the call starts the
 * work it held back on every way out.
 */
TEST_F(abi, submit_stops_at_first_bad_write_runs)
{
	struct aiofsync_req reqs[3] = {
		afs_req(AIOFSYNC_OP_WRITE, self->fd, 0, 5, "first", 1),
		afs_req(99, self->fd, 0, 0, NULL, 2),
		afs_req(AIOFSYNC_OP_WRITE, self->fd, 5, 6, "second", 3),
	};
	struct aiofsync_event ev[3];
	char buf[16] = "";

	EXPECT_EQ(1, afs_submit(self->dev, reqs, 3));
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 3, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(5, ev[0].res);
	EXPECT_EQ(0, afs_reap(self->dev, ev, 1, 3, 100 * AFS_MS));
	EXPECT_EQ(5, pread(self->fd, buf, sizeof(buf), 0));
	EXPECT_STREQ("first", buf);
}

/*
 * The flush of a clean file's fsync accepted before the bad request still
 * starts: the call holds it back like a write, and lets it go on every way
 * out.
 */
TEST_F(abi, submit_stops_at_first_bad_sync_runs)
{
	struct aiofsync_req reqs[2] = {
		afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 1),
		afs_req(99, self->fd, 0, 0, NULL, 2),
	};
	struct aiofsync_event ev[2];

	EXPECT_EQ(1, afs_submit(self->dev, reqs, 2));
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 2, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(0, ev[0].res);
	EXPECT_EQ(0, afs_reap(self->dev, ev, 1, 2, 100 * AFS_MS));
}

TEST_F(abi, eventfd_signalled)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 5);
	struct aiofsync_event ev;
	struct pollfd p;
	uint64_t count;

	ASSERT_LE(0, efd);
	r.flags = AIOFSYNC_REQ_EVENTFD;
	r.resfd = efd;
	ASSERT_EQ(1, afs_submit(self->dev, &r, 1));
	p.fd = efd;
	p.events = POLLIN;
	ASSERT_EQ(1, poll(&p, 1, 5000));
	ASSERT_EQ(sizeof(count), read(efd, &count, sizeof(count)));
	EXPECT_EQ(1, count);
	/* The event is there by the time the eventfd fires. */
	EXPECT_EQ(1, afs_reap(self->dev, &ev, 0, 1, 0));
	close(efd);
}

TEST_F(abi, eventfd_bad_fd)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 5);

	r.flags = AIOFSYNC_REQ_EVENTFD;
	r.resfd = 1000000;
	EXPECT_REFUSED(EBADF, r);
	r.resfd = self->fd;	/* not an eventfd */
	EXPECT_REFUSED(EINVAL, r);
}

TEST_F(abi, reap_bad_counts)
{
	struct aiofsync_event ev[2];

	EXPECT_EQ(-1, afs_reap(self->dev, ev, 0, 0, 0));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, afs_reap(self->dev, ev, 2, 1, 0));
	EXPECT_EQ(EINVAL, errno);
}

/* fg_takes is an output: on the way in it must be 0, for either number. */
TEST_F(abi, reap_flags_and_fg_takes_in)
{
	struct aiofsync_event ev;
	struct aiofsync_reap r = {
		.max_nr = 1, .events = (uintptr_t)&ev,
		.flags = AIOFSYNC_REAP_FLAGS_ALL << 1,
	};

	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_REAP, &r));
	EXPECT_EQ(EINVAL, errno);
	r.flags = 0;
	r.fg_takes = 1;
	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_REAP, &r));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_REAP_TAKES, &r));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(abi, reap_bad_events_pointer)
{
	struct aiofsync_reap r = { .max_nr = 1, .events = AFS_KERNEL_ADDR };

	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_REAP, &r));
	EXPECT_EQ(EFAULT, errno);
}

/* A fault while copying events out loses none of them. */
TEST_F(abi, reap_fault_keeps_events)
{
	long page = sysconf(_SC_PAGESIZE);
	struct aiofsync_req reqs[2] = {
		afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 1),
		afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 2),
	};
	struct aiofsync_event ev[2], *edge;
	char *map;

	/* One event fits before a page that is not there. */
	map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, munmap(map + page, page));
	edge = (struct aiofsync_event *)(map + page) - 1;

	ASSERT_EQ(2, afs_submit(self->dev, reqs, 2));
	/* Waits for both, copies the first, faults on the second. */
	EXPECT_EQ(1, afs_reap(self->dev, edge, 2, 2, 5000 * AFS_MS));
	EXPECT_EQ(1, edge->user_tag);
	/* The second is still there, in its place. */
	EXPECT_EQ(1, afs_reap(self->dev, ev, 1, 2, 5000 * AFS_MS));
	EXPECT_EQ(2, ev[0].user_tag);
	EXPECT_EQ(0, afs_reap(self->dev, ev, 1, 2, 0));
	munmap(map, page);
}

TEST_F(abi, reap_timeout_zero_returns_at_once)
{
	struct aiofsync_event ev;

	EXPECT_EQ(0, afs_reap(self->dev, &ev, 1, 1, 0));
}

TEST_F(abi, reap_timeout_expires)
{
	struct aiofsync_event ev;
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	EXPECT_EQ(0, afs_reap(self->dev, &ev, 1, 1, 100 * AFS_MS));
	clock_gettime(CLOCK_MONOTONIC, &b);
	EXPECT_LE(100 * AFS_MS, (b.tv_sec - a.tv_sec) * 1000000000ULL +
				 b.tv_nsec - a.tv_nsec);
}

struct reaper {
	int dev, calls, short_calls;
	long last;
};

static void *reap_fours(void *arg)
{
	struct reaper *r = arg;
	struct aiofsync_event ev[4];
	long n;

	for (int i = 0; i < r->calls; i++) {
		n = afs_reap(r->dev, ev, 4, 4, 20000 * AFS_MS);
		if (n != 4) {
			r->short_calls++;
			r->last = n < 0 ? -errno : n;
		}
	}
	return NULL;
}

/*
 * Reapers of one context share its events. A reaper woken for events that
 * another takes first waits again: each call here gets its min_nr (4) long
 * before its timeout, as all the events it needs do come. (Without the
 * second wait, about one run in three of a round has a short call: eight
 * rounds.)
 */
TEST_F(abi, concurrent_reapers_each_get_min_nr)
{
	struct reaper r[4];
	pthread_t t[4];
	struct aiofsync_req w[8];
	int i, k, round;

	for (round = 0; round < 8; round++) {
		for (i = 0; i < 4; i++) {
			r[i] = (struct reaper){ .dev = self->dev, .calls = 8 };
			ASSERT_EQ(0, pthread_create(&t[i], NULL, reap_fours, &r[i]));
		}
		/* 128 writes, a batch at a time: completions trickle in. */
		for (k = 0; k < 16; k++) {
			for (i = 0; i < 8; i++)
				w[i] = afs_req(AIOFSYNC_OP_WRITE, self->fd,
					       (k * 8 + i) * 512, 512, self->buf,
					       k * 8 + i);
			ASSERT_EQ(8, afs_submit(self->dev, w, 8));
			usleep(2000);
		}
		for (i = 0; i < 4; i++) {
			pthread_join(t[i], NULL);
			EXPECT_EQ(0, r[i].short_calls)
				TH_LOG("round %d, reaper %d: %d calls short, the last returned %ld",
				       round, i, r[i].short_calls, r[i].last);
		}
	}
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/*
 * A wait with no timeout and no event to come ends only for the signal:
 * a SIGALRM every 50 ms until the call returns, as one that came before
 * the call started to wait would be handled and gone. (An interval timer,
 * not a thread: a 32-bit program's pthread_join() aborts on a kernel built
 * without CONFIG_COMPAT_32BIT_TIME.)
 */
TEST_F(abi, reap_interrupted_by_signal)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval every = {
		.it_interval = { .tv_usec = 50000 },
		.it_value = { .tv_usec = 50000 },
	}, off = { };
	struct aiofsync_event ev;
	int ret, err;

	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &every, NULL));
	ret = afs_reap(self->dev, &ev, 1, 1, AIOFSYNC_TIMEOUT_INFINITE);
	err = errno;
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &off, NULL));
	EXPECT_LE(1, alarms);
	EXPECT_EQ(-1, ret);
	EXPECT_EQ(EINTR, err);
}

TEST_F(abi, poll_and_epoll)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 9);
	struct pollfd p = { .fd = self->dev, .events = POLLIN };
	struct epoll_event ee = { .events = EPOLLIN }, out;
	struct aiofsync_event ev;
	int ep = epoll_create1(EPOLL_CLOEXEC);

	ASSERT_LE(0, ep);
	ASSERT_EQ(0, epoll_ctl(ep, EPOLL_CTL_ADD, self->dev, &ee));
	EXPECT_EQ(0, poll(&p, 1, 0));
	EXPECT_EQ(0, epoll_wait(ep, &out, 1, 0));

	ASSERT_EQ(1, afs_submit(self->dev, &r, 1));
	EXPECT_EQ(1, epoll_wait(ep, &out, 1, 5000));
	EXPECT_EQ(1, poll(&p, 1, 5000));
	EXPECT_EQ(POLLIN, p.revents & POLLIN);

	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 0));
	EXPECT_EQ(0, poll(&p, 1, 0));
	close(ep);
}

/* Contexts are independent: one never sees another's completions. */
TEST_F(abi, contexts_are_separate)
{
	int dev2 = afs_open();
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, self->fd, 0, 0, NULL, 1);
	struct aiofsync_event ev;

	ASSERT_LE(0, dev2);
	ASSERT_EQ(1, afs_submit(self->dev, &r, 1));
	EXPECT_EQ(0, afs_reap(dev2, &ev, 1, 1, 200 * AFS_MS));
	EXPECT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS));
	close(dev2);
}

TEST_F(abi, device_not_seekable)
{
	EXPECT_EQ(-1, lseek(self->dev, 0, SEEK_SET));
	EXPECT_EQ(ESPIPE, errno);
}

TEST_HARNESS_MAIN
