// SPDX-License-Identifier: GPL-2.0
/*
 * pcwork: the guest half of stress/powercut.
 *
 * At each boot it first checks the files left by the previous boots: every
 * record an earlier boot reported as covered by a completed fsync must be
 * there and intact. Then it appends numbered, checksummed records to several
 * files at once through /dev/aiofsync, an FSYNC or FDATASYNC queued behind
 * the writes of each batch, and reports each completed sync at once on the
 * acknowledgement port (a serial port whose bytes QEMU puts in a host file),
 * until the host cuts the power.
 *
 * A record is a 32-byte header and a payload; its length and payload follow
 * from (file, seq) alone, so a checker needs nothing but the file:
 *
 *   magic "PCR1", file, seq, len, boot (that wrote it), crc32c, pad
 *
 * File i holds records 0, 1, 2... back to back. The check walks them from
 * the start; the valid prefix ends at the first record that is missing,
 * torn or wrong. A file is then cut back to its valid prefix and synced
 * before writing resumes, so a boot always continues a clean file.
 *
 * Lines on the acknowledgement port (the host keeps, per file, the largest
 * count acknowledged):
 *
 *   C boot file valid acked ok|LOST  the check of one file
 *   B boot file valid                the file, cut back and synced: valid
 *                                    records are durable
 *   W boot                           writing starts
 *   A boot file n                    records [0, n) of the file are durable:
 *                                    a sync behind them completed
 *   E boot message                   an error stopped the writer
 *
 * Modes:
 *   fsync, fdatasync   each batch: WRITEs, then the sync, in one submission
 *                      (--api raw: one AIOFSYNC_IOC_SUBMIT; --api posix:
 *                      aio_write() per record, then aio_fsync(), through
 *                      libaiofsync); A once the sync completed
 *   nosync             (control) the WRITEs only; A once they completed:
 *                      nothing made them durable, a power cut must lose some
 *   reorder            (control) the sync first, then the WRITEs; A once
 *                      all completed: the sync does not cover its batch
 *
 *   pcwork --dir DIR --files N --mode MODE [--api raw|posix] [--seed S]
 *          [--boot B] [--acks PORT] [--acked FILE] [--depth D]
 *          [--cap MIB] [--duration SECS] [--check-only] [--go-on-after-loss]
 *
 * --acked FILE holds "file count" lines: what the host saw acknowledged.
 * Exit: 0, 1 if the check found acknowledged records lost, 2 on an error.
 */
#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/aiofsync.h>
#include "../userlib/aiofsync.h"

#define MAX_FILES	16
#define MAX_DEPTH	4
#define MAX_RECS	16		/* records per batch */
#define MAX_BATCHES	(MAX_FILES * MAX_DEPTH)
#define REC_MAGIC	0x31524350U	/* "PCR1" */
#define REC_MAX		(32 + 8191)

enum mode { M_FSYNC, M_FDATASYNC, M_NOSYNC, M_REORDER };

struct rec_hdr {
	uint32_t magic;
	uint32_t file;
	uint64_t seq;
	uint32_t len;
	uint32_t boot;
	uint32_t crc;
	uint32_t pad;
};

/* One request of a batch, for the POSIX path (container of its aiocb). */
struct preq {
	struct aiocb cb;
	struct batch *b;
	int idx;
};

struct batch {
	bool used;
	int file;
	uint64_t seq0, seq_end;		/* records [seq0, seq_end) */
	int nw;				/* writes */
	int writes_left;
	bool has_sync, sync_done;
	char *buf;
	size_t len[MAX_RECS];
	off_t off[MAX_RECS];
	struct preq pr[MAX_RECS + 1];	/* POSIX: writes, then the sync */
};

struct pfile {
	int fd;
	uint64_t next_seq;		/* next record to write */
	off_t end;			/* where it goes */
	uint64_t acked;			/* largest count reported */
	struct batch *q[MAX_DEPTH];	/* in flight, oldest first */
	int nq;
	bool full;
};

