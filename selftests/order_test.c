// SPDX-License-Identifier: GPL-2.0
/*
 * Ordering and group commit: an fsync waits for the writes to its inode
 * submitted before it, and only for those.
 *
 * The writes held back here are "stalled": their buffer is userfaultfd
 * memory, so the device's worker blocks on the first byte until the test
 * supplies the page. While it is blocked, the test can look at what has, and
 * has not, completed, with no timing involved.
 */
#include <dirent.h>
#include <pthread.h>

#include "dm_util.h"
#include "kselftest_harness.h"

#define LEN	(64 * 1024)

FIXTURE(order)
{
	int dev;
	int a, b;
	struct afs_stall stall;
	struct afs_stall later;	/* only for the tests that stall two writes */
	struct afs_dmfs fs;	/* only for the tests that stall a flush */
	long long saved_defer;	/* flush_defer_us to restore, or -1 */
	long long saved_active;	/* max_ctx_active to restore, or -1 */
	const char *niced;	/* workqueue whose nice to set back to 0 */
};

FIXTURE_SETUP(order)
{
	self->dev = afs_open();
	ASSERT_LE(0, self->dev);
	self->a = afs_tmpfile("a", O_RDWR);
	ASSERT_LE(0, self->a);
	self->b = afs_tmpfile("b", O_RDWR);
	ASSERT_LE(0, self->b);
	ASSERT_EQ(0, afs_stall_init(&self->stall, LEN));
	self->later.uffd = -1;
	self->saved_defer = -1;
	self->saved_active = -1;
	self->niced = NULL;
}

FIXTURE_TEARDOWN(order)
{
	afs_stall_destroy(&self->stall);
	if (self->later.uffd >= 0)
		afs_stall_destroy(&self->later);
	close(self->dev);
	close(self->a);
	close(self->b);
	afs_dmfs_down(&self->fs);
	if (self->saved_defer >= 0)
		afs_set_param("flush_defer_us", self->saved_defer);
	if (self->niced)
		afs_set_wq_nice(self->niced, 0);
	if (self->saved_active >= 0)
		afs_set_param("max_ctx_active", self->saved_active);
}

/* Nothing completes within @ms. */
static int nothing_within(int dev, int ms)
{
	struct aiofsync_event ev;

	return afs_reap(dev, &ev, 1, 1, ms * AFS_MS) == 0;
}

/*
 * The fsync on A completes only after the write to A submitted before it,
 * and its flush starts only then; the fsync on B does not wait for A.
 */
TEST_F(order, fsync_waits_for_earlier_write_same_file_only)
{
	struct aiofsync_req reqs[3] = {
		afs_req(AIOFSYNC_OP_WRITE, self->a, 0, LEN, self->stall.addr, 1),
		afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 2),
		afs_req(AIOFSYNC_OP_FSYNC, self->b, 0, 0, NULL, 3),
	};
	struct aiofsync_event ev[3];
	long long flushes = afs_stat("flushes");
	char buf[LEN];

	ASSERT_EQ(3, afs_submit(self->dev, reqs, 3));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));

	/* The write is blocked: only B's fsync may complete. */
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 3, 5000 * AFS_MS));
	EXPECT_EQ(3, ev[0].user_tag);
	EXPECT_EQ(0, ev[0].res);
	ASSERT_TRUE(nothing_within(self->dev, 200));
	/* ...and A's flush has not started. */
	EXPECT_EQ(flushes + 1, afs_stat("flushes"));

	ASSERT_EQ(0, afs_stall_release(&self->stall, 'x'));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 3, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(LEN, ev[0].res);
	EXPECT_EQ(2, ev[1].user_tag);
	EXPECT_EQ(0, ev[1].res);
	EXPECT_EQ(flushes + 2, afs_stat("flushes"));

	ASSERT_EQ(LEN, pread(self->a, buf, LEN, 0));
	EXPECT_EQ('x', buf[0]);
	EXPECT_EQ('x', buf[LEN - 1]);
}

/* The flush of A runs after the write, so it writes the write's data out. */
TEST_F(order, fsync_covers_earlier_write)
{
	struct aiofsync_req reqs[2] = {
		afs_req(AIOFSYNC_OP_WRITE, self->a, 0, LEN, self->stall.addr, 1),
		afs_req(AIOFSYNC_OP_FDATASYNC, self->a, 0, 0, NULL, 2),
	};
	struct aiofsync_event ev[2];
	long long sectors = afs_disk_stat(self->a, 6);	/* sectors written */

	ASSERT_LE(0, sectors);
	ASSERT_EQ(2, afs_submit(self->dev, reqs, 2));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));
	ASSERT_TRUE(nothing_within(self->dev, 100));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'y'));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 2, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(2, ev[1].user_tag);
	EXPECT_EQ(0, ev[1].res);
	/* By the time the fdatasync completed, the data had reached the disk. */
	EXPECT_LE(sectors + LEN / 512, afs_disk_stat(self->a, 6));
}

