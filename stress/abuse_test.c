// SPDX-License-Identifier: GPL-2.0
/*
 * Unprivileged abuse of /dev/aiofsync (mode 0666: any user may open it).
 * Runs as root in a guest; each test does its abusing in a child that
 * drops to uid/gid 65534 (nobody) and closes every inherited descriptor,
 * like an unrelated process of another user.
 *
 *  - a file it may only read cannot be written or synced through the
 *    device, whatever request it makes; reading it works
 *  - it cannot reach another user's context or its completions: not by
 *    reaping its own, not through /proc/PID/fd, not with pidfd_getfd()
 *  - the limits on requests (per context, all contexts) give EAGAIN, and
 *    it cannot change them
 *  - in a memory cgroup with memory.max, submitting without end gives
 *    ENOMEM or EAGAIN; no process outside the cgroup is OOM-killed
 */
#include <grp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "../selftests/aiofsync_util.h"
#include "kselftest_harness.h"

#define NOBODY		65534
#define CG_ROOT		"/sys/fs/cgroup"

/* In a child: a failed check exits with the line number. */
#define CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "# child %s:%d: %s (errno %d: %s)\n",	\
			__FILE__, __LINE__, #cond, errno, strerror(errno)); \
		_exit(__LINE__ % 250 + 1);				\
	}								\
} while (0)

FIXTURE(abuse)
{
	char dir[64], rootfile[96];
	long long saved[3];
};

static const char *const params[] = { "max_ctx_requests", "max_requests",
				      "max_ctx_active" };