static struct {
	const char *dir, *acks_path, *acked_path;
	int files, depth, boot, dev, ack_fd;
	enum mode mode;
	bool posix, check_only, go_on;
	uint64_t rng, cap;
	double duration;
	struct pfile f[MAX_FILES];
	struct batch batches[MAX_BATCHES];
	uint64_t n_batches, n_acks, n_records;
} g = { .files = 4, .depth = 2, .ack_fd = 1, .rng = 1, .cap = 192 << 20 };

static uint32_t crc_table[256];

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82F63B78U : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32c(uint32_t crc, const void *p, size_t n)
{
	const uint8_t *s = p;

	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *s++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t rnd(uint64_t n)
{
	return splitmix(&g.rng) % n;
}

/* Length of record @seq of file @file: 33 to 8223 bytes, odd sizes too. */
static size_t rec_len(uint32_t file, uint64_t seq)
{
	uint64_t x = (uint64_t)file << 48 ^ seq ^ 0x5eed;

	splitmix(&x);
	/* Mostly small, sometimes a few pages: records straddle blocks. */
	return sizeof(struct rec_hdr) + 1 +
	       (splitmix(&x) % 4 ? splitmix(&x) % 1024 : splitmix(&x) % 8191);
}

static void rec_payload(uint32_t file, uint64_t seq, uint8_t *p, size_t n)
{
	uint64_t x = (uint64_t)file << 48 ^ seq ^ 0xda7a, v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!(i % 8))
			v = splitmix(&x);
		p[i] = v >> (i % 8 * 8);
	}
}

/* Build record (@file, @seq) at @p; returns its length. */
static size_t rec_make(uint32_t file, uint64_t seq, uint8_t *p)
{
	struct rec_hdr h = {
		.magic = REC_MAGIC, .file = file, .seq = seq,
		.len = rec_len(file, seq), .boot = g.boot,
	};

	rec_payload(file, seq, p + sizeof(h), h.len - sizeof(h));
	memcpy(p, &h, sizeof(h));
	h.crc = crc32c(0, p, h.len);
	memcpy(p, &h, sizeof(h));
	return h.len;
}

/* Is record (@file, @seq) at @p, @avail bytes available, intact? */
static bool rec_ok(uint32_t file, uint64_t seq, const uint8_t *p, size_t avail)
{
	static uint8_t want[REC_MAX];
	struct rec_hdr h;
	uint32_t crc;

	if (avail < sizeof(h))
		return false;
	memcpy(&h, p, sizeof(h));
	if (h.magic != REC_MAGIC || h.file != file || h.seq != seq ||
	    h.len != rec_len(file, seq) || h.len > avail || h.pad)
		return false;
	crc = h.crc;
	h.crc = 0;
	if (crc32c(crc32c(0, &h, sizeof(h)), p + sizeof(h), h.len - sizeof(h)) != crc)
		return false;
	rec_payload(file, seq, want, h.len - sizeof(h));
	return !memcmp(want, p + sizeof(h), h.len - sizeof(h));
}

static void say(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	/* The host must have the line before anything later can happen. */
	if (write(g.ack_fd, line, n) != n) {
		perror("pcwork: ack port");
		exit(2);
	}
	if (isatty(g.ack_fd))
		tcdrain(g.ack_fd);
}

static void fail(const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "pcwork: %s\n", msg);
	say("E %d %s", g.boot, msg);
	exit(2);
}

static void fsync_or_die(int fd, const char *what)
{
	if (fsync(fd))
		fail("fsync %s: %s", what, strerror(errno));
}

static uint64_t read_acked(int file)
{
	char line[128];
	uint64_t best = 0;
	FILE *f;

	if (!g.acked_path)
		return 0;
	f = fopen(g.acked_path, "re");
	if (!f)
		fail("%s: %s", g.acked_path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		int i;
		unsigned long long n;

		if (sscanf(line, "%d %llu", &i, &n) == 2 && i == file && n > best)
			best = n;
	}
	fclose(f);
	return best;
}

