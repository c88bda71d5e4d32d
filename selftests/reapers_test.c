// SPDX-License-Identifier: GPL-2.0
/*
 * Foreground and background reapers of one context, and AIOFSYNC_IOC_WAKE.
 *
 * A background reaper (AIOFSYNC_REAP_BACKGROUND) takes events only while no
 * foreground reaper is in AIOFSYNC_IOC_REAP; a foreground reaper that leaves
 * with events it did not take wakes it. AIOFSYNC_IOC_WAKE ends the wait of
 * the foreground reapers, or of the next one to come. A background reaper
 * that took events holds the foreground ones off until it calls again.
 * AIOFSYNC_IOC_REAP_TAKES reports how many foreground calls took events. Each
 * test puts the reapers in a state where the wrong behaviour gives a
 * different count or a wait that runs to its timeout, not merely a
 * different order.
 */
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <sys/mman.h>

#include "aiofsync_util.h"
#include "kselftest_harness.h"

FIXTURE(reapers)
{
	int dev;
	int fd;
	long long saved_hold_ms;
};

/* A background hold lasts the whole test, unless the test says otherwise. */
FIXTURE_SETUP(reapers)
{
	self->dev = afs_open();
	ASSERT_LE(0, self->dev);
	self->fd = afs_tmpfile("reapers", O_RDWR);
	ASSERT_LE(0, self->fd);
	self->saved_hold_ms = afs_param("bg_hold_ms");
	ASSERT_LE(0, self->saved_hold_ms);
	ASSERT_EQ(0, afs_set_param("bg_hold_ms", 60000));
}

FIXTURE_TEARDOWN(reapers)
{
	close(self->fd);
	close(self->dev);
	afs_set_param("bg_hold_ms", self->saved_hold_ms);
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

/* One reap call on a thread of its own: what it returned, and when. */
struct call {
	int dev;
	__u32 min_nr, max_nr, flags;
	__u64 timeout_ns;
	int delay_ms;		/* before the call */
	struct aiofsync_event *ev;
	int ret, err;
	long long start_ms, end_ms;
	pthread_t thread;
};

static void *call_run(void *arg)
{
	struct call *c = arg;
	struct aiofsync_event ev[4];

	usleep(c->delay_ms * 1000);
	c->start_ms = now_ms();
	c->ret = afs_reap_flags(c->dev, c->ev ? c->ev : ev, c->min_nr, c->max_nr,
			    c->timeout_ns, c->flags);
	c->err = errno;
	c->end_ms = now_ms();
	return NULL;
}

static int call_start(struct call *c)
{
	return pthread_create(&c->thread, NULL, call_run, c);
}

/* A foreground reaper of @min_nr events, waiting by the time this returns. */
static int fg_waiting(struct call *c, int dev, __u32 min_nr, __u64 timeout_ms)
{
	int ret;

	*c = (struct call){ .dev = dev, .min_nr = min_nr, .max_nr = min_nr,
			    .timeout_ns = timeout_ms * AFS_MS };
	ret = call_start(c);
	usleep(100 * 1000);
	return ret;
}

static int submit_fsync(int dev, int fd, __u64 tag)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, fd, 0, 0, NULL, tag);

	return afs_submit(dev, &r, 1);
}

/* Submit an fsync a moment later, from another thread. */
struct late_fsync {
	int dev, fd, ret;
	pthread_t thread;
};

static void *late_fsync_run(void *arg)
{
	struct late_fsync *l = arg;

	usleep(100 * 1000);
	l->ret = submit_fsync(l->dev, l->fd, 3);
	return NULL;
}

TEST_F(reapers, background_alone_takes_events)
{
	struct aiofsync_event ev;

	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 7));
	EXPECT_EQ(1, afs_reap_flags(self->dev, &ev, 1, 1, 5000 * AFS_MS,
				AIOFSYNC_REAP_BACKGROUND));
	EXPECT_EQ(7, ev.user_tag);
}

/*
 * A foreground reaper waits for two events; one is there. A background
 * reaper neither wakes for it nor takes it when its own timeout expires.
 */
