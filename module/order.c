// SPDX-License-Identifier: GPL-2.0
/*
 * Per-inode ordering and group commit.
 *
 * Every WRITE, FSYNC and FDATASYNC request on an inode takes the next number
 * of that inode's sequence when it is submitted, from whichever context. A
 * sync waits ("waiting") until no WRITE with a smaller number is unfinished;
 * it is then "ready". Later writes never hold it back, and requests on other
 * inodes never meet it.
 *
 * Ready syncs are served by the inode's flush work: while one flush runs,
 * the syncs that become ready gather, and the next flush serves them all with
 * one vfs_fsync_range() over the union of their ranges (data-only only if all
 * of them are FDATASYNC). That is group commit: with N threads syncing one
 * file, about two flushes are in the air instead of N.
 *
 * Buffered WRITEs of an inode, once their context lets them run, are run by
 * the inode's writer, one after the other in dispatch order, as io_uring's
 * io-wq serialises buffered writes to one regular file. The filesystem runs
 * them one at a time anyway (ext4 and xfs hold the inode lock across a
 * buffered write): a work item per write only woke a worker for each, to
 * queue on that lock. Measured in the guest (bench, ext4, 3 boots of 5 to 8
 * repetitions, the old and the new way switched between cells): CPU per
 * commit fell in every W1 cell, by 6 to 26%, the most where many commits of
 * one file are in flight. O_DIRECT writes keep a work item each: they may
 * run concurrently on one file and wait on the disk.
 *
 * The state lives in a small hash table keyed by the inode, as long as a
 * request refers to it: the files of the requests keep the inode itself alive.
 */
#include <linux/cred.h>
#include <linux/errseq.h>
#include <linux/file.h>
#include <linux/hash.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <linux/writeback.h>

#include "aiofsync.h"

struct aiofsync_inode {
	struct hlist_node hnode;	/* bucket lock */
	const struct inode *inode;	/* the key: identity only */
	refcount_t ref;			/* requests, plus one while flushing */
	/* Protects every field below. */
	spinlock_t lock;
	u64 next_seq;
	struct list_head writes;	/* unfinished WRITEs, in seq order */
	struct list_head waiting;	/* syncs behind writes, in seq order */
	struct list_head ready;		/* syncs for the next flush */
	bool flushing;			/* flush_work queued or running */
	struct work_struct flush_work;
	struct list_head run;		/* dispatched WRITEs for write_work */
	bool writing;			/* write_work queued or running */
	struct work_struct write_work;
	bool prewritten;		/* writeback started for the next flush */
	bool deferred;			/* flush left to the writer: deadline */
	struct delayed_work deadline;
};

#define AIOFSYNC_INODE_HASH_BITS	8

static struct aiofsync_bucket {
	spinlock_t lock;		/* the chain and refs dropping to 0 */
	struct hlist_head head;
} aiofsync_inode_table[1 << AIOFSYNC_INODE_HASH_BITS];

static struct aiofsync_bucket *aiofsync_bucket(const struct inode *inode)
{
	return &aiofsync_inode_table[hash_ptr(inode, AIOFSYNC_INODE_HASH_BITS)];
}

static struct aiofsync_inode *aiofsync_inode_find(struct aiofsync_bucket *b,
						  const struct inode *inode)
{
	struct aiofsync_inode *ai;

	lockdep_assert_held(&b->lock);
	hlist_for_each_entry(ai, &b->head, hnode)
		if (ai->inode == inode) {
			refcount_inc(&ai->ref);
			return ai;
		}
	return NULL;
}

static void aiofsync_flush_work(struct work_struct *work);
static void aiofsync_write_work(struct work_struct *work);
static void aiofsync_deadline_work(struct work_struct *work);
static void aiofsync_flush_extent(struct list_head *batch, loff_t *start,
				  loff_t *end, int *datasync);

static struct aiofsync_inode *aiofsync_inode_get(const struct inode *inode)
{
	struct aiofsync_bucket *b = aiofsync_bucket(inode);
	struct aiofsync_inode *ai, *fresh;

	spin_lock(&b->lock);
	ai = aiofsync_inode_find(b, inode);
	spin_unlock(&b->lock);
	if (ai)
		return ai;