/*
 * Check file @i against what was acknowledged, cut it back to its valid
 * prefix and make that durable. Returns false if acknowledged records are
 * missing.
 */
static bool check_file(int i)
{
	struct pfile *pf = &g.f[i];
	struct stat st;
	uint8_t *data = NULL;
	uint64_t seq = 0, acked = read_acked(i), later = 0;
	size_t off = 0;
	bool ok;

	if (fstat(pf->fd, &st))
		fail("fstat: %s", strerror(errno));
	if (st.st_size) {
		data = malloc(st.st_size);
		if (!data || pread(pf->fd, data, st.st_size, 0) != st.st_size)
			fail("reading file %d (%lld bytes) failed", i,
			     (long long)st.st_size);
	}
	while (data && rec_ok(i, seq, data + off, st.st_size - off)) {
		off += rec_len(i, seq);
		seq++;
	}
	/*
	 * Valid records in the first MiB past a bad one: a hole (only worth a
	 * note; what was acknowledged is all in the prefix).
	 */
	for (size_t o = off + 1; data && o + sizeof(struct rec_hdr) <= (size_t)st.st_size &&
	     o < off + (1 << 20); o++) {
		struct rec_hdr h;

		memcpy(&h, data + o, sizeof(h));
		if (h.magic == REC_MAGIC && h.file == (uint32_t)i && h.seq > seq &&
		    rec_ok(i, h.seq, data + o, st.st_size - o)) {
			later++;
			o += h.len - 1;
		}
	}
	free(data);
	ok = seq >= acked;
	printf("file %d: %llu valid records (%zu bytes of %lld), %llu acknowledged: %s%s\n",
	       i, (unsigned long long)seq, off, (long long)st.st_size,
	       (unsigned long long)acked, ok ? "ok" : "ACKNOWLEDGED RECORDS LOST",
	       later ? " (valid records after the first bad one)" : "");
	say("C %d %d %llu %llu %s", g.boot, i, (unsigned long long)seq,
	    (unsigned long long)acked, ok ? "ok" : "LOST");
	pf->next_seq = seq;
	pf->end = off;
	pf->acked = seq;
	return ok;
}

/* ---- batches ---- */

static struct batch *batch_new(int file)
{
	for (int i = 0; i < MAX_BATCHES; i++) {
		struct batch *b = &g.batches[i];

		if (!b->used) {
			memset(b, 0, sizeof(*b));
			b->used = true;
			b->file = file;
			return b;
		}
	}
	fail("out of batches");
	return NULL;
}

/* Fill @b with the next records of its file. */
static void batch_fill(struct batch *b)
{
	struct pfile *pf = &g.f[b->file];
	size_t total = 0;

	b->nw = 1 + rnd(rnd(8) ? 8 : MAX_RECS);
	b->buf = malloc((size_t)b->nw * REC_MAX);
	if (!b->buf)
		fail("out of memory");
	b->seq0 = pf->next_seq;
	for (int k = 0; k < b->nw; k++) {
		b->off[k] = pf->end + total;
		b->len[k] = rec_make(b->file, pf->next_seq++, (uint8_t *)b->buf + total);
		total += b->len[k];
	}
	pf->end += total;
	b->seq_end = pf->next_seq;
	b->writes_left = b->nw;
	b->has_sync = g.mode != M_NOSYNC;
	g.n_records += b->nw;
	g.n_batches++;
}

static size_t buf_off(const struct batch *b, int k)
{
	return b->off[k] - b->off[0];
}

static uint32_t sync_op(void)
{
	return g.mode == M_FDATASYNC ? AIOFSYNC_OP_FDATASYNC : AIOFSYNC_OP_FSYNC;
}

