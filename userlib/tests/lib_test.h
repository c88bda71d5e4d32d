/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers of the libaiofsync tests. The device helpers (scratch files,
 * counters, "stalled" buffers that hold a WRITE on the device's worker until
 * released) are the selftests' own, from selftests/aiofsync_util.h.
 *
 * A test that needs /dev/aiofsync fails, not skips, without it: the suite
 * always loads the module, so a missing device is a failure to see.
 */
#ifndef LIB_TEST_H
#define LIB_TEST_H

#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "aiofsync_util.h"

/* How long any wait of a test may take before it counts as a hang. */
#define LT_WAIT_SEC	20

static inline bool lt_have_device(void)
{
	return access(AIOFSYNC_DEVICE, R_OK | W_OK) == 0;
}

/* A scratch file in the current directory, already unlinked. */
static inline int lt_tmpfile(const char *name, int flags)
{
	char path[64];
	int fd = afs_tmpfile(name, flags);

	snprintf(path, sizeof(path), "./aiofsync-%d-%s", getpid(), name);
	unlink(path);
	return fd;
}

/* Wait for @cb with aio_suspend(); its aio_error(), or -1 on a hang. */
static inline int lt_wait(const struct aiocb *cb)
{
	const struct aiocb *list[1] = { cb };
	struct timespec ts = { LT_WAIT_SEC, 0 };
	int err;

	while ((err = aio_error(cb)) == EINPROGRESS) {
		if (aio_suspend(list, 1, &ts) && errno == EAGAIN)
			return -1;
	}
	return err;
}

/* Stays EINPROGRESS for @ms (what "held back" looks like). */
static inline bool lt_still_in_progress(const struct aiocb *cb, int ms)
{
	const struct aiocb *list[1] = { cb };
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	aio_suspend(list, 1, &ts);
	return aio_error(cb) == EINPROGRESS;
}

static inline void lt_prep(struct aiocb *cb, int fd, void *buf, size_t len,
			   off_t off)
{
	memset(cb, 0, sizeof(*cb));
	cb->aio_fildes = fd;
	cb->aio_buf = buf;
	cb->aio_nbytes = len;
	cb->aio_offset = off;
	cb->aio_sigevent.sigev_notify = SIGEV_NONE;
}

/* Another open file (its own description) of the same inode as @fd. */
static inline int lt_reopen(int fd, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, flags | O_CLOEXEC);
}

static inline int lt_sem_wait(sem_t *s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += LT_WAIT_SEC;
	return sem_timedwait(s, &ts);
}

static void lt_on_signal(int sig)
{
	(void)sig;
}

/* Catch @sig with a handler that does nothing, without SA_RESTART. */
static inline int lt_catch(int sig)
{
	struct sigaction sa = { .sa_handler = lt_on_signal };

	return sigaction(sig, &sa, NULL);
}

/* Something to do from another thread after a while. */
struct lt_later {
	pthread_t thread, target;
	int sig, fill, ms;
	struct afs_stall *stall;
};

static void *lt_later_main(void *arg)
{
	struct lt_later *l = arg;

	usleep(l->ms * 1000);
	if (l->stall)
		afs_stall_release(l->stall, l->fill);
	else
		pthread_kill(l->target, l->sig);
	return NULL;
}

/* In @ms, send @sig to the calling thread (to end a wait with EINTR). */
static inline int lt_signal_later(struct lt_later *l, int sig, int ms)
{
	*l = (struct lt_later){ .target = pthread_self(), .sig = sig, .ms = ms };
	return pthread_create(&l->thread, NULL, lt_later_main, l);
}

/* In @ms, let the stalled write on @s go on, with @fill bytes. */
static inline int lt_release_later(struct lt_later *l, struct afs_stall *s,
				   int fill, int ms)
{
	*l = (struct lt_later){ .stall = s, .fill = fill, .ms = ms };
	return pthread_create(&l->thread, NULL, lt_later_main, l);
}

static inline void lt_join(struct lt_later *l)
{
	pthread_join(l->thread, NULL);
}

/*
 * Wait until a thread of ours sleeps in read(2) on @fd: a helper thread has
 * taken that request and is running it. (/proc/<tid>/syscall names the
 * system call a blocked thread is in, and its arguments.)
 */
static inline bool lt_wait_blocked_in_read(int fd)
{
	char want[32], path[300], line[128];
	struct dirent *d;
	int i, t;
	DIR *dir;

	snprintf(want, sizeof(want), "%d 0x%x ", SYS_read, fd);
	for (i = 0; i < LT_WAIT_SEC * 100; i++) {
		dir = opendir("/proc/self/task");
		while (dir && (d = readdir(dir))) {
			snprintf(path, sizeof(path), "/proc/self/task/%s/syscall",
				 d->d_name);
			t = open(path, O_RDONLY | O_CLOEXEC);
			if (t < 0)
				continue;
			line[0] = 0;
			if (read(t, line, sizeof(line) - 1) > 0 &&
			    !strncmp(line, want, strlen(want))) {
				close(t);
				closedir(dir);
				return true;
			}
			close(t);
		}
		if (dir)
			closedir(dir);
		usleep(10000);
	}
	return false;
}

/* The directory of this executable: helpers and libraries live there. */
static inline const char *lt_exe_dir(void)
{
	static char dir[PATH_MAX];
	ssize_t n;
	char *d;

	if (!dir[0]) {
		n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
		if (n < 0)
			return ".";
		dir[n] = 0;
		d = dirname(dir);
		memmove(dir, d, strlen(d) + 1);
	}
	return dir;
}

/*
 * Run @prog (relative to lt_exe_dir() unless absolute) with @argv and the
 * extra environment "NAME=value" strings of @env (NULL-terminated); its
 * output goes to @out (size @outsz), NUL-terminated. Returns its exit
 * status, 128 + signal, or -1.
 */
static inline int lt_run(const char *prog, char *const argv[],
			 const char *const env[], char *out, size_t outsz)
{
	char path[2 * PATH_MAX];
	int p[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	if (prog[0] == '/')
		snprintf(path, sizeof(path), "%s", prog);
	else
		snprintf(path, sizeof(path), "%s/%s", lt_exe_dir(), prog);
	if (pipe(p))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		for (; env && *env; env++)
			putenv((char *)*env);
		execv(path, argv);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		char sink[256];

		/* Past @outsz the output is read and dropped: never block it. */
		if (got + 1 < outsz)
			n = read(p[0], out + got, outsz - 1 - got);
		else
			n = read(p[0], sink, sizeof(sink));
		if (n <= 0)
			break;
		if (got + 1 < outsz)
			got += (size_t)n;
	}
	out[got] = 0;
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

#endif /* LIB_TEST_H */
