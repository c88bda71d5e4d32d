// SPDX-License-Identifier: GPL-2.0
/*
 * /dev/aiofsync: ordered, asynchronous fsync and the writes it orders behind.
 *
 * This file holds the device: its file operations, the ioctl dispatch, the
 * module parameters and the workqueue that runs every request.
 */
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/uaccess.h>

#include "aiofsync.h"

unsigned int aiofsync_max_ctx_requests = 16384;
module_param_named(max_ctx_requests, aiofsync_max_ctx_requests, uint, 0644);
MODULE_PARM_DESC(max_ctx_requests,
		 "Requests one context may hold, from submit until reaped (EAGAIN beyond)");

unsigned int aiofsync_max_requests = 262144;
module_param_named(max_requests, aiofsync_max_requests, uint, 0644);
MODULE_PARM_DESC(max_requests,
		 "Requests all contexts together may hold, from submit until reaped (EAGAIN beyond)");

unsigned int aiofsync_max_ctx_active = 64;
module_param_named(max_ctx_active, aiofsync_max_ctx_active, uint, 0644);
MODULE_PARM_DESC(max_ctx_active,
		 "READ/WRITE requests of one context running at once; the others wait in priority order");

/*
 * READ/WRITE requests run on a per-CPU workqueue: on the CPU that queued
 * them, where the submitter's data is warm, and a worker that blocks on I/O
 * lets the pool start another. (An unbound queue cost a cross-CPU hand-off
 * per request: 4 to 10 times the CPU per request — bench/ANALYSIS.md.)
 *
 * Flushes have an unbound queue of their own. A flush mostly waits for
 * the disk, so a hand-off costs little beside it; on the submitter's CPU
 * the flushes of many files would wait behind that CPU's stream of writes
 * and start spread out in time, and the filesystem could merge fewer of
 * them into one journal commit. Measured in the guest (bench, W1 with 16
 * and 64 files): 1.28 and 1.65 times the commits per second of a per-CPU
 * flush queue, at the price of about 140 us more latency for a lone sync
 * of a clean file. A flood of writes never keeps a ready fsync from
 * starting either way.
 */
struct workqueue_struct *aiofsync_wq;
struct workqueue_struct *aiofsync_flush_wq;

static int aiofsync_open(struct inode *inode, struct file *file)
{
	struct aiofsync_ctx *ctx = aiofsync_ctx_alloc();

	if (!ctx)
		return -ENOMEM;
	file->private_data = ctx;
	return nonseekable_open(inode, file);
}

static int aiofsync_release(struct inode *inode, struct file *file)
{
	aiofsync_ctx_close(file->private_data);
	return 0;
}

static __poll_t aiofsync_poll(struct file *file, struct poll_table_struct *pt)
{
	return aiofsync_ctx_poll(file->private_data, file, pt);
}

static long aiofsync_ioc_get_info(void __user *uarg)
{
	struct aiofsync_info info = {
		.size = sizeof(info),
		.abi_version = AIOFSYNC_ABI_VERSION,
		.opcodes = BIT_ULL(AIOFSYNC_OP_FSYNC) |
			   BIT_ULL(AIOFSYNC_OP_FDATASYNC) |
			   BIT_ULL(AIOFSYNC_OP_WRITE) | BIT_ULL(AIOFSYNC_OP_READ),
		.req_flags = AIOFSYNC_REQ_FLAGS_ALL,
		.req_size = sizeof(struct aiofsync_req),
		.event_size = sizeof(struct aiofsync_event),
		.max_ctx_requests = READ_ONCE(aiofsync_max_ctx_requests),
		.max_requests = READ_ONCE(aiofsync_max_requests),
		.max_prio = AIOFSYNC_PRIO_MAX,
	};
	u32 usize;

	if (get_user(usize, (u32 __user *)uarg))
		return -EFAULT;
	if (usize < offsetofend(struct aiofsync_info, abi_version))
		return -EINVAL;
	if (copy_to_user(uarg, &info, min_t(u32, usize, sizeof(info))))
		return -EFAULT;
	return 0;
}

static long aiofsync_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	struct aiofsync_ctx *ctx = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case AIOFSYNC_IOC_SUBMIT:
		return aiofsync_ioc_submit(ctx, uarg);
	case AIOFSYNC_IOC_REAP:
		return aiofsync_ioc_reap(ctx, uarg);
	case AIOFSYNC_IOC_CANCEL:
		return aiofsync_ioc_cancel(ctx, uarg);
	case AIOFSYNC_IOC_GET_INFO:
		return aiofsync_ioc_get_info(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations aiofsync_fops = {
	.owner		= THIS_MODULE,
	.open		= aiofsync_open,
	.release	= aiofsync_release,
	.poll		= aiofsync_poll,
	.unlocked_ioctl	= aiofsync_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

static struct miscdevice aiofsync_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "aiofsync",
	.fops	= &aiofsync_fops,
	.mode	= 0666,
	.groups	= aiofsync_attr_groups,
};

static int __init aiofsync_init(void)
{
	int ret;

	aiofsync_order_init();
	aiofsync_wq = alloc_workqueue("aiofsync_io", 0, 0);
	if (!aiofsync_wq)
		return -ENOMEM;
	aiofsync_flush_wq = alloc_workqueue("aiofsync_flush", WQ_UNBOUND, 0);
	if (!aiofsync_flush_wq) {
		ret = -ENOMEM;
		goto out_wq;
	}
	ret = misc_register(&aiofsync_misc);
	if (ret)
		goto out_flush_wq;
	return 0;

out_flush_wq:
	destroy_workqueue(aiofsync_flush_wq);
out_wq:
	destroy_workqueue(aiofsync_wq);
	return ret;
}

static void __exit aiofsync_exit(void)
{
	misc_deregister(&aiofsync_misc);
	/* Waits for the last work items, which may still drop references. */
	destroy_workqueue(aiofsync_wq);
	destroy_workqueue(aiofsync_flush_wq);
	aiofsync_order_exit();
}

module_init(aiofsync_init);
module_exit(aiofsync_exit);

MODULE_DESCRIPTION("Ordered asynchronous fsync through /dev/aiofsync");
MODULE_LICENSE("GPL");
