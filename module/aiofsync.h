/* SPDX-License-Identifier: GPL-2.0 */
/*
 * aiofsync internals.
 *
 * A context (struct aiofsync_ctx) is one open() of /dev/aiofsync. Its
 * requests (struct aiofsync_request) take one of two paths:
 *
 *  - READ and WRITE wait in the context's priority queues until the context
 *    has a free execution slot, then run on the workqueue in the submitter's
 *    address space and with its credentials (request.c). A buffered WRITE
 *    runs on its inode's writer, which runs the inode's writes one after the
 *    other (order.c); the others run on a work item each.
 *  - FSYNC and FDATASYNC wait in the per-inode state (struct aiofsync_inode)
 *    until every WRITE to the inode submitted before them has finished, then
 *    join the next flush of that inode; one flush serves every sync that was
 *    ready when it started (order.c).
 *
 * Every request ends in aiofsync_finish(), which posts its event to the
 * context's completion list, where the AIOFSYNC_IOC_REAP ioctl and poll find
 * it (context.c).
 *
 * Locks, outermost first:
 *   aiofsync_ctx.cancel_lock  one cancel at a time per context (a mutex)
 *   aiofsync_ctx.lock    the context's queues, lists and counts
 *   aiofsync_inode.lock  an inode's write list, sync queues, flush state and
 *                        writer queue
 *   inode table bucket   the hash chain and the reference counts of entries
 * Submission, dispatch and cancellation take ctx.lock, then inode.lock;
 * nothing takes them the other way round. A write's completion does too: it
 * posts its event and releases the syncs behind it under both, in that
 * order. A flush takes inode.lock for its batch, drops it, then takes
 * ctx.lock for each sync's event.
 */
#ifndef AIOFSYNC_INTERNAL_H
#define AIOFSYNC_INTERNAL_H

#include <linux/fs.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/aiofsync.h>

/*
 * What SUBMIT allocates is charged to the submitter's memory cgroup. A group
 * at its limit must get ENOMEM back, not an OOM kill of one of its tasks:
 * __GFP_NORETRY reclaims once and then fails instead of invoking the OOM
 * killer (memcg's or the system's).
 */
#define AIOFSYNC_GFP_SUBMIT	(GFP_KERNEL_ACCOUNT | __GFP_NORETRY | __GFP_NOWARN)

struct eventfd_ctx;
struct mm_struct;
struct aiofsync_inode;

enum aiofsync_state {
	AIOFSYNC_QUEUED,	/* accepted, not started: may be cancelled */
	AIOFSYNC_RUNNING,	/* its I/O or its flush has started */
	AIOFSYNC_CANCELED,	/* taken off its queue by a cancel */
};

/*
 * Work that one submit call has made runnable (READ/WRITE work, and the
 * flush of an inode whose sync it made ready), queued when the call ends,
 * when the plug is full, or before the call would block on its request
 * array: see aiofsync_ctx_plug(). Only the submitting task touches it (under
 * ctx.lock, or in the call itself), so it needs no lock of its own.
 */
#define AIOFSYNC_PLUG_MAX	64
struct aiofsync_plug {
	struct task_struct *task;	/* the submitting task */
	unsigned int nr;
	unsigned long flushes;		/* bit i: work[i] is a flush */
	struct work_struct *work[AIOFSYNC_PLUG_MAX];
};

struct aiofsync_ctx {
	/*
	 * Held by a cancel from taking its victims off the context's lists
	 * until their events are posted, which happens outside @lock: a
	 * cancel that finds nothing left to cancel then knows the others'
	 * victims are done, as it reports. Taken before @lock.
	 */
	struct mutex cancel_lock;
	/* Protects every field below but @wait, @bg_wait and @ref. */
	spinlock_t lock;
	/* The plug of a submit call under way (only one at a time), or NULL. */
	struct aiofsync_plug *plug;
	/* READ/WRITE not yet started, one FIFO per priority. */
	struct list_head pending[AIOFSYNC_PRIO_MAX + 1];
	/* Requests not yet completed, in no particular order. */
	struct list_head active;
	/* Completed requests, oldest first, waiting to be reaped. */
	struct list_head done;
	/*
	 * Written under lock, and with WRITE_ONCE(): reapers' and close's wait
	 * conditions read it without the lock.
	 */
	unsigned int nr_done;
	/* Requests from submit until reaped: bounded by max_ctx_requests. */
	unsigned int nr_requests;
	/* Requests from submit until completed (written as nr_done is). */
	unsigned int nr_unfinished;
	/* READ/WRITE on the workqueue: bounded by max_ctx_active. */
	unsigned int nr_running;
	/* Closed: requests still running are freed as they finish. */
	bool closed;
	/* Closed with requests running: the context holds the module. */
	bool orphans;
	/*
	 * Foreground [0] and background [1] reapers in AIOFSYNC_IOC_REAP; the
	 * AIOFSYNC_IOC_WAKE calls for each (a change ends a wait); and a wake
	 * that found none of them, kept for the next one that would wait.
	 */
	unsigned int nr_reapers[2];
	unsigned int wakes[2];
	bool wake_pending[2];
	/*
	 * Background reapers gone back to user space with events, until each
	 * calls AIOFSYNC_IOC_REAP again: foreground reapers take none
	 * meanwhile, so that a program publishes its events in the order it
	 * took them; but only until @bg_hold_end (jiffies; bg_hold_ms after
	 * the take), when @bg_hold_timer wakes them, so that a background
	 * reaper that never comes back delays them instead of stopping them
	 * (the first foreground take after that clears @bg_holding).
	 */
	unsigned int bg_holding;
	unsigned long bg_hold_end;
	struct timer_list bg_hold_timer;
	/*
	 * Foreground calls that took events (modulo 2^32), reported by
	 * AIOFSYNC_IOC_REAP_TAKES: a program that reaps in both kinds orders
	 * a background batch after the foreground takes that came before it.
	 */
	u32 fg_takes;
	/* Foreground reapers, pollers and a closing context wait here. */
	wait_queue_head_t wait;
	/* Background reapers wait here: woken while nr_reapers[0] is 0. */
	wait_queue_head_t bg_wait;
	/* One for the open file, one for each unfinished request. */
	struct kref ref;
};

