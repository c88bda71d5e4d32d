// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Argument checks of the POSIX and libaio calls, one test per error path.
 * All happen before the device is used: the tests point AIOFSYNC_DEVICE at
 * nothing, so that a check that came too late would show as ENOSYS.
 */
#include <libaio.h>

#include "lib_test.h"
#include "../aiofsync.h"
#include "kselftest_harness.h"

FIXTURE(args)
{
	int rw, rdonly, wronly;
	char buf[512];
	struct aiocb cb;
};

FIXTURE_SETUP(args)
{
	ASSERT_EQ(0, setenv("AIOFSYNC_DEVICE", "/nonexistent", 1));
	self->rw = lt_tmpfile("rw", O_RDWR);
	ASSERT_LE(0, self->rw);
	self->rdonly = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, self->rdonly);
	self->wronly = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, self->wronly);
	lt_prep(&self->cb, self->rw, self->buf, sizeof(self->buf), 0);
}

FIXTURE_TEARDOWN(args)
{
	close(self->rw);
	close(self->rdonly);
	close(self->wronly);
}

#define EXPECT_FAILS(err, call) do {					\
	errno = 0;							\
	EXPECT_EQ(-1, (call));						\
	EXPECT_EQ(err, errno);						\
} while (0)

TEST_F(args, fsync_op_not_sync)
{
	EXPECT_FAILS(EINVAL, aio_fsync(0, &self->cb));
	EXPECT_FAILS(EINVAL, aio_fsync(O_RDWR, &self->cb));
	EXPECT_FAILS(EINVAL, aio_fsync(O_SYNC | O_APPEND, &self->cb));
	EXPECT_FAILS(EINVAL, aio_fsync(-1, &self->cb));
}

TEST_F(args, fsync_bad_fd)
{
	self->cb.aio_fildes = -1;
	EXPECT_FAILS(EBADF, aio_fsync(O_SYNC, &self->cb));
	self->cb.aio_fildes = 1000000;
	EXPECT_FAILS(EBADF, aio_fsync(O_DSYNC, &self->cb));
}

TEST_F(args, fsync_closed_fd)
{
	int fd = dup(self->rw);

	ASSERT_LE(0, fd);
	close(fd);
	self->cb.aio_fildes = fd;
	EXPECT_FAILS(EBADF, aio_fsync(O_SYNC, &self->cb));
}

/* "not open for writing": EBADF at call time. */
TEST_F(args, fsync_read_only_fd)
{
	self->cb.aio_fildes = self->rdonly;
	EXPECT_FAILS(EBADF, aio_fsync(O_SYNC, &self->cb));
	EXPECT_FAILS(EBADF, aio_fsync(O_DSYNC, &self->cb));
}

TEST_F(args, fsync_o_path_fd)
{
	int fd = open(".", O_PATH | O_CLOEXEC);

	ASSERT_LE(0, fd);
	self->cb.aio_fildes = fd;
	EXPECT_FAILS(EBADF, aio_fsync(O_SYNC, &self->cb));
	close(fd);
}

/* Only aio_fildes and aio_sigevent are read: garbage elsewhere is fine. */
TEST_F(args, fsync_ignores_other_fields)
{
	self->cb.aio_reqprio = 12345;
	self->cb.aio_offset = -5;
	self->cb.aio_lio_opcode = 77;
	EXPECT_FAILS(ENOSYS, aio_fsync(O_SYNC, &self->cb));
}

TEST_F(args, bad_sigev_notify)
{
	self->cb.aio_sigevent.sigev_notify = 77;
	EXPECT_FAILS(EINVAL, aio_fsync(O_SYNC, &self->cb));
	EXPECT_FAILS(EINVAL, aio_write(&self->cb));
	EXPECT_FAILS(EINVAL, aio_read(&self->cb));
}

TEST_F(args, bad_signal_number)
{
	self->cb.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
	self->cb.aio_sigevent.sigev_signo = 1000;
	EXPECT_FAILS(EINVAL, aio_fsync(O_SYNC, &self->cb));
	self->cb.aio_sigevent.sigev_signo = -1;
	EXPECT_FAILS(EINVAL, aio_write(&self->cb));
}

/* A zeroed aiocb means SIGEV_SIGNAL with signal 0: accepted, as glibc. */
TEST_F(args, zeroed_sigevent_accepted)
{
	memset(&self->cb.aio_sigevent, 0, sizeof(self->cb.aio_sigevent));
	EXPECT_FAILS(ENOSYS, aio_fsync(O_SYNC, &self->cb));
}

TEST_F(args, thread_without_function)
{
	self->cb.aio_sigevent.sigev_notify = SIGEV_THREAD;
	EXPECT_FAILS(EINVAL, aio_fsync(O_SYNC, &self->cb));
	self->cb.aio_sigevent.sigev_notify = SIGEV_CALLBACK;
	EXPECT_FAILS(EINVAL, aio_fsync(O_SYNC, &self->cb));
}

TEST_F(args, thread_id_without_thread)
{
	self->cb.aio_sigevent.sigev_notify = SIGEV_THREAD_ID;
	self->cb.aio_sigevent.sigev_signo = SIGUSR1;
	self->cb.aio_sigevent.sigev_notify_thread_id = 0;
	EXPECT_FAILS(EINVAL, aio_fsync(O_SYNC, &self->cb));
}

