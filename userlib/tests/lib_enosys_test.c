// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * No device, no AIO: every entry point fails with ENOSYS (libaio's with
 * -ENOSYS), as the Linux aio_fsync(3) page says a missing implementation
 * reads, and nothing silently falls back to glibc. The device's absence is
 * simulated with AIOFSYNC_DEVICE=/nonexistent, which the library honours.
 */
#include <libaio.h>

#include "lib_test.h"
#include "../aiofsync.h"
#include "kselftest_harness.h"

FIXTURE(nodev)
{
	int fd;
	char buf[512];
	struct aiocb cb;
};

FIXTURE_SETUP(nodev)
{
	/* Before the library's first use: the device is opened lazily. */
	ASSERT_EQ(0, setenv("AIOFSYNC_DEVICE", "/nonexistent", 1));
	self->fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
	lt_prep(&self->cb, self->fd, self->buf, sizeof(self->buf), 0);
}

FIXTURE_TEARDOWN(nodev)
{
	close(self->fd);
}

TEST_F(nodev, aio_fsync)
{
	EXPECT_EQ(-1, aio_fsync(O_SYNC, &self->cb));
	EXPECT_EQ(ENOSYS, errno);
	EXPECT_EQ(-1, aio_fsync(O_DSYNC, &self->cb));
	EXPECT_EQ(ENOSYS, errno);
}

TEST_F(nodev, aio_fsync64)
{
	EXPECT_EQ(-1, aio_fsync64(O_SYNC, (struct aiocb64 *)&self->cb));
	EXPECT_EQ(ENOSYS, errno);
}

TEST_F(nodev, aio_write)
{
	EXPECT_EQ(-1, aio_write(&self->cb));
	EXPECT_EQ(ENOSYS, errno);
}

TEST_F(nodev, aio_read)
{
	EXPECT_EQ(-1, aio_read(&self->cb));
	EXPECT_EQ(ENOSYS, errno);
}

/* Pipes too: the fallback serves what the device refuses, not its absence. */
TEST_F(nodev, pipe_write)
{
	int p[2];

	ASSERT_EQ(0, pipe(p));
	self->cb.aio_fildes = p[1];
	EXPECT_EQ(-1, aio_write(&self->cb));
	EXPECT_EQ(ENOSYS, errno);
	close(p[0]);
	close(p[1]);
}

TEST_F(nodev, lio_listio)
{
	struct aiocb *list[1] = { &self->cb };

	self->cb.aio_lio_opcode = LIO_WRITE;
	EXPECT_EQ(-1, lio_listio(LIO_WAIT, list, 1, NULL));
	EXPECT_EQ(ENOSYS, errno);
	EXPECT_EQ(-1, lio_listio(LIO_NOWAIT, list, 1, NULL));
	EXPECT_EQ(ENOSYS, errno);
}

TEST_F(nodev, fsync_range)
{
	EXPECT_EQ(-1, aiofsync_fsync_range(O_SYNC, &self->cb));
	EXPECT_EQ(ENOSYS, errno);
}

TEST_F(nodev, available)
{
	EXPECT_EQ(-1, aiofsync_available());
	EXPECT_EQ(ENOSYS, errno);
}

/* Argument errors still come first: they do not need the device. */
TEST_F(nodev, bad_op_is_einval)
{
	EXPECT_EQ(-1, aio_fsync(0, &self->cb));
	EXPECT_EQ(EINVAL, errno);
}

/* Nothing was ever queued: FreeBSD's EAGAIN, not a wait. */
TEST_F(nodev, waitcomplete)
{
	struct aiocb *got = &self->cb;
	struct timespec ts = { 0, 0 };

	EXPECT_EQ(-1, aio_waitcomplete(&got, &ts));
	EXPECT_EQ(EAGAIN, errno);
	EXPECT_EQ(NULL, got);
}

/* With nothing queued there is nothing to cancel; not ENOSYS. */
TEST_F(nodev, aio_cancel)
{
	EXPECT_EQ(AIO_ALLDONE, aio_cancel(self->fd, NULL));
}

TEST_F(nodev, io_setup)
{
	io_context_t ctx = NULL;

	EXPECT_EQ(-ENOSYS, io_setup(16, &ctx));
	EXPECT_EQ(NULL, ctx);
	EXPECT_EQ(-ENOSYS, io_queue_init(16, &ctx));
}

/* A node that is not /dev/aiofsync (no GET_INFO): also ENOSYS. */
TEST(not_the_device)
{
	io_context_t ctx = NULL;

	ASSERT_EQ(0, setenv("AIOFSYNC_DEVICE", "/dev/null", 1));
	EXPECT_EQ(-ENOSYS, io_setup(16, &ctx));
	EXPECT_EQ(-1, aiofsync_available());
	EXPECT_EQ(ENOSYS, errno);
}

/* Loaded later, used then: absence is not remembered. */
TEST(absence_not_sticky)
{
	ASSERT_EQ(0, setenv("AIOFSYNC_DEVICE", "/nonexistent", 1));
	EXPECT_EQ(-1, aiofsync_available());
	EXPECT_EQ(ENOSYS, errno);
	ASSERT_EQ(0, unsetenv("AIOFSYNC_DEVICE"));
	if (!lt_have_device())
		SKIP(return, "no /dev/aiofsync to appear (run in the VM)");
	EXPECT_EQ(0, aiofsync_available());
}

TEST_HARNESS_MAIN
