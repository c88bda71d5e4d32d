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

unsigned int aiofsync_bg_hold_ms = 1000;
module_param_named(bg_hold_ms, aiofsync_bg_hold_ms, uint, 0644);
MODULE_PARM_DESC(bg_hold_ms,
		 "Longest a background reaper that took events holds the foreground ones off, in milliseconds (0: no new holds)");

unsigned int aiofsync_flush_defer_us = 2000;
module_param_named(flush_defer_us, aiofsync_flush_defer_us, uint, 0644);
MODULE_PARM_DESC(flush_defer_us,
		 "Longest wait of a ready sync for its file's writer to run dry, in microseconds (one jiffy at least)");

/*
 * READ/WRITE requests run on an unbound workqueue. On a per-CPU one, the
 * writes of every file queued from one CPU ran one after the other on that
 * CPU's worker (a page-cache write rarely sleeps, so the pool starts no
 * second one), the syncs behind them became ready spread out in time, and
 * the filesystem merged fewer of them into one journal commit or log force.
 * Side by side in one boot (bench cells, 6 repetitions, W1 with 4 to 64
 * files): 0.13 instead of 0.20 flushes per commit on ext4 at 64 files,
 * 0.45 instead of 0.64 on xfs, fewer in 7 of 8 cells; W2's group commit
 * the same on ext4, a little weaker on xfs (64 threads: 0.11 instead of
 * 0.075 flushes per commit). Its max_active is the largest allowed: as
 * many writes may be blocked (on I/O, on a page fault) as on the per-CPU
 * queue of a small machine.
 *
 * Flushes have an unbound queue of their own, for the same reason: on the
 * submitter's CPU the flushes of many files would wait behind that CPU's
 * stream of writes and start spread out in time. Measured in the guest
 * (bench, W1 with 16 and 64 files): 1.28 and 1.65 times the commits per
 * second of a per-CPU flush queue, at the price of about 140 us more
 * latency for a lone sync of a clean file. A flood of writes never keeps a
 * ready fsync from starting either way.
 *
 * Both are WQ_SYSFS, so that an administrator can set their workers' nice
 * value and CPU mask in /sys/devices/virtual/workqueue/aiofsync_{io,flush}/
 * (a module cannot: apply_workqueue_attrs() is not exported). The workers
 * run at nice 0, like the program that submits to them; "Workqueues" in
 * Documentation/userspace-api/aiofsync.rst says what nice 5 did in the
 * bench.
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
		.reap_flags = AIOFSYNC_REAP_FLAGS_ALL,
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
		return aiofsync_ioc_reap(ctx, uarg, false);
	case AIOFSYNC_IOC_REAP_TAKES:
		return aiofsync_ioc_reap(ctx, uarg, true);
	case AIOFSYNC_IOC_CANCEL:
		return aiofsync_ioc_cancel(ctx, uarg);
	case AIOFSYNC_IOC_GET_INFO:
		return aiofsync_ioc_get_info(uarg);
	case AIOFSYNC_IOC_WAKE:
		/* A value: compat_ptr() leaves its few bits as they are. */
		return aiofsync_ioc_wake(ctx, arg);
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
	aiofsync_wq = alloc_workqueue("aiofsync_io", WQ_UNBOUND | WQ_SYSFS,
				      WQ_UNBOUND_MAX_ACTIVE);
	if (!aiofsync_wq)
		return -ENOMEM;
	aiofsync_flush_wq = alloc_workqueue("aiofsync_flush",
					    WQ_UNBOUND | WQ_SYSFS, 0);
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