	/* Allocate outside the bucket lock, then look again. */
	fresh = kzalloc(sizeof(*fresh), AIOFSYNC_GFP_SUBMIT);
	if (!fresh)
		return NULL;
	fresh->inode = inode;
	refcount_set(&fresh->ref, 1);
	spin_lock_init(&fresh->lock);
	INIT_LIST_HEAD(&fresh->writes);
	INIT_LIST_HEAD(&fresh->waiting);
	INIT_LIST_HEAD(&fresh->ready);
	INIT_WORK(&fresh->flush_work, aiofsync_flush_work);
	INIT_LIST_HEAD(&fresh->run);
	INIT_WORK(&fresh->write_work, aiofsync_write_work);
	INIT_DELAYED_WORK(&fresh->deadline, aiofsync_deadline_work);

	spin_lock(&b->lock);
	ai = aiofsync_inode_find(b, inode);
	if (!ai) {
		hlist_add_head(&fresh->hnode, &b->head);
		ai = fresh;
		fresh = NULL;
	}
	spin_unlock(&b->lock);
	kfree(fresh);
	return ai;
}

/* Drop a reference to an inode's order state (a request's, or a flush's). */
void aiofsync_order_put(struct aiofsync_inode *ai)
{
	struct aiofsync_bucket *b = aiofsync_bucket(ai->inode);

	/* Under the bucket lock, so that no lookup revives it meanwhile. */
	spin_lock(&b->lock);
	if (!refcount_dec_and_test(&ai->ref)) {
		spin_unlock(&b->lock);
		return;
	}
	hlist_del(&ai->hnode);
	spin_unlock(&b->lock);
	WARN_ON_ONCE(ai->flushing || ai->writing || ai->deferred ||
		     !list_empty(&ai->writes) ||
		     !list_empty(&ai->waiting) || !list_empty(&ai->ready) ||
		     !list_empty(&ai->run));
	/* Freeing from the flush work itself is allowed by the workqueue. */
	kfree(ai);
}

/*
 * How long a ready sync may be left to the writer: a queued write that
 * blocks (on a page fault, say) must not hold back a sync it is not ordered
 * before. flush_defer_us, 2 ms unless set; one jiffy at least, which is
 * about a flush here.
 */
static unsigned long aiofsync_defer_max(void)
{
	return max(1UL, usecs_to_jiffies(READ_ONCE(aiofsync_flush_defer_us)));
}

/*
 * No ready sync is left to the writer any more. A deadline that is
 * cancelled drops its reference here (the caller holds another); one that
 * is already running finds ai->deferred clear and drops its own. Either way
 * a deadline never outlives the syncs it was for, nor the module.
 */
static void aiofsync_drop_deadline(struct aiofsync_inode *ai)
{
	lockdep_assert_held(&ai->lock);

	if (!ai->deferred)
		return;
	ai->deferred = false;
	if (cancel_delayed_work(&ai->deadline))
		refcount_dec(&ai->ref);
}

/*
 * Start a flush for the ready syncs unless one is already under way, or
 * unless the inode's writer has writes queued: their syncs follow at once,
 * and the writer starts the flush when it runs dry or gives its worker back,
 * so that one flush serves them too; the deadline work starts it if the
 * writer has not by aiofsync_defer_max(). Side by side (W2 and W1 with 4
 * commits in flight per file; 6.1, 6 repetitions, medians): on xfs 0.30 ->
 * 0.17 flushes per commit at 16 threads, 0.85 -> 0.64 at 4 files; on ext4
 * 0.24 -> 0.21 and 0.49 -> 0.48.
 *
 * @submitter: the context of a sync that the current submit call made
 * ready, whose lock is held: the flush then waits in the call's plug like
 * the call's writes (aiofsync_ctx_plug()). A burst of syncs of clean files
 * otherwise wakes a flush worker per sync in the middle of the call, each
 * of which may preempt the submitter, and the flushes reach the disk
 * spread out instead of together. Side by side (6.1, ext4, W4 over 1000
 * files, 5 repetitions of 1 s, per-round ratios, medians): 1.87x, 1.43x and
 * 1.74x the syncs per second with 100, 1000 and 10000 in flight (0.228 ->
 * 0.118, 0.244 -> 0.147 and 0.160 -> 0.070 disk flushes per sync; CPU per
 * sync 70 -> 38, 84 -> 79 and 79 -> 45 us); W1, W2, W3 and W4 on one file
 * within their spread.
 */
