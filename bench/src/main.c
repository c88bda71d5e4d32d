// SPDX-License-Identifier: GPL-2.0
/*
 * aiofbench: one cell of the benchmark (one workload, one peer, one set of
 * parameters, one repetition), printed as one "RESULT key=value ..." line.
 *
 * The work is a number of streams of commits. A commit is k writes of bs
 * bytes to one file followed by a sync that must cover them (k = 0: a sync
 * alone). A stream has one commit in flight at a time; when it completes the
 * driver checks it (every write returned bs, the sync 0, and a pread of one
 * of the blocks finds the data just written) and starts the next one, until
 * the time is up. What the workloads are:
 *
 *   w1  ordered commit: F files, Q streams each (default 1), k writes
 *       appended + sync: Q commits in flight per file, each sync ordered
 *       behind its own writes only
 *   w2  group commit: T threads, one stream each, on ONE shared file (one
 *       descriptor): 1 write appended at the next free offset + sync
 *   w3  overhead: one stream of syncs (k = 0) of F clean files, in turn
 *   w4  scale: N streams of syncs of clean files, spread over M files: N
 *       requests in flight at all times
 *
 * An asynchronous peer drives all its streams from one thread (w2: one
 * thread per stream, each with its own context); the synchronous peer
 * ("plain") gets one thread per stream. Measured over the run: commits/s,
 * CPU time of the whole system (time not idle, from /proc/stat: kernel
 * workers and interrupts included; see proc_stat_read()) and of this
 * process, flush requests completed by the disk that holds the directory
 * (/sys/block/<disk>/stat, field 16), and the latency of each commit from
 * its queueing to its completion.
 *
 * Exit status: 0 and a RESULT line; 1 failure (an error, a wrong result, no
 * commit at all); 2 usage; 3 the peer does not apply to the workload.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "bench.h"
#ifdef AIOFBENCH_LIB
#include <aiofsync.h>
#endif

#define STAMP_MAGIC 0x6e6562736f666961ULL	/* "aiofsben" */

static const struct peer_ops *const peers[] = {
#ifdef AIOFBENCH_LIB
	&peer_posix, &peer_libaio,
#else
	&peer_plain, &peer_posix, &peer_libaio, &peer_uring_link,
	&peer_uring_drain, &peer_aiofsync,
#endif
};

/* ---- small helpers ---------------------------------------------------- */

static atomic_int failed;

static void vmsg(const char *fmt, va_list ap)
{
	fputs("aiofbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	atomic_store(&failed, 1);
	return -1;
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	exit(1);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		die("out of memory");
	return p;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* ---- parameters ------------------------------------------------------- */

static struct {
	int w;			/* 1..4 */
	const struct peer_ops *peer;
	unsigned int files;	/* F (w1, w3), M (w4) */
	unsigned int threads;	/* T (w2) */
	unsigned int inflight;	/* N (w4) */
	unsigned int q;		/* commits in flight per file (w1) */
	unsigned int k;		/* writes per commit (w1) */
	size_t bs;
	double secs;
	const char *dir;
	int datasync;
	const char *label;
} opt = {
	.k = 4,
	.q = 1,
	.bs = 4096,
	.secs = 1.0,
	.dir = ".",
};

/* ---- whole-system measurements ---------------------------------------- */

struct sysstat {
	uint64_t t;			/* now_ns() when sampled */
	unsigned long long idle;	/* clock ticks idle or iowait */
	unsigned long long busy;	/* clock ticks in the other states */
	unsigned long long flushes;	/* the disk's completed flushes */
	int have_flushes;
	long long mflushes;	/* the module's flushes (vfs_fsync_range calls) */
	struct rusage ru;
};

/*
 * The whole system's time, from the first line of /proc/stat. Idle and
 * iowait are measured exactly on a NO_HZ kernel (from the moments each CPU
 * went idle and woke), but user, system, irq and softirq are sampled at
 * each tick: a CPU woken from idle for less than a tick is often back
 * asleep before its tick comes, and that work is never counted. So the CPU
 * time reported is the wall time of all CPUs minus their idle and iowait;
 * the sampled sum is kept as tick_cpu_us, for comparison. (Measured in the
 * guest, W3 on 6.12: io_uring's own threads ran 155 us per request by
 * getrusage(), more than the 90-110 us the sampled sum gave the whole
 * guest.)
 */
static void proc_stat_read(struct sysstat *s)
{
	unsigned long long v[10] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	s->t = now_ns();
	if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
			 &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			 &v[7], &v[8], &v[9]) < 8)
		die("cannot read /proc/stat");
	fclose(f);
	/* user nice system [idle iowait] irq softirq steal; guest is in user */
	s->idle = v[3] + v[4];
	s->busy = 0;
	for (int i = 0; i < 8; i++)
		if (i != 3 && i != 4)
			s->busy += v[i];
}

