// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * POSIX AIO on the device: results, the states aio_error() goes through,
 * aio_fsync() covering the writes queued before it and none after, and
 * aio_suspend(). "Stalled" buffers (selftests/aiofsync_util.h) hold a write
 * on the device's worker until the test lets it go, so "this write has not
 * finished" is a state the test controls.
 */
#include <pthread.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#include <dirent.h>

#include "lib_test.h"
#include "../aiofsync.h"
#include "kselftest_harness.h"

#define BS 4096

#ifdef LT_BACKGROUND_REAP_ONLY
/*
 * Built a second time as lib_posix_bgreap_test: every test again, with the
 * reaper thread publishing every completion (the library's path on a module
 * without AIOFSYNC_IOC_REAP_TAKES). Set before any test forks.
 */
static void __attribute__((constructor)) lt_background_reap_only(void)
{
	setenv("AIOFSYNC_FOREGROUND_REAP", "0", 1);
}
#endif

FIXTURE(posix)
{
	int fd;
	char buf[BS], back[BS];
	struct aiocb w, s, r;
	struct afs_stall stall;
	bool stalled;
	long long saved_active;	/* max_ctx_active to restore, or -1 */
};

FIXTURE_SETUP(posix)
{
	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	self->fd = lt_tmpfile("posix", O_RDWR);
	ASSERT_LE(0, self->fd);
	memset(self->buf, 'a', BS);
	lt_prep(&self->w, self->fd, self->buf, BS, 0);
	lt_prep(&self->s, self->fd, NULL, 0, 0);
	lt_prep(&self->r, self->fd, self->back, BS, 0);
	self->stalled = false;
	self->saved_active = -1;
}

FIXTURE_TEARDOWN(posix)
{
	if (self->stalled) {
		afs_stall_release(&self->stall, 'z');
		lt_wait(&self->w);
		afs_stall_destroy(&self->stall);
	}
	if (self->saved_active >= 0)
		afs_set_param("max_ctx_active", self->saved_active);
	close(self->fd);
}

/* Queue self->w with a buffer that blocks the device until released. */
static void start_stalled_write(struct __test_metadata *_metadata,
				FIXTURE_DATA(posix) *self)
{
	ASSERT_EQ(0, afs_stall_init(&self->stall, BS));
	self->stalled = true;
	self->w.aio_buf = self->stall.addr;
	ASSERT_EQ(0, aio_write(&self->w));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, LT_WAIT_SEC * 1000));
}

TEST_F(posix, write_then_read)
{
	ASSERT_EQ(0, aio_write(&self->w));
	ASSERT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(BS, aio_return(&self->w));
	ASSERT_EQ(0, aio_read(&self->r));
	ASSERT_EQ(0, lt_wait(&self->r));
	EXPECT_EQ(BS, aio_return(&self->r));
	EXPECT_EQ(0, memcmp(self->buf, self->back, BS));
}

TEST_F(posix, read_at_eof_returns_zero)
{
	self->r.aio_offset = 1 << 20;
	ASSERT_EQ(0, aio_read(&self->r));
	ASSERT_EQ(0, lt_wait(&self->r));
	EXPECT_EQ(0, aio_return(&self->r));
}

TEST_F(posix, einprogress_until_done)
{
	start_stalled_write(_metadata, self);
	EXPECT_EQ(EINPROGRESS, aio_error(&self->w));
	EXPECT_TRUE(lt_still_in_progress(&self->w, 200));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'b'));
	EXPECT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(BS, aio_return(&self->w));
}

/* The fsync waits for the write queued before it... */
static void fsync_waits_for_write(struct __test_metadata *_metadata,
				  FIXTURE_DATA(posix) *self, int op)
{
	start_stalled_write(_metadata, self);
	ASSERT_EQ(0, aio_fsync(op, &self->s));
	EXPECT_TRUE(lt_still_in_progress(&self->s, 300));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'c'));
	EXPECT_EQ(0, lt_wait(&self->s));
	/* Done implies the write it covers is done too. */
	EXPECT_EQ(0, aio_error(&self->w));
	EXPECT_EQ(BS, aio_return(&self->w));
	EXPECT_EQ(0, aio_return(&self->s));
}

