// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * POSIX AIO on /dev/aiofsync, with glibc's struct aiocb and symbol names.
 *
 * The process has one device context, opened by the first request (state
 * machine on an atomic, no lock), and one reaper thread that blocks in
 * AIOFSYNC_IOC_REAP. Each request carries its aiocb pointer as user_tag; the
 * reaper writes the result into the aiocb (__return_value, then
 * __error_code with release order) so that aio_error() is a plain load,
 * wakes the aio_suspend() callers watching those requests (watch.c) and
 * bumps the completion sequence the other waiters sleep on, and only then
 * notifies (aio_sigevent, copied before publishing).
 *
 * Submission takes no lock: checks, one ioctl (before the context is open,
 * or on a device without AIOFSYNC_REQ_NO_APPEND, an fcntl first). The
 * device orders an fsync behind every write to the same file submitted
 * before it, so aio_fsync() only has to submit. What the device refuses by
 * the nature of the file (ESPIPE, EINVAL) or of the buffer (EFAULT), and
 * writes to O_APPEND descriptors (appends must land in call order, which
 * only a per-descriptor queue gives), go to the helper threads of
 * fallback.c instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "../aiofsync.h"

/* Largest byte count of one read/write, as the kernel's MAX_RW_COUNT. */
#define AFS_MAX_RW	0x7ffff000UL
#define AFS_REAP_BATCH	64
#define AFS_SUBMIT_BATCH 64
/* Events an aio_suspend() caller reaps at a time (afs_suspend_reaping()). */
#define AFS_FG_BATCH	16

enum { AFS_PX_NONE, AFS_PX_OPENING, AFS_PX_READY };

static struct {
	atomic_uint state;
	int dev;
	/*
	 * The device checks what fcntl(F_GETFL) would tell us (the access
	 * mode, and O_APPEND with AIOFSYNC_REQ_NO_APPEND). Written before
	 * state becomes AFS_PX_READY, read after seeing it.
	 */
	bool dev_checks_file;
	/*
	 * The device has background reapers, AIOFSYNC_IOC_WAKE and
	 * AIOFSYNC_IOC_REAP_TAKES: an aio_suspend() caller may reap.
	 */
	bool fg_reap;
	/* An aio_suspend() caller reaps the device itself (see there): 0/1. */
	atomic_uint fg_busy;
	/* afs_px_barrier() calls under way: no caller may reap meanwhile. */
	atomic_uint barriers;
	/*
	 * Batches of device events published. Each was reaped first, which
	 * makes room in a full context: afs_px_barrier() waits for room
	 * while this moves.
	 */
	atomic_uint published;
	/*
	 * The device's count of foreground takes (fg_takes) up to which the
	 * reaping callers have published what they took; it only grows
	 * (modulo 2^32). The reaper waits for it (afs_posix_after_fg()),
	 * counted in fg_published_waiters.
	 */
	atomic_uint fg_published;
	atomic_uint fg_published_waiters;
} afs_px;

/* The owner of this file's requests in the fallback queues. */
#define AFS_PX_OWNER	((void *)&afs_px)

/*
 * A request that completes once everything before it in the queue did. Its
 * address is the tag, with AFS_TAG_BARRIER in the low bit: it must be even.
 */
struct afs_barrier {
	_Alignas(8) atomic_bool done;
};

bool afs_posix_started(void)
{
	return atomic_load(&afs_px.state) == AFS_PX_READY;
}

/* ---- completion ---- */

struct afs_note {
	struct sigevent sev;
	struct afs_lio_group *group;
};

struct afs_lio_group {
	atomic_uint remaining;
	struct sigevent sev;
};

static void afs_lio_group_put(struct afs_lio_group *g)
{
	if (atomic_fetch_sub(&g->remaining, 1) == 1) {
		afs_sigev_notify(&g->sev);
		free(g);
	}
}

/*
 * Publish the result of @cb. Everything needed afterwards is copied to
 * @note first: once __error_code says "done" the aiocb is the program's.
 */
static void afs_posix_finish(struct aiocb *cb, long res, struct afs_note *note)
{
	struct afs_priv *p = afs_priv(cb);
	ssize_t ret = res < 0 ? -1 : res;
	int err = res < 0 ? (int)-res : 0;

	note->group = p->group;
	note->sev = cb->aio_sigevent;
	if (p->flags & AFS_PRIV_NO_NOTIFY)
		note->sev.sigev_notify = SIGEV_NONE;
	afs_wc_record(cb, ret, err);
	cb->__return_value = ret;
	atomic_store_explicit(afs_error_code(cb), err, memory_order_release);
}

static void afs_posix_notify(const struct afs_note *note)
{
	afs_sigev_notify(&note->sev);
	if (note->group)
		afs_lio_group_put(note->group);
}

/*
 * A waiting aio_suspend() caller may be asleep in the device as its
 * foreground reaper (afs_aio_suspend()): after publishing a result it must
 * see, end that sleep. The fences of afs_watch_wake() order the result
 * before this look at fg_busy, as the caller's exchange orders fg_busy
 * before its look at its list; a wake with nobody asleep yet is kept by the
 * device for the caller's next reap.
 */
static void afs_posix_kick_fg(void)
{
	if (atomic_load(&afs_px.fg_busy))
		afs_dev_wake(afs_px.dev, 0);
}

static void afs_posix_complete(struct aiocb *cb, long res)
{
	uintptr_t key = (uintptr_t)cb;
	struct afs_note note;

	afs_posix_finish(cb, res, &note);
	afs_completion_wake();
	afs_watch_wake(&key, 1);
	afs_posix_kick_fg();
	afs_posix_notify(&note);
}

/* Room to publish one batch of events. */
struct afs_publish_buf {
	struct afs_note note[AFS_REAP_BATCH];
	bool has_note[AFS_REAP_BATCH];
	uintptr_t done[AFS_REAP_BATCH];
};

