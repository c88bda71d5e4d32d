// SPDX-License-Identifier: GPL-2.0
/*
 * Submission and execution of requests.
 *
 * A request is checked whole before anything is taken, so that a refused one
 * leaves no trace. An accepted one holds, from the submitter's context, what
 * it needs later on a worker: its own reference to the file (closing or
 * reusing the descriptor afterwards changes nothing), the credentials, and
 * for READ/WRITE the address space of the buffer.
 *
 * The buffer of a READ/WRITE is not pinned: the worker enters the submitter's
 * address space (kthread_use_mm) and copies as a read(2)/write(2) of the
 * submitter would. If the buffer was unmapped meanwhile the request fails
 * with -EFAULT; if the address space is gone (exit, exec) the request fails
 * with -EFAULT as well; memory is never touched behind the owner's back.
 * This is how FreeBSD's AIO workers reach user buffers, and it keeps
 * requests of any size cheap to submit.
 *
 * What the filesystem checks against the current task, a worker must check
 * for the submitter: RLIMIT_FSIZE, captured when the request is accepted
 * (aiofsync_fsize_limit()).
 */
#include <linux/cred.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/kthread.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/uio.h>

#include "aiofsync.h"

static bool aiofsync_is_rw(u32 opcode)
{
	return opcode == AIOFSYNC_OP_WRITE || opcode == AIOFSYNC_OP_READ;
}

/* What can be refused from the request alone. */
static int aiofsync_check_req(const struct aiofsync_req *r)
{
	if (r->flags & ~AIOFSYNC_REQ_FLAGS_ALL)
		return -EINVAL;
	if (r->reserved0 || r->reserved1)
		return -EINVAL;
	if (r->prio > AIOFSYNC_PRIO_MAX)
		return -EINVAL;
	if (!(r->flags & AIOFSYNC_REQ_EVENTFD) && r->resfd)
		return -EINVAL;
	if (r->offset > LLONG_MAX || r->len > LLONG_MAX - r->offset)
		return -EINVAL;

	switch (r->opcode) {
	case AIOFSYNC_OP_FSYNC:
	case AIOFSYNC_OP_FDATASYNC:
		return r->addr ? -EINVAL : 0;
	case AIOFSYNC_OP_WRITE:
	case AIOFSYNC_OP_READ:
		if (r->len > MAX_RW_COUNT)
			return -EINVAL;
		/* A buffer needs an address space to be in. */
		if (!current->mm || !access_ok(u64_to_user_ptr(r->addr), r->len))
			return -EFAULT;
		return 0;
	default:
		return -EINVAL;
	}
}

/*
 * What the file must allow, as pwrite(2), pread(2) and fsync(2) check it.
 * AIOFSYNC_REQ_NO_APPEND refuses a WRITE to an O_APPEND file: appends land
 * in the order the writes run, and writes to one file run concurrently, so
 * a caller that must keep them in call order (POSIX AIO on one descriptor)
 * learns it here, without an fcntl(F_GETFL) of its own before each submit.
 * f_flags is read unlocked, as the write path reads it: a concurrent
 * fcntl(F_SETFL) may or may not be seen, as with that fcntl(F_GETFL).
 */
static int aiofsync_check_file(const struct file *file, u32 opcode, u32 flags)
{
	switch (opcode) {
	case AIOFSYNC_OP_FSYNC:
	case AIOFSYNC_OP_FDATASYNC:
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
		return file->f_op->fsync ? 0 : -EINVAL;
	case AIOFSYNC_OP_WRITE:
		if (!(file->f_mode & FMODE_WRITE))
			return -EBADF;
		if (!(file->f_mode & FMODE_CAN_WRITE) || !file->f_op->write_iter)
			return -EINVAL;
		if ((flags & AIOFSYNC_REQ_NO_APPEND) &&
		    (READ_ONCE(file->f_flags) & O_APPEND))
			return -EINVAL;
		return file->f_mode & FMODE_PWRITE ? 0 : -ESPIPE;
	default:
		if (!(file->f_mode & FMODE_READ))
			return -EBADF;
		if (!(file->f_mode & FMODE_CAN_READ) || !file->f_op->read_iter)
			return -EINVAL;
		return file->f_mode & FMODE_PREAD ? 0 : -ESPIPE;
	}
}

