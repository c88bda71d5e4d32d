// SPDX-License-Identifier: GPL-2.0
/*
 * A context: one open() of /dev/aiofsync. It owns the dispatch queues of its
 * READ/WRITE requests, the list of completions waiting to be reaped, and the
 * cancellation of its requests.
 */
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/hrtimer.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "aiofsync.h"

static void aiofsync_bg_hold_lapsed(struct timer_list *t)
{
	struct aiofsync_ctx *ctx = from_timer(ctx, t, bg_hold_timer);

	wake_up_all(&ctx->wait);
}

/* Whether a background reaper's hold keeps the foreground ones off. */
static bool aiofsync_fg_held_off(struct aiofsync_ctx *ctx)
{
	return READ_ONCE(ctx->bg_holding) &&
	       time_before(jiffies, READ_ONCE(ctx->bg_hold_end));
}

struct aiofsync_ctx *aiofsync_ctx_alloc(void)
{
	struct aiofsync_ctx *ctx;
	int i;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL_ACCOUNT);
	if (!ctx)
		return NULL;
	mutex_init(&ctx->cancel_lock);
	spin_lock_init(&ctx->lock);
	for (i = 0; i <= AIOFSYNC_PRIO_MAX; i++)
		INIT_LIST_HEAD(&ctx->pending[i]);
	INIT_LIST_HEAD(&ctx->active);
	INIT_LIST_HEAD(&ctx->done);
	init_waitqueue_head(&ctx->wait);
	init_waitqueue_head(&ctx->bg_wait);
	timer_setup(&ctx->bg_hold_timer, aiofsync_bg_hold_lapsed, 0);
	kref_init(&ctx->ref);
	return ctx;
}

/*
 * The last reference may be dropped by a work item of the module's
 * workqueues, after the file is gone: module exit destroys those queues,
 * which waits for the item to return.
 */
static void aiofsync_ctx_release(struct kref *ref)
{
	struct aiofsync_ctx *ctx = container_of(ref, struct aiofsync_ctx, ref);
	bool orphans = ctx->orphans;

	del_timer_sync(&ctx->bg_hold_timer);
	mutex_destroy(&ctx->cancel_lock);
	kfree(ctx);
	if (orphans)
		module_put(THIS_MODULE);
}

void aiofsync_ctx_put(struct aiofsync_ctx *ctx)
{
	kref_put(&ctx->ref, aiofsync_ctx_release);
}

/* Queue what the plug holds; only its task calls this. */
void aiofsync_plug_flush(struct aiofsync_plug *plug)
{
	unsigned int i;

	for (i = 0; i < plug->nr; i++)
		queue_work(plug->flushes & BIT(i) ? aiofsync_flush_wq :
			   aiofsync_wq, plug->work[i]);
	plug->nr = 0;
	plug->flushes = 0;
}

/*
 * Queue work that a request of @ctx made runnable (a READ/WRITE's own, its
 * inode's writer, or its inode's flush) on @wq; during a submit call of the
 * current task, hold it in the call's plug instead. Called with the
 * context's lock held.
 */
void aiofsync_ctx_queue(struct aiofsync_ctx *ctx, struct workqueue_struct *wq,
			struct work_struct *work)
{
	struct aiofsync_plug *plug = ctx->plug;

	lockdep_assert_held(&ctx->lock);

	if (!plug || plug->task != current) {
		queue_work(wq, work);
		return;
	}
	BUILD_BUG_ON(AIOFSYNC_PLUG_MAX > BITS_PER_LONG);
	if (plug->nr == AIOFSYNC_PLUG_MAX)
		aiofsync_plug_flush(plug);
	if (wq == aiofsync_flush_wq)
		plug->flushes |= BIT(plug->nr);
	plug->work[plug->nr++] = work;
}