/*
 * Completions that the aio_suspend() caller reaping the device leaves to
 * the reaper thread: those whose publishing starts a thread, takes a lock or
 * allocates (SIGEV_THREAD, SIGEV_CALLBACK, a lio_listio() group, the first
 * record for aio_waitcomplete()), which an async-signal-safe aio_suspend()
 * may not do. One producer, the token holder; one consumer, the reaper.
 */
#define AFS_DEFER_SLOTS	64
static struct {
	struct aiofsync_event ev[AFS_DEFER_SLOTS];
	atomic_uint head;	/* the next to take (the reaper's) */
	atomic_uint tail;	/* the next free slot (the token holder's) */
} afs_defer;

static bool afs_posix_needs_reaper(struct aiocb *cb)
{
	struct afs_priv *p = afs_priv(cb);
	int how = cb->aio_sigevent.sigev_notify;

	if (p->group || !afs_wc_ready())
		return true;
	if (p->flags & AFS_PRIV_NO_NOTIFY)
		return false;
	return how == SIGEV_THREAD || how == SIGEV_CALLBACK;
}

/*
 * Publish @n events reaped from the device, then notify. @fg: the caller of
 * aio_suspend() reaping; it hands what it may not publish to the reaper
 * thread, which it wakes.
 */
static void afs_posix_publish(const struct aiofsync_event *ev, int n,
			     struct afs_publish_buf *b, bool fg)
{
	unsigned int tail = atomic_load_explicit(&afs_defer.tail,
						 memory_order_relaxed);
	/*
	 * What the caller handed over earlier is not published yet: so that
	 * nothing overtakes it, hand over everything until it is.
	 */
	bool behind = fg && atomic_load_explicit(&afs_defer.head,
						 memory_order_acquire) != tail;
	struct afs_barrier *bar;
	struct aiocb *cb;
	int ndone = 0, ndefer = 0, i;

	for (i = 0; i < n; i++) {
		b->has_note[i] = false;
		/* A barrier is the reaper's (afs_px_barrier()); never here. */
		if (fg && (behind || ndefer || ev[i].user_tag & AFS_TAG_BARRIER ||
			   afs_posix_needs_reaper((struct aiocb *)(uintptr_t)
						  ev[i].user_tag))) {
			afs_defer.ev[(tail + ndefer++) % AFS_DEFER_SLOTS] = ev[i];
			continue;
		}
		if (ev[i].user_tag & AFS_TAG_BARRIER) {
			bar = (struct afs_barrier *)(uintptr_t)
				(ev[i].user_tag & ~AFS_TAG_BARRIER);
			atomic_store(&bar->done, true);
			continue;
		}
		cb = (struct aiocb *)(uintptr_t)ev[i].user_tag;
		b->has_note[i] = true;
		b->done[ndone++] = (uintptr_t)cb;
		afs_posix_finish(cb, ev[i].res, &b->note[i]);
	}
	atomic_fetch_add(&afs_px.published, 1);
	afs_completion_wake();
	afs_watch_wake(b->done, ndone);
	if (!fg)
		afs_posix_kick_fg();
	if (ndefer) {
		atomic_store_explicit(&afs_defer.tail, tail + ndefer,
				      memory_order_release);
		afs_dev_wake(afs_px.dev, AIOFSYNC_WAKE_BACKGROUND);
	}
	for (i = 0; i < n; i++)
		if (b->has_note[i])
			afs_posix_notify(&b->note[i]);
}

/* The reaper publishes what an aio_suspend() caller handed it. */
static void afs_posix_take_deferred(struct aiofsync_event *ev,
				    struct afs_publish_buf *b)
{
	unsigned int head = atomic_load_explicit(&afs_defer.head,
						 memory_order_relaxed);
	unsigned int tail = atomic_load_explicit(&afs_defer.tail,
						 memory_order_acquire);
	int n = 0;

	while (head != tail && n < AFS_REAP_BATCH)
		ev[n++] = afs_defer.ev[head++ % AFS_DEFER_SLOTS];
	if (!n)
		return;
	/* Only once published: till then the caller hands over what follows. */
	afs_posix_publish(ev, n, b, false);
	atomic_store_explicit(&afs_defer.head, head, memory_order_release);
}

/* Whether the reaping callers have published up to foreground take @t. */
static bool afs_fg_published_up_to(unsigned int t, unsigned int *seen)
{
	*seen = atomic_load(&afs_px.fg_published);
	return (int)(*seen - t) >= 0;
}

/* Up to foreground take @t is published (a later value never goes back). */
static void afs_fg_mark_published(unsigned int t)
{
	unsigned int seen;

	while (!afs_fg_published_up_to(t, &seen))
		if (atomic_compare_exchange_weak(&afs_px.fg_published, &seen, t))
			break;
	if (atomic_load(&afs_px.fg_published_waiters))
		afs_futex_wake(&afs_px.fg_published, INT_MAX);
}

/*
 * The reaper has just taken events, which the device reported after @t
 * foreground takes (AIOFSYNC_IOC_REAP_TAKES): they may be published once
 * what those takes got is, and need not wait for later ones (the device
 * holds those off until the reaper calls again, or for bg_hold_ms, 1 s,
 * longer than this wait can last). A caller that took events returns with
 * them at once, so the wait is short; it is bounded all the same: a caller
 * that never publishes (it left aio_suspend() by siglongjmp() from a
 * signal handler between its reap and its publishing) is waited for
 * 200 ms, and then taken as done.
 */