/*
 * A write submitted after an fsync does not wait for it. The fsync waits
 * for a stalled O_DIRECT write; a later O_DIRECT write to the same file
 * completes meanwhile. (Direct overwrites of allocated blocks share the
 * inode lock on ext4 and xfs; buffered writes would serialize on it in the
 * filesystem, whatever the device does.)
 */
TEST_F(order, later_write_not_held_back)
{
	int d = afs_tmpfile("direct", O_RDWR | O_DIRECT);
	struct aiofsync_req reqs[3];
	struct aiofsync_event ev[3];
	void *buf;

	ASSERT_LE(0, d);
	ASSERT_EQ(0, posix_memalign(&buf, 4096, LEN));
	memset(buf, 'o', LEN);
	/* Allocated and written: the direct writes below are overwrites. */
	ASSERT_EQ(LEN, pwrite(d, buf, LEN, 0));
	ASSERT_EQ(LEN, pwrite(d, buf, LEN, LEN));
	ASSERT_EQ(0, fsync(d));

	reqs[0] = afs_req(AIOFSYNC_OP_WRITE, d, 0, LEN, self->stall.addr, 1);
	reqs[1] = afs_req(AIOFSYNC_OP_FSYNC, d, 0, 0, NULL, 2);
	reqs[2] = afs_req(AIOFSYNC_OP_WRITE, d, LEN, LEN, buf, 3);
	ASSERT_EQ(2, afs_submit(self->dev, reqs, 2));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));
	ASSERT_EQ(1, afs_submit(self->dev, reqs + 2, 1));

	/* The later write completes while the fsync still waits. */
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 3, 5000 * AFS_MS));
	EXPECT_EQ(3, ev[0].user_tag);
	EXPECT_EQ(LEN, ev[0].res);
	ASSERT_TRUE(nothing_within(self->dev, 200));

	ASSERT_EQ(0, afs_stall_release(&self->stall, 'x'));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 3, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(LEN, ev[0].res);
	EXPECT_EQ(2, ev[1].user_tag);
	EXPECT_EQ(0, ev[1].res);
	free(buf);
	close(d);
}

/*
 * Buffered writes of one file run one after the other on the inode's
 * writer, and a sync made ready while the writer has more writes queued
 * waits for them, to share their flush. A later write that stalls must
 * still not hold the sync back for long: the sync completes while that
 * write is blocked. The first write stalls too, so that the second is
 * queued behind it when it finishes.
 */
TEST_F(order, later_buffered_write_stalled_not_holding_sync)
{
	struct afs_stall *later = &self->later;
	struct aiofsync_req reqs[4] = {
		afs_req(AIOFSYNC_OP_WRITE, self->a, 0, LEN, self->stall.addr, 1),
		afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 2),
		afs_req(AIOFSYNC_OP_WRITE, self->a, LEN, LEN, NULL, 3),
		afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 4),
	};
	struct aiofsync_event ev[4];

	ASSERT_EQ(0, afs_stall_init(later, LEN));
	reqs[2].addr = (uintptr_t)later->addr;
	ASSERT_EQ(4, afs_submit(self->dev, reqs, 4));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));
	ASSERT_TRUE(nothing_within(self->dev, 100));

	/* The first write finishes; the writer moves on to the second. */
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'e'));
	ASSERT_EQ(0, afs_stall_wait_fault(later, 5000));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 4, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(LEN, ev[0].res);
	EXPECT_EQ(2, ev[1].user_tag);
	EXPECT_EQ(0, ev[1].res);
	ASSERT_TRUE(nothing_within(self->dev, 200));

	ASSERT_EQ(0, afs_stall_release(later, 'l'));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 4, 5000 * AFS_MS));
	EXPECT_EQ(3, ev[0].user_tag);
	EXPECT_EQ(LEN, ev[0].res);
	EXPECT_EQ(4, ev[1].user_tag);
	EXPECT_EQ(0, ev[1].res);
}

/*
 * A sync left to the writer (ready, while a later write to the file is
 * queued behind a stalled one) can still be cancelled, and its deadline
 * goes with it. The deadline is set to 10 s so that the cancel cannot
 * come after it: the cancelled event must come at once, the later sync
 * must still complete, and nothing may be left behind (the run checks
 * the kernel log, and kmemleak on the debug kernel).
 */
