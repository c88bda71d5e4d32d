// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Completion notification: SIGEV_NONE, SIGEV_SIGNAL (si_code SI_ASYNCIO,
 * si_value, our pid), SIGEV_THREAD (a detached thread, with the program's
 * attributes), SIGEV_THREAD_ID (that thread only) and IRIX's SIGEV_CALLBACK
 * (one callback at a time, in parallel with the program). Every
 * notification comes after the result is published.
 */
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>

#include "lib_test.h"
#include "../aiofsync.h"
#include "kselftest_harness.h"

#define SIG_A	(SIGRTMIN + 1)
#define SIG_B	(SIGRTMIN + 2)

FIXTURE(notify)
{
	int fd;
	char buf[512];
	struct aiocb cb;
};

FIXTURE_SETUP(notify)
{
	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	self->fd = lt_tmpfile("notify", O_RDWR);
	ASSERT_LE(0, self->fd);
	memset(self->buf, 'n', sizeof(self->buf));
	lt_prep(&self->cb, self->fd, self->buf, sizeof(self->buf), 0);
}

FIXTURE_TEARDOWN(notify)
{
	close(self->fd);
}

static sigset_t block(int sig)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return set;
}

static int wait_signal(const sigset_t *set, siginfo_t *info)
{
	struct timespec ts = { LT_WAIT_SEC, 0 };

	return sigtimedwait(set, info, &ts);
}

TEST_F(notify, sigev_signal)
{
	sigset_t set = block(SIG_A);
	siginfo_t info;

	self->cb.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
	self->cb.aio_sigevent.sigev_signo = SIG_A;
	self->cb.aio_sigevent.sigev_value.sival_int = 4242;
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->cb));
	ASSERT_EQ(SIG_A, wait_signal(&set, &info));
	EXPECT_EQ(SI_ASYNCIO, info.si_code);
	EXPECT_EQ(4242, info.si_value.sival_int);
	EXPECT_EQ(getpid(), info.si_pid);
	EXPECT_EQ(getuid(), info.si_uid);
	/* Published before the signal was sent. */
	EXPECT_EQ(0, aio_error(&self->cb));
}

TEST_F(notify, sigev_signal_for_write)
{
	sigset_t set = block(SIG_A);
	siginfo_t info;

	self->cb.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
	self->cb.aio_sigevent.sigev_signo = SIG_A;
	self->cb.aio_sigevent.sigev_value.sival_ptr = &self->cb;
	ASSERT_EQ(0, aio_write(&self->cb));
	ASSERT_EQ(SIG_A, wait_signal(&set, &info));
	EXPECT_EQ(&self->cb, info.si_value.sival_ptr);
	EXPECT_EQ(sizeof(self->buf), aio_return(&self->cb));
}

/* SIGEV_NONE, and SIGEV_SIGNAL with signal 0: nothing is sent. */
TEST_F(notify, no_signal)
{
	sigset_t set = block(SIG_A);
	struct timespec zero = { 0, 100000000 };
	siginfo_t info;

	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->cb));
	EXPECT_EQ(0, lt_wait(&self->cb));
	self->cb.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
	self->cb.aio_sigevent.sigev_signo = 0;
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->cb));
	EXPECT_EQ(0, lt_wait(&self->cb));
	EXPECT_EQ(-1, sigtimedwait(&set, &info, &zero));
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

struct thread_note {
	sem_t done;
	struct aiocb *cb;
	int value, err, detach_ret;
	pid_t tid;
	size_t stack, guard;
};

static void thread_fn(union sigval v)
{
	struct thread_note *n = v.sival_ptr;
	pthread_attr_t attr;

	n->tid = gettid_();
	n->err = aio_error(n->cb);
	/* Already detached: a second detach is refused. */
	n->detach_ret = pthread_detach(pthread_self());
	if (!pthread_getattr_np(pthread_self(), &attr)) {
		pthread_attr_getstacksize(&attr, &n->stack);
		pthread_attr_getguardsize(&attr, &n->guard);
		pthread_attr_destroy(&attr);
	}
	sem_post(&n->done);
}

