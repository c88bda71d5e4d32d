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
 * A sync covers more than its descriptor's queue, though: every write to
 * the file queued before it, whatever the descriptor and whoever runs it.
 * Helper WRITEs on a regular file are therefore listed per file (device and
 * inode number), in submission order, until they have run. A helper sync
 * waits until those submitted before it have run - its queue is parked
 * meanwhile, not a thread - and is then made through the device, which
 * orders it behind the device's own writes to the file queued before it
 * (the system call if the device refuses it). And a sync that would go to
 * the device while helper writes to its file are unfinished comes here
 * instead (afs_fb_file_busy()).
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
#include <sys/stat.h>

#include "internal.h"

#define AFS_FB_BUCKETS	64

struct afs_fb_queue {
	struct afs_fb_queue *hnext;	/* hash chain */
	struct afs_fb_queue *rnext;	/* runnable list */
	int fd;
	bool runnable;			/* on the runnable list */
	bool busy;			/* a helper has it: one request at a time */
	bool parked;			/* its head, a sync, waits for writes */
	struct afs_fb_req *running;	/* being executed, until its result */
	struct afs_fb_req *head, **tail;
};

/* A helper's private device context, while it syncs through it. */
struct afs_fb_syncdev {
	int fd;
	struct afs_fb_syncdev *next;
};

/* A regular file with unfinished helper WRITEs, or syncs waiting for them. */
struct afs_fb_inode {
	struct afs_fb_inode *next;
	dev_t dev;
	ino_t ino;
	unsigned int refs;		/* its listed writes and its syncs */
	uint64_t seq;			/* of the last WRITE listed */
	struct afs_fb_req *writes;	/* unfinished, oldest first */
	struct afs_fb_req **wtail;
};

/* Unfinished helper WRITEs listed, in all: 0 makes afs_fb_file_busy() free. */
static atomic_uint afs_fb_nwrites;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct afs_fb_queue *hash[AFS_FB_BUCKETS];
	struct afs_fb_queue *run_head, **run_tail;
	struct afs_fb_req *completing;	/* between done() and release() */
	struct afs_fb_inode *inodes;
	struct afs_fb_syncdev *syncdevs;	/* a child closes its copies */
	int threads, idle;
	int max_threads, idle_seconds;
	/* afs_fb_wait_settled() callers, woken as requests leave completing. */
	pthread_cond_t settled;
	int settle_waiters;
} afs_fb = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.settled = PTHREAD_COND_INITIALIZER,
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

