// SPDX-License-Identifier: GPL-2.0
/*
 * Faults below the filesystem: a device-mapper target between the
 * filesystem and its disk is switched from "linear" to "error", and the
 * device's requests must then fail as the system calls fail in the same
 * situation — compared side by side, one file through fsync(2), one through
 * /dev/aiofsync — and never hang.
 *
 * Needs losetup, dmsetup, mkfs and the loop and dm-mod modules (or built in).
 */
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "aiofsync_util.h"
#include "kselftest_harness.h"

#define IMG_MB	64
#define DATA	(64 * 1024)

FIXTURE(fault)
{
	char img[64], dm[32], mnt[64], loop[32];
	char *data;
	int dev;
	int mounted;
};

static int run(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run_out(char *out, size_t len, const char *cmd)
{
	FILE *p = popen(cmd, "r");
	int ok;

	if (!p)
		return -1;
	ok = fgets(out, len, p) != NULL;
	pclose(p);
	if (!ok)
		return -1;
	out[strcspn(out, "\n")] = 0;
	return 0;
}

/* Point the dm device at the loop device again, or make every I/O fail. */
static int set_table(FIXTURE_DATA(fault) *self, int fail)
{
	unsigned long sectors = IMG_MB * 2048UL;

	if (fail)
		return run("dmsetup suspend --nolockfs %s && "
			   "dmsetup load %s --table '0 %lu error' && "
			   "dmsetup resume %s", self->dm, self->dm, sectors,
			   self->dm);
	return run("dmsetup create %s --table '0 %lu linear %s 0'",
		   self->dm, sectors, self->loop);
}

FIXTURE_SETUP(fault)
{
	char cmd[128];

	self->data = malloc(DATA);
	ASSERT_NE(NULL, self->data);
	memset(self->data, 'e', DATA);
	snprintf(self->img, sizeof(self->img), "./fault-%d.img", getpid());
	snprintf(self->dm, sizeof(self->dm), "aiofsync-%d", getpid());
	snprintf(self->mnt, sizeof(self->mnt), "./fault-%d.mnt", getpid());

	run("modprobe -q loop; modprobe -q dm-mod");
	ASSERT_EQ(0, run("truncate -s %dM %s", IMG_MB, self->img));
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s", self->img);
	ASSERT_EQ(0, run_out(self->loop, sizeof(self->loop), cmd));
	ASSERT_EQ(0, set_table(self, 0));
	ASSERT_EQ(0, run("mkfs.ext4 -q /dev/mapper/%s", self->dm));
	ASSERT_EQ(0, mkdir(self->mnt, 0755));
	ASSERT_EQ(0, mount(strcat(strcpy(cmd, "/dev/mapper/"), self->dm),
			   self->mnt, "ext4", 0, ""));
	self->mounted = 1;
	self->dev = afs_open();
	ASSERT_LE(0, self->dev);
}

FIXTURE_TEARDOWN(fault)
{
	close(self->dev);
	if (self->mounted)
		umount2(self->mnt, MNT_DETACH);
	rmdir(self->mnt);
	run("dmsetup remove --retry %s 2>/dev/null", self->dm);
	run("losetup -d %s 2>/dev/null", self->loop);
	unlink(self->img);
	free(self->data);
}

static int open_in(FIXTURE_DATA(fault) *self, const char *name, int flags)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", self->mnt, name);
	return open(path, flags | O_CREAT | O_CLOEXEC, 0644);
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

/*
 * Dirty data whose writeback fails: the covering fsync reports -EIO, and
 * a later fsync reports what fsync(2) reports then.
 */
TEST_F(fault, fsync_after_failed_writeback_like_fsync2)
{
	int a = open_in(self, "a", O_RDWR), b = open_in(self, "b", O_RDWR);
	long long sys1, dev1, sys2, dev2;

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_EQ(DATA, pwrite(a, self->data, DATA, 0));
	ASSERT_EQ(DATA, through_device(self->dev,
		  afs_req(AIOFSYNC_OP_WRITE, b, 0, DATA, self->data, 1)));
	ASSERT_EQ(0, set_table(self, 1));

	sys1 = errno_of(fsync(a));
	dev1 = through_device(self->dev, afs_req(AIOFSYNC_OP_FSYNC, b, 0, 0,
						 NULL, 2));
	EXPECT_EQ(-EIO, sys1);
	EXPECT_EQ(sys1, dev1);

	sys2 = errno_of(fsync(a));
	dev2 = through_device(self->dev, afs_req(AIOFSYNC_OP_FSYNC, b, 0, 0,
						 NULL, 3));
	EXPECT_EQ(sys2, dev2);
	TH_LOG("fsync(2): %lld then %lld; aiofsync: %lld then %lld",
	       sys1, sys2, dev1, dev2);
	EXPECT_LE(1, afs_stat("errors"));
	close(a);
	close(b);
}

/* The same through FDATASYNC and fdatasync(2). */
TEST_F(fault, fdatasync_after_failed_writeback_like_fdatasync2)
{
	int a = open_in(self, "a", O_RDWR), b = open_in(self, "b", O_RDWR);
	long long sys1, dev1;

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_EQ(DATA, pwrite(a, self->data, DATA, 0));
	ASSERT_EQ(DATA, pwrite(b, self->data, DATA, 0));
	ASSERT_EQ(0, set_table(self, 1));
	sys1 = errno_of(fdatasync(a));
	dev1 = through_device(self->dev, afs_req(AIOFSYNC_OP_FDATASYNC, b, 0,
						 0, NULL, 1));
	EXPECT_EQ(-EIO, sys1);
	EXPECT_EQ(sys1, dev1);
	close(a);
	close(b);
}

/* An O_DIRECT write that fails completes with the error pwrite(2) gives. */
TEST_F(fault, direct_write_error_like_pwrite2)
{
	int a = open_in(self, "a", O_RDWR | O_DIRECT);
	int b = open_in(self, "b", O_RDWR | O_DIRECT);
	void *buf;
	long long sys, dev;

	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	ASSERT_EQ(0, posix_memalign(&buf, 4096, 4096));
	memset(buf, 'd', 4096);
	ASSERT_EQ(0, fallocate(a, 0, 0, 1 << 20));
	ASSERT_EQ(0, fallocate(b, 0, 0, 1 << 20));
	ASSERT_EQ(0, syncfs(a));
	ASSERT_EQ(0, set_table(self, 1));
	sys = errno_of(pwrite(a, buf, 4096, 0));
	dev = through_device(self->dev, afs_req(AIOFSYNC_OP_WRITE, b, 0, 4096,
						buf, 1));
	EXPECT_EQ(-EIO, sys);
	EXPECT_EQ(sys, dev);
	free(buf);
	close(a);
	close(b);
}

TEST_HARNESS_MAIN