/*
 * Hold the work a submit call makes runnable until the call ends. Every
 * worker woken in the middle of the call could preempt the submitter (a
 * waking task with less runtime than the current one does, on CFS), which
 * then accepts the rest of its batch, the other files' commits, only after
 * it: their syncs reach the journal spread out in time. Side by side (6.1,
 * ext4, 6 repetitions of 1 s, per-round ratios, medians): W1 with one
 * commit in flight on 16 and 64 files 1.12x and 1.08x the commits per
 * second (0.356 -> 0.292 and 0.143 -> 0.111 flushes per commit), with four
 * in flight on 4 and 16 files 1.29x and 1.17x (CPU per commit 831 -> 603
 * and 561 -> 460 us); W2 and W3 level. Only one plug per context at a
 * time: a second thread submitting meanwhile queues its own work at once.
 *
 * The same holds for the flush of an inode whose sync the call made ready
 * (a sync of a clean file): see aiofsync_kick_flush().
 *
 * What a plug holds may be shared: an inode's writer or its flush serves
 * every context that writes to or syncs the file, and while it waits in one
 * call's plug the other contexts' writes and syncs of that file only join
 * its lists. So a plug holds work only while the call does work of its own
 * (at most max_ctx_requests requests), never across a wait that someone
 * else ends: it is queued before the call reads a part of its request
 * array that is not in memory (aiofsync_copy_req()), which may block for
 * as long as whoever serves the fault likes (userfaultfd, FUSE, a network
 * file). An allocation's reclaim is bounded (__GFP_NORETRY).
 */
void aiofsync_ctx_plug(struct aiofsync_ctx *ctx, struct aiofsync_plug *plug)
{
	plug->task = current;
	plug->nr = 0;
	plug->flushes = 0;
	spin_lock(&ctx->lock);
	if (!ctx->plug)
		ctx->plug = plug;
	spin_unlock(&ctx->lock);
}

/* The submit call ends: queue what it held. */
void aiofsync_ctx_unplug(struct aiofsync_ctx *ctx, struct aiofsync_plug *plug)
{
	spin_lock(&ctx->lock);
	if (ctx->plug == plug)
		ctx->plug = NULL;
	spin_unlock(&ctx->lock);
	/* The work is ours alone until queued: writers and requests hold on. */
	aiofsync_plug_flush(plug);
}

/* Start queued READ/WRITE requests while the context has free slots. */
void aiofsync_ctx_dispatch(struct aiofsync_ctx *ctx)
{
	/* At least one, or a context with queued requests would never move. */
	unsigned int max_active = max(1U, READ_ONCE(aiofsync_max_ctx_active));
	struct aiofsync_request *req;
	int prio;

	lockdep_assert_held(&ctx->lock);

	for (prio = 0; prio <= AIOFSYNC_PRIO_MAX; prio++) {
		while (ctx->nr_running < max_active) {
			req = list_first_entry_or_null(&ctx->pending[prio],
						       struct aiofsync_request,
						       queue_node);
			if (!req)
				break;
			list_del_init(&req->queue_node);
			req->state = AIOFSYNC_RUNNING;
			ctx->nr_running++;
			if (req->ev.opcode != AIOFSYNC_OP_WRITE ||
			    !aiofsync_order_run_write(req))
				aiofsync_ctx_queue(ctx, aiofsync_wq, &req->work);
		}
	}
}

/*
 * The end of every request: release what it holds, then post its event. The
 * request must not be touched once it is on the done list: a reaper may free
 * it at once.
 */
