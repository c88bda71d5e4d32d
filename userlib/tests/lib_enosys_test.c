// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * No device, no AIO: every entry point fails with ENOSYS (libaio's with
 * -ENOSYS), as the Linux aio_fsync(3) page says a missing implementation
 * reads, and nothing silently falls back to glibc. The device's absence is
 * simulated with AIOFSYNC_DEVICE=/nonexistent, which the library honours,
 * and, in the VM (as root, with AIOFSYNC_KO naming the module file), made
 * real: the module is unloaded, the calls fail, it is loaded again and the
 * same process's next calls work. Unloading is refused while the library
 * holds a context open.
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
/* The errno of aio_write() of @cb to a pipe (0 if it was queued). */
static int pipe_write_errno(struct aiocb *cb)
{
	int p[2], fd = cb->aio_fildes, err;

	if (pipe(p))
		return -1;
	cb->aio_fildes = p[1];
	err = aio_write(cb) ? errno : 0;
	cb->aio_fildes = fd;
	close(p[0]);
	close(p[1]);
	return err;
}

TEST_F(nodev, pipe_write)
{
	EXPECT_EQ(ENOSYS, pipe_write_errno(&self->cb));
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

/* ---- the module really unloaded ---- */

/*
 * Every test here leaves the module loaded, whatever happens: the teardown
 * loads it again, and so does this program's exit (after a test that was
 * killed, or whose setup failed), since later programs of the same boot
 * need it. Only ever in the VM: AIOFSYNC_KO is set by tools/vm alone.
 */
static void reload_if_gone(void)
{
	const char *ko = getenv("AIOFSYNC_KO");

	if (ko && !geteuid() && access(AIOFSYNC_DEVICE, F_OK))
		afs_module_load(ko);
}

static void __attribute__((destructor)) reload_at_exit(void)
{
	reload_if_gone();
}

FIXTURE(module)
{
	const char *ko;
	int fd;
	char buf[512], back[512];
	struct aiocb cb;
};

/* SKIP here does not stop the test: each test returns when !self->ko. */
FIXTURE_SETUP(module)
{
	const char *ko = getenv("AIOFSYNC_KO");

	self->fd = -1;
	if (!ko || geteuid())
		SKIP(return, "needs root and AIOFSYNC_KO (run in the VM)");
	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	self->fd = lt_tmpfile("unload", O_RDWR);
	ASSERT_LE(0, self->fd);
	memset(self->buf, 'u', sizeof(self->buf));
	lt_prep(&self->cb, self->fd, self->buf, sizeof(self->buf), 0);
	self->ko = ko;
}

FIXTURE_TEARDOWN(module)
{
	reload_if_gone();
	if (self->fd >= 0)
		close(self->fd);
}

/* Unload: nothing of this process may hold the device yet. */
#define UNLOAD() do {							\
	ASSERT_EQ(0, afs_module_unload())				\
		TH_LOG("delete_module: %s", strerror(errno));		\
	ASSERT_NE(0, access(AIOFSYNC_DEVICE, F_OK));			\
} while (0)

#define LOAD() do {							\
	ASSERT_EQ(0, afs_module_load(self->ko))				\
		TH_LOG("finit_module %s: %s", self->ko, strerror(errno)); \
	ASSERT_TRUE(lt_have_device());					\
} while (0)

/* The module cannot go while a context is open: EWOULDBLOCK (or EBUSY). */
#define UNLOAD_REFUSED() do {						\
	errno = 0;							\
	ASSERT_EQ(-1, afs_module_unload());				\
	EXPECT_TRUE(errno == EWOULDBLOCK || errno == EBUSY)		\
		TH_LOG("delete_module: %s", strerror(errno));		\
	ASSERT_TRUE(lt_have_device());					\
} while (0)

/*
 * POSIX: ENOSYS without the module, and nothing written behind the
 * program's back (no helper thread ran the write); then, loaded again, the
 * same calls in the same process queue, run and complete.
 */
