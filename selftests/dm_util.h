/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A filesystem of a test's own, on a device-mapper device whose table the
 * test controls: ext4 on dm "linear" over a loop device over a sparse image
 * in the current directory. The table can be switched to "error" (every I/O
 * fails) and back, and the device suspended: its I/O then waits, without
 * timing involved, until the test resumes it.
 *
 * Needs losetup, dmsetup, mkfs.ext4 and the loop and dm-mod modules (or
 * built in). No udev in the test VM: dmsetup makes the /dev/mapper nodes.
 */
#ifndef AIOFSYNC_DM_UTIL_H
#define AIOFSYNC_DM_UTIL_H

#include <signal.h>
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "aiofsync_util.h"

#define AFS_DMFS_MB	64

struct afs_dmfs {
	char img[64], dm[32], mnt[64], loop[32];
	int mounted;
	pid_t guard;	/* while suspended: resumes the device if we die */
};

/* A shell command's exit status, or -1. */
static inline int afs_run(const char *fmt, ...)
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

/* The first line a shell command prints, into @out. */
static inline int afs_run_out(char *out, size_t len, const char *cmd)
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

/* Names of this process's image, dm device and mount point. */
static inline void afs_dmfs_init(struct afs_dmfs *fs)
{
	memset(fs, 0, sizeof(*fs));
	snprintf(fs->img, sizeof(fs->img), "./dmfs-%d.img", getpid());
	snprintf(fs->dm, sizeof(fs->dm), "aiofsync-%d", getpid());
	snprintf(fs->mnt, sizeof(fs->mnt), "./dmfs-%d.mnt", getpid());
	setenv("DM_DISABLE_UDEV", "1", 1);
	afs_run("modprobe -q loop; modprobe -q dm-mod");
}

enum afs_table { AFS_TABLE_CREATE, AFS_TABLE_FAIL, AFS_TABLE_HEAL };

/*
 * Make the dm device over the loop device (linear), switch it to make every
 * I/O fail (error), or back to the loop device (heal).
 */
static inline int afs_dmfs_table(struct afs_dmfs *fs, enum afs_table how)
{
	unsigned long sectors = AFS_DMFS_MB * 2048UL;
	char table[96];

	if (how == AFS_TABLE_FAIL)
		snprintf(table, sizeof(table), "0 %lu error", sectors);
	else
		snprintf(table, sizeof(table), "0 %lu linear %s 0", sectors,
			 fs->loop);
	if (how == AFS_TABLE_CREATE)
		return afs_run("dmsetup create %s --table '%s' && "
			       "dmsetup mknodes %s", fs->dm, table, fs->dm);
	return afs_run("dmsetup suspend --nolockfs %s && "
		       "dmsetup load %s --table '%s' && dmsetup resume %s",
		       fs->dm, fs->dm, table, fs->dm);
}

/*
 * Hold every I/O of the device (the filesystem is not frozen), until
 * afs_dmfs_resume(). A test killed meanwhile (its timeout) would leave the
 * kernel's writers blocked for good: a guard process resumes the device
 * then.
 */
static inline int afs_dmfs_suspend(struct afs_dmfs *fs)
{
	pid_t parent = getpid();

	fs->guard = fork();
	if (fs->guard < 0)
		return -1;
	if (fs->guard == 0) {
		while (getppid() == parent)
			usleep(100 * 1000);
		afs_run("dmsetup resume %s", fs->dm);
		_exit(0);
	}
	return afs_run("dmsetup suspend --nolockfs %s", fs->dm);
}

static inline int afs_dmfs_resume(struct afs_dmfs *fs)
{
	if (fs->guard > 0) {
		kill(fs->guard, SIGKILL);
		waitpid(fs->guard, NULL, 0);
	}
	fs->guard = 0;
	return afs_run("dmsetup resume %s", fs->dm);
}

/* A fresh filesystem on loop + dm linear, mounted at fs->mnt. */
static inline int afs_dmfs_up(struct afs_dmfs *fs)
{
	char cmd[128];

	if (afs_run("truncate -s %dM %s", AFS_DMFS_MB, fs->img))
		return -1;
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s", fs->img);
	if (afs_run_out(fs->loop, sizeof(fs->loop), cmd) ||
	    afs_dmfs_table(fs, AFS_TABLE_CREATE) ||
	    afs_run("mkfs.ext4 -q /dev/mapper/%s", fs->dm) ||
	    mkdir(fs->mnt, 0755))
		return -1;
	snprintf(cmd, sizeof(cmd), "/dev/mapper/%s", fs->dm);
	/*
	 * No journal commit by the timer: only the test's own syncs commit.
	 * On a slow kernel the default 5 s timer would otherwise commit while
	 * the table fails, abort the journal, and turn the error a sync should
	 * see (EIO) into EROFS, differently for each run being compared.
	 */
	if (mount(cmd, fs->mnt, "ext4", 0, "commit=600"))
		return -1;
	fs->mounted = 1;
	return 0;
}

/* Undo afs_dmfs_up(), however far it went; a suspended device resumes. */
static inline void afs_dmfs_down(struct afs_dmfs *fs)
{
	if (!fs->dm[0])
		return;
	if (fs->guard)
		afs_dmfs_resume(fs);
	if (fs->mounted)
		umount2(fs->mnt, MNT_DETACH);
	fs->mounted = 0;
	rmdir(fs->mnt);
	afs_run("dmsetup remove --retry %s 2>/dev/null", fs->dm);
	if (fs->loop[0])
		afs_run("losetup -d %s 2>/dev/null", fs->loop);
	fs->loop[0] = 0;
	unlink(fs->img);
}

static inline int afs_dmfs_open(struct afs_dmfs *fs, const char *name,
				int flags)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", fs->mnt, name);
	return open(path, flags | O_CREAT | O_CLOEXEC, 0644);
}

#endif /* AIOFSYNC_DM_UTIL_H */