static void aiofsync_kick_flush(struct aiofsync_inode *ai, bool writer,
				struct aiofsync_ctx *submitter)
{
	lockdep_assert_held(&ai->lock);

	if (ai->flushing || list_empty(&ai->ready))
		return;
	if (!writer && ai->writing && !list_empty(&ai->run)) {
		if (!ai->deferred) {
			ai->deferred = true;
			refcount_inc(&ai->ref);
			/* A deadline whose cancel came too late serves as this one. */
			if (!queue_delayed_work(aiofsync_flush_wq, &ai->deadline,
						aiofsync_defer_max()))
				refcount_dec(&ai->ref);
		}
		return;
	}
	ai->flushing = true;
	refcount_inc(&ai->ref);
	if (submitter)
		aiofsync_ctx_queue(submitter, aiofsync_flush_wq, &ai->flush_work);
	else
		queue_work(aiofsync_flush_wq, &ai->flush_work);
	aiofsync_drop_deadline(ai);
}

/* Find or make the order state of the request's inode. */
int aiofsync_order_attach(struct aiofsync_request *req)
{
	req->ainode = aiofsync_inode_get(file_inode(req->file));
	return req->ainode ? 0 : -ENOMEM;
}

/*
 * Enter an attached request into the order of its inode. For a sync this is
 * the last step of submission: from here it may complete at any moment.
 */
void aiofsync_order_submit(struct aiofsync_request *req)
{
	struct aiofsync_inode *ai = req->ainode;

	if (!ai)
		return;
	spin_lock(&ai->lock);
	req->seq = ai->next_seq++;
	if (req->ev.opcode == AIOFSYNC_OP_WRITE) {
		list_add_tail(&req->write_node, &ai->writes);
	} else if (list_empty(&ai->writes)) {
		list_add_tail(&req->queue_node, &ai->ready);
		aiofsync_kick_flush(ai, false, req->ctx);
	} else {
		list_add_tail(&req->queue_node, &ai->waiting);
	}
	spin_unlock(&ai->lock);
}

/* A WRITE finished (or was cancelled): release the syncs it held back. */
void aiofsync_order_write_done(struct aiofsync_request *req)
{
	struct aiofsync_inode *ai = req->ainode;
	struct aiofsync_request *oldest, *sync, *tmp;

	spin_lock(&ai->lock);
	list_del(&req->write_node);
	oldest = list_first_entry_or_null(&ai->writes, struct aiofsync_request,
					  write_node);
	list_for_each_entry_safe(sync, tmp, &ai->waiting, queue_node) {
		if (oldest && sync->seq > oldest->seq)
			break;
		list_move_tail(&sync->queue_node, &ai->ready);
	}
	aiofsync_kick_flush(ai, false, NULL);
	spin_unlock(&ai->lock);
}

/*
 * Hand a WRITE that its context has let run (and that can no longer be
 * cancelled) to its inode's writer. Called with the context's lock held.
 * Returns false for a write that must run on a work item of its own.
 */
bool aiofsync_order_run_write(struct aiofsync_request *req)
{
	struct aiofsync_inode *ai = req->ainode;

	if (req->file->f_flags & O_DIRECT)
		return false;
	spin_lock(&ai->lock);
	list_add_tail(&req->queue_node, &ai->run);
	if (!ai->writing) {
		ai->writing = true;
		refcount_inc(&ai->ref);
		aiofsync_ctx_queue(req->ctx, aiofsync_wq, &ai->write_work);
	}
	spin_unlock(&ai->lock);
	return true;
}

static void aiofsync_deadline_work(struct work_struct *work)
{
	struct aiofsync_inode *ai = container_of(to_delayed_work(work),
						 struct aiofsync_inode, deadline);

	spin_lock(&ai->lock);
	if (ai->deferred) {
		ai->deferred = false;
		aiofsync_kick_flush(ai, true, NULL);
	}
	spin_unlock(&ai->lock);
	aiofsync_order_put(ai);
}

