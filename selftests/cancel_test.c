// SPDX-License-Identifier: GPL-2.0
/*
 * Cancellation: a request that has not started completes with -ECANCELED;
 * a running one is reported as running and completes normally.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "aiofsync_util.h"
#include "kselftest_harness.h"

#define LEN	(16 * 1024)

FIXTURE(cancel)
{
	int dev;
	int a;
	struct afs_stall stall;
	long long max_active;
};

FIXTURE_SETUP(cancel)
{
	self->dev = afs_open();
	ASSERT_LE(0, self->dev);
	self->a = afs_tmpfile("a", O_RDWR);
	ASSERT_LE(0, self->a);
	ASSERT_EQ(0, afs_stall_init(&self->stall, LEN));
	self->max_active = afs_param("max_ctx_active");
	ASSERT_LT(0, self->max_active);
}

FIXTURE_TEARDOWN(cancel)
{
	afs_set_param("max_ctx_active", self->max_active);
	afs_stall_destroy(&self->stall);
	close(self->dev);
	close(self->a);
}

static int release_and_reap_write(FIXTURE_DATA(cancel) *self)
{
	struct aiofsync_event ev;

	if (afs_stall_release(&self->stall, 'z'))
		return -1;
	if (afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS) != 1)
		return -1;
	return ev.user_tag == 1 && ev.res == LEN ? 0 : -1;
}

TEST_F(cancel, queued_sync_by_tag)
{
	struct aiofsync_req f = afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 5);
	struct aiofsync_cancel c;
	struct aiofsync_event ev;
	long long cancelled = afs_stat("cancelled");
	long long flushes = afs_stat("flushes");

	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(1, afs_submit(self->dev, &f, 1));
	ASSERT_EQ(0, afs_cancel(self->dev, AIOFSYNC_CANCEL_TAG, 0, 5, &c));
	EXPECT_EQ(1, c.canceled);
	EXPECT_EQ(0, c.running);
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(5, ev.user_tag);
	EXPECT_EQ(-ECANCELED, ev.res);
	EXPECT_EQ(cancelled + 1, afs_stat("cancelled"));
	ASSERT_EQ(0, release_and_reap_write(self));
	/* The cancelled fsync never flushed. */
	EXPECT_EQ(flushes, afs_stat("flushes"));
}

TEST_F(cancel, running_write_not_cancelled)
{
	struct aiofsync_cancel c;

	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(0, afs_cancel(self->dev, AIOFSYNC_CANCEL_TAG, 0, 1, &c));
	EXPECT_EQ(0, c.canceled);
	EXPECT_EQ(1, c.running);
	EXPECT_EQ(0, release_and_reap_write(self));
}

/* A write waiting for a free slot of its context can be cancelled. */
TEST_F(cancel, pending_write)
{
	char data[4096];
	struct aiofsync_req reqs[2] = {
		afs_req(AIOFSYNC_OP_WRITE, self->a, LEN, sizeof(data), data, 2),
		afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 3),
	};
	struct aiofsync_cancel c;
	struct aiofsync_event ev[2];

	ASSERT_EQ(0, afs_set_param("max_ctx_active", 1));
	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(2, afs_submit(self->dev, reqs, 2));
	ASSERT_EQ(0, afs_cancel(self->dev, AIOFSYNC_CANCEL_TAG, 0, 2, &c));
	EXPECT_EQ(1, c.canceled);
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 2, 5000 * AFS_MS));
	EXPECT_EQ(2, ev[0].user_tag);
	EXPECT_EQ(-ECANCELED, ev[0].res);
	/* The fsync still waits for the stalled write, not for the cancelled one. */
	EXPECT_EQ(0, afs_reap(self->dev, ev, 1, 2, 200 * AFS_MS));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'p'));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 2, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(3, ev[1].user_tag);
	EXPECT_EQ(0, ev[1].res);
}

TEST_F(cancel, by_fd)
{
	int other = afs_tmpfile("other", O_RDWR);
	struct aiofsync_req reqs[3] = {
		afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 2),
		afs_req(AIOFSYNC_OP_FDATASYNC, self->a, 0, 0, NULL, 3),
		afs_req(AIOFSYNC_OP_FSYNC, other, 0, 0, NULL, 4),
	};
	struct aiofsync_cancel c;
	struct aiofsync_event ev[3];

	ASSERT_LE(0, other);
	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(3, afs_submit(self->dev, reqs, 3));
	ASSERT_EQ(0, afs_cancel(self->dev, AIOFSYNC_CANCEL_FD, self->a, 0, &c));
	EXPECT_EQ(2, c.canceled);
	EXPECT_EQ(1, c.running);
	ASSERT_EQ(3, afs_reap(self->dev, ev, 3, 3, 5000 * AFS_MS));
	EXPECT_EQ(0, release_and_reap_write(self));
	close(other);
}

