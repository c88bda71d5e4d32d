// SPDX-License-Identifier: GPL-2.0
/*
 * Faults below the filesystem: a device-mapper target between the
 * filesystem and its disk is switched from "linear" to "error", and the
 * device's requests must then fail as the system calls fail in the same
 * situation, and never hang. Side by side: each scenario runs twice on a
 * fresh filesystem, once through the system calls and once through
 * /dev/aiofsync, and the sequences of results must be the same. (Running both
 * on one filesystem would compare unequal states: the first error can abort
 * the journal and make the filesystem read-only for the second.)
 *
 * Needs losetup, dmsetup, mkfs and the loop and dm-mod modules (or built in).
 */
#include "dm_util.h"
#include "kselftest_harness.h"

#define DATA	(64 * 1024)

FIXTURE(fault)
{
	struct afs_dmfs fs;
	char *data;
	int dev;
};

FIXTURE_SETUP(fault)
{
	/* Aligned, for O_DIRECT. */
	ASSERT_EQ(0, posix_memalign((void **)&self->data, 4096, DATA));
	memset(self->data, 'e', DATA);
	afs_dmfs_init(&self->fs);
	self->dev = afs_open();
	ASSERT_LE(0, self->dev);
}

FIXTURE_TEARDOWN(fault)
{
	close(self->dev);
	afs_dmfs_down(&self->fs);
	free(self->data);
}

/* One request through the device; its result, or -ETIME if it hangs. */
static long long through_device(int dev, struct aiofsync_req r)
{
	struct aiofsync_event ev;

	if (afs_submit(dev, &r, 1) != 1)
		return -errno - 1000;
	if (afs_reap(dev, &ev, 1, 1, 30000 * AFS_MS) != 1)
		return -ETIME;
	return ev.res;
}

static long long errno_of(int ret)
{
	return ret < 0 ? -errno : ret;
}

enum { ROUNDS = 3 };

/*
 * One scenario on a fresh filesystem: dirty DATA bytes of a file (or, with
 * @direct, preallocate it), fail the disk, then ROUNDS times @op — through
 * the device or through the system call — recording each result.
 */
static int scenario(FIXTURE_DATA(fault) *self, int device, __u32 op,
		    int direct, long long res[ROUNDS])
{
	int fd, i;

	if (afs_dmfs_up(&self->fs))
		return -1;
	fd = afs_dmfs_open(&self->fs, "f", O_RDWR | (direct ? O_DIRECT : 0));
	if (fd < 0)
		return -1;
	if (direct) {
		if (fallocate(fd, 0, 0, 1 << 20) || syncfs(fd))
			return -1;
	} else if (device) {
		if (through_device(self->dev, afs_req(AIOFSYNC_OP_WRITE, fd, 0,
						      DATA, self->data, 1)) != DATA)
			return -1;
	} else if (pwrite(fd, self->data, DATA, 0) != DATA) {
		return -1;
	}
	if (afs_dmfs_table(&self->fs, AFS_TABLE_FAIL))
		return -1;

	for (i = 0; i < ROUNDS; i++) {
		struct aiofsync_req r = afs_req(op, fd, 0, 0, NULL, i);

		if (op == AIOFSYNC_OP_WRITE) {
			r.len = 4096;
			r.addr = (uintptr_t)self->data;
		}
		if (device)
			res[i] = through_device(self->dev, r);
		else if (op == AIOFSYNC_OP_FSYNC)
			res[i] = errno_of(fsync(fd));
		else if (op == AIOFSYNC_OP_FDATASYNC)
			res[i] = errno_of(fdatasync(fd));
		else
			res[i] = errno_of(pwrite(fd, self->data, 4096, 0));
	}
	close(fd);
	afs_dmfs_down(&self->fs);
	return 0;
}

static void side_by_side(struct __test_metadata *_metadata,
			 FIXTURE_DATA(fault) *self, __u32 op, int direct)
{
	long long sys[ROUNDS], dev[ROUNDS];
	long long errors = afs_stat("errors");
	int i;

	ASSERT_EQ(0, scenario(self, 0, op, direct, sys));
	ASSERT_EQ(0, scenario(self, 1, op, direct, dev));
	TH_LOG("system call: %lld %lld %lld; aiofsync: %lld %lld %lld",
	       sys[0], sys[1], sys[2], dev[0], dev[1], dev[2]);
	/* The first one after the failure reports it... */
	EXPECT_EQ(-EIO, sys[0]);
	/* ...and the device reports each one as the system call does. */
	for (i = 0; i < ROUNDS; i++) {
		EXPECT_EQ(sys[i], dev[i]);
	}
	EXPECT_LT(errors, afs_stat("errors"));
}

