// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The libaio API on /dev/aiofsync: io_setup() opens a device context,
 * io_submit() translates iocbs into device requests, io_getevents() reaps.
 *
 * io_context_t points to struct io_context below. The iocb layout is the
 * kernel's (<linux/aio_abi.h>), which libaio's <libaio.h> mirrors, so
 * programs built with libaio's header and its inline helpers (io_prep_*,
 * io_set_callback, io_set_eventfd) work unchanged. Functions return -errno,
 * as libaio's do.
 *
 * The device carries one 64-bit user_tag per request, but an io_event needs
 * two words from submit time: the iocb pointer (obj) and its data. Kernel
 * AIO lets a program reuse or free an iocb as soon as io_submit() returns,
 * so data cannot be read back from the iocb at reap time. Each context has
 * a slot table instead, sized from io_setup()'s nr_events; the tag is the
 * slot number and the slot's generation, bumped each time the slot is taken,
 * so that io_cancel() names the request it found and never one submitted
 * into the slot after it. Slots are taken and given back through a lock-free
 * stack, so neither submission nor reaping takes a lock.
 *
 * Files without positioned I/O (pipes, sockets), which kernel AIO serves
 * synchronously, are refused by the device with ESPIPE, and syncs of files
 * open read-only with EBADF: the helper threads of fallback.c run those.
 * Kernel AIO has made such a read or write by the time io_submit() returns,
 * so io_destroy() waits for every helper request, never drops a queued one,
 * and io_cancel() never stops a helper's write (AFS_TAG_NOCANCEL).
 * Their completions wait in a queue of the context, and the helper ends the
 * wait of the context's reapers with AIOFSYNC_IOC_WAKE (afs_ctx_kick()), so
 * that io_getevents() still only waits in the device. (A marker event in the
 * device would need room there, which a full context does not have.)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <linux/aio_abi.h>

#include "internal.h"

#define AFS_CTX_MAGIC	0xa10f5c7bU
#define AFS_MAX_RW	0x7ffff000UL
#define AFS_SUBMIT_BATCH 64
#define AFS_FB_TAKE	16
#define AFS_RUN_BATCH	16

/*
 * In the tag a helper WRITE is queued under (bit 0, free in a slot's tag):
 * io_cancel(), which cancels by the slot's tag, never matches it. The slot
 * is still the tag shifted right.
 */
#define AFS_TAG_NOCANCEL	0x1ULL

struct afs_slot {
	_Atomic uintptr_t iocb;		/* the iocb while in flight, else 0 */
	_Atomic uint32_t gen;		/* bumped as the slot is taken */
	uint64_t data;			/* its data word, taken at submit */
	int64_t res;			/* result of a fallback request */
};

/* A tag: generation << 32 | slot << 1. */
static uint64_t afs_tag(uint32_t gen, uint32_t idx)
{
	return (uint64_t)gen << 32 | (uint64_t)idx << 1;
}

static uint32_t afs_tag_slot(uint64_t tag)
{
	return (uint32_t)tag >> 1;
}

/*
 * A context's header is never freed: io_destroy() gives it to the next
 * io_setup(). A call on a destroyed context reads only the header and says
 * -EINVAL, as the system call does for an unknown context; a recycled one
 * names the new context, as a kernel context id can be reused.
 */
struct io_context {
	_Atomic uint32_t magic;
	int dev;
	unsigned int generation;	/* afs_fork_generation at io_setup */
	/*
	 * io_setup's, one per fallback request, one per call running on it:
	 * io_destroy() waits on it (a futex) until all have gone.
	 */
	atomic_uint refs;
	atomic_bool dead;		/* io_destroy() was called */
	/*
	 * Bumped by each io_setup() that takes the header: a handle kept
	 * across a callback tells whether its context is still the one it
	 * was (io_queue_run()), even once the header names a new context.
	 */
	atomic_uint serial;
	uint32_t nslots;
	struct afs_slot *slot;		/* [nslots + 1]: index 0 is "none" */
	/* Links of the free list, and of fb_head's queue: same indices */
	_Atomic uint32_t *next;
	struct afs_idxstack free;
	/*
	 * Slots of helper requests done, oldest first: their completions,
	 * which io_getevents() takes before the device's (afs_fb_take()).
	 */
	pthread_mutex_t fb_lock;
	uint32_t fb_head, fb_tail;
	atomic_uint fb_ready;		/* how many, for a look without the lock */
	/* An eventfd that ends ppoll() waits as the device's wake ends REAP */
	atomic_int kick;		/* -1 until afs_ctx_kickfd() */
	struct io_context *list_next;	/* all contexts, for fork() */
};

typedef struct io_context *io_context_t;
typedef void (*io_callback_t)(io_context_t ctx, struct iocb *iocb, long res,
			      long res2);

/* ---- contexts ---- */

/* Every context, so that a child after fork() can let go of them. */
static struct {
	pthread_mutex_t lock;
	struct io_context *head;
	struct io_context *spare;	/* destroyed headers, for io_setup() */
} afs_ctxs = { .lock = PTHREAD_MUTEX_INITIALIZER };

/*
 * Kernel AIO contexts do not survive into a child; ours must not either: the
 * child would reap the parent's events, and would keep the parent's context
 * open past the parent's io_destroy(). The memory stays (the program may
 * still call io_destroy(), which then says EINVAL). A destroyed context stays
 * on the list until io_destroy() has waited for its requests.
 */
static void afs_ctxs_child(void)
{
	struct io_context *ctx;

	for (ctx = afs_ctxs.head; ctx; ctx = ctx->list_next) {
		close(ctx->dev);
		if (ctx->kick >= 0)
			close(ctx->kick);
	}
	afs_ctxs.head = NULL;
}

static struct afs_fork_hook afs_ctxs_fork = {
	.lock = &afs_ctxs.lock,
	.child = afs_ctxs_child,
};

/*
 * io_destroy() waits for every request of the context, as the system call
 * does: reap until no slot is taken. (Fallback requests hold a reference:
 * by now they are all done, their completions queued or, done after
 * io_destroy() began, dropped.) Nothing else runs on the context any more.
 */
