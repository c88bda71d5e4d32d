// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * An ordinary POSIX AIO program, written against glibc's <aio.h> and
 * nothing else: it knows nothing of aiofsync. lib_compat_test runs it on
 * glibc, and on libaiofsync through LD_PRELOAD or link order.
 *
 * Writes 8 blocks, an aio_fsync() behind them, waits with aio_suspend(),
 * reads the blocks back with lio_listio(LIO_WAIT) and compares. Prints
 * "aio_prog: ok" and exits 0, or names the call that failed and exits 1.
 */
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define N 8
#define BS 4096

static int fail(const char *what, int err)
{
	printf("aio_prog: %s: %s\n", what, strerror(err));
	return 1;
}

static int wait_for(struct aiocb *cb)
{
	const struct aiocb *list[1] = { cb };
	int err;

	while ((err = aio_error(cb)) == EINPROGRESS)
		if (aio_suspend(list, 1, NULL) && errno != EINTR)
			return errno;
	return err;
}

int main(int argc, char **argv)
{
	static char buf[N][BS], back[N][BS];
	const char *path = argc > 1 ? argv[1] : "aio_prog.dat";
	struct aiocb w[N], r[N], s;
	struct aiocb *list[N];
	int fd, i, err;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fail("open", errno);
	unlink(path);
	for (i = 0; i < N; i++) {
		memset(buf[i], 'A' + i, BS);
		memset(&w[i], 0, sizeof(w[i]));
		w[i].aio_fildes = fd;
		w[i].aio_buf = buf[i];
		w[i].aio_nbytes = BS;
		w[i].aio_offset = (off_t)i * BS;
		if (aio_write(&w[i]))
			return fail("aio_write", errno);
	}
	memset(&s, 0, sizeof(s));
	s.aio_fildes = fd;
	if (aio_fsync(O_SYNC, &s))
		return fail("aio_fsync", errno);
	err = wait_for(&s);
	if (err)
		return fail("aio_fsync result", err);
	for (i = 0; i < N; i++) {
		err = wait_for(&w[i]);
		if (err || aio_return(&w[i]) != BS)
			return fail("aio_write result", err ? err : EIO);
	}
	if (aio_return(&s))
		return fail("aio_return of aio_fsync", EIO);

	for (i = 0; i < N; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].aio_fildes = fd;
		r[i].aio_lio_opcode = LIO_READ;
		r[i].aio_buf = back[i];
		r[i].aio_nbytes = BS;
		r[i].aio_offset = (off_t)i * BS;
		r[i].aio_sigevent.sigev_notify = SIGEV_NONE;
		list[i] = &r[i];
	}
	if (lio_listio(LIO_WAIT, list, N, NULL))
		return fail("lio_listio", errno);
	for (i = 0; i < N; i++)
		if (aio_return(&r[i]) != BS || memcmp(buf[i], back[i], BS))
			return fail("read back", EIO);
	if (aio_fsync(O_DSYNC, &s))
		return fail("aio_fsync(O_DSYNC)", errno);
	err = wait_for(&s);
	if (err)
		return fail("aio_fsync(O_DSYNC) result", err);
	if (aio_cancel(fd, NULL) != AIO_ALLDONE)
		return fail("aio_cancel", EIO);
	close(fd);
	printf("aio_prog: ok\n");
	return 0;
}
