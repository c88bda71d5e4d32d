// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The library's parts that need no device, tested from the inside (linked
 * with libaiofsync.a): the helper pool of the fallback (order per
 * descriptor, parallelism across descriptors, cancellation, fork), the
 * aio_waitcomplete() records, reading caller memory without SIGSEGV, the
 * index stack, deadlines, and the sigevent checks.
 */
#include <sys/mman.h>

#include "lib_test.h"
#include "internal.h"
#include "kselftest_harness.h"

/* ---- fallback pool ---- */

struct done_log {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t order[64];
	long res[64];
	int n;
};

static struct done_log dlog = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void log_done(struct afs_fb_req *req)
{
	pthread_mutex_lock(&dlog.lock);
	dlog.order[dlog.n] = req->tag;
	dlog.res[dlog.n] = req->res;
	dlog.n++;
	pthread_cond_broadcast(&dlog.cond);
	pthread_mutex_unlock(&dlog.lock);
}

/* Wait until *@count (guarded by dlog.lock) reaches @n. */
static int wait_count(const int *count, int n)
{
	struct timespec until;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += LT_WAIT_SEC;
	pthread_mutex_lock(&dlog.lock);
	while (*count < n && !ret)
		ret = pthread_cond_timedwait(&dlog.cond, &dlog.lock, &until);
	pthread_mutex_unlock(&dlog.lock);
	return ret;
}

static int wait_done(int n)
{
	return wait_count(&dlog.n, n);
}

/* The result logged for @tag, or 1 (no request returns it here) if none. */
static long res_of(uint64_t tag)
{
	long res = 1;
	int i;

	pthread_mutex_lock(&dlog.lock);
	for (i = 0; i < dlog.n; i++)
		if (dlog.order[i] == tag)
			res = dlog.res[i];
	pthread_mutex_unlock(&dlog.lock);
	return res;
}

static struct afs_fb_req *fb_req(int fd, uint32_t op, void *buf, size_t len,
				 uint64_t tag)
{
	struct afs_fb_req *r = calloc(1, sizeof(*r));

	r->fd = fd;
	r->opcode = op;
	r->buf = buf;
	r->len = len;
	r->tag = tag;
	r->owner = &dlog;
	r->done = log_done;
	return r;
}

TEST(fallback_runs_in_order_per_descriptor)
{
	char chunk[16][8], got[16 * 8];
	int p[2], i;

	ASSERT_EQ(0, pipe(p));
	for (i = 0; i < 16; i++) {
		memset(chunk[i], 'a' + i, 8);
		ASSERT_EQ(0, afs_fb_submit(fb_req(p[1], AIOFSYNC_OP_WRITE,
						  chunk[i], 8, i)));
	}
	ASSERT_EQ(0, wait_done(16));
	for (i = 0; i < 16; i++) {
		/* Completions in submission order, too. */
		EXPECT_EQ(i, dlog.order[i]);
		EXPECT_EQ(8, dlog.res[i]);
	}
	ASSERT_EQ(sizeof(got), read(p[0], got, sizeof(got)));
	for (i = 0; i < 16; i++)
		EXPECT_EQ('a' + i, got[i * 8]);
}

TEST(fallback_descriptors_in_parallel)
{
	int p[2], q[2];
	char c;

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, pipe(q));
	/* Blocks until we write to p. */
	ASSERT_EQ(0, afs_fb_submit(fb_req(p[0], AIOFSYNC_OP_READ, &c, 1, 1)));
	ASSERT_EQ(0, afs_fb_submit(fb_req(q[1], AIOFSYNC_OP_WRITE, "x", 1, 2)));
	ASSERT_EQ(0, wait_done(1));
	EXPECT_EQ(2, dlog.order[0]);
	ASSERT_EQ(1, write(p[1], "y", 1));
	ASSERT_EQ(0, wait_done(2));
	EXPECT_EQ(1, dlog.order[1]);
	EXPECT_EQ('y', c);
}

