// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Built against the *installed* library, with only what
 * `pkg-config --cflags --libs aiofsync` gives: <aiofsync.h> and
 * -laiofsync. Uses the extensions: aiofsync_available(), an IRIX
 * SIGEV_CALLBACK, aiofsync_fsync_range() and FreeBSD's aio_waitcomplete().
 * Prints "installed_prog: ok" and exits 0, or what failed and exits 1.
 */
#include <aiofsync.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int calls;

static void on_done(union sigval v)
{
	atomic_fetch_add(&calls, v.sival_int);
}

static int fail(const char *what, int err)
{
	printf("installed_prog: %s: %s\n", what, strerror(err));
	return 1;
}

int main(void)
{
	static char buf[4096];
	struct aiocb w, s, *got;
	int fd, i;

	if (aiofsync_available())
		return fail("aiofsync_available", errno);
	fd = open("installed_prog.dat", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fail("open", errno);
	unlink("installed_prog.dat");
	memset(buf, 'i', sizeof(buf));
	memset(&w, 0, sizeof(w));
	w.aio_fildes = fd;
	w.aio_buf = buf;
	w.aio_nbytes = sizeof(buf);
	w.aio_sigevent.sigev_notify = SIGEV_CALLBACK;
	w.aio_sigevent.sigev_func = on_done;
	w.aio_sigevent.sigev_value.sival_int = 1;
	if (aio_write(&w))
		return fail("aio_write", errno);
	memset(&s, 0, sizeof(s));
	s.aio_fildes = fd;
	s.aio_nbytes = sizeof(buf);
	s.aio_sigevent = w.aio_sigevent;
	s.aio_sigevent.sigev_value.sival_int = 10;
	if (aiofsync_fsync_range(O_DSYNC, &s))
		return fail("aiofsync_fsync_range", errno);
	for (i = 0; i < 2; i++) {
		ssize_t ret = aio_waitcomplete(&got, NULL);

		if (got == &w && ret != (ssize_t)sizeof(buf))
			return fail("aio_waitcomplete (write)", ret < 0 ? errno : EIO);
		if (got == &s && ret != 0)
			return fail("aio_waitcomplete (sync)", ret < 0 ? errno : EIO);
		if (got != &w && got != &s)
			return fail("aio_waitcomplete", errno);
	}
	for (i = 0; i < 2000 && atomic_load(&calls) != 11; i++)
		usleep(1000);
	if (atomic_load(&calls) != 11)
		return fail("SIGEV_CALLBACK", EIO);
	close(fd);
	printf("installed_prog: ok\n");
	return 0;
}
