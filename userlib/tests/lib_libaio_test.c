// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The libaio API on the device, written against <libaio.h> and its inline
 * helpers: results in struct io_event, io_fsync() covering the requests on
 * the file queued before it and none after, callbacks through io_queue_run,
 * eventfds, cancellation, the -errno of each error path, and -EFAULT (not
 * SIGSEGV) for iocb arrays the program cannot read.
 */
#include <libaio.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "lib_test.h"
#include "kselftest_harness.h"

/* In libaio.so.1, but not declared by <libaio.h>. */
extern int io_queue_wait(io_context_t ctx, struct timespec *timeout);

#define BS 4096

FIXTURE(la)
{
	io_context_t ctx;
	int fd;
	char buf[BS], back[BS];
	struct iocb w, s, r;
	struct iocb *ios[3];
	struct afs_stall stall;
	bool stalled;
	long long saved_max_ctx;	/* max_ctx_requests to restore, or -1 */
};

FIXTURE_SETUP(la)
{
	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	self->ctx = NULL;
	ASSERT_EQ(0, io_setup(64, &self->ctx));
	self->fd = lt_tmpfile("libaio", O_RDWR);
	ASSERT_LE(0, self->fd);
	memset(self->buf, 'l', BS);
	io_prep_pwrite(&self->w, self->fd, self->buf, BS, 0);
	io_prep_fsync(&self->s, self->fd);
	io_prep_pread(&self->r, self->fd, self->back, BS, 0);
	self->ios[0] = &self->w;
	self->ios[1] = &self->s;
	self->ios[2] = &self->r;
	self->stalled = false;
	self->saved_max_ctx = -1;
}

FIXTURE_TEARDOWN(la)
{
	if (self->saved_max_ctx >= 0)
		afs_set_param("max_ctx_requests", self->saved_max_ctx);
	if (self->stalled)
		afs_stall_release(&self->stall, 'z');
	io_destroy(self->ctx);
	if (self->stalled)
		afs_stall_destroy(&self->stall);
	close(self->fd);
}

static struct timespec long_wait = { LT_WAIT_SEC, 0 };

/* Reap exactly @n events into @ev. */
static int reap(FIXTURE_DATA(la) *self, struct io_event *ev, int n)
{
	int got = 0, ret;

	while (got < n) {
		ret = io_getevents(self->ctx, n - got, n - got, ev + got, &long_wait);
		if (ret <= 0)
			return ret ? ret : -ETIMEDOUT;
		got += ret;
	}
	return got;
}

static void stall_write(struct __test_metadata *_metadata,
			FIXTURE_DATA(la) *self)
{
	ASSERT_EQ(0, afs_stall_init(&self->stall, BS));
	self->stalled = true;
	self->w.u.c.buf = self->stall.addr;
	ASSERT_EQ(1, io_submit(self->ctx, 1, self->ios));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, LT_WAIT_SEC * 1000));
}

TEST_F(la, write_and_read_events)
{
	struct io_event ev;

	self->w.data = (void *)0x1234;
	ASSERT_EQ(1, io_submit(self->ctx, 1, self->ios));
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ((void *)0x1234, ev.data);
	EXPECT_EQ(&self->w, ev.obj);
	EXPECT_EQ(BS, ev.res);
	EXPECT_EQ(0, ev.res2);
	ASSERT_EQ(1, io_submit(self->ctx, 1, &self->ios[2]));
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ(&self->r, ev.obj);
	EXPECT_EQ(BS, ev.res);
	EXPECT_EQ(0, memcmp(self->buf, self->back, BS));
}

/* Kernel AIO copies the iocb: it may be reused once io_submit() returned. */
TEST_F(la, iocb_reused_after_submit)
{
	struct io_event ev;

	self->w.data = (void *)0x5678;
	ASSERT_EQ(1, io_submit(self->ctx, 1, self->ios));
	memset(&self->w, 0xa5, sizeof(self->w));
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ((void *)0x5678, ev.data);
	EXPECT_EQ(&self->w, ev.obj);
	EXPECT_EQ(BS, ev.res);
}

/* What each callback io_queue_run() made was called with. */
static struct call {
	io_context_t ctx;
	struct iocb *iocb;
	long res, res2;
} called[4];
static int ncalled;

static void note(io_context_t ctx, struct iocb *iocb, long res, long res2)
{
	if (ncalled < 4)
		called[ncalled] = (struct call){ ctx, iocb, res, res2 };
	ncalled++;
}

/* io_fsync()/io_fdsync(): cover the write queued before; complete after it. */
static void sync_covers_earlier_write(struct __test_metadata *_metadata,
				      FIXTURE_DATA(la) *self,
				      int (*sync)(io_context_t, struct iocb *,
						  io_callback_t, int))
{
	struct io_event ev[2];

	stall_write(_metadata, self);
	ASSERT_EQ(1, sync(self->ctx, &self->s, note, self->fd));
	EXPECT_EQ(0, io_getevents(self->ctx, 1, 1, ev,
				  &(struct timespec){ 0, 300000000 }));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'c'));
	ASSERT_EQ(2, reap(self, ev, 2));
	EXPECT_EQ(&self->w, ev[0].obj);
	EXPECT_EQ(&self->s, ev[1].obj);
	EXPECT_EQ(0, ev[1].res);
	EXPECT_EQ((void *)note, ev[1].data);
}

TEST_F(la, io_fsync_covers_earlier_write)
{
	sync_covers_earlier_write(_metadata, self, io_fsync);
}

TEST_F(la, io_fdsync_covers_earlier_write)
{
	sync_covers_earlier_write(_metadata, self, io_fdsync);
}

/* ...and not the write queued after it. */
TEST_F(la, io_fsync_not_held_by_later_write)
{
	struct io_event ev;

	ASSERT_EQ(1, io_fsync(self->ctx, &self->s, note, self->fd));
	stall_write(_metadata, self);
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ(&self->s, ev.obj);
}

/*
 * io_queue_run(): each event's callback, once, in completion order, with
 * exactly (ctx, iocb, res, res2) - the context it ran on, not another.
 */
TEST_F(la, queue_run_calls_callbacks)
{
	struct iocb *one[1] = { &self->w };

	ncalled = 0;
	io_set_callback(&self->w, note);
	ASSERT_EQ(1, io_submit(self->ctx, 1, one));
	ASSERT_EQ(1, io_fsync(self->ctx, &self->s, note, self->fd));
	while (ncalled < 2) {
		ASSERT_EQ(0, io_queue_wait(self->ctx, &long_wait));
		ASSERT_EQ(0, io_queue_run(self->ctx));
	}
	ASSERT_EQ(2, ncalled);
	EXPECT_EQ(self->ctx, called[0].ctx);
	EXPECT_EQ(&self->w, called[0].iocb);
	EXPECT_EQ(BS, called[0].res);
	EXPECT_EQ(0, called[0].res2);
	EXPECT_EQ(self->ctx, called[1].ctx);
	EXPECT_EQ(&self->s, called[1].iocb);
	EXPECT_EQ(0, called[1].res);
	EXPECT_EQ(0, called[1].res2);
	/* Nothing left: no callback again. */
	EXPECT_EQ(0, io_queue_run(self->ctx));
	EXPECT_EQ(2, ncalled);
}

TEST_F(la, queue_init_and_release)
{
	io_context_t ctx = NULL;

	ASSERT_EQ(0, io_queue_init(4, &ctx));
	EXPECT_EQ(0, io_queue_run(ctx));
	EXPECT_EQ(0, io_queue_release(ctx));
}

TEST_F(la, eventfd)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	struct pollfd p = { .fd = efd, .events = POLLIN };
	struct io_event ev[2];
	uint64_t n = 0;

	ASSERT_LE(0, efd);
	io_set_eventfd(&self->w, efd);
	io_prep_fsync(&self->s, self->fd);
	io_set_eventfd(&self->s, efd);
	ASSERT_EQ(2, io_submit(self->ctx, 2, self->ios));
	ASSERT_EQ(1, poll(&p, 1, LT_WAIT_SEC * 1000));
	ASSERT_EQ(2, reap(self, ev, 2));
	/*
	 * As in kernel AIO, an event is there to reap just before its eventfd
	 * is signalled: the second count may come after the reap.
	 */
	while (n < 2) {
		uint64_t more;

		ASSERT_EQ(1, poll(&p, 1, LT_WAIT_SEC * 1000));
		ASSERT_EQ(sizeof(more), read(efd, &more, sizeof(more)));
		n += more;
	}
	EXPECT_EQ(2, n);
	close(efd);
}