/*
 * The writer has run dry while a flush of its inode runs, and syncs wait
 * for the next one: start writing their data back now, once per flush.
 * Their flush then finds it under way or done, and on ext4 (delayed
 * allocation) the blocks are allocated in the journal transaction that is
 * open during the current commit, which the next commit takes whole, with
 * the other files' syncs that wait in the same way; otherwise a file whose
 * flush starts a moment after another's allocates in the transaction after
 * that. Side by side (6.1, ext4, 4 files with 4 commits in flight each, 2
 * boots of 6 repetitions): 0.49 -> 0.41 and 0.49 -> 0.39 flushes per
 * commit, 874 -> 1064 and 806 -> 1083 commits/s; xfs and W2 level.
 *
 * Called with ai->lock held as the writer runs dry; returns the file to
 * write back through (a reference) with @wbc's range set, or NULL.
 */
static struct file *aiofsync_writer_prewrite(struct aiofsync_inode *ai,
					     struct writeback_control *wbc)
{
	struct aiofsync_request *req;
	int datasync;

	lockdep_assert_held(&ai->lock);

	req = list_first_entry_or_null(&ai->ready, struct aiofsync_request,
				       queue_node);
	if (!req || !ai->flushing || ai->prewritten)
		return NULL;
	ai->prewritten = true;
	aiofsync_flush_extent(&ai->ready, &wbc->range_start, &wbc->range_end,
			      &datasync);
	/* The sync may complete meanwhile: keep its file open. */
	return get_file(req->file);
}

/* Writes the writer runs before it gives its worker back to the queue. */
#define AIOFSYNC_WRITER_BATCH	16

static void aiofsync_write_work(struct work_struct *work)
{
	struct aiofsync_inode *ai = container_of(work, struct aiofsync_inode,
						 write_work);
	struct writeback_control wbc = {
		.sync_mode = WB_SYNC_NONE,	/* start it, do not wait */
		.nr_to_write = LONG_MAX,
	};
	struct aiofsync_request *req;
	struct file *file;
	unsigned int n;

	for (n = 0; n < AIOFSYNC_WRITER_BATCH; n++) {
		spin_lock(&ai->lock);
		req = list_first_entry_or_null(&ai->run, struct aiofsync_request,
					       queue_node);
		if (!req) {
			file = aiofsync_writer_prewrite(ai, &wbc);
			ai->writing = false;
			spin_unlock(&ai->lock);
			if (file) {
				filemap_fdatawrite_wbc(file->f_mapping, &wbc);
				fput(file);
			}
			aiofsync_order_put(ai);
			return;
		}
		list_del_init(&req->queue_node);
		spin_unlock(&ai->lock);
		/* Finishing it may dispatch more writes to this writer. */
		aiofsync_rw_run(req);
		cond_resched();
	}
	/* Requeue rather than loop: one busy inode must not hold a worker. */
	spin_lock(&ai->lock);
	aiofsync_kick_flush(ai, true, NULL);
	spin_unlock(&ai->lock);
	queue_work(aiofsync_wq, &ai->write_work);
}

/*
 * Cancel a sync that has not joined a flush yet. Called with its context's
 * lock held (the context lock nests outside the inode lock).
 */
bool aiofsync_order_cancel_sync(struct aiofsync_request *req)
{
	struct aiofsync_inode *ai = req->ainode;
	bool detached = false;

	lockdep_assert_held(&req->ctx->lock);

	spin_lock(&ai->lock);
	if (req->state == AIOFSYNC_QUEUED) {
		list_del_init(&req->queue_node);
		req->state = AIOFSYNC_CANCELED;
		detached = true;
		if (list_empty(&ai->ready))
			aiofsync_drop_deadline(ai);
	}
	spin_unlock(&ai->lock);
	return detached;
}

/* The range and kind of one flush that serves every sync of @batch. */
static void aiofsync_flush_extent(struct list_head *batch, loff_t *start,
				  loff_t *end, int *datasync)
{
	struct aiofsync_request *req;

	*start = LLONG_MAX;
	*end = 0;
	*datasync = 1;
	list_for_each_entry(req, batch, queue_node) {
		loff_t last = req->len ? req->pos + req->len - 1 : LLONG_MAX;

		*start = min(*start, req->pos);
		*end = max(*end, last);
		if (req->ev.opcode == AIOFSYNC_OP_FSYNC)
			*datasync = 0;
	}
}