TEST_F(posix, fsync_waits_for_earlier_write)
{
	fsync_waits_for_write(_metadata, self, O_SYNC);
}

TEST_F(posix, fdatasync_waits_for_earlier_write)
{
	fsync_waits_for_write(_metadata, self, O_DSYNC);
}

/* ...and not for a write queued after it. */
TEST_F(posix, fsync_not_held_by_later_write)
{
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	start_stalled_write(_metadata, self);
	EXPECT_EQ(0, lt_wait(&self->s));
	EXPECT_EQ(EINPROGRESS, aio_error(&self->w));
}

/* Another open file of the same inode is covered too (per inode). */
TEST_F(posix, fsync_covers_other_descriptor)
{
	int fd2 = lt_reopen(self->fd, O_RDWR);

	ASSERT_LE(0, fd2);
	start_stalled_write(_metadata, self);
	self->s.aio_fildes = fd2;
	ASSERT_EQ(0, aio_fsync(O_DSYNC, &self->s));
	EXPECT_TRUE(lt_still_in_progress(&self->s, 300));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'd'));
	EXPECT_EQ(0, lt_wait(&self->s));
	EXPECT_EQ(0, aio_error(&self->w));
	close(fd2);
}

/* aio_fsync() returns once queued, not when done. */
TEST_F(posix, fsync_returns_when_queued)
{
	start_stalled_write(_metadata, self);
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	EXPECT_EQ(EINPROGRESS, aio_error(&self->s));
}

TEST_F(posix, fsync_range)
{
	start_stalled_write(_metadata, self);
	self->s.aio_offset = 0;
	self->s.aio_nbytes = BS;
	ASSERT_EQ(0, aiofsync_fsync_range(O_DSYNC, &self->s));
	EXPECT_TRUE(lt_still_in_progress(&self->s, 200));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'e'));
	EXPECT_EQ(0, lt_wait(&self->s));
	EXPECT_EQ(0, aio_return(&self->s));
}

/* A file that cannot be synced: EINVAL, found when it runs, as glibc. */
TEST_F(posix, fsync_unsyncable_file)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	ASSERT_LE(0, fd);
	self->s.aio_fildes = fd;
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	EXPECT_EQ(EINVAL, lt_wait(&self->s));
	EXPECT_EQ(-1, aio_return(&self->s));
	close(fd);
}

/* A buffer outside user space: EFAULT in aio_error(), as glibc. */
TEST_F(posix, write_bad_buffer)
{
	self->w.aio_buf = (void *)-4096L;
	ASSERT_EQ(0, aio_write(&self->w));
	EXPECT_EQ(EFAULT, lt_wait(&self->w));
	EXPECT_EQ(-1, aio_return(&self->w));
}

TEST_F(posix, largefile_names)
{
	struct aiocb64 *w = (struct aiocb64 *)&self->w, *s = (struct aiocb64 *)&self->s;

	ASSERT_EQ(0, aio_write64(w));
	ASSERT_EQ(0, aio_fsync64(O_SYNC, s));
	{
		const struct aiocb64 *list[1] = { s };

		while (aio_error64(s) == EINPROGRESS)
			ASSERT_EQ(0, aio_suspend64(list, 1, NULL));
	}
	EXPECT_EQ(0, aio_error64(w));
	EXPECT_EQ(BS, aio_return64(w));
	EXPECT_EQ(0, aio_return64(s));
	EXPECT_EQ(AIO_ALLDONE, aio_cancel64(self->fd, w));
}

TEST_F(posix, reqprio_max_accepted)
{
	self->w.aio_reqprio = AIO_PRIO_DELTA_MAX;
	ASSERT_EQ(0, aio_write(&self->w));
	EXPECT_EQ(0, lt_wait(&self->w));
}

TEST_F(posix, suspend_waits_for_completion)
{
	const struct aiocb *list[2] = { NULL, &self->w };
	struct lt_later l;

	start_stalled_write(_metadata, self);
	ASSERT_EQ(0, lt_release_later(&l, &self->stall, 'f', 200));
	EXPECT_EQ(0, aio_suspend(list, 2, NULL));
	EXPECT_EQ(0, aio_error(&self->w));
	lt_join(&l);
}

