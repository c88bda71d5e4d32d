// SPDX-License-Identifier: GPL-2.0
/*
 * Reproducer: a process killed while one of its WRITEs is running, its
 * buffer in a range registered with the process's own userfaultfd, never
 * finishes exiting when the context's release runs before the
 * userfaultfd's.
 *
 * The worker copies the buffer in the submitter's address space and blocks
 * in handle_userfault() until someone resolves the fault. The process is
 * dying: the only one who could is the userfaultfd's release, which wakes
 * such faults (they then fail). But at exit the files are released in
 * reverse order of their descriptors (task_work, last in first out), and
 * aiofsync_ctx_close() waits, uninterruptibly and without limit, for the
 * running request: if the context's descriptor is the higher one, the
 * userfaultfd is never released, and the process stays in D state forever
 * (the hung-task detector fires after 120 s).
 *
 * ctx_fd_below_uffd passes; ctx_fd_above_uffd shows the bug: the child
 * is not reaped within 15 s of SIGKILL. Nothing can release it afterwards:
 * run this alone in a throwaway VM (stress/Makefile: make repro).
 */
#include <signal.h>
#include <sys/wait.h>

#include "../../selftests/aiofsync_util.h"
#include "kselftest_harness.h"

#define WAIT_MS	15000

/* In a child: submit a WRITE that blocks on the child's own uffd, then die. */
static int killed_while_stalled(int ctx_above_uffd, struct __test_metadata *_metadata)
{
	int ready[2], waited;
	char c;
	pid_t pid;

	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct afs_stall s;
		int dev = -1, f;

		close(ready[0]);
		if (!ctx_above_uffd)
			dev = afs_open();
		f = afs_tmpfile("stall", O_RDWR);
		if (f < 0 || afs_stall_init(&s, 4096))
			_exit(2);
		if (ctx_above_uffd)
			dev = afs_open();
		if (dev < 0 || (dev > s.uffd) != ctx_above_uffd)
			_exit(3);
		/* The write is running, blocked on the fault. */
		if (afs_stall_write(&s, dev, f, 1))
			_exit(4);
		if (write(ready[1], "r", 1) != 1)
			_exit(5);
		pause();
		_exit(0);
	}
	close(ready[1]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	close(ready[0]);
	ASSERT_EQ(0, kill(pid, SIGKILL));
	for (waited = 0; waited < WAIT_MS; waited += 50) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			EXPECT_TRUE(WIFSIGNALED(st));
			return waited;
		}
		usleep(50 * 1000);
	}
	TH_LOG("pid %d not reaped %d ms after SIGKILL: stuck in exit", pid, WAIT_MS);
	return -1;
}

TEST(ctx_fd_below_uffd)
{
	EXPECT_LE(0, killed_while_stalled(0, _metadata));
}

TEST(ctx_fd_above_uffd)
{
	EXPECT_LE(0, killed_while_stalled(1, _metadata));
}

TEST_HARNESS_MAIN