void aiofsync_finish(struct aiofsync_request *req, long res, u32 ev_flags)
{
	struct aiofsync_ctx *ctx = req->ctx;
	struct eventfd_ctx *eventfd = req->eventfd;
	u32 op = req->ev.opcode;
	bool was_running = req->state == AIOFSYNC_RUNNING;
	bool closed, wake_bg;

	struct aiofsync_inode *ainode;

	aiofsync_request_drop_refs(req);

	req->ev.res = res;
	req->ev.flags = ev_flags;

	aiofsync_stat_add(AIOFSYNC_STAT_COMPLETED, 1);
	if (res == -ECANCELED)
		aiofsync_stat_add(AIOFSYNC_STAT_CANCELED, 1);
	else if (res < 0)
		aiofsync_stat_add(AIOFSYNC_STAT_ERRORS, 1);

	spin_lock(&ctx->lock);
	/*
	 * The syncs this write held back may run only as its event is posted
	 * (under ctx->lock, so no reaper sees one before the other): a program
	 * never reaps a sync before a write of its own that the sync covers.
	 */
	if (op == AIOFSYNC_OP_WRITE)
		aiofsync_order_write_done(req);
	/*
	 * A cancel walking ctx->active looks at a sync's inode state: the
	 * reference to it goes only once the request is off that list.
	 */
	ainode = req->ainode;
	req->ainode = NULL;
	closed = ctx->closed;
	if (closed) {
		list_del(&req->ctx_node);
	} else {
		list_move_tail(&req->ctx_node, &ctx->done);
		WRITE_ONCE(ctx->nr_done, ctx->nr_done + 1);
	}
	wake_bg = !closed && !ctx->nr_reapers[0];
	WRITE_ONCE(ctx->nr_unfinished, ctx->nr_unfinished - 1);
	if ((op == AIOFSYNC_OP_WRITE || op == AIOFSYNC_OP_READ) && was_running) {
		ctx->nr_running--;
		aiofsync_ctx_dispatch(ctx);
	}
	spin_unlock(&ctx->lock);
	/*
	 * The eventfd before the wake-up, as fs/aio.c signals it: a reaper
	 * woken for this event finds it counted there.
	 */
	if (eventfd) {
#ifdef AIOFSYNC_EVENTFD_SIGNAL_ONE
		eventfd_signal(eventfd);
#else
		eventfd_signal(eventfd, 1);
#endif
		eventfd_ctx_put(eventfd);
	}
	wake_up_all(&ctx->wait);
	if (wake_bg)
		wake_up_all(&ctx->bg_wait);
	if (ainode)
		aiofsync_order_put(ainode);
	if (closed) {
		/* Nobody will reap it. */
		kfree(req);
		aiofsync_global_put(1);
	}
	aiofsync_ctx_put(ctx);
}

/*
 * Take a request that has not started off its queue. Called with ctx->lock
 * held; returns false if it is running (or, for a sync, already in a flush).
 */
static bool aiofsync_ctx_detach(struct aiofsync_ctx *ctx,
				struct aiofsync_request *req)
{
	lockdep_assert_held(&ctx->lock);

	switch (req->ev.opcode) {
	case AIOFSYNC_OP_READ:
	case AIOFSYNC_OP_WRITE:
		if (req->state != AIOFSYNC_QUEUED)
			return false;
		list_del_init(&req->queue_node);
		req->state = AIOFSYNC_CANCELED;
		return true;
	default:
		return aiofsync_order_cancel_sync(req);
	}
}

struct aiofsync_match {
	u32 flags;
	struct file *file;
	u64 user_tag;
};

static bool aiofsync_matches(const struct aiofsync_match *m,
			     const struct aiofsync_request *req)
{
	if (m->flags & AIOFSYNC_CANCEL_TAG)
		return req->ev.user_tag == m->user_tag;
	if (m->flags & AIOFSYNC_CANCEL_FD)
		return req->file == m->file;
	return true;
}

/*
 * Cancel the matching requests that have not started. They complete with
 * -ECANCELED through aiofsync_finish(), after ctx->lock is dropped, since
 * finishing a WRITE takes the inode lock and may start a flush. Meanwhile
 * they are on no list of the context: ctx->cancel_lock keeps a concurrent
 * cancel from reporting nothing to cancel (all done) before their events
 * are posted.
 */
static void aiofsync_cancel_matching(struct aiofsync_ctx *ctx,
				     const struct aiofsync_match *m,
				     u32 *canceled, u32 *running)
{
	struct aiofsync_request *req, *tmp;
	LIST_HEAD(victims);

	*canceled = 0;
	*running = 0;
	mutex_lock(&ctx->cancel_lock);
	spin_lock(&ctx->lock);
	list_for_each_entry_safe(req, tmp, &ctx->active, ctx_node) {
		if (!aiofsync_matches(m, req))
			continue;
		if (aiofsync_ctx_detach(ctx, req)) {
			list_move_tail(&req->ctx_node, &victims);
			(*canceled)++;
		} else {
			(*running)++;
		}
	}
	spin_unlock(&ctx->lock);

	/*
	 * The victims are on no list the context scans: aiofsync_finish()
	 * puts each on the done list.
	 */
	list_for_each_entry_safe(req, tmp, &victims, ctx_node)
		aiofsync_finish(req, -ECANCELED, 0);
	mutex_unlock(&ctx->cancel_lock);
}

