// SPDX-License-Identifier: GPL-2.0
/*
 * The `make run` demonstration, on the raw ioctls of uapi/linux/aiofsync.h:
 * four 1 MiB WRITEs to one file with an FSYNC queued behind them, and a
 * WRITE + FDATASYNC on a second file, all in one submission. Each completion
 * is printed as it is reaped, with its order and time; then the disk's
 * flush count before and after, and the module's counters.
 *
 *   demo [DIR]    (DIR: where to make the two files; default: .)
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/aiofsync.h>

#define MIB		(1024 * 1024)
#define NR_WRITES	4
#define NR_REQS		(NR_WRITES + 3)

static const char *const op_names[] = {
	[AIOFSYNC_OP_FSYNC] = "FSYNC",
	[AIOFSYNC_OP_FDATASYNC] = "FDATASYNC",
	[AIOFSYNC_OP_WRITE] = "WRITE",
	[AIOFSYNC_OP_READ] = "READ",
};

static const char *op_name(unsigned int op)
{
	if (op < sizeof(op_names) / sizeof(op_names[0]) && op_names[op])
		return op_names[op];
	return "?";
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * Flush requests the scratch disk (vda) has completed: field 16 of
 * /sys/block/vda/stat (Documentation/block/stat.rst); -1 if unknown.
 */
static long long disk_flushes(void)
{
	long long v[17];
	FILE *f = fopen("/sys/block/vda/stat", "r");
	int n = 0;

	if (!f)
		return -1;
	while (n < 17 && fscanf(f, "%lld", &v[n]) == 1)
		n++;
	fclose(f);
	return n >= 16 ? v[15] : -1;
}

static void print_stats(void)
{
	glob_t g;
	size_t i;

	if (glob("/sys/class/misc/aiofsync/stats/*", 0, NULL, &g) != 0) {
		printf("module counters: none (no /sys/class/misc/aiofsync/stats)\n");
		return;
	}
	printf("module counters:\n");
	for (i = 0; i < g.gl_pathc; i++) {
		char buf[64] = "";
		FILE *f = fopen(g.gl_pathv[i], "r");

		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f))
			buf[strcspn(buf, "\n")] = '\0';
		fclose(f);
		printf("  %-24s %s\n", strrchr(g.gl_pathv[i], '/') + 1, buf);
	}
	globfree(&g);
}

static int open_in(const char *dir, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		fprintf(stderr, "demo: %s: %s\n", path, strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	struct aiofsync_req reqs[NR_REQS];
	struct aiofsync_event ev;
	struct aiofsync_submit sub;
	struct aiofsync_reap reap;
	long long flush_before, flush_after;
	double t0, t_ms[NR_REQS];
	int dev, fa, fb, i, n;
	char *buf;

	dev = open(AIOFSYNC_DEVICE, O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		fprintf(stderr, "demo: %s: %s (is aiofsync.ko loaded?)\n",
			AIOFSYNC_DEVICE, strerror(errno));
		return 1;
	}
	fa = open_in(dir, "demo-a");
	fb = open_in(dir, "demo-b");
	buf = malloc(MIB);
	if (fa < 0 || fb < 0 || !buf)
		return 1;
	memset(buf, 'a', MIB);

	/* The request's index in reqs[] is its tag. */
	memset(reqs, 0, sizeof(reqs));
	for (i = 0; i < NR_WRITES; i++) {
		reqs[i].opcode = AIOFSYNC_OP_WRITE;
		reqs[i].fd = fa;
		reqs[i].offset = (uint64_t)i * MIB;
		reqs[i].len = MIB;
		reqs[i].addr = (uintptr_t)buf;
	}
	reqs[i].opcode = AIOFSYNC_OP_FSYNC;		/* waits for the 4 writes */
	reqs[i++].fd = fa;
	reqs[i].opcode = AIOFSYNC_OP_WRITE;
	reqs[i].fd = fb;
	reqs[i].len = 4096;
	reqs[i++].addr = (uintptr_t)buf;
	reqs[i].opcode = AIOFSYNC_OP_FDATASYNC;	/* waits for that write */
	reqs[i].fd = fb;
	for (i = 0; i < NR_REQS; i++) {
		reqs[i].user_tag = i;
		t_ms[i] = -1;
	}

	printf("submitting %d requests:\n", NR_REQS);
	for (i = 0; i < NR_REQS; i++)
		printf("  #%d %-9s %s offset %llu len %llu\n", i,
		       op_name(reqs[i].opcode), reqs[i].fd == (unsigned int)fa ?
		       "demo-a" : "demo-b", (unsigned long long)reqs[i].offset,
		       (unsigned long long)reqs[i].len);

	flush_before = disk_flushes();
	memset(&sub, 0, sizeof(sub));
	sub.nr = NR_REQS;
	sub.req_size = sizeof(reqs[0]);
	sub.reqs = (uintptr_t)reqs;
	t0 = now_ms();
	n = ioctl(dev, AIOFSYNC_IOC_SUBMIT, &sub);
	if (n != NR_REQS) {
		fprintf(stderr, "demo: AIOFSYNC_IOC_SUBMIT returned %d: %s\n", n,
			n < 0 ? strerror(errno) : "not all accepted");
		if (n <= 0)
			return 1;
	}

	printf("completions, in the order they came:\n");
	for (i = 0; i < n; i++) {
		memset(&reap, 0, sizeof(reap));
		reap.min_nr = 1;
		reap.max_nr = 1;
		reap.events = (uintptr_t)&ev;
		reap.timeout_ns = 30ULL * 1000 * 1000 * 1000;
		if (ioctl(dev, AIOFSYNC_IOC_REAP, &reap) != 1) {
			fprintf(stderr, "demo: AIOFSYNC_IOC_REAP: %s\n",
				errno ? strerror(errno) : "timed out");
			return 1;
		}
		if (ev.user_tag < NR_REQS)
			t_ms[ev.user_tag] = now_ms() - t0;
		printf("  %d. #%llu %-9s at %8.3f ms: res %lld%s%s\n", i + 1,
		       (unsigned long long)ev.user_tag, op_name(ev.opcode),
		       now_ms() - t0, (long long)ev.res,
		       ev.res < 0 ? " " : "", ev.res < 0 ? strerror(-ev.res) : "");
		if (ev.flags & AIOFSYNC_EV_SHARED_FLUSH)
			printf("     (one flush served several fsyncs)\n");
	}
	flush_after = disk_flushes();

	for (i = 0; i < NR_WRITES; i++)
		if (t_ms[i] < 0 || t_ms[NR_WRITES] < t_ms[i])
			break;
	printf("the FSYNC completed %s its %d writes\n",
	       i == NR_WRITES ? "after all of" : "NOT after all of", NR_WRITES);
	if (flush_before >= 0)
		printf("disk flushes (vda): %lld before, %lld after (+%lld)\n",
		       flush_before, flush_after, flush_after - flush_before);
	else
		printf("disk flushes: no /sys/block/vda/stat\n");
	print_stats();
	free(buf);
	close(fa);
	close(fb);
	close(dev);
	return 0;
}