FIXTURE_SETUP(abuse)
{
	int fd;

	if (getuid() != 0)
		SKIP(return, "needs root (to drop to uid %d)", NOBODY);
	for (int i = 0; i < 3; i++)
		self->saved[i] = afs_param(params[i]);
	/* A directory everyone may write in, with a file only root may. */
	snprintf(self->dir, sizeof(self->dir), "%s/abuse-%d",
		 get_current_dir_name(), getpid());
	ASSERT_EQ(0, mkdir(self->dir, 0755));
	ASSERT_EQ(0, chmod(self->dir, 01777));
	snprintf(self->rootfile, sizeof(self->rootfile), "%s/rootfile", self->dir);
	fd = open(self->rootfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT_LE(0, fd);
	ASSERT_EQ(8, write(fd, "original", 8));
	ASSERT_EQ(0, fsync(fd));
	close(fd);
}

FIXTURE_TEARDOWN(abuse)
{
	for (int i = 0; i < 3; i++)
		if (self->saved[i] >= 0)
			afs_set_param(params[i], self->saved[i]);
}

/* In a child: become nobody, with nothing inherited but stdio. */
static void become_nobody(void)
{
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	CHECK(setgroups(0, NULL) == 0);
	CHECK(setgid(NOBODY) == 0);
	CHECK(setuid(NOBODY) == 0);
	CHECK(getuid() == NOBODY && geteuid() == NOBODY);
}

/* Fork, run @fn as nobody, return its exit status (or 300 + signal). */
static int as_nobody(void (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (!pid) {
		become_nobody();
		fn(arg);
		_exit(0);
	}
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 300 + WTERMSIG(st);
}

static int submit1(int dev, __u32 op, int fd, void *buf, __u64 len)
{
	struct aiofsync_req r = afs_req(op, fd, 0, len, buf, op);

	return afs_submit(dev, &r, 1);
}

static void readonly_child(void *arg)
{
	const char *path = arg;
	char buf[8] = { 0 };
	struct aiofsync_event ev;
	int dev = afs_open(), ro = open(path, O_RDONLY), opath = open(path, O_PATH);

	CHECK(dev >= 0 && ro >= 0 && opath >= 0);
	/* The file itself refuses: the device must not be a way around it. */
	CHECK(open(path, O_RDWR) < 0 && errno == EACCES);
	CHECK(open(path, O_WRONLY) < 0 && errno == EACCES);
	for (__u32 op = AIOFSYNC_OP_FSYNC; op <= AIOFSYNC_OP_WRITE; op++) {
		void *b = op == AIOFSYNC_OP_WRITE ? buf : NULL;
		__u64 len = op == AIOFSYNC_OP_WRITE ? 8 : 0;

		CHECK(submit1(dev, op, ro, b, len) == -1 && errno == EBADF);
		CHECK(submit1(dev, op, opath, b, len) == -1 && errno == EBADF);
	}
	/* Reading is what the descriptor allows. */
	CHECK(submit1(dev, AIOFSYNC_OP_READ, ro, buf, 8) == 1);
	CHECK(afs_reap(dev, &ev, 1, 1, 5000 * AFS_MS) == 1);
	CHECK(ev.res == 8 && !memcmp(buf, "original", 8));
	/* Its own file in the same directory: writes and syncs work. */
	{
		char own[128];
		int fd;

		snprintf(own, sizeof(own), "%s.nobody", path);
		fd = open(own, O_RDWR | O_CREAT | O_TRUNC, 0600);
		CHECK(fd >= 0);
		CHECK(submit1(dev, AIOFSYNC_OP_WRITE, fd, "nobody's", 8) == 1);
		CHECK(submit1(dev, AIOFSYNC_OP_FSYNC, fd, NULL, 0) == 1);
		for (int i = 0; i < 2; i++) {
			CHECK(afs_reap(dev, &ev, 1, 1, 5000 * AFS_MS) == 1);
			CHECK(ev.res == (ev.opcode == AIOFSYNC_OP_WRITE ? 8 : 0));
		}
	}
}

TEST_F(abuse, readonly_file_cannot_be_written_or_synced)
{
	struct stat before, after;
	char buf[16] = { 0 };
	int fd;

	ASSERT_EQ(0, stat(self->rootfile, &before));
	EXPECT_EQ(0, as_nobody(readonly_child, self->rootfile));
	ASSERT_EQ(0, stat(self->rootfile, &after));
	fd = open(self->rootfile, O_RDONLY);
	ASSERT_LE(0, fd);
	EXPECT_EQ(8, read(fd, buf, sizeof(buf)));
	EXPECT_STREQ("original", buf);
	EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	EXPECT_EQ(before.st_size, after.st_size);
	close(fd);
}

struct others {
	pid_t root_pid;
	int root_ctx;
};

static void others_child(void *arg)
{
	const struct others *o = arg;
	struct aiofsync_event ev[8];
	char path[64];
	int dev, pidfd, fd;

	/* The descriptor number of root's context means nothing here. */
	CHECK(afs_reap(o->root_ctx, ev, 0, 8, 0) == -1 && errno == EBADF);
	/* Its own context has nothing, now or after a while. */
	dev = afs_open();
	CHECK(dev >= 0);
	CHECK(afs_reap(dev, ev, 0, 8, 0) == 0);
	CHECK(afs_reap(dev, ev, 1, 8, 200 * AFS_MS) == 0);
	/* Nor can it be reached through /proc (and a reopen would be a new context). */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", o->root_pid, o->root_ctx);
	fd = open(path, O_RDWR);
	CHECK(fd < 0 && (errno == EACCES || errno == EPERM));
	/* Nor taken with pidfd_getfd(). */
	pidfd = syscall(SYS_pidfd_open, o->root_pid, 0);
	if (pidfd >= 0)
		CHECK(syscall(SYS_pidfd_getfd, pidfd, o->root_ctx, 0) < 0 && errno == EPERM);
}

TEST_F(abuse, cannot_reach_other_users_completions)
{
	struct others o = { .root_pid = getpid() };
	struct aiofsync_req r[2];
	struct aiofsync_event ev[4];
	int fd = open(self->rootfile, O_RDWR), n = 0;

	ASSERT_LE(0, fd);
	o.root_ctx = afs_open();
	ASSERT_LE(0, o.root_ctx);
	r[0] = afs_req(AIOFSYNC_OP_WRITE, fd, 8, 4, "root", 0x1001);
	r[1] = afs_req(AIOFSYNC_OP_FSYNC, fd, 0, 0, NULL, 0x1002);
	ASSERT_EQ(2, afs_submit(o.root_ctx, r, 2));
	/* Let both complete, unreaped, before the other user looks. */
	usleep(300 * 1000);
	EXPECT_EQ(0, as_nobody(others_child, &o));
	/* Every completion is still there for its owner. */
	while (n < 2) {
		int got = afs_reap(o.root_ctx, ev + n, 1, 4 - n, 5000 * AFS_MS);

		ASSERT_LT(0, got);
		n += got;
	}
	EXPECT_EQ(0x1001 + 0x1002, ev[0].user_tag + ev[1].user_tag);
	close(o.root_ctx);
	close(fd);
}

#define CTX_LIMIT	64
#define ALL_LIMIT	200

static void limits_child(void *arg)
{
	const char *dir = arg;
	struct aiofsync_req r[CTX_LIMIT];
	struct aiofsync_event ev[CTX_LIMIT];
	char path[128];
	int dev[4], fd, p;

	/* It cannot loosen the limits. */
	p = open(AFS_PARAMS "max_requests", O_WRONLY);
	CHECK(p < 0 && errno == EACCES);
	snprintf(path, sizeof(path), "%s/limits.nobody", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	for (int i = 0; i < CTX_LIMIT; i++)
		r[i] = afs_req(AIOFSYNC_OP_FDATASYNC, fd, 0, 0, NULL, i);
	for (int c = 0; c < 4; c++) {
		dev[c] = afs_open();
		CHECK(dev[c] >= 0);
	}
	/* One context: CTX_LIMIT, then EAGAIN, completed or not. */
	CHECK(afs_submit(dev[0], r, CTX_LIMIT) == CTX_LIMIT);
	CHECK(afs_submit(dev[0], r, 1) == -1 && errno == EAGAIN);
	usleep(200 * 1000);
	CHECK(afs_submit(dev[0], r, 1) == -1 && errno == EAGAIN);
	/* All contexts: ALL_LIMIT together. */
	CHECK(afs_submit(dev[1], r, CTX_LIMIT) == CTX_LIMIT);
	CHECK(afs_submit(dev[2], r, CTX_LIMIT) == CTX_LIMIT);
	CHECK(afs_submit(dev[3], r, CTX_LIMIT) == ALL_LIMIT - 3 * CTX_LIMIT);
	CHECK(afs_submit(dev[3], r, 1) == -1 && errno == EAGAIN);
	/* Reaping gives the room back. */
	for (int got = 0; got < CTX_LIMIT;) {
		int n = afs_reap(dev[0], ev, 1, CTX_LIMIT, 5000 * AFS_MS);

		CHECK(n > 0);
		got += n;
	}
	/* dev[3] up to its own limit, dev[0] the rest of the global one. */
	CHECK(afs_submit(dev[3], r, CTX_LIMIT) == CTX_LIMIT - (ALL_LIMIT - 3 * CTX_LIMIT));
	CHECK(afs_submit(dev[3], r, 1) == -1 && errno == EAGAIN);
	CHECK(afs_submit(dev[0], r, CTX_LIMIT) == ALL_LIMIT - 3 * CTX_LIMIT);
	CHECK(afs_submit(dev[0], r, 1) == -1 && errno == EAGAIN);
}

TEST_F(abuse, limits_give_eagain)
{
	ASSERT_EQ(0, afs_set_param("max_ctx_requests", CTX_LIMIT));
	ASSERT_EQ(0, afs_set_param("max_requests", ALL_LIMIT));
	EXPECT_EQ(0, as_nobody(limits_child, self->dir));
	/* The child's contexts are gone with it: nothing left anywhere. */
	for (int i = 0; i < 100 && afs_stat("unreaped"); i++)
		usleep(50 * 1000);
	EXPECT_EQ(0, afs_stat("unreaped"));
}

/* ---- memory cgroup ---- */

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	close(fd);
	return ok ? 0 : -1;
}

/* The value of @key in a "key value" file, or -1. */
static long long keyed(const char *path, const char *key)
{
	char line[128];
	long long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ' ')
			v = atoll(line + strlen(key) + 1);
	fclose(f);
	return v;
}

static long long cg_event(const char *cg, const char *key)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/memory.events", cg);
	return keyed(path, key);
}

