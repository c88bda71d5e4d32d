// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Descriptors the device does not serve work as with glibc: pipes, sockets,
 * terminals (the device refuses READ/WRITE on them with ESPIPE, and syncs
 * of files without fsync with EINVAL), and O_APPEND files (appends must land
 * in call order). The library's helper threads run those requests, one
 * descriptor's in submission order, several descriptors in parallel.
 */
#include <pthread.h>
#include <sched.h>
#include <termios.h>
#include <sys/socket.h>

#include "lib_test.h"
#include "../aiofsync.h"
#include "kselftest_harness.h"

FIXTURE(fb)
{
	int p[2];
	char buf[256], back[256];
	struct aiocb w, r;
};

FIXTURE_SETUP(fb)
{
	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	ASSERT_EQ(0, pipe2(self->p, O_CLOEXEC));
	memset(self->buf, 'p', sizeof(self->buf));
	lt_prep(&self->w, self->p[1], self->buf, sizeof(self->buf), 0);
	lt_prep(&self->r, self->p[0], self->back, sizeof(self->back), 0);
}

FIXTURE_TEARDOWN(fb)
{
	close(self->p[0]);
	close(self->p[1]);
}

TEST_F(fb, pipe_write_then_read)
{
	ASSERT_EQ(0, aio_write(&self->w));
	EXPECT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(sizeof(self->buf), aio_return(&self->w));
	ASSERT_EQ(0, aio_read(&self->r));
	EXPECT_EQ(0, lt_wait(&self->r));
	EXPECT_EQ(sizeof(self->back), aio_return(&self->r));
	EXPECT_EQ(0, memcmp(self->buf, self->back, sizeof(self->buf)));
}

/* A read queued before the data: it waits on a helper, then completes. */
TEST_F(fb, pipe_read_before_write)
{
	ASSERT_EQ(0, aio_read(&self->r));
	EXPECT_TRUE(lt_still_in_progress(&self->r, 100));
	ASSERT_EQ(sizeof(self->buf), write(self->p[1], self->buf, sizeof(self->buf)));
	EXPECT_EQ(0, lt_wait(&self->r));
	EXPECT_EQ(sizeof(self->buf), aio_return(&self->r));
}

/* One descriptor's requests run in submission order. */
TEST_F(fb, pipe_fifo_order)
{
	struct aiocb cbs[16];
	char chunk[16][32], got[16 * 32];
	int i;

	for (i = 0; i < 16; i++) {
		memset(chunk[i], 'A' + i, sizeof(chunk[i]));
		lt_prep(&cbs[i], self->p[1], chunk[i], sizeof(chunk[i]), 0);
		ASSERT_EQ(0, aio_write(&cbs[i]));
	}
	for (i = 0; i < 16; i++)
		EXPECT_EQ(0, lt_wait(&cbs[i]));
	ASSERT_EQ(sizeof(got), read(self->p[0], got, sizeof(got)));
	for (i = 0; i < 16; i++)
		EXPECT_EQ('A' + i, got[i * 32]);
}

/*
 * aio_fsync() on a pipe: accepted, and fails later with EINVAL, as glibc's
 * does (fsync(2) on a pipe) - after the writes queued before it.
 */
TEST_F(fb, pipe_fsync_after_writes)
{
	struct aiocb s;

	ASSERT_EQ(0, aio_write(&self->w));
	lt_prep(&s, self->p[1], NULL, 0, 0);
	ASSERT_EQ(0, aio_fsync(O_SYNC, &s));
	EXPECT_EQ(EINVAL, lt_wait(&s));
	EXPECT_EQ(0, aio_error(&self->w));
}

TEST_F(fb, socketpair)
{
	int sv[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	self->w.aio_fildes = sv[0];
	self->r.aio_fildes = sv[1];
	ASSERT_EQ(0, aio_read(&self->r));
	ASSERT_EQ(0, aio_write(&self->w));
	EXPECT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(0, lt_wait(&self->r));
	EXPECT_EQ(sizeof(self->buf), aio_return(&self->r));
	EXPECT_EQ(0, memcmp(self->buf, self->back, sizeof(self->buf)));
	close(sv[0]);
	close(sv[1]);
}

TEST_F(fb, terminal)
{
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC), slave;
	struct termios raw;

	ASSERT_LE(0, master);
	ASSERT_EQ(0, grantpt(master));
	ASSERT_EQ(0, unlockpt(master));
	slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
	ASSERT_LE(0, slave);
	ASSERT_EQ(0, tcgetattr(slave, &raw));
	cfmakeraw(&raw);
	ASSERT_EQ(0, tcsetattr(slave, TCSANOW, &raw));
	self->w.aio_fildes = slave;
	self->w.aio_nbytes = 16;
	ASSERT_EQ(0, aio_write(&self->w));
	EXPECT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(16, aio_return(&self->w));
	EXPECT_EQ(16, read(master, self->back, 16));
	close(slave);
	close(master);
}

