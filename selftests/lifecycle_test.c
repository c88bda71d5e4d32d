// SPDX-License-Identifier: GPL-2.0
/*
 * Lifetime: what a request holds, what closing a context and exiting do,
 * the limits, priorities, and loading and unloading the module.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "aiofsync_util.h"
#include "kselftest_harness.h"

#define LEN	(16 * 1024)

FIXTURE(life)
{
	int dev;
	int a;
	struct afs_stall stall;
	long long max_active, max_ctx, max_all;
};

FIXTURE_SETUP(life)
{
	self->dev = afs_open();
	ASSERT_LE(0, self->dev);
	self->a = afs_tmpfile("a", O_RDWR);
	ASSERT_LE(0, self->a);
	ASSERT_EQ(0, afs_stall_init(&self->stall, LEN));
	self->max_active = afs_param("max_ctx_active");
	self->max_ctx = afs_param("max_ctx_requests");
	self->max_all = afs_param("max_requests");
	ASSERT_LT(0, self->max_active);
}

FIXTURE_TEARDOWN(life)
{
	afs_set_param("max_ctx_active", self->max_active);
	afs_set_param("max_ctx_requests", self->max_ctx);
	afs_set_param("max_requests", self->max_all);
	afs_stall_destroy(&self->stall);
	if (self->dev >= 0)
		close(self->dev);
	close(self->a);
}

/* Wait up to 10 s for counter @name to reach @want. */
static int stat_reaches(const char *name, long long want)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (afs_stat(name) == want)
			return 0;
		usleep(10000);
	}
	return -1;
}

/* The request holds its own file: closing and reusing the fd is harmless. */
TEST_F(life, fd_closed_and_reused_after_submit)
{
	char path[64], back[LEN];
	struct aiofsync_event ev;
	int fd = self->a, other;

	snprintf(path, sizeof(path), "./aiofsync-%d-a", getpid());
	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(0, close(fd));
	other = afs_tmpfile("b", O_RDWR);
	ASSERT_EQ(fd, other);		/* the number now names another file */
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'r'));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(LEN, ev.res);

	EXPECT_EQ(0, lseek(other, 0, SEEK_END));	/* b untouched */
	self->a = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->a);
	ASSERT_EQ(LEN, pread(self->a, back, LEN, 0));
	EXPECT_EQ('r', back[LEN - 1]);
	close(other);
}

struct closer {
	int dev;
	int done;
};

static void *close_ctx(void *arg)
{
	struct closer *c = arg;

	close(c->dev);
	__atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * Closing a context cancels what has not started at once, and waits for what
 * is running before it returns.
 */
TEST_F(life, close_cancels_queued_and_waits_for_running)
{
	struct aiofsync_req f = afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 2);
	long long cancelled = afs_stat("cancelled");
	long long completed = afs_stat("completed");
	struct closer c;
	pthread_t t;

	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(1, afs_submit(self->dev, &f, 1));
	c.dev = self->dev;
	c.done = 0;
	self->dev = -1;
	ASSERT_EQ(0, pthread_create(&t, NULL, close_ctx, &c));
	ASSERT_EQ(0, stat_reaches("cancelled", cancelled + 1));
	usleep(100000);
	/* close() is still waiting for the stalled write. */
	EXPECT_EQ(0, __atomic_load_n(&c.done, __ATOMIC_SEQ_CST));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'c'));
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(1, c.done);
	EXPECT_EQ(completed + 2, afs_stat("completed"));
}

/* A process that exits with requests unreaped leaves nothing behind. */
TEST_F(life, exit_with_requests_in_flight)
{
	long long unreaped = afs_stat("unreaped");
	pid_t pid = fork();
	int status;

	ASSERT_LE(0, pid);
	if (pid == 0) {
		int dev = afs_open(), i;
		char data[512] = { 0 };
		struct aiofsync_req reqs[2];

		for (i = 0; i < 500; i++) {
			reqs[0] = afs_req(AIOFSYNC_OP_WRITE, self->a, i * 512,
					  sizeof(data), data, i);
			reqs[1] = afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, i);
			if (afs_submit(dev, reqs, 2) != 2)
				_exit(1);
		}
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(0, status);
	/* An exiting process does not wait: what ran finishes on its own. */
	EXPECT_EQ(0, stat_reaches("in_flight", 0));
	EXPECT_EQ(0, stat_reaches("unreaped", unreaped));
}