/* The threads of this process other than @self: at most @max, into @out. */
static int other_threads(pid_t self_tid, pid_t *out, int max)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *d;
	int n = 0;
	pid_t tid;

	if (!dir)
		return -1;
	while ((d = readdir(dir)) && n < max) {
		tid = atoi(d->d_name);
		if (tid && tid != self_tid)
			out[n++] = tid;
	}
	closedir(dir);
	return n;
}

/* The voluntary context switches of the threads @only (0-terminated). */
static long only_switches(const pid_t *only)
{
	char path[64], line[128];
	long total = 0, v;
	FILE *f;
	int i;

	for (i = 0; only[i]; i++) {
		snprintf(path, sizeof(path), "/proc/self/task/%d/status", only[i]);
		f = fopen(path, "r");
		if (!f)
			return -1;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
				total += v;
		fclose(f);
	}
	return total;
}

/*
 * N rounds of aio_suspend() on a sync whose completion comes while the
 * caller is surely in aio_suspend(): the sync waits for a write whose buffer
 * stalls the device until another thread releases it 100 ms later. Returns
 * how many times the library's own threads woke meanwhile.
 */
static long suspend_rounds(struct __test_metadata *_metadata,
			   FIXTURE_DATA(posix) *self, int rounds)
{
	const struct aiocb *list[1] = { &self->s };
	pid_t lib[9] = { 0 };
	struct afs_stall stall;
	struct lt_later l;
	long start;
	int i;

	/* The first request starts the library's threads, the only others. */
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	ASSERT_EQ(0, lt_wait(&self->s));
	ASSERT_LT(0, other_threads(gettid(), lib, 8))
		TH_LOG("the library started no thread");
	start = only_switches(lib);
	for (i = 0; i < rounds; i++) {
		ASSERT_EQ(0, afs_stall_init(&stall, BS));
		self->w.aio_buf = stall.addr;
		ASSERT_EQ(0, aio_write(&self->w));
		ASSERT_EQ(0, afs_stall_wait_fault(&stall, LT_WAIT_SEC * 1000));
		ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
		ASSERT_EQ(0, lt_release_later(&l, &stall, 'r', 100));
		ASSERT_EQ(0, aio_suspend(list, 1, NULL));
		lt_join(&l);
		ASSERT_EQ(0, aio_error(&self->s));
		ASSERT_EQ(0, aio_error(&self->w));
		afs_stall_destroy(&stall);
	}
	return only_switches(lib) - start;
}

#ifndef LT_BACKGROUND_REAP_ONLY
/*
 * The caller of aio_suspend() reaps its own completions: the library's own
 * threads sleep through request after request, where through its reaper
 * thread they would wake for each.
 */
TEST_F(posix, suspend_reaps_own_completion)
{
	long woke = suspend_rounds(_metadata, self, 5);

	EXPECT_GT(5, woke)
		TH_LOG("the library's threads woke %ld times in 5 rounds", woke);
}
#else
/*
 * With AIOFSYNC_FOREGROUND_REAP=0 the caller does not reap: the reaper
 * thread wakes for every completion and publishes it, and the caller's
 * watch ends its wait.
 */
TEST_F(posix, suspend_leaves_reaping_to_thread)
{
	long woke = suspend_rounds(_metadata, self, 5);

	EXPECT_LE(5, woke)
		TH_LOG("the library's threads woke %ld times in 5 rounds", woke);
}
#endif

TEST_F(posix, suspend_timeout)
{
	const struct aiocb *list[1] = { &self->w };
	struct timespec ts = { 0, 50000000 };

	start_stalled_write(_metadata, self);
	EXPECT_EQ(-1, aio_suspend(list, 1, &ts));
	EXPECT_EQ(EAGAIN, errno);
}

/*
 * Only a signal ends the wait for a stalled write with no timeout: one
 * every 100 ms until the call returns, as one that came before the wait
 * started would be lost.
 */