TEST_F(la, io_cancel_queued)
{
	struct io_event ev[2], unused;

	stall_write(_metadata, self);
	ASSERT_EQ(1, io_submit(self->ctx, 1, &self->ios[1]));
	EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &self->s, &unused));
	ASSERT_EQ(1, reap(self, ev, 1));
	EXPECT_EQ(&self->s, ev[0].obj);
	EXPECT_EQ(-ECANCELED, ev[0].res);
	/* The running write cannot be: -EINVAL, as with kernel AIO. */
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &self->w, &unused));
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &self->r, &unused));
}

/*
 * Run once, by the next AIOFSYNC_IOC_CANCEL the library makes, just before
 * the device sees it. This definition of ioctl() is the one the library
 * binds to (the executable's comes first), and passes every call on.
 */
static void (*before_cancel)(void);

/*
 * While asking is set: the longest wait the library asked of the system,
 * in nanoseconds (UINT64_MAX: no limit) - a REAP for at least one event,
 * or a ppoll() (io_pgetevents() waits there). What a timeout becomes is
 * checked by that, exactly, rather than by how long a call took, which a
 * loaded machine stretches.
 */
static atomic_bool asking;
static _Atomic uint64_t asked_ns;

static void note_wait(uint64_t ns)
{
	if (atomic_load(&asking) && ns > atomic_load(&asked_ns))
		atomic_store(&asked_ns, ns);
}

int ioctl(int fd, unsigned long request, ...)
{
	void (*hook)(void) = before_cancel;
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (request == AIOFSYNC_IOC_CANCEL && hook) {
		before_cancel = NULL;
		hook();
	}
	if ((request == AIOFSYNC_IOC_REAP ||
	     request == AIOFSYNC_IOC_REAP_TAKES) &&
	    ((const struct aiofsync_reap *)arg)->min_nr)
		note_wait(((const struct aiofsync_reap *)arg)->timeout_ns);
	return syscall(SYS_ioctl, fd, request, arg);
}

/* The library's ppoll(), as ioctl() above: noted, then made. */
int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *tmo,
	  const sigset_t *mask)
{
	struct timespec copy, *t = NULL;

	if (tmo) {
		copy = *tmo;
		t = &copy;
	}
	note_wait(tmo ? (uint64_t)tmo->tv_sec * 1000000000ULL +
			(uint64_t)tmo->tv_nsec : UINT64_MAX);
	return syscall(SYS_ppoll, fds, nfds, t, mask, _NSIG / 8);
}

/* What another thread does while io_cancel() runs: reap, submit anew. */
static struct {
	FIXTURE_DATA(la) *self;
	struct io_event ev;
	int reaped, submitted;
} meanwhile;

static void reap_and_submit_sync(void)
{
	struct iocb *one[1] = { &meanwhile.self->s };

	meanwhile.reaped = io_getevents(meanwhile.self->ctx, 1, 1,
					&meanwhile.ev, &long_wait);
	meanwhile.submitted = io_submit(meanwhile.self->ctx, 1, one);
}

/*
 * io_cancel() finds its iocb's slot, then cancels the request there. If in
 * between the request is reaped and another submitted into the same slot
 * (the free list gives the slot just freed first), the cancel must not
 * reach the newcomer: a sync queued behind a stalled write, that a cancel
 * would take. The hook above makes exactly that happen in between.
 */
TEST_F(la, cancel_never_reaches_next_in_slot)
{
	struct iocb a, *one[1] = { &a };
	int other = lt_tmpfile("libaio-other", O_RDWR);
	struct io_event ev[2], unused;

	ASSERT_LE(0, other);
	stall_write(_metadata, self);
	/* A sync of another file: not held, done at once, left unreaped. */
	io_prep_fsync(&a, other);
	ASSERT_EQ(1, io_submit(self->ctx, 1, one));
	ASSERT_EQ(0, io_queue_wait(self->ctx, &long_wait));
	meanwhile.self = self;
	before_cancel = reap_and_submit_sync;
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &a, &unused));
	EXPECT_EQ(NULL, before_cancel) TH_LOG("io_cancel() made no cancel");
	ASSERT_EQ(1, meanwhile.reaped);
	EXPECT_EQ(&a, (struct iocb *)meanwhile.ev.obj);
	ASSERT_EQ(1, meanwhile.submitted);
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'n'));
	ASSERT_EQ(2, reap(self, ev, 2));
	EXPECT_EQ(&self->w, ev[0].obj);
	EXPECT_EQ(&self->s, ev[1].obj);
	EXPECT_EQ(0, ev[1].res) TH_LOG("the sync submitted later was cancelled");
	close(other);
}

TEST_F(la, submit_nothing)
{
	EXPECT_EQ(0, io_submit(self->ctx, 0, self->ios));
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, -1, self->ios));
}

/* Unreadable iocb arrays: -EFAULT, never SIGSEGV. */
TEST_F(la, submit_efault)
{
	struct iocb *bad[2] = { &self->w, (struct iocb *)16 };
	void *unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			      -1, 0);
	struct io_event ev;

	ASSERT_NE(MAP_FAILED, unmapped);
	struct iocb **volatile wild = (struct iocb **)16;

	EXPECT_EQ(-EFAULT, io_submit(self->ctx, 1, NULL));
	EXPECT_EQ(-EFAULT, io_submit(self->ctx, 1, wild));
	EXPECT_EQ(-EFAULT, io_submit(self->ctx, 1, unmapped));
	EXPECT_EQ(-EFAULT, io_submit(self->ctx, 1, &bad[1]));
	bad[1] = NULL;
	EXPECT_EQ(-EFAULT, io_submit(self->ctx, 1, &bad[1]));
	bad[1] = unmapped;
	EXPECT_EQ(-EFAULT, io_submit(self->ctx, 1, &bad[1]));
	/* A good one first: it is submitted, the count says so. */
	EXPECT_EQ(1, io_submit(self->ctx, 2, bad));
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ(&self->w, ev.obj);
	munmap(unmapped, 4096);
}

TEST_F(la, submit_einval)
{
	struct iocb io;
	struct iocb *one[1] = { &io };

	io_prep_pwrite(&io, self->fd, self->buf, BS, 0);
	io.aio_lio_opcode = 42;
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, 1, one));
	io_prep_pwritev(&io, self->fd, NULL, 0, 0);
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, 1, one));
	io_prep_poll(&io, self->fd, POLLIN);
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, 1, one));
	io_prep_fsync(&io, self->fd);
	io.u.c.nbytes = 1;
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, 1, one));
	io_prep_pwrite(&io, self->fd, self->buf, BS, -1);
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, 1, one));
	io_prep_pwrite(&io, self->fd, self->buf, BS, 0);
	io.u.c.flags = 0x80;
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, 1, one));
}

TEST_F(la, submit_ebadf)
{
	struct iocb io;
	struct iocb *one[1] = { &io };
	int rdonly = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	int path = open(".", O_PATH | O_CLOEXEC);

	io_prep_pwrite(&io, -1, self->buf, BS, 0);
	EXPECT_EQ(-EBADF, io_submit(self->ctx, 1, one));
	io_prep_fsync(&io, -1);
	EXPECT_EQ(-EBADF, io_submit(self->ctx, 1, one));
	io_prep_fsync(&io, path);
	EXPECT_EQ(-EBADF, io_submit(self->ctx, 1, one));
	io_prep_pwrite(&io, rdonly, self->buf, BS, 0);
	EXPECT_EQ(-EBADF, io_submit(self->ctx, 1, one));
	close(rdonly);
	close(path);
}

/*
 * fs/aio.c syncs what fsync(2) syncs, through read-only descriptors too: a
 * file opened O_RDONLY, and a directory (as after a rename).
 */
TEST_F(la, fsync_read_only)
{
	int rdonly = lt_reopen(self->fd, O_RDONLY);
	int dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct iocb io[2], *ios[2] = { &io[0], &io[1] };
	struct io_event ev[2];
	int i;

	ASSERT_LE(0, rdonly);
	ASSERT_LE(0, dir);
	io_prep_fsync(&io[0], rdonly);
	io_prep_fdsync(&io[1], dir);
	io[0].data = (void *)1;
	io[1].data = (void *)2;
	ASSERT_EQ(2, io_submit(self->ctx, 2, ios));
	ASSERT_EQ(2, reap(self, ev, 2));
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(0, ev[i].res);
		EXPECT_EQ(&io[(long)ev[i].data - 1], (struct iocb *)ev[i].obj);
	}
	EXPECT_NE(ev[0].data, ev[1].data);
	close(rdonly);
	close(dir);
}