/* The stat file of the whole disk that holds @dir, or "" if none. */
static char disk_stat[256];

static void find_disk(const char *dir)
{
	struct stat st;
	char path[200];

	if (stat(dir, &st) < 0)
		die("%s: %s", dir, strerror(errno));
	if (!major(st.st_dev))
		return;		/* tmpfs, overlay, 9p: no disk */
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition",
		 major(st.st_dev), minor(st.st_dev));
	snprintf(disk_stat, sizeof(disk_stat), "/sys/dev/block/%u:%u/%sstat",
		 major(st.st_dev), minor(st.st_dev),
		 access(path, F_OK) == 0 ? "../" : "");
	if (access(disk_stat, R_OK) < 0)
		disk_stat[0] = 0;
}

static void sample(struct sysstat *s)
{
	proc_stat_read(s);
	s->have_flushes = 0;
	if (disk_stat[0]) {
		/* Documentation/block/stat.rst: field 16 is flush I/Os completed. */
		unsigned long long v[17] = { 0 };
		FILE *f = fopen(disk_stat, "r");
		int n = 0;

		while (f && n < 17 && fscanf(f, "%llu", &v[n]) == 1)
			n++;
		if (f)
			fclose(f);
		if (n >= 16) {
			s->flushes = v[15];
			s->have_flushes = 1;
		}
	}
	s->mflushes = -1;
	{
		FILE *f = fopen("/sys/class/misc/aiofsync/stats/flushes", "r");

		if (f) {
			if (fscanf(f, "%lld", &s->mflushes) != 1)
				s->mflushes = -1;
			fclose(f);
		}
	}
	getrusage(RUSAGE_SELF, &s->ru);
}

static double tv_us(const struct timeval *t)
{
	return t->tv_sec * 1e6 + t->tv_usec;
}

/* ---- streams and commits ---------------------------------------------- */

/*
 * Every block written starts with a stamp that says where it belongs, so a
 * pread after the commit can tell the data of this commit from older data.
 */
struct stamp {
	uint64_t magic;
	uint64_t stream;
	uint64_t round;
	uint64_t off;
};

struct stream {
	unsigned int id;	/* global stream number */
	int *fds;		/* the files this stream syncs in turn */
	unsigned int nfds, next_fd;
	int fd;			/* file of the commit in flight */
	uint64_t round;
	_Atomic long long *tail;	/* end of the file: where commits append */
	off_t off[256];		/* offsets of the writes of this commit */
	char *buf;		/* k blocks */
	unsigned int writes_left;
	int sync_queued, sync_done;
	uint64_t t0;
	int active;
};

struct worker {
	pthread_t tid;
	struct stream *s;
	unsigned int ns;
	struct peer *peer;
	unsigned long long commits;
	uint64_t *lat;		/* commit latencies, ns */
	size_t nlat, caplat;
};

static pthread_barrier_t start_barrier;
static uint64_t deadline;

static unsigned int writes_per_commit(void)
{
	switch (opt.w) {
	case 1: return opt.k;
	case 2: return 1;
	default: return 0;
	}
}

static uint64_t tag_of(const struct worker *w, const struct stream *s,
		       unsigned int op)
{
	return (uint64_t)(s - w->s) << 16 | op;
}

#define OP_SYNC_TAG 0xffff