/*
 * One flush for a batch of syncs on one inode. It runs through the file and
 * credentials of the first (the lead); the result of every other request is
 * then made to be what an fsync(2) through its own file would return, as far
 * as the kernel lets us tell.
 *
 * An fsync(2) result holds two kinds of error. Writeback errors are
 * recorded once in the mapping (errseq) and collected by each open file
 * through its own cursor, f_wb_err (file_check_and_advance_wb_err()): every
 * file sees each such error once, and a file that has already collected it
 * gets 0 next time. Errors of the flush itself (a journal abort, a read-only
 * or shut down filesystem, a failed cache flush) are returned to any caller.
 * vfs_fsync_range() returns one number and does not say which kind it is:
 *
 *  - if the lead's cursor moved during the flush and the result is the error
 *    it moved to, the result is the lead's errseq news: every other file gets
 *    only what its own cursor has to collect (0 if it saw the error before);
 *  - otherwise the result (if any) is the flush's own error and applies to
 *    every file. Each file's cursor is still advanced, as fsync(2) does, and
 *    the flush error comes first, as in ext4_sync_file().
 *
 * A flush error equal to errseq news that arrived in the same flush, or an
 * fsync(2) on the lead's file moving its cursor meanwhile, cannot be told
 * apart from the first case; the other files then get their errseq result
 * alone. Requests on the lead's own file share the lead's result.
 */
static void aiofsync_flush_batch(struct list_head *batch, unsigned int nr)
{
	struct aiofsync_request *lead, *req, *tmp;
	const struct cred *old_cred;
	loff_t start, end;
	int datasync, ret, shared;
	u32 ev_flags = nr > 1 ? AIOFSYNC_EV_SHARED_FLUSH : 0;
	errseq_t lead_since;

	lead = list_first_entry(batch, struct aiofsync_request, queue_node);
	aiofsync_flush_extent(batch, &start, &end, &datasync);

	lead_since = READ_ONCE(lead->file->f_wb_err);
	old_cred = override_creds(lead->cred);
	ret = vfs_fsync_range(lead->file, start, end, datasync);
	revert_creds(old_cred);
	shared = ret;
	if (ret && ret == errseq_check(&lead->file->f_wb_err, lead_since))
		shared = 0;

	aiofsync_stat_add(AIOFSYNC_STAT_FLUSHES, 1);
	aiofsync_stat_add(AIOFSYNC_STAT_FLUSHES_SAVED, nr - 1);

	/* All results first: a finished request may be reaped and freed. */
	list_for_each_entry(req, batch, queue_node) {
		int own;

		req->ev.res = ret;
		if (req->file == lead->file)
			continue;
		own = file_check_and_advance_wb_err(req->file);
		req->ev.res = shared ?: own;
	}
	list_for_each_entry_safe(req, tmp, batch, queue_node) {
		list_del_init(&req->queue_node);
		aiofsync_finish(req, req->ev.res, ev_flags);
	}
}

static void aiofsync_flush_work(struct work_struct *work)
{
	struct aiofsync_inode *ai = container_of(work, struct aiofsync_inode,
						 flush_work);
	struct aiofsync_request *req;
	unsigned int nr = 0;
	LIST_HEAD(batch);

	spin_lock(&ai->lock);
	ai->prewritten = false;
	list_splice_init(&ai->ready, &batch);
	list_for_each_entry(req, &batch, queue_node) {
		req->state = AIOFSYNC_RUNNING;
		nr++;
	}
	spin_unlock(&ai->lock);

	if (nr)
		aiofsync_flush_batch(&batch, nr);

	/*
	 * Syncs that became ready meanwhile get the next flush: requeue rather
	 * than loop, so that one busy inode does not hold a worker forever.
	 */
	spin_lock(&ai->lock);
	if (!list_empty(&ai->ready)) {
		queue_work(aiofsync_flush_wq, &ai->flush_work);
		spin_unlock(&ai->lock);
		return;
	}
	ai->flushing = false;
	spin_unlock(&ai->lock);
	aiofsync_order_put(ai);
}

void aiofsync_order_exit(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(aiofsync_inode_table); i++)
		WARN_ON_ONCE(!hlist_empty(&aiofsync_inode_table[i].head));
}

void aiofsync_order_init(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(aiofsync_inode_table); i++) {
		spin_lock_init(&aiofsync_inode_table[i].lock);
		INIT_HLIST_HEAD(&aiofsync_inode_table[i].head);
	}
}