/* The batch stops at the first refused request; the count says where. */
TEST_F(la, submit_partial)
{
	struct iocb bad;
	struct iocb *list[3] = { &self->w, &bad, &self->r };
	struct io_event ev;

	io_prep_pwrite(&bad, -1, self->buf, BS, 0);
	EXPECT_EQ(1, io_submit(self->ctx, 3, list));
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ(&self->w, ev.obj);
}

/*
 * A big io_submit() reaches the device in one call, as the system call
 * queues its array under one plug: the syncs of clean files that it holds
 * back gather, one flush per file for the whole call. (Passes of 64 iocbs
 * gave a file a flush per pass, or more.) The files are made clean with
 * fsync(2), so that no flush of the device is still under way for them.
 */
TEST_F(la, submit_many_syncs_one_flush_per_file)
{
	enum { F = 4, PER_FILE = 200, N = F * PER_FILE };
	static struct iocb io[N];
	static struct iocb *ios[N];
	static struct io_event ev[N];
	io_context_t big = NULL;
	long long flushes, saved;
	int fds[F], i;
	char name[16];

	for (i = 0; i < F; i++) {
		snprintf(name, sizeof(name), "many%d", i);
		fds[i] = lt_tmpfile(name, O_RDWR);
		ASSERT_LE(0, fds[i]);
		ASSERT_EQ(BS, pwrite(fds[i], self->buf, BS, 0));
		ASSERT_EQ(0, fsync(fds[i]));
	}
	for (i = 0; i < N; i++) {
		/* The files in turn: a pass of 64 would hold 16 of each. */
		io_prep_fsync(&io[i], fds[i % F]);
		io[i].data = (void *)(long)i;
		ios[i] = &io[i];
	}
	ASSERT_EQ(0, io_setup(N, &big));
	flushes = afs_stat("flushes");
	saved = afs_stat("flushes_saved");
	ASSERT_LE(0, flushes);
	ASSERT_EQ(N, io_submit(big, N, ios));
	for (i = 0; i < N; ) {
		int n = io_getevents(big, 1, N - i, ev + i, &long_wait);

		ASSERT_LT(0, n);
		i += n;
	}
	for (i = 0; i < N; i++) {
		EXPECT_EQ(0, ev[i].res);
		EXPECT_EQ(&io[(long)ev[i].data], (struct iocb *)ev[i].obj);
	}
	EXPECT_EQ(F, afs_stat("flushes") - flushes);
	EXPECT_EQ(N - F, afs_stat("flushes_saved") - saved);
	EXPECT_EQ(0, io_destroy(big));
	for (i = 0; i < F; i++)
		close(fds[i]);
}

/*
 * More iocbs than one process_vm_readv() reads (IOV_MAX segments): the
 * count stops where the program's memory does, in the pointer array or in
 * an iocb, past the first IOV_MAX as before it.
 */
TEST_F(la, submit_many_stops_at_fault)
{
	enum { N = 1500, CUT = 1100, BAD = 1200 };
	static struct iocb io[N];
	static struct io_event ev[N];
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = (N * sizeof(struct iocb *) + page - 1) / page * page;
	io_context_t big = NULL;
	struct iocb **ios;
	char *map;
	int i, got;

	/* The pointer array: its first CUT entries end at an unmapped page. */
	map = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, munmap(map + len, len));
	ios = (struct iocb **)(map + len) - CUT;
	for (i = 0; i < CUT; i++) {
		io_prep_fsync(&io[i], self->fd);
		ios[i] = &io[i];
	}
	ASSERT_EQ(0, io_setup(N, &big));
	EXPECT_EQ(CUT, io_submit(big, N, ios));
	for (got = 0; got < CUT; ) {
		int n = io_getevents(big, 1, N, ev, &long_wait);

		ASSERT_LT(0, n);
		got += n;
	}
	/* Readable pointers, one of them NULL: stops there. */
	ios = (struct iocb **)map;
	for (i = 0; i < N; i++) {
		io_prep_fsync(&io[i], self->fd);
		ios[i] = i == BAD ? NULL : &io[i];
	}
	EXPECT_EQ(BAD, io_submit(big, N, ios));
	for (got = 0; got < BAD; ) {
		int n = io_getevents(big, 1, N, ev, &long_wait);

		ASSERT_LT(0, n);
		got += n;
	}
	EXPECT_EQ(0, io_destroy(big));
	munmap(map, len);
}

/*
 * io_getevents() (io_pgetevents() with @mask) with nothing to reap: its
 * result, the milliseconds it took, and the longest wait it asked for.
 */
struct empty_wait {
	int ret;
	long ms;
	uint64_t asked_ns;
};

static struct empty_wait empty_wait(FIXTURE_DATA(la) *self,
				    struct timespec ts, sigset_t *mask)
{
	struct empty_wait w;
	struct timespec a, b;
	struct io_event ev;

	atomic_store(&asked_ns, 0);
	atomic_store(&asking, true);
	clock_gettime(CLOCK_MONOTONIC, &a);
	w.ret = mask ? io_pgetevents(self->ctx, 1, 1, &ev, &ts, mask) :
		       io_getevents(self->ctx, 1, 1, &ev, &ts);
	clock_gettime(CLOCK_MONOTONIC, &b);
	atomic_store(&asking, false);
	w.ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	w.asked_ns = atomic_load(&asked_ns);
	return w;
}

/*
 * Timeouts as the system call takes them (fs/aio.c: timespec64_to_ktime(),
 * no validity check): tv_sec * 1e9 + tv_nsec in wrapping 64 bits, a total
 * <= 0 does not wait. Never -EINVAL. A wait lasts at least its timeout, and
 * the library never asks for a longer one (nor for any, when it must not
 * wait); how long a call took is never bounded from above.
 */
static void kernel_timeouts(struct __test_metadata *_metadata,
			    FIXTURE_DATA(la) *self, sigset_t *mask)
{
	static const struct {
		struct timespec ts;
		uint64_t ns;
	} cases[] = {
		{ { 0, 1200000000L }, 1200000000ULL },
		{ { 2, -1500000000L }, 500000000ULL },
		{ { -1, 0 }, 0 },
		{ { 0, -1 }, 0 },
#if __TIMESIZE == 64 || (defined(_TIME_BITS) && _TIME_BITS == 64)
		/* Just under KTIME_SEC_MAX: the sum wraps negative, no wait. */
		{ { 9223372035, 2000000000L }, 0 },
#endif
	};
	struct empty_wait w;
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		w = empty_wait(self, cases[i].ts, mask);
		EXPECT_EQ(0, w.ret) TH_LOG("case %u", i);
		EXPECT_LE(cases[i].ns / 1000000, w.ms) TH_LOG("case %u", i);
		EXPECT_GE(cases[i].ns, w.asked_ns)
			TH_LOG("case %u: asked for a wait of %llu ns", i,
			       (unsigned long long)w.asked_ns);
	}
}

TEST_F(la, getevents_args)
{
	struct io_event ev;

	EXPECT_EQ(-EINVAL, io_getevents(self->ctx, 2, 1, &ev, NULL));
	EXPECT_EQ(-EINVAL, io_getevents(self->ctx, -1, 1, &ev, NULL));
	kernel_timeouts(_metadata, self, NULL);
	EXPECT_EQ(0, io_getevents(self->ctx, 0, 0, &ev, NULL));
	EXPECT_EQ(0, io_getevents(self->ctx, 1, 1, &ev,
				  &(struct timespec){ 0, 10000000 }));
	ASSERT_EQ(1, io_submit(self->ctx, 1, self->ios));
	EXPECT_EQ(-EFAULT, io_getevents(self->ctx, 1, 1, NULL, &long_wait));
}

