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
 * different count or a wait that does not end, not merely a different
 * order. Nothing is timed but lower bounds: a wait that must end has no
 * timeout, and the test gives up on it only after WAIT_MS (or the harness
 * does); a reaper is known to wait when /proc shows it asleep in the ioctl,
 * an event to be there by poll() or by its eventfd.
 */
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <sys/eventfd.h>
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

/*
 * How long a test waits for what must happen (an fsync of a clean file to
 * complete, a woken reaper to return) before it gives up: a bound for a
 * hang, far beyond any delay of a loaded host, and below the harness's 30 s.
 */
#define WAIT_MS		20000

/* One reap call on a thread of its own: what it returned. */
struct call {
	int dev;
	__u32 min_nr, max_nr, flags;
	__u64 timeout_ns;
	struct aiofsync_event *ev;
	int ret, err;
	pid_t tid;		/* set before the call */
	int returned;		/* set after it */
	pthread_t thread;
};

static void *call_run(void *arg)
{
	struct call *c = arg;
	struct aiofsync_event ev[4];

	__atomic_store_n(&c->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	c->ret = afs_reap_flags(c->dev, c->ev ? c->ev : ev, c->min_nr, c->max_nr,
			    c->timeout_ns, c->flags);
	c->err = errno;
	__atomic_store_n(&c->returned, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int call_start(struct call *c)
{
	return pthread_create(&c->thread, NULL, call_run, c);
}

static bool call_returned(struct call *c)
{
	return __atomic_load_n(&c->returned, __ATOMIC_ACQUIRE);
}

/*
 * Wait until @c's reaper sleeps in AIOFSYNC_IOC_REAP: 0; -1 if its call
 * returned instead (it never waited, or its wait ended), or after WAIT_MS.
 */
static int call_blocked(struct call *c)
{
	pid_t tid;
	int i;

	for (i = 0; !(tid = __atomic_load_n(&c->tid, __ATOMIC_ACQUIRE)); i++) {
		if (i == WAIT_MS / 10)
			return -1;
		usleep(10000);
	}
	return afs_wait_blocked_in_ioctl(tid, c->dev, AIOFSYNC_IOC_REAP,
					 &c->returned, WAIT_MS);
}

/*
 * Join @c's thread: 0 once its call has returned; -1 if it is still in it
 * after WAIT_MS (a wake-up that never came). Then the caller ASSERTs: the
 * test process ends, and the thread with it.
 */
static int call_join(struct call *c)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_MS / 1000;
	return pthread_timedjoin_np(c->thread, NULL, &ts) ? -1 : 0;
}

/*
 * A foreground reaper of @min_nr events with no timeout, waiting in the
 * ioctl by the time this returns 0: -1 if it returned instead.
 */
static int fg_waiting(struct call *c, int dev, __u32 min_nr)
{
	*c = (struct call){ .dev = dev, .min_nr = min_nr, .max_nr = min_nr,
			    .timeout_ns = AIOFSYNC_TIMEOUT_INFINITE };
	if (call_start(c))
		return -1;
	return call_blocked(c);
}

static int submit_fsync(int dev, int fd, __u64 tag)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, fd, 0, 0, NULL, tag);

	return afs_submit(dev, &r, 1);
}

/*
 * An fsync that signals eventfd @efd once its event is there to reap
 * (AIOFSYNC_REQ_EVENTFD): how a test knows it is there while a background
 * hold keeps poll() from saying so.
 */
static int submit_fsync_efd(int dev, int fd, __u64 tag, int efd)
{
	struct aiofsync_req r = afs_req(AIOFSYNC_OP_FSYNC, fd, 0, 0, NULL, tag);

	r.flags = AIOFSYNC_REQ_EVENTFD;
	r.resfd = (__u32)efd;
	return afs_submit(dev, &r, 1);
}

/* Wait up to WAIT_MS for eventfd @efd to be signalled; reset it. 0 or -1. */
static int efd_wait(int efd)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	eventfd_t v;

	if (poll(&p, 1, WAIT_MS) != 1)
		return -1;
	return eventfd_read(efd, &v);
}

