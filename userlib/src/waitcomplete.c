// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * aio_waitcomplete() (FreeBSD): the next completed request not yet claimed.
 *
 * Every completion is recorded in a node before its result is published;
 * aio_return() and aio_waitcomplete() claim a node, whoever comes first.
 * The difficulty is that a program may free its aiocb right after
 * aio_return() (or after aio_error() alone, never calling aio_return()), so
 * the record must never lead us back into the aiocb:
 *
 *  - nodes live in an array that is never freed, and hold the result
 *    themselves; a node is claimed by a compare-and-swap on its state
 *    (generation << 1 | live), so a stale reference cannot claim a node
 *    that has been reused since;
 *  - the aiocb remembers (index, generation) of its node in its private
 *    bytes; aio_return(), and submitting the aiocb again, kill that node.
 *
 * Recording is lock-free: a node comes off a lock-free free list and is
 * pushed on a lock-free stack. Only aio_waitcomplete() callers (and a
 * recorder short of nodes, with a trylock) take the lock that moves that
 * stack into the oldest-first list they pop from. No lock is on the reap
 * path.
 *
 * At most AFS_WC_MAX completions stay remembered: a program that never calls
 * aio_return() would otherwise grow the list forever. Beyond that the
 * oldest unclaimed one is forgotten.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"
#include "../aiofsync.h"

#define AFS_WC_MAX	16384
#define AFS_WC_LIVE	1U

struct afs_wc_node {
	_Atomic uint32_t state;		/* generation << 1 | AFS_WC_LIVE */
	int err;
	struct aiocb *cb;
	ssize_t ret;
};

struct afs_wc_arena {
	struct afs_wc_node node[AFS_WC_MAX + 1];	/* [0] unused */
	_Atomic uint32_t next[AFS_WC_MAX + 1];
};

static struct {
	_Atomic(struct afs_wc_arena *) arena;
	atomic_uint high;		/* nodes handed out so far */
	struct afs_idxstack free;
	_Atomic uint32_t recorded;	/* stack of new records, newest first */
	pthread_mutex_t lock;		/* the list below */
	uint32_t head, tail;		/* oldest first */
} afs_wc = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/* The parent's completions are not the child's to claim. */
static void afs_wc_child(void)
{
	free(atomic_exchange(&afs_wc.arena, NULL));
	atomic_store(&afs_wc.high, 0);
	atomic_store(&afs_wc.free.head, 0);
	atomic_store(&afs_wc.recorded, 0);
	afs_wc.head = afs_wc.tail = 0;
}

static struct afs_fork_hook afs_wc_fork = {
	.lock = &afs_wc.lock,
	.child = afs_wc_child,
};

bool afs_wc_ready(void)
{
	return atomic_load(&afs_wc.arena) != NULL;
}

static struct afs_wc_arena *afs_wc_arena(void)
{
	struct afs_wc_arena *a = atomic_load(&afs_wc.arena), *expected = NULL;

	if (a)
		return a;
	afs_fork_hook_add(&afs_wc_fork);
	/* calloc: the pages are only touched as nodes are handed out. */
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	if (atomic_compare_exchange_strong(&afs_wc.arena, &expected, a))
		return a;
	free(a);
	return expected;
}

/* Claim node @idx if it is still generation @gen and live. */
static bool afs_wc_kill(struct afs_wc_arena *a, uint32_t idx, uint32_t gen)
{
	uint32_t live = gen << 1 | AFS_WC_LIVE;

	return atomic_compare_exchange_strong(&a->node[idx].state, &live,
					      (gen + 1) << 1);
}

/* Move new records to the list, oldest first; afs_wc.lock held. */
static void afs_wc_drain(struct afs_wc_arena *a)
{
	uint32_t idx = atomic_exchange(&afs_wc.recorded, 0), rev = 0, next;

	while (idx) {
		next = atomic_load_explicit(&a->next[idx], memory_order_relaxed);
		atomic_store_explicit(&a->next[idx], rev, memory_order_relaxed);
		rev = idx;
		idx = next;
	}
	/* rev is now the oldest of the batch. */
	for (idx = rev; idx; idx = next) {
		next = atomic_load_explicit(&a->next[idx], memory_order_relaxed);
		atomic_store_explicit(&a->next[idx], 0, memory_order_relaxed);
		if (afs_wc.tail)
			atomic_store_explicit(&a->next[afs_wc.tail], idx,
					      memory_order_relaxed);
		else
			afs_wc.head = idx;
		afs_wc.tail = idx;
	}
}

/*
 * Pop the oldest node. @claim: claim it if live (aio_waitcomplete); else
 * kill it whatever it is (making room). Returns the index, or 0 if empty;
 * *claimed says whether the node was live and is now ours.
 */
static uint32_t afs_wc_pop(struct afs_wc_arena *a, bool *claimed)
{
	uint32_t idx = afs_wc.head, state;

	if (!idx)
		return 0;
	afs_wc.head = atomic_load_explicit(&a->next[idx], memory_order_relaxed);
	if (!afs_wc.head)
		afs_wc.tail = 0;
	state = atomic_load(&a->node[idx].state);
	*claimed = (state & AFS_WC_LIVE) && afs_wc_kill(a, idx, state >> 1);
	return idx;
}