long aiofsync_ioc_cancel(struct aiofsync_ctx *ctx, void __user *uarg)
{
	struct aiofsync_cancel arg;
	struct aiofsync_match m = {};
	long ret = 0;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.canceled || arg.running)
		return -EINVAL;
	switch (arg.flags) {
	case AIOFSYNC_CANCEL_TAG:
		if (arg.fd)
			return -EINVAL;
		break;
	case AIOFSYNC_CANCEL_FD:
		if (arg.user_tag)
			return -EINVAL;
		if (arg.fd > INT_MAX)
			return -EBADF;
		m.file = fget(arg.fd);
		if (!m.file)
			return -EBADF;
		break;
	case AIOFSYNC_CANCEL_ALL:
		if (arg.fd || arg.user_tag)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	m.flags = arg.flags;
	m.user_tag = arg.user_tag;

	aiofsync_cancel_matching(ctx, &m, &arg.canceled, &arg.running);
	if (copy_to_user(uarg, &arg, sizeof(arg)))
		ret = -EFAULT;
	if (m.file)
		fput(m.file);
	return ret;
}

/*
 * Last close: cancel what has not started, wait for what is running, free
 * it all.
 *
 * Like io_destroy(), close() waits for the running requests: their I/O
 * cannot be stopped, and once close() returns they are over. But a process
 * that exits, or is killed while it waits, does not wait: a running request
 * may need something only the rest of the exit releases (its buffer may be
 * in a range of the process's own userfaultfd, whose release comes later).
 * Such requests finish on their own and free themselves; the context and
 * the module stay until they have.
 */
void aiofsync_ctx_close(struct aiofsync_ctx *ctx)
{
	struct aiofsync_match all = { .flags = AIOFSYNC_CANCEL_ALL };
	struct aiofsync_request *req, *tmp;
	u32 canceled, running;
	LIST_HEAD(done);

	aiofsync_cancel_matching(ctx, &all, &canceled, &running);
	if (!(current->flags & PF_EXITING))
		wait_event_killable(ctx->wait, READ_ONCE(ctx->nr_unfinished) == 0);

	spin_lock(&ctx->lock);
	ctx->closed = true;
	/* Requests left running keep the module, and rmmod refused, till done. */
	if (ctx->nr_unfinished) {
		ctx->orphans = true;
		__module_get(THIS_MODULE);
	}
	list_splice_init(&ctx->done, &done);
	WRITE_ONCE(ctx->nr_done, 0);
	ctx->nr_requests = 0;
	spin_unlock(&ctx->lock);

	list_for_each_entry_safe(req, tmp, &done, ctx_node) {
		list_del(&req->ctx_node);
		kfree(req);
		aiofsync_global_put(1);
	}
	aiofsync_ctx_put(ctx);
}

/* What one AIOFSYNC_IOC_REAP call has taken so far. */
struct aiofsync_reaping {
	unsigned int copied;
	/* A background reaper holds the foreground ones off. */
	bool holding;
	/* A foreground reaper has counted itself in ctx->fg_takes. */
	bool counted;
	/* ctx->fg_takes as of the last take. */
	u32 fg_takes;
};

/*
 * Move up to @max completed requests to @out: none to a foreground reaper
 * while a background one holds events it took earlier. A background reaper
 * that takes some holds them (@r->holding) until its next call; a
 * foreground one counts its call in ctx->fg_takes at its first take.
 */