TEST_F(notify, sigev_thread)
{
	struct thread_note n = { .cb = &self->cb };

	sem_init(&n.done, 0, 0);
	self->cb.aio_sigevent.sigev_notify = SIGEV_THREAD;
	self->cb.aio_sigevent.sigev_notify_function = thread_fn;
	self->cb.aio_sigevent.sigev_value.sival_ptr = &n;
	ASSERT_EQ(0, aio_fsync(O_DSYNC, &self->cb));
	ASSERT_EQ(0, lt_sem_wait(&n.done));
	EXPECT_NE(gettid_(), n.tid);
	EXPECT_EQ(0, n.err);
	EXPECT_EQ(EINVAL, n.detach_ret);
}

/*
 * The program's attributes are used; joinable ones still give a detached
 * thread. A stack and a guard no default thread has, checked exactly: a
 * thread made with the defaults (8 MiB, one page) fails. 256 KiB is also too
 * small to be served by a cached default stack (glibc reuses a cached stack
 * only up to four times the size asked for).
 */
TEST_F(notify, sigev_thread_attributes)
{
	struct thread_note n = { .cb = &self->cb };
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	pthread_attr_t attr;
	int ds;

	sem_init(&n.done, 0, 0);
	pthread_attr_init(&attr);
	ASSERT_EQ(0, pthread_attr_setstacksize(&attr, 256 << 10));
	ASSERT_EQ(0, pthread_attr_setguardsize(&attr, 3 * page));
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_JOINABLE);
	self->cb.aio_sigevent.sigev_notify = SIGEV_THREAD;
	self->cb.aio_sigevent.sigev_notify_function = thread_fn;
	self->cb.aio_sigevent.sigev_notify_attributes = &attr;
	self->cb.aio_sigevent.sigev_value.sival_ptr = &n;
	ASSERT_EQ(0, aio_write(&self->cb));
	ASSERT_EQ(0, lt_sem_wait(&n.done));
	EXPECT_EQ(256 << 10, n.stack);
	EXPECT_EQ(3 * page, n.guard);
	EXPECT_EQ(EINVAL, n.detach_ret);
	/* The attributes are still the program's, unchanged. */
	pthread_attr_getdetachstate(&attr, &ds);
	EXPECT_EQ(PTHREAD_CREATE_JOINABLE, ds);
	pthread_attr_destroy(&attr);
}

struct tid_target {
	sem_t ready, go;
	pid_t tid;
	int pending, sig;
	siginfo_t info;
};

/* Inherits SIG_B blocked; looks at its pending set only when told to. */
static void *tid_target(void *arg)
{
	struct tid_target *w = arg;
	struct timespec zero = { 0, 0 };
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIG_B);
	w->tid = gettid_();
	sem_post(&w->ready);
	lt_sem_wait(&w->go);
	sigpending(&pending);
	w->pending = sigismember(&pending, SIG_B);
	w->sig = sigtimedwait(&set, &w->info, &zero);
	return NULL;
}

/*
 * To that thread, not to the process. SIG_B stays blocked in every thread
 * and nobody waits for it, so the signal stays where it was sent: in the
 * target's own pending set, or, sent to the process, in the shared one,
 * which this thread's sigpending() shows too. A SIGEV_SIGNAL sent after the
 * request completed marks the moment the first signal was sent: the
 * notifications go out one after another, in completion order.
 */