/*
 * Apply the submitter's RLIMIT_FSIZE to a WRITE of *@len bytes, as
 * generic_write_check_limits() applies the current task's to pwrite(2): a
 * write starting at or past the limit fails with -EFBIG, one crossing it is
 * cut short to end at the limit. The worker's own limit (a kworker's:
 * unlimited) is the one the filesystem checks; it changes nothing.
 *
 * Only regular files: block devices and the like have no such check either.
 * An empty write is not checked (generic_write_checks_count() returns 0
 * first). An O_APPEND write starts at the end of file, which only the
 * filesystem knows, under its inode lock: the size read here can be moved by
 * a concurrent append or truncate before the write takes it.
 *
 * No SIGXFSZ: the submitter is not the running task, may have changed since
 * (exec, a new handler) or be gone; the completion carries -EFBIG.
 * s_maxbytes and O_LARGEFILE are left to the filesystem, which checks them
 * after this, in the same order as for pwrite(2).
 */
static int aiofsync_fsize_limit(const struct aiofsync_request *req, u64 *len)
{
	struct inode *inode = file_inode(req->file);
	/* As the kernel compares them: signed, with RLIM_INFINITY as -1. */
	loff_t limit = req->fsize_limit;
	loff_t pos = req->pos;

	if (req->fsize_limit == RLIM_INFINITY || !S_ISREG(inode->i_mode) ||
	    !*len)
		return 0;
	if (req->file->f_flags & O_APPEND)
		pos = i_size_read(inode);
	if (pos >= limit)
		return -EFBIG;
	*len = min_t(u64, *len, limit - pos);
	return 0;
}

static ssize_t aiofsync_do_rw(struct aiofsync_request *req)
{
	bool write = req->ev.opcode == AIOFSYNC_OP_WRITE;
	const struct cred *old_cred;
	struct iov_iter iter;
	loff_t pos = req->pos;
	u64 len = req->len;
	ssize_t ret;

	if (write) {
		ret = aiofsync_fsize_limit(req, &len);
		if (ret)
			return ret;
	}

	/* The address space outlived its users (exit, exec): nothing to copy. */
	if (!mmget_not_zero(req->mm))
		return -EFAULT;
	kthread_use_mm(req->mm);
	old_cred = override_creds(req->cred);

	iov_iter_ubuf(&iter, write ? ITER_SOURCE : ITER_DEST, req->buf, len);
	if (write) {
#ifndef AIOFSYNC_ITER_WRITE_FREEZE_PROTECTS
		file_start_write(req->file);
#endif
		ret = vfs_iter_write(req->file, &iter, &pos, 0);
#ifndef AIOFSYNC_ITER_WRITE_FREEZE_PROTECTS
		file_end_write(req->file);
#endif
	} else {
		ret = vfs_iter_read(req->file, &iter, &pos, 0);
	}

	revert_creds(old_cred);
	kthread_unuse_mm(req->mm);
	mmput(req->mm);
	return ret;
}

/* Run a READ/WRITE and complete it, on a worker (a work item or a writer). */
void aiofsync_rw_run(struct aiofsync_request *req)
{
	aiofsync_finish(req, aiofsync_do_rw(req), 0);
}

static void aiofsync_rw_work(struct work_struct *work)
{
	aiofsync_rw_run(container_of(work, struct aiofsync_request, work));
}

/*
 * Drop what an accepted request holds but its inode state (see
 * aiofsync_finish()); its event stays until reaped.
 */
void aiofsync_request_drop_refs(struct aiofsync_request *req)
{
	if (req->mm)
		mmdrop(req->mm);
	req->mm = NULL;
	put_cred(req->cred);
	req->cred = NULL;
	fput(req->file);
	req->file = NULL;
}

/* Count the request against the limits of its context; ctx->lock held. */
static bool aiofsync_ctx_charge(struct aiofsync_ctx *ctx)
{
	lockdep_assert_held(&ctx->lock);

	if (ctx->nr_requests >= READ_ONCE(aiofsync_max_ctx_requests))
		return false;
	ctx->nr_requests++;
	WRITE_ONCE(ctx->nr_unfinished, ctx->nr_unfinished + 1);
	return true;
}