static unsigned int aiofsync_take_done(struct aiofsync_ctx *ctx,
				       struct list_head *out, unsigned int max,
				       bool bg, struct aiofsync_reaping *r)
{
	struct aiofsync_request *req, *tmp;
	unsigned int n = 0, hold_ms = 0;

	spin_lock(&ctx->lock);
	if (!bg && aiofsync_fg_held_off(ctx)) {
		spin_unlock(&ctx->lock);
		return 0;
	}
	/* A lapsed hold is over, whoever comes back late (or never). */
	if (!bg && ctx->bg_holding)
		WRITE_ONCE(ctx->bg_holding, 0);
	list_for_each_entry_safe(req, tmp, &ctx->done, ctx_node) {
		if (n == max)
			break;
		list_move_tail(&req->ctx_node, out);
		n++;
	}
	WRITE_ONCE(ctx->nr_done, ctx->nr_done - n);
	ctx->nr_requests -= n;
	if (!bg && n && !r->counted) {
		WRITE_ONCE(ctx->fg_takes, ctx->fg_takes + 1);
		r->counted = true;
	}
	if (n)
		r->fg_takes = ctx->fg_takes;
	if (bg && n && !r->holding)
		hold_ms = READ_ONCE(aiofsync_bg_hold_ms);
	if (hold_ms) {
		r->holding = true;
		/* The end first: a lockless reader never pairs it with an old one. */
		WRITE_ONCE(ctx->bg_hold_end,
			   jiffies + max(1UL, msecs_to_jiffies(hold_ms)));
		WRITE_ONCE(ctx->bg_holding, ctx->bg_holding + 1);
		mod_timer(&ctx->bg_hold_timer, ctx->bg_hold_end);
	}
	spin_unlock(&ctx->lock);
	return n;
}

/* Put back, at the head and in order, the events a faulting copy left. */
static void aiofsync_untake_done(struct aiofsync_ctx *ctx,
				 struct list_head *left, unsigned int n)
{
	spin_lock(&ctx->lock);
	list_splice(left, &ctx->done);
	WRITE_ONCE(ctx->nr_done, ctx->nr_done + n);
	ctx->nr_requests += n;
	spin_unlock(&ctx->lock);
}

static bool aiofsync_enough_done(struct aiofsync_ctx *ctx, unsigned int min_nr)
{
	return READ_ONCE(ctx->nr_done) >= min_nr;
}

/*
 * What ends a reaper's wait: an AIOFSYNC_IOC_WAKE for its kind since it came
 * (@wakes), or enough events; for a background reaper, only while no
 * foreground reaper is in AIOFSYNC_IOC_REAP, which would otherwise be woken
 * for the same events and race it for them; for a foreground one, only
 * while no background reaper holds events (see aiofsync_take_done()).
 */
static bool aiofsync_may_return(struct aiofsync_ctx *ctx, unsigned int want,
				bool bg, unsigned int wakes)
{
	if (READ_ONCE(ctx->wakes[bg]) != wakes)
		return true;
	if (bg ? READ_ONCE(ctx->nr_reapers[0]) : aiofsync_fg_held_off(ctx))
		return false;
	return aiofsync_enough_done(ctx, want);
}

/*
 * 1 for a wait that ended for events (taken meanwhile by another reaper,
 * they are waited for again), 0 for one a wake ended.
 */
static int aiofsync_woken(struct aiofsync_ctx *ctx, bool bg, unsigned int wakes)
{
	return READ_ONCE(ctx->wakes[bg]) == wakes;
}

/*
 * Wait until @want events are there: 1 when they are (or @want is 0), 0 when
 * the deadline passed first, there is no timeout, or a wake came; -EINTR on
 * a signal.
 */
static int aiofsync_wait_done(struct aiofsync_ctx *ctx, unsigned int want,
			      u64 timeout_ns, ktime_t deadline, bool bg,
			      unsigned int wakes)
{
	wait_queue_head_t *wq = bg ? &ctx->bg_wait : &ctx->wait;
	ktime_t left;
	long ret;

	if (!want || aiofsync_may_return(ctx, want, bg, wakes))
		return aiofsync_woken(ctx, bg, wakes);
	if (!timeout_ns)
		return 0;
	if (timeout_ns == AIOFSYNC_TIMEOUT_INFINITE) {
		ret = wait_event_interruptible(*wq,
					       aiofsync_may_return(ctx, want, bg, wakes));
	} else {
		left = ktime_sub(deadline, ktime_get());
		if (ktime_to_ns(left) <= 0)
			return 0;
		ret = wait_event_interruptible_hrtimeout(*wq,
							 aiofsync_may_return(ctx, want, bg, wakes),
							 left);
		if (ret == -ETIME)
			return 0;
	}
	if (ret)
		return -EINTR;
	return aiofsync_woken(ctx, bg, wakes);
}

/*
 * A background reaper lets go of the events it held (see
 * aiofsync_take_done()); ctx->lock held. Returns whether foreground reapers
 * and pollers are to be woken: what they may take is there now.
 */