TEST_F(order, cancel_sync_left_to_writer)
{
	struct afs_stall *later = &self->later;
	struct aiofsync_req reqs[3] = {
		afs_req(AIOFSYNC_OP_WRITE, self->a, 0, LEN, self->stall.addr, 1),
		afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 2),
		afs_req(AIOFSYNC_OP_WRITE, self->a, LEN, LEN, NULL, 3),
	};
	struct aiofsync_cancel c;
	struct aiofsync_event ev[3];

	self->saved_defer = afs_param("flush_defer_us");
	ASSERT_LE(0, self->saved_defer);
	ASSERT_EQ(0, afs_set_param("flush_defer_us", 10 * 1000 * 1000));
	ASSERT_EQ(0, afs_stall_init(later, LEN));
	reqs[2].addr = (uintptr_t)later->addr;
	ASSERT_EQ(3, afs_submit(self->dev, reqs, 3));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));

	/* The first write finishes: its sync is ready, left to the writer. */
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'e'));
	ASSERT_EQ(0, afs_stall_wait_fault(later, 5000));
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 3, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	ASSERT_TRUE(nothing_within(self->dev, 200))
		TH_LOG("the sync did not wait for the writer");

	ASSERT_EQ(0, afs_cancel(self->dev, AIOFSYNC_CANCEL_TAG, 0, 2, &c));
	EXPECT_EQ(1, c.canceled);
	EXPECT_EQ(0, c.running);
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 3, 1000 * AFS_MS));
	EXPECT_EQ(2, ev[0].user_tag);
	EXPECT_EQ(-ECANCELED, ev[0].res);

	/* No flush follows that would take the deadline away instead. */
	ASSERT_EQ(0, afs_stall_release(later, 'l'));
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 3, 5000 * AFS_MS));
	EXPECT_EQ(3, ev[0].user_tag);
	EXPECT_EQ(LEN, ev[0].res);
}

/* A write to another file is not held back by a stalled write to A. */
TEST_F(order, other_file_write_not_held_back)
{
	char data[4096];
	struct aiofsync_req reqs[3] = {
		afs_req(AIOFSYNC_OP_WRITE, self->a, 0, LEN, self->stall.addr, 1),
		afs_req(AIOFSYNC_OP_WRITE, self->b, 0, sizeof(data), data, 2),
		afs_req(AIOFSYNC_OP_FSYNC, self->b, 0, 0, NULL, 3),
	};
	struct aiofsync_event ev[3];

	memset(data, 'b', sizeof(data));
	ASSERT_EQ(3, afs_submit(self->dev, reqs, 3));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 3, 5000 * AFS_MS));
	EXPECT_EQ(2, ev[0].user_tag);
	EXPECT_EQ(3, ev[1].user_tag);
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'a'));
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 3, 5000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
}

/* The ordering is per inode, across contexts and open files. */
TEST_F(order, fsync_waits_for_write_of_other_context)
{
	int dev2 = afs_open();
	int a2 = afs_tmpfile("a", O_RDWR);	/* the same name: reopen */
	struct aiofsync_req w = afs_req(AIOFSYNC_OP_WRITE, self->a, 0, LEN,
					self->stall.addr, 1);
	struct aiofsync_req f;
	struct aiofsync_event ev;

	ASSERT_LE(0, dev2);
	ASSERT_LE(0, a2);
	f = afs_req(AIOFSYNC_OP_FSYNC, a2, 0, 0, NULL, 2);
	ASSERT_EQ(1, afs_submit(self->dev, &w, 1));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));
	ASSERT_EQ(1, afs_submit(dev2, &f, 1));
	ASSERT_TRUE(nothing_within(dev2, 200));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'c'));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(1, ev.user_tag);
	ASSERT_EQ(1, afs_reap(dev2, &ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(2, ev.user_tag);
	EXPECT_EQ(0, ev.res);
	close(a2);
	close(dev2);
}

/*
 * Group commit: fsyncs that become ready together are served by one flush,
 * and the counters say how many flushes that saved.
 */
TEST_F(order, group_commit_one_flush_for_many)
{
	enum { N = 8 };
	struct aiofsync_req reqs[N + 1];
	struct aiofsync_event ev[N + 1];
	long long flushes, saved;
	int i;

	reqs[0] = afs_req(AIOFSYNC_OP_WRITE, self->a, 0, LEN, self->stall.addr, 100);
	for (i = 1; i <= N; i++)
		reqs[i] = afs_req(i % 2 ? AIOFSYNC_OP_FSYNC : AIOFSYNC_OP_FDATASYNC,
				  self->a, i * 4096, 4096, NULL, i);
	flushes = afs_stat("flushes");
	saved = afs_stat("flushes_saved");
	ASSERT_EQ(N + 1, afs_submit(self->dev, reqs, N + 1));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));
	ASSERT_EQ(0, afs_stall_release(&self->stall, 'g'));
	ASSERT_EQ(N + 1, afs_reap(self->dev, ev, N + 1, N + 1, 5000 * AFS_MS));
	EXPECT_EQ(100, ev[0].user_tag);
	for (i = 1; i <= N; i++) {
		EXPECT_EQ(0, ev[i].res);
		EXPECT_EQ(AIOFSYNC_EV_SHARED_FLUSH, ev[i].flags);
	}
	EXPECT_EQ(flushes + 1, afs_stat("flushes"));
	EXPECT_EQ(saved + N - 1, afs_stat("flushes_saved"));
}