static void afs_posix_after_fg(unsigned int t)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	unsigned int seen;
	int tries = 10;

	if (afs_fg_published_up_to(t, &seen))
		return;
	atomic_fetch_add(&afs_px.fg_published_waiters, 1);
	while (!afs_fg_published_up_to(t, &seen)) {
		if (!tries--) {
			afs_fg_mark_published(t);
			break;
		}
		afs_futex_wait(&afs_px.fg_published, seen, &pause);
	}
	atomic_fetch_sub(&afs_px.fg_published_waiters, 1);
}

static void *afs_posix_reaper(void *arg)
{
	struct aiofsync_event ev[AFS_REAP_BATCH], handed[AFS_REAP_BATCH];
	struct afs_publish_buf buf;
	int dev = (int)(intptr_t)arg, n;
	uint32_t flags = afs_px.fg_reap ? AIOFSYNC_REAP_BACKGROUND : 0;
	uint32_t takes = 0;

	for (;;) {
		n = afs_dev_reap_takes(dev, ev, 1, AFS_REAP_BATCH,
				       AIOFSYNC_TIMEOUT_INFINITE, flags,
				       afs_px.fg_reap ? &takes : NULL);
		if (n < 0 && n != -EINTR)
			return NULL;	/* the context is gone */
		if (n > 0 && afs_px.fg_reap)
			afs_posix_after_fg(takes);
		/*
		 * What was handed over first: it was reaped before these
		 * events, or at least before any barrier among them (see
		 * afs_px_barrier()).
		 */
		afs_posix_take_deferred(handed, &buf);
		if (n > 0)
			afs_posix_publish(ev, n, &buf, false);
	}
}

/* ---- the process's context ---- */

static void afs_fg_forget(void);

static void afs_px_child(void)
{
	/* The descriptor is the parent's context: its events are not ours. */
	if (atomic_load(&afs_px.state) == AFS_PX_READY)
		close(afs_px.dev);
	atomic_store(&afs_px.fg_busy, 0);
	atomic_store(&afs_px.fg_published, 0);
	atomic_store(&afs_px.fg_published_waiters, 0);
	atomic_store(&afs_px.barriers, 0);
	atomic_store(&afs_defer.head, 0);
	atomic_store(&afs_defer.tail, 0);
	afs_fg_forget();
	atomic_store(&afs_px.state, AFS_PX_NONE);
}

static struct afs_fork_hook afs_px_fork = { .child = afs_px_child };

/* Whether the device has AIOFSYNC_IOC_REAP_TAKES: a new context has no events. */
static bool afs_px_has_takes(int dev)
{
	struct aiofsync_event ev;
	uint32_t takes;

	return afs_dev_reap_takes(dev, &ev, 0, 1, 0, 0, &takes) >= 0;
}

/*
 * AIOFSYNC_FOREGROUND_REAP=0: aio_suspend() callers never reap, the reaper
 * thread publishes everything, as on a module without
 * AIOFSYNC_IOC_REAP_TAKES. For a program that leaves aio_suspend() by
 * siglongjmp() from its signal handlers, which would keep the token; and
 * for the tests of that path. Read once, when the context opens.
 */
static bool afs_px_fg_reap_allowed(void)
{
	const char *v = secure_getenv("AIOFSYNC_FOREGROUND_REAP");

	return !v || strcmp(v, "0");
}

static int afs_px_open(void)
{
	struct aiofsync_info info;
	sigset_t mask;
	int dev, ret;

	afs_fork_hook_add(&afs_px_fork);
	dev = afs_dev_open(&info);
	if (dev < 0)
		return dev;
	afs_px.dev_checks_file = info.req_flags & AIOFSYNC_REQ_NO_APPEND;
	afs_px.fg_reap = (info.reap_flags & AIOFSYNC_REAP_BACKGROUND) &&
			 afs_px_has_takes(dev) && afs_px_fg_reap_allowed();
	pthread_sigmask(SIG_BLOCK, NULL, &mask);
	afs_notify_set_thread_mask(&mask);
	ret = afs_thread_start(afs_posix_reaper, (void *)(intptr_t)dev);
	if (ret) {
		close(dev);
		return -EAGAIN;
	}
	return dev;
}

/* The context's descriptor, opened on first use; or -errno. */
static int afs_px_dev(void)
{
	unsigned int s;
	int dev;

	for (;;) {
		s = atomic_load(&afs_px.state);
		if (s == AFS_PX_READY)
			return afs_px.dev;
		if (s == AFS_PX_OPENING) {
			afs_futex_wait(&afs_px.state, s, NULL);
			continue;
		}
		if (!atomic_compare_exchange_strong(&afs_px.state, &s,
						    AFS_PX_OPENING))
			continue;
		/* Failure is not remembered: a module loaded later is used. */
		dev = afs_px_open();
		if (dev >= 0)
			afs_px.dev = dev;
		atomic_store(&afs_px.state, dev >= 0 ? AFS_PX_READY : AFS_PX_NONE);
		afs_futex_wake(&afs_px.state, INT_MAX);
		return dev;
	}
}

static bool afs_barrier_done(void *arg)
{
	return atomic_load(&((struct afs_barrier *)arg)->done);
}

/* A barrier's marker, posted again as room may have come. */
struct afs_marker_try {
	int dev;
	uint64_t tag;
	int ret;
};

/* Posted, or refused for another reason than a full context or device. */
static bool afs_marker_posted(void *arg)
{
	struct afs_marker_try *t = arg;

	t->ret = afs_dev_post_marker(t->dev, t->tag);
	return t->ret != -EAGAIN && t->ret != -ENOMEM;
}

/* How long a barrier waits for room while no device event is published. */
#define AFS_BARRIER_ROOM_SEC	1

/*
 * Queue a barrier and wait until everything reaped before it is published.
 * That needs one publisher, in reaping order: an aio_suspend() caller that
 * reaps the device is asked to stop first (and none starts until the
 * barrier is through), and the reaper publishes what such a caller handed
 * it before anything it reaps after that. 0, or -EAGAIN when the barrier
 * could not be queued.
 */
