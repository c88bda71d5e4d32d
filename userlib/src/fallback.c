// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The fallback: helper threads for what the device does not serve.
 *
 * /dev/aiofsync refuses READ/WRITE on files without positioned I/O (pipes,
 * sockets, terminals: ESPIPE) and syncs of files that cannot be synced
 * (EINVAL). glibc serves those with a helper thread making the blocking
 * call, and programs count on it, so the library does too: a small pool
 * of threads per process (at most aio_threads of aio_init(), 16 by default;
 * an idle one exits after aio_idle_time seconds, 1 by default) runs each
 * request as the blocking system call glibc's helper would make, pread/
 * pwrite falling back to read/write where the file has no offset.
 *
 * Requests are queued per descriptor number, and one descriptor's requests
 * run one at a time, in submission order: that is the ordering glibc gives,
 * and an aio_fsync() queued here covers the writes queued here before it.
 * A request's completion is delivered before the next request of its
 * descriptor starts, so "the later one is done" implies "the earlier one is
 * done" for the program too.
 *
 * This is the slow path: one mutex guards the queues. The device path never
 * takes it.
 *
 * A request may hold descriptors (libaio's eventfd duplicate), which a
 * child after fork() inherits. So the pool knows every request from its
 * submission to its release(), which it calls under its lock, and the child
 * releases its copies of all of them: queued, running, or between done()
 * and release().
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define AFS_FB_BUCKETS	64

struct afs_fb_queue {
	struct afs_fb_queue *hnext;	/* hash chain */
	struct afs_fb_queue *rnext;	/* runnable list */
	int fd;
	bool runnable;			/* on the runnable list */
	bool busy;			/* a helper has it: one request at a time */
	struct afs_fb_req *running;	/* being executed, until its result */
	struct afs_fb_req *head, **tail;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct afs_fb_queue *hash[AFS_FB_BUCKETS];
	struct afs_fb_queue *run_head, **run_tail;
	struct afs_fb_req *completing;	/* between done() and release() */
	int threads, idle;
	int max_threads, idle_seconds;
} afs_fb = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.run_tail = &afs_fb.run_head,
	.max_threads = 16,
	.idle_seconds = 1,
};

static struct afs_fb_queue **afs_fb_slot(int fd)
{
	struct afs_fb_queue **pq = &afs_fb.hash[(unsigned int)fd % AFS_FB_BUCKETS];

	while (*pq && (*pq)->fd != fd)
		pq = &(*pq)->hnext;
	return pq;
}

static void afs_fb_make_runnable(struct afs_fb_queue *q)
{
	q->runnable = true;
	q->rnext = NULL;
	*afs_fb.run_tail = q;
	afs_fb.run_tail = &q->rnext;
}

static struct afs_fb_queue *afs_fb_take_runnable(void)
{
	struct afs_fb_queue *q = afs_fb.run_head;

	if (q) {
		afs_fb.run_head = q->rnext;
		if (!afs_fb.run_head)
			afs_fb.run_tail = &afs_fb.run_head;
		q->runnable = false;
	}
	return q;
}

/* A queue with nothing queued and nothing running goes away. */
static void afs_fb_put_queue(struct afs_fb_queue *q)
{
	struct afs_fb_queue **pq;

	if (q->head || q->busy || q->runnable)
		return;
	pq = afs_fb_slot(q->fd);
	*pq = q->hnext;
	free(q);
}

static void afs_fb_release(struct afs_fb_req *r)
{
	if (r->release)
		r->release(r);
	else
		free(r);
}

/* Off its queue, on to done(): still the pool's until released. */
static void afs_fb_completing(struct afs_fb_req *r)
{
	r->cnext = afs_fb.completing;
	if (r->cnext)
		r->cnext->cpprev = &r->cnext;
	r->cpprev = &afs_fb.completing;
	afs_fb.completing = r;
}

/* done() has returned. */
static void afs_fb_completed(struct afs_fb_req *r)
{
	*r->cpprev = r->cnext;
	if (r->cnext)
		r->cnext->cpprev = r->cpprev;
	afs_fb_release(r);
}