TEST(fallback_system_call_errors)
{
	int p[2];

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, afs_fb_submit(fb_req(p[1], AIOFSYNC_OP_FSYNC, NULL, 0, 1)));
	ASSERT_EQ(0, afs_fb_submit(fb_req(-1, AIOFSYNC_OP_WRITE, "x", 1, 2)));
	ASSERT_EQ(0, afs_fb_submit(fb_req(p[1], AIOFSYNC_OP_WRITE,
					  (void *)-4096L, 1, 3)));
	ASSERT_EQ(0, wait_done(3));
	/* Descriptors run in parallel: completions may come in any order. */
	EXPECT_EQ(-EINVAL, res_of(1));
	EXPECT_EQ(-EBADF, res_of(2));
	EXPECT_EQ(-EFAULT, res_of(3));
}

TEST(fallback_cancel)
{
	unsigned int canceled, running;
	int p[2];
	char c;

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, afs_fb_submit(fb_req(p[0], AIOFSYNC_OP_READ, &c, 1, 1)));
	ASSERT_TRUE(lt_wait_blocked_in_read(p[0]));
	ASSERT_EQ(0, afs_fb_submit(fb_req(p[0], AIOFSYNC_OP_READ, &c, 1, 2)));
	ASSERT_EQ(0, afs_fb_submit(fb_req(p[0], AIOFSYNC_OP_READ, &c, 1, 3)));
	afs_fb_cancel(&dlog, p[0], 3, false, &canceled, &running);
	EXPECT_EQ(1, canceled);
	EXPECT_EQ(0, running);
	ASSERT_EQ(0, wait_done(1));
	EXPECT_EQ(3, dlog.order[0]);
	EXPECT_EQ(-ECANCELED, dlog.res[0]);
	/* Another owner's requests are not ours to cancel. */
	afs_fb_cancel(&canceled, -1, 0, true, &canceled, &running);
	EXPECT_EQ(0, canceled);
	afs_fb_cancel(&dlog, -1, 0, true, &canceled, &running);
	EXPECT_EQ(1, canceled);
	EXPECT_EQ(1, running);
	ASSERT_EQ(1, write(p[1], "z", 1));
	ASSERT_EQ(0, wait_done(3));
	EXPECT_EQ(2, dlog.order[1]);
	EXPECT_EQ(1, dlog.order[2]);
	EXPECT_EQ(1, dlog.res[2]);
}

/* In a child, the parent's queued requests are gone and helpers restart. */
TEST(fallback_after_fork)
{
	int p[2], q[2], status;
	char c;
	pid_t pid;

#ifdef __SANITIZE_ADDRESS__
	/*
	 * GCC 12's AddressSanitizer allocator takes no lock around fork(): a
	 * child forked while a helper allocates (one starting up) can hang in
	 * calloc() (seen about 1 run in 10). glibc's malloc is fork-safe.
	 */
	SKIP(return, "AddressSanitizer's allocator is not fork-safe");
#endif
	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, pipe(q));
	ASSERT_EQ(0, afs_fb_submit(fb_req(p[0], AIOFSYNC_OP_READ, &c, 1, 1)));
	ASSERT_EQ(0, afs_fb_submit(fb_req(p[0], AIOFSYNC_OP_READ, &c, 1, 2)));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		unsigned int canceled, running;

		afs_fb_cancel(&dlog, -1, 0, true, &canceled, &running);
		if (canceled || running)
			_exit(1);
		dlog.n = 0;
		afs_fb_submit(fb_req(q[1], AIOFSYNC_OP_WRITE, "c", 1, 9));
		_exit(wait_done(1) || dlog.order[0] != 9 ? 2 : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	/* 0 only for an exit with 0: a child killed by a signal is not. */
	EXPECT_EQ(0, status) TH_LOG("the child ended with status %#x", status);
	ASSERT_EQ(2, write(p[1], "ab", 2));
	ASSERT_EQ(0, wait_done(2));
}

/*
 * A child releases its copies of the parent's requests (their memory, the
 * descriptors they hold): queued, running, and in done() at the fork.
 */
static int released;	/* guarded by dlog.lock */
static int gate[2], in_done[2];

static void count_release(struct afs_fb_req *req)
{
	pthread_mutex_lock(&dlog.lock);
	released++;
	pthread_cond_broadcast(&dlog.cond);
	pthread_mutex_unlock(&dlog.lock);
	free(req);
}

/* Tells that it runs, then waits at the gate. */
static void gated_done(struct afs_fb_req *req)
{
	char c;

	if (write(in_done[1], "d", 1) != 1 || read(gate[0], &c, 1) != 1)
		abort();
	log_done(req);
}