TEST_F(module, posix_enosys_unloaded_then_works)
{
	struct aiocb *list[1] = { &self->cb };
	struct stat st;

	if (!self->ko)
		return;
	UNLOAD();
	EXPECT_EQ(-1, aio_write(&self->cb));
	EXPECT_EQ(ENOSYS, errno);
	EXPECT_EQ(-1, aio_fsync(O_SYNC, &self->cb));
	EXPECT_EQ(ENOSYS, errno);
	EXPECT_EQ(-1, aio_fsync(O_DSYNC, &self->cb));
	EXPECT_EQ(ENOSYS, errno);
	EXPECT_EQ(-1, aio_read(&self->cb));
	EXPECT_EQ(ENOSYS, errno);
	self->cb.aio_lio_opcode = LIO_WRITE;
	EXPECT_EQ(-1, lio_listio(LIO_WAIT, list, 1, NULL));
	EXPECT_EQ(ENOSYS, errno);
	EXPECT_EQ(-1, aiofsync_available());
	EXPECT_EQ(ENOSYS, errno);
	EXPECT_EQ(ENOSYS, pipe_write_errno(&self->cb));
	/* Time for a helper thread to have written, had one been started. */
	usleep(100000);
	ASSERT_EQ(0, fstat(self->fd, &st));
	EXPECT_EQ(0, st.st_size);

	LOAD();
	EXPECT_EQ(0, aiofsync_available());
	ASSERT_EQ(0, aio_write(&self->cb));
	ASSERT_EQ(0, lt_wait(&self->cb));
	EXPECT_EQ((ssize_t)sizeof(self->buf), aio_return(&self->cb));
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->cb));
	ASSERT_EQ(0, lt_wait(&self->cb));
	EXPECT_EQ(0, aio_return(&self->cb));
	ASSERT_EQ((ssize_t)sizeof(self->back),
		  pread(self->fd, self->back, sizeof(self->back), 0));
	EXPECT_EQ(0, memcmp(self->buf, self->back, sizeof(self->buf)));
	/* ...and now the process's context holds the module. */
	UNLOAD_REFUSED();
}

/*
 * A write and an fsync of the fixture's file through @ctx: queued, unloading
 * refused while they and the context live, both reaped with their results.
 */
static void write_and_sync(struct __test_metadata *_metadata,
			   FIXTURE_DATA(module) *self, io_context_t ctx)
{
	struct iocb w, s, *ios[2] = { &w, &s };
	struct timespec ts = { LT_WAIT_SEC, 0 };
	struct io_event ev[2];
	int got = 0, ret;

	io_prep_pwrite(&w, self->fd, self->buf, sizeof(self->buf), 0);
	io_prep_fsync(&s, self->fd);
	ASSERT_EQ(2, io_submit(ctx, 2, ios));
	UNLOAD_REFUSED();
	while (got < 2) {
		ret = io_getevents(ctx, 2 - got, 2 - got, ev + got, &ts);
		ASSERT_LT(0, ret);
		got += ret;
	}
	EXPECT_EQ(&w, ev[0].obj);
	EXPECT_EQ((long)sizeof(self->buf), (long)ev[0].res);
	EXPECT_EQ(&s, ev[1].obj);
	EXPECT_EQ(0, (long)ev[1].res);
}

/*
 * libaio: -ENOSYS without the module; io_submit() then has no context to
 * submit to, which is the argument error -EINVAL (the library's documented
 * order: argument errors before the device). Loaded again: the same calls
 * work in the same process.
 */
TEST_F(module, libaio_enosys_unloaded_then_works)
{
	struct iocb s, *ios[1] = { &s };
	io_context_t ctx = NULL;

	if (!self->ko)
		return;
	io_prep_fsync(&s, self->fd);
	UNLOAD();
	EXPECT_EQ(-ENOSYS, io_setup(16, &ctx));
	EXPECT_EQ(NULL, ctx);
	EXPECT_EQ(-ENOSYS, io_queue_init(16, &ctx));
	EXPECT_EQ(NULL, ctx);
	EXPECT_EQ(-EINVAL, io_submit(ctx, 1, ios));

	LOAD();
	ASSERT_EQ(0, io_setup(16, &ctx));
	ASSERT_NE(NULL, ctx);
	write_and_sync(_metadata, self, ctx);
	EXPECT_EQ(0, io_destroy(ctx));
}

/*
 * The reverse: a POSIX context opened while the module is loaded keeps the
 * module, and keeps working, while unloading is refused.
 */
TEST_F(module, posix_context_pins_module)
{
	if (!self->ko)
		return;
	ASSERT_EQ(0, aio_write(&self->cb));
	UNLOAD_REFUSED();
	ASSERT_EQ(0, lt_wait(&self->cb));
	EXPECT_EQ((ssize_t)sizeof(self->buf), aio_return(&self->cb));
	ASSERT_EQ(0, aio_fsync(O_DSYNC, &self->cb));
	UNLOAD_REFUSED();
	ASSERT_EQ(0, lt_wait(&self->cb));
	EXPECT_EQ(0, aio_return(&self->cb));
}

/*
 * A libaio context pins the module as long as it lives, idle or busy, and
 * works while unloading is refused; io_destroy() lets it go.
 */
TEST_F(module, libaio_context_pins_until_destroy)
{
	io_context_t ctx = NULL;

	if (!self->ko)
		return;
	ASSERT_EQ(0, io_setup(16, &ctx));
	UNLOAD_REFUSED();
	write_and_sync(_metadata, self, ctx);
	UNLOAD_REFUSED();
	ASSERT_EQ(0, io_destroy(ctx));
	UNLOAD();
	ctx = NULL;
	EXPECT_EQ(-ENOSYS, io_setup(16, &ctx));
	LOAD();
}

TEST_HARNESS_MAIN