TEST_F(posix, suspend_eintr)
{
	const struct aiocb *list[1] = { &self->w };
	struct afs_signaler sig;
	int ret, err;

	ASSERT_EQ(0, lt_catch(SIGUSR1));
	start_stalled_write(_metadata, self);
	ASSERT_EQ(0, afs_signaler_start(&sig, SIGUSR1, 100));
	ret = aio_suspend(list, 1, NULL);
	err = errno;
	EXPECT_LE(1, afs_signaler_stop(&sig));
	EXPECT_EQ(-1, ret);
	EXPECT_EQ(EINTR, err);
}

/* A thread in aio_suspend() on one request, and its own thread id. */
struct suspender {
	const struct aiocb *cb;
	pid_t tid;
	int ret;
	sem_t started, done;
};

static void *suspend_main(void *arg)
{
	struct suspender *sp = arg;
	const struct aiocb *list[1] = { sp->cb };

	sp->tid = gettid();
	sem_post(&sp->started);
	while ((sp->ret = aio_suspend(list, 1, NULL)) && errno == EINTR)
		;
	sem_post(&sp->done);
	return NULL;
}

/* The thread's voluntary context switches so far (its sleeps), or -1. */
static long voluntary_switches(pid_t tid)
{
	char path[300], line[128];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/*
 * Threads suspended on their request sleep through the completions of other
 * requests, but for one: the caller that reaps the device for everybody,
 * which the reaper thread would otherwise be woken for. 50 completions of
 * other requests woke each of the two 50 times when every completion woke
 * every waiter.
 */
TEST_F(posix, suspend_not_woken_by_other_requests)
{
	struct suspender sp[2] = { { .cb = &self->w }, { .cb = &self->w } };
	int other = lt_tmpfile("posix-other", O_RDWR);
	long before[2], woken[2];
	struct aiocb cb;
	pthread_t t[2];
	int i, k;

	ASSERT_LE(0, other);
	start_stalled_write(_metadata, self);
	for (k = 0; k < 2; k++) {
		ASSERT_EQ(0, sem_init(&sp[k].started, 0, 0));
		ASSERT_EQ(0, sem_init(&sp[k].done, 0, 0));
		ASSERT_EQ(0, pthread_create(&t[k], NULL, suspend_main, &sp[k]));
		ASSERT_EQ(0, lt_sem_wait(&sp[k].started));
	}
	usleep(100 * 1000);	/* let them sleep */
	for (k = 0; k < 2; k++) {
		before[k] = voluntary_switches(sp[k].tid);
		ASSERT_LE(0, before[k]);
	}
	for (i = 0; i < 50; i++) {
		lt_prep(&cb, other, NULL, 0, 0);
		ASSERT_EQ(0, aio_fsync(O_DSYNC, &cb));
		ASSERT_EQ(0, lt_wait(&cb));
		ASSERT_EQ(0, aio_return(&cb));
	}
	for (k = 0; k < 2; k++)
		woken[k] = voluntary_switches(sp[k].tid) - before[k];
	EXPECT_GE(5, woken[0] < woken[1] ? woken[0] : woken[1])
		TH_LOG("woken %ld and %ld times by 50 other completions",
		       woken[0], woken[1]);
	for (k = 0; k < 2; k++)
		EXPECT_NE(0, sem_trywait(&sp[k].done))
			TH_LOG("aio_suspend() returned early");

	afs_stall_release(&self->stall, 'n');
	for (k = 0; k < 2; k++) {
		ASSERT_EQ(0, lt_sem_wait(&sp[k].done))
			TH_LOG("not woken by its own request");
		pthread_join(t[k], NULL);
		EXPECT_EQ(0, sp[k].ret);
	}
	EXPECT_EQ(0, lt_wait(&self->w));
	afs_stall_destroy(&self->stall);
	self->stalled = false;
	close(other);
}

/* A thread asleep in aio_suspend() on the stalled self->w. */
static void start_suspender(struct __test_metadata *_metadata,
			    FIXTURE_DATA(posix) *self, struct suspender *sp,
			    pthread_t *t)
{
	sp->cb = &self->w;
	ASSERT_EQ(0, sem_init(&sp->started, 0, 0));
	ASSERT_EQ(0, sem_init(&sp->done, 0, 0));
	start_stalled_write(_metadata, self);
	ASSERT_EQ(0, pthread_create(t, NULL, suspend_main, sp));
	ASSERT_EQ(0, lt_sem_wait(&sp->started));
	usleep(100 * 1000);	/* asleep in the device, reaping */
}

/* It is still waiting; release self->w: it returns 0. */
static void end_suspender(struct __test_metadata *_metadata,
			  FIXTURE_DATA(posix) *self, struct suspender *sp,
			  pthread_t t)
{
	EXPECT_NE(0, sem_trywait(&sp->done)) TH_LOG("aio_suspend() returned early");
	afs_stall_release(&self->stall, 'n');
	ASSERT_EQ(0, lt_sem_wait(&sp->done));
	pthread_join(t, NULL);
	EXPECT_EQ(0, sp->ret);
	EXPECT_EQ(0, lt_wait(&self->w));
	afs_stall_destroy(&self->stall);
	self->stalled = false;
}

struct handed_note {
	const struct aiocb *cb;
	int err;
	sem_t done;
};

static void handed_note_fn(union sigval v)
{
	struct handed_note *n = v.sival_ptr;

	n->err = aio_error(n->cb);
	sem_post(&n->done);
}

/*
 * The thread in aio_suspend() reaps the device for everybody, but may not
 * start a SIGEV_THREAD thread (aio_suspend() is async-signal-safe): it hands
 * that completion to the reaper thread, which publishes it and notifies.
 */
TEST_F(posix, suspended_reaper_hands_over_thread_notification)
{
	int other = lt_tmpfile("posix-other", O_RDWR);
	struct handed_note n = { .err = -1 };
	struct suspender sp;
	struct aiocb cb;
	pthread_t t;

	ASSERT_LE(0, other);
	ASSERT_EQ(0, sem_init(&n.done, 0, 0));
	start_suspender(_metadata, self, &sp, &t);

	lt_prep(&cb, other, NULL, 0, 0);
	n.cb = &cb;
	cb.aio_sigevent.sigev_notify = SIGEV_THREAD;
	cb.aio_sigevent.sigev_notify_function = handed_note_fn;
	cb.aio_sigevent.sigev_value.sival_ptr = &n;
	ASSERT_EQ(0, aio_fsync(O_DSYNC, &cb));
	ASSERT_EQ(0, lt_sem_wait(&n.done)) TH_LOG("no notification");
	EXPECT_EQ(0, n.err);
	EXPECT_EQ(0, aio_return(&cb));
	end_suspender(_metadata, self, &sp, t);
	close(other);
}

/*
 * aio_cancel() while a thread in aio_suspend() reaps the device: the
 * cancelled request reads ECANCELED as soon as aio_cancel() returns (its
 * barrier stops the reaping caller first), and the caller goes on waiting.
 */
TEST_F(posix, cancel_while_suspended_caller_reaps)
{
	struct suspender sp;
	pthread_t t;

	start_suspender(_metadata, self, &sp, &t);
	/* Held behind the stalled write: not started, so it can be cancelled. */
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	EXPECT_EQ(AIO_CANCELED, aio_cancel(self->fd, &self->s));
	EXPECT_EQ(ECANCELED, aio_error(&self->s));
	end_suspender(_metadata, self, &sp, t);
}

/*
 * More threads suspended on one request than the library keeps watches for
 * (128): those past the limit wait the other way; all of them wake.
 */
TEST_F(posix, suspend_many_threads_one_request)
{
	enum { N = 150 };
	struct suspender *sp = calloc(N, sizeof(*sp));
	pthread_t *t = calloc(N, sizeof(*t));
	int i;

	ASSERT_TRUE(sp && t);
	start_stalled_write(_metadata, self);
	for (i = 0; i < N; i++) {
		sp[i].cb = &self->w;
		ASSERT_EQ(0, sem_init(&sp[i].started, 0, 0));
		ASSERT_EQ(0, sem_init(&sp[i].done, 0, 0));
		ASSERT_EQ(0, pthread_create(&t[i], NULL, suspend_main, &sp[i]));
	}
	for (i = 0; i < N; i++)
		ASSERT_EQ(0, lt_sem_wait(&sp[i].started));
	usleep(200 * 1000);	/* let them sleep */
	for (i = 0; i < N; i++)
		EXPECT_NE(0, sem_trywait(&sp[i].done)) TH_LOG("thread %d returned early", i);

	afs_stall_release(&self->stall, 'm');
	for (i = 0; i < N; i++) {
		ASSERT_EQ(0, lt_sem_wait(&sp[i].done)) TH_LOG("thread %d not woken", i);
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, sp[i].ret);
	}
	EXPECT_EQ(0, lt_wait(&self->w));
	afs_stall_destroy(&self->stall);
	self->stalled = false;
	free(sp);
	free(t);
}