static void afs_ctx_drain(struct io_context *ctx)
{
	struct aiofsync_event ev[64];
	uint32_t idx, busy = 0;
	int i, n;

	for (idx = ctx->fb_head; idx; idx = atomic_load(&ctx->next[idx]))
		atomic_store(&ctx->slot[idx].iocb, 0);
	ctx->fb_head = ctx->fb_tail = 0;
	atomic_store(&ctx->fb_ready, 0);
	for (idx = 1; idx <= ctx->nslots; idx++)
		busy += !!atomic_load_explicit(&ctx->slot[idx].iocb,
					       memory_order_relaxed);
	while (busy) {
		n = afs_dev_reap(ctx->dev, ev, 1, busy < 64 ? busy : 64,
				 AIOFSYNC_TIMEOUT_INFINITE);
		/* 0: the wake of a kick, kept for the next reaper. */
		if (n == -EINTR || !n)
			continue;
		if (n < 0)
			break;
		for (i = 0; i < n; i++) {
			idx = afs_tag_slot(ev[i].user_tag);
			if (idx && idx <= ctx->nslots &&
			    atomic_exchange_explicit(&ctx->slot[idx].iocb, 0,
						     memory_order_relaxed))
				busy--;
		}
	}
}

/*
 * The last reference goes only once io_destroy() has dropped io_setup()'s:
 * wake it. (The header is never freed, so touching it after is harmless.)
 */
static void afs_ctx_put(struct io_context *ctx)
{
	if (atomic_fetch_sub(&ctx->refs, 1) == 1)
		afs_futex_wake(&ctx->refs, INT_MAX);
}

/* io_destroy(), once no reference is left. */
static void afs_ctx_free(struct io_context *ctx)
{
	struct io_context **p;

	/* The wait is here, not under the lock that fork() and io_setup() take. */
	afs_ctx_drain(ctx);
	/* Off the list and closed at once, as a fork() in between sees it. */
	pthread_mutex_lock(&afs_ctxs.lock);
	for (p = &afs_ctxs.head; *p; p = &(*p)->list_next) {
		if (*p == ctx) {
			*p = ctx->list_next;
			break;
		}
	}
	close(ctx->dev);
	if (ctx->kick >= 0)
		close(ctx->kick);
	ctx->kick = -1;
	atomic_store(&ctx->magic, 0);
	free(ctx->slot);
	free(ctx->next);
	ctx->slot = NULL;
	ctx->next = NULL;
	ctx->list_next = afs_ctxs.spare;
	afs_ctxs.spare = ctx;
	pthread_mutex_unlock(&afs_ctxs.lock);
}

/*
 * Enter a call on a context of this process, not destroyed: false, or true
 * with a reference that keeps its slots and descriptor until afs_ctx_put().
 */
static bool afs_ctx_get(struct io_context *ctx)
{
	unsigned int refs;

	if (!ctx || atomic_load(&ctx->magic) != AFS_CTX_MAGIC ||
	    ctx->generation != atomic_load(&afs_fork_generation))
		return false;
	refs = atomic_load(&ctx->refs);
	do {
		if (!refs)
			return false;
	} while (!atomic_compare_exchange_weak(&ctx->refs, &refs, refs + 1));
	if (atomic_load(&ctx->dead)) {
		afs_ctx_put(ctx);
		return false;
	}
	return true;
}

/* Not destroyed (io_destroy() checks under the list lock). */
static bool afs_ctx_ok(const struct io_context *ctx)
{
	return ctx && atomic_load(&ctx->magic) == AFS_CTX_MAGIC &&
	       !atomic_load(&ctx->dead) &&
	       ctx->generation == atomic_load(&afs_fork_generation);
}

/*
 * Wake the threads waiting on the context for what the device does not
 * know of: io_destroy(), a helper request done. A thread in
 * AIOFSYNC_IOC_REAP returns (with none there, the next one to wait in it
 * does); one in ppoll() sees the kick eventfd readable. Whoever takes what
 * a kick was for passes on what it leaves (afs_reap()).
 */
static void afs_ctx_kick(struct io_context *ctx)
{
	int kick = atomic_load(&ctx->kick);

	afs_dev_wake(ctx->dev, 0);
	if (kick >= 0)
		eventfd_write(kick, 1);
}

/*
 * The kick eventfd, made by the first thread to wait in ppoll(): its
 * descriptor or -errno. Under the list lock, which fork() holds, so that a
 * child never gets one that afs_ctxs_child() does not close.
 */
static int afs_ctx_kickfd(struct io_context *ctx)
{
	int kick = atomic_load(&ctx->kick);

	if (kick >= 0)
		return kick;
	pthread_mutex_lock(&afs_ctxs.lock);
	kick = atomic_load(&ctx->kick);
	if (kick < 0) {
		kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (kick >= 0)
			atomic_store(&ctx->kick, kick);
		else
			kick = errno == ENOMEM ? -ENOMEM : -EAGAIN;
	}
	pthread_mutex_unlock(&afs_ctxs.lock);
	return kick;
}

/*
 * Before a ppoll() on the kick eventfd: consume the kicks so far, then look
 * for what they were for, so that a kick after the look ends the ppoll().
 * True when something is there; the kick is then passed on, as it may have
 * been meant for another waiter too.
 */
static bool afs_kick_consume(struct io_context *ctx, int kick)
{
	eventfd_t n;

	eventfd_read(kick, &n);
	if (!atomic_load(&ctx->fb_ready) && !atomic_load(&ctx->dead))
		return false;
	eventfd_write(kick, 1);
	return true;
}

/* Take a slot for @iocb: the request's tag, or 0 when none is free. */
static uint64_t afs_slot_get(struct io_context *ctx, const struct iocb *iocb,
			     uint64_t data)
{
	uint32_t idx = afs_idxstack_pop(&ctx->free, ctx->next), gen;
	struct afs_slot *s = &ctx->slot[idx];

	if (!idx)
		return 0;
	s->data = data;
	s->res = 0;
	/*
	 * The generation first, then the iocb, both released: io_cancel()
	 * reads them in the other order (afs_io_cancel()).
	 */
	gen = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1;
	atomic_store_explicit(&s->gen, gen, memory_order_release);
	atomic_store_explicit(&s->iocb, (uintptr_t)iocb, memory_order_release);
	return afs_tag(gen, idx);
}

