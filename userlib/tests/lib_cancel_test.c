// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * aio_cancel(): a request not started is cancelled (AIO_CANCELED, and
 * aio_error() says ECANCELED as soon as the call returns), a running one is
 * not (AIO_NOTCANCELED), a finished one is AIO_ALLDONE; with a NULL aiocb,
 * every request on the descriptor. A sync held behind a stalled write is
 * the request "not started" here; the stalled write is the running one.
 */
#include <semaphore.h>

#include "lib_test.h"
#include "../aiofsync.h"
#include "kselftest_harness.h"

#define BS 4096

FIXTURE(cancel)
{
	int fd;
	struct aiocb w, s;
	struct afs_stall stall;
};

FIXTURE_SETUP(cancel)
{
	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	self->fd = lt_tmpfile("cancel", O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, afs_stall_init(&self->stall, BS));
	lt_prep(&self->w, self->fd, self->stall.addr, BS, 0);
	lt_prep(&self->s, self->fd, NULL, 0, 0);
	/* The running request: a write stalled on its buffer. */
	ASSERT_EQ(0, aio_write(&self->w));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, LT_WAIT_SEC * 1000));
}

FIXTURE_TEARDOWN(cancel)
{
	afs_stall_release(&self->stall, 'r');
	lt_wait(&self->w);
	afs_stall_destroy(&self->stall);
	close(self->fd);
}

TEST_F(cancel, queued_request)
{
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	EXPECT_EQ(AIO_CANCELED, aio_cancel(self->fd, &self->s));
	/* At once, not some time later. */
	EXPECT_EQ(ECANCELED, aio_error(&self->s));
	EXPECT_EQ(-1, aio_return(&self->s));
}

TEST_F(cancel, running_request)
{
	EXPECT_EQ(AIO_NOTCANCELED, aio_cancel(self->fd, &self->w));
	EXPECT_EQ(EINPROGRESS, aio_error(&self->w));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'r'));
	EXPECT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(BS, aio_return(&self->w));
}

TEST_F(cancel, finished_request)
{
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'r'));
	ASSERT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(AIO_ALLDONE, aio_cancel(self->fd, &self->w));
	EXPECT_EQ(0, aio_error(&self->w));
}

/* NULL aiocb: the queued syncs go, the running write stays. */
TEST_F(cancel, whole_descriptor)
{
	struct aiocb more[3];
	int i;

	for (i = 0; i < 3; i++) {
		lt_prep(&more[i], self->fd, NULL, 0, 0);
		ASSERT_EQ(0, aio_fsync(i % 2 ? O_SYNC : O_DSYNC, &more[i]));
	}
	EXPECT_EQ(AIO_NOTCANCELED, aio_cancel(self->fd, NULL));
	for (i = 0; i < 3; i++)
		EXPECT_EQ(ECANCELED, aio_error(&more[i]));
	EXPECT_EQ(EINPROGRESS, aio_error(&self->w));
}

/*
 * Only not-started requests on the descriptor: AIO_CANCELED. The sync goes
 * through another open file of the same inode, so it is held back by the
 * write, which is not on that descriptor.
 */
TEST_F(cancel, whole_descriptor_all_canceled)
{
	int fd2 = lt_reopen(self->fd, O_RDWR);

	ASSERT_LE(0, fd2);
	self->s.aio_fildes = fd2;
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	EXPECT_EQ(AIO_CANCELED, aio_cancel(fd2, NULL));
	EXPECT_EQ(ECANCELED, aio_error(&self->s));
	EXPECT_EQ(EINPROGRESS, aio_error(&self->w));
	close(fd2);
}

/* Nothing on that descriptor: AIO_ALLDONE, and the others untouched. */
TEST_F(cancel, other_descriptor)
{
	int other = lt_tmpfile("cancel2", O_RDWR);

	ASSERT_LE(0, other);
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	EXPECT_EQ(AIO_ALLDONE, aio_cancel(other, NULL));
	EXPECT_EQ(EINPROGRESS, aio_error(&self->s));
	close(other);
}

static sem_t notified;
static atomic_int notified_err = -1;
static struct aiocb *notified_cb;

static void on_done(union sigval v)
{
	(void)v;
	notified_err = aio_error(notified_cb);
	sem_post(&notified);
}

/* A cancelled request is notified as any other, with ECANCELED. */
TEST_F(cancel, canceled_request_is_notified)
{
	sem_init(&notified, 0, 0);
	notified_cb = &self->s;
	self->s.aio_sigevent.sigev_notify = SIGEV_CALLBACK;
	self->s.aio_sigevent.sigev_func = on_done;
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	EXPECT_EQ(AIO_CANCELED, aio_cancel(self->fd, &self->s));
	ASSERT_EQ(0, lt_sem_wait(&notified));
	EXPECT_EQ(ECANCELED, notified_err);
}

/* Busy for @us microseconds: a delay finer than a sleep gives. */
static void spin_us(int us)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000 +
	       (t.tv_nsec - t0.tv_nsec) / 1000 < us);
}

/*
 * AIO_ALLDONE says the requests are done: aio_error() must then give their
 * final status, even for one that finished just before the call and whose
 * result was still on its way to the aiocb (glibc stores results under the
 * lock its aio_cancel() takes). @submit queues @cb on @fd; the cancel comes
 * 0 to 100 us later, to land at each stage of the completion.
 */
static void alldone_is_final(struct __test_metadata *_metadata, int fd,
			     int (*submit)(struct aiocb *cb), bool by_aiocb)
{
	int i, r, alldone = 0, stale = 0;
	struct aiocb cb;
	char c = 'a';

	for (i = 0; i < 1000; i++) {
		lt_prep(&cb, fd, &c, 1, 0);
		ASSERT_EQ(0, submit(&cb));
		spin_us(i % 101);
		r = aio_cancel(fd, by_aiocb ? &cb : NULL);
		if (r == AIO_ALLDONE) {
			alldone++;
			if (aio_error(&cb) == EINPROGRESS)
				stale++;
		}
		ASSERT_LE(0, lt_wait(&cb));
	}
	EXPECT_EQ(0, stale)
		TH_LOG("%d of %d AIO_ALLDONE still EINPROGRESS", stale, alldone);
}

static int write_one(struct aiocb *cb)
{
	return aio_write(cb);
}

static int fsync_one(struct aiocb *cb)
{
	return aio_fsync(O_SYNC, cb);
}

/* Device requests: the reaper may not have published the event yet. */
TEST(alldone_is_final_device)
{
	int fd;

	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	fd = lt_tmpfile("alldone", O_RDWR);
	ASSERT_LE(0, fd);
	alldone_is_final(_metadata, fd, write_one, false);
	close(fd);
}

/*
 * Helper requests: one that has run is neither queued nor running while
 * its result is published (a sync's after a barrier of its own).
 */
TEST(alldone_is_final_helper)
{
	int p[2];

	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	alldone_is_final(_metadata, p[1], fsync_one, true);
	alldone_is_final(_metadata, p[1], fsync_one, false);
	close(p[0]);
	close(p[1]);
}

TEST_HARNESS_MAIN