/* Dirty data whose writeback fails: fsync reports -EIO, then as fsync(2). */
TEST_F_TIMEOUT(fault, fsync_after_failed_writeback_like_fsync2, 180)
{
	side_by_side(_metadata, self, AIOFSYNC_OP_FSYNC, 0);
}

TEST_F_TIMEOUT(fault, fdatasync_after_failed_writeback_like_fdatasync2, 180)
{
	side_by_side(_metadata, self, AIOFSYNC_OP_FDATASYNC, 0);
}

/* An O_DIRECT write to a failing disk completes as pwrite(2) returns. */
TEST_F_TIMEOUT(fault, direct_write_error_like_pwrite2, 180)
{
	side_by_side(_metadata, self, AIOFSYNC_OP_WRITE, 1);
}

/*
 * Two open files of one inode served by one shared flush: each still gets
 * the writeback error once, as two fsync(2) calls would give it.
 */
TEST_F_TIMEOUT(fault, shared_flush_reports_error_to_each_file, 180)
{
	long long sys[4], dev[4];
	struct afs_stall stall;
	struct aiofsync_req reqs[3];
	struct aiofsync_event ev[3];
	int f1, f2, i;

	/* Through the system calls. */
	ASSERT_EQ(0, afs_dmfs_up(&self->fs));
	f1 = afs_dmfs_open(&self->fs, "f", O_RDWR);
	f2 = afs_dmfs_open(&self->fs, "f", O_RDWR);
	ASSERT_LE(0, f2);
	ASSERT_EQ(DATA, pwrite(f1, self->data, DATA, 0));
	ASSERT_EQ(4096, pwrite(f1, self->data, 4096, DATA));
	ASSERT_EQ(0, afs_dmfs_table(&self->fs, AFS_TABLE_FAIL));
	sys[0] = errno_of(fsync(f1));
	sys[1] = errno_of(fsync(f2));
	sys[2] = errno_of(fsync(f1));
	sys[3] = errno_of(fsync(f2));
	close(f1);
	close(f2);
	afs_dmfs_down(&self->fs);

	/* Through the device: both fsyncs wait behind a stalled write. */
	ASSERT_EQ(0, afs_dmfs_up(&self->fs));
	f1 = afs_dmfs_open(&self->fs, "f", O_RDWR);
	f2 = afs_dmfs_open(&self->fs, "f", O_RDWR);
	ASSERT_LE(0, f2);
	ASSERT_EQ(DATA, pwrite(f1, self->data, DATA, 0));
	ASSERT_EQ(0, afs_stall_init(&stall, 4096));
	reqs[0] = afs_req(AIOFSYNC_OP_WRITE, f1, DATA, 4096, stall.addr, 1);
	reqs[1] = afs_req(AIOFSYNC_OP_FSYNC, f1, 0, 0, NULL, 2);
	reqs[2] = afs_req(AIOFSYNC_OP_FSYNC, f2, 0, 0, NULL, 3);
	ASSERT_EQ(1, afs_submit(self->dev, reqs, 1));
	ASSERT_EQ(0, afs_stall_wait_fault(&stall, 5000));
	ASSERT_EQ(0, afs_dmfs_table(&self->fs, AFS_TABLE_FAIL));
	ASSERT_EQ(2, afs_submit(self->dev, reqs + 1, 2));
	ASSERT_EQ(0, afs_stall_release(&stall, 'e'));
	ASSERT_EQ(3, afs_reap(self->dev, ev, 3, 3, 30000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	for (i = 1; i < 3; i++) {
		EXPECT_EQ(i + 1, ev[i].user_tag);
		EXPECT_EQ(AIOFSYNC_EV_SHARED_FLUSH, ev[i].flags);
		dev[i - 1] = ev[i].res;
	}
	dev[2] = through_device(self->dev, afs_req(AIOFSYNC_OP_FSYNC, f1, 0, 0,
						   NULL, 4));
	dev[3] = through_device(self->dev, afs_req(AIOFSYNC_OP_FSYNC, f2, 0, 0,
						   NULL, 5));
	afs_stall_destroy(&stall);
	close(f1);
	close(f2);

	TH_LOG("system call: %lld %lld %lld %lld; aiofsync: %lld %lld %lld %lld",
	       sys[0], sys[1], sys[2], sys[3], dev[0], dev[1], dev[2], dev[3]);
	EXPECT_EQ(-EIO, sys[0]);
	for (i = 0; i < 4; i++) {
		EXPECT_EQ(sys[i], dev[i]);
	}
}

/*
 * Open files A and B of one inode; A's fsync(2) has collected a writeback
 * error (returned in *@first), B has not; the disk works again and the file
 * is clean. Each collects an errseq error once: B's next fsync reports it,
 * A's does not.
 */
static int error_seen_by_a(FIXTURE_DATA(fault) *self, int *a, int *b,
			   long long *first)
{
	if (afs_dmfs_up(&self->fs))
		return -1;
	*a = afs_dmfs_open(&self->fs, "f", O_RDWR);
	*b = afs_dmfs_open(&self->fs, "f", O_RDWR);
	if (*a < 0 || *b < 0)
		return -1;
	/* Blocks allocated and on disk: the rewrite below is data alone. */
	if (pwrite(*a, self->data, DATA, 0) != DATA || fsync(*a) ||
	    pwrite(*a, self->data, DATA, 0) != DATA ||
	    afs_dmfs_table(&self->fs, AFS_TABLE_FAIL))
		return -1;
	*first = errno_of(fsync(*a));
	return afs_dmfs_table(&self->fs, AFS_TABLE_HEAL);
}

/*
 * A flush shared by B (the lead) and A, after A alone collected a writeback
 * error: B gets the error, A does not get it a second time — as fsync(2) on
 * B, then on A, gives.
 */
TEST_F_TIMEOUT(fault, shared_flush_no_second_error_for_file_that_saw_it, 180)
{
	long long first[2], sys[2], dev[2];
	struct afs_stall stall;
	struct aiofsync_req reqs[3];
	struct aiofsync_event ev[3];
	int a, b, i;

	/* Through the system calls. */
	ASSERT_EQ(0, error_seen_by_a(self, &a, &b, &first[0]));
	ASSERT_EQ(4096, pwrite(b, self->data, 4096, 0));
	sys[0] = errno_of(fsync(b));
	sys[1] = errno_of(fsync(a));
	close(a);
	close(b);
	afs_dmfs_down(&self->fs);

	/*
	 * Through the device: a stalled write to the file holds back the
	 * fsyncs on B, then A, so that one flush serves both, led by B.
	 */
	ASSERT_EQ(0, error_seen_by_a(self, &a, &b, &first[1]));
	ASSERT_EQ(0, afs_stall_init(&stall, 4096));
	reqs[0] = afs_req(AIOFSYNC_OP_WRITE, b, 0, 4096, stall.addr, 1);
	reqs[1] = afs_req(AIOFSYNC_OP_FSYNC, b, 0, 0, NULL, 2);
	reqs[2] = afs_req(AIOFSYNC_OP_FSYNC, a, 0, 0, NULL, 3);
	ASSERT_EQ(3, afs_submit(self->dev, reqs, 3));
	ASSERT_EQ(0, afs_stall_wait_fault(&stall, 5000));
	ASSERT_EQ(0, afs_stall_release(&stall, 'e'));
	ASSERT_EQ(3, afs_reap(self->dev, ev, 3, 3, 30000 * AFS_MS));
	EXPECT_EQ(1, ev[0].user_tag);
	EXPECT_EQ(4096, ev[0].res);
	for (i = 1; i < 3; i++) {
		EXPECT_EQ(i + 1, ev[i].user_tag);
		EXPECT_EQ(AIOFSYNC_EV_SHARED_FLUSH, ev[i].flags);
		dev[i - 1] = ev[i].res;
	}
	afs_stall_destroy(&stall);
	close(a);
	close(b);

	TH_LOG("fsync(A) on the failing disk: %lld, %lld; then B, A: "
	       "system call: %lld %lld; aiofsync: %lld %lld",
	       first[0], first[1], sys[0], sys[1], dev[0], dev[1]);
	EXPECT_EQ(-EIO, first[0]);
	EXPECT_EQ(-EIO, first[1]);
	EXPECT_EQ(-EIO, sys[0]);
	EXPECT_EQ(0, sys[1]);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(sys[i], dev[i]);
	}
}

TEST_HARNESS_MAIN
