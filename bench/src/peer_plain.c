// SPDX-License-Identifier: GPL-2.0
/*
 * Peer "plain": pwrite(2) and fsync(2)/fdatasync(2), synchronously, in the
 * calling thread. The driver gives it one thread per stream of commits.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

struct peer {
	int datasync;
	unsigned int cap, n;	/* completions waiting to be reaped */
	struct compl *done;
};

static struct peer *plain_open(const struct peer_opts *o)
{
	struct peer *p = xcalloc(1, sizeof(*p));

	p->datasync = o->datasync;
	p->cap = o->depth;
	p->done = xcalloc(p->cap, sizeof(*p->done));
	return p;
}

static int push(struct peer *p, uint64_t tag, long res)
{
	if (p->n == p->cap)
		return fail("plain: more than %u requests queued", p->cap);
	p->done[p->n].tag = tag;
	p->done[p->n].res = res;
	p->n++;
	return 0;
}

static int plain_write(struct peer *p, int fd, const void *buf, size_t len,
		       off_t off, uint64_t tag, int link)
{
	ssize_t r = pwrite(fd, buf, len, off);

	(void)link;
	return push(p, tag, r < 0 ? -errno : r);
}

static int plain_sync(struct peer *p, int fd, uint64_t tag, int after)
{
	int r = p->datasync ? fdatasync(fd) : fsync(fd);

	(void)after;
	return push(p, tag, r < 0 ? -errno : 0);
}

static int plain_submit(struct peer *p)
{
	(void)p;
	return 0;
}

static int plain_reap(struct peer *p, struct compl *c, int min, int max)
{
	int n = (int)p->n < max ? (int)p->n : max;

	if (n < min)
		return fail("plain: %d completions wanted, %u there", min, p->n);
	for (int i = 0; i < n; i++)
		c[i] = p->done[i];
	for (unsigned int i = n; i < p->n; i++)
		p->done[i - n] = p->done[i];
	p->n -= n;
	return n;
}

static void plain_close(struct peer *p)
{
	free(p->done);
	free(p);
}

const struct peer_ops peer_plain = {
	.name = "plain",
	.synchronous = 1,
	.open = plain_open,
	.queue_write = plain_write,
	.queue_sync = plain_sync,
	.submit = plain_submit,
	.reap = plain_reap,
	.close = plain_close,
};
