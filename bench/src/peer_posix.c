// SPDX-License-Identifier: GPL-2.0
/*
 * Peer "glibc" (built into aiofbench, linked with plain libc) and peer
 * "aiofsync-lib" (the same code built into aiofbench-lib, linked with
 * -laiofsync before libc): POSIX aio_write, aio_fsync, aio_error,
 * aio_return, aio_suspend.
 *
 * glibc keeps an aio_fsync behind the earlier writes on the same descriptor
 * number, in its helper threads; aio_init() raises the helper thread limit
 * from glibc's default 20 to 64 so that up to 64 files are served at once.
 *
 * Completions are found by waiting (aio_suspend) on the oldest requests in
 * flight, at most AIO_WINDOW of them, then looking at those: POSIX offers no
 * completion queue, and a window keeps the cost of looking independent of
 * the number in flight.
 */
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#ifndef POSIX_PEER_NAME
#define POSIX_PEER_NAME "glibc"
#endif

#define AIO_WINDOW 64

struct slot {
	struct aiocb cb;
	uint64_t tag;
};

struct peer {
	int datasync;
	unsigned int cap;
	struct slot *slots;
	unsigned int *free;	/* stack of free slot numbers */
	unsigned int nfree;
	/*
	 * Slots in flight, oldest first; UINT_MAX marks a reaped one. Entries
	 * are reaped out of order, so the span from head to tail may exceed
	 * the number in flight: compact() squeezes out the holes.
	 */
	unsigned int *fifo, fifo_cap;
	unsigned int head, tail;	/* free-running, modulo fifo_cap */
};

static struct peer *posix_open(const struct peer_opts *o)
{
	struct peer *p = xcalloc(1, sizeof(*p));
	struct aioinit init = {
		.aio_threads = 64,
		.aio_num = o->depth,
		.aio_idle_time = 1,
	};

	aio_init(&init);
	p->datasync = o->datasync;
	p->cap = o->depth;
	p->slots = xcalloc(p->cap, sizeof(*p->slots));
	p->free = xcalloc(p->cap, sizeof(*p->free));
	p->fifo_cap = 2 * p->cap;
	p->fifo = xcalloc(p->fifo_cap, sizeof(*p->fifo));
	for (unsigned int i = 0; i < p->cap; i++)
		p->free[i] = p->cap - 1 - i;
	p->nfree = p->cap;
	return p;
}

static void compact(struct peer *p)
{
	unsigned int n = 0;

	for (unsigned int pos = p->head; pos != p->tail; pos++) {
		unsigned int e = p->fifo[pos % p->fifo_cap];

		if (e != UINT_MAX)
			p->fifo[(p->head + n++) % p->fifo_cap] = e;
	}
	p->tail = p->head + n;
}

static struct slot *get_slot(struct peer *p, uint64_t tag)
{
	struct slot *s;
	unsigned int i;

	if (!p->nfree) {
		fail("%s: more than %u requests in flight", POSIX_PEER_NAME, p->cap);
		return NULL;
	}
	i = p->free[--p->nfree];
	s = &p->slots[i];
	memset(&s->cb, 0, sizeof(s->cb));
	s->cb.aio_sigevent.sigev_notify = SIGEV_NONE;
	s->tag = tag;
	if (p->tail - p->head == p->fifo_cap)
		compact(p);
	p->fifo[p->tail++ % p->fifo_cap] = i;
	return s;
}

static void put_back(struct peer *p)
{
	/* The request was refused: forget the slot just taken. */
	p->tail--;
	p->free[p->nfree++] = p->fifo[p->tail % p->fifo_cap];
}

static int posix_write(struct peer *p, int fd, const void *buf, size_t len,
		       off_t off, uint64_t tag, int link)
{
	struct slot *s = get_slot(p, tag);

	(void)link;
	if (!s)
		return -1;
	s->cb.aio_fildes = fd;
	s->cb.aio_buf = (void *)buf;
	s->cb.aio_nbytes = len;
	s->cb.aio_offset = off;
	if (aio_write(&s->cb) < 0) {
		put_back(p);
		return fail("aio_write: %s", strerror(errno));
	}
	return 0;
}

static int posix_sync(struct peer *p, int fd, uint64_t tag, int after)
{
	struct slot *s = get_slot(p, tag);

	(void)after;
	if (!s)
		return -1;
	s->cb.aio_fildes = fd;
	if (aio_fsync(p->datasync ? O_DSYNC : O_SYNC, &s->cb) < 0) {
		put_back(p);
		return fail("aio_fsync: %s", strerror(errno));
	}
	return 0;
}

static int posix_submit(struct peer *p)
{
	(void)p;
	return 0;
}

/* Look at the oldest requests in flight; collect the finished ones. */
static int collect(struct peer *p, struct compl *c, int n, int max,
		   const struct aiocb **list, int *nlist)
{
	*nlist = 0;
	for (unsigned int pos = p->head; pos != p->tail && *nlist < AIO_WINDOW; pos++) {
		unsigned int *e = &p->fifo[pos % p->fifo_cap];
		struct slot *s;
		int err;

		if (*e == UINT_MAX)
			continue;
		s = &p->slots[*e];
		err = aio_error(&s->cb);
		if (err == EINPROGRESS) {
			list[(*nlist)++] = &s->cb;
			continue;
		}
		if (n == max)
			break;
		c[n].tag = s->tag;
		c[n].res = err ? -err : (long)aio_return(&s->cb);
		n++;
		p->free[p->nfree++] = *e;
		*e = UINT_MAX;
	}
	while (p->head != p->tail && p->fifo[p->head % p->fifo_cap] == UINT_MAX)
		p->head++;
	return n;
}

static int posix_reap(struct peer *p, struct compl *c, int min, int max)
{
	const struct aiocb *list[AIO_WINDOW];
	int n = 0, nlist;

	for (;;) {
		n = collect(p, c, n, max, list, &nlist);
		if (n >= min || n == max)
			return n;
		if (!nlist)
			return fail("%s: %d completions wanted, none in flight",
				    POSIX_PEER_NAME, min - n);
		if (aio_suspend(list, nlist, NULL) < 0 && errno != EINTR)
			return fail("aio_suspend: %s", strerror(errno));
	}
}

static void posix_close(struct peer *p)
{
	free(p->slots);
	free(p->free);
	free(p->fifo);
	free(p);
}

const struct peer_ops peer_posix = {
	.name = POSIX_PEER_NAME,
	.open = posix_open,
	.queue_write = posix_write,
	.queue_sync = posix_sync,
	.submit = posix_submit,
	.reap = posix_reap,
	.close = posix_close,
};