static bool aiofsync_bg_unhold(struct aiofsync_ctx *ctx)
{
	lockdep_assert_held(&ctx->lock);

	if (!ctx->bg_holding)
		return false;
	WRITE_ONCE(ctx->bg_holding, ctx->bg_holding - 1);
	return !ctx->bg_holding && (ctx->nr_reapers[0] || ctx->nr_done);
}

static void aiofsync_bg_let_go(struct aiofsync_ctx *ctx)
{
	bool wake;

	spin_lock(&ctx->lock);
	wake = aiofsync_bg_unhold(ctx);
	spin_unlock(&ctx->lock);
	if (wake)
		wake_up_all(&ctx->wait);
}

/*
 * A reaper enters AIOFSYNC_IOC_REAP; while a foreground one is in it, the
 * background ones stay asleep. A background one coming back has dealt with
 * what it took last time: it no longer holds the foreground ones off (one
 * hold per call; exact with one background reaper). Returns the wake count
 * to wait against. A call that would wait first takes a wake kept for its
 * kind, if any: it then does not wait (*@would_wait becomes false).
 */
static unsigned int aiofsync_reaper_enter(struct aiofsync_ctx *ctx, bool bg,
					  bool *would_wait)
{
	bool wake_fg = false;
	unsigned int wakes;

	spin_lock(&ctx->lock);
	WRITE_ONCE(ctx->nr_reapers[bg], ctx->nr_reapers[bg] + 1);
	if (bg)
		wake_fg = aiofsync_bg_unhold(ctx);
	wakes = ctx->wakes[bg];
	if (*would_wait && ctx->wake_pending[bg]) {
		ctx->wake_pending[bg] = false;
		*would_wait = false;
	}
	spin_unlock(&ctx->lock);
	if (wake_fg)
		wake_up_all(&ctx->wait);
	return wakes;
}

/* It leaves: events a foreground reaper did not take go to the background. */
static void aiofsync_reaper_leave(struct aiofsync_ctx *ctx, bool bg)
{
	bool wake_bg;

	spin_lock(&ctx->lock);
	WRITE_ONCE(ctx->nr_reapers[bg], ctx->nr_reapers[bg] - 1);
	wake_bg = !bg && !ctx->nr_reapers[0] && ctx->nr_done;
	spin_unlock(&ctx->lock);
	if (wake_bg)
		wake_up_all(&ctx->bg_wait);
}

long aiofsync_ioc_wake(struct aiofsync_ctx *ctx, unsigned long flags)
{
	bool bg = flags & AIOFSYNC_WAKE_BACKGROUND;

	if (flags & ~(unsigned long)AIOFSYNC_WAKE_BACKGROUND)
		return -EINVAL;
	spin_lock(&ctx->lock);
	WRITE_ONCE(ctx->wakes[bg], ctx->wakes[bg] + 1);
	if (!ctx->nr_reapers[bg])
		ctx->wake_pending[bg] = true;
	spin_unlock(&ctx->lock);
	wake_up_all(bg ? &ctx->bg_wait : &ctx->wait);
	return 0;
}

/* How many events are copied out per trip to the done list. */
#define AIOFSYNC_REAP_CHUNK	64

/*
 * Copy completed events to @uev[@r->copied...max_nr), freeing their
 * requests: 0, or -EFAULT when the copy faulted (the events not copied stay
 * queued, in order).
 */
static int aiofsync_copy_done(struct aiofsync_ctx *ctx,
			      struct aiofsync_event __user *uev,
			      unsigned int max_nr, bool bg,
			      struct aiofsync_reaping *r)
{
	struct aiofsync_request *req, *tmp;
	unsigned int n, freed;
	LIST_HEAD(batch);

	while (r->copied < max_nr) {
		n = aiofsync_take_done(ctx, &batch,
				       min_t(unsigned int, max_nr - r->copied,
					     AIOFSYNC_REAP_CHUNK), bg, r);
		if (!n)
			break;
		freed = 0;
		list_for_each_entry_safe(req, tmp, &batch, ctx_node) {
			if (copy_to_user(&uev[r->copied], &req->ev,
					 sizeof(req->ev)))
				break;
			list_del(&req->ctx_node);
			kfree(req);
			r->copied++;
			freed++;
		}
		aiofsync_global_put(freed);
		if (freed < n) {
			aiofsync_untake_done(ctx, &batch, n - freed);
			return -EFAULT;
		}
	}
	return 0;
}