/* Reap @total events, each wait bounded: how many came (short: one did not). */
static int reap_all(int dev, struct aiofsync_event *ev, int total)
{
	int n = 0, got;

	while (n < total) {
		got = afs_reap(dev, ev + n, 1, total - n, 10000 * AFS_MS);
		if (got <= 0)
			break;
		n += got;
	}
	return n;
}

/*
 * One call with a write and an fsync for each of many files, more files
 * than the call holds writers back for (64) before it starts them: every
 * write runs, each fsync after its own write.
 */
TEST_F(order, one_call_more_writers_than_a_plug)
{
	enum { F = 150 };
	struct aiofsync_req reqs[2 * F];
	struct aiofsync_event ev[2 * F];
	int fds[F], seen[F] = { 0 }, i;
	char name[16], buf[4096], back[4096];

	self->saved_active = afs_param("max_ctx_active");
	ASSERT_LE(0, self->saved_active);
	ASSERT_EQ(0, afs_set_param("max_ctx_active", 2 * F));
	memset(buf, 'p', sizeof(buf));
	for (i = 0; i < F; i++) {
		snprintf(name, sizeof(name), "plug%d", i);
		fds[i] = afs_tmpfile(name, O_RDWR);
		ASSERT_LE(0, fds[i]);
		reqs[2 * i] = afs_req(AIOFSYNC_OP_WRITE, fds[i], 0, sizeof(buf),
				      buf, 2 * i);
		reqs[2 * i + 1] = afs_req(AIOFSYNC_OP_FSYNC, fds[i], 0, 0, NULL,
					  2 * i + 1);
	}
	ASSERT_EQ(2 * F, afs_submit(self->dev, reqs, 2 * F));
	ASSERT_EQ(2 * F, reap_all(self->dev, ev, 2 * F));
	for (i = 0; i < 2 * F; i++) {
		int file = ev[i].user_tag / 2;

		if (ev[i].user_tag % 2) {
			EXPECT_EQ(0, ev[i].res);
			EXPECT_EQ(1, seen[file]) TH_LOG("file %d synced before its write", file);
		} else {
			EXPECT_EQ(sizeof(buf), ev[i].res);
			seen[file] = 1;
		}
	}
	for (i = 0; i < F; i++) {
		EXPECT_EQ(sizeof(back), pread(fds[i], back, sizeof(back), 0));
		EXPECT_EQ(0, memcmp(buf, back, sizeof(buf)));
		close(fds[i]);
	}
}

/*
 * One call with an fsync of each of many clean files (whose flushes the
 * call holds back until it ends), between writes and fsyncs of as many
 * other files: more held work than the call keeps (64), of both kinds.
 * Every request completes, each fsync after its own write.
 */
