// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * fork(): the child can use the library at once (its own device context,
 * reaper, helpers and callback thread, opened anew), and the parent's
 * requests are not the child's: the child neither reaps nor cancels them,
 * and libaio contexts of the parent say EINVAL there, as kernel AIO's do.
 * The parent goes on as before.
 */
#include <dirent.h>
#include <libaio.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/user.h>

#include "lib_test.h"
#include "../aiofsync.h"
#include "kselftest_harness.h"

#define BS 4096

FIXTURE(fork)
{
	int fd;
	char buf[BS];
	struct aiocb w, s;
};

FIXTURE_SETUP(fork)
{
	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	self->fd = lt_tmpfile("fork", O_RDWR);
	ASSERT_LE(0, self->fd);
	memset(self->buf, 'k', BS);
	lt_prep(&self->w, self->fd, self->buf, BS, 0);
	lt_prep(&self->s, self->fd, NULL, 0, 0);
}

FIXTURE_TEARDOWN(fork)
{
	close(self->fd);
}

/* Run @fn in a child; its exit status (0 = all good). */
static int in_child(int (*fn)(FIXTURE_DATA(fork) *), FIXTURE_DATA(fork) *self)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (!pid)
		_exit(fn(self));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* A write and the fsync behind it, from start to finish: 0 if all good. */
static int write_and_sync(FIXTURE_DATA(fork) *self)
{
	struct aiocb w, s;

	int err;

	lt_prep(&w, self->fd, self->buf, BS, BS);
	lt_prep(&s, self->fd, NULL, 0, 0);
	if (aio_write(&w) || aio_fsync(O_SYNC, &s)) {
		fprintf(stderr, "submit: %s\n", strerror(errno));
		return 1;
	}
	err = lt_wait(&s);
	if (err) {
		fprintf(stderr, "fsync: %s\n", err < 0 ? "hangs" : strerror(err));
		return 2;
	}
	err = lt_wait(&w);
	if (err || aio_return(&w) != BS) {
		fprintf(stderr, "write: %s\n", err < 0 ? "hangs" : strerror(err));
		return 3;
	}
	return 0;
}

TEST_F(fork, child_uses_library_at_once)
{
	/* The parent opened its context and threads first. */
	ASSERT_EQ(0, write_and_sync(self));
	EXPECT_EQ(0, in_child(write_and_sync, self));
	EXPECT_EQ(0, write_and_sync(self));
}

TEST_F(fork, child_first_use)
{
	EXPECT_EQ(0, in_child(write_and_sync, self));
	EXPECT_EQ(0, write_and_sync(self));
}

/* A file of the child's own. */
static int write_and_sync_own_file(FIXTURE_DATA(fork) *self)
{
	self->fd = lt_tmpfile("fork-child", O_RDWR);
	return write_and_sync(self);
}

static struct afs_stall stall;

/* In the child, the parent's stalled write stays the parent's. */
static int parent_request_not_ours(FIXTURE_DATA(fork) *self)
{
	const struct aiocb *list[1] = { &self->w };
	struct timespec ts = { 0, 200000000 };

	if (aio_error(&self->w) != EINPROGRESS)
		return 1;
	/* Nothing of ours will ever complete it. */
	if (aio_suspend(list, 1, &ts) != -1 || errno != EAGAIN)
		return 2;
	/* Our context does not know it: nothing to cancel. */
	if (aio_cancel(self->fd, NULL) != AIO_ALLDONE)
		return 3;
	/*
	 * And our own requests work meanwhile - on another file: one of the
	 * parent's would wait for its stalled write (ordering is per inode,
	 * across processes), which waits for this child to end.
	 */
	return write_and_sync_own_file(self) ? 4 : 0;
}

TEST_F(fork, parent_requests_are_not_the_childs)
{
	ASSERT_EQ(0, afs_stall_init(&stall, BS));
	self->w.aio_buf = stall.addr;
	ASSERT_EQ(0, aio_write(&self->w));
	ASSERT_EQ(0, afs_stall_wait_fault(&stall, LT_WAIT_SEC * 1000));
	ASSERT_EQ(0, aio_fsync(O_SYNC, &self->s));
	EXPECT_EQ(0, in_child(parent_request_not_ours, self));
	/* The child cancelled nothing of ours. */
	EXPECT_EQ(EINPROGRESS, aio_error(&self->s));
	ASSERT_EQ(0, afs_stall_release(&stall, 'k'));
	EXPECT_EQ(0, lt_wait(&self->s));
	EXPECT_EQ(0, lt_wait(&self->w));
	afs_stall_destroy(&stall);
}

