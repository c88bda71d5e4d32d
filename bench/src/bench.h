/* SPDX-License-Identifier: GPL-2.0 */
/*
 * aiofbench: the same logical work (writes, then a sync that must cover
 * them) done through each peer's own interface.
 *
 * A peer backend only moves requests: it queues WRITEs and SYNCs, submits
 * them in one go, and reports completions by tag. Everything else (the
 * commit state machine, the data check after each commit, timing, CPU and
 * flush accounting) is the driver's (main.c), identical for every peer.
 * How a peer keeps a sync behind the writes it must cover is the peer's own
 * way, which is the point of the comparison:
 *
 *   plain         runs each request synchronously in the calling thread
 *   glibc         orders per descriptor in its helper threads
 *   libaio        cannot: the driver submits the sync only once the writes
 *                 of its commit have completed (a round trip to userspace)
 *   uring-link    IOSQE_IO_LINK chains the writes and the sync
 *   uring-drain   IOSQE_IO_DRAIN on the sync: waits for every earlier
 *                 request of the ring, on any file
 *   aiofsync      the device orders per inode, in the kernel
 *   aiofsync-lib  POSIX aio_* from libaiofsync (the glibc backend's code,
 *                 linked against the library)
 */
#ifndef AIOFBENCH_H
#define AIOFBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum op_kind { OP_WRITE, OP_SYNC };

/* A completion: the tag given when queueing, and the result (bytes or -errno). */
struct compl {
	uint64_t tag;
	long res;
};

struct peer_opts {
	unsigned int depth;	/* most requests in flight on this context */
	int datasync;		/* fdatasync instead of fsync */
};

struct peer;

struct peer_ops {
	const char *name;
	/*
	 * Requests complete inside queue_*() (no in-flight concept): the
	 * driver gives such a peer one thread per stream of commits.
	 */
	int synchronous;
	/* The driver must hold a sync back until its writes have completed. */
	int needs_user_order;
	/* One context per thread; returns NULL with errno set on failure. */
	struct peer *(*open)(const struct peer_opts *o);
	/*
	 * Queue a write; @link: the next request queued on this context
	 * depends on this one (a commit's writes and its sync form a chain).
	 */
	int (*queue_write)(struct peer *p, int fd, const void *buf, size_t len,
			   off_t off, uint64_t tag, int link);
	/* Queue a sync of the whole file; @after: it follows writes queued
	 * just before it on this file (the peer must keep it behind them). */
	int (*queue_sync)(struct peer *p, int fd, uint64_t tag, int after);
	/* Push everything queued to the kernel / the helper threads. */
	int (*submit)(struct peer *p);
	/* Wait for at least @min completions, store at most @max. */
	int (*reap)(struct peer *p, struct compl *c, int min, int max);
	void (*close)(struct peer *p);
};

extern const struct peer_ops peer_plain;
extern const struct peer_ops peer_posix;	/* glibc or aiofsync-lib */
extern const struct peer_ops peer_libaio;	/* libaio or aiofsync-libaio */
extern const struct peer_ops peer_uring_link;
extern const struct peer_ops peer_uring_drain;
extern const struct peer_ops peer_aiofsync;

/* Every backend reports failures through this and returns -1. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xcalloc(size_t n, size_t size);

#endif /* AIOFBENCH_H */
