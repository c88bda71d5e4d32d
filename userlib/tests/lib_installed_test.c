// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * `make install` (DESTDIR, PREFIX=/usr) put every file where a package
 * would, and a program built against that installation through pkg-config
 * alone runs on the device.
 */
#include <sys/stat.h>

#include "lib_test.h"
#include "kselftest_harness.h"

static const char *inst(const char *rel)
{
	static char path[3 * PATH_MAX];

	snprintf(path, sizeof(path), "%s/destdir/usr/%s", lt_exe_dir(), rel);
	return path;
}

TEST(files_installed)
{
	static const char *const files[] = {
		"include/aiofsync.h", "lib/libaiofsync.so.1.0.0",
		"lib/libaiofsync.so.1", "lib/libaiofsync.so", "lib/libaiofsync.a",
		"lib/pkgconfig/aiofsync.pc", "lib/aiofsync/libaio.so.1",
		"share/man/man3/libaiofsync.3", "share/man/man3/aio_waitcomplete.3",
		"share/man/man3/aiofsync_fsync_range.3",
		"share/man/man3/aiofsync_available.3",
		"share/man/man3/aiofsync_glibc.3",
	};
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		EXPECT_EQ(0, stat(inst(files[i]), &st)) TH_LOG("file %zu", i);
}

/* The .pc file names the prefix it was installed for, not DESTDIR. */
TEST(pkgconfig_file)
{
	char line[256];
	bool prefix = false;
	FILE *f = fopen(inst("lib/pkgconfig/aiofsync.pc"), "r");

	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		if (!strcmp(line, "prefix=/usr\n"))
			prefix = true;
		EXPECT_EQ(NULL, strstr(line, "destdir")) TH_LOG("%s", line);
	}
	fclose(f);
	EXPECT_TRUE(prefix);
}

TEST(program_built_with_pkg_config)
{
	char env[4 * PATH_MAX], out[4096];
	const char *envs[2] = { env, NULL };
	char *argv[] = { "installed_prog", NULL };

	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	snprintf(env, sizeof(env), "LD_LIBRARY_PATH=%s", inst("lib"));
	EXPECT_EQ(0, lt_run("installed_prog", argv, envs, out, sizeof(out)))
		TH_LOG("%s", out);
	EXPECT_NE(NULL, strstr(out, "installed_prog: ok")) TH_LOG("%s", out);
}

TEST_HARNESS_MAIN
