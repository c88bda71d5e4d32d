// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Reading memory the caller points us at, without trusting the pointer.
 *
 * io_submit() must answer a NULL or wild iocb array with -EFAULT, as the
 * system call does, not with SIGSEGV. The kernel checks addresses for us:
 * process_vm_readv() on our own process copies what is readable and stops
 * at the first fault. Where it is unavailable (seccomp filters in some
 * containers deny it), a pipe does the same: write(2) from the caller's
 * memory fails with EFAULT instead of faulting, and the bytes are read back.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include "internal.h"

static atomic_bool afs_no_vm_readv;

/* Copy one segment through a pipe; bytes copied (short on EFAULT). */
static size_t afs_copy_pipe_seg(int p[2], void *dst, const char *src,
				size_t len)
{
	size_t done = 0;

	while (done < len) {
		/* At most one pipe buffer's worth, so write() never blocks. */
		size_t chunk = len - done > 4096 ? 4096 : len - done;
		ssize_t w = write(p[1], src + done, chunk), r;

		if (w <= 0)
			break;
		r = read(p[0], (char *)dst + done, (size_t)w);
		if (r != w)
			break;
		done += (size_t)w;
	}
	return done;
}

static size_t afs_copy_pipe(const struct iovec *dst, const struct iovec *src,
			    int n)
{
	size_t total = 0, got;
	int p[2], i;

	if (pipe2(p, O_CLOEXEC))
		return 0;
	for (i = 0; i < n; i++) {
		got = afs_copy_pipe_seg(p, dst[i].iov_base, src[i].iov_base,
					src[i].iov_len);
		total += got;
		if (got < src[i].iov_len)
			break;
	}
	close(p[0]);
	close(p[1]);
	return total;
}

/* At most IOV_MAX segments: the limit of process_vm_readv(). */
static size_t afs_copy_in_some(const struct iovec *dst,
			       const struct iovec *src, int n)
{
	ssize_t ret;

	if (!atomic_load_explicit(&afs_no_vm_readv, memory_order_relaxed)) {
		/* dst and src have the same segment sizes. */
		ret = process_vm_readv(afs_getpid(), dst, n, src, n, 0);
		if (ret >= 0)
			return (size_t)ret;
		if (errno == EFAULT)
			return 0;
		/* Denied for good; ENOMEM and the like for this call only. */
		if (errno == ENOSYS || errno == EPERM)
			atomic_store(&afs_no_vm_readv, true);
	}
	return afs_copy_pipe(dst, src, n);
}

size_t afs_copy_in(const struct iovec *dst, const struct iovec *src, int n)
{
	size_t total = 0, want, got;
	int i, k, part;

	for (i = 0; i < n; i += part) {
		part = n - i < IOV_MAX ? n - i : IOV_MAX;
		for (want = 0, k = i; k < i + part; k++)
			want += src[k].iov_len;
		got = afs_copy_in_some(dst + i, src + i, part);
		total += got;
		if (got < want)
			break;
	}
	return total;
}