static int afs_px_barrier(int dev)
{
	struct afs_barrier b = { false };
	struct afs_marker_try t = { dev, (uintptr_t)&b | AFS_TAG_BARRIER, 0 };
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	struct timespec room = { AFS_BARRIER_ROOM_SEC, 0 };
	struct afs_deadline d;
	unsigned int seen;
	int tries = 10, ret;

	atomic_fetch_add(&afs_px.barriers, 1);
	/*
	 * Bounded: a caller that left aio_suspend() by siglongjmp() from a
	 * signal handler never puts the token back. The barrier then goes on
	 * without it (such a caller no longer reaps).
	 */
	while (atomic_load(&afs_px.fg_busy) && tries--) {
		afs_dev_wake(dev, 0);
		afs_futex_wait(&afs_px.fg_busy, 1, &pause);
	}
	/*
	 * A full context (or device) has room again only once events are
	 * reaped, which the reaper does on its own: try again after each
	 * completion published. Requests that stay unfinished (a stalled
	 * write, a slow disk, another process's requests) may keep it full
	 * for as long as they like, and the program may be waiting for this
	 * call to end them: give up after a second in which no device event
	 * was published. By then nothing the barrier waits for is left to
	 * publish: what was reaped is published at once, and what was there
	 * to reap would have made room.
	 */
	do {
		seen = atomic_load(&afs_px.published);
		afs_deadline_init(&d, &room);
		ret = afs_completion_wait(afs_marker_posted, &t, &d, true);
	} while (ret && atomic_load(&afs_px.published) != seen);
	if (!ret && !t.ret) {
		/* Signals do not end this wait: the barrier is on its way. */
		afs_completion_wait(afs_barrier_done, &b, NULL, true);
	}
	atomic_fetch_sub(&afs_px.barriers, 1);
	return ret || t.ret ? -EAGAIN : 0;
}

/* ---- submission ---- */

static void afs_fb_posix_done(struct afs_fb_req *req)
{
	bool sync = req->opcode == AIOFSYNC_OP_FSYNC ||
		    req->opcode == AIOFSYNC_OP_FDATASYNC;

	/*
	 * A sync the helpers ran through a context of their own waited for
	 * the device's writes to the file, whose completions may still be on
	 * their way through this process's context: publish it after them.
	 */
	/*
	 * A barrier that found no room has waited until nothing was left
	 * to publish (see there): the sync's own result goes on.
	 */
	if (sync && req->res != -ECANCELED &&
	    atomic_load(&afs_px.state) == AFS_PX_READY)
		(void)afs_px_barrier(afs_px.dev);
	afs_posix_complete((struct aiocb *)(uintptr_t)req->tag, req->res);
}

static int afs_posix_fallback(struct aiocb *cb, const struct aiofsync_req *r)
{
	struct afs_fb_req *req = malloc(sizeof(*req));
	int ret;

	if (!req)
		return EAGAIN;
	memset(req, 0, sizeof(*req));
	req->fd = cb->aio_fildes;
	req->opcode = r->opcode;
	req->buf = (void *)(uintptr_t)r->addr;
	req->len = r->len;
	req->offset = (off_t)r->offset;
	req->owner = AFS_PX_OWNER;
	req->tag = (uintptr_t)cb;
	req->done = afs_fb_posix_done;
	ret = afs_fb_submit(req);
	if (ret)
		free(req);
	return -ret;
}

/* Errors of a request the device refused, as aio_*() report them. */
static int afs_posix_refused(int err)
{
	return err == ENOMEM ? EAGAIN : err;
}

/* What the device refuses by nature of the file or buffer: helpers run it. */
static bool afs_posix_wants_fallback(int err)
{
	return err == ESPIPE || err == EINVAL || err == EFAULT;
}

/*
 * Record a request that could not be queued; another thread may already
 * wait for it in aio_suspend().
 */
static void afs_posix_not_queued(struct aiocb *cb, int err)
{
	uintptr_t key = (uintptr_t)cb;

	cb->__return_value = -1;
	atomic_store_explicit(afs_error_code(cb), err, memory_order_release);
	afs_completion_wake();
	afs_watch_wake(&key, 1);
	afs_posix_kick_fg();
}

/*
 * Check @cb for @opcode and fill @r. Returns 0, or the errno the call must
 * fail with; *fallback says the helpers must run it.
 */
static int afs_posix_prepare(struct aiocb *cb, uint32_t opcode, bool range,
			     struct aiofsync_req *r, bool *fallback)
{
	bool rw = opcode == AIOFSYNC_OP_READ || opcode == AIOFSYNC_OP_WRITE;
	uint64_t len = 0;
	int fl;

	if (!cb || afs_sigev_check(&cb->aio_sigevent))
		return EINVAL;
	if (rw && (cb->aio_reqprio < 0 || cb->aio_reqprio > AIO_PRIO_DELTA_MAX))
		return EINVAL;
	if ((rw || range) && cb->aio_offset < 0)
		return EINVAL;
	afs_dev_req_init(r, opcode, cb->aio_fildes, (uintptr_t)cb);
	/*
	 * EBADF at call time, as glibc. Once the context is open, a device
	 * that takes AIOFSYNC_REQ_NO_APPEND checks the descriptor in the
	 * submit itself: EBADF for the access mode, and EINVAL for an append,
	 * which afs_posix_queue() then hands to the helpers. That saves an
	 * fcntl() per request: a third of the system calls of a write.
	 */
	if (afs_posix_started() && afs_px.dev_checks_file) {
		if (opcode == AIOFSYNC_OP_WRITE)
			r->flags = AIOFSYNC_REQ_NO_APPEND;
		fl = 0;
	} else {
		fl = fcntl(cb->aio_fildes, F_GETFL);
		if (fl < 0)
			return EBADF;
		if (opcode == AIOFSYNC_OP_READ ?
		    (fl & O_ACCMODE) == O_WRONLY : (fl & O_ACCMODE) == O_RDONLY)
			return EBADF;
	}