/*
 * kill -9 in the middle of submitting thousands of requests. A write of
 * ours, stalled, holds every sync of the file behind it (syncs wait for
 * the writes to their inode submitted before them, from any context): the
 * child's stay in flight, however slow this process is to see that the
 * device has accepted 10,000 of them, until it is killed, and the child
 * goes on submitting until then. Our write goes on after.
 */
TEST_F(life, kill_9_with_thousands_in_flight)
{
	long long unreaped = afs_stat("unreaped"), in_flight;
	struct aiofsync_event ev;
	int sync_pipe[2], status;
	ssize_t told;
	pid_t pid;
	char c;

	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(0, pipe(sync_pipe));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int dev = afs_open(), i, k, n = 0, accepted = 0, said = 0;
		struct aiofsync_req reqs[64];
		static char data[4096];

		close(sync_pipe[0]);
		if (dev < 0)
			_exit(1);
		for (;;) {
			for (i = 0; i < 64; i += 2, n++) {
				reqs[i] = afs_req(AIOFSYNC_OP_WRITE, self->a,
						  (n % 256) * 4096, 4096, data, n);
				reqs[i + 1] = afs_req(AIOFSYNC_OP_FDATASYNC,
						      self->a, 0, 0, NULL, n);
			}
			k = afs_submit(dev, reqs, 64);
			if (k > 0)
				accepted += k;
			else
				usleep(1000);
			if (accepted >= 10000 && !said++ &&
			    write(sync_pipe[1], "x", 1) != 1)
				_exit(1);
		}
	}
	/* Its end of the pipe closed here too: a child that exits is EOF. */
	close(sync_pipe[1]);
	told = read(sync_pipe[0], &c, 1);
	in_flight = afs_stat("in_flight");
	/* Killed whatever happened, never left submitting. */
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	close(sync_pipe[0]);
	ASSERT_EQ(1, told) TH_LOG("the child exited with status %#x", status);
	/* Its 5,000 syncs or more, held, and our write. */
	EXPECT_LT(5000, in_flight);
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'k'));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 20000 * AFS_MS));
	EXPECT_EQ(LEN, ev.res);
	EXPECT_EQ(0, stat_reaches("in_flight", 0));
	EXPECT_EQ(0, stat_reaches("unreaped", unreaped));
}

TEST_F(life, ctx_limit_eagain)
{
	struct aiofsync_req reqs[6];
	struct aiofsync_event ev[6];
	int i;

	for (i = 0; i < 6; i++)
		reqs[i] = afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, i);
	ASSERT_EQ(0, afs_set_param("max_ctx_requests", 4));
	/* Completed but unreaped requests still count. */
	EXPECT_EQ(4, afs_submit(self->dev, reqs, 6));
	EXPECT_EQ(-1, afs_submit(self->dev, reqs, 1));
	EXPECT_EQ(EAGAIN, errno);
	ASSERT_EQ(4, afs_reap(self->dev, ev, 4, 6, 5000 * AFS_MS));
	EXPECT_EQ(2, afs_submit(self->dev, reqs, 2));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 6, 5000 * AFS_MS));
}

TEST_F(life, global_limit_eagain)
{
	struct aiofsync_req f = afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 1);
	long long held = afs_stat("unreaped");
	int dev2 = afs_open();
	struct aiofsync_event ev;

	ASSERT_LE(0, dev2);
	ASSERT_EQ(0, afs_set_param("max_requests", held + 2));
	EXPECT_EQ(1, afs_submit(self->dev, &f, 1));
	EXPECT_EQ(1, afs_submit(dev2, &f, 1));
	EXPECT_EQ(-1, afs_submit(dev2, &f, 1));
	EXPECT_EQ(EAGAIN, errno);
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(1, afs_submit(dev2, &f, 1));
	close(dev2);
}