static int aiofsync_submit_one(struct aiofsync_ctx *ctx,
			       const struct aiofsync_req *r)
{
	struct aiofsync_request *req;
	struct eventfd_ctx *eventfd = NULL;
	struct file *file;
	int ret;

	ret = aiofsync_check_req(r);
	if (ret)
		return ret;
	if (r->fd > INT_MAX)
		return -EBADF;
	file = fget(r->fd);
	if (!file)
		return -EBADF;
	ret = aiofsync_check_file(file, r->opcode, r->flags);
	if (ret)
		goto out_fput;
	if (r->flags & AIOFSYNC_REQ_EVENTFD) {
		eventfd = eventfd_ctx_fdget(r->resfd);
		if (IS_ERR(eventfd)) {
			ret = PTR_ERR(eventfd);
			goto out_fput;
		}
	}

	ret = -EAGAIN;
	if (!aiofsync_global_get())
		goto out_eventfd;
	ret = -ENOMEM;
	req = kzalloc(sizeof(*req), AIOFSYNC_GFP_SUBMIT);
	if (!req)
		goto out_global;

	INIT_LIST_HEAD(&req->queue_node);
	INIT_WORK(&req->work, aiofsync_rw_work);
	req->ctx = ctx;
	req->file = file;
	req->eventfd = eventfd;
	req->prio = r->prio;
	req->pos = r->offset;
	req->len = r->len;
	req->buf = u64_to_user_ptr(r->addr);
	req->ev.user_tag = r->user_tag;
	req->ev.opcode = r->opcode;
	req->state = AIOFSYNC_QUEUED;

	if (r->opcode != AIOFSYNC_OP_READ) {
		ret = aiofsync_order_attach(req);
		if (ret)
			goto out_free;
	}

	/*
	 * One critical section from charging to queueing: a concurrent cancel
	 * must never see the request on ctx->active before it is on a queue.
	 */
	spin_lock(&ctx->lock);
	if (!aiofsync_ctx_charge(ctx)) {
		spin_unlock(&ctx->lock);
		ret = -EAGAIN;
		goto out_detach;
	}
	/* Past this point nothing fails: take the references the request keeps. */
	req->cred = get_current_cred();
	if (r->opcode == AIOFSYNC_OP_WRITE)
		req->fsize_limit = rlimit(RLIMIT_FSIZE);
	if (aiofsync_is_rw(r->opcode)) {
		mmgrab(current->mm);
		req->mm = current->mm;
	}
	kref_get(&ctx->ref);
	list_add_tail(&req->ctx_node, &ctx->active);
	aiofsync_order_submit(req);
	if (aiofsync_is_rw(r->opcode)) {
		list_add_tail(&req->queue_node, &ctx->pending[req->prio]);
		aiofsync_ctx_dispatch(ctx);
	}
	spin_unlock(&ctx->lock);

	aiofsync_stat_add(AIOFSYNC_STAT_SUBMITTED, 1);
	if (r->opcode == AIOFSYNC_OP_WRITE)
		aiofsync_stat_add(AIOFSYNC_STAT_WRITES, 1);
	else if (r->opcode == AIOFSYNC_OP_READ)
		aiofsync_stat_add(AIOFSYNC_STAT_READS, 1);
	return 0;

out_detach:
	if (req->ainode)
		aiofsync_order_put(req->ainode);
out_free:
	kfree(req);
out_global:
	aiofsync_global_put(1);
out_eventfd:
	if (eventfd)
		eventfd_ctx_put(eventfd);
out_fput:
	fput(file);
	return ret;
}

/*
 * Read one request of the array. While the plug holds work, first with page
 * faults disabled: a fault that has to wait (a page swapped out, or served
 * by userfaultfd or FUSE) would keep that work, and other contexts' writes
 * to the same files, waiting as long as it lasts. The plug's work is queued
 * before such a fault is taken.
 */
static int aiofsync_copy_req(struct aiofsync_req *r, const u8 __user *src,
			     u32 size, struct aiofsync_plug *plug)
{
	int ret;

	if (plug->nr) {
		pagefault_disable();
		ret = copy_struct_from_user(r, sizeof(*r), src, size);
		pagefault_enable();
		if (ret != -EFAULT)
			return ret;
		aiofsync_plug_flush(plug);
	}
	return copy_struct_from_user(r, sizeof(*r), src, size);
}

long aiofsync_ioc_submit(struct aiofsync_ctx *ctx, void __user *uarg)
{
	struct aiofsync_submit arg;
	struct aiofsync_plug plug;
	struct aiofsync_req r;
	const u8 __user *base;
	u32 i;
	int ret = 0;

	if (copy_from_user(&arg, uarg, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.reserved)
		return -EINVAL;
	if (arg.req_size < AIOFSYNC_REQ_SIZE_VER0 || arg.req_size > PAGE_SIZE ||
	    arg.nr > INT_MAX)
		return -EINVAL;
	base = u64_to_user_ptr(arg.reqs);

	aiofsync_ctx_plug(ctx, &plug);
	for (i = 0; i < arg.nr; i++) {
		ret = aiofsync_copy_req(&r, base + (size_t)i * arg.req_size,
					arg.req_size, &plug);
		/* Unknown trailing bytes are reserved fields: EINVAL. */
		if (ret == -E2BIG)
			ret = -EINVAL;
		if (!ret)
			ret = aiofsync_submit_one(ctx, &r);
		if (ret)
			break;
		cond_resched();
	}
	aiofsync_ctx_unplug(ctx, &plug);
	return i ? i : ret;
}