/* Wait up to WAIT_MS for an event a foreground reaper may take: 0 or -1. */
static int ctx_readable(int dev)
{
	struct pollfd p = { .fd = dev, .events = POLLIN };

	return poll(&p, 1, WAIT_MS) == 1 ? 0 : -1;
}

/*
 * Once thread @waiter sleeps in AIOFSYNC_IOC_REAP, an fsync from another
 * thread; once its event is there, a wake for the foreground reapers.
 * @ret: 0, or the step that failed (each is done all the same, so that the
 * waiter is never left in its wait).
 */
struct late_fsync {
	int dev, fd, ret;
	pid_t waiter;
	pthread_t thread;
};

static void *late_fsync_run(void *arg)
{
	struct late_fsync *l = arg;

	if (afs_wait_blocked_in_ioctl(l->waiter, l->dev, AIOFSYNC_IOC_REAP,
				      NULL, WAIT_MS))
		l->ret = 1;
	if (submit_fsync(l->dev, l->fd, 3) != 1)
		l->ret = l->ret ?: 2;
	if (ctx_readable(l->dev))
		l->ret = l->ret ?: 3;
	if (ioctl(l->dev, AIOFSYNC_IOC_WAKE, 0))
		l->ret = l->ret ?: 4;
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

	ASSERT_EQ(0, fg_waiting(&fg, self->dev, 2))
		TH_LOG("the foreground reaper did not wait");
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	/* The event is there before the background reaper comes. */
	ASSERT_EQ(0, ctx_readable(self->dev));
	EXPECT_EQ(0, afs_reap_flags(self->dev, &ev, 1, 1, 300 * AFS_MS,
				AIOFSYNC_REAP_BACKGROUND));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 2));
	ASSERT_EQ(0, call_join(&fg))
		TH_LOG("the foreground reaper never got its two events");
	EXPECT_EQ(2, fg.ret);
}

/*
 * A foreground reaper leaves with the event still there (a wake ends its
 * wait, and its copy faults on a read-only page): the background reaper
 * that slept meanwhile, with no timeout, gets it; nothing but the
 * foreground reaper's leaving can wake it, as the event came while the
 * foreground one waited.
 */
