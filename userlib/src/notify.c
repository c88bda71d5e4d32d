// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Completion notification as aio_sigevent asks for it.
 *
 *   SIGEV_NONE       nothing
 *   SIGEV_SIGNAL     a signal queued to the process, si_code SI_ASYNCIO and
 *                    si_value, as glibc does it: rt_sigqueueinfo() to our
 *                    own pid (the module cannot send a process-directed
 *                    signal with a siginfo of our choosing)
 *   SIGEV_THREAD_ID  the same, to one thread: rt_tgsigqueueinfo()
 *   SIGEV_THREAD     a new detached thread runs the function
 *   SIGEV_CALLBACK   (IRIX) the function runs on the library's callback
 *                    thread: one callback at a time, in completion order,
 *                    possibly in parallel with the program's threads
 *
 * Callers pass a copy of the sigevent, taken before the result was
 * published: once aio_error() can say "done" the program may free the aiocb.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "internal.h"
#include "../aiofsync.h"

int afs_sigev_check(const struct sigevent *sev)
{
	switch (sev->sigev_notify) {
	case SIGEV_NONE:
		return 0;
	case SIGEV_THREAD_ID:
		if (sev->_sigev_un._tid <= 0)
			return EINVAL;
		/* fall through */
	case SIGEV_SIGNAL:
		/*
		 * Signal 0 is accepted and sends nothing: a zeroed aiocb says
		 * SIGEV_SIGNAL (0) with signal 0, and glibc takes it so.
		 */
		return sev->sigev_signo >= 0 && sev->sigev_signo < NSIG ?
		       0 : EINVAL;
	case SIGEV_THREAD:
	case SIGEV_CALLBACK:
		return sev->sigev_notify_function ? 0 : EINVAL;
	default:
		return EINVAL;
	}
}

static void afs_queue_signal(const struct sigevent *sev, pid_t tid)
{
	siginfo_t info;
	pid_t pid = afs_getpid();

	if (!sev->sigev_signo)
		return;
	memset(&info, 0, sizeof(info));
	info.si_signo = sev->sigev_signo;
	info.si_code = SI_ASYNCIO;
	info.si_pid = pid;
	info.si_uid = getuid();
	info.si_value = sev->sigev_value;
	/* A full signal queue loses the notification, as it does in glibc. */
	if (tid)
		syscall(SYS_rt_tgsigqueueinfo, pid, tid, info.si_signo, &info);
	else
		syscall(SYS_rt_sigqueueinfo, pid, info.si_signo, &info);
}

/* ---- SIGEV_THREAD ---- */

struct afs_notify_thread {
	void (*fn)(union sigval);
	union sigval value;
	bool detach_self;	/* made joinable by the program's attributes */
};

/*
 * SIGEV_THREAD functions run with the signal mask of the program's thread
 * that first used the library, not with our helpers' all-blocked mask.
 */
static sigset_t afs_thread_mask;
static atomic_bool afs_thread_mask_set;

void afs_notify_set_thread_mask(const sigset_t *mask)
{
	afs_thread_mask = *mask;
	atomic_store(&afs_thread_mask_set, true);
}

static void *afs_notify_thread_main(void *arg)
{
	struct afs_notify_thread t = *(struct afs_notify_thread *)arg;

	free(arg);
	/*
	 * Detached before the program's function runs, as POSIX has it, and
	 * by the thread itself: detaching from the creator would race with a
	 * function that looks.
	 */
	if (t.detach_self)
		pthread_detach(pthread_self());
	if (atomic_load(&afs_thread_mask_set))
		pthread_sigmask(SIG_SETMASK, &afs_thread_mask, NULL);
	t.fn(t.value);
	return NULL;
}