struct aiofsync_request {
	/* In ctx->active until completed, then in ctx->done; ctx->lock. */
	struct list_head ctx_node;
	/*
	 * READ/WRITE: in ctx->pending[prio] while QUEUED (ctx->lock); a
	 * buffered WRITE then in ainode->run until its writer takes it
	 * (ainode->lock).
	 * FSYNC/FDATASYNC: in ainode->waiting or ainode->ready while QUEUED,
	 * then in a flush batch (ainode->lock).
	 */
	struct list_head queue_node;
	/* WRITE: in ainode->writes until finished (ainode->lock). */
	struct list_head write_node;
	struct work_struct work;
	struct aiofsync_ctx *ctx;
	struct aiofsync_inode *ainode;	/* all but READ */
	struct file *file;
	const struct cred *cred;
	struct mm_struct *mm;		/* READ/WRITE, grabbed, not pinned */
	struct eventfd_ctx *eventfd;
	u64 seq;			/* submission order on the inode */
	enum aiofsync_state state;
	u32 prio;
	loff_t pos;
	u64 len;
	/* WRITE: the submitter's RLIMIT_FSIZE when it was accepted. */
	unsigned long fsize_limit;
	void __user *buf;
	struct aiofsync_event ev;
};

/* Tunables (module parameters, main.c). */
extern unsigned int aiofsync_max_ctx_requests;
extern unsigned int aiofsync_max_requests;
extern unsigned int aiofsync_max_ctx_active;
extern unsigned int aiofsync_flush_defer_us;
extern unsigned int aiofsync_bg_hold_ms;

/* main.c */
extern struct workqueue_struct *aiofsync_wq;
extern struct workqueue_struct *aiofsync_flush_wq;

/* context.c */
struct aiofsync_ctx *aiofsync_ctx_alloc(void);
void aiofsync_ctx_put(struct aiofsync_ctx *ctx);
void aiofsync_ctx_close(struct aiofsync_ctx *ctx);
void aiofsync_ctx_dispatch(struct aiofsync_ctx *ctx);
void aiofsync_ctx_queue(struct aiofsync_ctx *ctx, struct workqueue_struct *wq,
			struct work_struct *work);
void aiofsync_ctx_plug(struct aiofsync_ctx *ctx, struct aiofsync_plug *plug);
void aiofsync_ctx_unplug(struct aiofsync_ctx *ctx, struct aiofsync_plug *plug);
void aiofsync_plug_flush(struct aiofsync_plug *plug);
long aiofsync_ioc_reap(struct aiofsync_ctx *ctx, void __user *uarg,
		       bool report);
long aiofsync_ioc_wake(struct aiofsync_ctx *ctx, unsigned long flags);
long aiofsync_ioc_cancel(struct aiofsync_ctx *ctx, void __user *uarg);
__poll_t aiofsync_ctx_poll(struct aiofsync_ctx *ctx, struct file *file,
			   struct poll_table_struct *pt);
void aiofsync_finish(struct aiofsync_request *req, long res, u32 ev_flags);

/* request.c */
long aiofsync_ioc_submit(struct aiofsync_ctx *ctx, void __user *uarg);
void aiofsync_request_drop_refs(struct aiofsync_request *req);
void aiofsync_rw_run(struct aiofsync_request *req);

/* order.c */
void aiofsync_order_init(void);
void aiofsync_order_exit(void);
int aiofsync_order_attach(struct aiofsync_request *req);
void aiofsync_order_submit(struct aiofsync_request *req);
void aiofsync_order_put(struct aiofsync_inode *ai);
void aiofsync_order_write_done(struct aiofsync_request *req);
bool aiofsync_order_run_write(struct aiofsync_request *req);
bool aiofsync_order_cancel_sync(struct aiofsync_request *req);

/* stats.c */
enum aiofsync_stat {
	AIOFSYNC_STAT_SUBMITTED,
	AIOFSYNC_STAT_COMPLETED,
	AIOFSYNC_STAT_CANCELED,
	AIOFSYNC_STAT_ERRORS,
	AIOFSYNC_STAT_FLUSHES,
	AIOFSYNC_STAT_FLUSHES_SAVED,
	AIOFSYNC_STAT_WRITES,
	AIOFSYNC_STAT_READS,
	AIOFSYNC_NR_STATS,
};

void aiofsync_stat_add(enum aiofsync_stat stat, long n);
extern const struct attribute_group *aiofsync_attr_groups[];
/* Requests of all contexts, from submit until reaped. */
bool aiofsync_global_get(void);
void aiofsync_global_put(unsigned int n);

#endif /* AIOFSYNC_INTERNAL_H */
