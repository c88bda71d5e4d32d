// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * fio's posixaio engine (which calls only the *64 names: aio_write64,
 * aio_fsync64, aio_error64, aio_return64, aio_suspend64, aio_cancel64)
 * with --fsync=1, unmodified, under LD_PRELOAD: it completes, every write
 * and fsync fio counts went through the device (its counters under
 * /sys/class/misc/aiofsync/stats/, by name), and without the device it
 * fails.
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
		"--filename=fio.dat", "--output-format=json", NULL,
	};
	const char *env[3] = { preload, NULL, NULL };

	snprintf(rwopt, sizeof(rwopt), "--rw=%s", rw);
	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s/libaiofsync.so.1",
		 lt_exe_dir());
	if (nodev)
		env[1] = "AIOFSYNC_DEVICE=/nonexistent";
	return lt_run("/usr/bin/fio", argv, env, out, outsz);
}

/*
 * "total_ios" of fio's JSON section @dir ("write", "sync"): the requests of
 * that kind fio issued and saw complete (for "sync", its aio_fsync64()
 * calls; it is not always one per write: fio 3.33 issued 252 to 280 for 256
 * writes). -1 if not found.
 */
static long long fio_total_ios(const char *out, const char *dir)
{
	char key[32];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\" : {", dir);
	p = strstr(out, key);
	if (p)
		p = strstr(p, "\"total_ios\" : ");
	return p ? strtoll(p + strlen("\"total_ios\" : "), NULL, 10) : -1;
}

FIXTURE(fio)
{
	char out[65536];
};

FIXTURE_SETUP(fio)
{
	ASSERT_EQ(0, access("/usr/bin/fio", X_OK)) TH_LOG("fio is not installed");
}

FIXTURE_TEARDOWN(fio)
{
	unlink("fio.dat");
}

/* The module's counters that fio's requests move. */
struct fio_stats {
	long long submitted, writes, synced;
};

static void fio_stats(struct fio_stats *s)
{
	s->submitted = afs_stat("submitted");
	s->writes = afs_stat("writes");
	/* Every sync the device ran: alone, or sharing a flush. */
	s->synced = afs_stat("flushes") + afs_stat("flushes_saved");
}

/*
 * fio's writes and fsyncs, counted by fio, all reached the device: its
 * counters grew by at least as much (the library's markers, fdatasyncs of
 * its own memfd, may add flushes; nothing takes any away).
 */
static void fio_through_device(struct __test_metadata *_metadata,
			       FIXTURE_DATA(fio) *self, const char *rw)
{
	struct fio_stats before, after;
	long long writes, syncs;

	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	fio_stats(&before);
	ASSERT_EQ(0, run_fio(rw, false, self->out, sizeof(self->out)))
		TH_LOG("%s", self->out);
	fio_stats(&after);
	writes = fio_total_ios(self->out, "write");
	syncs = fio_total_ios(self->out, "sync");
	EXPECT_EQ(FIO_BLOCKS, writes) TH_LOG("%s", self->out);
	/* --fsync=1: one at least every few writes. */
	ASSERT_LE(FIO_BLOCKS / 2, syncs) TH_LOG("%s", self->out);
	EXPECT_LE(before.writes + writes, after.writes);
	EXPECT_LE(before.synced + syncs, after.synced)
		TH_LOG("fio: %lld fsyncs; the device's flushes + flushes_saved: +%lld",
		       syncs, after.synced - before.synced);
	EXPECT_LE(before.submitted + writes + syncs, after.submitted);
}

TEST_F_TIMEOUT(fio, write_fsync, 120)
{
	fio_through_device(_metadata, self, "write");
}

TEST_F_TIMEOUT(fio, randwrite_fsync, 120)
{
	fio_through_device(_metadata, self, "randwrite");
}

/* Without the device fio's first aio_write64 fails: it was ours. */
TEST_F_TIMEOUT(fio, without_device_fails, 120)
{
	EXPECT_NE(0, run_fio("write", true, self->out, sizeof(self->out)))
		TH_LOG("%s", self->out);
}

TEST_HARNESS_MAIN