TEST_F(order, one_call_more_clean_syncs_than_a_plug)
{
	enum { F = 100 };
	struct aiofsync_req reqs[3 * F];
	struct aiofsync_event ev[3 * F];
	int clean[F], dirty[F], seen[F] = { 0 }, i;
	char name[16], buf[4096];

	self->saved_active = afs_param("max_ctx_active");
	ASSERT_LE(0, self->saved_active);
	ASSERT_EQ(0, afs_set_param("max_ctx_active", 3 * F));
	memset(buf, 'c', sizeof(buf));
	for (i = 0; i < F; i++) {
		snprintf(name, sizeof(name), "clean%d", i);
		clean[i] = afs_tmpfile(name, O_RDWR);
		ASSERT_LE(0, clean[i]);
		snprintf(name, sizeof(name), "dirty%d", i);
		dirty[i] = afs_tmpfile(name, O_RDWR);
		ASSERT_LE(0, dirty[i]);
		/* tag 3i: the clean file's fsync; 3i+1, 3i+2: the other's. */
		reqs[3 * i] = afs_req(AIOFSYNC_OP_FSYNC, clean[i], 0, 0, NULL,
				      3 * i);
		reqs[3 * i + 1] = afs_req(AIOFSYNC_OP_WRITE, dirty[i], 0,
					  sizeof(buf), buf, 3 * i + 1);
		reqs[3 * i + 2] = afs_req(AIOFSYNC_OP_FSYNC, dirty[i], 0, 0, NULL,
					  3 * i + 2);
	}
	ASSERT_EQ(3 * F, afs_submit(self->dev, reqs, 3 * F));
	ASSERT_EQ(3 * F, reap_all(self->dev, ev, 3 * F));
	for (i = 0; i < 3 * F; i++) {
		int file = ev[i].user_tag / 3;

		switch (ev[i].user_tag % 3) {
		case 0:
			EXPECT_EQ(0, ev[i].res);
			break;
		case 1:
			EXPECT_EQ(sizeof(buf), ev[i].res);
			seen[file] = 1;
			break;
		default:
			EXPECT_EQ(0, ev[i].res);
			EXPECT_EQ(1, seen[file]) TH_LOG("file %d synced before its write", file);
		}
	}
	for (i = 0; i < F; i++) {
		close(clean[i]);
		close(dirty[i]);
	}
}

/* Supply page @i of the stalled buffer, holding @len bytes of @src at @off. */
static int stall_supply(struct afs_stall *s, size_t i, size_t off,
			const void *src, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	char *copy = aligned_alloc(page, page);
	struct uffdio_copy c = {
		.dst = (uintptr_t)s->addr + i * page,
		.len = page,
	};
	int ret;

	if (!copy)
		return -1;
	memset(copy, 0, page);
	memcpy(copy + off, src, len);
	c.src = (uintptr_t)copy;
	ret = ioctl(s->uffd, UFFDIO_COPY, &c);
	free(copy);
	return ret;
}

struct blocked_submit {
	int dev;
	const struct aiofsync_req *reqs;
	int ret;
};

static void *submit_two(void *arg)
{
	struct blocked_submit *b = arg;

	b->ret = afs_submit(b->dev, b->reqs, 2);
	return NULL;
}

/*
 * A submit call that blocks on its own request array (the second request
 * lies in a page that userfaultfd holds back) after it accepted a write to
 * a file: that write runs meanwhile, and so does another context's write to
 * the same file, with the fsync behind it. The file's writer, which the
 * call made runnable, must not wait for the call to go on.
 */
TEST_F(order, submit_blocked_on_array_holds_no_writer)
{
	long page = sysconf(_SC_PAGESIZE);
	struct aiofsync_req head, tail, other[2];
	struct aiofsync_event ev[2];
	struct blocked_submit b;
	char buf[4096], back[4096];
	int dev2 = afs_open();
	int a2 = afs_tmpfile("a", O_RDWR);	/* the same name: reopen */
	pthread_t t;

	ASSERT_LE(0, dev2);
	ASSERT_LE(0, a2);
	memset(buf, 'w', sizeof(buf));
	/* The array straddles pages 0 and 1: the first request is there. */
	head = afs_req(AIOFSYNC_OP_WRITE, self->a, 0, sizeof(buf), buf, 1);
	ASSERT_EQ(0, stall_supply(&self->stall, 0, page - sizeof(head), &head,
				  sizeof(head)));
	b.dev = self->dev;
	b.reqs = (const void *)(self->stall.addr + page - sizeof(head));
	ASSERT_EQ(0, pthread_create(&t, NULL, submit_two, &b));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));

	/* The call is blocked: its write has run all the same. */
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 1, 5000 * AFS_MS))
		TH_LOG("the blocked call held its own write back");
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(sizeof(buf), ev[0].res);

	/* Another context writes the same file and syncs it. */
	other[0] = afs_req(AIOFSYNC_OP_WRITE, a2, sizeof(buf), sizeof(buf), buf,
			   2);
	other[1] = afs_req(AIOFSYNC_OP_FSYNC, a2, 0, 0, NULL, 3);
	ASSERT_EQ(2, afs_submit(dev2, other, 2));
	EXPECT_EQ(2, afs_reap(dev2, ev, 2, 2, 5000 * AFS_MS))
		TH_LOG("the blocked call held the file's writer back");

	/* Let the call go on: its second request is an fsync of the file. */
	tail = afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 4);
	ASSERT_EQ(0, stall_supply(&self->stall, 1, 0, &tail, sizeof(tail)));
	ASSERT_EQ(0, pthread_join(t, NULL));
	EXPECT_EQ(2, b.ret);
	ASSERT_EQ(1, afs_reap(self->dev, ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(4, ev[0].user_tag);
	EXPECT_EQ(0, ev[0].res);
	EXPECT_EQ(sizeof(back), pread(self->a, back, sizeof(back), sizeof(buf)));
	EXPECT_EQ(0, memcmp(buf, back, sizeof(buf)));
	close(a2);
	close(dev2);
}

/* Without a stalled write in front, a lone fsync is a flush of its own. */
TEST_F(order, lone_fsync_not_shared)
{
	struct aiofsync_req f = afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 7);
	struct aiofsync_event ev;

	ASSERT_EQ(1, afs_submit(self->dev, &f, 1));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(7, ev.user_tag);
	EXPECT_EQ(0, ev.res);
	EXPECT_EQ(0, ev.flags);
	EXPECT_EQ(AIOFSYNC_OP_FSYNC, ev.opcode);
}