/* A list longer than a watch takes (64) waits the other way, and wakes. */
TEST_F(posix, suspend_long_list)
{
	const struct aiocb *list[100];
	struct lt_later l;
	int i;

	start_stalled_write(_metadata, self);
	for (i = 0; i < 100; i++)
		list[i] = i % 3 ? &self->w : NULL;
	ASSERT_EQ(0, lt_release_later(&l, &self->stall, 'g', 200));
	EXPECT_EQ(0, aio_suspend(list, 100, NULL));
	EXPECT_EQ(0, aio_error(&self->w));
	lt_join(&l);
	afs_stall_destroy(&self->stall);
	self->stalled = false;
}

/* aio_error() of a finished request is a load: no system call at all. */
TEST_F(posix, error_and_return_make_no_syscall)
{
	struct sock_filter trap_all[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),	/* nr */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_exit_group, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog prog = { 4, trap_all };
	int status, i, ok;
	pid_t pid;

	ASSERT_EQ(0, aio_write(&self->w));
	ASSERT_EQ(0, lt_wait(&self->w));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		/* Any system call but exit_group kills the process. */
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
			_exit(2);
		ok = 1;
		for (i = 0; i < 1000; i++)
			ok &= aio_error(&self->w) == 0;
		ok &= aio_return(&self->w) == BS;
		syscall(__NR_exit_group, ok ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status)) TH_LOG("killed by signal %d: a system call",
					       WTERMSIG(status));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		SKIP(return, "no seccomp filters in this kernel (CONFIG_SECCOMP_FILTER)");
	EXPECT_EQ(0, WEXITSTATUS(status));
}

