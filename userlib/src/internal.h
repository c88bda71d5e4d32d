/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libaiofsync internals, shared by the files of the library. Each file owns
 * one concern:
 *
 *   device.c       the /dev/aiofsync descriptor: open, ioctls, markers
 *   posix_aio.c    POSIX AIO (aio_*, lio_listio) and its reaper thread
 *   notify.c       sigevent checks and delivery, the SIGEV_CALLBACK thread
 *   waitcomplete.c aio_waitcomplete(): completions not yet claimed
 *   watch.c        aio_suspend() woken by its own requests only
 *   fallback.c     helper threads for descriptors the device does not serve
 *   libaio.c       the libaio API (io_setup, io_submit, io_getevents, ...)
 *   usercopy.c     reading caller memory without risking SIGSEGV
 *   util.c         futexes, clocks, threads with signals blocked, fork
 *
 * Nothing here is exported: the build uses -fvisibility=hidden and every
 * public name is made visible, with its symbol version, by the AFS_EXPORT_*
 * macros below.
 */
#ifndef AFS_INTERNAL_H
#define AFS_INTERNAL_H

#include <aio.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <linux/aiofsync.h>

#define AFS_VISIBLE __attribute__((visibility("default")))

/*
 * Symbol versions. A public function is written as afs_<name>() and given
 * its public name here:
 *
 *   AFS_EXPORT(impl, name, "VER")        name@@VER, what new links bind to
 *   AFS_EXPORT_ALSO(impl, name, "VER", n) name@VER besides, so that binaries
 *                                         linked against glibc or libaio find
 *                                         ours first under LD_PRELOAD, or when
 *                                         this library comes first in the
 *                                         link order
 *
 * The static library has no versions: there the public name is a plain
 * alias. The libaio.so.1 build (AFS_BUILD_LIBAIO) is made of the libaio
 * part alone, with libaio's own versions.
 */