TEST_F(cancel, all)
{
	struct aiofsync_req reqs[2] = {
		afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 2),
		afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 3),
	};
	struct aiofsync_cancel c;
	struct aiofsync_event ev[2];

	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(2, afs_submit(self->dev, reqs, 2));
	ASSERT_EQ(0, afs_cancel(self->dev, AIOFSYNC_CANCEL_ALL, 0, 0, &c));
	EXPECT_EQ(2, c.canceled);
	EXPECT_EQ(1, c.running);
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 2, 5000 * AFS_MS));
	EXPECT_EQ(-ECANCELED, ev[0].res);
	EXPECT_EQ(-ECANCELED, ev[1].res);
	EXPECT_EQ(0, release_and_reap_write(self));
}

struct canceller {
	int dev;
	atomic_int started;
	struct aiofsync_cancel c;
	int ret;
};

static void *cancel_everything(void *arg)
{
	struct canceller *t = arg;

	atomic_store(&t->started, 1);
	t->ret = afs_cancel(t->dev, AIOFSYNC_CANCEL_ALL, 0, 0, &t->c);
	return NULL;
}

/*
 * Two threads cancel the same requests at once. A cancel that matches
 * nothing (0 cancelled) says the requests are done: by then, every event of
 * what the other thread cancelled must be there to reap. Many syncs wait
 * behind a stalled write, so that posting their events takes a while.
 */
TEST_F(cancel, concurrent_cancel_finds_nothing_only_when_done)
{
	enum { N = 4000, ROUNDS = 20 };
	static struct aiofsync_req f[N];
	static struct aiofsync_event ev[N];
	struct aiofsync_cancel c;
	struct canceller t;
	pthread_t thread;
	unsigned int mine;
	int i, round, got;

	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	for (i = 0; i < N; i++)
		f[i] = afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 2 + i);
	for (round = 0; round < ROUNDS; round++) {
		ASSERT_EQ(N, afs_submit(self->dev, f, N));
		t.dev = self->dev;
		atomic_store(&t.started, 0);
		ASSERT_EQ(0, pthread_create(&thread, NULL, cancel_everything, &t));
		while (!atomic_load(&t.started))
			;
		mine = 0;
		do {
			ASSERT_EQ(0, afs_cancel(self->dev, AIOFSYNC_CANCEL_ALL, 0,
						0, &c));
			EXPECT_EQ(1, c.running);	/* the stalled write */
			mine += c.canceled;
		} while (c.canceled);
		got = afs_reap(self->dev, ev, 0, N, 0);
		EXPECT_EQ(N, got)
			TH_LOG("round %d: %u cancelled here, %d events there",
			       round, mine, got);
		ASSERT_EQ(0, pthread_join(thread, NULL));
		ASSERT_EQ(0, t.ret);
		EXPECT_EQ(N, t.c.canceled + mine);
		if (got < N)
			ASSERT_EQ(N - got, afs_reap(self->dev, ev, N - got,
						    N - got, 5000 * AFS_MS));
	}
	ASSERT_EQ(0, release_and_reap_write(self));
}

TEST_F(cancel, nothing_matches)
{
	struct aiofsync_cancel c;

	ASSERT_EQ(0, afs_cancel(self->dev, AIOFSYNC_CANCEL_TAG, 0, 42, &c));
	EXPECT_EQ(0, c.canceled);
	EXPECT_EQ(0, c.running);
}

TEST_F(cancel, no_selector)
{
	EXPECT_EQ(-1, afs_cancel(self->dev, 0, 0, 0, NULL));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(cancel, two_selectors)
{
	EXPECT_EQ(-1, afs_cancel(self->dev, AIOFSYNC_CANCEL_TAG | AIOFSYNC_CANCEL_FD,
				 self->a, 0, NULL));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(cancel, unknown_selector)
{
	EXPECT_EQ(-1, afs_cancel(self->dev, 0x100, 0, 0, NULL));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(cancel, tag_with_fd)
{
	EXPECT_EQ(-1, afs_cancel(self->dev, AIOFSYNC_CANCEL_TAG, self->a, 1, NULL));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(cancel, fd_with_tag)
{
	EXPECT_EQ(-1, afs_cancel(self->dev, AIOFSYNC_CANCEL_FD, self->a, 1, NULL));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(cancel, all_with_tag)
{
	EXPECT_EQ(-1, afs_cancel(self->dev, AIOFSYNC_CANCEL_ALL, 0, 1, NULL));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(cancel, bad_fd)
{
	EXPECT_EQ(-1, afs_cancel(self->dev, AIOFSYNC_CANCEL_FD, 1000000, 0, NULL));
	EXPECT_EQ(EBADF, errno);
}

TEST_F(cancel, output_fields_must_be_zero)
{
	struct aiofsync_cancel c = { .flags = AIOFSYNC_CANCEL_ALL, .canceled = 1 };

	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_CANCEL, &c));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(cancel, bad_pointer)
{
	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_CANCEL, (void *)8));
	EXPECT_EQ(EFAULT, errno);
}

TEST_HARNESS_MAIN