/* Open the process's device context: one request, waited for. */
static void open_context(struct __test_metadata *_metadata,
			 FIXTURE_DATA(posix) *self)
{
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	ASSERT_EQ(0, lt_wait(&self->s));
}

/*
 * Once the context is open, the device checks the descriptor in the submit
 * (AIOFSYNC_REQ_NO_APPEND): the errors are still glibc's, at call time.
 */
TEST_F(posix, ebadf_at_call_time_once_open)
{
	int rdonly = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int wronly = open("/dev/null", O_WRONLY | O_CLOEXEC);
	int opath = open(".", O_PATH | O_CLOEXEC);
	struct aiocb cb;

	ASSERT_LE(0, rdonly);
	ASSERT_LE(0, wronly);
	ASSERT_LE(0, opath);
	open_context(_metadata, self);

	lt_prep(&cb, -1, self->buf, BS, 0);
	EXPECT_EQ(-1, aio_write(&cb));
	EXPECT_EQ(EBADF, errno);
	lt_prep(&cb, 1000000, NULL, 0, 0);
	EXPECT_EQ(-1, aio_fsync(O_DSYNC, &cb));
	EXPECT_EQ(EBADF, errno);
	lt_prep(&cb, rdonly, self->buf, BS, 0);
	EXPECT_EQ(-1, aio_write(&cb));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, aio_fsync(O_SYNC, &cb));
	EXPECT_EQ(EBADF, errno);
	lt_prep(&cb, wronly, self->back, BS, 0);
	EXPECT_EQ(-1, aio_read(&cb));
	EXPECT_EQ(EBADF, errno);
	lt_prep(&cb, opath, NULL, 0, 0);
	EXPECT_EQ(-1, aio_fsync(O_SYNC, &cb));
	EXPECT_EQ(EBADF, errno);
	close(opath);
	close(wronly);
	close(rdonly);
}