/* Each fsync reaches the disk as a flush request. */
TEST_F(order, fsync_reaches_disk_as_flush)
{
	char data[4096];
	struct aiofsync_req reqs[2] = {
		afs_req(AIOFSYNC_OP_WRITE, self->a, 0, sizeof(data), data, 1),
		afs_req(AIOFSYNC_OP_FSYNC, self->a, 0, 0, NULL, 2),
	};
	struct aiofsync_event ev[2];
	long long disk_flushes = afs_disk_stat(self->a, 15);

	memset(data, 'f', sizeof(data));
	ASSERT_LE(0, disk_flushes);
	ASSERT_EQ(2, afs_submit(self->dev, reqs, 2));
	ASSERT_EQ(2, afs_reap(self->dev, ev, 2, 2, 5000 * AFS_MS));
	EXPECT_EQ(0, ev[1].res);
	EXPECT_LT(disk_flushes, afs_disk_stat(self->a, 15));
}

/* A task whose kernel stack passes through @fn, or 0. */
static int worker_in(const char *fn)
{
	char path[300], stack[4096];
	struct dirent *d;
	int found = 0;
	DIR *proc = opendir("/proc");

	while (proc && !found && (d = readdir(proc))) {
		int fd, n;

		if (d->d_name[0] < '1' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stack", d->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, stack, sizeof(stack) - 1);
		close(fd);
		stack[n > 0 ? n : 0] = 0;
		if (strstr(stack, fn))
			found = atoi(d->d_name);
	}
	if (proc)
		closedir(proc);
	return found;
}

/* Some task is inside the module's flush work. */
static int flush_work_running(void)
{
	return worker_in("aiofsync_flush_work") != 0;
}

/*
 * Syncs that become ready while a flush of their inode runs share the next
 * flush, one for all of them. The first flush is held in the middle: the file
 * lives on a dm device that is suspended, so its writeback waits there until
 * the device resumes; the flush work is then seen on a kernel stack.
 */
TEST_F_TIMEOUT(order, ready_during_flush_share_next_flush, 120)
{
	enum { N = 6, DIRTY = 1 << 20 };
	struct aiofsync_req first, reqs[N];
	struct aiofsync_event ev[N + 1];
	long long flushes, saved;
	char *buf = malloc(DIRTY);
	int f, g, i;

	ASSERT_NE(NULL, buf);
	memset(buf, 'r', DIRTY);
	afs_dmfs_init(&self->fs);
	ASSERT_EQ(0, afs_dmfs_up(&self->fs));
	f = afs_dmfs_open(&self->fs, "f", O_RDWR);
	g = afs_dmfs_open(&self->fs, "f", O_RDWR);
	ASSERT_LE(0, f);
	ASSERT_LE(0, g);
	/* Blocks allocated first: the flush below needs no metadata read. */
	ASSERT_EQ(DIRTY, pwrite(f, buf, DIRTY, 0));
	ASSERT_EQ(0, fsync(f));
	ASSERT_EQ(DIRTY, pwrite(f, buf, DIRTY, 0));
	ASSERT_EQ(0, afs_dmfs_suspend(&self->fs));

	flushes = afs_stat("flushes");
	saved = afs_stat("flushes_saved");
	first = afs_req(AIOFSYNC_OP_FSYNC, f, 0, 0, NULL, 100);
	ASSERT_EQ(1, afs_submit(self->dev, &first, 1));
	/* Its flush has taken it, and waits for the device. */
	for (i = 0; i < 100 && !flush_work_running(); i++)
		usleep(100 * 1000);
	ASSERT_LT(i, 100) TH_LOG("no flush work seen running");

	/* Ready at once (no write in front), while that flush is held. */
	for (i = 0; i < N; i++)
		reqs[i] = afs_req(i % 2 ? AIOFSYNC_OP_FDATASYNC : AIOFSYNC_OP_FSYNC,
				  i % 3 ? f : g, i * 4096, 4096, NULL, i + 1);
	ASSERT_EQ(N, afs_submit(self->dev, reqs, N));
	EXPECT_TRUE(nothing_within(self->dev, 100));
	ASSERT_EQ(0, afs_dmfs_resume(&self->fs));

	ASSERT_EQ(N + 1, afs_reap(self->dev, ev, N + 1, N + 1, 30000 * AFS_MS));
	/* The first flush served the first sync alone... */
	EXPECT_EQ(100, ev[0].user_tag);
	EXPECT_EQ(0, ev[0].res);
	EXPECT_EQ(0, ev[0].flags);
	/* ...and exactly one more flush served all the others. */
	for (i = 1; i <= N; i++) {
		EXPECT_EQ(i, ev[i].user_tag);
		EXPECT_EQ(0, ev[i].res);
		EXPECT_EQ(AIOFSYNC_EV_SHARED_FLUSH, ev[i].flags);
	}
	EXPECT_EQ(flushes + 2, afs_stat("flushes"));
	EXPECT_EQ(saved + N - 1, afs_stat("flushes_saved"));
	close(f);
	close(g);
	free(buf);
}

/*
 * The module's workqueues are tunable in sysfs (WQ_SYSFS): their workers
 * start at nice 0, and a write runs on a worker at the nice value root sets
 * for aiofsync_io. The stalled write's worker is found by its kernel stack.
 */
TEST_F(order, write_worker_runs_at_io_queue_nice)
{
	struct aiofsync_req w = afs_req(AIOFSYNC_OP_WRITE, self->a, 0, LEN,
					self->stall.addr, 1);
	struct aiofsync_event ev;
	int pid;

	ASSERT_EQ(0, afs_wq_nice("aiofsync_io"));
	self->niced = "aiofsync_io";
	ASSERT_EQ(0, afs_set_wq_nice("aiofsync_io", 5));
	ASSERT_EQ(5, afs_wq_nice("aiofsync_io"));

	ASSERT_EQ(1, afs_submit(self->dev, &w, 1));
	ASSERT_EQ(0, afs_stall_wait_fault(&self->stall, 5000));
	pid = worker_in("aiofsync_write_work");
	EXPECT_LT(0, pid);
	EXPECT_EQ(5, afs_task_nice(pid));

	ASSERT_EQ(0, afs_stall_release(&self->stall, 'n'));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 5000 * AFS_MS));
	EXPECT_EQ(LEN, ev.res);
}

