// SPDX-License-Identifier: GPL-2.0
/*
 * Peer "libaio": Linux AIO through libaio (io_submit, io_getevents).
 * IOCB_CMD_FSYNC/FDSYNC runs as soon as it is submitted, ordered behind
 * nothing, so the driver submits a commit's sync only after its writes
 * completed (needs_user_order): the round trip this peer costs.
 *
 * Peer "aiofsync-libaio": the same code built into aiofbench-lib, where
 * -laiofsync provides io_submit() and io_getevents() on /dev/aiofsync. The
 * device keeps a sync behind the writes to its file submitted before it, so
 * a commit's writes and its sync go in one io_submit() call, as a program
 * written for libaio would submit them once the library orders.
 */
#include <errno.h>
#include <stdlib.h>
#include <libaio.h>

#include "bench.h"

#ifdef AIOFBENCH_LIB
#define LIBAIO_PEER_NAME "aiofsync-libaio"
#define LIBAIO_ORDERS 1
#else
#define LIBAIO_PEER_NAME "libaio"
#define LIBAIO_ORDERS 0
#endif

struct peer {
	io_context_t ctx;
	int datasync;
	unsigned int cap, n;	/* iocbs queued, not yet submitted */
	struct iocb *cbs;
	struct iocb **ptrs;
	struct io_event *ev;
};

static struct peer *libaio_open(const struct peer_opts *o)
{
	struct peer *p = xcalloc(1, sizeof(*p));
	int r = io_setup(o->depth, &p->ctx);

	if (r < 0) {
		free(p);
		errno = -r;
		return NULL;
	}
	p->datasync = o->datasync;
	p->cap = o->depth;
	p->cbs = xcalloc(p->cap, sizeof(*p->cbs));
	p->ptrs = xcalloc(p->cap, sizeof(*p->ptrs));
	p->ev = xcalloc(p->cap, sizeof(*p->ev));
	return p;
}

/* The kernel copies an iocb at submission: the staging array is reused. */
static struct iocb *next_cb(struct peer *p)
{
	if (p->n == p->cap) {
		fail(LIBAIO_PEER_NAME ": more than %u requests queued", p->cap);
		return NULL;
	}
	p->ptrs[p->n] = &p->cbs[p->n];
	return &p->cbs[p->n++];
}

static int libaio_write(struct peer *p, int fd, const void *buf, size_t len,
			off_t off, uint64_t tag, int link)
{
	struct iocb *cb = next_cb(p);

	(void)link;
	if (!cb)
		return -1;
	io_prep_pwrite(cb, fd, (void *)buf, len, off);
	cb->data = (void *)(uintptr_t)tag;
	return 0;
}

static int libaio_sync(struct peer *p, int fd, uint64_t tag, int after)
{
	struct iocb *cb = next_cb(p);

	(void)after;
	if (!cb)
		return -1;
	if (p->datasync)
		io_prep_fdsync(cb, fd);
	else
		io_prep_fsync(cb, fd);
	cb->data = (void *)(uintptr_t)tag;
	return 0;
}

static int libaio_submit(struct peer *p)
{
	unsigned int done = 0;

	while (done < p->n) {
		int r = io_submit(p->ctx, p->n - done, p->ptrs + done);

		if (r == -EAGAIN || r == -EINTR)
			continue;
		if (r <= 0)
			return fail("io_submit: %d", r);
		done += r;
	}
	p->n = 0;
	return 0;
}

static int libaio_reap(struct peer *p, struct compl *c, int min, int max)
{
	int r;

	if (max > (int)p->cap)
		max = p->cap;
	do {
		r = io_getevents(p->ctx, min, max, p->ev, NULL);
	} while (r == -EINTR);
	if (r < 0)
		return fail("io_getevents: %d", r);
	for (int i = 0; i < r; i++) {
		c[i].tag = (uintptr_t)p->ev[i].data;
		c[i].res = (long)p->ev[i].res;
	}
	return r;
}

static void libaio_close(struct peer *p)
{
	io_destroy(p->ctx);
	free(p->cbs);
	free(p->ptrs);
	free(p->ev);
	free(p);
}

const struct peer_ops peer_libaio = {
	.name = LIBAIO_PEER_NAME,
	.needs_user_order = !LIBAIO_ORDERS,
	.open = libaio_open,
	.queue_write = libaio_write,
	.queue_sync = libaio_sync,
	.submit = libaio_submit,
	.reap = libaio_reap,
	.close = libaio_close,
};