/*
 * Once the context is open, a write and a sync are one system call each:
 * with fcntl() failing on this thread (a seccomp filter), they still work.
 */
TEST_F(posix, submit_makes_no_fcntl_once_open)
{
	struct sock_filter no_fcntl[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),	/* nr */
#ifdef __NR_fcntl64
		/* What a 32-bit glibc's fcntl() calls. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fcntl64, 1, 0),
#endif
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fcntl, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		sizeof(no_fcntl) / sizeof(no_fcntl[0]), no_fcntl
	};

	open_context(_metadata, self);
	/* This thread only: the reaper thread is not filtered. */
	ASSERT_EQ(0, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		SKIP(return, "no seccomp filters in this kernel (CONFIG_SECCOMP_FILTER)");
	ASSERT_EQ(-1, fcntl(self->fd, F_GETFL));
	ASSERT_EQ(EPERM, errno);

	ASSERT_EQ(0, aio_write(&self->w));
	ASSERT_EQ(0, aio_fsync(O_DSYNC, &self->s));
	EXPECT_EQ(0, lt_wait(&self->s));
	EXPECT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(BS, aio_return(&self->w));
	ASSERT_EQ(0, aio_read(&self->r));
	EXPECT_EQ(0, lt_wait(&self->r));
	EXPECT_EQ(0, memcmp(self->buf, self->back, BS));
}

struct hammer {
	int fd, id, bad;
};

/* Writes and fsyncs from several threads at once, each checking its own. */
static void *hammer(void *arg)
{
	struct hammer *h = arg;
	struct aiocb cbs[32], sync;
	char buf[32][512];
	int i;

	for (i = 0; i < 32; i++) {
		memset(buf[i], 'A' + h->id, sizeof(buf[i]));
		lt_prep(&cbs[i], h->fd, buf[i], sizeof(buf[i]),
			(off_t)(h->id * 32 + i) * 512);
		if (aio_write(&cbs[i]))
			h->bad++;
	}
	lt_prep(&sync, h->fd, NULL, 0, 0);
	if (aio_fsync(O_DSYNC, &sync))
		h->bad++;
	for (i = 0; i < 32; i++)
		if (lt_wait(&cbs[i]) || aio_return(&cbs[i]) != 512)
			h->bad++;
	if (lt_wait(&sync) || aio_return(&sync))
		h->bad++;
	return NULL;
}

TEST_F(posix, threads)
{
	struct hammer h[8];
	pthread_t t[8];
	char c;
	int i;

	for (i = 0; i < 8; i++) {
		h[i] = (struct hammer){ self->fd, i, 0 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, hammer, &h[i]));
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, h[i].bad);
	}
	for (i = 0; i < 8 * 32; i++) {
		ASSERT_EQ(1, pread(self->fd, &c, 1, (off_t)i * 512 + 100));
		EXPECT_EQ('A' + i / 32, c);
	}
}

/*
 * aio_reqprio reaches the device: with one execution slot, taken by a
 * stalled write, the waiting write of priority 0 runs before the one of
 * priority 20 queued ahead of it.
 */
TEST_F(posix, reqprio_orders_waiting_writes)
{
	struct aiocb late, early, *got;

	self->saved_active = afs_param("max_ctx_active");
	ASSERT_LT(0, self->saved_active);
	ASSERT_EQ(0, afs_set_param("max_ctx_active", 1));
	start_stalled_write(_metadata, self);
	lt_prep(&late, self->fd, self->buf, 512, 2 * BS);
	late.aio_reqprio = AIO_PRIO_DELTA_MAX;
	ASSERT_EQ(0, aio_write(&late));
	lt_prep(&early, self->fd, self->buf, 512, 3 * BS);
	early.aio_reqprio = 0;
	ASSERT_EQ(0, aio_write(&early));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'p'));
	/* aio_waitcomplete() hands completions out oldest first. */
	ASSERT_EQ(BS, aio_waitcomplete(&got, NULL));
	EXPECT_EQ(&self->w, got);
	ASSERT_EQ(512, aio_waitcomplete(&got, NULL));
	EXPECT_EQ(&early, got);
	ASSERT_EQ(512, aio_waitcomplete(&got, NULL));
	EXPECT_EQ(&late, got);
}