static io_context_t parent_ctx;

static int libaio_in_child(FIXTURE_DATA(fork) *self)
{
	struct iocb io, *ios[1] = { &io };
	struct io_event ev;
	io_context_t ctx = NULL;

	io_prep_fsync(&io, self->fd);
	if (io_submit(parent_ctx, 1, ios) != -EINVAL)
		return 1;
	if (io_setup(8, &ctx) || io_submit(ctx, 1, ios) != 1)
		return 2;
	if (io_getevents(ctx, 1, 1, &ev, NULL) != 1 || ev.res != 0 ||
	    ev.obj != &io)
		return 3;
	return io_destroy(ctx) ? 4 : 0;
}

TEST_F(fork, libaio_context_not_inherited)
{
	struct iocb io, *ios[1] = { &io };
	struct io_event ev;

	ASSERT_EQ(0, io_setup(8, &parent_ctx));
	EXPECT_EQ(0, in_child(libaio_in_child, self));
	io_prep_fsync(&io, self->fd);
	ASSERT_EQ(1, io_submit(parent_ctx, 1, ios));
	ASSERT_EQ(1, io_getevents(parent_ctx, 1, 1, &ev, NULL));
	EXPECT_EQ(0, ev.res);
	EXPECT_EQ(0, io_destroy(parent_ctx));
}

/* The descriptors of the program, taken before it uses the library. */
#define MAX_FDS 1024
static bool program_fds[MAX_FDS];

static void take_program_fds(void)
{
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	int fd;

	memset(program_fds, 0, sizeof(program_fds));
	while (dir && (d = readdir(dir))) {
		fd = atoi(d->d_name);
		if (d->d_name[0] != '.' && fd != dirfd(dir) && fd < MAX_FDS)
			program_fds[fd] = true;
	}
	if (dir)
		closedir(dir);
}

/* In the child: how many descriptors the program did not open (named). */
static int library_fds_left(FIXTURE_DATA(fork) *self)
{
	char path[64], link[128];
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	ssize_t n;
	int fd, left = 0;

	(void)self;
	if (!dir)
		return 100;
	while ((d = readdir(dir))) {
		fd = atoi(d->d_name);
		if (d->d_name[0] == '.' || fd == dirfd(dir) ||
		    (fd < MAX_FDS && program_fds[fd]))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, link, sizeof(link) - 1);
		link[n < 0 ? 0 : n] = 0;
		fprintf(stderr, "child: descriptor %d (%s) left open\n", fd, link);
		left++;
	}
	closedir(dir);
	return left;
}

/*
 * Pipe reads with an eventfd, one running on a helper and one queued behind
 * it: each holds a duplicate of the eventfd. A child has none of them: they
 * are the parent's requests, which never complete there.
 */
TEST_F(fork, libaio_pipe_eventfd_not_inherited)
{
	struct iocb r[2], *ios[2] = { &r[0], &r[1] };
	struct timespec ts = { LT_WAIT_SEC, 0 };
	struct io_event ev[2];
	io_context_t ctx = NULL;
	char back[2];
	uint64_t n = 0;
	int p[2], efd, i;

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	take_program_fds();
	ASSERT_EQ(0, io_setup(8, &ctx));
	for (i = 0; i < 2; i++) {
		io_prep_pread(&r[i], p[0], &back[i], 1, 0);
		io_set_eventfd(&r[i], efd);
	}
	ASSERT_EQ(2, io_submit(ctx, 2, ios));
	ASSERT_TRUE(lt_wait_blocked_in_read(p[0]));
	EXPECT_EQ(0, in_child(library_fds_left, self));

	/* The parent's requests go on, and signal the eventfd. */
	ASSERT_EQ(2, write(p[1], "ab", 2));
	ASSERT_EQ(2, io_getevents(ctx, 2, 2, ev, &ts));
	EXPECT_EQ(1, ev[0].res);
	EXPECT_EQ(1, ev[1].res);
	ASSERT_EQ(sizeof(n), read(efd, &n, sizeof(n)));
	EXPECT_EQ(2, n);
	EXPECT_EQ(0, io_destroy(ctx));
	close(efd);
	close(p[0]);
	close(p[1]);
}

struct destroy_call {
	pthread_t thread;
	io_context_t ctx;
	int ret;
	atomic_bool returned;
};

static void *destroy_main(void *arg)
{
	struct destroy_call *d = arg;

	d->ret = io_destroy(d->ctx);
	atomic_store(&d->returned, true);
	return NULL;
}