static void afs_slot_put(struct io_context *ctx, uint32_t idx)
{
	atomic_store_explicit(&ctx->slot[idx].iocb, 0, memory_order_relaxed);
	afs_idxstack_push(&ctx->free, ctx->next, idx);
}

static int afs_io_setup(int maxevents, io_context_t *ctxp)
{
	struct aiofsync_info info;
	struct io_context *ctx;
	struct afs_slot *slot;
	_Atomic uint32_t *next;
	uint32_t i, n;
	int dev;

	if (!ctxp)
		return -EFAULT;
	if (maxevents <= 0 || *ctxp)
		return -EINVAL;
	dev = afs_dev_open(&info);
	if (dev < 0)
		return dev;
	/*
	 * A module before AIOFSYNC_IOC_WAKE (no background reaping either)
	 * could not wake a waiter for io_destroy() or a helper's completion.
	 */
	if (!(info.reap_flags & AIOFSYNC_REAP_BACKGROUND)) {
		close(dev);
		return -ENOSYS;
	}
	if ((unsigned int)maxevents > info.max_ctx_requests) {
		close(dev);
		return -EAGAIN;
	}
	/* Room for what is in flight and what waits to be reaped, as the
	 * kernel's ring, which is at least twice nr_events. */
	n = (uint32_t)maxevents * 2 < info.max_ctx_requests ?
	    (uint32_t)maxevents * 2 : info.max_ctx_requests;

	slot = calloc(n + 1, sizeof(*slot));
	next = calloc(n + 1, sizeof(*next));
	afs_fork_hook_add(&afs_ctxs_fork);
	pthread_mutex_lock(&afs_ctxs.lock);
	ctx = afs_ctxs.spare;
	if (ctx)
		afs_ctxs.spare = ctx->list_next;
	else
		ctx = calloc(1, sizeof(*ctx));
	if (!ctx || !slot || !next) {
		if (ctx) {
			ctx->list_next = afs_ctxs.spare;
			afs_ctxs.spare = ctx;
		}
		pthread_mutex_unlock(&afs_ctxs.lock);
		free(slot);
		free(next);
		close(dev);
		return -ENOMEM;
	}
	ctx->dev = dev;
	ctx->generation = atomic_load(&afs_fork_generation);
	ctx->nslots = n;
	ctx->slot = slot;
	ctx->next = next;
	atomic_store(&ctx->free.head, 0);
	for (i = n; i >= 1; i--)
		afs_idxstack_push(&ctx->free, ctx->next, i);
	pthread_mutex_init(&ctx->fb_lock, NULL);
	ctx->fb_head = ctx->fb_tail = 0;
	atomic_store(&ctx->fb_ready, 0);
	atomic_store(&ctx->kick, -1);
	atomic_store(&ctx->dead, false);
	atomic_fetch_add(&ctx->serial, 1);
	atomic_store(&ctx->refs, 1);
	ctx->list_next = afs_ctxs.head;
	afs_ctxs.head = ctx;
	/* Last: a stale handle finds a context only once it is whole. */
	atomic_store(&ctx->magic, AFS_CTX_MAGIC);
	pthread_mutex_unlock(&afs_ctxs.lock);
	*ctxp = ctx;
	return 0;
}

/*
 * A context is looked up in the list before it is touched: once destroyed
 * its memory may be gone, and a second io_destroy() must say -EINVAL, as
 * the system call does for an unknown context, without reading it.
 */
static int afs_io_destroy(io_context_t ctx)
{
	struct io_context **p;
	unsigned int refs;
	bool was_dead = true;

	pthread_mutex_lock(&afs_ctxs.lock);
	for (p = &afs_ctxs.head; *p; p = &(*p)->list_next) {
		if (*p == ctx) {
			/* It leaves the list once its requests are done. */
			if (afs_ctx_ok(ctx))
				was_dead = atomic_exchange(&ctx->dead, true);
			break;
		}
	}
	pthread_mutex_unlock(&afs_ctxs.lock);
	if (was_dead)
		return -EINVAL;
	/*
	 * Wake the threads waiting in io_getevents(), io_pgetevents() and
	 * io_queue_wait(): each returns, the first two -EINVAL when they took
	 * nothing, as the kernel's waiters do. Their references keep the
	 * context until then.
	 */
	afs_ctx_kick(ctx);
	/*
	 * As the system call, return only once the requests are done, whoever
	 * else holds a reference: a helper request, queued or running, a call
	 * in progress (woken above, or about to return). The program may free
	 * the buffers once this returns. Nothing is cancelled, the helpers'
	 * queued requests no more than the device's: fs/aio.c's io_destroy()
	 * cancels only requests with a cancel method, which reads, writes and
	 * syncs have not, and it makes a pipe's or a socket's read or write
	 * inside io_submit(), so the data has gone through once io_submit()
	 * has returned.
	 */
	afs_ctx_put(ctx);
	while ((refs = atomic_load(&ctx->refs)))
		afs_futex_wait(&ctx->refs, refs, NULL);
	afs_ctx_free(ctx);
	return 0;
}

/* ---- submission ---- */

struct afs_libaio_fb {
	struct afs_fb_req fb;
	struct io_context *ctx;
	int efd;			/* IOCB_FLAG_RESFD: our dup, else -1 */
};

/*
 * Queue the completion and signal the eventfd, then wake the reapers, as
 * fs/aio.c's aio_complete() signals before it wakes: a program that reaps
 * the event finds its count on the eventfd. The count is added under
 * fb_lock, which every reaper takes to dequeue (afs_fb_take()), so no one
 * takes the completion before it; and fb_ready, raised first, makes a
 * thread that the count wakes find the completion (waiting for the lock
 * if need be), as kernel AIO's is in the ring before its eventfd count.
 */