/* 0 .. AIO_PRIO_DELTA_MAX (20); the boundaries themselves are fine. */
TEST_F(args, reqprio_range)
{
	self->cb.aio_reqprio = -1;
	EXPECT_FAILS(EINVAL, aio_write(&self->cb));
	self->cb.aio_reqprio = AIO_PRIO_DELTA_MAX + 1;
	EXPECT_FAILS(EINVAL, aio_write(&self->cb));
	EXPECT_FAILS(EINVAL, aio_read(&self->cb));
	self->cb.aio_reqprio = AIO_PRIO_DELTA_MAX;
	EXPECT_FAILS(ENOSYS, aio_write(&self->cb));
	self->cb.aio_reqprio = 0;
	EXPECT_FAILS(ENOSYS, aio_read(&self->cb));
}

TEST_F(args, negative_offset)
{
	self->cb.aio_offset = -1;
	EXPECT_FAILS(EINVAL, aio_write(&self->cb));
	EXPECT_FAILS(EINVAL, aio_read(&self->cb));
	EXPECT_FAILS(EINVAL, aiofsync_fsync_range(O_SYNC, &self->cb));
}

TEST_F(args, write_bad_fd)
{
	self->cb.aio_fildes = -1;
	EXPECT_FAILS(EBADF, aio_write(&self->cb));
	self->cb.aio_fildes = self->rdonly;
	EXPECT_FAILS(EBADF, aio_write(&self->cb));
}

TEST_F(args, read_bad_fd)
{
	self->cb.aio_fildes = -1;
	EXPECT_FAILS(EBADF, aio_read(&self->cb));
	self->cb.aio_fildes = self->wronly;
	EXPECT_FAILS(EBADF, aio_read(&self->cb));
}

/* glibc declares these nonnull and crashes; we answer EINVAL. */
TEST_F(args, null_aiocb)
{
	struct aiocb *volatile none = NULL;

	EXPECT_FAILS(EINVAL, aio_fsync(O_SYNC, none));
	EXPECT_FAILS(EINVAL, aio_write(none));
	EXPECT_FAILS(EINVAL, aio_read(none));
	EXPECT_FAILS(EINVAL, aio_error(none));
	EXPECT_FAILS(EINVAL, (int)aio_return(none));
}

TEST_F(args, cancel_bad_fd)
{
	EXPECT_FAILS(EBADF, aio_cancel(-1, NULL));
	EXPECT_FAILS(EBADF, aio_cancel(1000000, &self->cb));
}

TEST_F(args, cancel_fd_mismatch)
{
	EXPECT_FAILS(EINVAL, aio_cancel(self->wronly, &self->cb));
}

TEST_F(args, suspend_bad_args)
{
	const struct aiocb *list[1] = { &self->cb };
	struct timespec bad = { 0, 1000000000L }, neg = { -1, 0 };

	EXPECT_FAILS(EINVAL, aio_suspend(list, -1, NULL));
	EXPECT_FAILS(EINVAL, aio_suspend(list, 1, &bad));
	EXPECT_FAILS(EINVAL, aio_suspend(list, 1, &neg));
}

/* Nothing in progress in the list: aio_suspend returns at once. */
TEST_F(args, suspend_nothing_in_progress)
{
	const struct aiocb *list[2] = { NULL, &self->cb };

	EXPECT_EQ(0, aio_suspend(list, 2, NULL));
}

/* Only NULL elements: it waits for the timeout, then EAGAIN. */
TEST_F(args, suspend_timeout)
{
	const struct aiocb *list[1] = { NULL };
	struct timespec ts = { 0, 20000000 };

	EXPECT_FAILS(EAGAIN, aio_suspend(list, 1, &ts));
}

TEST_F(args, lio_bad_mode)
{
	struct aiocb *list[1] = { &self->cb };

	EXPECT_FAILS(EINVAL, lio_listio(7, list, 1, NULL));
	EXPECT_FAILS(EINVAL, lio_listio(LIO_WAIT, list, -1, NULL));
}

TEST_F(args, lio_bad_sigevent)
{
	struct aiocb *list[1] = { &self->cb };
	struct sigevent sev = { .sigev_notify = 99 };

	EXPECT_FAILS(EINVAL, lio_listio(LIO_NOWAIT, list, 1, &sev));
}

TEST_F(args, waitcomplete_bad_timeout)
{
	struct aiocb *got;
	struct timespec bad = { 0, -1 };

	EXPECT_FAILS(EINVAL, (int)aio_waitcomplete(&got, &bad));
	EXPECT_FAILS(EINVAL, (int)aio_waitcomplete(NULL, NULL));
	(void)got;
}

TEST(libaio_null_context)
{
	struct io_event ev;
	struct iocb io, *ios[1] = { &io };
	struct timespec ts = { 0, 0 };

	EXPECT_EQ(-EINVAL, io_submit(NULL, 1, ios));
	EXPECT_EQ(-EINVAL, io_getevents(NULL, 0, 1, &ev, &ts));
	EXPECT_EQ(-EINVAL, io_destroy(NULL));
	EXPECT_EQ(-EINVAL, io_cancel(NULL, &io, &ev));
	EXPECT_EQ(-EINVAL, io_queue_run(NULL));
	EXPECT_EQ(-EINVAL, io_queue_release(NULL));
}

TEST(libaio_setup_args)
{
	io_context_t ctx = NULL, taken = (io_context_t)&ctx;

	EXPECT_EQ(-EFAULT, io_setup(1, NULL));
	EXPECT_EQ(-EINVAL, io_setup(0, &ctx));
	EXPECT_EQ(-EINVAL, io_setup(-3, &ctx));
	/* *ctxp must be 0 on entry, as with the system call. */
	EXPECT_EQ(-EINVAL, io_setup(1, &taken));
}

TEST_HARNESS_MAIN