TEST_F(reapers, background_leaves_events_to_waiting_foreground)
{
	struct aiofsync_event ev;
	struct call fg;

	ASSERT_EQ(0, fg_waiting(&fg, self->dev, 2, 10000));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	EXPECT_EQ(0, afs_reap_flags(self->dev, &ev, 1, 1, 300 * AFS_MS,
				AIOFSYNC_REAP_BACKGROUND));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 2));
	pthread_join(fg.thread, NULL);
	EXPECT_EQ(2, fg.ret);
}

/*
 * A foreground reaper leaves with the event still there (its copy faults
 * on a read-only page): the background reaper that slept meanwhile gets it
 * at once, not at the end of its own timeout.
 */
TEST_F(reapers, foreground_leaving_wakes_background)
{
	long page = sysconf(_SC_PAGESIZE);
	struct aiofsync_event *ro;
	struct call bg = {
		.dev = self->dev, .min_nr = 1, .max_nr = 1,
		.timeout_ns = 8000 * AFS_MS, .flags = AIOFSYNC_REAP_BACKGROUND,
	};
	struct late_fsync late = { .dev = self->dev, .fd = self->fd };
	long long fg_end;

	ro = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_EQ(0, call_start(&bg));
	usleep(50 * 1000);
	/* The fsync completes while this foreground reaper waits for two. */
	ASSERT_EQ(0, pthread_create(&late.thread, NULL, late_fsync_run, &late));
	EXPECT_EQ(-1, afs_reap_flags(self->dev, ro, 2, 2, 600 * AFS_MS, 0));
	EXPECT_EQ(EFAULT, errno);
	fg_end = now_ms();
	pthread_join(late.thread, NULL);
	ASSERT_EQ(1, late.ret);
	pthread_join(bg.thread, NULL);
	EXPECT_EQ(1, bg.ret);
	EXPECT_GT(2000, bg.end_ms - fg_end)
		TH_LOG("the background reaper returned %lld ms after the foreground left",
		       bg.end_ms - fg_end);
	munmap(ro, page);
}

/*
 * A background reaper that took an event holds the foreground reapers off
 * until it calls again: poll() does not report the event that is there, a
 * reaper that polls gets nothing, one that waits sleeps on; the background
 * reaper's next call, which itself takes nothing while the foreground one
 * waits, releases it.
 */
TEST_F(reapers, background_holding_events_holds_foreground_off)
{
	struct pollfd pfd = { .fd = self->dev, .events = POLLIN };
	struct aiofsync_event ev;
	struct call fg;

	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	ASSERT_EQ(1, afs_reap_flags(self->dev, &ev, 1, 1, 5000 * AFS_MS,
				    AIOFSYNC_REAP_BACKGROUND));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 2));
	usleep(300 * 1000);	/* the fsync of a clean file is done */
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	EXPECT_EQ(0, afs_reap(self->dev, &ev, 0, 1, 0));
	ASSERT_EQ(0, fg_waiting(&fg, self->dev, 1, 10000));
	usleep(200 * 1000);
	EXPECT_EQ(0, fg.end_ms) TH_LOG("the foreground reaper did not wait");
	EXPECT_EQ(0, afs_reap_flags(self->dev, &ev, 1, 1, 0,
				    AIOFSYNC_REAP_BACKGROUND));
	pthread_join(fg.thread, NULL);
	EXPECT_EQ(1, fg.ret);
	EXPECT_GT(2000, fg.end_ms - fg.start_ms);
}

/*
 * A background reaper that never comes back holds the foreground ones off
 * for bg_hold_ms, not for ever: a waiting one gets the next event then.
 */
TEST_F(reapers, background_hold_lapses)
{
	struct aiofsync_event ev;
	long long took;

	ASSERT_EQ(0, afs_set_param("bg_hold_ms", 300));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	ASSERT_EQ(1, afs_reap_flags(self->dev, &ev, 1, 1, 5000 * AFS_MS,
				    AIOFSYNC_REAP_BACKGROUND));
	took = now_ms();
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 2));
	EXPECT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 8000 * AFS_MS));
	EXPECT_EQ(2, ev.user_tag);
	EXPECT_LE(250, now_ms() - took);
	EXPECT_GT(4000, now_ms() - took);
}