/*
 * Another reaper of the context may take the events this one woke for: then
 * it waits again, for what it still lacks, until the same deadline; but a
 * background reaper that holds events (which hold the foreground ones off)
 * returns with them rather than wait. Events already copied are never lost
 * to a signal.
 */
static long aiofsync_reap_loop(struct aiofsync_ctx *ctx,
			       const struct aiofsync_reap *arg,
			       ktime_t deadline, bool bg, unsigned int wakes,
			       struct aiofsync_reaping *r)
{
	struct aiofsync_event __user *uev = u64_to_user_ptr(arg->events);
	unsigned int want;
	int waited, ret;

	for (;;) {
		want = arg->min_nr > r->copied ? arg->min_nr - r->copied : 0;
		waited = aiofsync_wait_done(ctx, want, arg->timeout_ns, deadline,
					    bg, wakes);
		if (waited < 0)
			return r->copied ? r->copied : waited;
		/* Not even after a timeout: the events are the foreground's. */
		if (bg && READ_ONCE(ctx->nr_reapers[0]))
			return r->copied;
		ret = aiofsync_copy_done(ctx, uev, arg->max_nr, bg, r);
		/* All put back by a faulting copy: nothing is held. */
		if (ret && !r->copied && r->holding)
			aiofsync_bg_let_go(ctx);
		if (ret)
			return r->copied ? r->copied : ret;
		if (!waited || r->copied >= arg->min_nr || r->holding)
			return r->copied;
	}
}

/*
 * @report: AIOFSYNC_IOC_REAP_TAKES, which writes fg_takes back. Events taken
 * are returned even if that write faults: they are in the program's array.
 */
long aiofsync_ioc_reap(struct aiofsync_ctx *ctx, void __user *uarg,
		       bool report)
{
	struct aiofsync_reap __user *ureap = uarg;
	struct aiofsync_reaping r = { };
	struct aiofsync_event __user *uev;
	struct aiofsync_reap arg;
	unsigned int wakes;
	ktime_t deadline = 0;
	bool bg, may_wait;
	long ret;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if ((arg.flags & ~AIOFSYNC_REAP_FLAGS_ALL) || arg.fg_takes)
		return -EINVAL;
	if (!arg.max_nr || arg.min_nr > arg.max_nr || arg.max_nr > INT_MAX)
		return -EINVAL;
	bg = arg.flags & AIOFSYNC_REAP_BACKGROUND;
	uev = u64_to_user_ptr(arg.events);
	if (!access_ok(uev, array_size(arg.max_nr, sizeof(*uev))))
		return -EFAULT;
	if (arg.timeout_ns && arg.timeout_ns != AIOFSYNC_TIMEOUT_INFINITE)
		deadline = ktime_add_safe(ktime_get(),
					  ns_to_ktime(min_t(u64, arg.timeout_ns,
							    KTIME_MAX)));

	may_wait = arg.min_nr && arg.timeout_ns;
	wakes = aiofsync_reaper_enter(ctx, bg, &may_wait);
	if (!may_wait)
		arg.timeout_ns = 0;
	ret = aiofsync_reap_loop(ctx, &arg, deadline, bg, wakes, &r);
	aiofsync_reaper_leave(ctx, bg);
	if (!report || ret < 0)
		return ret;
	if (!r.copied)
		r.fg_takes = READ_ONCE(ctx->fg_takes);
	if (put_user(r.fg_takes, &ureap->fg_takes) && !ret)
		return -EFAULT;
	return ret;
}

__poll_t aiofsync_ctx_poll(struct aiofsync_ctx *ctx, struct file *file,
			   struct poll_table_struct *pt)
{
	poll_wait(file, &ctx->wait, pt);
	/* What a background reaper holds the reaps off from is not there yet. */
	if (!READ_ONCE(ctx->nr_done) || aiofsync_fg_held_off(ctx))
		return 0;
	return EPOLLIN | EPOLLRDNORM;
}