/* Tags: batch index << 8 | request index (MAX_RECS: the sync). */
static void raw_add(struct aiofsync_req *r, int *n, struct batch *b)
{
	uint64_t tag = (uint64_t)(b - g.batches) << 8;
	int fd = g.f[b->file].fd;

	if (g.mode == M_REORDER)
		r[(*n)++] = (struct aiofsync_req){ .user_tag = tag | MAX_RECS,
			.opcode = sync_op(), .fd = fd };
	for (int k = 0; k < b->nw; k++)
		r[(*n)++] = (struct aiofsync_req){
			.user_tag = tag | k, .opcode = AIOFSYNC_OP_WRITE, .fd = fd,
			.offset = b->off[k], .len = b->len[k],
			.addr = (uintptr_t)(b->buf + buf_off(b, k)),
		};
	if (b->has_sync && g.mode != M_REORDER)
		r[(*n)++] = (struct aiofsync_req){ .user_tag = tag | MAX_RECS,
			.opcode = sync_op(), .fd = fd };
}

static void raw_submit(struct aiofsync_req *r, int n)
{
	struct aiofsync_submit s = { .req_size = sizeof(*r) };
	int done = 0, ret;

	while (done < n) {
		s.nr = n - done;
		s.reqs = (uintptr_t)(r + done);
		ret = ioctl(g.dev, AIOFSYNC_IOC_SUBMIT, &s);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret <= 0)
			fail("AIOFSYNC_IOC_SUBMIT: %s", ret < 0 ? strerror(errno) : "0");
		done += ret;
	}
}

static void posix_sync(struct batch *b)
{
	struct preq *p = &b->pr[MAX_RECS];

	memset(p, 0, sizeof(*p));
	p->b = b;
	p->idx = MAX_RECS;
	p->cb.aio_fildes = g.f[b->file].fd;
	if (aio_fsync(g.mode == M_FDATASYNC ? O_DSYNC : O_SYNC, &p->cb))
		fail("aio_fsync: %s", strerror(errno));
}

static void posix_submit(struct batch *b)
{
	if (g.mode == M_REORDER)
		posix_sync(b);
	for (int k = 0; k < b->nw; k++) {
		struct preq *p = &b->pr[k];

		memset(p, 0, sizeof(*p));
		p->b = b;
		p->idx = k;
		p->cb.aio_fildes = g.f[b->file].fd;
		p->cb.aio_offset = b->off[k];
		p->cb.aio_buf = b->buf + buf_off(b, k);
		p->cb.aio_nbytes = b->len[k];
		if (aio_write(&p->cb))
			fail("aio_write: %s", strerror(errno));
	}
	if (b->has_sync && g.mode != M_REORDER)
		posix_sync(b);
}

/* Start batches until every file has --depth in flight. */
static void refill(void)
{
	static struct aiofsync_req r[MAX_BATCHES * (MAX_RECS + 1)];
	int n = 0;

	for (int i = 0; i < g.files; i++) {
		struct pfile *pf = &g.f[i];

		while (!pf->full && pf->nq < g.depth) {
			struct batch *b;

			if ((uint64_t)pf->end >= g.cap) {
				pf->full = true;
				printf("file %d reached --cap: no more writes to it\n", i);
				break;
			}
			b = batch_new(i);
			batch_fill(b);
			pf->q[pf->nq++] = b;
			if (g.posix)
				posix_submit(b);
			else
				raw_add(r, &n, b);
		}
	}
	if (n)
		raw_submit(r, n);
}

/*
 * Report what the completed batches of @pf make durable: the end of the
 * newest batch whose sync completed, if every write up to it completed
 * (a sync covers the writes to its file submitted before it). In the
 * controls, what "completed" says instead.
 */