/* bg_hold_ms 0: a background reaper holds nothing. */
TEST_F(reapers, background_hold_off)
{
	struct aiofsync_event ev;

	ASSERT_EQ(0, afs_set_param("bg_hold_ms", 0));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	ASSERT_EQ(1, afs_reap_flags(self->dev, &ev, 1, 1, 5000 * AFS_MS,
				    AIOFSYNC_REAP_BACKGROUND));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 2));
	EXPECT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(2, ev.user_tag);
}

/* A background call whose copy faulted put the events back: no hold. */
TEST_F(reapers, background_faulting_copy_holds_nothing)
{
	struct pollfd pfd = { .fd = self->dev, .events = POLLIN };
	long page = sysconf(_SC_PAGESIZE);
	struct aiofsync_event *ro, ev;

	ro = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 8));
	ASSERT_EQ(1, poll(&pfd, 1, 5000));
	EXPECT_EQ(-1, afs_reap_flags(self->dev, ro, 1, 1, 0,
				     AIOFSYNC_REAP_BACKGROUND));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(1, poll(&pfd, 1, 0));
	EXPECT_EQ(1, afs_reap(self->dev, &ev, 0, 1, 0));
	EXPECT_EQ(8, ev.user_tag);
	munmap(ro, page);
}

/* A background call that took nothing holds nothing. */
TEST_F(reapers, background_empty_call_holds_nothing)
{
	struct aiofsync_event ev;

	EXPECT_EQ(0, afs_reap_flags(self->dev, &ev, 1, 1, 0,
				    AIOFSYNC_REAP_BACKGROUND));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 4));
	EXPECT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(4, ev.user_tag);
}

/*
 * fg_takes counts the foreground calls that took events: one for a call
 * that took two, none for a call that took nothing; each call reports the
 * count with itself in it.
 */
TEST_F(reapers, fg_takes_counts_foreground_calls)
{
	struct aiofsync_event ev[2];
	__u32 takes = ~0U;

	EXPECT_EQ(0, afs_reap_takes(self->dev, ev, 0, 1, 0, 0, &takes));
	EXPECT_EQ(0, takes);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	EXPECT_EQ(1, afs_reap_takes(self->dev, ev, 1, 1, 5000 * AFS_MS, 0,
				    &takes));
	EXPECT_EQ(1, takes);
	EXPECT_EQ(0, afs_reap_takes(self->dev, ev, 0, 1, 0, 0, &takes));
	EXPECT_EQ(1, takes);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 2));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 3));
	EXPECT_EQ(2, afs_reap_takes(self->dev, ev, 2, 2, 5000 * AFS_MS, 0,
				    &takes));
	EXPECT_EQ(2, takes);
}

/*
 * A background call does not count itself, and reports the foreground
 * takes before its own; a foreground call held off by its hold takes
 * nothing and counts nothing; one after the hold counts.
 */