/* A helper blocked on one descriptor does not hold up another. */
TEST_F(fb, blocked_descriptor_does_not_block_others)
{
	int q[2];
	struct aiocb w2;

	ASSERT_EQ(0, pipe2(q, O_CLOEXEC));
	ASSERT_EQ(0, aio_read(&self->r));	/* blocks: the pipe is empty */
	lt_prep(&w2, q[1], self->buf, 10, 0);
	ASSERT_EQ(0, aio_write(&w2));
	EXPECT_EQ(0, lt_wait(&w2));
	EXPECT_EQ(EINPROGRESS, aio_error(&self->r));
	ASSERT_EQ(1, write(self->p[1], "x", 1));
	EXPECT_EQ(0, lt_wait(&self->r));
	EXPECT_EQ(1, aio_return(&self->r));
	close(q[0]);
	close(q[1]);
}

/* Whether every thread of ours but the caller is asleep ('S' in its stat). */
static bool others_asleep(void)
{
	char path[300], stat[512], *state;
	bool asleep = true;
	struct dirent *d;
	ssize_t n;
	DIR *dir = opendir("/proc/self/task");
	int t;

	while (dir && asleep && (d = readdir(dir))) {
		if (d->d_name[0] == '.' || atoi(d->d_name) == gettid())
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", d->d_name);
		t = open(path, O_RDONLY | O_CLOEXEC);
		if (t < 0)
			continue;	/* it has just exited */
		n = read(t, stat, sizeof(stat) - 1);
		close(t);
		stat[n < 0 ? 0 : n] = 0;
		state = strrchr(stat, ')');
		asleep = !state || state[1] != ' ' || state[2] == 'S';
	}
	if (dir)
		closedir(dir);
	return asleep;
}

/*
 * Two helper requests queued together while one helper is idle - a read of
 * an empty pipe, then the write that feeds it - both need a thread. The
 * idle helper is woken once, and counts as idle until it runs, so the
 * second request's wake-up goes to it too: the helper that takes the read
 * must see to the write (wake another, or start one), as glibc's does, or
 * the read blocks for ever with the write queued behind nobody. The helper
 * runs at SCHED_IDLE on this thread's CPU (it inherits both), so that it
 * cannot take the read before lio_listio() has queued the write too.
 */
TEST_F(fb, queued_together_with_one_idle_helper)
{
	struct aiocb *list[2] = { &self->r, &self->w };
	const struct aiocb *wait[1] = { &self->r };
	struct timespec ts = { 2, 0 };
	struct sched_param prio = { 0 };
	struct aiocb first;
	cpu_set_t cpu;
	int q[2], i;

	/* The context and its reaper first, at the usual policy. */
	ASSERT_EQ(0, aiofsync_available());
	CPU_ZERO(&cpu);
	CPU_SET(sched_getcpu(), &cpu);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpu), &cpu));
	ASSERT_EQ(0, pipe2(q, O_CLOEXEC));
	/* One helper, started by this request, and then idle. */
	ASSERT_EQ(0, sched_setscheduler(0, SCHED_IDLE, &prio));
	lt_prep(&first, q[1], self->buf, 1, 0);
	ASSERT_EQ(0, aio_write(&first));
	ASSERT_EQ(0, lt_wait(&first));
	ASSERT_EQ(0, sched_setscheduler(0, SCHED_OTHER, &prio));
	for (i = 0; i < LT_WAIT_SEC * 1000 && !others_asleep(); i++)
		usleep(1000);
	ASSERT_TRUE(others_asleep());

	self->r.aio_nbytes = 1;
	self->r.aio_lio_opcode = LIO_READ;
	self->w.aio_nbytes = 1;
	self->w.aio_lio_opcode = LIO_WRITE;
	ASSERT_EQ(0, lio_listio(LIO_NOWAIT, list, 2, NULL));
	while (aio_error(&self->r) == EINPROGRESS &&
	       !(aio_suspend(wait, 1, &ts) && errno == EAGAIN))
		;
	if (aio_error(&self->r) == EINPROGRESS) {
		/* Feed the read, and let the test end. */
		EXPECT_EQ(1, write(self->p[1], "x", 1));
		ASSERT_TRUE(false) TH_LOG("the write had no helper to run it");
	}
	EXPECT_EQ(1, aio_return(&self->r));
	EXPECT_EQ(0, lt_wait(&self->w));
	EXPECT_EQ(1, aio_return(&self->w));
	close(q[0]);
	close(q[1]);
}