TEST_F(reapers, foreground_leaving_wakes_background)
{
	long page = sysconf(_SC_PAGESIZE);
	struct aiofsync_event *ro;
	struct call bg = {
		.dev = self->dev, .min_nr = 1, .max_nr = 1,
		.timeout_ns = AIOFSYNC_TIMEOUT_INFINITE,
		.flags = AIOFSYNC_REAP_BACKGROUND,
	};
	struct late_fsync late = {
		.dev = self->dev, .fd = self->fd,
		.waiter = (pid_t)syscall(SYS_gettid),
	};

	ro = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_EQ(0, call_start(&bg));
	ASSERT_EQ(0, call_blocked(&bg));
	/* The fsync completes while this foreground reaper waits for two. */
	ASSERT_EQ(0, pthread_create(&late.thread, NULL, late_fsync_run, &late));
	EXPECT_EQ(-1, afs_reap_flags(self->dev, ro, 2, 2,
				     AIOFSYNC_TIMEOUT_INFINITE, 0));
	EXPECT_EQ(EFAULT, errno);
	pthread_join(late.thread, NULL);
	ASSERT_EQ(0, late.ret);
	ASSERT_EQ(0, call_join(&bg))
		TH_LOG("the foreground reaper left without waking the background one");
	EXPECT_EQ(1, bg.ret);
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
	int efd = eventfd(0, EFD_CLOEXEC);

	ASSERT_LE(0, efd);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	ASSERT_EQ(1, afs_reap_flags(self->dev, &ev, 1, 1, WAIT_MS * AFS_MS,
				    AIOFSYNC_REAP_BACKGROUND));
	ASSERT_EQ(1, submit_fsync_efd(self->dev, self->fd, 2, efd));
	ASSERT_EQ(0, efd_wait(efd));	/* its event is there */
	EXPECT_EQ(0, poll(&pfd, 1, 0));
	EXPECT_EQ(0, afs_reap(self->dev, &ev, 0, 1, 0));
	ASSERT_EQ(0, fg_waiting(&fg, self->dev, 1))
		TH_LOG("the foreground reaper did not wait");
	/* Time for a wrong wake-up to end its wait (the hold lasts 60 s). */
	usleep(200 * 1000);
	EXPECT_FALSE(call_returned(&fg)) TH_LOG("the foreground reaper did not wait");
	EXPECT_EQ(0, afs_reap_flags(self->dev, &ev, 1, 1, 0,
				    AIOFSYNC_REAP_BACKGROUND));
	/* Well before the hold's 60 s, which would also let it go. */
	ASSERT_EQ(0, call_join(&fg))
		TH_LOG("the background call did not let the foreground reaper go");
	EXPECT_EQ(1, fg.ret);
	close(efd);
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
	/* The event is there: the background call takes it at once. */
	ASSERT_EQ(0, ctx_readable(self->dev));
	/* Before the call, so before its hold starts. */
	took = now_ms();
	ASSERT_EQ(1, afs_reap_flags(self->dev, &ev, 1, 1, WAIT_MS * AFS_MS,
				    AIOFSYNC_REAP_BACKGROUND));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 2));
	/* A hold that never lapses leaves this call with nothing. */
	EXPECT_EQ(1, afs_reap(self->dev, &ev, 1, 1, WAIT_MS * AFS_MS));
	EXPECT_EQ(2, ev.user_tag);
	/* Not before the hold's 300 ms (less a tick) were over. */
	EXPECT_LE(250, now_ms() - took);
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
	int efd = eventfd(0, EFD_CLOEXEC);

	ASSERT_LE(0, efd);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 1));
	ASSERT_EQ(1, afs_reap_takes(self->dev, &ev, 1, 1, 5000 * AFS_MS, 0,
				    &takes));
	ASSERT_EQ(1, takes);
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 2));
	EXPECT_EQ(1, afs_reap_takes(self->dev, &ev, 1, 1, 5000 * AFS_MS,
				    AIOFSYNC_REAP_BACKGROUND, &takes));
	EXPECT_EQ(1, takes);
	ASSERT_EQ(1, submit_fsync_efd(self->dev, self->fd, 3, efd));
	ASSERT_EQ(0, efd_wait(efd));	/* its event is there */
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
	close(efd);
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

/* A reaper with no timeout: only the wake can end its wait. */
TEST_F(reapers, wake_ends_foreground_wait)
{
	struct call fg;

	ASSERT_EQ(0, fg_waiting(&fg, self->dev, 1));
	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	ASSERT_EQ(0, call_join(&fg)) TH_LOG("the wake did not end the wait");
	EXPECT_EQ(0, fg.ret);
}

/* Waits with no timeout: a wake that does not end one is a hang. */
#define FOREVER		AIOFSYNC_TIMEOUT_INFINITE

/*
 * Reap one event with @flags, waiting up to @timeout_ms (or FOREVER);
 * *@ms: time taken.
 */
static int reap_one_timed(int dev, __u64 timeout_ms, __u32 flags, long long *ms)
{
	struct aiofsync_event ev;
	long long t = now_ms();
	int ret = afs_reap_flags(dev, &ev, 1, 1, timeout_ms == FOREVER ? FOREVER :
				 timeout_ms * AFS_MS, flags);

	*ms = now_ms() - t;
	return ret;
}

/* A wake that finds no foreground reaper ends the next one's wait, once. */
TEST_F(reapers, wake_kept_for_next_foreground)
{
	long long ms;

	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	EXPECT_EQ(0, reap_one_timed(self->dev, FOREVER, 0, &ms));
	EXPECT_EQ(0, reap_one_timed(self->dev, 200, 0, &ms));
	EXPECT_LE(190, ms);
}