static void afs_libaio_fb_done(struct afs_fb_req *req)
{
	struct afs_libaio_fb *f = (struct afs_libaio_fb *)req;
	struct io_context *ctx = f->ctx;
	uint32_t idx = afs_tag_slot(req->tag);

	ctx->slot[idx].res = req->res;
	if (atomic_load(&ctx->dead)) {
		/*
		 * Nobody reaps it now: io_destroy() must not wait for its
		 * event. Its eventfd is still signalled, before io_destroy()
		 * can return, as fs/aio.c signals every completion.
		 */
		atomic_store_explicit(&ctx->slot[idx].iocb, 0,
				      memory_order_relaxed);
		if (f->efd >= 0)
			eventfd_write(f->efd, 1);
		afs_ctx_put(ctx);
		return;
	}
	pthread_mutex_lock(&ctx->fb_lock);
	atomic_store_explicit(&ctx->next[idx], 0, memory_order_relaxed);
	if (ctx->fb_tail)
		atomic_store_explicit(&ctx->next[ctx->fb_tail], idx,
				      memory_order_relaxed);
	else
		ctx->fb_head = idx;
	ctx->fb_tail = idx;
	atomic_fetch_add(&ctx->fb_ready, 1);
	if (f->efd >= 0)
		eventfd_write(f->efd, 1);
	pthread_mutex_unlock(&ctx->fb_lock);
	afs_ctx_kick(ctx);
	afs_ctx_put(ctx);
}

/* After done(), or in a child after fork(): the eventfd duplicate too. */
static void afs_libaio_fb_release(struct afs_fb_req *req)
{
	struct afs_libaio_fb *f = (struct afs_libaio_fb *)req;

	if (f->efd >= 0)
		close(f->efd);
	free(f);
}

static int afs_libaio_fallback(struct io_context *ctx,
			       const struct aiofsync_req *r)
{
	struct afs_libaio_fb *f = calloc(1, sizeof(*f));
	int ret;

	if (!f)
		return -EAGAIN;
	f->efd = -1;
	/* Checked now, as io_submit() does; held until the completion. */
	if (r->flags & AIOFSYNC_REQ_EVENTFD) {
		f->efd = afs_dev_eventfd_dup((int)r->resfd);
		if (f->efd < 0) {
			ret = f->efd;
			free(f);
			return ret;
		}
	}
	f->fb.fd = (int)r->fd;
	f->fb.opcode = r->opcode;
	f->fb.buf = (void *)(uintptr_t)r->addr;
	f->fb.len = r->len;
	f->fb.offset = (off_t)r->offset;
	f->fb.owner = ctx;
	/*
	 * A write is done, for a program written for kernel AIO, once
	 * io_submit() has returned: io_cancel() must not take it back. A read
	 * not yet started may be cancelled: it has taken nothing, the data
	 * stays for the next read. A sync may, as the device's.
	 */
	f->fb.tag = r->user_tag;
	if (r->opcode == AIOFSYNC_OP_WRITE)
		f->fb.tag |= AFS_TAG_NOCANCEL;
	f->fb.done = afs_libaio_fb_done;
	f->fb.release = afs_libaio_fb_release;
	f->ctx = ctx;
	atomic_fetch_add(&ctx->refs, 1);
	/*
	 * io_submit()'s reference is held: an io_destroy() meanwhile waits for
	 * this one as well.
	 */
	ret = afs_fb_submit(&f->fb);
	if (ret) {
		atomic_fetch_sub(&ctx->refs, 1);
		if (f->efd >= 0)
			close(f->efd);
		free(f);
	}
	return ret;
}

/* An iocb as a device request; -EINVAL where kernel AIO refuses it too. */
static int afs_iocb_to_req(const struct iocb *io, struct aiofsync_req *r)
{
	uint64_t len;

	if (io->aio_reserved2 || io->aio_rw_flags ||
	    (io->aio_flags & ~(IOCB_FLAG_RESFD | IOCB_FLAG_IOPRIO)))
		return -EINVAL;
	afs_dev_req_init(r, 0, (int)io->aio_fildes, 0);
	switch (io->aio_lio_opcode) {
	case IOCB_CMD_PREAD:
	case IOCB_CMD_PWRITE:
		if (io->aio_offset < 0)
			return -EINVAL;
		r->opcode = io->aio_lio_opcode == IOCB_CMD_PREAD ?
			    AIOFSYNC_OP_READ : AIOFSYNC_OP_WRITE;
		len = io->aio_nbytes > AFS_MAX_RW ? AFS_MAX_RW : io->aio_nbytes;
		if (len > (uint64_t)INT64_MAX - (uint64_t)io->aio_offset)
			len = (uint64_t)INT64_MAX - (uint64_t)io->aio_offset;
		r->offset = (uint64_t)io->aio_offset;
		r->len = len;
		r->addr = io->aio_buf;
		break;
	case IOCB_CMD_FSYNC:
	case IOCB_CMD_FDSYNC:
		/* Kernel AIO: a sync of the whole file, nothing else set. */
		if (io->aio_buf || io->aio_nbytes || io->aio_offset)
			return -EINVAL;
		r->opcode = io->aio_lio_opcode == IOCB_CMD_FSYNC ?
			    AIOFSYNC_OP_FSYNC : AIOFSYNC_OP_FDATASYNC;
		break;
	default:
		/* PREADV, PWRITEV, POLL, NOOP: not offered by the device. */
		return -EINVAL;
	}
	if (io->aio_flags & IOCB_FLAG_RESFD) {
		r->flags |= AIOFSYNC_REQ_EVENTFD;
		r->resfd = io->aio_resfd;
	}
	return 0;
}

/*
 * The device syncs only files open for writing (EBADF otherwise); fs/aio.c,
 * as fsync(2), syncs whatever has ->fsync, read-only descriptors included (a
 * directory after a rename is only ever open for reading). A helper makes
 * the fsync(2) of such a regular file, directory or block device: true.
 * Else *@err stays -EBADF (not open, O_PATH), or becomes the -EINVAL of a
 * file without ->fsync (a pipe's read end), as io_submit() says.
 */
static bool afs_sync_by_helper(const struct aiofsync_req *r, int *err)
{
	struct stat st;
	int fl;

	if (*err != -EBADF || (r->opcode != AIOFSYNC_OP_FSYNC &&
			       r->opcode != AIOFSYNC_OP_FDATASYNC))
		return false;
	fl = fcntl((int)r->fd, F_GETFL);
	if (fl < 0 || (fl & O_PATH) || fstat((int)r->fd, &st))
		return false;
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode))
		return true;
	*err = -EINVAL;
	return false;
}