/*
 * io_destroy() waits for a pipe read running on a helper, as the system
 * call waits for its requests; meanwhile the context's descriptor stays
 * open in the parent, and a child forked then has no copy of it.
 */
TEST_F(fork, libaio_destroyed_context_not_inherited)
{
	struct iocb r, *ios[1] = { &r };
	struct destroy_call d = { .ctx = NULL };
	int p[2];
	char c;

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	take_program_fds();
	ASSERT_EQ(0, io_setup(8, &d.ctx));
	io_prep_pread(&r, p[0], &c, 1, 0);
	ASSERT_EQ(1, io_submit(d.ctx, 1, ios));
	ASSERT_TRUE(lt_wait_blocked_in_read(p[0]));
	ASSERT_EQ(0, pthread_create(&d.thread, NULL, destroy_main, &d));
	usleep(100 * 1000);
	/* Still waiting for the read: the context is not gone yet. */
	EXPECT_FALSE(atomic_load(&d.returned));
	EXPECT_EQ(0, in_child(library_fds_left, self));
	/* The read ends, and with it the context. */
	ASSERT_EQ(1, write(p[1], "x", 1));
	pthread_join(d.thread, NULL);
	EXPECT_EQ(0, d.ret);
	EXPECT_EQ(-EINVAL, io_destroy(d.ctx));
	close(p[0]);
	close(p[1]);
}

static int pipe_in_child(FIXTURE_DATA(fork) *self)
{
	struct aiocb w;
	int p[2];

	if (pipe(p))
		return 1;
	lt_prep(&w, p[1], self->buf, 100, 0);
	if (aio_write(&w) || lt_wait(&w) || aio_return(&w) != 100)
		return 2;
	return 0;
}

/* The helper threads are gone in the child; new ones start. */
TEST_F(fork, helpers_in_child)
{
	EXPECT_EQ(0, pipe_in_child(self));
	EXPECT_EQ(0, in_child(pipe_in_child, self));
}

static sem_t called;

static void callback(union sigval v)
{
	(void)v;
	sem_post(&called);
}

static int callback_in_child(FIXTURE_DATA(fork) *self)
{
	struct timespec ts;

	sem_init(&called, 0, 0);
	self->s.aio_sigevent.sigev_notify = SIGEV_CALLBACK;
	self->s.aio_sigevent.sigev_func = callback;
	if (aio_fsync(O_SYNC, &self->s))
		return 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += LT_WAIT_SEC;
	return sem_timedwait(&called, &ts) ? 2 : 0;
}

/* The callback thread too. */
TEST_F(fork, callbacks_in_child)
{
	EXPECT_EQ(0, callback_in_child(self));
	EXPECT_EQ(0, in_child(callback_in_child, self));
}

/* Forks racing with submissions from other threads leave no child stuck. */
static atomic_bool stop;

static void *submitter(void *arg)
{
	FIXTURE_DATA(fork) *self = arg;

	while (!atomic_load(&stop))
		write_and_sync(self);
	return NULL;
}

TEST_F(fork, fork_while_busy)
{
	pthread_t t[2];
	int i;

	for (i = 0; i < 2; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, submitter, self));
	for (i = 0; i < 10; i++)
		EXPECT_EQ(0, in_child(write_and_sync_own_file, self));
	atomic_store(&stop, true);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
}

/* The system call's number, second argument and result, as traced. */
#if defined(__x86_64__)
#define LT_TRACE_REGS
#define LT_REG_NR(r)	((r).orig_rax)
#define LT_REG_ARG2(r)	((r).rsi)
#define LT_REG_RET(r)	((long)(r).rax)
#elif defined(__i386__)
#define LT_TRACE_REGS
#define LT_REG_NR(r)	((r).orig_eax)
#define LT_REG_ARG2(r)	((r).ecx)
#define LT_REG_RET(r)	((long)(r).eax)
#endif

#ifdef LT_TRACE_REGS
static volatile sig_atomic_t in_handler_child;
static volatile pid_t handler_child;

static void fork_in_handler(int sig)
{
	pid_t pid = fork();

	(void)sig;
	if (!pid)
		in_handler_child = 1;
	else
		handler_child = pid;
}

/*
 * Trace thread @tid of process @pid until it returns from
 * AIOFSYNC_IOC_REAP_TAKES with events, then send it SIGUSR1 and let it go:
 * the signal is taken as the call returns, with the events in the thread's
 * hands, not yet published. Tells @ready "r" once tracing, "n" if it may
 * not trace. 0 if all went so.
 */