	if (rw || range) {
		len = cb->aio_nbytes;
		/* As the system call would: a short transfer, not an error. */
		if (rw && len > AFS_MAX_RW)
			len = AFS_MAX_RW;
		if (len > (uint64_t)INT64_MAX - (uint64_t)cb->aio_offset)
			len = (uint64_t)INT64_MAX - (uint64_t)cb->aio_offset;
		r->offset = (uint64_t)cb->aio_offset;
		r->len = len;
	}
	if (rw) {
		r->addr = (uintptr_t)cb->aio_buf;
		r->prio = (uint32_t)cb->aio_reqprio;
	}
	*fallback = opcode != AIOFSYNC_OP_READ && (fl & O_APPEND);
	/* A sync must also cover the helpers' unfinished writes to the file. */
	if (!*fallback && opcode != AIOFSYNC_OP_READ &&
	    opcode != AIOFSYNC_OP_WRITE && afs_fb_file_busy(cb->aio_fildes))
		*fallback = true;
	return 0;
}

/* Make @cb "in progress", owned by @group, before it can complete. */
static void afs_posix_arm(struct aiocb *cb, struct afs_lio_group *group,
			  uint32_t flags)
{
	struct afs_priv *p = afs_priv(cb);

	afs_wc_forget(cb);
	p->group = group;
	p->flags = flags;
	cb->__return_value = 0;
	atomic_store_explicit(afs_error_code(cb), EINPROGRESS,
			      memory_order_release);
}

/*
 * Queue @n prepared requests (a run of the device-bound ones in one ioctl).
 * err[i] gets 0 for each queued request, else its error.
 */
static void afs_posix_queue(int dev, struct aiocb **cbs,
			    struct aiofsync_req *reqs, const bool *fallback,
			    int *err, int n)
{
	int i = 0, run, got;

	while (i < n) {
		if (fallback[i]) {
			err[i] = afs_posix_fallback(cbs[i], &reqs[i]);
			i++;
			continue;
		}
		for (run = i; run < n && !fallback[run]; run++)
			;
		got = afs_dev_submit(dev, &reqs[i], (unsigned int)(run - i));
		if (!got)
			got = -EAGAIN;
		if (got > 0) {
			while (got--)
				err[i++] = 0;
			continue;
		}
		/* The first of the run was refused. */
		err[i] = afs_posix_wants_fallback(-got) ?
			 afs_posix_fallback(cbs[i], &reqs[i]) :
			 afs_posix_refused(-got);
		i++;
	}
	for (i = 0; i < n; i++)
		if (err[i])
			afs_posix_not_queued(cbs[i], err[i]);
}