/*
 * The arrays one pass of io_submit() works in, @cap entries each: the
 * program's iocb pointers, copies of its iocbs, the segments that read them,
 * and the device's requests.
 */
struct afs_submit_buf {
	int cap;
	struct iocb **ptr;
	struct iocb *io;
	struct iovec *dst, *src;
	struct aiofsync_req *reqs;
};

/*
 * Arrays for a pass of @cap iocbs, in one allocation that the caller frees:
 * the memory, or NULL.
 *
 * An io_submit() of many iocbs goes to the device in one call, as the
 * system call queues its whole array under one block plug: the device then
 * holds the flushes of the clean files' syncs until the call ends, and the
 * syncs of one file gather into one flush. In 64-iocb passes the syncs of
 * a file came apart: measured in the guest (6.1, ext4, bench W4, 3 rounds,
 * the library's passes switched between runs), 10000 syncs in flight over
 * 1000 files ran 1.87x as many syncs per second in one pass (one
 * vfs_fsync_range() per sync before, one per two after, as with the raw
 * ioctl), and over one file 1.19x.
 */
static void *afs_submit_buf_alloc(struct afs_submit_buf *b, int cap)
{
	size_t each = sizeof(*b->ptr) + sizeof(*b->io) + 2 * sizeof(*b->dst) +
		      sizeof(*b->reqs);
	char *mem = (size_t)cap <= SIZE_MAX / each ?
		    malloc((size_t)cap * each) : NULL;

	if (!mem)
		return NULL;
	/* Largest alignment first: every array stays aligned. */
	b->cap = cap;
	b->io = (struct iocb *)mem;
	b->reqs = (struct aiofsync_req *)(b->io + cap);
	b->dst = (struct iovec *)(b->reqs + cap);
	b->src = b->dst + cap;
	b->ptr = (struct iocb **)(b->src + cap);
	return mem;
}

/*
 * Submit the first @n iocbs of @b (their copies in b->io, the program's
 * pointers in b->ptr) in one device call. Returns how many were queued;
 * *err gets the error of the first one that was not.
 */
static int afs_submit_chunk(struct io_context *ctx, struct afs_submit_buf *b,
			    int n, int *err)
{
	struct aiofsync_req *reqs = b->reqs;
	int i, ready = 0, done = 0, got;

	*err = 0;
	for (i = 0; i < n; i++) {
		*err = afs_iocb_to_req(&b->io[i], &reqs[i]);
		if (*err)
			break;
		reqs[i].user_tag = afs_slot_get(ctx, b->ptr[i],
						b->io[i].aio_data);
		if (!reqs[i].user_tag) {
			*err = -EAGAIN;
			break;
		}
		ready++;
	}

	while (done < ready) {
		got = afs_dev_submit(ctx->dev, &reqs[done],
				     (unsigned int)(ready - done));
		if (got > 0) {
			done += got;
			continue;
		}
		if (!got)
			got = -EAGAIN;
		/* Kernel AIO runs pipes and sockets synchronously: helpers. */
		if (got == -ESPIPE || afs_sync_by_helper(&reqs[done], &got))
			got = afs_libaio_fallback(ctx, &reqs[done]);
		if (got) {
			*err = got;
			break;
		}
		done++;
	}
	for (i = done; i < ready; i++)
		afs_slot_put(ctx, afs_tag_slot(reqs[i].user_tag));
	return done;
}

/*
 * Read @want of the program's iocb pointers at @ios, then the iocbs they
 * point to, into @b, through afs_copy_in(): a NULL or wild array gives
 * -EFAULT, as the system call does, never SIGSEGV. Returns how many iocbs
 * were read: fewer than @want if a pointer or an iocb was unreadable.
 */
static int afs_submit_read(struct afs_submit_buf *b, struct iocb **ios,
			   int want)
{
	int i, n;

	/* One segment per pointer: a fault stops at the first bad one. */
	for (i = 0; i < want; i++) {
		b->dst[i].iov_base = &b->ptr[i];
		b->dst[i].iov_len = sizeof(b->ptr[i]);
		b->src[i].iov_base = ios + i;
		b->src[i].iov_len = sizeof(b->ptr[i]);
	}
	n = (int)(afs_copy_in(b->dst, b->src, want) / sizeof(b->ptr[0]));
	for (i = 0; i < n; i++) {
		b->dst[i].iov_base = &b->io[i];
		b->dst[i].iov_len = sizeof(b->io[i]);
		b->src[i].iov_base = b->ptr[i];
		b->src[i].iov_len = sizeof(b->io[i]);
	}
	return (int)(afs_copy_in(b->dst, b->src, n) / sizeof(b->io[0]));
}

/*
 * Up to AFS_SUBMIT_BATCH iocbs pass through arrays on the stack; more, one
 * pass from the heap, as many as the context has slots (the rest could only
 * get -EAGAIN), or, without memory, passes of AFS_SUBMIT_BATCH.
 */
static int afs_io_submit(io_context_t ctx, long nr, struct iocb **ios)
{
	struct iocb *ptr[AFS_SUBMIT_BATCH];
	struct iocb io[AFS_SUBMIT_BATCH];
	struct iovec dst[AFS_SUBMIT_BATCH], src[AFS_SUBMIT_BATCH];
	struct aiofsync_req reqs[AFS_SUBMIT_BATCH];
	struct afs_submit_buf b = {
		.cap = AFS_SUBMIT_BATCH, .ptr = ptr, .io = io,
		.dst = dst, .src = src, .reqs = reqs,
	};
	void *heap = NULL;
	long done = 0;
	int want, n, k, err = 0;

	if (nr < 0 || !afs_ctx_get(ctx))
		return -EINVAL;
	if (nr > AFS_SUBMIT_BATCH && ctx->nslots > AFS_SUBMIT_BATCH)
		heap = afs_submit_buf_alloc(&b, nr < (long)ctx->nslots ?
						(int)nr : (int)ctx->nslots);
	while (done < nr) {
		want = nr - done > b.cap ? b.cap : (int)(nr - done);
		n = afs_submit_read(&b, ios + done, want);
		if (!n) {
			err = -EFAULT;
			break;
		}
		k = afs_submit_chunk(ctx, &b, n, &err);
		done += k;
		if (k < n)
			break;
		if (n < want) {
			/* A pointer or an iocb could not be read. */
			err = -EFAULT;
			break;
		}
	}
	free(heap);
	afs_ctx_put(ctx);
	return done ? (int)done : err;
}

