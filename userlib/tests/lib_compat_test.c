// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Drop-in: unmodified programs, compiled with the distribution's <aio.h>
 * and <libaio.h>, run on the device through LD_PRELOAD, through link order
 * (-laiofsync ahead of libc), and for libaio through LD_LIBRARY_PATH with
 * the libaio.so.1 build. Each run must succeed and use the device (its
 * "submitted" counter moves); the same run with AIOFSYNC_DEVICE=/nonexistent
 * must fail with ENOSYS, which proves our functions were the ones called
 * (glibc's and kernel AIO would have succeeded). And the symbol versions
 * that make the binding work are checked one by one.
 */
#include <dlfcn.h>

#include "lib_test.h"
#include "kselftest_harness.h"

static char *path_in_dir(const char *name)
{
	static char path[2 * PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", lt_exe_dir(), name);
	return path;
}

FIXTURE(prog)
{
	char out[4096];
	char env_preload[3 * PATH_MAX], env_libpath[3 * PATH_MAX];
	const char *env[4];
};

FIXTURE_VARIANT(prog)
{
	const char *prog;
	const char *ok;		/* its success line */
	bool preload;		/* LD_PRELOAD=libaiofsync.so.1 */
	bool compat;		/* LD_LIBRARY_PATH=compat/ (libaio.so.1) */
};

FIXTURE_VARIANT_ADD(prog, glibc_preload)
{
	.prog = "aio_prog_glibc", .ok = "aio_prog: ok", .preload = true,
};

FIXTURE_VARIANT_ADD(prog, glibc_link_order)
{
	.prog = "aio_prog_linked", .ok = "aio_prog: ok",
};

FIXTURE_VARIANT_ADD(prog, libaio_preload)
{
	.prog = "libaio_prog_libaio", .ok = "libaio_prog: ok", .preload = true,
};

FIXTURE_VARIANT_ADD(prog, libaio_library_path)
{
	.prog = "libaio_prog_libaio", .ok = "libaio_prog: ok", .compat = true,
};

FIXTURE_VARIANT_ADD(prog, libaio_link_order)
{
	.prog = "libaio_prog_linked", .ok = "libaio_prog: ok",
};

FIXTURE_SETUP(prog)
{
	int n = 0;

	snprintf(self->env_preload, sizeof(self->env_preload),
		 "LD_PRELOAD=%s", path_in_dir("libaiofsync.so.1"));
	snprintf(self->env_libpath, sizeof(self->env_libpath),
		 "LD_LIBRARY_PATH=%s", path_in_dir("compat"));
	if (variant->preload)
		self->env[n++] = self->env_preload;
	if (variant->compat)
		self->env[n++] = self->env_libpath;
	self->env[n++] = NULL;
	self->env[n] = NULL;
}

FIXTURE_TEARDOWN(prog)
{
}

static int run(FIXTURE_DATA(prog) *self, const char *prog, bool nodev)
{
	char *argv[] = { (char *)prog, NULL };
	int n = 0, ret;

	while (self->env[n])
		n++;
	if (nodev)
		self->env[n] = "AIOFSYNC_DEVICE=/nonexistent";
	ret = lt_run(prog, argv, self->env, self->out, sizeof(self->out));
	self->env[n] = NULL;
	return ret;
}

/* On the device: it works, and the device saw its requests. */
TEST_F(prog, runs_on_the_device)
{
	long long before;

	ASSERT_TRUE(lt_have_device()) TH_LOG("no " AIOFSYNC_DEVICE);
	before = afs_stat("submitted");
	ASSERT_LE(0, before);
	EXPECT_EQ(0, run(self, variant->prog, false)) TH_LOG("%s", self->out);
	EXPECT_NE(NULL, strstr(self->out, variant->ok)) TH_LOG("%s", self->out);
	/* 8 writes and the fsync at least. */
	EXPECT_LE(before + 9, afs_stat("submitted"));
}

/* Without the device it fails with ENOSYS: ours is what it called. */
TEST_F(prog, our_functions_are_called)
{
	EXPECT_EQ(1, run(self, variant->prog, true)) TH_LOG("%s", self->out);
	EXPECT_NE(NULL, strstr(self->out, strerror(ENOSYS))) TH_LOG("%s", self->out);
}

/* The same binaries alone run on glibc and kernel AIO, device untouched. */
TEST(without_us)
{
	char out[4096];
	char *argv[] = { NULL, NULL };
	const char *progs[] = { "aio_prog_glibc", "libaio_prog_libaio" };
	long long before = afs_stat("submitted");
	int i;

	for (i = 0; i < 2; i++) {
		argv[0] = (char *)progs[i];
		EXPECT_EQ(0, lt_run(progs[i], argv, NULL, out, sizeof(out)))
			TH_LOG("%s", out);
	}
	if (before >= 0)
		EXPECT_EQ(before, afs_stat("submitted"));
}

/* ---- symbol versions ---- */

static const char *const posix_names[] = {
	"aio_read", "aio_read64", "aio_write", "aio_write64", "aio_fsync",
	"aio_fsync64", "aio_error", "aio_error64", "aio_return",
	"aio_return64", "aio_suspend", "aio_suspend64", "aio_cancel",
	"aio_cancel64", "aio_init",
};

static void *open_lib(const char *name)
{
	return dlopen(path_in_dir(name), RTLD_NOW | RTLD_LOCAL);
}

/* glibc's versions are the same functions as ours (AIOFSYNC_1.0). */
TEST(posix_versions)
{
	void *lib = open_lib("libaiofsync.so.1"), *ours;
	size_t i;

	ASSERT_NE(NULL, lib) TH_LOG("%s", dlerror());
	for (i = 0; i < sizeof(posix_names) / sizeof(posix_names[0]); i++) {
		ours = dlvsym(lib, posix_names[i], "AIOFSYNC_1.0");
		ASSERT_NE(NULL, ours) TH_LOG("%s", posix_names[i]);
		EXPECT_EQ(ours, dlvsym(lib, posix_names[i], "GLIBC_2.34"))
			TH_LOG("%s@GLIBC_2.34", posix_names[i]);
		EXPECT_EQ(ours, dlvsym(lib, posix_names[i], "GLIBC_2.2.5"))
			TH_LOG("%s@GLIBC_2.2.5", posix_names[i]);
		/* The default, what a new link binds to. */
		EXPECT_EQ(ours, dlsym(lib, posix_names[i]));
	}
	/* lio_listio: 2.4 semantics in 2.4/2.34, and the old one in 2.2.5. */
	ours = dlvsym(lib, "lio_listio", "AIOFSYNC_1.0");
	ASSERT_NE(NULL, ours);
	EXPECT_EQ(ours, dlvsym(lib, "lio_listio", "GLIBC_2.4"));
	EXPECT_EQ(ours, dlvsym(lib, "lio_listio", "GLIBC_2.34"));
	EXPECT_NE(NULL, dlvsym(lib, "lio_listio", "GLIBC_2.2.5"));
	EXPECT_NE(ours, dlvsym(lib, "lio_listio", "GLIBC_2.2.5"));
	EXPECT_EQ(ours, dlvsym(lib, "lio_listio64", "GLIBC_2.4"));
	/* Our own names: only our version. */
	EXPECT_NE(NULL, dlvsym(lib, "aio_waitcomplete", "AIOFSYNC_1.0"));
	EXPECT_NE(NULL, dlvsym(lib, "aiofsync_fsync_range", "AIOFSYNC_1.0"));
	EXPECT_NE(NULL, dlvsym(lib, "aiofsync_available", "AIOFSYNC_1.0"));
	EXPECT_EQ(NULL, dlvsym(lib, "aio_waitcomplete", "GLIBC_2.34"));
	/* Nothing internal leaks out. */
	EXPECT_EQ(NULL, dlsym(lib, "afs_dev_open"));
	EXPECT_EQ(NULL, dlsym(lib, "afs_x_aio_read"));
	dlclose(lib);
}

static const struct {
	const char *name, *version;
} libaio_names[] = {
	{ "io_queue_init", "LIBAIO_0.1" }, { "io_queue_run", "LIBAIO_0.1" },
	{ "io_queue_release", "LIBAIO_0.1" }, { "io_submit", "LIBAIO_0.1" },
	{ "io_setup", "LIBAIO_0.4" }, { "io_destroy", "LIBAIO_0.4" },
	{ "io_cancel", "LIBAIO_0.4" }, { "io_getevents", "LIBAIO_0.4" },
	{ "io_queue_wait", "LIBAIO_0.4" }, { "io_pgetevents", "LIBAIO_0.5" },
};

TEST(libaio_versions)
{
	void *lib = open_lib("libaiofsync.so.1");
	void *compat = open_lib("compat/libaio.so.1");
	size_t i;

	ASSERT_NE(NULL, lib) TH_LOG("%s", dlerror());
	ASSERT_NE(NULL, compat) TH_LOG("%s", dlerror());
	for (i = 0; i < sizeof(libaio_names) / sizeof(libaio_names[0]); i++) {
		const char *n = libaio_names[i].name, *v = libaio_names[i].version;
		void *ours = dlvsym(lib, n, "AIOFSYNC_1.0");

		ASSERT_NE(NULL, ours) TH_LOG("%s", n);
		EXPECT_EQ(ours, dlvsym(lib, n, v)) TH_LOG("%s@%s", n, v);
		/* libaio.so.1: libaio's version is the default, and only. */
		EXPECT_NE(NULL, dlvsym(compat, n, v)) TH_LOG("compat %s@%s", n, v);
		EXPECT_EQ(dlvsym(compat, n, v), dlsym(compat, n)) TH_LOG("%s", n);
		EXPECT_EQ(NULL, dlvsym(compat, n, "AIOFSYNC_1.0"));
	}
	/* libaio 0.1's variants, for very old binaries. */
	EXPECT_NE(NULL, dlvsym(compat, "io_getevents", "LIBAIO_0.1"));
	EXPECT_NE(NULL, dlvsym(compat, "io_cancel", "LIBAIO_0.1"));
	EXPECT_NE(NULL, dlvsym(compat, "io_queue_wait", "LIBAIO_0.1"));
	/* The compat library has no POSIX part (dlsym would find libc's). */
	EXPECT_EQ(NULL, dlvsym(compat, "aio_fsync", "AIOFSYNC_1.0"));
	dlclose(compat);
	dlclose(lib);
}

/* This test program itself was linked against us: its aio_fsync is ours. */
TEST(linked_binding)
{
	Dl_info info;

	ASSERT_NE(0, dladdr((void *)aio_fsync, &info));
	EXPECT_NE(NULL, strstr(info.dli_fname, "libaiofsync.so")) TH_LOG("%s",
									 info.dli_fname);
}

TEST_HARNESS_MAIN
