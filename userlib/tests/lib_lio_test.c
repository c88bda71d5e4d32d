// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * lio_listio(): LIO_WAIT and LIO_NOWAIT, the list's notification and the
 * elements' own (glibc >= 2.4; the GLIBC_2.2.5 version has none), LIO_NOP
 * and NULL elements, elements that fail, and a signal during LIO_WAIT.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>

#include "lib_test.h"
#include "../aiofsync.h"
#include "kselftest_harness.h"

#define N 8
#define BS 1024

FIXTURE(lio)
{
	int fd;
	char buf[N][BS];
	struct aiocb cb[N];
	struct aiocb *list[N];
};

FIXTURE_SETUP(lio)
{
	int i;

	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	self->fd = lt_tmpfile("lio", O_RDWR);
	ASSERT_LE(0, self->fd);
	for (i = 0; i < N; i++) {
		memset(self->buf[i], '0' + i, BS);
		lt_prep(&self->cb[i], self->fd, self->buf[i], BS, (off_t)i * BS);
		self->cb[i].aio_lio_opcode = LIO_WRITE;
		self->list[i] = &self->cb[i];
	}
}

FIXTURE_TEARDOWN(lio)
{
	close(self->fd);
}

static void check_file(struct __test_metadata *_metadata, int fd)
{
	char c;
	int i;

	for (i = 0; i < N; i++) {
		ASSERT_EQ(1, pread(fd, &c, 1, (off_t)i * BS + 10));
		EXPECT_EQ('0' + i, c);
	}
}

TEST_F(lio, wait)
{
	int i;

	ASSERT_EQ(0, lio_listio(LIO_WAIT, self->list, N, NULL));
	for (i = 0; i < N; i++) {
		EXPECT_EQ(0, aio_error(&self->cb[i]));
		EXPECT_EQ(BS, aio_return(&self->cb[i]));
	}
	check_file(_metadata, self->fd);
}

TEST_F(lio, wait_reads)
{
	char back[N][BS];
	int i;

	ASSERT_EQ(0, lio_listio(LIO_WAIT, self->list, N, NULL));
	for (i = 0; i < N; i++) {
		self->cb[i].aio_lio_opcode = LIO_READ;
		self->cb[i].aio_buf = back[i];
	}
	ASSERT_EQ(0, lio_listio(LIO_WAIT, self->list, N, NULL));
	for (i = 0; i < N; i++)
		EXPECT_EQ(0, memcmp(back[i], self->buf[i], BS));
}

TEST_F(lio, nop_and_null_ignored)
{
	self->cb[1].aio_lio_opcode = LIO_NOP;
	self->list[2] = NULL;
	ASSERT_EQ(0, lio_listio(LIO_WAIT, self->list, N, NULL));
	EXPECT_EQ(0, aio_error(&self->cb[3]));
	EXPECT_EQ(0, aio_error(&self->cb[1]));	/* never touched: zeroed */
}

TEST_F(lio, empty_list)
{
	EXPECT_EQ(0, lio_listio(LIO_WAIT, self->list, 0, NULL));
	EXPECT_EQ(0, lio_listio(LIO_NOWAIT, self->list, 0, NULL));
}

/* One bad element: EIO for the call, its own error in aio_error(). */
TEST_F(lio, bad_opcode_element)
{
	self->cb[4].aio_lio_opcode = 99;
	EXPECT_EQ(-1, lio_listio(LIO_WAIT, self->list, N, NULL));
	EXPECT_EQ(EIO, errno);
	EXPECT_EQ(EINVAL, aio_error(&self->cb[4]));
	/* LIO_WAIT waited for the others all the same. */
	EXPECT_EQ(0, aio_error(&self->cb[3]));
	EXPECT_EQ(0, aio_error(&self->cb[5]));
}

TEST_F(lio, bad_fd_element_nowait)
{
	self->cb[2].aio_fildes = -1;
	EXPECT_EQ(-1, lio_listio(LIO_NOWAIT, self->list, N, NULL));
	EXPECT_EQ(EIO, errno);
	EXPECT_EQ(EBADF, aio_error(&self->cb[2]));
	EXPECT_EQ(0, lt_wait(&self->cb[7]));
}

/* An element failing while it runs: LIO_WAIT says EIO. */
TEST_F(lio, element_fails_later)
{
	self->cb[6].aio_buf = (void *)-4096L;
	EXPECT_EQ(-1, lio_listio(LIO_WAIT, self->list, N, NULL));
	EXPECT_EQ(EIO, errno);
	EXPECT_EQ(EFAULT, aio_error(&self->cb[6]));
	EXPECT_EQ(0, aio_error(&self->cb[0]));
}

