// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Small pieces every part of the library uses: futexes, deadlines, threads
 * with signals blocked, the completion wait queue, an index stack, and what
 * a fork() changes.
 */
#include <errno.h>
#include <sched.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

atomic_uint afs_fork_generation;
static atomic_int afs_pid;

pid_t afs_getpid(void)
{
	pid_t pid = atomic_load_explicit(&afs_pid, memory_order_relaxed);

	if (!pid) {
		pid = getpid();
		atomic_store_explicit(&afs_pid, pid, memory_order_relaxed);
	}
	return pid;
}

/*
 * One byte per thread, whose address names the thread: no system call, and
 * async-signal-safe, since an initial-exec variable is found at a fixed
 * offset from the thread pointer (a global-dynamic one may be allocated on
 * first use). A thread that exits may leave its address to a new one.
 */
static _Thread_local char afs_thread_mark __attribute__((tls_model("initial-exec")));

uintptr_t afs_thread_self(void)
{
	return (uintptr_t)&afs_thread_mark;
}

/* Hooks, newest first; only ever added to (a lock-free push). */
static _Atomic(struct afs_fork_hook *) afs_fork_hooks;

void afs_fork_hook_add(struct afs_fork_hook *hook)
{
	unsigned int state = 0;

	/* Callers call this on every use: a load is all it costs then. */
	if (atomic_load(&hook->state) == AFS_HOOK_ADDED)
		return;
	if (atomic_compare_exchange_strong(&hook->state, &state,
					   AFS_HOOK_ADDING)) {
		hook->next = atomic_load(&afs_fork_hooks);
		while (!atomic_compare_exchange_weak(&afs_fork_hooks,
						     &hook->next, hook))
			;
		atomic_store(&hook->state, AFS_HOOK_ADDED);
		return;
	}
	/* Another thread is adding it: its lock must be known before use. */
	while (atomic_load(&hook->state) != AFS_HOOK_ADDED)
		sched_yield();
}

static void afs_fork_prepare(void)
{
	struct afs_fork_hook *h;

	for (h = atomic_load(&afs_fork_hooks); h; h = h->next)
		if (h->lock)
			pthread_mutex_lock(h->lock);
}

static void afs_fork_parent(void)
{
	struct afs_fork_hook *h;

	for (h = atomic_load(&afs_fork_hooks); h; h = h->next)
		if (h->lock)
			pthread_mutex_unlock(h->lock);
}

/*
 * In the child only the forking thread exists, and the parent's requests
 * are not ours: each concern drops its state; the generation makes the
 * change visible to libaio contexts created before the fork.
 */
static void afs_fork_child(void)
{
	struct afs_fork_hook *h;

	atomic_store(&afs_pid, 0);
	atomic_fetch_add(&afs_fork_generation, 1);
	for (h = atomic_load(&afs_fork_hooks); h; h = h->next) {
		if (h->lock)
			pthread_mutex_init(h->lock, NULL);
		if (h->child)
			h->child();
	}
}

__attribute__((constructor)) static void afs_util_init(void)
{
	pthread_atfork(afs_fork_prepare, afs_fork_parent, afs_fork_child);
}

int afs_futex_wait(atomic_uint *addr, unsigned int val,
		   const struct timespec *rel)
{
	if (syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, rel, NULL, 0))
		return -errno;
	return 0;
}

void afs_futex_wake(atomic_uint *addr, int nr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, nr, NULL, NULL, 0);
}

bool afs_timespec_valid(const struct timespec *ts)
{
	return ts->tv_sec >= 0 && ts->tv_nsec >= 0 &&
	       ts->tv_nsec < AFS_NS_PER_SEC;
}

