// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Watches: an aio_suspend() caller is woken when one of its own requests
 * completes, not at every completion of the process.
 *
 * The other waiters (afs_completion_wait()) sleep on one sequence number
 * that every completion bumps, and all of them wake each time. For
 * aio_suspend() that was a wake-up, a scan of its list and a sleep again for
 * each batch of completions of requests it does not watch: with many
 * requests in flight and a short list, nearly every wake-up was for
 * nothing, and with many threads each suspended on its own request, every
 * completion woke them all. glibc's aio_suspend() links a wait entry into
 * each request it watches for the same reason.
 *
 * A watch is a slot of a fixed table holding the addresses of the aiocbs
 * as integers (only compared, never followed: the program may free an
 * aiocb as soon as it completes) and a futex word. Whoever publishes
 * completions calls afs_watch_wake() with their aiocbs' addresses; it bumps
 * and wakes the word of every watch that holds one of them. Slots are taken
 * and given back without a lock.
 *
 * The lost wake-up is ruled out as for a futex: the watcher takes its slot
 * and writes its keys, then reads its word and looks at its requests; the
 * publisher stores the results, then reads the table and bumps the word.
 * A full fence on each side between the two steps means that either the
 * watcher sees the result, or the publisher sees the slot taken with all of
 * its keys, and then the watcher's futex_wait() finds its word moved. Keys
 * the publisher reads while a slot is given back and taken again can only
 * belong to a watcher that returned already, or to one that is bound to see
 * the result itself: at worst a wake-up too many, which costs the watcher
 * one more look at its list.
 *
 * A list longer than AFS_WATCH_KEYS, or a call when every slot is taken,
 * falls back to afs_completion_wait().
 */
#include <errno.h>

#include "internal.h"

#define AFS_WATCH_SLOTS		128
#define AFS_WATCH_WORDS		(AFS_WATCH_SLOTS / 64)

struct afs_watch {
	atomic_uint word;		/* futex: bumped to wake the watcher */
	atomic_int nkeys;
	_Atomic uintptr_t keys[AFS_WATCH_KEYS];
};

static struct {
	_Atomic uint64_t used[AFS_WATCH_WORDS];	/* slot taken, by bit */
	struct afs_watch slot[AFS_WATCH_SLOTS];
} afs_watches;

/* The child has only the thread that forked: no watch of the parent's. */
static void afs_watch_child(void)
{
	int i;

	for (i = 0; i < AFS_WATCH_WORDS; i++)
		atomic_store(&afs_watches.used[i], 0);
}

static struct afs_fork_hook afs_watch_fork = { .child = afs_watch_child };

/*
 * At load, not on first use: aio_suspend() is async-signal-safe, and a
 * handler calling it must not find the hook half added by the code it
 * interrupted.
 */
__attribute__((constructor)) static void afs_watch_init(void)
{
	afs_fork_hook_add(&afs_watch_fork);
}

static struct afs_watch *afs_watch_claim(void)
{
	uint64_t used;
	int i, bit;

	for (i = 0; i < AFS_WATCH_WORDS; i++) {
		used = atomic_load(&afs_watches.used[i]);
		while (~used) {
			bit = __builtin_ctzll(~used);
			if (atomic_compare_exchange_weak(&afs_watches.used[i], &used,
							 used | 1ULL << bit))
				return &afs_watches.slot[i * 64 + bit];
		}
	}
	return NULL;
}

struct afs_watch *afs_watch_start(const void *const *keys, int n)
{
	struct afs_watch *w;
	int i, counted = 0, nkeys = 0;

	for (i = 0; i < n; i++)
		counted += keys[i] != NULL;
	if (counted > AFS_WATCH_KEYS)
		return NULL;
	w = afs_watch_claim();
	if (!w)
		return NULL;
	/* Bounded by the first count: the list may change under us. */
	for (i = 0; i < n && nkeys < counted; i++)
		if (keys[i])
			atomic_store_explicit(&w->keys[nkeys++],
					      (uintptr_t)keys[i],
					      memory_order_relaxed);
	atomic_store_explicit(&w->nkeys, nkeys, memory_order_relaxed);
	/* Keys before the watcher's first look (see the top of the file). */
	atomic_thread_fence(memory_order_seq_cst);
	return w;
}

int afs_watch_wait(struct afs_watch *w, bool (*done)(void *arg), void *arg,
		   const struct afs_deadline *d)
{
	return afs_futex_wait_until(&w->word, done, arg, d, false);
}

void afs_watch_end(struct afs_watch *w)
{
	size_t idx = (size_t)(w - afs_watches.slot);

	atomic_fetch_and(&afs_watches.used[idx / 64], ~(1ULL << (idx % 64)));
}

/* Whether @w watches one of @keys. */
static bool afs_watch_hit(struct afs_watch *w, const uintptr_t *keys, int n)
{
	int nkeys = atomic_load_explicit(&w->nkeys, memory_order_relaxed);
	uintptr_t key;
	int i, k;

	if (nkeys > AFS_WATCH_KEYS)
		nkeys = AFS_WATCH_KEYS;
	for (k = 0; k < nkeys; k++) {
		key = atomic_load_explicit(&w->keys[k], memory_order_relaxed);
		for (i = 0; i < n; i++)
			if (keys[i] == key)
				return true;
	}
	return false;
}

void afs_watch_wake(const uintptr_t *keys, int n)
{
	struct afs_watch *w;
	uint64_t used;
	int i, bit;

	/* Results before keys (see the top of the file). */
	atomic_thread_fence(memory_order_seq_cst);
	for (i = 0; i < AFS_WATCH_WORDS; i++) {
		used = atomic_load(&afs_watches.used[i]);
		while (used) {
			bit = __builtin_ctzll(used);
			used &= used - 1;
			w = &afs_watches.slot[i * 64 + bit];
			if (!afs_watch_hit(w, keys, n))
				continue;
			atomic_fetch_add(&w->word, 1);
			afs_futex_wake(&w->word, 1);
		}
	}
}