static void stamp(struct stream *s, unsigned int j)
{
	struct stamp *st = (struct stamp *)(s->buf + j * opt.bs);

	st->magic = STAMP_MAGIC;
	st->stream = s->id;
	st->round = s->round;
	st->off = s->off[j];
	/* The rest of the block: a pattern that changes with the round. */
	memset(s->buf + j * opt.bs + sizeof(*st), (int)(s->round + j) & 0xff,
	       opt.bs - sizeof(*st));
}

static int queue_sync(struct worker *w, struct stream *s, unsigned int k)
{
	s->sync_queued = 1;
	return opt.peer->queue_sync(w->peer, s->fd, tag_of(w, s, OP_SYNC_TAG),
				    k > 0);
}

static int start_commit(struct worker *w, struct stream *s)
{
	unsigned int k = writes_per_commit();

	s->fd = s->fds[s->next_fd];
	s->next_fd = (s->next_fd + 1) % s->nfds;
	s->round++;
	s->writes_left = k;
	s->sync_queued = s->sync_done = 0;
	s->t0 = now_ns();
	if (k)
		s->off[0] = atomic_fetch_add(s->tail, (long long)(k * opt.bs));
	for (unsigned int j = 0; j < k; j++) {
		s->off[j] = s->off[0] + (off_t)(j * opt.bs);
		stamp(s, j);
		if (opt.peer->queue_write(w->peer, s->fd, s->buf + j * opt.bs,
					  opt.bs, s->off[j], tag_of(w, s, j),
					  j + 1 < k || !opt.peer->needs_user_order))
			return -1;
	}
	if (k && opt.peer->needs_user_order)
		return 0;	/* the sync follows once the writes are done */
	return queue_sync(w, s, k);
}

/* The sync is done: the last block written must now read back as written. */
static int check_data(struct stream *s)
{
	unsigned int k = writes_per_commit();
	unsigned int j = (unsigned int)(s->round % k);
	char *got;
	ssize_t r;
	int bad;

	got = malloc(opt.bs);
	if (!got)
		return fail("out of memory");
	r = pread(s->fd, got, opt.bs, s->off[j]);
	bad = r != (ssize_t)opt.bs || memcmp(got, s->buf + j * opt.bs, opt.bs);
	free(got);
	if (bad)
		return fail("%s: stream %u round %" PRIu64 ": the block at %lld "
			    "does not hold the data written before the sync "
			    "completed (pread %zd)", opt.peer->name, s->id,
			    s->round, (long long)s->off[j], r);
	return 0;
}

static void record(struct worker *w, struct stream *s)
{
	if (w->nlat == w->caplat) {
		w->caplat = w->caplat ? 2 * w->caplat : 4096;
		w->lat = realloc(w->lat, w->caplat * sizeof(*w->lat));
		if (!w->lat)
			die("out of memory");
	}
	w->lat[w->nlat++] = now_ns() - s->t0;
	w->commits++;
}