static void advance(int i)
{
	struct pfile *pf = &g.f[i];
	uint64_t ack = pf->acked;
	int k, drop = 0;

	for (k = 0; k < pf->nq; k++) {
		struct batch *b = pf->q[k];

		if (b->writes_left)
			break;
		if (b->sync_done || !b->has_sync)
			ack = b->seq_end;
	}
	if (ack > pf->acked) {
		pf->acked = ack;
		g.n_acks++;
		say("A %d %d %llu", g.boot, i, (unsigned long long)ack);
	}
	/* Retire the batches fully done at the head. */
	while (drop < pf->nq && !pf->q[drop]->writes_left &&
	       (pf->q[drop]->sync_done || !pf->q[drop]->has_sync)) {
		free(pf->q[drop]->buf);
		pf->q[drop]->used = false;
		drop++;
	}
	memmove(pf->q, pf->q + drop, (pf->nq - drop) * sizeof(pf->q[0]));
	pf->nq -= drop;
}

static void complete(struct batch *b, int idx, long long res)
{
	if (idx == MAX_RECS) {
		if (res != 0)
			fail("sync of file %d: %s", b->file, strerror(-res));
		b->sync_done = true;
	} else {
		if (res != (long long)b->len[idx])
			fail("write to file %d at %lld: %lld instead of %zu", b->file,
			     (long long)b->off[idx], res, b->len[idx]);
		b->writes_left--;
	}
	advance(b->file);
}

static void reap(void)
{
	if (g.posix) {
		struct timespec ts = { 0, 200 * 1000000 };
		struct aiocb *cb;
		ssize_t ret = aio_waitcomplete(&cb, &ts);
		struct preq *p;

		if (ret < 0 && !cb && (errno == EAGAIN || errno == EINTR))
			return;
		if (!cb)
			fail("aio_waitcomplete: %s", strerror(errno));
		p = (struct preq *)cb;
		complete(p->b, p->idx, ret < 0 ? -(long long)errno : ret);
	} else {
		struct aiofsync_event ev[64];
		struct aiofsync_reap r = {
			.min_nr = 1, .max_nr = 64, .events = (uintptr_t)ev,
			.timeout_ns = 200 * 1000000ULL,
		};
		int n = ioctl(g.dev, AIOFSYNC_IOC_REAP, &r);

		if (n < 0 && errno == EINTR)
			return;
		if (n < 0)
			fail("AIOFSYNC_IOC_REAP: %s", strerror(errno));
		for (int k = 0; k < n; k++)
			complete(&g.batches[ev[k].user_tag >> 8],
				 ev[k].user_tag & 0xff, ev[k].res);
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void open_ack_port(void)
{
	struct termios t;

	if (!g.acks_path)
		return;
	g.ack_fd = open(g.acks_path, O_WRONLY | O_NOCTTY | O_CREAT | O_APPEND | O_CLOEXEC,
			0644);
	if (g.ack_fd < 0) {
		perror(g.acks_path);
		exit(2);
	}
	/* Raw: the host parses lines, and no \r may be added. */
	if (!tcgetattr(g.ack_fd, &t)) {
		cfmakeraw(&t);
		cfsetospeed(&t, B115200);
		tcsetattr(g.ack_fd, TCSANOW, &t);
	}
}

static void usage(void)
{
	fputs("usage: pcwork --dir DIR --files N --mode fsync|fdatasync|nosync|reorder\n"
	      "              [--api raw|posix] [--seed S] [--boot B] [--acks PORT]\n"
	      "              [--acked FILE] [--depth D] [--cap MIB] [--duration SECS]\n"
	      "              [--check-only] [--go-on-after-loss]\n", stderr);
	exit(2);
}

static void parse(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "files", required_argument, NULL, 'f' },
		{ "mode", required_argument, NULL, 'm' },
		{ "api", required_argument, NULL, 'a' },
		{ "seed", required_argument, NULL, 's' },
		{ "boot", required_argument, NULL, 'b' },
		{ "acks", required_argument, NULL, 'A' },
		{ "acked", required_argument, NULL, 'k' },
		{ "depth", required_argument, NULL, 'D' },
		{ "cap", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 't' },
		{ "check-only", no_argument, NULL, 'C' },
		{ "go-on-after-loss", no_argument, NULL, 'G' },
		{ 0 }
	};
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'd': g.dir = optarg; break;
		case 'f': g.files = atoi(optarg); break;
		case 'm':
			if (!strcmp(optarg, "fsync"))
				g.mode = M_FSYNC;
			else if (!strcmp(optarg, "fdatasync"))
				g.mode = M_FDATASYNC;
			else if (!strcmp(optarg, "nosync"))
				g.mode = M_NOSYNC;
			else if (!strcmp(optarg, "reorder"))
				g.mode = M_REORDER;
			else
				usage();
			break;
		case 'a':
			if (strcmp(optarg, "raw") && strcmp(optarg, "posix"))
				usage();
			g.posix = !strcmp(optarg, "posix");
			break;
		case 's': g.rng = strtoull(optarg, NULL, 0); break;
		case 'b': g.boot = atoi(optarg); break;
		case 'A': g.acks_path = optarg; break;
		case 'k': g.acked_path = optarg; break;
		case 'D': g.depth = atoi(optarg); break;
		case 'c': g.cap = strtoull(optarg, NULL, 0) << 20; break;
		case 't': g.duration = atof(optarg); break;
		case 'C': g.check_only = true; break;
		case 'G': g.go_on = true; break;
		default: usage();
		}
	}
	if (!g.dir || optind != argc || g.files < 1 || g.files > MAX_FILES ||
	    g.depth < 1 || g.depth > MAX_DEPTH)
		usage();
}