/* The system call reads the iocb first: -EFAULT, whatever the context. */
TEST_F(la, cancel_efault)
{
	void *unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			      -1, 0);
	struct io_event ev;

	ASSERT_NE(MAP_FAILED, unmapped);
	EXPECT_EQ(-EFAULT, io_cancel(self->ctx, NULL, &ev));
	EXPECT_EQ(-EFAULT, io_cancel(self->ctx, unmapped, &ev));
	EXPECT_EQ(-EFAULT, io_cancel(NULL, NULL, &ev));
	/* Readable, never submitted: -EINVAL. */
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &self->w, &ev));
	munmap(unmapped, 4096);
}

/* Not a context of ours (libaio: the system call's lookup fails). */
static struct { uint64_t junk[16]; } not_a_context;

TEST_F(la, queue_wait_args)
{
	struct timespec zero = { 0, 0 };

	EXPECT_EQ(-EINVAL, io_queue_wait(NULL, &zero));
	EXPECT_EQ(-EINVAL, io_queue_wait((io_context_t)&not_a_context, &zero));
	EXPECT_EQ(0, io_queue_wait(self->ctx, &zero));
	/* libaio's is io_getevents(ctx, 0, 0, NULL, timeout): no -EINVAL. */
	EXPECT_EQ(0, io_queue_wait(self->ctx, &(struct timespec){ -1, 0 }));
	EXPECT_EQ(0, io_queue_wait(self->ctx, &(struct timespec){ 0, -1 }));
	EXPECT_EQ(0, io_queue_wait(self->ctx,
				   &(struct timespec){ 0, 1000000000L }));
}

/* io_pgetevents() with a mask: io_getevents()'s argument checks. */
TEST_F(la, pgetevents_args)
{
	struct io_event ev;
	sigset_t mask;

	sigemptyset(&mask);
	EXPECT_EQ(-EINVAL, io_pgetevents(self->ctx, 2, 1, &ev, NULL, &mask));
	EXPECT_EQ(-EINVAL, io_pgetevents(self->ctx, -1, 1, &ev, NULL, &mask));
	EXPECT_EQ(-EINVAL, io_pgetevents(self->ctx, 0, -1, &ev, NULL, &mask));
	EXPECT_EQ(-EINVAL, io_pgetevents(NULL, 0, 1, &ev, NULL, &mask));
	EXPECT_EQ(-EINVAL, io_pgetevents((io_context_t)&not_a_context, 0, 1,
					 &ev, NULL, &mask));
	EXPECT_EQ(0, io_pgetevents(self->ctx, 0, 0, &ev, NULL, &mask));
	EXPECT_EQ(0, io_pgetevents(self->ctx, 0, 1, &ev, &(struct timespec){},
				   &mask));
	kernel_timeouts(_metadata, self, &mask);
}

/* A destroyed context is an unknown one: -EINVAL, not a use after free. */
TEST_F(la, destroy_twice)
{
	io_context_t ctx = NULL;

	ASSERT_EQ(0, io_setup(4, &ctx));
	EXPECT_EQ(0, io_destroy(ctx));
	EXPECT_EQ(-EINVAL, io_destroy(ctx));
	EXPECT_EQ(-EINVAL, io_destroy(NULL));
	EXPECT_EQ(-EINVAL, io_destroy((io_context_t)&not_a_context));
	ASSERT_EQ(0, io_queue_init(4, &ctx));
	EXPECT_EQ(0, io_queue_release(ctx));
	EXPECT_EQ(-EINVAL, io_queue_release(ctx));
}

/*
 * libaio's io_queue_init(): -EINVAL for maxevents <= 0 (*ctxp untouched),
 * else *ctxp is reset and io_setup() called, so it need not be NULL.
 */
TEST_F(la, queue_init_args)
{
	io_context_t junk = (io_context_t)&not_a_context, ctx = junk;

	EXPECT_EQ(-EINVAL, io_queue_init(0, &ctx));
	EXPECT_EQ(-EINVAL, io_queue_init(-1, &ctx));
	EXPECT_EQ(junk, ctx);
	ASSERT_EQ(0, io_queue_init(4, &ctx));
	EXPECT_NE(junk, ctx);
	EXPECT_EQ(0, io_queue_release(ctx));
	/* io_setup() itself insists on a zeroed *ctxp, as the system call. */
	ctx = junk;
	EXPECT_EQ(-EINVAL, io_setup(4, &ctx));
}

/* Signal @target every 20 ms until @stop, for LT_WAIT_SEC at most. */
struct nagger {
	pthread_t thread, target;
	atomic_bool stop;
};

static void *nag_main(void *arg)
{
	struct nagger *n = arg;
	int i;

	for (i = 0; i < LT_WAIT_SEC * 50 && !atomic_load(&n->stop); i++) {
		usleep(20 * 1000);
		pthread_kill(n->target, SIGUSR1);
	}
	return NULL;
}

/*
 * A signal during the wait ends it with -EINTR. Signals come until the call
 * has returned: one that came before the wait began would be missed by it.
 */
TEST_F(la, getevents_eintr)
{
	struct nagger n = { .target = pthread_self() };
	struct io_event ev;

	ASSERT_EQ(0, lt_catch(SIGUSR1));
	ASSERT_EQ(0, pthread_create(&n.thread, NULL, nag_main, &n));
	EXPECT_EQ(-EINTR, io_getevents(self->ctx, 1, 1, &ev, NULL));
	atomic_store(&n.stop, true);
	pthread_join(n.thread, NULL);
}

/* io_pgetevents(): the signal blocked everywhere else gets in during the wait. */
TEST_F(la, pgetevents_sigmask)
{
	sigset_t blocked, during;
	struct io_event ev;
	struct lt_later l;

	ASSERT_EQ(0, lt_catch(SIGUSR1));
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &blocked, NULL);
	sigemptyset(&during);
	ASSERT_EQ(0, lt_signal_later(&l, SIGUSR1, 100));
	EXPECT_EQ(-EINTR, io_pgetevents(self->ctx, 1, 1, &ev, NULL, &during));
	lt_join(&l);
	/* And with events there, they are returned. */
	ASSERT_EQ(1, io_submit(self->ctx, 1, self->ios));
	EXPECT_EQ(1, io_pgetevents(self->ctx, 1, 1, &ev, &long_wait, &during));
	EXPECT_EQ(&self->w, ev.obj);
}

/*
 * io_pgetevents() with a sigmask it cannot read: -EFAULT, as the system call
 * says; not ppoll() failing again and again (alarm() ends a spin, with the
 * bound every wait of these tests has).
 */
TEST_F(la, pgetevents_bad_sigmask)
{
	void *unmapped = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS,
			      -1, 0);
	struct io_event ev;

	ASSERT_NE(MAP_FAILED, unmapped);
	alarm(LT_WAIT_SEC);
	EXPECT_EQ(-EFAULT, io_pgetevents(self->ctx, 1, 1, &ev, NULL, unmapped));
	alarm(0);
	munmap(unmapped, 4096);
}

/* Pipes: kernel AIO serves them, so must we (helper threads). */
TEST_F(la, pipe)
{
	int p[2];

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	io_prep_pwrite(&self->w, p[1], self->buf, 100, 0);
	io_prep_pread(&self->r, p[0], self->back, 100, 0);
	self->w.data = (void *)7;
	ASSERT_EQ(1, io_submit(self->ctx, 1, &self->ios[2]));
	ASSERT_EQ(1, io_submit(self->ctx, 1, self->ios));
	ASSERT_EQ(2, reap(self, (struct io_event[2]){}, 2));
	/* As kernel AIO: a pipe cannot be synced, from either end. */
	io_prep_fsync(&self->s, p[1]);
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, 1, &self->ios[1]));
	io_prep_fsync(&self->s, p[0]);
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, 1, &self->ios[1]));
	close(p[0]);
	close(p[1]);
}

/*
 * io_set_eventfd() on a pipe (a helper runs it): the eventfd is signalled
 * once the event is there to reap, once per request, as for requests the
 * device runs itself. The program may close its resfd after io_submit(), as
 * kernel AIO holds a reference; a bad resfd is refused at submission.
 */