TEST_F(reapers, fg_takes_reported_to_background)
{
	struct aiofsync_event ev;
	__u32 takes = ~0U;

	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	ASSERT_EQ(1, afs_reap_takes(self->dev, &ev, 1, 1, 5000 * AFS_MS, 0,
				    &takes));
	ASSERT_EQ(1, takes);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 2));
	EXPECT_EQ(1, afs_reap_takes(self->dev, &ev, 1, 1, 5000 * AFS_MS,
				    AIOFSYNC_REAP_BACKGROUND, &takes));
	EXPECT_EQ(1, takes);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 3));
	usleep(300 * 1000);	/* the fsync of a clean file is done */
	EXPECT_EQ(0, afs_reap_takes(self->dev, &ev, 0, 1, 0, 0, &takes));
	EXPECT_EQ(1, takes);
	EXPECT_EQ(1, afs_reap_takes(self->dev, &ev, 0, 1, 0,
				    AIOFSYNC_REAP_BACKGROUND, &takes));
	EXPECT_EQ(3, ev.user_tag);
	EXPECT_EQ(1, takes);
	EXPECT_EQ(0, afs_reap_takes(self->dev, &ev, 0, 1, 0,
				    AIOFSYNC_REAP_BACKGROUND, &takes));
	EXPECT_EQ(1, takes);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 4));
	EXPECT_EQ(1, afs_reap_takes(self->dev, &ev, 1, 1, 5000 * AFS_MS, 0,
				    &takes));
	EXPECT_EQ(4, ev.user_tag);
	EXPECT_EQ(2, takes);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 5));
	EXPECT_EQ(1, afs_reap_takes(self->dev, &ev, 1, 1, 5000 * AFS_MS,
				    AIOFSYNC_REAP_BACKGROUND, &takes));
	EXPECT_EQ(2, takes);
}

/* The first number of AIOFSYNC_IOC_REAP writes nothing back. */
TEST_F(reapers, fg_takes_not_written_by_reap)
{
	struct aiofsync_event ev;
	struct aiofsync_reap r = {
		.min_nr = 1, .max_nr = 1, .events = (uintptr_t)&ev,
		.timeout_ns = 5000 * AFS_MS,
	};
	__u32 takes = 0;

	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	EXPECT_EQ(1, ioctl(self->dev, AIOFSYNC_IOC_REAP, &r));
	EXPECT_EQ(0, r.fg_takes);
	EXPECT_EQ(0, afs_reap_takes(self->dev, &ev, 0, 1, 0, 0, &takes));
	EXPECT_EQ(1, takes);
}

/*
 * An argument that cannot be written back: EFAULT for a call that took
 * nothing; a call that took events returns them all the same.
 */
TEST_F(reapers, fg_takes_unwritable_argument)
{
	struct pollfd pfd = { .fd = self->dev, .events = POLLIN };
	long page = sysconf(_SC_PAGESIZE);
	struct aiofsync_event ev = { 0 };
	struct aiofsync_reap *r;

	r = mmap(NULL, page, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, r);
	*r = (struct aiofsync_reap){ .min_nr = 1, .max_nr = 1,
				     .events = (uintptr_t)&ev };
	ASSERT_EQ(0, mprotect(r, page, PROT_READ));
	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_REAP_TAKES, r));
	EXPECT_EQ(EFAULT, errno);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 5));
	ASSERT_EQ(1, poll(&pfd, 1, 5000));
	EXPECT_EQ(1, ioctl(self->dev, AIOFSYNC_IOC_REAP_TAKES, r));
	EXPECT_EQ(5, ev.user_tag);
	munmap(r, page);
}

TEST_F(reapers, wake_ends_foreground_wait)
{
	long long woke;
	struct call fg;

	ASSERT_EQ(0, fg_waiting(&fg, self->dev, 1, 8000));
	woke = now_ms();
	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	pthread_join(fg.thread, NULL);
	EXPECT_EQ(0, fg.ret);
	EXPECT_GT(2000, fg.end_ms - woke);
}

/* Reap one event with @flags, waiting up to @timeout_ms; *@ms: time taken. */
static int reap_one_timed(int dev, __u64 timeout_ms, __u32 flags, long long *ms)
{
	struct aiofsync_event ev;
	long long t = now_ms();
	int ret = afs_reap_flags(dev, &ev, 1, 1, timeout_ms * AFS_MS, flags);

	*ms = now_ms() - t;
	return ret;
}

/* A wake that finds no foreground reaper ends the next one's wait, once. */
TEST_F(reapers, wake_kept_for_next_foreground)
{
	long long ms;

	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	EXPECT_EQ(0, reap_one_timed(self->dev, 8000, 0, &ms));
	EXPECT_GT(2000, ms);
	EXPECT_EQ(0, reap_one_timed(self->dev, 200, 0, &ms));
	EXPECT_LE(190, ms);
}