/*
 * The same for a flush and aiofsync_flush: the flush is held in the middle,
 * on a suspended dm device, as above.
 */
TEST_F_TIMEOUT(order, flush_worker_runs_at_flush_queue_nice, 120)
{
	enum { DIRTY = 1 << 20 };
	struct aiofsync_req sync;
	struct aiofsync_event ev;
	char *buf = malloc(DIRTY);
	int f, i, pid = 0;

	ASSERT_NE(NULL, buf);
	memset(buf, 'n', DIRTY);
	ASSERT_EQ(0, afs_wq_nice("aiofsync_flush"));
	self->niced = "aiofsync_flush";
	ASSERT_EQ(0, afs_set_wq_nice("aiofsync_flush", 5));

	afs_dmfs_init(&self->fs);
	ASSERT_EQ(0, afs_dmfs_up(&self->fs));
	f = afs_dmfs_open(&self->fs, "f", O_RDWR);
	ASSERT_LE(0, f);
	ASSERT_EQ(DIRTY, pwrite(f, buf, DIRTY, 0));
	ASSERT_EQ(0, fsync(f));
	ASSERT_EQ(DIRTY, pwrite(f, buf, DIRTY, 0));
	ASSERT_EQ(0, afs_dmfs_suspend(&self->fs));

	sync = afs_req(AIOFSYNC_OP_FSYNC, f, 0, 0, NULL, 1);
	ASSERT_EQ(1, afs_submit(self->dev, &sync, 1));
	for (i = 0; i < 100 && !(pid = worker_in("aiofsync_flush_work")); i++)
		usleep(100 * 1000);
	EXPECT_LT(0, pid) TH_LOG("no flush work seen running");
	EXPECT_EQ(5, afs_task_nice(pid));

	ASSERT_EQ(0, afs_dmfs_resume(&self->fs));
	ASSERT_EQ(1, afs_reap(self->dev, &ev, 1, 1, 30000 * AFS_MS));
	EXPECT_EQ(0, ev.res);
	close(f);
	free(buf);
}

