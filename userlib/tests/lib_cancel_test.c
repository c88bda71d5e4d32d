// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * aio_cancel(): a request not started is cancelled (AIO_CANCELED, and
 * aio_error() says ECANCELED as soon as the call returns), a running one is
 * not (AIO_NOTCANCELED), a finished one is AIO_ALLDONE; with a NULL aiocb,
 * every request on the descriptor. A sync held behind a stalled write is
 * the request "not started" here; the stalled write is the running one.
 */
#include <semaphore.h>
#include <sys/syscall.h>

#include "lib_test.h"
#include "../aiofsync.h"
#include "kselftest_harness.h"

#define BS 4096

FIXTURE(cancel)
{
	int fd;
	struct aiocb w, s;
	struct afs_stall stall;
	/* Syncs that fill the context (fill_context()), and how many went in. */
	struct aiocb fill[4];
	int nfill;
	long long saved_max_ctx;	/* max_ctx_requests to restore, or -1 */
};

FIXTURE_SETUP(cancel)
{
	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	self->fd = lt_tmpfile("cancel", O_RDWR);
	ASSERT_LE(0, self->fd);
	ASSERT_EQ(0, afs_stall_init(&self->stall, BS));
	lt_prep(&self->w, self->fd, self->stall.addr, BS, 0);
	lt_prep(&self->s, self->fd, NULL, 0, 0);
	self->nfill = 0;
	self->saved_max_ctx = -1;
	/* The running request: a write stalled on its buffer. */
	ASSERT_EQ(0, aio_write(&self->w));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, LT_WAIT_SEC * 1000));
}

FIXTURE_TEARDOWN(cancel)
{
	int i;

	if (self->saved_max_ctx >= 0)
		afs_set_param("max_ctx_requests", self->saved_max_ctx);
	afs_stall_release(&self->stall, 'r');
	lt_wait(&self->w);
	for (i = 0; i < self->nfill; i++)
		lt_wait(&self->fill[i]);
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

/*
 * A context of 4 requests, full: the stalled write and 3 syncs held behind
 * it, which complete only once the write does. A fourth sync is refused.
 */
static void fill_context(struct __test_metadata *_metadata,
			 FIXTURE_DATA(cancel) *self)
{
	int i, r;

	self->saved_max_ctx = afs_param("max_ctx_requests");
	ASSERT_LT(0, self->saved_max_ctx);
	ASSERT_EQ(0, afs_set_param("max_ctx_requests", 4));
	for (i = 0; i < 4; i++)
		lt_prep(&self->fill[i], self->fd, NULL, 0, 0);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, aio_fsync(O_SYNC, &self->fill[i]));
		self->nfill++;
	}
	r = aio_fsync(O_SYNC, &self->fill[3]);
	if (!r)
		self->nfill++;
	ASSERT_EQ(-1, r) TH_LOG("the context is not full");
	ASSERT_EQ(EAGAIN, errno);
}

/* What cancelling makes room for: the barrier goes in at once. */
TEST_F(cancel, full_context_room_from_the_cancel)
{
	int i;

	fill_context(_metadata, self);
	EXPECT_EQ(AIO_NOTCANCELED, aio_cancel(self->fd, NULL));
	for (i = 0; i < 3; i++)
		EXPECT_EQ(ECANCELED, aio_error(&self->fill[i]));
	EXPECT_EQ(EINPROGRESS, aio_error(&self->w));
}

struct cancel_call {
	pthread_t thread;
	int fd, ret, err;
	atomic_int tid;
	atomic_bool returned;
};

static void *cancel_main(void *arg)
{
	struct cancel_call *c = arg;

	atomic_store(&c->tid, gettid());
	c->ret = aio_cancel(c->fd, NULL);
	c->err = errno;
	atomic_store(&c->returned, true);
	return NULL;
}

/* The system call thread @tid of ours is blocked in, or -1 (running). */
static long blocked_in(pid_t tid)
{
	char path[64], line[64] = "";
	int t;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
	t = open(path, O_RDONLY | O_CLOEXEC);
	if (t < 0)
		return -1;
	if (read(t, line, sizeof(line) - 1) <= 0)
		line[0] = 0;
	close(t);
	return line[0] >= '0' && line[0] <= '9' ? strtol(line, NULL, 10) : -1;
}

/*
 * Nothing to cancel on another file, so a barrier, and the context full
 * with requests that complete only later: aio_cancel() waits for room
 * asleep on a futex (never a sleep-and-retry), and once the write is let
 * go and its completion makes room, returns AIO_ALLDONE.
 */
TEST_F(cancel, full_context_waits_for_room)
{
	struct cancel_call c = { .ret = -2 };
	int i, futex = 0, sleeps = 0;
	long nr;

	fill_context(_metadata, self);
	c.fd = lt_tmpfile("cancel-other", O_RDWR);
	ASSERT_LE(0, c.fd);
	ASSERT_EQ(0, pthread_create(&c.thread, NULL, cancel_main, &c));
	while (!atomic_load(&c.tid))
		usleep(1000);
	for (i = 0; i < 30; i++) {
		usleep(10 * 1000);
		nr = blocked_in(atomic_load(&c.tid));
		futex += nr == SYS_futex;
		sleeps += nr == SYS_nanosleep || nr == SYS_clock_nanosleep;
	}
	EXPECT_FALSE(atomic_load(&c.returned));
	EXPECT_EQ(0, sleeps) TH_LOG("aio_cancel() polls for room");
	EXPECT_LT(0, futex);
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'r'));
	pthread_join(c.thread, NULL);
	EXPECT_EQ(AIO_ALLDONE, c.ret);
	EXPECT_EQ(0, lt_wait(&self->w));
	close(c.fd);
}

/*
 * The same, but the requests never complete while aio_cancel() runs (the
 * program would end them only afterwards): -1 with EAGAIN, after a second
 * with no completion, rather than a wait without end.
 */
TEST_F(cancel, full_context_gives_up)
{
	struct timespec t0, t1;
	int other = lt_tmpfile("cancel-other", O_RDWR);
	long ms;

	ASSERT_LE(0, other);
	fill_context(_metadata, self);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EXPECT_EQ(-1, aio_cancel(other, NULL));
	EXPECT_EQ(EAGAIN, errno);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	EXPECT_LE(900, ms);
	EXPECT_GT(LT_WAIT_SEC * 1000, ms);
	/* Nothing of the others was touched. */
	EXPECT_EQ(EINPROGRESS, aio_error(&self->fill[0]));
	EXPECT_EQ(EINPROGRESS, aio_error(&self->w));
	close(other);
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