static void afs_start_notify_thread(const struct sigevent *sev)
{
	pthread_attr_t *attr = sev->sigev_notify_attributes, local;
	struct afs_notify_thread *t = malloc(sizeof(*t));
	pthread_t thread;
	int detach = PTHREAD_CREATE_DETACHED;

	if (!t)
		return;
	t->fn = sev->sigev_notify_function;
	t->value = sev->sigev_value;
	if (!attr) {
		pthread_attr_init(&local);
		pthread_attr_setdetachstate(&local, PTHREAD_CREATE_DETACHED);
		attr = &local;
	} else {
		/* The program's attributes are not ours to change. */
		pthread_attr_getdetachstate(attr, &detach);
	}
	t->detach_self = detach != PTHREAD_CREATE_DETACHED;
	if (pthread_create(&thread, attr, afs_notify_thread_main, t))
		free(t);
	if (attr == &local)
		pthread_attr_destroy(&local);
}

/* ---- SIGEV_CALLBACK ---- */

struct afs_callback {
	struct afs_callback *next;
	void (*fn)(union sigval);
	union sigval value;
};

/*
 * A FIFO and the one thread that drains it: serializing callbacks needs no
 * lock around the callback itself, and a slow callback never holds up the
 * completions behind it. The thread starts with the first callback and
 * stays (it is idle in pthread_cond_wait).
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t more;
	struct afs_callback *head, **tail;
	bool running;
} afs_cb = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.more = PTHREAD_COND_INITIALIZER,
	.tail = &afs_cb.head,
};

/* The parent's pending callbacks are the parent's; its thread is gone. */
static void afs_cb_child(void)
{
	struct afs_callback *c, *next;

	for (c = afs_cb.head; c; c = next) {
		next = c->next;
		free(c);
	}
	afs_cb.head = NULL;
	afs_cb.tail = &afs_cb.head;
	afs_cb.running = false;
	pthread_cond_init(&afs_cb.more, NULL);
}

static struct afs_fork_hook afs_cb_fork = {
	.lock = &afs_cb.lock,
	.child = afs_cb_child,
};

static void *afs_cb_main(void *arg)
{
	struct afs_callback *c;

	(void)arg;
	pthread_mutex_lock(&afs_cb.lock);
	for (;;) {
		while (!afs_cb.head)
			pthread_cond_wait(&afs_cb.more, &afs_cb.lock);
		c = afs_cb.head;
		afs_cb.head = c->next;
		if (!afs_cb.head)
			afs_cb.tail = &afs_cb.head;
		pthread_mutex_unlock(&afs_cb.lock);
		c->fn(c->value);
		free(c);
		pthread_mutex_lock(&afs_cb.lock);
	}
	return NULL;
}

static void afs_queue_callback(const struct sigevent *sev)
{
	struct afs_callback *c = malloc(sizeof(*c));

	if (!c)
		return;
	c->next = NULL;
	c->fn = sev->sigev_notify_function;
	c->value = sev->sigev_value;
	afs_fork_hook_add(&afs_cb_fork);
	pthread_mutex_lock(&afs_cb.lock);
	if (!afs_cb.running) {
		if (afs_thread_start(afs_cb_main, NULL)) {
			/* No thread, no callback: as with SIGEV_THREAD. */
			pthread_mutex_unlock(&afs_cb.lock);
			free(c);
			return;
		}
		afs_cb.running = true;
	}
	*afs_cb.tail = c;
	afs_cb.tail = &c->next;
	pthread_cond_signal(&afs_cb.more);
	pthread_mutex_unlock(&afs_cb.lock);
}

void afs_sigev_notify(const struct sigevent *sev)
{
	switch (sev->sigev_notify) {
	case SIGEV_SIGNAL:
		afs_queue_signal(sev, 0);
		break;
	case SIGEV_THREAD_ID:
		afs_queue_signal(sev, sev->_sigev_un._tid);
		break;
	case SIGEV_THREAD:
		afs_start_notify_thread(sev);
		break;
	case SIGEV_CALLBACK:
		afs_queue_callback(sev);
		break;
	default:
		break;
	}
}