static ssize_t afs_fb_rw(const struct afs_fb_req *r, bool positioned)
{
	bool out = r->opcode == AIOFSYNC_OP_WRITE;

	if (positioned)
		return out ? pwrite(r->fd, r->buf, r->len, r->offset) :
			       pread(r->fd, r->buf, r->len, r->offset);
	return out ? write(r->fd, r->buf, r->len) :
		       read(r->fd, r->buf, r->len);
}

static long afs_fb_execute(const struct afs_fb_req *r)
{
	ssize_t n;

	switch (r->opcode) {
	case AIOFSYNC_OP_READ:
	case AIOFSYNC_OP_WRITE:
		do {
			n = afs_fb_rw(r, true);
			/* Linux: no pread on pipes and sockets; others ignore
			 * the offset there, and so does glibc's helper. */
			if (n < 0 && errno == ESPIPE)
				n = afs_fb_rw(r, false);
		} while (n < 0 && errno == EINTR);
		break;
	case AIOFSYNC_OP_FSYNC:
		n = fsync(r->fd);
		break;
	case AIOFSYNC_OP_FDATASYNC:
		n = fdatasync(r->fd);
		break;
	default:
		errno = EINVAL;
		n = -1;
	}
	return n < 0 ? -errno : (long)n;
}

static void *afs_fb_main(void *arg)
{
	struct afs_fb_queue *q;
	struct afs_fb_req *req;
	struct timespec until;

	(void)arg;
	pthread_mutex_lock(&afs_fb.lock);
	for (;;) {
		q = afs_fb_take_runnable();
		if (!q) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += afs_fb.idle_seconds;
			afs_fb.idle++;
			pthread_cond_timedwait(&afs_fb.work, &afs_fb.lock, &until);
			afs_fb.idle--;
			if (afs_fb.run_head)
				continue;
			break;
		}
		req = q->head;
		q->head = req->next;
		if (!q->head)
			q->tail = &q->head;
		q->busy = true;
		q->running = req;
		pthread_mutex_unlock(&afs_fb.lock);

		req->res = afs_fb_execute(req);
		/* Done: no longer "running" for a cancel. */
		pthread_mutex_lock(&afs_fb.lock);
		q->running = NULL;
		afs_fb_completing(req);
		pthread_mutex_unlock(&afs_fb.lock);
		/* Before the descriptor's next request may start: see above. */
		req->done(req);

		pthread_mutex_lock(&afs_fb.lock);
		afs_fb_completed(req);
		q->busy = false;
		if (q->head)
			afs_fb_make_runnable(q);
		else
			afs_fb_put_queue(q);
	}
	afs_fb.threads--;
	pthread_mutex_unlock(&afs_fb.lock);
	return NULL;
}

/*
 * The child has no helpers, and the requests are the parent's: they never
 * complete here. What the child has of them is copies - of their memory and
 * of the descriptors they hold -, which are released; the parent's helpers
 * release the parent's.
 */
static void afs_fb_child(void)
{
	struct afs_fb_queue *q, *qnext;
	struct afs_fb_req *r, *rnext;
	int i;

	for (i = 0; i < AFS_FB_BUCKETS; i++) {
		for (q = afs_fb.hash[i]; q; q = qnext) {
			qnext = q->hnext;
			for (r = q->head; r; r = rnext) {
				rnext = r->next;
				afs_fb_release(r);
			}
			if (q->running)
				afs_fb_release(q->running);
			free(q);
		}
		afs_fb.hash[i] = NULL;
	}
	for (r = afs_fb.completing; r; r = rnext) {
		rnext = r->cnext;
		afs_fb_release(r);
	}
	afs_fb.completing = NULL;
	afs_fb.run_head = NULL;
	afs_fb.run_tail = &afs_fb.run_head;
	afs_fb.threads = 0;
	afs_fb.idle = 0;
	pthread_cond_init(&afs_fb.work, NULL);
}

static struct afs_fork_hook afs_fb_fork = {
	.lock = &afs_fb.lock,
	.child = afs_fb_child,
};