/* A call that would not wait does not use up the kept wake. */
TEST_F(reapers, wake_not_taken_by_nonblocking_reap)
{
	long long ms;

	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	EXPECT_EQ(0, reap_one_timed(self->dev, 0, 0, &ms));
	EXPECT_EQ(0, reap_one_timed(self->dev, 8000, 0, &ms));
	EXPECT_GT(2000, ms);
}

/* Background reapers neither end their wait on a wake nor use it up. */
TEST_F(reapers, wake_leaves_background_alone)
{
	long long ms;

	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	EXPECT_EQ(0, reap_one_timed(self->dev, 200, AIOFSYNC_REAP_BACKGROUND, &ms));
	EXPECT_LE(190, ms);
	EXPECT_EQ(0, reap_one_timed(self->dev, 8000, 0, &ms));
	EXPECT_GT(2000, ms);
}

/* The background wake: ends a background wait, even with a foreground one. */
TEST_F(reapers, wake_background_ends_background_wait)
{
	struct call fg = {
		.dev = self->dev, .min_nr = 1, .max_nr = 1,
		.timeout_ns = 1000 * AFS_MS,
	};
	struct call bg = {
		.dev = self->dev, .min_nr = 1, .max_nr = 1,
		.timeout_ns = 8000 * AFS_MS, .flags = AIOFSYNC_REAP_BACKGROUND,
	};
	long long woke;

	ASSERT_EQ(0, call_start(&fg));
	ASSERT_EQ(0, call_start(&bg));
	usleep(100 * 1000);
	woke = now_ms();
	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE,
			   AIOFSYNC_WAKE_BACKGROUND));
	pthread_join(bg.thread, NULL);
	EXPECT_EQ(0, bg.ret);
	EXPECT_GT(500, bg.end_ms - woke);
	/* The foreground reaper waits out its own timeout. */
	pthread_join(fg.thread, NULL);
	EXPECT_EQ(0, fg.ret);
	EXPECT_LE(990, fg.end_ms - fg.start_ms);
}

/* Kept for the next background reaper, once; the foreground one waits. */
TEST_F(reapers, wake_background_kept_for_next_background)
{
	long long ms;

	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE,
			   AIOFSYNC_WAKE_BACKGROUND));
	EXPECT_EQ(0, reap_one_timed(self->dev, 200, 0, &ms));
	EXPECT_LE(190, ms);
	EXPECT_EQ(0, reap_one_timed(self->dev, 8000, AIOFSYNC_REAP_BACKGROUND, &ms));
	EXPECT_GT(2000, ms);
	EXPECT_EQ(0, reap_one_timed(self->dev, 200, AIOFSYNC_REAP_BACKGROUND, &ms));
	EXPECT_LE(190, ms);
}

TEST_F(reapers, wake_unknown_flag)
{
	EXPECT_EQ(-1, ioctl(self->dev, AIOFSYNC_IOC_WAKE,
			    AIOFSYNC_WAKE_BACKGROUND << 1));
	EXPECT_EQ(EINVAL, errno);
}

/* A woken foreground reaper still returns the events that are there. */
TEST_F(reapers, wake_returns_events_present)
{
	struct aiofsync_event ev[2];
	long long t;

	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 5));
	EXPECT_EQ(1, afs_reap_flags(self->dev, ev, 1, 1, 5000 * AFS_MS,
				AIOFSYNC_REAP_BACKGROUND));
	/* Back with nothing to take: it no longer holds the foreground off. */
	EXPECT_EQ(0, afs_reap_flags(self->dev, ev, 1, 1, 0,
				    AIOFSYNC_REAP_BACKGROUND));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 6));
	usleep(200 * 1000);	/* the fsync of a clean file is done */
	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	t = now_ms();
	EXPECT_EQ(1, afs_reap(self->dev, ev, 2, 2, 8000 * AFS_MS));
	EXPECT_GT(2000, now_ms() - t);
	EXPECT_EQ(6, ev[0].user_tag);
}

TEST_HARNESS_MAIN