static long long vmstat(const char *key)
{
	return keyed("/proc/vmstat", key);
}

/*
 * The hog's report goes through a shared page the parent touched first: it
 * is charged outside the cgroup, so reporting needs no memory of the hog's
 * (a pipe write would, and the group is out of it by then).
 */
struct hog {
	const char *dir;
	volatile long long accepted;
	volatile int err;
};

/* Submit syncs, never reaping, on many contexts, until refused. */
static void hog_child(void *arg)
{
	struct hog *h = arg;
	struct aiofsync_req r[256];
	long long accepted = 0;
	char path[128];
	int fd, dev = -1, err = 0;

	snprintf(path, sizeof(path), "%s/hog.nobody", h->dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	for (int i = 0; i < 256; i++)
		r[i] = afs_req(AIOFSYNC_OP_FSYNC, fd, 0, 0, NULL, i);
	while (!err) {
		int n;

		if (dev < 0 || accepted % 100000 == 0) {
			dev = afs_open();	/* contexts cost memory too */
			if (dev < 0) {
				err = errno;
				break;
			}
		}
		n = afs_submit(dev, r, 256);
		if (n < 0)
			err = errno;
		else
			accepted += n;
	}
	h->accepted = accepted;
	h->err = err;
}

TEST_F(abuse, memcg_limit_gives_enomem_not_oom_of_others)
{
	char cg[96], procs[128], pid_s[16];
	long long accepted = -1, oom_before, cg_oom;
	struct hog *h;
	int err = -1, st;
	pid_t hog, bystander;

	if (access(CG_ROOT "/cgroup.controllers", F_OK) &&
	    mount("cgroup2", CG_ROOT, "cgroup2", 0, NULL))
		SKIP(return, "no cgroup v2");
	if (write_file(CG_ROOT "/cgroup.subtree_control", "+memory"))
		SKIP(return, "no memory controller");
	snprintf(cg, sizeof(cg), CG_ROOT "/aiofsync-abuse-%d", getpid());
	ASSERT_EQ(0, mkdir(cg, 0755));
	snprintf(procs, sizeof(procs), "%s/memory.max", cg);
	ASSERT_EQ(0, write_file(procs, "16M"));
	snprintf(procs, sizeof(procs), "%s/memory.swap.max", cg);
	write_file(procs, "0");
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
	/* Memory, not the request limits, must be what stops it. */
	ASSERT_EQ(0, afs_set_param("max_ctx_requests", 1 << 30));
	ASSERT_EQ(0, afs_set_param("max_requests", 1 << 30));
	oom_before = vmstat("oom_kill");

	/* A bystander outside the cgroup, with memory of its own. */
	bystander = fork();
	ASSERT_LE(0, bystander);
	if (!bystander) {
		char *m = malloc(32 << 20);

		if (m)
			memset(m, 1, 32 << 20);
		pause();
		_exit(0);
	}

	h = mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, h);
	*h = (struct hog){ .dir = self->dir, .accepted = -1, .err = -1 };
	hog = fork();
	ASSERT_LE(0, hog);
	if (!hog) {
		/* Into the cgroup while still root, then nobody. */
		snprintf(pid_s, sizeof(pid_s), "%d", getpid());
		CHECK(write_file(procs, pid_s) == 0);
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		CHECK(setgroups(0, NULL) == 0 && setgid(NOBODY) == 0 && setuid(NOBODY) == 0);
		hog_child(h);
		_exit(0);
	}
	ASSERT_EQ(hog, waitpid(hog, &st, 0));
	accepted = h->accepted;
	err = h->err;
	munmap(h, sizeof(*h));
	if (err >= 0)
		TH_LOG("%lld requests accepted, then %s", accepted, strerror(err));
	cg_oom = cg_event(cg, "oom_kill");
	TH_LOG("hog: %s; memcg oom_kill %lld, max %lld; system oom_kill +%lld",
	       WIFEXITED(st) ? "exited" : "killed", cg_oom, cg_event(cg, "max"),
	       vmstat("oom_kill") - oom_before);

	/* Refused with ENOMEM or EAGAIN, and not killed for it. */
	EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	EXPECT_TRUE(err == ENOMEM || err == EAGAIN);
	EXPECT_LT(0, accepted);
	/* Nobody outside the cgroup was killed; the bystander lives. */
	EXPECT_EQ(0, vmstat("oom_kill") - oom_before - (cg_oom > 0 ? cg_oom : 0));
	EXPECT_EQ(0, kill(bystander, 0));
	kill(bystander, SIGKILL);
	waitpid(bystander, NULL, 0);
	/* Its requests went with it. */
	for (int i = 0; i < 200 && afs_stat("unreaped"); i++)
		usleep(50 * 1000);
	EXPECT_EQ(0, afs_stat("unreaped"));
	rmdir(cg);
}

TEST_HARNESS_MAIN