int afs_deadline_init(struct afs_deadline *d, const struct timespec *rel)
{
	d->forever = !rel;
	if (!rel)
		return 0;
	if (!afs_timespec_valid(rel))
		return -EINVAL;
	clock_gettime(CLOCK_MONOTONIC, &d->at);
	if (rel->tv_sec > INT64_MAX / 2 - d->at.tv_sec) {
		d->forever = true;
		return 0;
	}
	d->at.tv_sec += rel->tv_sec;
	d->at.tv_nsec += rel->tv_nsec;
	if (d->at.tv_nsec >= AFS_NS_PER_SEC) {
		d->at.tv_sec++;
		d->at.tv_nsec -= AFS_NS_PER_SEC;
	}
	return 0;
}

bool afs_deadline_left(const struct afs_deadline *d, struct timespec *left)
{
	struct timespec now;

	if (d->forever)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	left->tv_sec = d->at.tv_sec - now.tv_sec;
	left->tv_nsec = d->at.tv_nsec - now.tv_nsec;
	if (left->tv_nsec < 0) {
		left->tv_sec--;
		left->tv_nsec += AFS_NS_PER_SEC;
	}
	return left->tv_sec > 0 || (left->tv_sec == 0 && left->tv_nsec > 0);
}

int afs_thread_start(void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t thread;
	int ret;

	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The new thread inherits the mask in force while it is created. */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&thread, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return -ret;
}

static struct {
	atomic_uint seq;
	atomic_uint waiters;
} afs_completions;

void afs_completion_wake(void)
{
	/*
	 * seq_cst on both sides: either the waiter sees the new sequence, or
	 * we see the waiter and wake it.
	 */
	atomic_fetch_add(&afs_completions.seq, 1);
	if (atomic_load(&afs_completions.waiters))
		afs_futex_wake(&afs_completions.seq, INT_MAX);
}

int afs_futex_wait_until(atomic_uint *word, bool (*done)(void *arg),
			 void *arg, const struct afs_deadline *d, bool restart)
{
	struct timespec left;
	unsigned int seen;
	int ret;

	for (;;) {
		/* The word first: a wake-up after it makes the wait return. */
		seen = atomic_load(word);
		if (done(arg))
			return 0;
		if (!afs_deadline_left(d, &left))
			return -EAGAIN;
		ret = afs_futex_wait(word, seen, d->forever ? NULL : &left);
		/* EAGAIN: the word moved before we slept; ETIMEDOUT: the
		 * deadline, seen on the next turn. Look again. */
		if (ret == -EINTR && !restart)
			return ret;
	}
}

int afs_completion_wait(bool (*done)(void *arg), void *arg,
			const struct afs_deadline *d, bool restart)
{
	struct afs_deadline forever = { .forever = true };
	int ret;

	atomic_fetch_add(&afs_completions.waiters, 1);
	ret = afs_futex_wait_until(&afs_completions.seq, done, arg,
				   d ? d : &forever, restart);
	atomic_fetch_sub(&afs_completions.waiters, 1);
	return ret;
}

void afs_idxstack_push(struct afs_idxstack *s, _Atomic uint32_t *next_of,
		       uint32_t idx)
{
	uint64_t old = atomic_load(&s->head), new;

	do {
		atomic_store_explicit(&next_of[idx], (uint32_t)old,
				      memory_order_relaxed);
		new = ((old >> 32) + 1) << 32 | idx;
	} while (!atomic_compare_exchange_weak(&s->head, &old, new));
}

uint32_t afs_idxstack_pop(struct afs_idxstack *s, _Atomic uint32_t *next_of)
{
	uint64_t old = atomic_load(&s->head), new;
	uint32_t idx;

	do {
		idx = (uint32_t)old;
		if (!idx)
			return 0;
		/*
		 * next_of[idx] may be stale if another thread popped idx
		 * meanwhile; the tag then differs and the exchange fails.
		 */
		new = ((old >> 32) + 1) << 32 |
		      atomic_load_explicit(&next_of[idx], memory_order_relaxed);
	} while (!atomic_compare_exchange_weak(&s->head, &old, new));
	return idx;
}
