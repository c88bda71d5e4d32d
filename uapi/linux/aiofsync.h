/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * aiofsync: ordered, asynchronous fsync through /dev/aiofsync.
 *
 * Every open() of /dev/aiofsync is a context. A program submits a batch of
 * requests (AIOFSYNC_IOC_SUBMIT), each naming a file descriptor of its own,
 * and reaps their completions (AIOFSYNC_IOC_REAP, or poll()/epoll for
 * readiness). An FSYNC or FDATASYNC request starts its flush only after every
 * WRITE to the same inode submitted before it, from any context, completed.
 *
 * The structures hold only fixed-size fields with explicit padding, so that
 * 32-bit and 64-bit processes share one layout. Reserved fields and unknown
 * flags must be zero; the kernel rejects anything else with EINVAL, so that
 * they can be given a meaning later. See
 * Documentation/userspace-api/aiofsync.rst.
 */
#ifndef _UAPI_LINUX_AIOFSYNC_H
#define _UAPI_LINUX_AIOFSYNC_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define AIOFSYNC_DEVICE		"/dev/aiofsync"
#define AIOFSYNC_ABI_VERSION	1

/* Request opcodes (struct aiofsync_req.opcode). */
enum aiofsync_opcode {
	AIOFSYNC_OP_FSYNC	= 1,	/* like fsync(2), O_SYNC */
	AIOFSYNC_OP_FDATASYNC	= 2,	/* like fdatasync(2), O_DSYNC */
	AIOFSYNC_OP_WRITE	= 3,	/* like pwrite(2) */
	AIOFSYNC_OP_READ	= 4,	/* like pread(2) */
};

/* Request flags (struct aiofsync_req.flags). */
#define AIOFSYNC_REQ_EVENTFD	0x1		/* signal eventfd @resfd on completion */
#define AIOFSYNC_REQ_NO_APPEND	0x2		/* WRITE: EINVAL if fd is O_APPEND */
#define AIOFSYNC_REQ_FLAGS_ALL	(AIOFSYNC_REQ_EVENTFD | AIOFSYNC_REQ_NO_APPEND)

/* Largest priority: like aio_reqprio, a larger value is served later. */
#define AIOFSYNC_PRIO_MAX	20

/**
 * struct aiofsync_req - one request
 * @user_tag:	returned as is in the completion; need not be unique
 * @opcode:	enum aiofsync_opcode
 * @flags:	AIOFSYNC_REQ_* flags
 * @fd:		file descriptor of the submitting process
 * @prio:	0 (default) to AIOFSYNC_PRIO_MAX; among requests of one context
 *		that wait to start, a lower value starts first
 * @offset:	file offset; for FSYNC/FDATASYNC the start of the range
 * @len:	bytes to write or read; for FSYNC/FDATASYNC the length of the
 *		range, 0 meaning "to the end of the file"
 * @addr:	user buffer of WRITE/READ; 0 for FSYNC/FDATASYNC
 * @resfd:	eventfd to signal, with AIOFSYNC_REQ_EVENTFD; else 0
 * @reserved0:	must be 0
 * @reserved1:	must be 0
 */
struct aiofsync_req {
	__u64 user_tag;
	__u32 opcode;
	__u32 flags;
	__u32 fd;
	__u32 prio;
	__u64 offset;
	__u64 len;
	__u64 addr;
	__u32 resfd;
	__u32 reserved0;
	__u64 reserved1;
};

#define AIOFSYNC_REQ_SIZE_VER0	64	/* sizeof first published struct */

/**
 * struct aiofsync_submit - argument of AIOFSYNC_IOC_SUBMIT
 * @nr:		number of requests in the array at @reqs
 * @req_size:	sizeof(struct aiofsync_req) as the caller knows it: the stride
 *		of the array. A smaller (older) size is zero-extended; a larger
 *		one is accepted if the bytes the kernel does not know are zero.
 * @reqs:	user pointer to the array of requests
 * @flags:	must be 0
 * @reserved:	must be 0
 *
 * The ioctl returns how many requests were accepted, in array order; it stops
 * at the first request it refuses, and returns that request's error if it was
 * the first one.
 */