TEST_F(la, pipe_eventfd)
{
	int efd = eventfd(0, EFD_CLOEXEC), efd2, p[2];
	struct pollfd pe = { .fd = efd, .events = POLLIN };
	struct iocb *one[1] = { &self->w };
	struct io_event ev;
	uint64_t n = 0;

	ASSERT_LE(0, efd);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	io_prep_pwrite(&self->w, p[1], self->buf, 100, 0);
	io_set_eventfd(&self->w, efd);
	ASSERT_EQ(1, io_submit(self->ctx, 1, one));
	ASSERT_EQ(1, poll(&pe, 1, LT_WAIT_SEC * 1000));
	ASSERT_EQ(sizeof(n), read(efd, &n, sizeof(n)));
	EXPECT_EQ(1, n);
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ(&self->w, ev.obj);
	EXPECT_EQ(100, ev.res);

	/* A read that waits for data, its resfd closed meanwhile. */
	efd2 = dup(efd);
	ASSERT_LE(0, efd2);
	io_prep_pread(&self->r, p[0], self->back, 100, 0);
	io_set_eventfd(&self->r, efd2);
	one[0] = &self->r;
	ASSERT_EQ(100, read(p[0], self->back, 100));
	ASSERT_EQ(1, io_submit(self->ctx, 1, one));
	close(efd2);
	ASSERT_TRUE(lt_wait_blocked_in_read(p[0]));
	EXPECT_EQ(0, poll(&pe, 1, 0));
	ASSERT_EQ(5, write(p[1], "hello", 5));
	ASSERT_EQ(1, poll(&pe, 1, LT_WAIT_SEC * 1000));
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ(&self->r, ev.obj);
	EXPECT_EQ(5, ev.res);
	ASSERT_EQ(sizeof(n), read(efd, &n, sizeof(n)));
	EXPECT_EQ(1, n);

	/* As kernel AIO: a resfd that is not open, or not an eventfd. */
	io_prep_pwrite(&self->w, p[1], self->buf, 1, 0);
	io_set_eventfd(&self->w, efd2);
	one[0] = &self->w;
	EXPECT_EQ(-EBADF, io_submit(self->ctx, 1, one));
	io_set_eventfd(&self->w, p[0]);
	EXPECT_EQ(-EINVAL, io_submit(self->ctx, 1, one));
	close(p[0]);
	close(p[1]);
	close(efd);
}

/*
 * Rounds of a pipe write with an eventfd, which a helper runs. @by_eventfd:
 * wait for the eventfd's count, then reap without waiting; else reap,
 * waiting, then read the count without waiting. Either way both are there.
 */
static void pipe_eventfd_rounds(struct __test_metadata *_metadata,
				FIXTURE_DATA(la) *self, bool by_eventfd)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), p[2], i;
	struct pollfd pe = { .fd = efd, .events = POLLIN };
	struct iocb *one[1] = { &self->w };
	struct timespec zero = { 0, 0 };
	struct io_event ev;
	uint64_t n;
	char c;

	ASSERT_LE(0, efd);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	for (i = 0; i < 200; i++) {
		io_prep_pwrite(&self->w, p[1], self->buf, 1, 0);
		io_set_eventfd(&self->w, efd);
		ASSERT_EQ(1, io_submit(self->ctx, 1, one));
		if (by_eventfd) {
			ASSERT_EQ(1, poll(&pe, 1, LT_WAIT_SEC * 1000));
		} else {
			ASSERT_EQ(1, io_getevents(self->ctx, 1, 1, &ev, &long_wait));
		}
		n = 0;
		ASSERT_EQ(sizeof(n), read(efd, &n, sizeof(n)))
			TH_LOG("round %d: reaped before its eventfd count", i);
		ASSERT_EQ(1, n);
		if (by_eventfd) {
			ASSERT_EQ(1, io_getevents(self->ctx, 0, 1, &ev, &zero))
				TH_LOG("round %d: counted before it could be reaped", i);
		}
		ASSERT_EQ(1, read(p[0], &c, 1));
	}
	close(p[0]);
	close(p[1]);
	close(efd);
}

/*
 * As fs/aio.c's aio_complete(), which signals the eventfd before it wakes
 * the reapers: once io_getevents() has returned a helper's completion, its
 * count is on the eventfd. (With one CPU, the reaper woken by the helper
 * ran before the helper got to the eventfd.)
 */
TEST_F(la, pipe_eventfd_counted_once_reaped)
{
	pipe_eventfd_rounds(_metadata, self, false);
}

/*
 * And the other way round: a program woken by the eventfd reaps the event
 * without waiting (the completion is there before the count is).
 */
TEST_F(la, pipe_eventfd_count_means_reapable)
{
	pipe_eventfd_rounds(_metadata, self, true);
}

/*
 * More helper completions than one take from the queue holds: a wait for
 * all of them gets all of them, in one call.
 */
TEST_F(la, pipe_many_completions)
{
	int efd = eventfd(0, EFD_CLOEXEC), p[2], i;
	struct iocb io[24], *ios[24];
	struct io_event ev[24];
	uint64_t n, seen = 0;

	ASSERT_LE(0, efd);
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	for (i = 0; i < 24; i++) {
		io_prep_pwrite(&io[i], p[1], self->buf, 1, 0);
		io_set_eventfd(&io[i], efd);
		ios[i] = &io[i];
	}
	ASSERT_EQ(24, io_submit(self->ctx, 24, ios));
	/* Each is queued before its eventfd count: all are there. */
	while (seen < 24) {
		ASSERT_EQ(sizeof(n), read(efd, &n, sizeof(n)));
		seen += n;
	}
	ASSERT_EQ(24, io_getevents(self->ctx, 24, 24, ev, &long_wait));
	for (i = 0; i < 24; i++) {
		EXPECT_EQ(&io[i], (struct iocb *)ev[i].obj) TH_LOG("not in order");
		EXPECT_EQ(1, ev[i].res);
	}
	close(p[0]);
	close(p[1]);
	close(efd);
}

/* A pipe read waiting on a helper runs; the one queued behind it is cancelled. */
TEST_F(la, pipe_cancel)
{
	struct io_event ev;
	struct iocb r2, *one[1] = { &r2 };
	char more[8];
	int p[2];

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	io_prep_pread(&self->r, p[0], self->back, 1, 0);
	io_prep_pread(&r2, p[0], more, sizeof(more), 0);
	ASSERT_EQ(1, io_submit(self->ctx, 1, &self->ios[2]));
	ASSERT_TRUE(lt_wait_blocked_in_read(p[0]));
	ASSERT_EQ(1, io_submit(self->ctx, 1, one));
	EXPECT_EQ(-EINPROGRESS, io_cancel(self->ctx, &r2, &ev));
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ(&r2, ev.obj);
	EXPECT_EQ(-ECANCELED, ev.res);
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &self->r, &ev));
	ASSERT_EQ(1, write(p[1], "x", 1));
	ASSERT_EQ(1, reap(self, &ev, 1));
	EXPECT_EQ(&self->r, ev.obj);
	EXPECT_EQ(1, ev.res);
	close(p[0]);
	close(p[1]);
}

/*
 * fs/aio.c has written to a pipe by the time io_submit() returns: io_cancel()
 * finds nothing to cancel, -EINVAL, and the data is in the pipe. A helper
 * write still queued - here behind one that cannot end while the pipe is
 * full, whether a helper has taken that one yet or not - is not cancelled
 * either, and is written.
 */
TEST_F(la, pipe_write_not_cancelled)
{
	struct iocb w2, *one[1] = { &self->w }, *other[1] = { &w2 };
	struct io_event ev[2], unused;
	char fill[4096], a = 'a', b = 'b', got[2];
	size_t filled = 0;
	ssize_t n;
	int p[2];

	memset(fill, '.', sizeof(fill));
	ASSERT_EQ(0, pipe2(p, O_CLOEXEC | O_NONBLOCK));
	while ((n = write(p[1], fill, sizeof(fill))) > 0)
		filled += n;
	while ((n = write(p[1], fill, 1)) > 0)
		filled += n;
	ASSERT_EQ(EAGAIN, errno);
	/* Both ends block again: the helper's write waits for room. */
	ASSERT_EQ(0, fcntl(p[0], F_SETFL, 0));
	ASSERT_EQ(0, fcntl(p[1], F_SETFL, 0));
	io_prep_pwrite(&self->w, p[1], &a, 1, 0);
	io_prep_pwrite(&w2, p[1], &b, 1, 0);
	ASSERT_EQ(1, io_submit(self->ctx, 1, one));
	ASSERT_EQ(1, io_submit(self->ctx, 1, other));
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &w2, &unused));
	EXPECT_EQ(-EINVAL, io_cancel(self->ctx, &self->w, &unused));
	/* Room again: both writes go through, in order. */
	while (filled) {
		n = read(p[0], fill, filled < sizeof(fill) ? filled : sizeof(fill));
		ASSERT_LT(0, n);
		filled -= n;
	}
	ASSERT_EQ(2, reap(self, ev, 2));
	EXPECT_EQ(&self->w, (struct iocb *)ev[0].obj);
	EXPECT_EQ(1, ev[0].res);
	EXPECT_EQ(&w2, (struct iocb *)ev[1].obj);
	EXPECT_EQ(1, ev[1].res) TH_LOG("the queued write was cancelled");
	ASSERT_EQ(2, read(p[0], got, 2));
	EXPECT_EQ(0, memcmp("ab", got, 2));
	close(p[0]);
	close(p[1]);
}