/* A call that would not wait does not use up the kept wake. */
TEST_F(reapers, wake_not_taken_by_nonblocking_reap)
{
	long long ms;

	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	EXPECT_EQ(0, reap_one_timed(self->dev, 0, 0, &ms));
	EXPECT_EQ(0, reap_one_timed(self->dev, FOREVER, 0, &ms));
}

/* Background reapers neither end their wait on a wake nor use it up. */
TEST_F(reapers, wake_leaves_background_alone)
{
	long long ms;

	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	EXPECT_EQ(0, reap_one_timed(self->dev, 200, AIOFSYNC_REAP_BACKGROUND, &ms));
	EXPECT_LE(190, ms);
	EXPECT_EQ(0, reap_one_timed(self->dev, FOREVER, 0, &ms));
}

/*
 * The background wake: ends a background wait, even with a foreground one,
 * and not the foreground one's. Neither has a timeout.
 */
TEST_F(reapers, wake_background_ends_background_wait)
{
	struct call fg = {
		.dev = self->dev, .min_nr = 1, .max_nr = 1,
		.timeout_ns = AIOFSYNC_TIMEOUT_INFINITE,
	};
	struct call bg = {
		.dev = self->dev, .min_nr = 1, .max_nr = 1,
		.timeout_ns = AIOFSYNC_TIMEOUT_INFINITE,
		.flags = AIOFSYNC_REAP_BACKGROUND,
	};

	ASSERT_EQ(0, call_start(&fg));
	ASSERT_EQ(0, call_start(&bg));
	ASSERT_EQ(0, call_blocked(&fg));
	ASSERT_EQ(0, call_blocked(&bg));
	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE,
			   AIOFSYNC_WAKE_BACKGROUND));
	ASSERT_EQ(0, call_join(&bg)) TH_LOG("the wake did not end the wait");
	EXPECT_EQ(0, bg.ret);
	/*
	 * The foreground reaper sleeps on. Had the wake ended its wait, it
	 * would have been woken before the ioctl returned, and could not go
	 * back to sleep in this call: it would return.
	 */
	EXPECT_EQ(0, call_blocked(&fg))
		TH_LOG("the background wake ended the foreground wait");
	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	ASSERT_EQ(0, call_join(&fg));
	EXPECT_EQ(0, fg.ret);
}

/* Kept for the next background reaper, once; the foreground one waits. */
TEST_F(reapers, wake_background_kept_for_next_background)
{
	long long ms;

	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE,
			   AIOFSYNC_WAKE_BACKGROUND));
	EXPECT_EQ(0, reap_one_timed(self->dev, 200, 0, &ms));
	EXPECT_LE(190, ms);
	EXPECT_EQ(0, reap_one_timed(self->dev, FOREVER,
				    AIOFSYNC_REAP_BACKGROUND, &ms));
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

	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 5));
	EXPECT_EQ(1, afs_reap_flags(self->dev, ev, 1, 1, 5000 * AFS_MS,
				AIOFSYNC_REAP_BACKGROUND));
	/* Back with nothing to take: it no longer holds the foreground off. */
	EXPECT_EQ(0, afs_reap_flags(self->dev, ev, 1, 1, 0,
				    AIOFSYNC_REAP_BACKGROUND));
	ASSERT_EQ(1, submit_fsync(self->dev, self->fd, 6));
	/* Its event is there, and a foreground reaper may take it. */
	ASSERT_EQ(0, ctx_readable(self->dev));
	ASSERT_EQ(0, ioctl(self->dev, AIOFSYNC_IOC_WAKE, 0));
	/* Only the kept wake ends this wait for two, with the one there. */
	EXPECT_EQ(1, afs_reap(self->dev, ev, 2, 2, AIOFSYNC_TIMEOUT_INFINITE));
	EXPECT_EQ(6, ev[0].user_tag);
}

TEST_HARNESS_MAIN