struct aiofsync_submit {
	__u32 nr;
	__u32 req_size;
	__u64 reqs;
	__u32 flags;
	__u32 reserved;
};

/* Completion flags (struct aiofsync_event.flags). */
#define AIOFSYNC_EV_SHARED_FLUSH 0x1	/* one flush served several fsyncs */

/**
 * struct aiofsync_event - one completion
 * @user_tag:	the request's @user_tag
 * @res:	bytes written or read, 0 for a flush, or a negative errno
 * @res2:	0 (libaio's second result word)
 * @opcode:	the request's opcode
 * @flags:	AIOFSYNC_EV_* flags
 */
struct aiofsync_event {
	__u64 user_tag;
	__s64 res;
	__s64 res2;
	__u32 opcode;
	__u32 flags;
};

#define AIOFSYNC_TIMEOUT_INFINITE	(~(__u64)0)

/**
 * struct aiofsync_reap - argument of AIOFSYNC_IOC_REAP
 * @min_nr:	wait until at least this many completions are there
 * @max_nr:	take at most this many; at least 1 and at least @min_nr
 * @events:	user pointer to an array of @max_nr struct aiofsync_event
 * @timeout_ns:	longest wait, in nanoseconds; AIOFSYNC_TIMEOUT_INFINITE waits
 *		as long as it takes, 0 does not wait
 * @flags:	0, or AIOFSYNC_REAP_BACKGROUND
 * @fg_takes:	in: must be 0. Out, with AIOFSYNC_IOC_REAP_TAKES only: how
 *		many foreground calls have taken events from the context so
 *		far (modulo 2^32), as of this call's last take, or of its
 *		return if it took none (a foreground call counts itself)
 *
 * Returns the number of events stored (possibly fewer than @min_nr when the
 * timeout expired, when AIOFSYNC_IOC_WAKE ended the wait, or for a
 * background reaper when a foreground one came in just as it woke, or when
 * another reaper took some of the events it woke for). A signal
 * during the wait gives EINTR and takes nothing: the call may simply be
 * made again.
 *
 * A reaper is "foreground" unless it passes AIOFSYNC_REAP_BACKGROUND. A
 * background reaper is woken for events only while no foreground reaper of
 * the context waits: a program may keep one thread reaping in the
 * background and still have the thread that waits for its own request reap
 * it, without both being woken for the same events. A foreground reaper
 * that returns with events left wakes the background ones.
 *
 * A background reaper that returns with events holds the foreground ones
 * off until it makes its next background call, or for the module parameter
 * bg_hold_ms (1 s) at most: meanwhile they take nothing (and wait, if they
 * would), and poll() does not report the device readable. With several
 * background reapers, each background call releases one such hold. A
 * program that publishes a background batch before that call never
 * publishes a foreground event before one the background reaper took
 * earlier (a sync before a write it covers). The other way round - a
 * foreground batch not yet published when the background reaper takes
 * later events - is the program's to order, and @fg_takes tells it how: a
 * background batch whose @fg_takes is T follows every event of the
 * foreground calls counted up to T, and comes before those of later ones.
 * A program that records, once it has published what a foreground call
 * took, that call's @fg_takes publishes a background batch once the record
 * reaches the batch's T.
 */
struct aiofsync_reap {
	__u32 min_nr;
	__u32 max_nr;
	__u64 events;
	__u64 timeout_ns;
	__u32 flags;
	__u32 fg_takes;
};

/* Reap flags (struct aiofsync_reap.flags). */
#define AIOFSYNC_REAP_BACKGROUND	0x1	/* wait only while no foreground reaper does */
#define AIOFSYNC_REAP_FLAGS_ALL	AIOFSYNC_REAP_BACKGROUND

/* Cancel selectors (struct aiofsync_cancel.flags): exactly one of them. */
#define AIOFSYNC_CANCEL_TAG	0x1	/* requests with this @user_tag */
#define AIOFSYNC_CANCEL_FD	0x2	/* requests on the file of @fd */
#define AIOFSYNC_CANCEL_ALL	0x4	/* every request of the context */