/*
 * aio_return() on a request in progress: -1 and EINPROGRESS (glibc returns
 * the field; POSIX leaves it undefined), and nothing is claimed: the result
 * is still there for aio_waitcomplete() and aio_return() once it is done.
 */
TEST_F(posix, aio_return_in_flight)
{
	struct timespec zero = { 0, 0 };
	struct aiocb *got = NULL;

	start_stalled_write(_metadata, self);
	errno = 0;
	EXPECT_EQ(-1, aio_return(&self->w));
	EXPECT_EQ(EINPROGRESS, errno);
	EXPECT_EQ(EINPROGRESS, aio_error(&self->w));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'i'));
	ASSERT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(BS, aio_waitcomplete(&got, &zero));
	EXPECT_EQ(&self->w, got);
	EXPECT_EQ(BS, aio_return(&self->w));
}

/*
 * lio_listio() when the device is full: -1 and EAGAIN; the elements it
 * queued run, the others say EAGAIN in aio_error() and -1 in aio_return().
 */
TEST_F(posix, lio_listio_eagain)
{
	long long old = afs_param("max_ctx_requests");
	struct aiocb cbs[6], *list[6];
	int i, ret, queued;

	ASSERT_LT(0, old);
	/* One write at a time: the queued ones wait behind the stalled one. */
	self->saved_active = afs_param("max_ctx_active");
	ASSERT_LT(0, self->saved_active);
	ASSERT_EQ(0, afs_set_param("max_ctx_active", 1));
	start_stalled_write(_metadata, self);
	for (i = 0; i < 6; i++) {
		lt_prep(&cbs[i], self->fd, NULL, 0, 0);
		cbs[i].aio_lio_opcode = LIO_WRITE;
		cbs[i].aio_buf = self->buf;
		cbs[i].aio_nbytes = 512;
		cbs[i].aio_offset = BS + i * 512;
		list[i] = &cbs[i];
	}
	ASSERT_EQ(0, afs_set_param("max_ctx_requests", 3));
	errno = 0;
	ret = lio_listio(LIO_NOWAIT, list, 6, NULL);
	EXPECT_EQ(0, afs_set_param("max_ctx_requests", old));
	EXPECT_EQ(-1, ret);
	EXPECT_EQ(EAGAIN, errno);
	/* With the stalled write, 3 in the context: 2 queued, 4 refused. */
	for (queued = 0; queued < 6; queued++)
		if (aio_error(&cbs[queued]) != EINPROGRESS)
			break;
	EXPECT_EQ(2, queued);
	for (i = queued; i < 6; i++) {
		EXPECT_EQ(EAGAIN, aio_error(&cbs[i]));
		EXPECT_EQ(-1, aio_return(&cbs[i]));
	}
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'l'));
	for (i = 0; i < queued; i++) {
		EXPECT_EQ(0, lt_wait(&cbs[i]));
		EXPECT_EQ(512, aio_return(&cbs[i]));
	}
}

/* The device's EAGAIN (context full) is aio_write()'s EAGAIN. */
TEST_F(posix, eagain_when_device_full)
{
	long long old = afs_param("max_ctx_requests");
	struct aiocb more[4];
	int i, ret = 0;

	ASSERT_LT(0, old);
	start_stalled_write(_metadata, self);
	ASSERT_EQ(0, afs_set_param("max_ctx_requests", 3));
	for (i = 0; i < 4 && !ret; i++) {
		lt_prep(&more[i], self->fd, NULL, 0, 0);
		ret = aio_fsync(O_SYNC, &more[i]);
	}
	EXPECT_EQ(-1, ret);
	EXPECT_EQ(EAGAIN, errno);
	ASSERT_EQ(0, afs_set_param("max_ctx_requests", old));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'g'));
	while (--i > 0)
		EXPECT_EQ(0, lt_wait(&more[i - 1]));
}

TEST_HARNESS_MAIN