/* A queue left with nothing to run comes off the runnable list. */
static void afs_fb_unrun_empty(struct afs_fb_queue *q)
{
	struct afs_fb_queue **rq = &afs_fb.run_head;

	if (q->head || !q->runnable)
		return;
	while (*rq != q)
		rq = &(*rq)->rnext;
	*rq = q->rnext;
	if (!*rq)
		afs_fb.run_tail = rq;
	q->runnable = false;
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

static void *afs_fb_main(void *arg);

/*
 * Something was made runnable: wake an idle helper, or start one. false
 * when none runs and none could be started. The wake-up may reach a helper
 * already woken: the helper that takes a queue kicks again while others
 * are runnable (afs_fb_main()).
 */
static bool afs_fb_kick(void)
{
	if (afs_fb.idle) {
		pthread_cond_signal(&afs_fb.work);
	} else if (afs_fb.threads < afs_fb.max_threads) {
		afs_fb.threads++;
		if (afs_thread_start(afs_fb_main, NULL))
			afs_fb.threads--;
	}
	return afs_fb.threads > 0;
}

/* ---- per-file order of helper writes and syncs ---- */

static struct afs_fb_inode *afs_fb_inode_find(dev_t dev, ino_t ino)
{
	struct afs_fb_inode *i;

	for (i = afs_fb.inodes; i; i = i->next)
		if (i->dev == dev && i->ino == ino)
			return i;
	return NULL;
}

static void afs_fb_inode_put(struct afs_fb_inode *i)
{
	struct afs_fb_inode **pi;

	if (--i->refs)
		return;
	for (pi = &afs_fb.inodes; *pi != i; pi = &(*pi)->next)
		;
	*pi = i->next;
	free(i);
}

/*
 * Attach @r (a WRITE or a sync on the regular file @st, not yet queued) to
 * its file: a WRITE is listed, a sync notes the last WRITE listed. 0, or
 * -EAGAIN without memory.
 */
static int afs_fb_inode_attach(struct afs_fb_req *r, const struct stat *st)
{
	struct afs_fb_inode *i = afs_fb_inode_find(st->st_dev, st->st_ino);

	if (!i) {
		if (r->opcode != AIOFSYNC_OP_WRITE)
			return 0;	/* nothing to wait for */
		i = calloc(1, sizeof(*i));
		if (!i)
			return -EAGAIN;
		i->dev = st->st_dev;
		i->ino = st->st_ino;
		i->wtail = &i->writes;
		i->next = afs_fb.inodes;
		afs_fb.inodes = i;
	}
	i->refs++;
	r->inode = i;
	if (r->opcode == AIOFSYNC_OP_WRITE) {
		r->seq = ++i->seq;
		r->inext = NULL;
		*i->wtail = r;
		i->wtail = &r->inext;
		atomic_fetch_add(&afs_fb_nwrites, 1);
	} else {
		r->seq = i->seq;
	}
	return 0;
}

/* May sync @r run: have the writes listed before it run? */
static bool afs_fb_sync_ready(const struct afs_fb_req *r)
{
	return !r->inode || r->opcode == AIOFSYNC_OP_WRITE ||
	       !r->inode->writes || r->inode->writes->seq > r->seq;
}

/* A listed WRITE has run, or is cancelled: syncs behind it may go. */
static void afs_fb_write_finished(struct afs_fb_req *r)
{
	struct afs_fb_inode *i = r->inode;
	struct afs_fb_req **pw;
	struct afs_fb_queue *q;
	int b;

	if (!i || r->opcode != AIOFSYNC_OP_WRITE)
		return;
	for (pw = &i->writes; *pw != r; pw = &(*pw)->inext)
		;
	*pw = r->inext;
	if (i->wtail == &r->inext)
		i->wtail = pw;
	atomic_fetch_sub(&afs_fb_nwrites, 1);
	for (b = 0; b < AFS_FB_BUCKETS; b++)
		for (q = afs_fb.hash[b]; q; q = q->hnext)
			if (q->parked && !q->runnable && q->head &&
			    afs_fb_sync_ready(q->head)) {
				q->parked = false;
				afs_fb_make_runnable(q);
				afs_fb_kick();
			}
}

/* done() has returned. */
static void afs_fb_completed(struct afs_fb_req *r)
{
	*r->cpprev = r->cnext;
	if (r->cnext)
		r->cnext->cpprev = r->cpprev;
	if (afs_fb.settle_waiters)
		pthread_cond_broadcast(&afs_fb.settled);
	if (r->inode)
		afs_fb_inode_put(r->inode);
	afs_fb_release(r);
}

bool afs_fb_file_busy(int fd)
{
	struct afs_fb_inode *i;
	struct stat st;
	bool busy;

	if (!atomic_load(&afs_fb_nwrites) || fstat(fd, &st) || !S_ISREG(st.st_mode))
		return false;
	pthread_mutex_lock(&afs_fb.lock);
	i = afs_fb_inode_find(st.st_dev, st.st_ino);
	busy = i && i->writes;
	pthread_mutex_unlock(&afs_fb.lock);
	return busy;
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

/*
 * A sync through a context of its own: the device orders it behind its
 * writes to the file queued before it, which fsync(2) would not wait for.
 * false when the device does not take it (then the system call decides).
 */
static bool afs_fb_device_sync(const struct afs_fb_req *r, long *res)
{
	struct afs_fb_syncdev me, **p;
	struct aiofsync_info info;
	struct aiofsync_event ev;
	struct aiofsync_req d;
	int n;

	/*
	 * Opened and closed under the pool's lock, which fork() holds: a child
	 * never inherits the descriptor without afs_fb_child() knowing it.
	 */
	pthread_mutex_lock(&afs_fb.lock);
	me.fd = afs_dev_open(&info);
	if (me.fd >= 0) {
		me.next = afs_fb.syncdevs;
		afs_fb.syncdevs = &me;
	}
	pthread_mutex_unlock(&afs_fb.lock);
	if (me.fd < 0)
		return false;
	afs_dev_req_init(&d, r->opcode, r->fd, 1);
	d.offset = (uint64_t)r->offset;
	d.len = r->len;
	n = afs_dev_submit(me.fd, &d, 1);
	if (n == 1) {
		do
			n = afs_dev_reap(me.fd, &ev, 1, 1, AIOFSYNC_TIMEOUT_INFINITE);
		while (n == -EINTR);
	}
	pthread_mutex_lock(&afs_fb.lock);
	for (p = &afs_fb.syncdevs; *p != &me; p = &(*p)->next)
		;
	*p = me.next;
	close(me.fd);
	pthread_mutex_unlock(&afs_fb.lock);
	if (n != 1)
		return false;
	*res = ev.res;
	return true;
}

static long afs_fb_execute(const struct afs_fb_req *r)
{
	ssize_t n;
	long res;

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
		if (r->regular && afs_fb_device_sync(r, &res))
			return res;
		n = fsync(r->fd);
		break;
	case AIOFSYNC_OP_FDATASYNC:
		if (r->regular && afs_fb_device_sync(r, &res))
			return res;
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
		if (!afs_fb_sync_ready(req)) {
			/* The last write it waits for will make q runnable. */
			q->parked = true;
			continue;
		}
		q->head = req->next;
		if (!q->head)
			q->tail = &q->head;
		q->busy = true;
		q->running = req;
		/*
		 * Another queue is runnable too: pass it on, as glibc's helper
		 * does. Its wake-up may have come here: a woken helper counts
		 * as idle until it has the lock again, so two requests queued
		 * close together with one helper idle wake that one only. And
		 * this request may block until the other has run (a read of a
		 * pipe, the write that feeds it).
		 */
		if (afs_fb.run_head)
			afs_fb_kick();
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
		/*
		 * Only now may the syncs that waited for this write run: one
		 * on another descriptor must not be published before it.
		 */
		afs_fb_write_finished(req);
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
	while (afs_fb.inodes) {
		struct afs_fb_inode *i = afs_fb.inodes;

		afs_fb.inodes = i->next;
		free(i);
	}
	atomic_store(&afs_fb_nwrites, 0);
	for (struct afs_fb_syncdev *sd = afs_fb.syncdevs; sd; sd = sd->next)
		close(sd->fd);
	afs_fb.syncdevs = NULL;
	afs_fb.run_head = NULL;
	afs_fb.run_tail = &afs_fb.run_head;
	afs_fb.threads = 0;
	afs_fb.idle = 0;
	pthread_cond_init(&afs_fb.work, NULL);
	afs_fb.settle_waiters = 0;
	pthread_cond_init(&afs_fb.settled, NULL);
}

static struct afs_fork_hook afs_fb_fork = {
	.lock = &afs_fb.lock,
	.child = afs_fb_child,
};

int afs_fb_submit(struct afs_fb_req *req)
{
	struct afs_fb_queue **pq, *q;
	struct stat st;
	bool regular;
	int ret = 0;

	afs_fork_hook_add(&afs_fb_fork);
	req->next = NULL;
	req->inode = NULL;
	regular = req->opcode != AIOFSYNC_OP_READ && !fstat(req->fd, &st) &&
		  S_ISREG(st.st_mode);
	req->regular = regular;
	pthread_mutex_lock(&afs_fb.lock);
	if (regular) {
		ret = afs_fb_inode_attach(req, &st);
		if (ret)
			goto out;
	}
	pq = afs_fb_slot(req->fd);
	q = *pq;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q) {
			ret = -EAGAIN;
			goto detach;
		}
		q->fd = req->fd;
		q->tail = &q->head;
		*pq = q;
	}
	*q->tail = req;
	q->tail = &req->next;
	if (!q->busy && !q->runnable && !q->parked)
		afs_fb_make_runnable(q);

	if (!afs_fb_kick()) {
		/* Nobody would ever run it: refuse it (it is the last). */
		struct afs_fb_req **pr = &q->head;

		while (*pr != req)
			pr = &(*pr)->next;
		*pr = NULL;
		q->tail = pr;
		if (!q->head)
			q->parked = false;
		afs_fb_unrun_empty(q);
		afs_fb_put_queue(q);
		ret = -EAGAIN;
		goto detach;
	}
	goto out;
detach:
	if (req->inode) {
		afs_fb_write_finished(req);
		afs_fb_inode_put(req->inode);
		req->inode = NULL;
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
			/* Its parked head may be gone, or another may lead. */
			if (q->parked && (!q->head || afs_fb_sync_ready(q->head))) {
				q->parked = false;
				if (q->head && !q->runnable) {
					afs_fb_make_runnable(q);
					afs_fb_kick();
				}
			}
			afs_fb_unrun_empty(q);
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
		/* As for a write that ran: published first (afs_fb_main()). */
		afs_fb_write_finished(r);
		afs_fb_completed(r);
	}
	pthread_mutex_unlock(&afs_fb.lock);
}

/* Whether a matching request is between its run and the end of its done(). */
static bool afs_fb_any_completing(void *owner, int fd, uint64_t tag, bool all)
{
	struct afs_fb_req *r;

	for (r = afs_fb.completing; r; r = r->cnext)
		if ((fd < 0 || r->fd == fd) && afs_fb_match(r, owner, tag, all))
			return true;
	return false;
}

void afs_fb_wait_settled(void *owner, int fd, uint64_t tag, bool all)
{
	pthread_mutex_lock(&afs_fb.lock);
	while (afs_fb_any_completing(owner, fd, tag, all)) {
		afs_fb.settle_waiters++;
		pthread_cond_wait(&afs_fb.settled, &afs_fb.lock);
		afs_fb.settle_waiters--;
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