static int stop_after_reap(pid_t pid, pid_t tid, int ready)
{
	struct user_regs_struct regs;
	int status, sig;

	if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD)) {
		/* Not allowed here: the test is skipped. */
		return write(ready, "n", 1) != 1;
	}
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) || write(ready, "r", 1) != 1)
		return 1;
	for (;;) {
		if (waitpid(tid, &status, __WALL) != tid || !WIFSTOPPED(status))
			return 2;
		sig = 0;
		if (WSTOPSIG(status) == (SIGTRAP | 0x80)) {
			/* At the entry of a call, the result is -ENOSYS. */
			if (ptrace(PTRACE_GETREGS, tid, 0, &regs))
				return 3;
			if (LT_REG_NR(regs) == SYS_ioctl &&
			    (unsigned long)LT_REG_ARG2(regs) ==
			    AIOFSYNC_IOC_REAP_TAKES &&
			    LT_REG_RET(regs) > 0) {
				syscall(SYS_tgkill, pid, tid, SIGUSR1);
				return ptrace(PTRACE_DETACH, tid, 0, 0) ? 4 : 0;
			}
		} else if (status >> 16 != PTRACE_EVENT_STOP) {
			sig = WSTOPSIG(status);	/* a signal: deliver it */
		}
		if (ptrace(PTRACE_SYSCALL, tid, 0, sig))
			return 5;
	}
}
#endif

/*
 * fork() while an aio_suspend() caller holds a batch it reaped from the
 * device and has not published: the batch is the parent's, and the child's
 * copy of its aiocbs must stay as they were. Made exact by a tracer and a
 * signal handler that forks: this thread is stopped as it returns from the
 * reap with the completion of its write, and forks before it publishes it;
 * the child's thread goes on from there, with the batch in its hands, and
 * then makes requests of its own.
 */
TEST_F(fork, unpublished_foreground_batch_not_the_childs)
{
#ifdef LT_TRACE_REGS
	const struct aiocb *list[1] = { &self->w };
	struct sigaction sa = { .sa_handler = fork_in_handler };
	struct timespec ts = { 2, 0 };
	struct lt_later later;
	int ready[2], status, i;
	pid_t tracer, me;
	char c;

	/* Context open, and the reaper past its first publishing. */
	ASSERT_EQ(0, write_and_sync(self));
	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	/* Yama: a child may trace us. */
	prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY);
	ASSERT_EQ(0, pipe2(ready, O_CLOEXEC));
	me = gettid();
	tracer = fork();
	ASSERT_LE(0, tracer);
	if (!tracer)
		_exit(stop_after_reap(getppid(), me, ready[1]));
	close(ready[1]);
	ASSERT_EQ(1, read(ready[0], &c, 1)) TH_LOG("the tracer failed");
	close(ready[0]);
	if (c != 'r') {
		waitpid(tracer, &status, 0);
		SKIP(return, "ptrace() is not allowed here");
	}

	ASSERT_EQ(0, afs_stall_init(&stall, BS));
	self->w.aio_buf = stall.addr;
	ASSERT_EQ(0, aio_write(&self->w));
	ASSERT_EQ(0, afs_stall_wait_fault(&stall, LT_WAIT_SEC * 1000));
	/* This thread reaps, asleep in the device until the write ends. */
	ASSERT_EQ(0, lt_release_later(&later, &stall, 'k', 200));
	for (i = 0; i < LT_WAIT_SEC / 2 && aio_error(&self->w) == EINPROGRESS; i++) {
		aio_suspend(list, 1, &ts);
		/*
		 * The child, once it has used the library: its copy of the
		 * write must still be in progress.
		 */
		if (in_handler_child)
			_exit(write_and_sync_own_file(self) ? 2 :
			      aio_error(&self->w) == EINPROGRESS ? 0 : 1);
	}

	lt_join(&later);
	ASSERT_EQ(tracer, waitpid(tracer, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status)) TH_LOG("the tracer failed");
	ASSERT_NE(0, handler_child);
	ASSERT_EQ(handler_child, waitpid(handler_child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_NE(2, WEXITSTATUS(status)) TH_LOG("the child's own requests failed");
	EXPECT_NE(1, WEXITSTATUS(status))
		TH_LOG("the child published the parent's completion");
	EXPECT_EQ(0, aio_error(&self->w));
	EXPECT_EQ(BS, aio_return(&self->w));
	afs_stall_destroy(&stall);
#else
	SKIP(return, "the tracer reads only x86 registers");
#endif
}

TEST_HARNESS_MAIN