/* io_setup(1) still takes a few in flight; then -EAGAIN, as the kernel. */
TEST_F(la, context_full)
{
	io_context_t small = NULL;
	struct iocb io[8], *one[1];
	int i, ret = 1;

	ASSERT_EQ(0, io_setup(1, &small));
	for (i = 0; i < 8 && ret == 1; i++) {
		io_prep_fsync(&io[i], self->fd);
		one[0] = &io[i];
		ret = io_submit(small, 1, one);
	}
	EXPECT_EQ(-EAGAIN, ret);
	EXPECT_LE(2, i - 1);
	EXPECT_EQ(0, io_destroy(small));
}

TEST_F(la, setup_too_many_events)
{
	io_context_t big = NULL;

	EXPECT_EQ(-EAGAIN, io_setup(1 << 30, &big));
}

/* io_destroy() waits for what is running, as the system call does. */
TEST_F(la, destroy_waits_for_running)
{
	io_context_t ctx = NULL;
	struct timespec t0, t1;
	struct iocb *one[1] = { &self->w };
	struct lt_later l;
	char c;

	ASSERT_EQ(0, io_setup(4, &ctx));
	ASSERT_EQ(0, afs_stall_init(&self->stall, BS));
	self->w.u.c.buf = self->stall.addr;
	ASSERT_EQ(1, io_submit(ctx, 1, one));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, LT_WAIT_SEC * 1000));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, lt_release_later(&l, &self->stall, 'd', 200));
	EXPECT_EQ(0, io_destroy(ctx));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	lt_join(&l);
	EXPECT_LE(150, (t1.tv_sec - t0.tv_sec) * 1000 +
		       (t1.tv_nsec - t0.tv_nsec) / 1000000);
	ASSERT_EQ(1, pread(self->fd, &c, 1, 0));
	EXPECT_EQ('d', c);
	afs_stall_destroy(&self->stall);
}

/* Every call on a destroyed context says -EINVAL; its events are gone. */
TEST_F(la, calls_on_destroyed_context)
{
	io_context_t ctx = NULL;
	struct iocb *one[1] = { &self->w };
	struct timespec zero = { 0, 0 };
	struct io_event ev;
	sigset_t mask;

	sigemptyset(&mask);
	ASSERT_EQ(0, io_setup(4, &ctx));
	ASSERT_EQ(1, io_submit(ctx, 1, one));
	/* Its completion is never reaped: io_destroy() waits, then drops it. */
	EXPECT_EQ(0, io_destroy(ctx));
	EXPECT_EQ(-EINVAL, io_submit(ctx, 1, one));
	EXPECT_EQ(-EINVAL, io_getevents(ctx, 0, 1, &ev, &zero));
	EXPECT_EQ(-EINVAL, io_getevents(ctx, 0, 0, &ev, &zero));
	EXPECT_EQ(-EINVAL, io_pgetevents(ctx, 0, 1, &ev, &zero, &mask));
	EXPECT_EQ(-EINVAL, io_cancel(ctx, &self->w, &ev));
	EXPECT_EQ(-EINVAL, io_queue_run(ctx));
	EXPECT_EQ(-EINVAL, io_queue_wait(ctx, &zero));
	EXPECT_EQ(BS, pread(self->fd, self->back, BS, 0));
	EXPECT_EQ(0, memcmp(self->buf, self->back, BS));
}

/* A libaio call made on a thread of its own: its context, result, end. */
struct ctx_call {
	io_context_t ctx;
	int ret;
	sem_t done;
};

static void *destroy_main(void *arg)
{
	struct ctx_call *d = arg;

	d->ret = io_destroy(d->ctx);
	sem_post(&d->done);
	return NULL;
}

static void *setup_main(void *arg)
{
	struct ctx_call *d = arg;

	d->ret = io_setup(4, &d->ctx);
	if (!d->ret)
		d->ret = io_destroy(d->ctx);
	sem_post(&d->done);
	return NULL;
}

/*
 * While io_destroy() waits for a request that runs, the other contexts of
 * the process are set up and destroyed at once: the wait holds no lock of
 * the library's. (The stalled write is let go only once io_setup() has
 * returned; waiting on the library's lock, it would never return.)
 */
TEST_F(la, destroy_wait_blocks_no_other_context)
{
	struct ctx_call d = { 0 }, o = { 0 };
	struct iocb *one[1] = { &self->w };
	pthread_t td, to;
	char c;

	ASSERT_EQ(0, sem_init(&d.done, 0, 0));
	ASSERT_EQ(0, sem_init(&o.done, 0, 0));
	ASSERT_EQ(0, io_setup(4, &d.ctx));
	ASSERT_EQ(0, afs_stall_init(&self->stall, BS));
	self->w.u.c.buf = self->stall.addr;
	ASSERT_EQ(1, io_submit(d.ctx, 1, one));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, LT_WAIT_SEC * 1000));
	ASSERT_EQ(0, pthread_create(&td, NULL, destroy_main, &d));
	usleep(100 * 1000);	/* let it reach its wait */
	EXPECT_NE(0, sem_trywait(&d.done)) TH_LOG("io_destroy() did not wait");
	ASSERT_EQ(0, pthread_create(&to, NULL, setup_main, &o));
	EXPECT_EQ(0, lt_sem_wait(&o.done)) TH_LOG("io_setup() waited for io_destroy()");
	afs_stall_release(&self->stall, 'o');
	EXPECT_EQ(0, lt_sem_wait(&d.done));
	pthread_join(td, NULL);
	pthread_join(to, NULL);
	EXPECT_EQ(0, d.ret);
	EXPECT_EQ(0, o.ret);
	ASSERT_EQ(1, pread(self->fd, &c, 1, 0));
	EXPECT_EQ('o', c);
	afs_stall_destroy(&self->stall);
}

static void *wait_one(void *arg)
{
	struct ctx_call *w = arg;
	struct io_event ev;

	w->ret = io_getevents(w->ctx, 1, 1, &ev, NULL);
	sem_post(&w->done);
	return NULL;
}

static void *pwait_one(void *arg)
{
	struct ctx_call *w = arg;
	struct io_event ev;
	sigset_t mask;

	sigemptyset(&mask);
	w->ret = io_pgetevents(w->ctx, 1, 1, &ev, NULL, &mask);
	sem_post(&w->done);
	return NULL;
}

static void *wait_three(void *arg)
{
	struct ctx_call *w = arg;
	struct io_event ev[3];

	w->ret = io_getevents(w->ctx, 3, 3, ev, NULL);
	sem_post(&w->done);
	return NULL;
}

/*
 * Start a thread per @waiter on one context with nothing in flight, let
 * them block, destroy the context: each must wake with -EINVAL.
 */
static void destroy_wakes(struct __test_metadata *_metadata,
			  void *(*const waiter[])(void *), int n)
{
	struct ctx_call w[4];
	pthread_t t[4];
	io_context_t ctx = NULL;
	int i;

	ASSERT_GE(4, n);
	ASSERT_EQ(0, io_setup(4, &ctx));
	for (i = 0; i < n; i++) {
		w[i].ctx = ctx;
		w[i].ret = 0;
		ASSERT_EQ(0, sem_init(&w[i].done, 0, 0));
		ASSERT_EQ(0, pthread_create(&t[i], NULL, waiter[i], &w[i]));
	}
	usleep(100 * 1000);	/* let them block */
	for (i = 0; i < n; i++)
		EXPECT_NE(0, sem_trywait(&w[i].done))
			TH_LOG("io_getevents() %d did not wait", i);
	EXPECT_EQ(0, io_destroy(ctx));
	for (i = 0; i < n; i++) {
		ASSERT_EQ(0, lt_sem_wait(&w[i].done))
			TH_LOG("waiter %d was not woken", i);
		pthread_join(t[i], NULL);
		EXPECT_EQ(-EINVAL, w[i].ret);
	}
}