TEST_F(notify, sigev_thread_id)
{
	struct tid_target w = { .sig = 0 };
	sigset_t set, pending;
	struct aiocb mark;
	siginfo_t info;
	pthread_t t;

	sigemptyset(&set);
	sigaddset(&set, SIG_A);
	sigaddset(&set, SIG_B);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sem_init(&w.ready, 0, 0);
	sem_init(&w.go, 0, 0);
	ASSERT_EQ(0, pthread_create(&t, NULL, tid_target, &w));
	ASSERT_EQ(0, lt_sem_wait(&w.ready));
	self->cb.aio_sigevent.sigev_notify = SIGEV_THREAD_ID;
	self->cb.aio_sigevent.sigev_signo = SIG_B;
	self->cb.aio_sigevent.sigev_notify_thread_id = w.tid;
	self->cb.aio_sigevent.sigev_value.sival_int = 7;
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->cb));
	ASSERT_EQ(0, lt_wait(&self->cb));

	lt_prep(&mark, self->fd, NULL, 0, 0);
	mark.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
	mark.aio_sigevent.sigev_signo = SIG_A;
	ASSERT_EQ(0, aio_fsync(O_SYNC, &mark));
	sigemptyset(&set);
	sigaddset(&set, SIG_A);
	ASSERT_EQ(SIG_A, wait_signal(&set, &info));

	/* Nothing for the process: not in the shared pending set. */
	sigpending(&pending);
	EXPECT_EQ(0, sigismember(&pending, SIG_B));
	sem_post(&w.go);
	pthread_join(t, NULL);
	EXPECT_EQ(1, w.pending);
	EXPECT_EQ(SIG_B, w.sig);
	EXPECT_EQ(SI_ASYNCIO, w.info.si_code);
	EXPECT_EQ(7, w.info.si_value.sival_int);
	EXPECT_EQ(getpid(), w.info.si_pid);
}

/* ---- SIGEV_CALLBACK ---- */

static struct {
	atomic_int inside, max_inside, calls;
	atomic_int bad_value;
	sem_t all_done;
	int expect;
} cbstat;

static void counting_callback(union sigval v)
{
	int now = atomic_fetch_add(&cbstat.inside, 1) + 1;
	int max = atomic_load(&cbstat.max_inside);

	while (now > max && !atomic_compare_exchange_weak(&cbstat.max_inside,
							  &max, now))
		;
	if (v.sival_int != 99)
		atomic_fetch_add(&cbstat.bad_value, 1);
	usleep(2000);	/* widen the window for an overlap */
	atomic_fetch_sub(&cbstat.inside, 1);
	if (atomic_fetch_add(&cbstat.calls, 1) + 1 == cbstat.expect)
		sem_post(&cbstat.all_done);
}

/* 32 callbacks, completing together: called one at a time, each once. */
TEST_F(notify, callback_serialized)
{
	struct aiocb cbs[32];
	int i;

	sem_init(&cbstat.all_done, 0, 0);
	cbstat.expect = 32;
	for (i = 0; i < 32; i++) {
		lt_prep(&cbs[i], self->fd, NULL, 0, 0);
		cbs[i].aio_sigevent.sigev_notify = SIGEV_CALLBACK;
		cbs[i].aio_sigevent.sigev_func = counting_callback;
		cbs[i].aio_sigevent.sigev_value.sival_int = 99;
		ASSERT_EQ(0, aio_fsync(O_DSYNC, &cbs[i]));
	}
	ASSERT_EQ(0, lt_sem_wait(&cbstat.all_done));
	EXPECT_EQ(32, atomic_load(&cbstat.calls));
	EXPECT_EQ(1, atomic_load(&cbstat.max_inside));
	EXPECT_EQ(0, atomic_load(&cbstat.bad_value));
	for (i = 0; i < 32; i++)
		EXPECT_EQ(0, aio_error(&cbs[i]));
}

static sem_t cb_entered, cb_release;
static atomic_int cb_err = -1;
static struct aiocb *cb_target;

static void blocking_callback(union sigval v)
{
	(void)v;
	cb_err = aio_error(cb_target);
	sem_post(&cb_entered);
	lt_sem_wait(&cb_release);
}

/* A callback that blocks holds up neither the caller nor completions. */
TEST_F(notify, callback_in_parallel_with_caller)
{
	struct aiocb other;

	sem_init(&cb_entered, 0, 0);
	sem_init(&cb_release, 0, 0);
	cb_target = &self->cb;
	self->cb.aio_sigevent.sigev_notify = SIGEV_CALLBACK;
	self->cb.aio_sigevent.sigev_func = blocking_callback;
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->cb));
	ASSERT_EQ(0, lt_sem_wait(&cb_entered));
	EXPECT_EQ(0, cb_err);
	/* The callback is still running: the program goes on meanwhile. */
	lt_prep(&other, self->fd, self->buf, sizeof(self->buf), 4096);
	ASSERT_EQ(0, aio_write(&other));
	EXPECT_EQ(0, lt_wait(&other));
	sem_post(&cb_release);
}

TEST_HARNESS_MAIN