/* ---- completion ---- */

/*
 * A timeout as io_getevents() and io_pgetevents() take it. The kernel
 * (fs/aio.c, do_io_getevents()) converts it with timespec64_to_ktime() and
 * no validity check: a tv_sec of KTIME_SEC_MAX or more waits forever;
 * otherwise tv_sec * 1e9 + tv_nsec, in 64 bits that wrap, is the wait, so a
 * tv_nsec of 1e9 or more or a negative one is simply added, and a total of
 * 0 or less does not wait. Never -EINVAL.
 */
#define AFS_KTIME_SEC_MAX	(INT64_MAX / AFS_NS_PER_SEC)

static uint64_t afs_timeout_ns(const struct timespec *ts)
{
	int64_t sec;
	uint64_t ns;

	if (!ts)
		return AIOFSYNC_TIMEOUT_INFINITE;
	/* A variable: with a 32-bit time_t the test is always false. */
	sec = ts->tv_sec;
	if (sec >= AFS_KTIME_SEC_MAX)
		return AIOFSYNC_TIMEOUT_INFINITE;
	ns = (uint64_t)sec * AFS_NS_PER_SEC + (uint64_t)(int64_t)ts->tv_nsec;
	/* Negative as the kernel's s64: its timer has already expired. */
	return ns > INT64_MAX ? 0 : ns;
}

/* A wait in nanoseconds as a relative timespec (NULL: forever). */
static struct timespec *afs_timeout_ts_ns(uint64_t ns, struct timespec *out)
{
	if (ns == AIOFSYNC_TIMEOUT_INFINITE)
		return NULL;
	out->tv_sec = (time_t)(ns / AFS_NS_PER_SEC);
	out->tv_nsec = (long)(ns % AFS_NS_PER_SEC);
	return out;
}

/* The same, for ppoll() (NULL: forever). */
static struct timespec *afs_timeout_ts(const struct timespec *ts,
				       struct timespec *out)
{
	return afs_timeout_ts_ns(afs_timeout_ns(ts), out);
}

/*
 * Turn @n device events into io_events in place: both are 32 bytes, and the
 * device wrote them where the program asked, so it checked the array.
 */
static int afs_events_convert(struct io_context *ctx, void *events, int n)
{
	struct aiofsync_event ev;
	struct io_event out;
	struct afs_slot *s;
	uint32_t idx;
	int i, got = 0;

	_Static_assert(sizeof(ev) == sizeof(out), "events are converted in place");
	for (i = 0; i < n; i++) {
		memcpy(&ev, (char *)events + i * sizeof(ev), sizeof(ev));
		idx = afs_tag_slot(ev.user_tag);
		if (!idx || idx > ctx->nslots)
			continue;
		s = &ctx->slot[idx];
		out.data = s->data;
		out.obj = atomic_load_explicit(&s->iocb, memory_order_relaxed);
		out.res = ev.res;
		out.res2 = ev.res2;
		afs_slot_put(ctx, idx);
		memcpy((char *)events + got++ * sizeof(out), &out, sizeof(out));
	}
	return got;
}

/*
 * Write @n events into the program's array as the device would: false,
 * never SIGSEGV, for an array it cannot write. Where seccomp refuses
 * process_vm_writev(), the array is written directly.
 */
static bool afs_events_put(struct io_event *events, const struct io_event *ev,
			   int n)
{
	struct iovec local = { (void *)ev, (size_t)n * sizeof(*ev) };
	struct iovec remote = { events, local.iov_len };
	ssize_t done = process_vm_writev(afs_getpid(), &local, 1, &remote, 1, 0);

	if (done == (ssize_t)local.iov_len)
		return true;
	if (done >= 0 || (errno != ENOSYS && errno != EPERM))
		return false;
	memcpy(events, ev, local.iov_len);
	return true;
}

/*
 * Take up to @max completions of helper requests into @events, oldest
 * first: how many, or -EFAULT when the array cannot be written (they stay
 * queued). One atomic load while there are none.
 */
static int afs_fb_take(struct io_context *ctx, struct io_event *events,
		       long max)
{
	struct io_event ev[AFS_FB_TAKE];
	uint32_t idx[AFS_FB_TAKE], i;
	struct afs_slot *s;
	int n = 0;

	if (!atomic_load(&ctx->fb_ready))
		return 0;
	pthread_mutex_lock(&ctx->fb_lock);
	for (i = ctx->fb_head; i && n < max && n < AFS_FB_TAKE;
	     i = atomic_load_explicit(&ctx->next[i], memory_order_relaxed)) {
		s = &ctx->slot[i];
		ev[n].data = s->data;
		ev[n].obj = atomic_load_explicit(&s->iocb, memory_order_relaxed);
		ev[n].res = s->res;
		ev[n].res2 = 0;
		idx[n++] = i;
	}
	/* Written before they leave the queue: a fault loses none. */
	if (n && !afs_events_put(events, ev, n)) {
		pthread_mutex_unlock(&ctx->fb_lock);
		return -EFAULT;
	}
	ctx->fb_head = i;
	if (!i)
		ctx->fb_tail = 0;
	atomic_fetch_sub(&ctx->fb_ready, (unsigned int)n);
	pthread_mutex_unlock(&ctx->fb_lock);
	for (i = 0; i < (uint32_t)n; i++)
		afs_slot_put(ctx, idx[i]);
	return n;
}

/*
 * Take up to @nr events, waiting for @min_nr of them at most @timeout_ns:
 * the helpers' completions, then the device's. Events, or -errno: -EINVAL
 * once io_destroy() woke us with nothing, as the kernel's waiters get it.
 *
 * The device's wait ends for events, at the deadline, on a signal, and for
 * a kick (afs_ctx_kick()): then look again, until the deadline. A kick ends
 * the wait of every thread in the device, or of the next one to wait there
 * when none is; so a thread that leaves with helper completions queued, or
 * the context destroyed, kicks again, for the others: the kick may have
 * been meant for them too.
 */