/*
 * A thread waiting in io_getevents() with nothing in flight is woken by
 * io_destroy() and gets -EINVAL, as from the kernel's io_destroy(); it no
 * longer waits forever.
 */
TEST_F(la, destroy_wakes_waiting_reaper)
{
	static void *(*const waiter[])(void *) = { wait_one };

	destroy_wakes(_metadata, waiter, 1);
}

/* A thread waiting for several events is woken by io_destroy() as well. */
TEST_F(la, destroy_wakes_reaper_waiting_for_several)
{
	static void *(*const waiter[])(void *) = { wait_three };

	destroy_wakes(_metadata, waiter, 1);
}

/* One waiting in io_pgetevents(), in ppoll(), is woken too. */
TEST_F(la, destroy_wakes_pgetevents_waiter)
{
	static void *(*const waiter[])(void *) = { pwait_one };

	destroy_wakes(_metadata, waiter, 1);
}

/* Every thread waiting on the context is woken, not only the first one. */
TEST_F(la, destroy_wakes_every_waiting_reaper)
{
	static void *(*const waiter[])(void *) = {
		wait_three, wait_one, pwait_one, wait_one
	};

	destroy_wakes(_metadata, waiter, 4);
}

static long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

/*
 * io_destroy() blocks until the requests it could not cancel have completed
 * (io_destroy(2)), whoever else holds the context: here a thread waiting in
 * io_getevents(), which io_destroy() wakes, while a write runs.
 */
TEST_F(la, destroy_waits_with_a_reaper_inside)
{
	struct ctx_call w = { 0 };
	struct iocb *one[1] = { &self->w };
	struct timespec t0, t1;
	struct lt_later l;
	pthread_t t;
	char c;

	ASSERT_EQ(0, io_setup(4, &w.ctx));
	ASSERT_EQ(0, sem_init(&w.done, 0, 0));
	ASSERT_EQ(0, afs_stall_init(&self->stall, BS));
	self->w.u.c.buf = self->stall.addr;
	ASSERT_EQ(1, io_submit(w.ctx, 1, one));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, LT_WAIT_SEC * 1000));
	ASSERT_EQ(0, pthread_create(&t, NULL, wait_three, &w));
	usleep(100 * 1000);	/* let it block */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, lt_release_later(&l, &self->stall, 'e', 200));
	EXPECT_EQ(0, io_destroy(w.ctx));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	lt_join(&l);
	ASSERT_EQ(0, lt_sem_wait(&w.done));
	pthread_join(t, NULL);
	EXPECT_EQ(-EINVAL, w.ret);
	EXPECT_LE(150, ms_between(&t0, &t1)) TH_LOG("io_destroy() did not wait");
	ASSERT_EQ(1, pread(self->fd, &c, 1, 0));
	EXPECT_EQ('e', c);
	afs_stall_destroy(&self->stall);
}

/*
 * Write to @fd after @ms, from a thread of its own; @writing is set just
 * before the write.
 */
struct later_write {
	pthread_t thread;
	int fd, ms;
	atomic_bool writing;
};

static void *later_write_main(void *arg)
{
	struct later_write *lw = arg;

	usleep(lw->ms * 1000);
	atomic_store(&lw->writing, true);
	if (write(lw->fd, "destroy!destroy!", 16) != 16)
		abort();
	return NULL;
}

/*
 * The same for requests a helper runs: a pipe read waiting for data, and
 * one queued behind it, complete before io_destroy() returns, and the
 * buffers they read into do not change after that. (The write comes later
 * than io_destroy() is called, if the machine is not too slow; either way
 * io_destroy() must return after it.)
 */
TEST_F(la, destroy_waits_for_helper_request)
{
	struct iocb r2, *two[2] = { &self->r, &r2 };
	struct later_write lw = { .ms = 200 };
	io_context_t ctx = NULL;
	char seen[16];
	int p[2];

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	memset(self->back, 0, sizeof(self->back));
	io_prep_pread(&self->r, p[0], self->back, 8, 0);
	io_prep_pread(&r2, p[0], self->back + 8, 8, 0);
	ASSERT_EQ(0, io_setup(4, &ctx));
	ASSERT_EQ(2, io_submit(ctx, 2, two));
	ASSERT_TRUE(lt_wait_blocked_in_read(p[0]));
	lw.fd = p[1];
	ASSERT_EQ(0, pthread_create(&lw.thread, NULL, later_write_main, &lw));
	EXPECT_EQ(0, io_destroy(ctx));
	memcpy(seen, self->back, sizeof(seen));
	EXPECT_TRUE(atomic_load(&lw.writing)) TH_LOG("io_destroy() did not wait");
	pthread_join(lw.thread, NULL);
	usleep(100 * 1000);	/* a read still running would be done by now */
	EXPECT_EQ(0, memcmp(seen, self->back, sizeof(seen)))
		TH_LOG("a buffer changed after io_destroy() returned");
	EXPECT_EQ(0, memcmp("destroy!destroy!", seen, sizeof(seen)))
		TH_LOG("the queued read did not run");
	close(p[0]);
	close(p[1]);
}

/*
 * fs/aio.c makes a pipe write inside io_submit(): once that has returned,
 * the data is in the pipe. A helper runs it here, maybe not yet by the
 * time io_destroy() is called: io_destroy() must run it, not drop it.
 */
TEST_F(la, destroy_runs_queued_pipe_write)
{
	struct iocb *one[1] = { &self->w };
	io_context_t ctx;
	char x = 'x', c;
	int p[2], i;

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, fcntl(p[0], F_SETFL, O_NONBLOCK));
	for (i = 0; i < 1000; i++) {
		ctx = NULL;
		ASSERT_EQ(0, io_setup(4, &ctx));
		io_prep_pwrite(&self->w, p[1], &x, 1, 0);
		ASSERT_EQ(1, io_submit(ctx, 1, one));
		ASSERT_EQ(0, io_destroy(ctx));
		c = 0;
		ASSERT_EQ(1, read(p[0], &c, 1))
			TH_LOG("round %d: io_destroy() dropped the write", i);
		ASSERT_EQ('x', c);
	}
	close(p[0]);
	close(p[1]);
}

/*
 * Syncs through read-only descriptors run on helpers: io_destroy() at once
 * after io_submit() runs them too, and, as fs/aio.c signals every
 * completion, their eventfd is signalled before io_destroy() returns.
 */
TEST_F(la, destroy_signals_helper_sync_eventfd)
{
	int rdonly = lt_reopen(self->fd, O_RDONLY);
	int dir = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), i;
	struct iocb io[2], *ios[2] = { &io[0], &io[1] };
	io_context_t ctx;
	uint64_t n;

	ASSERT_LE(0, rdonly);
	ASSERT_LE(0, dir);
	ASSERT_LE(0, efd);
	for (i = 0; i < 100; i++) {
		ctx = NULL;
		ASSERT_EQ(0, io_setup(4, &ctx));
		io_prep_fsync(&io[0], rdonly);
		io_prep_fdsync(&io[1], dir);
		io_set_eventfd(&io[0], efd);
		io_set_eventfd(&io[1], efd);
		ASSERT_EQ(2, io_submit(ctx, 2, ios));
		ASSERT_EQ(0, io_destroy(ctx));
		n = 0;
		ASSERT_EQ(sizeof(n), read(efd, &n, sizeof(n)))
			TH_LOG("round %d: no count after io_destroy()", i);
		ASSERT_EQ(2, n) TH_LOG("round %d", i);
	}
	close(efd);
	close(rdonly);
	close(dir);
}

static void destroy_from_callback(io_context_t ctx, struct iocb *iocb,
				  long res, long res2)
{
	note(ctx, iocb, res, res2);
	called[0].res2 = io_destroy(ctx);
}

/*
 * A callback of io_queue_run() may destroy the context: io_destroy() then
 * waits for no call of its own thread, and io_queue_run() stops with what
 * libaio's next io_getevents() says, -EINVAL.
 */