#if defined(AFS_BUILD_SHARED) || defined(AFS_BUILD_LIBAIO)
#define AFS_SYMVER(sym, versioned)					\
	__asm__(".symver " #sym ", " versioned)
#define AFS_EXPORT_AS(impl, name, ver)					\
	extern __typeof__(impl) afs_x_##name				\
		__attribute__((alias(#impl))) AFS_VISIBLE;		\
	AFS_SYMVER(afs_x_##name, #name "@@" ver)
#define AFS_EXPORT_ALSO_AS(impl, name, ver, n)				\
	extern __typeof__(impl) afs_x_##name##_##n			\
		__attribute__((alias(#impl))) AFS_VISIBLE;		\
	AFS_SYMVER(afs_x_##name##_##n, #name "@" ver)
#else
/* An assembler name: <aio.h> declares aio_read64 with another type. */
#define AFS_EXPORT_AS(impl, name, ver)					\
	extern __typeof__(impl) afs_x_##name __asm__(#name)		\
		__attribute__((alias(#impl))) AFS_VISIBLE
/* No versions: the variant exists only in the shared libraries. */
#define AFS_EXPORT_ALSO_AS(impl, name, ver, n)				\
	static __typeof__(impl) *const afs_x_##name##_##n		\
		__attribute__((unused)) = impl
#endif

/* POSIX and extension names (the libaio.so.1 build has none). */
#define AFS_EXPORT(impl, name, ver)	AFS_EXPORT_AS(impl, name, ver)
#define AFS_EXPORT_ALSO(impl, name, ver, n) AFS_EXPORT_ALSO_AS(impl, name, ver, n)

/*
 * libaio names: in libaiofsync.so the default version is AIOFSYNC_1.0 and
 * libaio's version is an alias (for LD_PRELOAD); in libaio.so.1 libaio's
 * version is the default, as in the real libaio.
 */
#ifdef AFS_BUILD_LIBAIO
#define AFS_EXPORT_LIBAIO(impl, name, ver)				\
	AFS_EXPORT_AS(impl, name, ver)
#else
#define AFS_EXPORT_LIBAIO(impl, name, ver)				\
	AFS_EXPORT_AS(impl, name, "AIOFSYNC_1.0");			\
	AFS_EXPORT_ALSO_AS(impl, name, ver, l)
#endif

#define AFS_NS_PER_SEC	1000000000LL

/* ---- device.c ---------------------------------------------------------- */

/*
 * Opens a new context, and fills @info (may be NULL) with the device's.
 * Returns the descriptor or -errno; -ENOSYS if there is no device.
 */
int afs_dev_open(struct aiofsync_info *info);
/* Requests accepted (>= 0), or -errno of the first one. */
int afs_dev_submit(int dev, struct aiofsync_req *reqs, unsigned int nr);
/* Events taken, or -errno (-EINTR: nothing taken, call again). */
int afs_dev_reap(int dev, struct aiofsync_event *ev, unsigned int min_nr,
		 unsigned int max_nr, uint64_t timeout_ns);
/*
 * With AIOFSYNC_REAP_* @flags; through AIOFSYNC_IOC_REAP_TAKES unless @takes
 * is NULL: then *@takes is the context's count of foreground calls that
 * took events (when >= 0).
 */
int afs_dev_reap_takes(int dev, struct aiofsync_event *ev, unsigned int min_nr,
		       unsigned int max_nr, uint64_t timeout_ns, uint32_t flags,
		       uint32_t *takes);
/* AIOFSYNC_IOC_WAKE with AIOFSYNC_WAKE_* @flags. */
void afs_dev_wake(int dev, unsigned long flags);
int afs_dev_cancel(int dev, uint32_t flags, int fd, uint64_t tag,
		   uint32_t *canceled, uint32_t *running);
/*
 * Queue a request that completes at once with @tag: an FDATASYNC of a private
 * memfd that nothing ever writes. It lets a thread that is not the device put
 * an event into a context's completion queue, behind every event already
 * there. Returns 0 or -errno, at once: -EAGAIN (or -ENOMEM) when the context
 * or the device is full, which only the reaping of events ends; the caller
 * decides how to wait for that.
 */
int afs_dev_post_marker(int dev, uint64_t tag);
/*
 * A close-on-exec duplicate of the eventfd @fd, for a helper to signal later
 * (the program may close @fd meanwhile); -EBADF or -EINVAL as io_submit()
 * says for a bad aio_resfd, -EAGAIN when out of descriptors.
 */
int afs_dev_eventfd_dup(int fd);
/* A request that would be refused by the device for that reason alone. */
void afs_dev_req_init(struct aiofsync_req *r, uint32_t opcode, int fd,
		      uint64_t tag);

/* ---- util.c ------------------------------------------------------------ */

/* Bumped in the child after fork(): state of the parent is stale there. */
extern atomic_uint afs_fork_generation;
/* getpid(), cached per fork generation. */
pid_t afs_getpid(void);
/* The calling thread, as a number that is never 0; async-signal-safe. */
uintptr_t afs_thread_self(void);

int afs_futex_wait(atomic_uint *addr, unsigned int val,
		   const struct timespec *rel);
void afs_futex_wake(atomic_uint *addr, int nr);

/* Monotonic deadline from a relative timeout; NULL timeout: no deadline. */
struct afs_deadline {
	bool forever;
	struct timespec at;
};
int afs_deadline_init(struct afs_deadline *d, const struct timespec *rel);
/* Time left into @left; false when the deadline has passed. */
bool afs_deadline_left(const struct afs_deadline *d, struct timespec *left);
bool afs_timespec_valid(const struct timespec *ts);

/*
 * Start a detached thread with every signal blocked: library threads must
 * never take a signal meant for the program, nor be interrupted by one.
 */
int afs_thread_start(void *(*fn)(void *), void *arg);

/*
 * Wait on the futex @word until @done(@arg), reading @word before each
 * look so that a bump after it ends the sleep. 0; -EAGAIN at the deadline
 * @d (not NULL); -EINTR on a signal, unless @restart says to go on.
 */
int afs_futex_wait_until(atomic_uint *word, bool (*done)(void *arg),
			 void *arg, const struct afs_deadline *d, bool restart);

/*
 * "Something completed", for waiters that watch a set of requests
 * (lio_listio LIO_WAIT, aio_cancel, aio_waitcomplete, and aio_suspend when
 * it has no watch, see watch.c): a sequence number bumped after
 * completions are published, and a futex on it. Waking costs two atomics
 * while nobody waits.
 */
void afs_completion_wake(void);
/*
 * Wait until @done(@arg). 0; -EAGAIN at the deadline (NULL: none);
 * -EINTR on a signal, unless @restart says to go on waiting.
 */
int afs_completion_wait(bool (*done)(void *arg), void *arg,
			const struct afs_deadline *d, bool restart);

/* ---- watch.c ----------------------------------------------------------- */

/* The longest list a watch takes. */
#define AFS_WATCH_KEYS	64

struct afs_watch;
/*
 * Watch the non-NULL entries of @keys (aiocb pointers, compared only): a
 * wait then ends when afs_watch_wake() names one of them. NULL when the
 * list is too long or every watch is taken: use afs_completion_wait().
 */
struct afs_watch *afs_watch_start(const void *const *keys, int n);
/*
 * As afs_completion_wait() without restart, woken by the watched keys;
 * @d must not be NULL.
 */
int afs_watch_wait(struct afs_watch *w, bool (*done)(void *arg), void *arg,
		   const struct afs_deadline *d);
void afs_watch_end(struct afs_watch *w);
/*
 * After publishing the results of the aiocbs at addresses @keys: wake the
 * watches holding one.
 */
void afs_watch_wake(const uintptr_t *keys, int n);

/*
 * fork(): a concern with a lock and state registers a hook once. The lock is
 * held across fork() so the child's copy is consistent; in the child it is
 * initialized anew and @child drops the parent's state (its threads, its
 * requests, its device contexts are not the child's).
 */
enum { AFS_HOOK_NEW, AFS_HOOK_ADDING, AFS_HOOK_ADDED };

struct afs_fork_hook {
	struct afs_fork_hook *next;
	atomic_uint state;		/* AFS_HOOK_* */
	pthread_mutex_t *lock;		/* may be NULL */
	void (*child)(void);		/* may be NULL */
};
void afs_fork_hook_add(struct afs_fork_hook *hook);

/*
 * A lock-free stack of small integers (1-based indices into an array owned by
 * the caller; 0 = empty), with a tag against ABA. Used for free lists.
 */
struct afs_idxstack {
	_Atomic uint64_t head;		/* tag << 32 | index */
};
void afs_idxstack_push(struct afs_idxstack *s, _Atomic uint32_t *next_of,
		       uint32_t idx);
uint32_t afs_idxstack_pop(struct afs_idxstack *s, _Atomic uint32_t *next_of);

/* ---- usercopy.c -------------------------------------------------------- */

/*
 * Copy @n segments of caller memory (any number: more than IOV_MAX go in
 * parts); returns the bytes copied before the first unreadable one (so a
 * short count means EFAULT).
 */
size_t afs_copy_in(const struct iovec *dst, const struct iovec *src, int n);

/* ---- notify.c ---------------------------------------------------------- */

/* 0, or EINVAL for a sigevent aio_* must refuse. */
int afs_sigev_check(const struct sigevent *sev);
/* Deliver the notification @sev asks for (a copy: the aiocb may be gone). */
void afs_sigev_notify(const struct sigevent *sev);
/* The signal mask SIGEV_THREAD functions run with (the program's). */
void afs_notify_set_thread_mask(const sigset_t *mask);

/* ---- per-aiocb state --------------------------------------------------- */

/*
 * glibc's struct aiocb keeps private fields that a program never touches:
 * __error_code and __return_value (used here as glibc uses them: the error
 * status, EINPROGRESS until done, and the result) and __glibc_reserved,
 * where the rest of a request's state lives.
 */
struct afs_priv {
	uint64_t wc_ref;	/* aio_waitcomplete() record: index << 32 | gen */
	void *group;		/* lio_listio() group to tell, or NULL */
	uint32_t flags;		/* AFS_PRIV_* */
	uint32_t spare0;
	uint64_t spare1;
};

#define AFS_PRIV_NO_NOTIFY	0x1	/* lio_listio@GLIBC_2.2.5: no own event */

_Static_assert(sizeof(struct afs_priv) <= sizeof(((struct aiocb *)0)->__glibc_reserved),
	       "struct afs_priv must fit glibc's reserved bytes");
_Static_assert(offsetof(struct aiocb, __glibc_reserved) % _Alignof(struct afs_priv) == 0,
	       "glibc's reserved bytes must be aligned for struct afs_priv");
_Static_assert(sizeof(atomic_int) == sizeof(int) && _Alignof(atomic_int) == _Alignof(int),
	       "__error_code is accessed as an atomic_int");

static inline struct afs_priv *afs_priv(struct aiocb *cb)
{
	return (struct afs_priv *)(void *)cb->__glibc_reserved;
}

/* __error_code, read by aio_error() without a system call. */
static inline atomic_int *afs_error_code(const struct aiocb *cb)
{
	return (atomic_int *)(void *)&((struct aiocb *)cb)->__error_code;
}

/* ---- waitcomplete.c ---------------------------------------------------- */

/*
 * Remember a completion for aio_waitcomplete(); called before the result is
 * published. afs_wc_forget() is aio_return()'s and resubmission's way to say
 * it was claimed.
 */
void afs_wc_record(struct aiocb *cb, ssize_t ret, int err);
/* Whether afs_wc_record() has what it needs (it allocates on first use). */
bool afs_wc_ready(void);
void afs_wc_forget(struct aiocb *cb);

/* ---- posix_aio.c ------------------------------------------------------- */

/* True once this process (this side of the last fork) submitted anything. */
bool afs_posix_started(void);

/* ---- fallback.c -------------------------------------------------------- */

/*
 * A request for the helper threads: the blocking system call glibc's helper
 * would make. Requests on one descriptor number run one at a time, in order.
 */
struct afs_fb_req {
	struct afs_fb_req *next;
	int fd;
	uint32_t opcode;	/* AIOFSYNC_OP_* */
	void *buf;
	size_t len;
	off_t offset;
	long res;		/* out: bytes, or -errno */
	void *owner;		/* who submitted: for cancellation */
	uint64_t tag;		/* the request within @owner */
	/* Called on a helper thread, or by a cancel, with no lock held. */
	void (*done)(struct afs_fb_req *req);
	/*
	 * Frees the request and closes the descriptors it holds (NULL: free()).
	 * Called with the pool's lock held, so it must not wait: after done(),
	 * or in the child after fork() for every request of the parent's not
	 * yet released - queued, running or being completed -, which never
	 * completes there. Until then the pool knows the request, so that no
	 * fork() can leave a child a descriptor that nothing closes.
	 */
	void (*release)(struct afs_fb_req *req);
	/* The pool's: requests between their done() and their release(). */
	struct afs_fb_req *cnext, **cpprev;
	/*
	 * The pool's: the regular file a WRITE or a sync is on, the WRITE's
	 * place among the file's unfinished helper writes, and the last of
	 * those a sync must wait for.
	 */
	struct afs_fb_inode *inode;
	struct afs_fb_req *inext;
	uint64_t seq;
	bool regular;		/* a regular file: syncs go through the device */
};

/* 0, or -EAGAIN when no helper thread can be started. */
int afs_fb_submit(struct afs_fb_req *req);
/*
 * Whether helper WRITEs on the file of @fd are unfinished: then a sync of
 * the file goes to the helpers too, which run it after them (and after the
 * device's writes queued before it). Costs nothing while no helper write is
 * unfinished anywhere in the process.
 */
bool afs_fb_file_busy(int fd);
/*
 * Cancel the queued requests of @owner that match (@tag, or every one with
 * @all; @fd >= 0 restricts to a descriptor): they complete with -ECANCELED.
 * Counts those, and those already running, into the out parameters.
 */
void afs_fb_cancel(void *owner, int fd, uint64_t tag, bool all,
		   unsigned int *canceled, unsigned int *running);
/*
 * Wait until no request that matches as for afs_fb_cancel() is still
 * completing: one neither queued nor running there may have run and not
 * yet returned from its done(), which publishes its result.
 */
void afs_fb_wait_settled(void *owner, int fd, uint64_t tag, bool all);
/* aio_init(): limits of the pool. */
void afs_fb_configure(int max_threads, int idle_seconds);

/* Tag bits of POSIX requests: the aiocb pointer, low bits free. */
#define AFS_TAG_BARRIER	0x1ULL

#endif /* AFS_INTERNAL_H */