static int complete(struct worker *w, const struct compl *c)
{
	uint64_t si = c->tag >> 16;
	unsigned int op = c->tag & 0xffff;
	struct stream *s;

	if (si >= w->ns)
		return fail("%s: completion with unknown tag %#" PRIx64,
			    opt.peer->name, c->tag);
	s = &w->s[si];
	if (op == OP_SYNC_TAG) {
		if (c->res != 0)
			return fail("%s: sync: %s", opt.peer->name, strerror((int)-c->res));
		if (!s->sync_queued || s->sync_done)
			return fail("%s: unexpected sync completion", opt.peer->name);
		s->sync_done = 1;
		if (writes_per_commit() && check_data(s))
			return -1;
	} else {
		if (c->res != (long)opt.bs)
			return fail("%s: write: %ld instead of %zu", opt.peer->name,
				    c->res, opt.bs);
		if (!s->writes_left)
			return fail("%s: unexpected write completion", opt.peer->name);
		if (--s->writes_left == 0 && !s->sync_queued &&
		    queue_sync(w, s, writes_per_commit()))
			return -1;
	}
	if (s->writes_left || !s->sync_done)
		return 0;
	record(w, s);
	if (now_ns() >= deadline || atomic_load(&failed)) {
		s->active = 0;
		return 0;
	}
	return start_commit(w, s);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	unsigned int depth = w->ns * (writes_per_commit() + 1);
	struct peer_opts po = { .depth = depth, .datasync = opt.datasync };
	struct compl *c = xcalloc(depth, sizeof(*c));
	unsigned int active = w->ns;

	w->peer = opt.peer->open(&po);
	if (!w->peer)
		fail("%s: cannot open a context: %s", opt.peer->name, strerror(errno));
	pthread_barrier_wait(&start_barrier);
	if (!w->peer)
		goto out;

	for (unsigned int i = 0; i < w->ns; i++) {
		w->s[i].active = 1;
		if (start_commit(w, &w->s[i]))
			goto out;
	}
	if (opt.peer->submit(w->peer))
		goto out;
	while (active) {
		int n = opt.peer->reap(w->peer, c, 1, (int)depth);

		if (n < 0)
			goto out;
		for (int i = 0; i < n; i++)
			if (complete(w, &c[i]))
				goto out;
		if (opt.peer->submit(w->peer))
			goto out;
		active = 0;
		for (unsigned int i = 0; i < w->ns; i++)
			active += w->s[i].active;
	}
	opt.peer->close(w->peer);
out:
	free(c);
	return NULL;
}

/* ---- files ------------------------------------------------------------ */

static int open_file(const char *name, int flags)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", opt.dir, name);
	fd = open(path, O_RDWR | O_CLOEXEC | flags, 0644);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	return fd;
}

/* Files that exist with 4 KiB of data and are clean (w3, w4). */
static int *clean_files(unsigned int n)
{
	int *fds = xcalloc(n, sizeof(*fds));
	char name[64];
	struct stat st;

	for (unsigned int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "clean.%05u", i);
		fds[i] = open_file(name, O_CREAT);
		if (fstat(fds[i], &st) == 0 && st.st_size == 0) {
			char *b = xcalloc(1, opt.bs);

			if (pwrite(fds[i], b, opt.bs, 0) != (ssize_t)opt.bs)
				die("%s: write: %s", name, strerror(errno));
			free(b);
		}
	}
	return fds;	/* clean once main() has called sync() */
}

static void raise_nofile(unsigned int need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need + 64) {
		rl.rlim_cur = rl.rlim_max < need + 64 ? rl.rlim_max : need + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ---- results ---------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i] / 1e3;
}

static void usage(int status)
{
	fprintf(status ? stderr : stdout,
"usage: aiofbench -w 1|2|3|4 -p PEER [options]\n"
"  -w 1  ordered commit: -f F files, -k writes + sync per commit, -q commits\n"
"        in flight per file (default 1)\n"
"  -w 2  group commit: -t T threads, 1 write + sync each, one shared file\n"
"  -w 3  overhead: syncs of -f F clean files, one at a time\n"
"  -w 4  scale: -n N syncs in flight over -f M clean files\n"
"  -d DIR     where the files go (default .)\n"
"  -s SECS    how long to run (default 1)\n"
"  -b BYTES   write size (default 4096)\n"
"  -D         fdatasync instead of fsync\n"
"  -l LABEL   copied into the RESULT line\n"
"  -L         list the peers built in\n"
"peers:");
	for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++)
		fprintf(status ? stderr : stdout, " %s", peers[i]->name);
	fputc('\n', status ? stderr : stdout);
	exit(status);
}

