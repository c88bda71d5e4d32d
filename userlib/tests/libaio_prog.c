// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * An ordinary libaio program, written against libaio's <libaio.h> and its
 * inline helpers, linked with -laio: it knows nothing of aiofsync.
 * lib_compat_test runs it on kernel AIO, and on libaiofsync through
 * LD_PRELOAD, LD_LIBRARY_PATH (the libaio.so.1 build) or link order.
 *
 * Writes 8 blocks and an io_fsync() with a callback, reaps with
 * io_getevents() and io_queue_run(), watches an eventfd, reads the blocks
 * back and compares. Prints "libaio_prog: ok" and exits 0, or names the
 * call that failed and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>

#define N 8
#define BS 4096

static int synced;

static int fail(const char *what, long err)
{
	printf("libaio_prog: %s: %s\n", what, strerror((int)-err));
	return 1;
}

static void on_sync(io_context_t ctx, struct iocb *iocb, long res, long res2)
{
	(void)ctx;
	(void)iocb;
	(void)res2;
	synced = res == 0 ? 1 : -1;
}

int main(int argc, char **argv)
{
	static char buf[N][BS] __attribute__((aligned(4096)));
	static char back[N][BS] __attribute__((aligned(4096)));
	const char *path = argc > 1 ? argv[1] : "libaio_prog.dat";
	struct iocb io[N], sync, *ios[N];
	struct io_event ev[N];
	io_context_t ctx = 0;
	uint64_t count;
	int fd, efd, i, got, ret;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return fail("open", -errno);
	unlink(path);
	efd = eventfd(0, EFD_CLOEXEC);
	ret = io_setup(64, &ctx);
	if (ret)
		return fail("io_setup", ret);
	for (i = 0; i < N; i++) {
		memset(buf[i], 'a' + i, BS);
		io_prep_pwrite(&io[i], fd, buf[i], BS, (long long)i * BS);
		io[i].data = &io[i];
		io_set_eventfd(&io[i], efd);
		ios[i] = &io[i];
	}
	ret = io_submit(ctx, N, ios);
	if (ret != N)
		return fail("io_submit", ret < 0 ? ret : -EIO);
	ret = io_fsync(ctx, &sync, on_sync, fd);
	if (ret != 1)
		return fail("io_fsync", ret < 0 ? ret : -EIO);
	for (got = 0; got < N; got += ret) {
		ret = io_getevents(ctx, 1, N - got, ev, NULL);
		if (ret < 0)
			return fail("io_getevents", ret);
		for (i = 0; i < ret; i++) {
			if (ev[i].obj == &sync) {
				/* The fsync: not before the writes it covers. */
				return fail("io_fsync before the writes", -EIO);
			}
			if (ev[i].data != ev[i].obj || ev[i].res != BS)
				return fail("write event", -EIO);
		}
	}
	while (!synced) {
		ret = io_queue_run(ctx);
		if (ret < 0)
			return fail("io_queue_run", ret);
	}
	if (synced < 0)
		return fail("io_fsync result", -EIO);
	if (read(efd, &count, sizeof(count)) != sizeof(count) || count != N)
		return fail("eventfd", -EIO);

	for (i = 0; i < N; i++)
		io_prep_pread(&io[i], fd, back[i], BS, (long long)i * BS);
	ret = io_submit(ctx, N, ios);
	if (ret != N)
		return fail("io_submit (read)", ret < 0 ? ret : -EIO);
	for (got = 0; got < N; got += ret) {
		ret = io_getevents(ctx, 1, N - got, ev, NULL);
		if (ret < 0)
			return fail("io_getevents (read)", ret);
	}
	for (i = 0; i < N; i++)
		if (memcmp(buf[i], back[i], BS))
			return fail("read back", -EIO);
	ret = io_destroy(ctx);
	if (ret)
		return fail("io_destroy", ret);
	close(fd);
	printf("libaio_prog: ok\n");
	return 0;
}