/* LIO_NOWAIT's signal comes once every element is done. */
TEST_F(lio, nowait_signal)
{
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL };
	struct timespec ts = { LT_WAIT_SEC, 0 };
	siginfo_t info;
	sigset_t set;
	int i;

	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sev.sigev_signo = SIGRTMIN;
	sev.sigev_value.sival_int = 31;
	ASSERT_EQ(0, lio_listio(LIO_NOWAIT, self->list, N, &sev));
	ASSERT_EQ(SIGRTMIN, sigtimedwait(&set, &info, &ts));
	EXPECT_EQ(SI_ASYNCIO, info.si_code);
	EXPECT_EQ(31, info.si_value.sival_int);
	for (i = 0; i < N; i++)
		EXPECT_EQ(0, aio_error(&self->cb[i]));
}

static sem_t group_done;
static atomic_int element_calls;

static void group_cb(union sigval v)
{
	(void)v;
	sem_post(&group_done);
}

static void element_cb(union sigval v)
{
	(void)v;
	atomic_fetch_add(&element_calls, 1);
}

static void with_element_callbacks(FIXTURE_DATA(lio) *self)
{
	int i;

	for (i = 0; i < N; i++) {
		self->cb[i].aio_sigevent.sigev_notify = SIGEV_CALLBACK;
		self->cb[i].aio_sigevent.sigev_func = element_cb;
	}
}

/*
 * The list's callback and the elements' own: callbacks run one at a time,
 * in completion order, so the elements' come before the list's.
 */
TEST_F(lio, nowait_callbacks)
{
	struct sigevent sev = { .sigev_notify = SIGEV_CALLBACK };

	sem_init(&group_done, 0, 0);
	sev.sigev_notify_function = group_cb;
	with_element_callbacks(self);
	ASSERT_EQ(0, lio_listio(LIO_NOWAIT, self->list, N, &sev));
	ASSERT_EQ(0, lt_sem_wait(&group_done));
	EXPECT_EQ(N, atomic_load(&element_calls));
	check_file(_metadata, self->fd);
}

/* glibc before 2.4 (lio_listio@GLIBC_2.2.5): no event per element. */
TEST_F(lio, old_version_no_element_events)
{
	struct sigevent sev = { .sigev_notify = SIGEV_CALLBACK };
	int (*old)(int, struct aiocb *const *, int, struct sigevent *);
	void *lib = dlopen("libaiofsync.so.1", RTLD_NOW | RTLD_NOLOAD);

	ASSERT_NE(NULL, lib);
	old = (__typeof__(old))dlvsym(lib, "lio_listio", "GLIBC_2.2.5");
	ASSERT_NE(NULL, old);
	EXPECT_NE((void *)old, dlvsym(lib, "lio_listio", "GLIBC_2.4"));
	sem_init(&group_done, 0, 0);
	sev.sigev_notify_function = group_cb;
	with_element_callbacks(self);
	ASSERT_EQ(0, old(LIO_NOWAIT, self->list, N, &sev));
	ASSERT_EQ(0, lt_sem_wait(&group_done));
	usleep(100000);
	EXPECT_EQ(0, atomic_load(&element_calls));
	check_file(_metadata, self->fd);
}

/*
 * A signal ends LIO_WAIT with EINTR; the requests go on. The first element
 * stalls, so only a signal ends the wait: one every 100 ms until the call
 * returns, as one that came before the wait started would be lost.
 */
TEST_F(lio, wait_eintr)
{
	struct afs_signaler sig;
	struct afs_stall stall;
	int ret, err;

	ASSERT_EQ(0, lt_catch(SIGUSR1));
	ASSERT_EQ(0, afs_stall_init(&stall, 4096));
	self->cb[0].aio_buf = stall.addr;
	ASSERT_EQ(0, afs_signaler_start(&sig, SIGUSR1, 100));
	ret = lio_listio(LIO_WAIT, self->list, N, NULL);
	err = errno;
	EXPECT_LE(1, afs_signaler_stop(&sig));
	EXPECT_EQ(-1, ret);
	EXPECT_EQ(EINTR, err);
	EXPECT_EQ(EINPROGRESS, aio_error(&self->cb[0]));
	ASSERT_EQ(0, afs_stall_release(&stall, 'x'));
	EXPECT_EQ(0, lt_wait(&self->cb[0]));
	afs_stall_destroy(&stall);
}

TEST_F(lio, largefile_name)
{
	ASSERT_EQ(0, lio_listio64(LIO_WAIT, (struct aiocb64 **)self->list, N,
				  NULL));
	check_file(_metadata, self->fd);
}

TEST_HARNESS_MAIN
