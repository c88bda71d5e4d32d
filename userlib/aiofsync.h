/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * <aiofsync.h> - what libaiofsync offers beyond <aio.h> and <libaio.h>.
 *
 * libaiofsync implements glibc's POSIX AIO (<aio.h>: aio_read, aio_write,
 * aio_fsync, aio_error, aio_return, aio_suspend, aio_cancel, lio_listio and
 * their *64 names) and libaio's API (<libaio.h>: io_setup, io_submit,
 * io_getevents, ...) on top of /dev/aiofsync, whose fsync waits for the
 * writes to the same file queued before it. Programs written against those
 * headers need no change; this header adds:
 *
 *   SIGEV_CALLBACK      IRIX's notification: sigev_notify_function is called
 *                       with sigev_value on the library's callback thread,
 *                       one callback at a time
 *   aio_waitcomplete()  FreeBSD's "next completed request"
 *   aiofsync_*()        functions of this library
 *
 * See libaiofsync(3).
 */
#ifndef AIOFSYNC_H
#define AIOFSYNC_H

#include <aio.h>
#include <signal.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * IRIX's SIGEV_CALLBACK. glibc's and Linux's SIGEV_* values are 0 to 4
 * (SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID); this one is far
 * from them, so that no future value of theirs clashes.
 */
#define SIGEV_CALLBACK		0x100

/* IRIX's name of the callback member. */
#ifndef sigev_func
#define sigev_func		sigev_notify_function
#endif

/* The thread of SIGEV_THREAD_ID (glibc < 2.37 has no name for it). */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id	_sigev_un._tid
#endif

/*
 * FreeBSD's aio_waitcomplete(): wait for the next completed request of this
 * process not yet claimed by aio_return() or aio_waitcomplete(); store its
 * aiocb in *iocbp and return what aio_return() would. timeout NULL waits
 * forever; {0, 0} polls.
 */
ssize_t aio_waitcomplete(struct aiocb **iocbp, struct timespec *timeout);

/*
 * aio_fsync() of the range aio_offset .. aio_offset + aio_nbytes
 * (aio_nbytes 0: to the end of the file), like sync_file_range() but with
 * fsync's guarantees: op O_SYNC or O_DSYNC.
 */
int aiofsync_fsync_range(int op, struct aiocb *aiocbp);

/* 0 when /dev/aiofsync can be used; -1 with errno ENOSYS when not. */
int aiofsync_available(void);

#ifdef __cplusplus
}
#endif

#endif /* AIOFSYNC_H */