int main(int argc, char **argv)
{
	unsigned int nthreads, nstreams, nfiles;
	struct worker *workers;
	struct stream *streams;
	struct sysstat a, b;
	int *fds, c;
	uint64_t t0, t1;
	unsigned long long commits = 0;
	uint64_t *lat;
	size_t nlat = 0;
	char w1name[4200];
	unsigned int k;
	_Atomic long long *tails;

	while ((c = getopt(argc, argv, "w:p:f:q:t:n:k:d:s:b:Dl:Lh")) != -1) {
		switch (c) {
		case 'w': opt.w = atoi(optarg); break;
		case 'p':
			for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++)
				if (!strcmp(optarg, peers[i]->name))
					opt.peer = peers[i];
			if (!opt.peer) {
				fprintf(stderr, "aiofbench: unknown peer %s\n", optarg);
				usage(2);
			}
			break;
		case 'f': opt.files = atoi(optarg); break;
		case 'q': opt.q = atoi(optarg); break;
		case 't': opt.threads = atoi(optarg); break;
		case 'n': opt.inflight = atoi(optarg); break;
		case 'k': opt.k = atoi(optarg); break;
		case 'd': opt.dir = optarg; break;
		case 's': opt.secs = atof(optarg); break;
		case 'b': opt.bs = strtoul(optarg, NULL, 0); break;
		case 'D': opt.datasync = 1; break;
		case 'l': opt.label = optarg; break;
		case 'L':
			for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++)
				printf("%s\n", peers[i]->name);
			return 0;
		case 'h': usage(0); break;
		default: usage(2);
		}
	}
	if (optind != argc || opt.w < 1 || opt.w > 4 || !opt.peer || opt.secs <= 0 ||
	    opt.bs < sizeof(struct stamp) || opt.k > 255 || (opt.w == 1 && !opt.k))
		usage(2);

	switch (opt.w) {
	case 1:
		nfiles = opt.files ? opt.files : 1;
		nstreams = nfiles * opt.q;
		if (opt.q > 1 && opt.peer->synchronous) {
			fprintf(stderr, "aiofbench: %s has one commit in flight per "
				"thread, and one thread per file\n", opt.peer->name);
			return 3;
		}
		break;
	case 2:
		nfiles = 1;
		nstreams = opt.threads ? opt.threads : 1;
		break;
	case 3:
		nfiles = opt.files ? opt.files : 16;
		nstreams = 1;
		break;
	default:
		nfiles = opt.files ? opt.files : 1;
		nstreams = opt.inflight ? opt.inflight : 1;
		if (opt.peer->synchronous) {
			fprintf(stderr, "aiofbench: %s has no requests in flight "
				"(one thread per request would measure threads)\n",
				opt.peer->name);
			return 3;
		}
		break;
	}
#ifdef AIOFBENCH_LIB
	/* The library falls back to threads without the device: that would
	 * not be the peer this binary stands for. */
	if (aiofsync_available() && !getenv("AIOFBENCH_ALLOW_FALLBACK"))
		die("%s: /dev/aiofsync is not usable (%s)", opt.peer->name,
		    strerror(errno));