/*
 * O_APPEND: appends land in the order of the calls. With @open_first, the
 * device context is open before the first append, so every append is
 * refused by the device (AIOFSYNC_REQ_NO_APPEND) rather than seen by
 * fcntl(), and must still reach the helpers in order.
 */
static void appends_in_call_order(struct __test_metadata *_metadata,
				  bool open_first)
{
	int fd = lt_tmpfile("append", O_RDWR | O_APPEND);
	int other = lt_tmpfile("append-other", O_RDWR);
	struct aiocb cbs[32], s;
	char chunk[32][64], c;
	int i;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, other);
	if (open_first) {
		lt_prep(&s, other, NULL, 0, 0);
		ASSERT_EQ(0, aio_fsync(O_SYNC, &s));
		ASSERT_EQ(0, lt_wait(&s));
	}
	for (i = 0; i < 32; i++) {
		memset(chunk[i], ' ' + i, sizeof(chunk[i]));
		lt_prep(&cbs[i], fd, chunk[i], sizeof(chunk[i]), 0);
		ASSERT_EQ(0, aio_write(&cbs[i]));
	}
	lt_prep(&s, fd, NULL, 0, 0);
	ASSERT_EQ(0, aio_fsync(O_SYNC, &s));
	EXPECT_EQ(0, lt_wait(&s));
	for (i = 0; i < 32; i++) {
		EXPECT_EQ(0, aio_error(&cbs[i]));
		ASSERT_EQ(1, pread(fd, &c, 1, (off_t)i * 64));
		EXPECT_EQ(' ' + i, c);
	}
	close(other);
	close(fd);
}

TEST_F(fb, append_in_call_order)
{
	appends_in_call_order(_metadata, false);
}

TEST_F(fb, append_in_call_order_context_open)
{
	appends_in_call_order(_metadata, true);
}

/*
 * Start a write @w of 4096 bytes through @wfd and hold it in flight (its
 * buffer, in @stall, faults until released), then queue the sync @s with
 * @op through @sfd.
 */
static void hold_write_queue_sync(struct __test_metadata *_metadata,
				  struct afs_stall *stall, struct aiocb *w,
				  int wfd, struct aiocb *s, int sfd, int op)
{
	ASSERT_EQ(0, afs_stall_init(stall, 4096));
	lt_prep(w, wfd, stall->addr, 4096, 0);
	ASSERT_EQ(0, aio_write(w));
	ASSERT_EQ(0, afs_stall_wait_fault(stall, LT_WAIT_SEC * 1000));
	lt_prep(s, sfd, NULL, 0, 0);
	ASSERT_EQ(0, aio_fsync(op, s));
}

/*
 * Hold a write through @wfd in flight, sync with @op through @sfd, another
 * descriptor of the same file: the sync must stay in progress until the
 * write is let go, and then complete.
 */
static void sync_waits_for_held_write(struct __test_metadata *_metadata,
				      int wfd, int sfd, int op)
{
	struct afs_stall stall;
	struct aiocb w, s;
	char c;

	hold_write_queue_sync(_metadata, &stall, &w, wfd, &s, sfd, op);
	EXPECT_TRUE(lt_still_in_progress(&s, 300))
		TH_LOG("the sync completed before the write it covers");
	ASSERT_EQ(0, afs_stall_release(&stall, 'h'));
	EXPECT_EQ(0, lt_wait(&s));
	/* Done as soon as the sync that covers it is, as with glibc. */
	EXPECT_EQ(0, aio_error(&w));
	EXPECT_EQ(0, lt_wait(&w));
	EXPECT_EQ(4096, aio_return(&w));
	ASSERT_EQ(1, pread(sfd, &c, 1, 0));
	EXPECT_EQ('h', c);
	afs_stall_destroy(&stall);
}

/*
 * An aio_fsync() on another descriptor of the file covers an O_APPEND write
 * a helper has not finished.
 */
TEST_F(fb, sync_covers_unfinished_append_of_other_descriptor)
{
	int a = lt_tmpfile("append-cover", O_RDWR | O_APPEND);
	int b = lt_reopen(a, O_RDWR);

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	sync_waits_for_held_write(_metadata, a, b, O_SYNC);
	close(b);
	close(a);
}