TEST_F(la, queue_run_callback_destroys)
{
	struct iocb *one[1] = { &self->w };
	io_context_t ctx = NULL;

	ncalled = 0;
	ASSERT_EQ(0, io_setup(4, &ctx));
	io_set_callback(&self->w, destroy_from_callback);
	ASSERT_EQ(1, io_submit(ctx, 1, one));
	ASSERT_EQ(0, io_queue_wait(ctx, &long_wait));
	EXPECT_EQ(-EINVAL, io_queue_run(ctx));
	ASSERT_EQ(1, ncalled);
	EXPECT_EQ(BS, called[0].res);
	EXPECT_EQ(0, called[0].res2) TH_LOG("io_destroy() in the callback failed");
	EXPECT_EQ(-EINVAL, io_queue_run(ctx));
}

/*
 * Two events there to run, and the first callback destroys the context
 * (a program then frees its iocbs and buffers): the second callback never
 * runs. libaio's io_queue_run() takes one event per io_getevents(), and the
 * one after the destroy says -EINVAL, which it returns.
 */
TEST_F(la, queue_run_stops_after_destroy)
{
	int efd = eventfd(0, EFD_CLOEXEC);
	struct pollfd pe = { .fd = efd, .events = POLLIN };
	struct iocb w2, *two[2] = { &self->w, &w2 };
	io_context_t ctx = NULL;
	uint64_t n, seen = 0;

	ASSERT_LE(0, efd);
	ncalled = 0;
	ASSERT_EQ(0, io_setup(4, &ctx));
	io_prep_pwrite(&w2, self->fd, self->buf, BS, BS);
	io_set_callback(&self->w, destroy_from_callback);
	io_set_callback(&w2, destroy_from_callback);
	io_set_eventfd(&self->w, efd);
	io_set_eventfd(&w2, efd);
	ASSERT_EQ(2, io_submit(ctx, 2, two));
	/* Counted once there to reap: both are, and none is reaped yet. */
	while (seen < 2) {
		ASSERT_EQ(1, poll(&pe, 1, LT_WAIT_SEC * 1000));
		ASSERT_EQ(sizeof(n), read(efd, &n, sizeof(n)));
		seen += n;
	}
	EXPECT_EQ(-EINVAL, io_queue_run(ctx));
	EXPECT_EQ(1, ncalled) TH_LOG("a callback ran after the destroy");
	EXPECT_EQ(0, called[0].res2) TH_LOG("io_destroy() in the callback failed");
	close(efd);
}

/*
 * io_destroy() of a context that its requests fill returns, as the system
 * call always does: the device takes nothing more into such a context, so
 * nothing may need posting into it to wake its waiters.
 */
TEST_F(la, destroy_full_context)
{
	struct ctx_call d = { 0 };
	struct iocb io[4], *ios[4];
	pthread_t t;
	int i;

	self->saved_max_ctx = afs_param("max_ctx_requests");
	ASSERT_LT(0, self->saved_max_ctx);
	ASSERT_EQ(0, afs_set_param("max_ctx_requests", 4));
	ASSERT_EQ(0, io_setup(2, &d.ctx));
	for (i = 0; i < 4; i++) {
		io_prep_fsync(&io[i], self->fd);
		ios[i] = &io[i];
	}
	ASSERT_EQ(4, io_submit(d.ctx, 4, ios));
	ASSERT_EQ(0, sem_init(&d.done, 0, 0));
	ASSERT_EQ(0, pthread_create(&t, NULL, destroy_main, &d));
	ASSERT_EQ(0, lt_sem_wait(&d.done)) TH_LOG("io_destroy() did not return");
	pthread_join(t, NULL);
	EXPECT_EQ(0, d.ret);
}

/*
 * A helper's completion into a context the device's requests fill: it
 * needs no room in the device, and wakes a waiter for several events.
 */
TEST_F(la, pipe_completion_into_full_context)
{
	struct iocb io[5], *ios[5];
	struct io_event ev[5];
	io_context_t ctx = NULL;
	int i, p[2], pipes = 0;

	ASSERT_EQ(0, pipe2(p, O_CLOEXEC));
	ASSERT_EQ(0, io_setup(4, &ctx));
	self->saved_max_ctx = afs_param("max_ctx_requests");
	ASSERT_LT(0, self->saved_max_ctx);
	ASSERT_EQ(0, afs_set_param("max_ctx_requests", 4));
	for (i = 0; i < 4; i++) {
		io_prep_fsync(&io[i], self->fd);
		ios[i] = &io[i];
	}
	io_prep_pread(&io[4], p[0], self->back, 1, 0);
	ios[4] = &io[4];
	ASSERT_EQ(5, io_submit(ctx, 5, ios));
	ASSERT_TRUE(lt_wait_blocked_in_read(p[0]));
	ASSERT_EQ(1, write(p[1], "f", 1));
	ASSERT_EQ(5, io_getevents(ctx, 5, 5, ev, &long_wait));
	for (i = 0; i < 5; i++) {
		EXPECT_EQ(0, ev[i].res2);
		if ((struct iocb *)ev[i].obj != &io[4])
			continue;
		EXPECT_EQ(1, ev[i].res);
		pipes++;
	}
	EXPECT_EQ(1, pipes);
	EXPECT_EQ(0, io_destroy(ctx));
	close(p[0]);
	close(p[1]);
}

/*
 * io_getevents() with min_nr 2 returns once two events are there, taken as
 * they come, and not earlier: at the timeout, with the one it has.
 */
TEST_F(la, getevents_waits_for_min_nr)
{
	struct timespec ts = { 0, 200 * 1000 * 1000 }, t0, t1;
	struct iocb *first[1] = { &self->w }, *second[1] = { &self->r };
	struct io_event ev[3];
	struct lt_later l;
	long ms;

	ASSERT_EQ(1, io_submit(self->ctx, 1, first));
	/* The write's event there first: the 200 ms are not its deadline. */
	ASSERT_EQ(0, io_queue_wait(self->ctx, &long_wait));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EXPECT_EQ(1, io_getevents(self->ctx, 2, 3, ev, &ts));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	EXPECT_LE(190, ms) TH_LOG("returned after %ld ms with one event", ms);
	EXPECT_EQ(&self->w, (struct iocb *)ev[0].obj);
	EXPECT_EQ(BS, (long)ev[0].res);

	/* A read's event now, the write's 200 ms later: both, in one call. */
	ASSERT_EQ(0, afs_stall_init(&self->stall, BS));
	self->stalled = true;
	self->w.u.c.buf = self->stall.addr;
	ASSERT_EQ(1, io_submit(self->ctx, 1, first));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, LT_WAIT_SEC * 1000));
	ASSERT_EQ(1, io_submit(self->ctx, 1, second));
	ASSERT_EQ(0, lt_release_later(&l, &self->stall, 'm', 200));
	EXPECT_EQ(2, io_getevents(self->ctx, 2, 3, ev, NULL));
	lt_join(&l);
	self->stalled = false;
	afs_stall_destroy(&self->stall);
}

struct reaper_arg {
	FIXTURE_DATA(la) *self;
	int fd, bad;
	long what;	/* the first bad return or result */
};

static void *submit_and_reap(void *arg)
{
	struct reaper_arg *a = arg;
	struct iocb io[16], *ios[16];
	struct io_event ev[16];
	char buf[512];
	int i, got = 0, n;

	memset(buf, 'T', sizeof(buf));
	for (i = 0; i < 16; i++) {
		io_prep_pwrite(&io[i], a->fd, buf, sizeof(buf), i * 512);
		ios[i] = &io[i];
	}
	n = io_submit(a->self->ctx, 16, ios);
	if (n != 16 && !a->bad++)
		a->what = n;
	/* Events of other threads may come: only count. */
	while (got < 16) {
		n = io_getevents(a->self->ctx, 1, 16 - got, ev, &long_wait);
		if (n <= 0) {
			if (!a->bad++)
				a->what = 1000 + n;
			break;
		}
		for (i = 0; i < n; i++)
			if (ev[i].res != 512 && !a->bad++)
				a->what = 2000 + (long)ev[i].res;
		got += n;
	}
	return NULL;
}

TEST_F(la, threads_share_context)
{
	struct reaper_arg a[4];
	pthread_t t[4];
	int i;

	for (i = 0; i < 4; i++) {
		a[i] = (struct reaper_arg){ self, self->fd, 0, 0 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, submit_and_reap, &a[i]));
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, a[i].bad)
			TH_LOG("thread %d: io_submit() %ld, or 1000 + io_getevents(), or 2000 + res",
			       i, a[i].what);
	}
}

TEST_HARNESS_MAIN