/**
 * struct aiofsync_cancel - argument of AIOFSYNC_IOC_CANCEL
 * @flags:	one AIOFSYNC_CANCEL_* selector
 * @fd:		with AIOFSYNC_CANCEL_FD: a descriptor of the file (the open
 *		file description it refers to is what is matched); else 0
 * @user_tag:	with AIOFSYNC_CANCEL_TAG: the tag; else 0
 * @canceled:	out: requests that had not started, now completed with
 *		-ECANCELED (their events are reaped as usual)
 * @running:	out: matching requests already running, not cancelled
 *
 * Nothing matched when both counts are 0: the requests, if any, are done.
 */
struct aiofsync_cancel {
	__u32 flags;
	__u32 fd;
	__u64 user_tag;
	__u32 canceled;
	__u32 running;
};

/**
 * struct aiofsync_info - argument of AIOFSYNC_IOC_GET_INFO
 * @size:	in: sizeof(struct aiofsync_info) as the caller knows it;
 *		out: the size the kernel knows. The kernel writes at most the
 *		caller's size.
 * @abi_version: AIOFSYNC_ABI_VERSION
 * @opcodes:	bit (1 << opcode) for each supported opcode
 * @req_flags:	supported AIOFSYNC_REQ_* flags
 * @req_size:	sizeof(struct aiofsync_req) known to the kernel
 * @event_size:	sizeof(struct aiofsync_event)
 * @max_ctx_requests: requests a context may have unreaped (module parameter)
 * @max_requests: requests all contexts together may have unreaped
 * @max_prio:	AIOFSYNC_PRIO_MAX
 * @reap_flags:	supported AIOFSYNC_REAP_* flags; a module that also has
 *		AIOFSYNC_IOC_WAKE sets AIOFSYNC_REAP_BACKGROUND (0 before both)
 */
struct aiofsync_info {
	__u32 size;
	__u32 abi_version;
	__u64 opcodes;
	__u64 req_flags;
	__u32 req_size;
	__u32 event_size;
	__u32 max_ctx_requests;
	__u32 max_requests;
	__u32 max_prio;
	__u32 reap_flags;
};

#define AIOFSYNC_IOC_MAGIC	0xAF
#define AIOFSYNC_IOC_SUBMIT	_IOW(AIOFSYNC_IOC_MAGIC, 0x00, struct aiofsync_submit)
#define AIOFSYNC_IOC_REAP	_IOW(AIOFSYNC_IOC_MAGIC, 0x01, struct aiofsync_reap)
/*
 * AIOFSYNC_IOC_REAP that also writes @fg_takes back, on success (the
 * argument is then read and written); ENOTTY on a module without it.
 */
#define AIOFSYNC_IOC_REAP_TAKES	_IOWR(AIOFSYNC_IOC_MAGIC, 0x01, struct aiofsync_reap)
#define AIOFSYNC_IOC_CANCEL	_IOWR(AIOFSYNC_IOC_MAGIC, 0x02, struct aiofsync_cancel)
#define AIOFSYNC_IOC_GET_INFO	_IOWR(AIOFSYNC_IOC_MAGIC, 0x03, struct aiofsync_info)
/*
 * End the wait of every foreground reaper of the context now in
 * AIOFSYNC_IOC_REAP (each returns what it has, possibly 0), or, when none
 * is in it, of the next one that would wait. For a program whose own
 * bookkeeping tells a waiting thread that its request is done (another
 * thread reaped it): without it, that thread would sleep on in the kernel
 * until some other event. The argument (a value, not a pointer) is 0, or
 * AIOFSYNC_WAKE_BACKGROUND to do the same to the background reapers
 * instead, which a foreground reaper may have work to hand to.
 */
#define AIOFSYNC_IOC_WAKE	_IO(AIOFSYNC_IOC_MAGIC, 0x04)
#define AIOFSYNC_WAKE_BACKGROUND	0x1

#endif /* _UAPI_LINUX_AIOFSYNC_H */