static int afs_posix_submit(struct aiocb *cb, uint32_t opcode, bool range)
{
	struct aiofsync_req r;
	bool fallback = false;
	int dev, err;

	err = afs_posix_prepare(cb, opcode, range, &r, &fallback);
	if (!err) {
		dev = afs_px_dev();
		err = dev < 0 ? -dev : 0;
	}
	if (err) {
		errno = err;
		return -1;
	}
	afs_posix_arm(cb, NULL, 0);
	afs_posix_queue(dev, &cb, &r, &fallback, &err, 1);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

/* ---- the API ---- */

static int afs_aio_read(struct aiocb *cb)
{
	return afs_posix_submit(cb, AIOFSYNC_OP_READ, false);
}

static int afs_aio_write(struct aiocb *cb)
{
	return afs_posix_submit(cb, AIOFSYNC_OP_WRITE, false);
}

static int afs_sync_opcode(int op, uint32_t *opcode)
{
	/* Exact values: glibc's O_SYNC contains the O_DSYNC bit. */
	if (op == O_SYNC)
		*opcode = AIOFSYNC_OP_FSYNC;
	else if (op == O_DSYNC)
		*opcode = AIOFSYNC_OP_FDATASYNC;
	else
		return EINVAL;
	return 0;
}

static int afs_posix_sync(int op, struct aiocb *cb, bool range)
{
	uint32_t opcode;

	if (afs_sync_opcode(op, &opcode)) {
		errno = EINVAL;
		return -1;
	}
	return afs_posix_submit(cb, opcode, range);
}

static int afs_aio_fsync(int op, struct aiocb *cb)
{
	return afs_posix_sync(op, cb, false);
}

static int afs_aiofsync_fsync_range(int op, struct aiocb *cb)
{
	return afs_posix_sync(op, cb, true);
}

static int afs_aio_error(const struct aiocb *cb)
{
	if (!cb) {
		errno = EINVAL;
		return -1;
	}
	return atomic_load_explicit(afs_error_code(cb), memory_order_acquire);
}

static ssize_t afs_aio_return(struct aiocb *cb)
{
	if (!cb) {
		errno = EINVAL;
		return -1;
	}
	if (atomic_load_explicit(afs_error_code(cb), memory_order_acquire) ==
	    EINPROGRESS) {
		errno = EINPROGRESS;
		return -1;
	}
	/* Claimed: aio_waitcomplete() must not hand it out any more. */
	afs_wc_forget(cb);
	return cb->__return_value;
}

static bool afs_is_done(const struct aiocb *cb)
{
	return atomic_load_explicit(afs_error_code(cb), memory_order_acquire) !=
	       EINPROGRESS;
}

struct afs_list {
	const struct aiocb *const *cbs;
	int n;
};

/* aio_suspend(): any element done (NULL elements are ignored). */
static bool afs_list_any_done(void *arg)
{
	const struct afs_list *l = arg;
	int i;

	for (i = 0; i < l->n; i++)
		if (l->cbs[i] && afs_is_done(l->cbs[i]))
			return true;
	return false;
}

/*
 * The batch the reaping aio_suspend() caller holds (afs_suspend_reaping()):
 * once AIOFSYNC_IOC_REAP has copied events here they are nowhere else until
 * published. A signal handler on that thread may call aio_suspend() for one
 * of them while the caller is stopped with the batch in hand, so the batch
 * carries its own state: a slot whose tag is not 0 holds an event nobody
 * published yet (a tag is never 0: an aiocb or a barrier address). Whoever
 * publishes it - the caller, or a handler that interrupted it - does so
 * with signals blocked and clears the tag before unblocking.
 */
static struct {
	struct aiofsync_event ev[AFS_FG_BATCH];
	struct afs_publish_buf buf;
	atomic_uintptr_t owner;	/* the token holder (afs_thread_self()), or 0 */
	/* The device's fg_takes after the batch's take. */
	uint32_t takes;
} afs_fg;

/*
 * In the child after fork(): a batch held across it - by another thread, or
 * by this one when a signal handler forked - is the parent's. Whoever reaps
 * or goes on reaping here would publish it into the child's copies of the
 * parent's aiocbs, and mark the parent's count of takes as published in
 * the child's.
 */
static void afs_fg_forget(void)
{
	int i;

	for (i = 0; i < AFS_FG_BATCH; i++)
		afs_fg.ev[i].user_tag = 0;
	afs_fg.takes = 0;
	atomic_store(&afs_fg.owner, 0);
}

/* Publish the events of afs_fg.ev still unpublished; signals blocked. */
static void afs_fg_publish_held(void)
{
	struct aiofsync_event held[AFS_FG_BATCH];
	int i, n = 0;

	for (i = 0; i < AFS_FG_BATCH; i++) {
		if (!afs_fg.ev[i].user_tag)
			continue;
		held[n++] = afs_fg.ev[i];
		afs_fg.ev[i].user_tag = 0;
	}
	if (!n)
		return;
	afs_posix_publish(held, n, &afs_fg.buf, true);
	/*
	 * A handler that interrupted the caller before it stored the count
	 * of this batch marks an older one: the caller marks this one when
	 * it goes on (afs_suspend_reaping()).
	 */
	afs_fg_mark_published(afs_fg.takes);
}

/*
 * aio_suspend() as the device's foreground reaper: the device wakes this
 * thread for the next completion, whoever's it is, and leaves the reaper
 * thread asleep; the thread publishes it (waking other aio_suspend()
 * callers whose request it is) and returns once one of its own list is
 * done. That saves the hand-off through the reaper thread. One caller at a
 * time: more would all be woken for every completion, which watches avoid.
 * Returns 0, -EAGAIN (timeout), -EINTR, or -ENOENT when another caller
 * reaps, the device lacks background reapers, or none is open: then wait on
 * a watch. A signal handler that interrupted the reaping caller on its own
 * thread first publishes the batch that caller held, then watches.
 */
static int afs_suspend_reaping(struct afs_list *l,
			       const struct afs_deadline *d)
{
	struct timespec left = { 0, 0 };
	sigset_t all, old;
	uint64_t timeout_ns;
	int n, ret = 0;

	if (atomic_load(&afs_px.state) != AFS_PX_READY || !afs_px.fg_reap)
		return -ENOENT;
	sigfillset(&all);
	if (atomic_exchange(&afs_px.fg_busy, 1)) {
		if (atomic_load(&afs_fg.owner) == afs_thread_self()) {
			pthread_sigmask(SIG_BLOCK, &all, &old);
			afs_fg_publish_held();
			pthread_sigmask(SIG_SETMASK, &old, NULL);
		}
		return -ENOENT;
	}
	/* The token before the list, as a publisher's fence before the token. */
	atomic_thread_fence(memory_order_seq_cst);
	atomic_store(&afs_fg.owner, afs_thread_self());
	/* The batch, and the tail of afs_defer, are the token holder's. */
	while (!afs_list_any_done(l)) {
		/*
		 * A barrier wants the reaper alone; and there must be room to
		 * hand over a whole batch. Else leave it to the reaper.
		 */
		if (atomic_load(&afs_px.barriers) ||
		    atomic_load(&afs_defer.tail) - atomic_load(&afs_defer.head) >
		    AFS_DEFER_SLOTS - AFS_FG_BATCH) {
			ret = -ENOENT;
			break;
		}
		if (!afs_deadline_left(d, &left)) {
			ret = -EAGAIN;
			break;
		}
		timeout_ns = d->forever ? AIOFSYNC_TIMEOUT_INFINITE :
			     (uint64_t)left.tv_sec * AFS_NS_PER_SEC +
			     (uint64_t)left.tv_nsec;
		n = afs_dev_reap_takes(afs_px.dev, afs_fg.ev, 1, AFS_FG_BATCH,
				       timeout_ns, 0, &afs_fg.takes);
		if (n > 0) {
			pthread_sigmask(SIG_BLOCK, &all, &old);
			afs_fg_publish_held();
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			afs_fg_mark_published(afs_fg.takes);
		}
		if (n == -EINTR) {
			ret = -EINTR;
			break;
		}
		if (n < 0) {
			ret = -ENOENT;
			break;
		}
	}
	atomic_store(&afs_fg.owner, 0);
	atomic_store(&afs_px.fg_busy, 0);
	if (atomic_load(&afs_px.barriers))
		afs_futex_wake(&afs_px.fg_busy, INT_MAX);
	return ret;
}

static int afs_aio_suspend(const struct aiocb *const list[], int nent,
			   const struct timespec *timeout)
{
	struct afs_list l = { list, nent };
	struct afs_deadline deadline;
	struct afs_watch *w;
	int ret;

	if (nent < 0 || (nent && !list) ||
	    afs_deadline_init(&deadline, timeout)) {
		errno = EINVAL;
		return -1;
	}
	if (afs_list_any_done(&l))
		return 0;
	ret = afs_suspend_reaping(&l, &deadline);
	if (ret != -ENOENT) {
		if (ret)
			errno = -ret;
		return ret ? -1 : 0;
	}
	/* Woken only by the completions of its own list (watch.c). */
	w = afs_watch_start((const void *const *)list, nent);
	if (w) {
		ret = afs_watch_wait(w, afs_list_any_done, &l, &deadline);
		afs_watch_end(w);
	} else {
		ret = afs_completion_wait(afs_list_any_done, &l, &deadline,
					  false);
	}
	if (ret)
		errno = -ret;
	return ret ? -1 : 0;
}

static int afs_aio_cancel(int fd, struct aiocb *cb)
{
	unsigned int fb_canceled = 0, fb_running = 0;
	uint32_t canceled = 0, running = 0;
	int dev;

	if (fcntl(fd, F_GETFL) < 0) {
		errno = EBADF;
		return -1;
	}
	if (cb && cb->aio_fildes != fd) {
		errno = EINVAL;
		return -1;
	}
	if (!afs_posix_started() || (cb && afs_is_done(cb)))
		return AIO_ALLDONE;
	dev = afs_px.dev;

	/* Helpers first: a cancelled queued request completes right here. */
	afs_fb_cancel(AFS_PX_OWNER, fd, (uintptr_t)cb, !cb, &fb_canceled,
		      &fb_running);
	if (cb && (fb_canceled || fb_running))
		return fb_canceled ? AIO_CANCELED : AIO_NOTCANCELED;
	/*
	 * Neither queued nor running there may still mean publishing: a
	 * helper's request that has run is done once its result is in the
	 * aiocb, as with glibc, which stores it under the lock its
	 * aio_cancel() takes.
	 */
	if (!fb_running)
		afs_fb_wait_settled(AFS_PX_OWNER, fd, (uintptr_t)cb, !cb);

	if (cb)
		afs_dev_cancel(dev, AIOFSYNC_CANCEL_TAG, fd, (uintptr_t)cb,
			       &canceled, &running);
	else
		afs_dev_cancel(dev, AIOFSYNC_CANCEL_FD, fd, 0, &canceled,
			       &running);
	/*
	 * The cancelled requests' events are in the completion queue now,
	 * and so are those of the requests that finished before the call; a
	 * barrier behind them returns once the reaper published them, so that
	 * aio_error() says ECANCELED, or the result, when we return
	 * AIO_CANCELED or AIO_ALLDONE. (Not for AIO_NOTCANCELED alone: those
	 * still in progress are what it says.) A context that stays full
	 * takes no barrier: then AIO_NOTCANCELED, which promises no status,
	 * may still be said; else -1 with EAGAIN, as POSIX lets a function
	 * fail for a resource it lacks: the call may be made again, and what
	 * it cancelled completes with ECANCELED all the same.
	 */
	if ((canceled || (!running && !fb_running)) && afs_px_barrier(dev) &&
	    !running && !fb_running) {
		errno = EAGAIN;
		return -1;
	}
	if (running || fb_running)
		return AIO_NOTCANCELED;
	if (canceled || fb_canceled)
		return AIO_CANCELED;
	return AIO_ALLDONE;
}

/* ---- lio_listio ---- */

static int afs_lio_prepare(struct aiocb *cb, struct aiofsync_req *r,
			   bool *fallback)
{
	switch (cb->aio_lio_opcode) {
	case LIO_READ:
		return afs_posix_prepare(cb, AIOFSYNC_OP_READ, false, r, fallback);
	case LIO_WRITE:
		return afs_posix_prepare(cb, AIOFSYNC_OP_WRITE, false, r, fallback);
	default:
		return EINVAL;
	}
}

static bool afs_lio_counts(const struct aiocb *cb)
{
	return cb && cb->aio_lio_opcode != LIO_NOP;
}

/* lio_listio(LIO_WAIT): every element done. */
static bool afs_list_all_done(void *arg)
{
	const struct afs_list *l = arg;
	int i;

	for (i = 0; i < l->n; i++)
		if (afs_lio_counts(l->cbs[i]) && !afs_is_done(l->cbs[i]))
			return false;
	return true;
}

/*
 * Queue the elements in batches. Returns the worst element error (EAGAIN
 * wins over the others: the caller may retry), 0 if all were queued.
 */
static int afs_lio_queue(int dev, struct aiocb *const list[], int nent,
			 struct afs_lio_group *group, uint32_t flags)
{
	struct aiofsync_req reqs[AFS_SUBMIT_BATCH];
	struct aiocb *cbs[AFS_SUBMIT_BATCH];
	bool fallback[AFS_SUBMIT_BATCH];
	int err[AFS_SUBMIT_BATCH];
	int i = 0, n, k, e, worst = 0;

	while (i < nent) {
		for (n = 0; i < nent && n < AFS_SUBMIT_BATCH; i++) {
			struct aiocb *cb = list[i];

			if (!afs_lio_counts(cb))
				continue;
			fallback[n] = false;
			e = afs_lio_prepare(cb, &reqs[n], &fallback[n]);
			if (e) {
				afs_posix_not_queued(cb, e);
				worst = worst == EAGAIN ? worst : EIO;
				continue;
			}
			if (group)
				atomic_fetch_add(&group->remaining, 1);
			afs_posix_arm(cb, group, flags);
			cbs[n++] = cb;
		}
		afs_posix_queue(dev, cbs, reqs, fallback, err, n);
		for (k = 0; k < n; k++) {
			if (!err[k])
				continue;
			if (group)
				afs_lio_group_put(group);
			worst = err[k] == EAGAIN ? EAGAIN :
				worst == EAGAIN ? worst : EIO;
		}
	}
	return worst;
}

static bool afs_lio_any_failed(struct aiocb *const list[], int nent)
{
	int i;

	for (i = 0; i < nent; i++)
		if (afs_lio_counts(list[i]) && atomic_load(afs_error_code(list[i])))
			return true;
	return false;
}

static int afs_lio_listio_common(int mode, struct aiocb *const list[],
				 int nent, struct sigevent *sig,
				 uint32_t flags)
{
	struct afs_lio_group *group = NULL;
	int dev, err;

	if ((mode != LIO_WAIT && mode != LIO_NOWAIT) || nent < 0 ||
	    (nent && !list) ||
	    (mode == LIO_NOWAIT && sig && afs_sigev_check(sig))) {
		errno = EINVAL;
		return -1;
	}
	dev = afs_px_dev();
	if (dev < 0) {
		errno = -dev;
		return -1;
	}
	if (mode == LIO_NOWAIT && sig && sig->sigev_notify != SIGEV_NONE) {
		group = malloc(sizeof(*group));
		if (!group) {
			errno = EAGAIN;
			return -1;
		}
		/* Our own hold, so no completion tells the group too early. */
		atomic_init(&group->remaining, 1);
		group->sev = *sig;
	}

	err = afs_lio_queue(dev, list, nent, group, flags);
	if (group)
		afs_lio_group_put(group);
	/*
	 * LIO_WAIT returns when every queued element is done, even if some
	 * could not be queued: the caller may reuse the buffers then.
	 */
	if (mode == LIO_WAIT) {
		struct afs_list l = { (const struct aiocb *const *)list, nent };
		int wait_err = -afs_completion_wait(afs_list_all_done, &l,
						    NULL, false);

		if (wait_err)
			err = wait_err;
		else if (!err && afs_lio_any_failed(list, nent))
			err = EIO;
	}
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

static int afs_lio_listio(int mode, struct aiocb *const list[], int nent,
			  struct sigevent *sig)
{
	return afs_lio_listio_common(mode, list, nent, sig, 0);
}

/* glibc before 2.4: the elements' own aio_sigevent are not used. */
static int afs_lio_listio_old(int mode, struct aiocb *const list[], int nent,
			      struct sigevent *sig)
{
	return afs_lio_listio_common(mode, list, nent, sig, AFS_PRIV_NO_NOTIFY);
}

static void afs_aio_init(const struct aioinit *init)
{
	if (init)
		afs_fb_configure(init->aio_threads, init->aio_idle_time);
}

static int afs_aiofsync_available(void)
{
	int dev = afs_px_dev();

	if (dev < 0) {
		errno = -dev;
		return -1;
	}
	return 0;
}

/*
 * The *64 names take struct aiocb64, the same layout as struct aiocb on
 * 64-bit systems (fio's posixaio engine calls only those).
 */
_Static_assert(sizeof(struct aiocb) == sizeof(struct aiocb64) &&
	       offsetof(struct aiocb, aio_offset) ==
	       offsetof(struct aiocb64, aio_offset) &&
	       offsetof(struct aiocb, __glibc_reserved) ==
	       offsetof(struct aiocb64, __glibc_reserved),
	       "struct aiocb64 must be struct aiocb");

/*
 * Exported names: AIOFSYNC_1.0 for programs linked against us, glibc's
 * versions so that binaries built against glibc bind to us when we come
 * first (LD_PRELOAD, or -laiofsync ahead of libc).
 */
#define AFS_EXPORT_POSIX(impl, name)					\
	AFS_EXPORT(impl, name, "AIOFSYNC_1.0");				\
	AFS_EXPORT_ALSO(impl, name, "GLIBC_2.2.5", g1);			\
	AFS_EXPORT_ALSO(impl, name, "GLIBC_2.34", g2)
#define AFS_EXPORT_POSIX2(impl, name)					\
	AFS_EXPORT_POSIX(impl, name);					\
	AFS_EXPORT_POSIX(impl, name##64)

AFS_EXPORT_POSIX2(afs_aio_read, aio_read);
AFS_EXPORT_POSIX2(afs_aio_write, aio_write);
AFS_EXPORT_POSIX2(afs_aio_fsync, aio_fsync);
AFS_EXPORT_POSIX2(afs_aio_error, aio_error);
AFS_EXPORT_POSIX2(afs_aio_return, aio_return);
AFS_EXPORT_POSIX2(afs_aio_suspend, aio_suspend);
AFS_EXPORT_POSIX2(afs_aio_cancel, aio_cancel);
AFS_EXPORT_POSIX(afs_aio_init, aio_init);

AFS_EXPORT(afs_lio_listio, lio_listio, "AIOFSYNC_1.0");
AFS_EXPORT_ALSO(afs_lio_listio, lio_listio, "GLIBC_2.4", g1);
AFS_EXPORT_ALSO(afs_lio_listio, lio_listio, "GLIBC_2.34", g2);
AFS_EXPORT_ALSO(afs_lio_listio_old, lio_listio, "GLIBC_2.2.5", g0);
AFS_EXPORT(afs_lio_listio, lio_listio64, "AIOFSYNC_1.0");
AFS_EXPORT_ALSO(afs_lio_listio, lio_listio64, "GLIBC_2.4", g1);
AFS_EXPORT_ALSO(afs_lio_listio, lio_listio64, "GLIBC_2.34", g2);
AFS_EXPORT_ALSO(afs_lio_listio_old, lio_listio64, "GLIBC_2.2.5", g0);

AFS_EXPORT(afs_aiofsync_fsync_range, aiofsync_fsync_range, "AIOFSYNC_1.0");
AFS_EXPORT(afs_aiofsync_available, aiofsync_available, "AIOFSYNC_1.0");
