// SPDX-License-Identifier: GPL-2.0
/*
 * Peers "uring-link" and "uring-drain": io_uring through liburing, one ring
 * per context. A commit's writes are chained to its sync with IOSQE_IO_LINK,
 * or the sync carries IOSQE_IO_DRAIN (it then waits for every earlier
 * request of the ring, on any file, and holds back every later one).
 *
 * The ring is set up with the flags io_uring's authors recommend for one
 * submitting thread (SINGLE_ISSUER | DEFER_TASKRUN, 6.1+), else
 * COOP_TASKRUN, else none: the peer gets its best chance. For the same
 * reason its io-wq may run up to 64 bounded workers (fsync and buffered
 * writes that cannot complete inline are bounded work), as glibc's helper
 * threads may; io_uring's own default is min(SQ entries, 4 * CPUs), 8 here.
 * AIOFBENCH_URING_WORKERS=0 keeps the default.
 */
#include <errno.h>
#include <stdlib.h>
#include <liburing.h>

#include "bench.h"

struct peer {
	struct io_uring ring;
	int datasync;
	int drain;
	int in_chain;		/* the last entry queued links to the next */
	unsigned int flags;
};

static struct peer *uring_open_common(const struct peer_opts *o, int drain)
{
	static const unsigned int try_flags[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct peer *p = xcalloc(1, sizeof(*p));
	unsigned int entries = 8;
	int r = -EINVAL;

	const char *env = getenv("AIOFBENCH_URING_FLAGS");
	size_t first = 0, ntry = sizeof(try_flags) / sizeof(try_flags[0]);

	while (entries < o->depth && entries < 32768)
		entries *= 2;
	/* For experiments: only the setup flags given (a number). */
	if (env) {
		first = ntry;
		ntry++;
	}
	for (size_t i = first; i < ntry; i++) {
		unsigned int f = i < 3 ? try_flags[i] : (unsigned int)strtoul(env, NULL, 0);
		struct io_uring_params prm = { .flags = f };

		/* Room for every completion of a full ring of requests. */
		prm.flags |= IORING_SETUP_CQSIZE;
		prm.cq_entries = 2 * entries;
		r = io_uring_queue_init_params(entries, &p->ring, &prm);
		if (r == 0) {
			p->flags = f;
			break;
		}
		if (r != -EINVAL)
			break;
	}
	if (r) {
		free(p);
		errno = -r;
		return NULL;
	}
	p->datasync = o->datasync;
	p->drain = drain;
	{
		const char *w = getenv("AIOFBENCH_URING_WORKERS");
		unsigned int max[2] = { w ? (unsigned int)strtoul(w, NULL, 0) : 64, 0 };

		/* Best effort: older kernels lack it (5.15+). */
		if (max[0])
			io_uring_register_iowq_max_workers(&p->ring, max);
	}
	return p;
}

static struct peer *uring_open_link(const struct peer_opts *o)
{
	return uring_open_common(o, 0);
}

static struct peer *uring_open_drain(const struct peer_opts *o)
{
	return uring_open_common(o, 1);
}

static struct io_uring_sqe *get_sqe(struct peer *p)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
	int r;

	if (sqe)
		return sqe;
	/*
	 * The submission queue is full: push it, then there is room. Never in
	 * the middle of a chain: a chain ends with the submission it is in.
	 */
	if (p->in_chain) {
		fail("io_uring: submission queue full inside a link chain");
		return NULL;
	}
	r = io_uring_submit(&p->ring);
	if (r < 0) {
		fail("io_uring_submit: %d", r);
		return NULL;
	}
	sqe = io_uring_get_sqe(&p->ring);
	if (!sqe)
		fail("io_uring: no submission queue entry");
	return sqe;
}

static int uring_write(struct peer *p, int fd, const void *buf, size_t len,
		       off_t off, uint64_t tag, int link)
{
	struct io_uring_sqe *sqe = get_sqe(p);

	if (!sqe)
		return -1;
	io_uring_prep_write(sqe, fd, buf, len, off);
	io_uring_sqe_set_data64(sqe, tag);
	p->in_chain = link && !p->drain;
	if (p->in_chain)
		sqe->flags |= IOSQE_IO_LINK;
	return 0;
}

static int uring_sync(struct peer *p, int fd, uint64_t tag, int after)
{
	struct io_uring_sqe *sqe = get_sqe(p);

	if (!sqe)
		return -1;
	io_uring_prep_fsync(sqe, fd, p->datasync ? IORING_FSYNC_DATASYNC : 0);
	io_uring_sqe_set_data64(sqe, tag);
	if (after && p->drain)
		sqe->flags |= IOSQE_IO_DRAIN;
	p->in_chain = 0;
	return 0;
}

static int uring_submit(struct peer *p)
{
	int r = io_uring_submit(&p->ring);

	return r < 0 ? fail("io_uring_submit: %d", r) : 0;
}

static int uring_reap(struct peer *p, struct compl *c, int min, int max)
{
	struct io_uring_cqe *cqes[256];
	int n = 0;

	while (n < max) {
		unsigned int want = max - n < 256 ? max - n : 256;
		unsigned int got;

		if (n < min) {
			struct io_uring_cqe *cqe;
			int r;

			do {
				r = io_uring_wait_cqe_nr(&p->ring, &cqe, min - n);
			} while (r == -EINTR);
			if (r < 0)
				return fail("io_uring_wait_cqe_nr: %d", r);
		}
		got = io_uring_peek_batch_cqe(&p->ring, cqes, want);
		for (unsigned int i = 0; i < got; i++) {
			c[n].tag = io_uring_cqe_get_data64(cqes[i]);
			c[n].res = cqes[i]->res;
			n++;
		}
		io_uring_cq_advance(&p->ring, got);
		if (!got && n >= min)
			break;
	}
	return n;
}

static void uring_close(struct peer *p)
{
	io_uring_queue_exit(&p->ring);
	free(p);
}

const struct peer_ops peer_uring_link = {
	.name = "uring-link",
	.open = uring_open_link,
	.queue_write = uring_write,
	.queue_sync = uring_sync,
	.submit = uring_submit,
	.reap = uring_reap,
	.close = uring_close,
};

const struct peer_ops peer_uring_drain = {
	.name = "uring-drain",
	.open = uring_open_drain,
	.queue_write = uring_write,
	.queue_sync = uring_sync,
	.submit = uring_submit,
	.reap = uring_reap,
	.close = uring_close,
};