/* Out of nodes: free dead ones, and if none, forget the oldest live one. */
static void afs_wc_make_room(struct afs_wc_arena *a)
{
	uint32_t idx, scanned = 0, prev = 0, next;
	bool claimed;

	if (pthread_mutex_trylock(&afs_wc.lock))
		return;
	afs_wc_drain(a);
	for (idx = afs_wc.head; idx; idx = next) {
		next = atomic_load_explicit(&a->next[idx], memory_order_relaxed);
		if (atomic_load(&a->node[idx].state) & AFS_WC_LIVE) {
			prev = idx;
			continue;
		}
		if (prev)
			atomic_store_explicit(&a->next[prev], next,
					      memory_order_relaxed);
		else
			afs_wc.head = next;
		if (afs_wc.tail == idx)
			afs_wc.tail = prev;
		afs_idxstack_push(&afs_wc.free, a->next, idx);
		scanned++;
	}
	if (!scanned && (idx = afs_wc_pop(a, &claimed)))
		afs_idxstack_push(&afs_wc.free, a->next, idx);
	pthread_mutex_unlock(&afs_wc.lock);
}

static uint32_t afs_wc_alloc(struct afs_wc_arena *a)
{
	uint32_t idx = afs_idxstack_pop(&afs_wc.free, a->next);

	if (idx)
		return idx;
	if (atomic_load(&afs_wc.high) < AFS_WC_MAX) {
		idx = atomic_fetch_add(&afs_wc.high, 1) + 1;
		if (idx <= AFS_WC_MAX)
			return idx;
	}
	afs_wc_make_room(a);
	return afs_idxstack_pop(&afs_wc.free, a->next);
}

void afs_wc_record(struct aiocb *cb, ssize_t ret, int err)
{
	struct afs_wc_arena *a = afs_wc_arena();
	struct afs_wc_node *n;
	uint32_t idx, gen, head;

	afs_priv(cb)->wc_ref = 0;
	if (!a || !(idx = afs_wc_alloc(a)))
		return;
	n = &a->node[idx];
	gen = atomic_load(&n->state) >> 1;
	n->cb = cb;
	n->ret = ret;
	n->err = err;
	atomic_store(&n->state, gen << 1 | AFS_WC_LIVE);
	afs_priv(cb)->wc_ref = (uint64_t)idx << 32 | gen;

	head = atomic_load(&afs_wc.recorded);
	do {
		atomic_store_explicit(&a->next[idx], head, memory_order_relaxed);
	} while (!atomic_compare_exchange_weak(&afs_wc.recorded, &head, idx));
}

void afs_wc_forget(struct aiocb *cb)
{
	struct afs_wc_arena *a = atomic_load(&afs_wc.arena);
	uint64_t ref = afs_priv(cb)->wc_ref;
	uint32_t idx = (uint32_t)(ref >> 32);

	/* The bytes may be anything in a fresh aiocb: check the index. */
	if (a && idx && idx <= AFS_WC_MAX && idx <= atomic_load(&afs_wc.high))
		afs_wc_kill(a, idx, (uint32_t)ref);
	afs_priv(cb)->wc_ref = 0;
}

/* Claim the oldest unclaimed completion; 0 when there is none. */
static uint32_t afs_wc_claim(struct afs_wc_arena *a)
{
	uint32_t idx;
	bool claimed = false;

	pthread_mutex_lock(&afs_wc.lock);
	afs_wc_drain(a);
	while ((idx = afs_wc_pop(a, &claimed)) && !claimed)
		afs_idxstack_push(&afs_wc.free, a->next, idx);
	pthread_mutex_unlock(&afs_wc.lock);
	return idx;
}

struct afs_wc_wait {
	struct afs_wc_arena *arena;
	uint32_t idx;
};

static bool afs_wc_try_claim(void *arg)
{
	struct afs_wc_wait *w = arg;

	w->idx = afs_wc_claim(w->arena);
	return w->idx;
}

static ssize_t afs_aio_waitcomplete(struct aiocb **iocbp, struct timespec *timeout)
{
	struct afs_deadline deadline;
	struct afs_wc_wait w = { NULL, 0 };
	struct afs_wc_node *n;
	ssize_t ret;
	int err;

	if (!iocbp) {
		errno = EINVAL;
		return -1;
	}
	*iocbp = NULL;
	if (afs_deadline_init(&deadline, timeout)) {
		errno = EINVAL;
		return -1;
	}
	/* FreeBSD: EAGAIN when the process never queued a request. */
	if (!afs_posix_started() || !(w.arena = afs_wc_arena())) {
		errno = EAGAIN;
		return -1;
	}
	/* FreeBSD's EWOULDBLOCK for a timeout is EAGAIN on Linux. */
	err = afs_completion_wait(afs_wc_try_claim, &w, &deadline, false);
	if (err) {
		errno = -err;
		return -1;
	}
	n = &w.arena->node[w.idx];
	*iocbp = n->cb;
	ret = n->ret;
	err = n->err;
	afs_idxstack_push(&afs_wc.free, w.arena->next, w.idx);
	if (err)
		errno = err;
	return ret;
}
AFS_EXPORT(afs_aio_waitcomplete, aio_waitcomplete, "AIOFSYNC_1.0");
