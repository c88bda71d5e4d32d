// SPDX-License-Identifier: GPL-2.0
/*
 * Loading and unloading the module, with contexts opened, used and closed in
 * between. Leaks show up in kmemleak on the debug kernel; here each round
 * must load, serve and unload cleanly.
 *
 * AIOFSYNC_KO names the module file (the test runner sets it).
 */
#include "aiofsync_util.h"
#include "kselftest_harness.h"

/* Open a context, leave one request unreaped and one reaped, close. */
static int use_once(int file)
{
	struct aiofsync_req reqs[2] = {
		afs_req(AIOFSYNC_OP_WRITE, file, 0, 5, "hello", 1),
		afs_req(AIOFSYNC_OP_FSYNC, file, 0, 0, NULL, 2),
	};
	struct aiofsync_event ev;
	int dev = afs_open(), ret = -1;

	if (dev < 0)
		return -1;
	if (afs_submit(dev, reqs, 2) == 2 &&
	    afs_reap(dev, &ev, 1, 1, 5000 * AFS_MS) == 1)
		ret = 0;
	close(dev);
	return ret;
}

/*
 * No state of its own: a fixture only so that the round trip may take longer
 * than the harness's default 30 s, which a KASAN kernel on a busy TCG host
 * needs (about 7 s on a stock kernel).
 */
FIXTURE(reload) {};
FIXTURE_SETUP(reload) {}
FIXTURE_TEARDOWN(reload) {}

TEST_F_TIMEOUT(reload, load_unload_100_times, 300)
{
	const char *ko = getenv("AIOFSYNC_KO");
	int file = afs_tmpfile("reload", O_RDWR), i;

	ASSERT_NE(NULL, ko);
	ASSERT_LE(0, file);
	for (i = 0; i < 100; i++) {
		ASSERT_EQ(0, use_once(file));
		ASSERT_EQ(0, afs_module_unload());
		ASSERT_NE(0, access(AIOFSYNC_DEVICE, F_OK));
		ASSERT_EQ(0, afs_module_load(ko));
		ASSERT_EQ(0, afs_stat("in_flight"));
		ASSERT_EQ(0, afs_stat("unreaped"));
	}
	close(file);
}

TEST_HARNESS_MAIN