TEST(fallback_fork_releases)
{
	struct afs_fb_req *r[3];
	int p[2], q[2], status, i;
	char c, buf[2];
	pid_t pid;

	ASSERT_EQ(0, pipe(p));
	ASSERT_EQ(0, pipe(q));
	ASSERT_EQ(0, pipe(gate));
	ASSERT_EQ(0, pipe(in_done));
	dlog.n = 0;
	r[0] = fb_req(p[0], AIOFSYNC_OP_READ, &buf[0], 1, 1);	/* runs */
	r[1] = fb_req(p[0], AIOFSYNC_OP_READ, &buf[1], 1, 2);	/* queued */
	r[2] = fb_req(q[1], AIOFSYNC_OP_WRITE, "w", 1, 3);	/* in done() */
	r[2]->done = gated_done;
	for (i = 0; i < 3; i++) {
		r[i]->release = count_release;
		ASSERT_EQ(0, afs_fb_submit(r[i]));
	}
	ASSERT_TRUE(lt_wait_blocked_in_read(p[0]));
	ASSERT_EQ(1, read(in_done[0], &c, 1));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(released);	/* in the atfork handler, one thread */
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(3, WEXITSTATUS(status));
	/* The parent's go on, and are released once, after done(). */
	pthread_mutex_lock(&dlog.lock);
	EXPECT_EQ(0, released);
	pthread_mutex_unlock(&dlog.lock);
	ASSERT_EQ(1, write(gate[1], "g", 1));
	ASSERT_EQ(2, write(p[1], "ab", 2));
	ASSERT_EQ(0, wait_done(3));
	ASSERT_EQ(0, wait_count(&released, 3));
}

/* ---- aio_waitcomplete records ---- */

TEST(waitcomplete_record_and_forget)
{
	struct aiocb a, b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	afs_wc_record(&a, 10, 0);
	afs_wc_record(&b, -1, EIO);
	EXPECT_NE(0, afs_priv(&a)->wc_ref);
	afs_wc_forget(&a);
	EXPECT_EQ(0, afs_priv(&a)->wc_ref);
	/* Forgetting twice, or garbage, is harmless. */
	afs_wc_forget(&a);
	memset(afs_priv(&b), 0xff, sizeof(struct afs_priv));
	afs_wc_forget(&b);
}

/* ---- usercopy ---- */

TEST(copy_in_readable)
{
	char src[64] = "hello", dst[64] = "";
	struct iovec d = { dst, sizeof(dst) }, s = { src, sizeof(src) };

	EXPECT_EQ(sizeof(src), afs_copy_in(&d, &s, 1));
	EXPECT_STREQ("hello", dst);
}

TEST(copy_in_faults)
{
	char dst[2][16], ok[16] = "ok";
	void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	struct iovec d[2] = { { dst[0], 16 }, { dst[1], 16 } };
	struct iovec s[2] = { { ok, 16 }, { none, 16 } };

	ASSERT_NE(MAP_FAILED, none);
	/* Stops at the first unreadable segment: 16 bytes, not 32. */
	EXPECT_EQ(16, afs_copy_in(d, s, 2));
	s[0].iov_base = NULL;
	EXPECT_EQ(0, afs_copy_in(d, s, 1));
	munmap(none, 4096);
}

/* More segments than process_vm_readv() takes at once (IOV_MAX). */
TEST(copy_in_past_iov_max)
{
	enum { N = 3000, EARLY = 500, BAD = 2500 };
	static struct iovec d[N], s[N];
	static char dst[N], src[N];
	void *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	int i;

	ASSERT_NE(MAP_FAILED, none);
	for (i = 0; i < N; i++) {
		src[i] = (char)i;
		d[i] = (struct iovec){ &dst[i], 1 };
		s[i] = (struct iovec){ &src[i], 1 };
	}
	EXPECT_EQ(N, afs_copy_in(d, s, N));
	EXPECT_EQ(0, memcmp(dst, src, N));
	/* Stops at the first unreadable one, in a later part too... */
	s[BAD].iov_base = none;
	EXPECT_EQ(BAD, afs_copy_in(d, s, N));
	/* ...and in the first, the parts after it unread. */
	s[EARLY].iov_base = none;
	EXPECT_EQ(EARLY, afs_copy_in(d, s, N));
	munmap(none, 4096);
}

/* ---- index stack ---- */