static int afs_reap(struct io_context *ctx, long min_nr, long nr,
		    struct io_event *events, uint64_t timeout_ns)
{
	bool timed = min_nr && timeout_ns &&
		     timeout_ns != AIOFSYNC_TIMEOUT_INFINITE;
	uint64_t wait_ns = timeout_ns;
	struct afs_deadline deadline;
	struct timespec left, rel;
	long got = 0, want;
	int n, err = 0;
	bool dead;

	if (nr > INT_MAX)
		nr = INT_MAX;
	if (timed)
		afs_deadline_init(&deadline, afs_timeout_ts_ns(timeout_ns, &rel));
	for (;;) {
		n = afs_fb_take(ctx, events + got, nr - got);
		if (n < 0) {
			err = n;
			break;
		}
		got += n;
		if (got == nr)
			break;
		/* More may be queued: their kicks are spent. */
		if (n == AFS_FB_TAKE)
			continue;
		dead = atomic_load(&ctx->dead);
		want = min_nr > got && !dead ? min_nr - got : 0;
		n = afs_dev_reap(ctx->dev, (void *)(events + got),
				 (unsigned int)want,
				 (unsigned int)(nr - got), want ? wait_ns : 0);
		if (n < 0) {
			err = n;
			break;
		}
		got += afs_events_convert(ctx, events + got, n);
		if (got >= min_nr || !want || !wait_ns ||
		    atomic_load(&ctx->dead))
			break;
		if (timed) {
			if (!afs_deadline_left(&deadline, &left))
				break;
			wait_ns = afs_timeout_ns(&left);
		}
	}
	dead = atomic_load(&ctx->dead);
	if (dead || atomic_load(&ctx->fb_ready))
		afs_ctx_kick(ctx);
	if (got)
		return (int)got;
	return err ? err : dead ? -EINVAL : 0;
}

/* The arguments, then a reference on the context: 0 or -EINVAL. */
static int afs_getevents_get(io_context_t ctx, long min_nr, long nr)
{
	if (min_nr < 0 || nr < 0 || min_nr > nr || !afs_ctx_get(ctx))
		return -EINVAL;
	return 0;
}

static int afs_io_getevents(io_context_t ctx, long min_nr, long nr,
			    struct io_event *events, struct timespec *timeout)
{
	int ret = afs_getevents_get(ctx, min_nr, nr);

	if (ret)
		return ret;
	if (nr)
		ret = afs_reap(ctx, min_nr, nr, events, afs_timeout_ns(timeout));
	afs_ctx_put(ctx);
	return ret;
}

/*
 * io_pgetevents(): the wait must run with @sigmask in force, atomically, as
 * pselect() does. ppoll() on the context and its kick eventfd gives exactly
 * that; the events are then taken without waiting.
 */
static int afs_io_pgetevents(io_context_t ctx, long min_nr, long nr,
			     struct io_event *events, struct timespec *timeout,
			     sigset_t *sigmask)
{
	struct afs_deadline deadline;
	struct pollfd pfd[2];
	struct timespec left, rel;
	long got = 0;
	int n, ret;

	if (!sigmask)
		return afs_io_getevents(ctx, min_nr, nr, events, timeout);
	ret = afs_getevents_get(ctx, min_nr, nr);
	if (ret)
		return ret;
	pfd[1].fd = afs_ctx_kickfd(ctx);
	if (pfd[1].fd < 0) {
		afs_ctx_put(ctx);
		return pfd[1].fd;
	}
	afs_deadline_init(&deadline, afs_timeout_ts(timeout, &rel));
	pfd[0].fd = ctx->dev;
	pfd[0].events = pfd[1].events = POLLIN;
	while (nr) {
		n = afs_reap(ctx, 0, nr - got, events + got, 0);
		if (n < 0) {
			ret = n;
			break;
		}
		got += n;
		if (got >= min_nr || !afs_deadline_left(&deadline, &left))
			break;
		if (afs_kick_consume(ctx, pfd[1].fd))
			continue;
		/*
		 * Any error ends the call, as the system call's: EINTR, or
		 * EFAULT for a sigmask it cannot read, which would fail again
		 * at once on every turn.
		 */
		if (ppoll(pfd, 2, deadline.forever ? NULL : &left, sigmask) < 0) {
			ret = -errno;
			break;
		}
	}
	afs_ctx_put(ctx);
	return got ? (int)got : ret;
}

static bool afs_iocb_readable(struct iocb *iocb)
{
	uint32_t key;
	struct iovec dst = { &key, sizeof(key) }, src;

	if (!iocb)
		return false;
	src.iov_base = &iocb->aio_key;
	src.iov_len = sizeof(key);
	return afs_copy_in(&dst, &src, 1) == sizeof(key);
}

static int afs_io_cancel(io_context_t ctx, struct iocb *iocb,
			 struct io_event *result)
{
	unsigned int fb_canceled = 0, fb_running;
	uint32_t idx, gen, canceled = 0, c, running;
	struct afs_slot *s;
	uint64_t tag;

	(void)result;	/* as in the kernel: the event comes from io_getevents */
	/* The system call reads the iocb's key first: -EFAULT before all. */
	if (!afs_iocb_readable(iocb))
		return -EFAULT;
	if (!afs_ctx_get(ctx))
		return -EINVAL;
	for (idx = 1; idx <= ctx->nslots; idx++) {
		s = &ctx->slot[idx];
		if (atomic_load_explicit(&s->iocb, memory_order_acquire) !=
		    (uintptr_t)iocb)
			continue;
		/*
		 * The tag of the request found: another thread may reap it and
		 * submit into the slot anew at any time, but a generation read
		 * after that iocb is its own or a later one, and a later one
		 * read while the slot still holds @iocb belongs to a request
		 * already reaped (or to @iocb submitted again). Either way the
		 * cancel below cannot reach someone else's request.
		 */
		gen = atomic_load_explicit(&s->gen, memory_order_acquire);
		if (atomic_load_explicit(&s->iocb, memory_order_acquire) !=
		    (uintptr_t)iocb)
			continue;
		tag = afs_tag(gen, idx);
		/* A helper's write is under tag | AFS_TAG_NOCANCEL: not found. */
		afs_fb_cancel(ctx, -1, tag, false, &c, &fb_running);
		fb_canceled += c;
		if (!afs_dev_cancel(ctx->dev, AIOFSYNC_CANCEL_TAG, -1, tag, &c,
				    &running))
			canceled += c;
	}
	afs_ctx_put(ctx);
	/* Kernel AIO: -EINPROGRESS, the event with -ECANCELED follows. */
	return canceled || fb_canceled ? -EINPROGRESS : -EINVAL;
}