int afs_fb_submit(struct afs_fb_req *req)
{
	struct afs_fb_queue **pq, *q;
	int ret = 0;

	afs_fork_hook_add(&afs_fb_fork);
	req->next = NULL;
	pthread_mutex_lock(&afs_fb.lock);
	pq = afs_fb_slot(req->fd);
	q = *pq;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q) {
			ret = -EAGAIN;
			goto out;
		}
		q->fd = req->fd;
		q->tail = &q->head;
		*pq = q;
	}
	*q->tail = req;
	q->tail = &req->next;
	if (!q->busy && !q->runnable)
		afs_fb_make_runnable(q);

	if (afs_fb.idle) {
		pthread_cond_signal(&afs_fb.work);
	} else if (afs_fb.threads < afs_fb.max_threads) {
		afs_fb.threads++;
		if (afs_thread_start(afs_fb_main, NULL)) {
			afs_fb.threads--;
			/* Nobody would ever run it: refuse it. */
			if (!afs_fb.threads) {
				q->head = NULL;
				q->tail = &q->head;
				afs_fb_put_queue(q);
				ret = -EAGAIN;
			}
		}
	}
out:
	pthread_mutex_unlock(&afs_fb.lock);
	return ret;
}

static bool afs_fb_match(const struct afs_fb_req *r, void *owner, uint64_t tag,
			 bool all)
{
	return r->owner == owner && (all || r->tag == tag);
}

/* Take the matching requests of @q onto @victims; count them. */
static void afs_fb_cancel_queue(struct afs_fb_queue *q, void *owner,
				uint64_t tag, bool all,
				struct afs_fb_req **victims,
				unsigned int *canceled, unsigned int *running)
{
	struct afs_fb_req **pr = &q->head, *r;

	if (q->running && afs_fb_match(q->running, owner, tag, all))
		(*running)++;
	while ((r = *pr)) {
		if (!afs_fb_match(r, owner, tag, all)) {
			pr = &r->next;
			continue;
		}
		*pr = r->next;
		r->next = *victims;
		*victims = r;
		afs_fb_completing(r);
		(*canceled)++;
	}
	q->tail = pr;
}

void afs_fb_cancel(void *owner, int fd, uint64_t tag, bool all,
		   unsigned int *canceled, unsigned int *running)
{
	struct afs_fb_req *victims = NULL, *r, *next;
	struct afs_fb_queue *q, *qnext;
	int i;

	*canceled = 0;
	*running = 0;
	pthread_mutex_lock(&afs_fb.lock);
	for (i = 0; i < AFS_FB_BUCKETS; i++) {
		for (q = afs_fb.hash[i]; q; q = qnext) {
			qnext = q->hnext;
			if (fd >= 0 && q->fd != fd)
				continue;
			afs_fb_cancel_queue(q, owner, tag, all, &victims,
					    canceled, running);
			if (!q->head && q->runnable) {
				/* Nothing left to run: off the runnable list. */
				struct afs_fb_queue **rq = &afs_fb.run_head;

				while (*rq != q)
					rq = &(*rq)->rnext;
				*rq = q->rnext;
				if (!*rq)
					afs_fb.run_tail = rq;
				q->runnable = false;
			}
			afs_fb_put_queue(q);
		}
	}
	pthread_mutex_unlock(&afs_fb.lock);

	/* Oldest first: the victims were stacked in reverse. */
	for (r = victims, victims = NULL; r; r = next) {
		next = r->next;
		r->next = victims;
		victims = r;
	}
	for (r = victims; r; r = r->next) {
		r->res = -ECANCELED;
		r->done(r);
	}
	if (!victims)
		return;
	pthread_mutex_lock(&afs_fb.lock);
	for (r = victims; r; r = next) {
		next = r->next;
		afs_fb_completed(r);
	}
	pthread_mutex_unlock(&afs_fb.lock);
}

void afs_fb_configure(int max_threads, int idle_seconds)
{
	pthread_mutex_lock(&afs_fb.lock);
	if (max_threads > 0)
		afs_fb.max_threads = max_threads;
	if (idle_seconds > 0)
		afs_fb.idle_seconds = idle_seconds;
	pthread_mutex_unlock(&afs_fb.lock);
}
