// SPDX-License-Identifier: GPL-2.0
/*
 * Peer "aiofsync": /dev/aiofsync through its ioctls. A commit's writes and
 * its sync go to the device in one AIOFSYNC_IOC_SUBMIT; the device keeps the
 * sync behind the writes to the same inode, and lets syncs of one file that
 * are ready together share one flush.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/aiofsync.h>

#include "bench.h"

struct peer {
	int dev;
	int datasync;
	unsigned int cap, n;	/* requests queued, not yet submitted */
	struct aiofsync_req *reqs;
	struct aiofsync_event *ev;
};

static struct peer *aiofsync_open(const struct peer_opts *o)
{
	struct peer *p;
	int dev = open(AIOFSYNC_DEVICE, O_RDWR | O_CLOEXEC);

	if (dev < 0)
		return NULL;
	p = xcalloc(1, sizeof(*p));
	p->dev = dev;
	p->datasync = o->datasync;
	p->cap = o->depth;
	p->reqs = xcalloc(p->cap, sizeof(*p->reqs));
	p->ev = xcalloc(p->cap, sizeof(*p->ev));
	return p;
}

static struct aiofsync_req *next_req(struct peer *p)
{
	struct aiofsync_req *r;

	if (p->n == p->cap) {
		fail("aiofsync: more than %u requests queued", p->cap);
		return NULL;
	}
	r = &p->reqs[p->n++];
	memset(r, 0, sizeof(*r));
	return r;
}

static int aiofsync_write(struct peer *p, int fd, const void *buf, size_t len,
			  off_t off, uint64_t tag, int link)
{
	struct aiofsync_req *r = next_req(p);

	(void)link;
	if (!r)
		return -1;
	r->opcode = AIOFSYNC_OP_WRITE;
	r->fd = fd;
	r->offset = off;
	r->len = len;
	r->addr = (uintptr_t)buf;
	r->user_tag = tag;
	return 0;
}

static int aiofsync_sync(struct peer *p, int fd, uint64_t tag, int after)
{
	struct aiofsync_req *r = next_req(p);

	(void)after;
	if (!r)
		return -1;
	r->opcode = p->datasync ? AIOFSYNC_OP_FDATASYNC : AIOFSYNC_OP_FSYNC;
	r->fd = fd;
	r->user_tag = tag;
	return 0;
}

static int aiofsync_submit(struct peer *p)
{
	unsigned int done = 0;

	while (done < p->n) {
		struct aiofsync_submit s = {
			.nr = p->n - done,
			.req_size = sizeof(struct aiofsync_req),
			.reqs = (uintptr_t)(p->reqs + done),
		};
		int r = ioctl(p->dev, AIOFSYNC_IOC_SUBMIT, &s);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fail("AIOFSYNC_IOC_SUBMIT: %s", r ? strerror(errno) : "0 accepted");
		done += r;
	}
	p->n = 0;
	return 0;
}

static int aiofsync_reap(struct peer *p, struct compl *c, int min, int max)
{
	struct aiofsync_reap a = {
		.min_nr = min,
		.max_nr = max < (int)p->cap ? max : (int)p->cap,
		.events = (uintptr_t)p->ev,
		.timeout_ns = AIOFSYNC_TIMEOUT_INFINITE,
	};
	int r;

	do {
		r = ioctl(p->dev, AIOFSYNC_IOC_REAP, &a);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return fail("AIOFSYNC_IOC_REAP: %s", strerror(errno));
	for (int i = 0; i < r; i++) {
		c[i].tag = p->ev[i].user_tag;
		c[i].res = p->ev[i].res;
	}
	return r;
}

static void aiofsync_close(struct peer *p)
{
	close(p->dev);
	free(p->reqs);
	free(p->ev);
	free(p);
}

const struct peer_ops peer_aiofsync = {
	.name = "aiofsync",
	.open = aiofsync_open,
	.queue_write = aiofsync_write,
	.queue_sync = aiofsync_sync,
	.submit = aiofsync_submit,
	.reap = aiofsync_reap,
	.close = aiofsync_close,
};