/*
 * Journal commits of the filesystem under @fd so far (/proc/fs/jbd2), and
 * how many of them a sync asked for (the others are the timer's).
 */
static int jbd2_commits(int fd, long long *all, long long *requested)
{
	char link[256], path[300];
	struct stat st;
	const char *dev;
	FILE *f;
	ssize_t n;
	int ok;

	if (fstat(fd, &st))
		return -1;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(st.st_dev),
		 minor(st.st_dev));
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return -1;
	link[n] = 0;
	dev = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
	snprintf(path, sizeof(path), "/proc/fs/jbd2/%s-8/info", dev);
	f = fopen(path, "re");
	if (!f)
		return -1;
	ok = fscanf(f, "%lld transactions (%lld requested)", all, requested) == 2;
	fclose(f);
	return ok ? 0 : -1;
}

/*
 * One flush for the syncs @ops on file A, after a change of A's mtime alone
 * (an overwrite of allocated, clean blocks): a stalled overwrite holds them
 * back so that they are served together, the first one leading. Returns the
 * journal commits that the flush asked for, or -1 when the journal timer
 * committed meanwhile and the count means nothing.
 */
static long long flush_commits(struct __test_metadata *_metadata,
			       FIXTURE_DATA(order) *self, const __u32 *ops,
			       int n)
{
	struct aiofsync_req reqs[4];
	struct aiofsync_event ev[4];
	long long all[2], requested[2];
	struct afs_stall stall;
	int i;

	usleep(20 * 1000);	/* the next write moves the mtime */
	EXPECT_EQ(0, jbd2_commits(self->a, &all[0], &requested[0]));
	ASSERT_EQ(0, afs_stall_init(&stall, 4096));
	reqs[0] = afs_req(AIOFSYNC_OP_WRITE, self->a, 0, 4096, stall.addr, 1);
	for (i = 0; i < n; i++)
		reqs[i + 1] = afs_req(ops[i], self->a, 0, 0, NULL, i + 2);
	EXPECT_EQ(n + 1, afs_submit(self->dev, reqs, n + 1));
	EXPECT_EQ(0, afs_stall_wait_fault(&stall, 5000));
	EXPECT_EQ(0, afs_stall_release(&stall, 'm'));
	EXPECT_EQ(n + 1, afs_reap(self->dev, ev, n + 1, n + 1, 5000 * AFS_MS));
	for (i = 1; i <= n; i++) {
		EXPECT_EQ(0, ev[i].res);
		EXPECT_EQ(n > 1 ? AIOFSYNC_EV_SHARED_FLUSH : 0, ev[i].flags);
	}
	afs_stall_destroy(&stall);
	EXPECT_EQ(0, jbd2_commits(self->a, &all[1], &requested[1]));
	if (all[1] - all[0] != requested[1] - requested[0])
		return -1;
	return requested[1] - requested[0];
}

/*
 * A flush serving FDATASYNC and FSYNC together is a full fsync: after a
 * change of the mtime alone, fdatasync needs no journal commit and fsync
 * does. The batch is led by an FDATASYNC, so taking the lead's kind fails.
 */
TEST_F_TIMEOUT(order, mixed_batch_flushes_as_fsync, 120)
{
	static const __u32 datasync[] = { AIOFSYNC_OP_FDATASYNC,
					  AIOFSYNC_OP_FDATASYNC };
	static const __u32 mixed[] = { AIOFSYNC_OP_FDATASYNC,
				       AIOFSYNC_OP_FSYNC };
	long long commits;
	char data[4096];
	int i;

	memset(data, 'm', sizeof(data));
	ASSERT_EQ(sizeof(data), pwrite(self->a, data, sizeof(data), 0));
	ASSERT_EQ(0, fsync(self->a));

	/* The count discriminates: FDATASYNC alone asks for no commit... */
	for (i = 0, commits = -1; i < 3 && commits < 0; i++)
		commits = flush_commits(_metadata, self, datasync, 2);
	ASSERT_EQ(0, commits);
	/* ...and with an FSYNC in the batch, the flush asks for one. */
	for (i = 0, commits = -1; i < 3 && commits < 0; i++)
		commits = flush_commits(_metadata, self, mixed, 2);
	EXPECT_EQ(1, commits);
}

TEST_HARNESS_MAIN