/* ---- libaio's library calls ---- */

/* As libaio's: *ctxp need not be NULL, it is reset first. */
static int afs_io_queue_init(int maxevents, io_context_t *ctxp)
{
	if (maxevents <= 0)
		return -EINVAL;
	if (!ctxp)
		return -EFAULT;
	*ctxp = NULL;
	return afs_io_setup(maxevents, ctxp);
}

static int afs_io_queue_release(io_context_t ctx)
{
	return afs_io_destroy(ctx);
}

/*
 * afs_ctx_get() of the context that io_setup() number @serial made, not of
 * one set up since in the same header.
 */
static bool afs_ctx_get_same(struct io_context *ctx, unsigned int serial)
{
	if (!afs_ctx_get(ctx))
		return false;
	if (atomic_load(&ctx->serial) == serial)
		return true;
	afs_ctx_put(ctx);
	return false;
}

/*
 * Call each reaped request's callback (iocb->data, io_set_callback()).
 * libaio's io_queue_run() reaps one event per io_getevents() and returns
 * what the last one said: 0 once none is left, -EINVAL once a callback (or
 * another thread) has destroyed the context, and no callback runs after
 * that. Here up to AFS_RUN_BATCH events are taken at a time, so the context
 * is looked at after each callback: once it is gone - destroyed, its header
 * maybe set up anew, or left behind by a fork() in the callback - the rest
 * of the batch is dropped, as fs/aio.c's io_destroy() drops the events in
 * the ring, and the callbacks never see iocbs the program may have freed
 * with its context. No reference is held across the callbacks: one may
 * call io_destroy(), which waits until no call runs on the context.
 */
static int afs_io_queue_run(io_context_t ctx)
{
	struct io_event ev[AFS_RUN_BATCH];
	unsigned int serial;
	io_callback_t cb;
	int n, i;

	if (!afs_ctx_get(ctx))
		return -EINVAL;
	serial = atomic_load(&ctx->serial);
	for (;;) {
		n = afs_reap(ctx, 0, AFS_RUN_BATCH, ev, 0);
		afs_ctx_put(ctx);
		for (i = 0; i < n; i++) {
			cb = (io_callback_t)(uintptr_t)ev[i].data;
			if (cb)
				cb(ctx, (struct iocb *)(uintptr_t)ev[i].obj,
				   (long)ev[i].res, (long)ev[i].res2);
			if (!afs_ctx_ok(ctx) ||
			    atomic_load(&ctx->serial) != serial)
				return -EINVAL;
		}
		if (n < AFS_RUN_BATCH)
			return n < 0 ? n : 0;
		if (!afs_ctx_get_same(ctx, serial))
			return -EINVAL;
	}
}

/*
 * Wait until completions are there to run (or the timeout): 0 or -errno.
 * libaio's is io_getevents(ctx, 0, 0, NULL, timeout), so the timeout is
 * taken as io_getevents() takes it, never -EINVAL.
 */
static int afs_io_queue_wait(io_context_t ctx, struct timespec *timeout)
{
	struct pollfd pfd[2];
	struct timespec rel;
	int ret = 0;

	if (!afs_ctx_get(ctx))
		return -EINVAL;
	pfd[0].fd = ctx->dev;
	pfd[1].fd = afs_ctx_kickfd(ctx);
	pfd[0].events = pfd[1].events = POLLIN;
	if (pfd[1].fd < 0)
		ret = pfd[1].fd;
	else if (!afs_kick_consume(ctx, pfd[1].fd) &&
		 ppoll(pfd, 2, afs_timeout_ts(timeout, &rel), NULL) < 0)
		ret = -errno;
	afs_ctx_put(ctx);
	return ret;
}

/* libaio 0.1's signatures, still exported by libaio.so.1 for old binaries. */
static int afs_io_getevents_0_1(io_context_t ctx, long nr,
				struct io_event *events,
				struct timespec *timeout)
{
	return afs_io_getevents(ctx, 1, nr, events, timeout);
}

static int afs_io_cancel_0_1(io_context_t ctx, struct iocb *iocb)
{
	struct io_event ev;

	return afs_io_cancel(ctx, iocb, &ev);
}

AFS_EXPORT_LIBAIO(afs_io_queue_init, io_queue_init, "LIBAIO_0.1");
AFS_EXPORT_LIBAIO(afs_io_queue_run, io_queue_run, "LIBAIO_0.1");
AFS_EXPORT_LIBAIO(afs_io_queue_release, io_queue_release, "LIBAIO_0.1");
AFS_EXPORT_LIBAIO(afs_io_submit, io_submit, "LIBAIO_0.1");
AFS_EXPORT_LIBAIO(afs_io_setup, io_setup, "LIBAIO_0.4");
AFS_EXPORT_LIBAIO(afs_io_destroy, io_destroy, "LIBAIO_0.4");
AFS_EXPORT_LIBAIO(afs_io_cancel, io_cancel, "LIBAIO_0.4");
AFS_EXPORT_LIBAIO(afs_io_getevents, io_getevents, "LIBAIO_0.4");
AFS_EXPORT_LIBAIO(afs_io_queue_wait, io_queue_wait, "LIBAIO_0.4");
AFS_EXPORT_LIBAIO(afs_io_pgetevents, io_pgetevents, "LIBAIO_0.5");
AFS_EXPORT_ALSO_AS(afs_io_getevents_0_1, io_getevents, "LIBAIO_0.1", o);
AFS_EXPORT_ALSO_AS(afs_io_cancel_0_1, io_cancel, "LIBAIO_0.1", o);
AFS_EXPORT_ALSO_AS(afs_io_queue_wait, io_queue_wait, "LIBAIO_0.1", o);
