// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * fio's posixaio engine (which calls only the *64 names: aio_write64,
 * aio_fsync64, aio_error64, aio_return64, aio_suspend64, aio_cancel64)
 * with --fsync=1, unmodified, under LD_PRELOAD: it completes, every write
 * and fsync went through the device, and without the device it fails.
 */
#include "lib_test.h"
#include "kselftest_harness.h"

#define FIO_BLOCKS 256

static int run_fio(const char *rw, bool nodev, char *out, size_t outsz)
{
	static char preload[3 * PATH_MAX];
	char rwopt[32], *argv[] = {
		"fio", "--name=aiofsync", "--ioengine=posixaio", rwopt,
		"--bs=4k", "--size=1m", "--fsync=1", "--iodepth=8",
		"--filename=fio.dat", "--output-format=terse", NULL,
	};
	const char *env[3] = { preload, NULL, NULL };

	snprintf(rwopt, sizeof(rwopt), "--rw=%s", rw);
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s/libaiofsync.so.1",
		 lt_exe_dir());
	if (nodev)
		env[1] = "AIOFSYNC_DEVICE=/nonexistent";
	return lt_run("/usr/bin/fio", argv, env, out, outsz);
}

FIXTURE(fio)
{
	char out[16384];
};

FIXTURE_SETUP(fio)
{
	ASSERT_EQ(0, access("/usr/bin/fio", X_OK)) TH_LOG("fio is not installed");
}

FIXTURE_TEARDOWN(fio)
{
	unlink("fio.dat");
}

TEST_F_TIMEOUT(fio, write_fsync, 120)
{
	long long before, writes;

	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	before = afs_stat("submitted");
	writes = afs_stat("writes");
	EXPECT_EQ(0, run_fio("write", false, self->out, sizeof(self->out)))
		TH_LOG("%s", self->out);
	/* 256 writes, each followed by an fsync (--fsync=1). */
	EXPECT_LE(writes + FIO_BLOCKS, afs_stat("writes"));
	EXPECT_LE(before + 2 * FIO_BLOCKS, afs_stat("submitted"));
}

TEST_F_TIMEOUT(fio, randwrite_fsync, 120)
{
	long long writes;

	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	writes = afs_stat("writes");
	EXPECT_EQ(0, run_fio("randwrite", false, self->out, sizeof(self->out)))
		TH_LOG("%s", self->out);
	EXPECT_LE(writes + FIO_BLOCKS, afs_stat("writes"));
}

/* Without the device fio's first aio_write64 fails: it was ours. */
TEST_F_TIMEOUT(fio, without_device_fails, 120)
{
	EXPECT_NE(0, run_fio("write", true, self->out, sizeof(self->out)))
		TH_LOG("%s", self->out);
}

TEST_HARNESS_MAIN