/*
 * An aio_fsync() on an O_APPEND descriptor (run by a helper) covers a
 * device write on another descriptor of the file queued before it.
 */
TEST_F(fb, append_sync_covers_device_write_of_other_descriptor)
{
	int a = lt_tmpfile("append-dev", O_RDWR | O_APPEND);
	int b = lt_reopen(a, O_RDWR);

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	sync_waits_for_held_write(_metadata, b, a, O_DSYNC);
	close(b);
	close(a);
}

/*
 * aio_cancel() of a descriptor whose sync waits for another descriptor's
 * append (its queue parked), with a write queued behind the sync: both are
 * cancelled, and the held append then completes.
 */
TEST_F(fb, cancel_sync_waiting_for_append)
{
	int a = lt_tmpfile("append-cancel", O_RDWR | O_APPEND);
	int b = lt_reopen(a, O_RDWR | O_APPEND);
	struct afs_stall stall;
	struct aiocb w, s, w2;
	char x = 'x';

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	hold_write_queue_sync(_metadata, &stall, &w, a, &s, b, O_SYNC);
	lt_prep(&w2, b, &x, 1, 0);
	ASSERT_EQ(0, aio_write(&w2));
	EXPECT_TRUE(lt_still_in_progress(&s, 100));
	EXPECT_EQ(AIO_CANCELED, aio_cancel(b, NULL));
	EXPECT_EQ(ECANCELED, lt_wait(&s));
	EXPECT_EQ(ECANCELED, lt_wait(&w2));
	ASSERT_EQ(0, afs_stall_release(&stall, 'k'));
	EXPECT_EQ(0, lt_wait(&w));
	EXPECT_EQ(4096, aio_return(&w));
	afs_stall_destroy(&stall);
	close(b);
	close(a);
}

/* A queued helper request is cancelled; the running one is not. */
TEST_F(fb, cancel)
{
	struct aiocb r2;
	char more[8];

	ASSERT_EQ(0, aio_read(&self->r));
	ASSERT_TRUE(lt_wait_blocked_in_read(self->p[0]));
	lt_prep(&r2, self->p[0], more, sizeof(more), 0);
	ASSERT_EQ(0, aio_read(&r2));
	EXPECT_EQ(AIO_CANCELED, aio_cancel(self->p[0], &r2));
	EXPECT_EQ(ECANCELED, aio_error(&r2));
	EXPECT_EQ(AIO_NOTCANCELED, aio_cancel(self->p[0], &self->r));
	EXPECT_EQ(AIO_NOTCANCELED, aio_cancel(self->p[0], NULL));
	ASSERT_EQ(1, write(self->p[1], "y", 1));
	EXPECT_EQ(0, lt_wait(&self->r));
	EXPECT_EQ(AIO_ALLDONE, aio_cancel(self->p[0], NULL));
}

/* aio_init(): one helper thread, so a second descriptor waits its turn. */
TEST_F(fb, aio_init_limits_helpers)
{
	struct aioinit init = { .aio_threads = 1, .aio_idle_time = 1 };
	int q[2];
	struct aiocb w2;

	aio_init(&init);
	ASSERT_EQ(0, pipe2(q, O_CLOEXEC));
	ASSERT_EQ(0, aio_read(&self->r));	/* takes the only helper */
	ASSERT_TRUE(lt_wait_blocked_in_read(self->p[0]));
	lt_prep(&w2, q[1], self->buf, 10, 0);
	ASSERT_EQ(0, aio_write(&w2));
	EXPECT_TRUE(lt_still_in_progress(&w2, 200));
	ASSERT_EQ(1, write(self->p[1], "z", 1));
	EXPECT_EQ(0, lt_wait(&self->r));
	EXPECT_EQ(0, lt_wait(&w2));
	close(q[0]);
	close(q[1]);
}

/* Signals and callbacks as for device requests. */
TEST_F(fb, notification)
{
	struct timespec ts = { LT_WAIT_SEC, 0 };
	siginfo_t info;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 3);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	self->w.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
	self->w.aio_sigevent.sigev_signo = SIGRTMIN + 3;
	self->w.aio_sigevent.sigev_value.sival_int = 5;
	ASSERT_EQ(0, aio_write(&self->w));
	ASSERT_EQ(SIGRTMIN + 3, sigtimedwait(&set, &info, &ts));
	EXPECT_EQ(SI_ASYNCIO, info.si_code);
	EXPECT_EQ(5, info.si_value.sival_int);
	EXPECT_EQ(0, aio_error(&self->w));
}

TEST_HARNESS_MAIN