/* A buffer unmapped before its write runs gives -EFAULT, nothing worse. */
TEST_F(life, buffer_unmapped_before_write_runs)
{
	char *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct aiofsync_req w = afs_req(AIOFSYNC_OP_WRITE, self->a, LEN, 4096,
					buf, 2);
	struct aiofsync_event ev[2];

	ASSERT_NE(MAP_FAILED, buf);
	memset(buf, 'u', 4096);
	ASSERT_EQ(0, afs_set_param("max_ctx_active", 1));
	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(1, afs_submit(self->dev, &w, 1));
	ASSERT_EQ(0, munmap(buf, 4096));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'q'));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 2, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(2, ev[1].user_tag);
	EXPECT_EQ(-EFAULT, ev[1].res);
}

/* Among writes waiting to start, a lower prio value starts first. */
TEST_F(life, priority_orders_waiting_writes)
{
	char data[4096];
	struct aiofsync_req reqs[3] = {
		afs_req(AIOFSYNC_OP_WRITE, self->a, LEN, 4096, data, 2),
		afs_req(AIOFSYNC_OP_WRITE, self->a, LEN, 4096, data, 3),
		afs_req(AIOFSYNC_OP_WRITE, self->a, LEN, 4096, data, 4),
	};
	struct aiofsync_event ev[4];

	reqs[0].prio = 9;
	reqs[1].prio = AIOFSYNC_PRIO_MAX;
	reqs[2].prio = 0;
	memset(data, 'p', sizeof(data));
	ASSERT_EQ(0, afs_set_param("max_ctx_active", 1));
	ASSERT_EQ(0, afs_stall_write(&self->stall, self->dev, self->a, 1));
	ASSERT_EQ(3, afs_submit(self->dev, reqs, 3));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'o'));
	ASSERT_EQ(4, afs_reap(self->dev, ev, 4, 4, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(4, ev[1].user_tag);
	EXPECT_EQ(2, ev[2].user_tag);
	EXPECT_EQ(3, ev[3].user_tag);
}

/* An unprivileged user may open the device, and no more than its fds allow. */
TEST_F(life, unprivileged_user)
{
	pid_t pid = fork();
	int status;

	ASSERT_LE(0, pid);
	if (pid == 0) {
		int ro = afs_tmpfile("ro", O_RDONLY), dev;
		struct aiofsync_req r;

		if (ro < 0 || setgid(65534) || setuid(65534))
			_exit(2);
		dev = afs_open();
		if (dev < 0)
			_exit(3);
		r = afs_req(AIOFSYNC_OP_FSYNC, ro, 0, 0, NULL, 1);
		if (afs_submit(dev, &r, 1) != -1 || errno != EBADF)
			_exit(4);
		r = afs_req(AIOFSYNC_OP_WRITE, ro, 0, 1, "x", 1);
		if (afs_submit(dev, &r, 1) != -1 || errno != EBADF)
			_exit(5);
		/* Nor can it change the limits. */
		if (afs_set_param("max_requests", 1) == 0)
			_exit(6);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	/* 0 only for an exit with 0: a child killed by a signal is not. */
	EXPECT_EQ(0, status) TH_LOG("the child ended with status %#x", status);
}

/* While a context is open the module cannot be removed. */
TEST_F(life, rmmod_refused_while_open)
{
	EXPECT_EQ(-1, syscall(__NR_delete_module, "aiofsync", O_NONBLOCK));
	EXPECT_TRUE(errno == EWOULDBLOCK || errno == EBUSY);
	EXPECT_EQ(0, access(AIOFSYNC_DEVICE, F_OK));
}

TEST_HARNESS_MAIN