#endif
	if (opt.peer->synchronous || opt.w == 2)
		nthreads = nstreams;
	else
		nthreads = 1;
	raise_nofile(nfiles + 3 * nthreads);
	find_disk(opt.dir);

	/* The files. */
	if (opt.w == 1) {
		fds = xcalloc(nfiles, sizeof(*fds));
		for (unsigned int i = 0; i < nfiles; i++) {
			snprintf(w1name, sizeof(w1name), "w1.%05u", i);
			fds[i] = open_file(w1name, O_CREAT | O_TRUNC);
		}
	} else if (opt.w == 2) {
		fds = xcalloc(1, sizeof(*fds));
		fds[0] = open_file("w2.shared", O_CREAT | O_TRUNC);
	} else {
		fds = clean_files(nfiles);
	}

	k = writes_per_commit();
	tails = xcalloc(nfiles, sizeof(*tails));
	streams = xcalloc(nstreams, sizeof(*streams));
	for (unsigned int i = 0; i < nstreams; i++) {
		struct stream *s = &streams[i];

		s->id = i;
		s->buf = aligned_alloc(4096, (opt.bs * (k ? k : 1) + 4095) &
				       ~(size_t)4095);
		if (!s->buf)
			die("out of memory");
		switch (opt.w) {
		case 1:		/* q streams per file */
			s->fds = &fds[i / opt.q];
			s->nfds = 1;
			s->tail = &tails[i / opt.q];
			break;
		case 2:		/* every stream on the shared file */
			s->fds = fds;
			s->nfds = 1;
			s->tail = &tails[0];
			break;
		default:	/* syncs of all files in turn, starting apart */
			s->fds = fds;
			s->nfds = nfiles;
			s->next_fd = i % nfiles;
			break;
		}
	}
	workers = xcalloc(nthreads, sizeof(*workers));
	for (unsigned int i = 0; i < nthreads; i++) {
		workers[i].s = &streams[i * (nstreams / nthreads)];
		workers[i].ns = nstreams / nthreads;
	}

	if (pthread_barrier_init(&start_barrier, NULL, nthreads + 1))
		die("pthread_barrier_init");
	for (unsigned int i = 0; i < nthreads; i++)
		if (pthread_create(&workers[i].tid, NULL, work, &workers[i]))
			die("pthread_create: too many threads?");
	/*
	 * Start from a quiet system: whatever earlier runs left dirty (the
	 * blocks of their deleted files) is not charged to this one, and the
	 * files of w3 and w4 are clean.
	 */
	sync();
	sample(&a);
	t0 = now_ns();
	deadline = t0 + (uint64_t)(opt.secs * 1e9);
	pthread_barrier_wait(&start_barrier);
	for (unsigned int i = 0; i < nthreads; i++) {
		pthread_join(workers[i].tid, NULL);
		commits += workers[i].commits;
		nlat += workers[i].nlat;
	}
	t1 = now_ns();
	sample(&b);
	if (atomic_load(&failed))
		return 1;
	if (!commits)
		die("%s: no commit completed", opt.peer->name);

	lat = xcalloc(nlat, sizeof(*lat));
	nlat = 0;
	for (unsigned int i = 0; i < nthreads; i++) {
		memcpy(lat + nlat, workers[i].lat, workers[i].nlat * sizeof(*lat));
		nlat += workers[i].nlat;
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u64);

	{
		double secs = (t1 - t0) / 1e9;
		double hz = (double)sysconf(_SC_CLK_TCK);
		double ncpu = (double)sysconf(_SC_NPROCESSORS_ONLN);
		double tick_cpu_us = (b.busy - a.busy) / hz * 1e6;
		double cpu_us = (b.t - a.t) / 1e3 * ncpu -
				(b.idle - a.idle) / hz * 1e6;
		double pcpu_us = tv_us(&b.ru.ru_utime) - tv_us(&a.ru.ru_utime) +
				 tv_us(&b.ru.ru_stime) - tv_us(&a.ru.ru_stime);

		printf("RESULT w=w%d peer=%s F=%u Q=%u T=%u N=%u k=%u bs=%zu%s%s "
		       "secs=%.3f commits=%llu rate=%.1f cpu_us=%.1f pcpu_us=%.1f "
		       "tick_cpu_us=%.1f",
		       opt.w, opt.peer->name, nfiles, opt.w == 1 ? opt.q : 1,
		       nthreads, nstreams,
		       writes_per_commit(), opt.bs, opt.label ? " label=" : "",
		       opt.label ? opt.label : "", secs, commits, commits / secs,
		       cpu_us / commits, pcpu_us / commits,
		       tick_cpu_us / commits);
		if (a.have_flushes && b.have_flushes)
			printf(" flushes=%llu fpc=%.3f", b.flushes - a.flushes,
			       (double)(b.flushes - a.flushes) / commits);
		else
			printf(" flushes=- fpc=-");
		/* The device's own count, when it is there (any peer may read it:
		 * it moves only for requests sent to the device). */
		if (a.mflushes >= 0 && b.mflushes >= 0)
			printf(" mflushes=%lld", b.mflushes - a.mflushes);
		printf(" p50_us=%.1f p99_us=%.1f\n", pct(lat, nlat, 0.50),
		       pct(lat, nlat, 0.99));
	}

	if (opt.w == 1)
		for (unsigned int i = 0; i < nfiles; i++) {
			snprintf(w1name, sizeof(w1name), "%s/w1.%05u", opt.dir, i);
			unlink(w1name);
		}
	else if (opt.w == 2) {
		snprintf(w1name, sizeof(w1name), "%s/w2.shared", opt.dir);
		unlink(w1name);
	}
	return 0;
}