int main(int argc, char **argv)
{
	static const char *const mode_names[] = { "fsync", "fdatasync", "nosync", "reorder" };
	bool lost = false;
	double t0;
	int dfd;

	parse(argc, argv);
	crc_init();
	setvbuf(stdout, NULL, _IOLBF, 0);
	open_ack_port();

	if (mkdir(g.dir, 0755) && errno != EEXIST)
		fail("mkdir %s: %s", g.dir, strerror(errno));
	dfd = open(g.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		fail("%s: %s", g.dir, strerror(errno));
	for (int i = 0; i < g.files; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%d", i);
		g.f[i].fd = openat(dfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (g.f[i].fd < 0)
			fail("%s/%s: %s", g.dir, name, strerror(errno));
		if (!check_file(i))
			lost = true;
	}
	/* A control run goes on from what survived, to be cut again. */
	if (g.check_only || (lost && !g.go_on))
		return lost;

	/* A clean start: each file cut back to its valid prefix, durable. */
	for (int i = 0; i < g.files; i++) {
		if (ftruncate(g.f[i].fd, g.f[i].end))
			fail("ftruncate: %s", strerror(errno));
		fsync_or_die(g.f[i].fd, "file");
	}
	fsync_or_die(dfd, g.dir);
	for (int i = 0; i < g.files; i++)
		say("B %d %d %llu", g.boot, i, (unsigned long long)g.f[i].next_seq);

	if (g.posix) {
		if (aiofsync_available())
			fail("libaiofsync: /dev/aiofsync not usable: %s", strerror(errno));
	} else {
		g.dev = open(AIOFSYNC_DEVICE, O_RDWR | O_CLOEXEC);
		if (g.dev < 0)
			fail("%s: %s", AIOFSYNC_DEVICE, strerror(errno));
	}
	printf("boot %d: writing, mode %s, api %s, %d files, depth %d\n", g.boot,
	       mode_names[g.mode], g.posix ? "posix" : "raw", g.files, g.depth);
	say("W %d", g.boot);

	t0 = now();
	while (!g.duration || now() - t0 < g.duration) {
		refill();
		reap();
	}
	printf("boot %d: %llu batches, %llu records, %llu acknowledgements in %.1f s\n",
	       g.boot, (unsigned long long)g.n_batches,
	       (unsigned long long)g.n_records, (unsigned long long)g.n_acks,
	       now() - t0);
	return 0;
}