TEST(idxstack)
{
	static _Atomic uint32_t next[8];
	struct afs_idxstack st = { 0 };
	uint32_t i;

	EXPECT_EQ(0, afs_idxstack_pop(&st, next));
	for (i = 1; i <= 7; i++)
		afs_idxstack_push(&st, next, i);
	for (i = 7; i >= 1; i--)
		EXPECT_EQ(i, afs_idxstack_pop(&st, next));
	EXPECT_EQ(0, afs_idxstack_pop(&st, next));
}

struct churn {
	struct afs_idxstack *st;
	_Atomic uint32_t *next;
	atomic_int *owner;
	int bad;
};

/* Many threads popping and pushing: an index is never held twice. */
static void *churn(void *arg)
{
	struct churn *c = arg;
	uint32_t idx;
	int i;

	for (i = 0; i < 100000; i++) {
		idx = afs_idxstack_pop(c->st, c->next);
		if (!idx)
			continue;
		if (atomic_fetch_add(&c->owner[idx], 1) != 0)
			c->bad++;
		atomic_fetch_sub(&c->owner[idx], 1);
		afs_idxstack_push(c->st, c->next, idx);
	}
	return NULL;
}

TEST(idxstack_threads)
{
	static _Atomic uint32_t next[17];
	static atomic_int owner[17];
	struct afs_idxstack st = { 0 };
	struct churn c[4];
	pthread_t t[4];
	uint32_t i;

	for (i = 1; i <= 16; i++)
		afs_idxstack_push(&st, next, i);
	for (i = 0; i < 4; i++) {
		c[i] = (struct churn){ &st, next, owner, 0 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, churn, &c[i]));
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, c[i].bad);
	}
	for (i = 0; i < 16; i++)
		EXPECT_NE(0, afs_idxstack_pop(&st, next));
	EXPECT_EQ(0, afs_idxstack_pop(&st, next));
}

/* ---- deadlines and sigevents ---- */

/*
 * Time left on a deadline an hour away (whatever a loaded host took since),
 * never more than the hour; none on one already passed, nor on one that
 * passed while the test slept past it.
 */
TEST(deadline)
{
	struct timespec hour = { 3600, 0 }, rel = { 0, 30000000 }, zero = { 0, 0 };
	struct timespec left, bad = { 1, -1 };
	struct afs_deadline d;

	EXPECT_EQ(0, afs_deadline_init(&d, NULL));
	EXPECT_TRUE(d.forever);
	EXPECT_EQ(-EINVAL, afs_deadline_init(&d, &bad));

	ASSERT_EQ(0, afs_deadline_init(&d, &hour));
	EXPECT_FALSE(d.forever);
	EXPECT_TRUE(afs_deadline_left(&d, &left));
	EXPECT_GE(3600, left.tv_sec);
	EXPECT_TRUE(left.tv_sec < 3600 || left.tv_nsec == 0);
	EXPECT_LE(0, left.tv_nsec);
	EXPECT_GT(1000000000L, left.tv_nsec);

	ASSERT_EQ(0, afs_deadline_init(&d, &zero));
	EXPECT_FALSE(afs_deadline_left(&d, &left));

	ASSERT_EQ(0, afs_deadline_init(&d, &rel));
	usleep(40000);
	EXPECT_FALSE(afs_deadline_left(&d, &left));
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

TEST(completion_wait_times_out)
{
	struct timespec rel = { 0, 20000000 };
	struct afs_deadline d;

	ASSERT_EQ(0, afs_deadline_init(&d, &rel));
	EXPECT_EQ(-EAGAIN, afs_completion_wait(never, NULL, &d, false));
}

TEST(sigev_check)
{
	struct sigevent sev;

	memset(&sev, 0, sizeof(sev));
	EXPECT_EQ(0, afs_sigev_check(&sev));	/* SIGEV_SIGNAL, signal 0 */
	sev.sigev_notify = SIGEV_NONE;
	EXPECT_EQ(0, afs_sigev_check(&sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = NSIG;
	EXPECT_EQ(EINVAL, afs_sigev_check(&sev));
	sev.sigev_notify = 0x100;	/* SIGEV_CALLBACK without function */
	EXPECT_EQ(EINVAL, afs_sigev_check(&sev));
	sev.sigev_notify = 3;
	EXPECT_EQ(EINVAL, afs_sigev_check(&sev));
}

TEST_HARNESS_MAIN
