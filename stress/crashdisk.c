// SPDX-License-Identifier: GPL-2.0
/*
 * crashdisk: an NBD server whose disk has a volatile write cache, for
 * power-cut tests. Runs on the host; QEMU's NBD client is the guest disk.
 *
 * Why: QEMU writes a guest's writes into the image file at once (whatever
 * its cache mode), and a killed QEMU leaves them in the host's page cache,
 * where they survive. A real disk with a write cache loses, at a power cut,
 * what it acknowledged but was not told to make durable. To model that, this
 * server keeps every written sector in memory until the client sends
 * NBD_CMD_FLUSH (then everything written before is put in the image) or
 * writes it with NBD_CMD_FLAG_FUA (then that write is). When the connection
 * ends without a clean NBD_CMD_DISC (QEMU killed with -9: the power cut),
 * the sectors not yet made durable are lost, as --lose says:
 *
 *   all      none of them reaches the image (the default)
 *   random   each 512-byte sector independently, with probability 1/2 (a
 *            disk that wrote back part of its cache in any order; the latest
 *            content of a sector only)
 *   none     all of them do: what a plain image file gives (debugging)
 *
 * --lying answers FLUSH and FUA without making anything durable: a disk that
 * lies, for a control run that must show loss.
 *
 * Requests are served one at a time, in order, and each reply is sent after
 * the request's effect: a flush is answered once the image holds the data.
 *
 *   crashdisk [--lose all|random|none] [--seed N] [--lying]
 *             [--ready FILE] [--stats FILE] SOCKET IMAGE
 *
 * --ready FILE is created once the socket accepts connections; --stats FILE
 * gets "key value" lines at exit (requests, flushes, sectors lost, ...).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SECTOR		512
#define BLOCK		4096
#define SPB		(BLOCK / SECTOR)	/* sectors per block: dirty bits */

/* The protocol (NetworkBlockDevice/nbd doc/proto.md), fixed newstyle only. */
#define NBD_OPTS_MAGIC		0x49484156454F5054ULL	/* "IHAVEOPT" */
#define NBD_REP_MAGIC		0x0003e889045565a9ULL
#define NBD_REQUEST_MAGIC	0x25609513U
#define NBD_SIMPLE_REPLY_MAGIC	0x67446698U
#define NBD_FLAG_FIXED_NEWSTYLE	(1 << 0)
#define NBD_FLAG_NO_ZEROES	(1 << 1)
#define NBD_FLAG_HAS_FLAGS	(1 << 0)
#define NBD_FLAG_SEND_FLUSH	(1 << 2)
#define NBD_FLAG_SEND_FUA	(1 << 3)
#define NBD_OPT_EXPORT_NAME	1
#define NBD_OPT_ABORT		2
#define NBD_OPT_GO		7
#define NBD_REP_ACK		1
#define NBD_REP_INFO		3
#define NBD_REP_ERR_UNSUP	(1U << 31 | 1)
#define NBD_INFO_EXPORT		0
#define NBD_CMD_READ		0
#define NBD_CMD_WRITE		1
#define NBD_CMD_DISC		2
#define NBD_CMD_FLUSH		3
#define NBD_CMD_FLAG_FUA	(1 << 0)
#define NBD_EIO			5
#define NBD_EINVAL		22

enum lose { LOSE_ALL, LOSE_RANDOM, LOSE_NONE };

static struct {
	int img;
	uint64_t size;
	uint8_t **cache;	/* per block: its current content, or NULL */
	uint8_t *dirty;		/* per block: sectors not durable yet */
	enum lose lose;
	int lying;
	uint64_t rng;
	/* Counters for --stats. */
	uint64_t reads, writes, flushes, fua, sectors_written, sectors_flushed;
	uint64_t lost, kept;
	int clean_disc;
} d;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("crashdisk: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t rnd(void)
{
	/* xorshift64*: reproducible from --seed. */
	d.rng ^= d.rng >> 12;
	d.rng ^= d.rng << 25;
	d.rng ^= d.rng >> 27;
	return d.rng * 0x2545F4914F6CDD1DULL;
}

/* Full read or write on the socket; 0 on success, -1 at EOF or error. */
static int xfer(int fd, void *buf, size_t len, int out)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = out ? write(fd, p, len) : read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static void img_io(void *buf, size_t len, uint64_t off, int out)
{
	ssize_t n = out ? pwrite(d.img, buf, len, off) : pread(d.img, buf, len, off);

	if (n != (ssize_t)len)
		die("image %s at %llu: %s", out ? "write" : "read",
		    (unsigned long long)off, n < 0 ? strerror(errno) : "short");
}

/* Put the dirty sectors of block @b selected by @mask into the image. */
static void commit_block(uint64_t b, uint8_t mask)
{
	int s = 0;

	mask &= d.dirty[b];
	while (s < SPB) {
		int e;

		if (!(mask & (1 << s))) {
			s++;
			continue;
		}
		for (e = s; e < SPB && (mask & (1 << e)); e++)
			;
		img_io(d.cache[b] + s * SECTOR, (e - s) * SECTOR,
		       b * BLOCK + s * SECTOR, 1);
		d.sectors_flushed += e - s;
		s = e;
	}
	d.dirty[b] &= ~mask;
	if (!d.dirty[b]) {
		free(d.cache[b]);
		d.cache[b] = NULL;
	}
}

static void commit_all(void)
{
	uint64_t b;

	for (b = 0; b < d.size / BLOCK; b++)
		if (d.dirty[b])
			commit_block(b, 0xff);
}

/* The sectors of block @b touched by bytes [@from, @to) of that block. */
static uint8_t sector_mask(uint64_t from, uint64_t to)
{
	uint8_t m = 0;
	uint64_t s;

	for (s = from / SECTOR; s * SECTOR < to; s++)
		m |= 1 << s;
	return m;
}

static void do_read(uint8_t *buf, uint64_t off, uint32_t len)
{
	while (len) {
		uint64_t b = off / BLOCK, in = off % BLOCK;
		uint32_t n = BLOCK - in < len ? BLOCK - in : len;

		if (d.cache[b])
			memcpy(buf, d.cache[b] + in, n);
		else
			img_io(buf, n, off, 0);
		buf += n;
		off += n;
		len -= n;
	}
}

static void do_write(const uint8_t *buf, uint64_t off, uint32_t len, int fua)
{
	while (len) {
		uint64_t b = off / BLOCK, in = off % BLOCK;
		uint32_t n = BLOCK - in < len ? BLOCK - in : len;
		uint8_t mask = sector_mask(in, in + n);

		if (!d.cache[b]) {
			d.cache[b] = malloc(BLOCK);
			if (!d.cache[b])
				die("out of memory");
			img_io(d.cache[b], BLOCK, b * BLOCK, 0);
		}
		memcpy(d.cache[b] + in, buf, n);
		d.dirty[b] |= mask;
		d.sectors_written += __builtin_popcount(mask);
		if (fua && !d.lying)
			commit_block(b, mask);
		buf += n;
		off += n;
		len -= n;
	}
}

/* The power cut: what --lose says happens to the sectors not durable. */
static void power_cut(void)
{
	uint64_t b;
	int s;

	for (b = 0; b < d.size / BLOCK; b++) {
		uint8_t keep = 0;

		if (!d.dirty[b])
			continue;
		for (s = 0; s < SPB; s++) {
			if (!(d.dirty[b] & (1 << s)))
				continue;
			if (d.lose == LOSE_NONE ||
			    (d.lose == LOSE_RANDOM && (rnd() & 1)))
				keep |= 1 << s;
		}
		d.kept += __builtin_popcount(keep);
		d.lost += __builtin_popcount(d.dirty[b] & ~keep);
		commit_block(b, keep);
		d.dirty[b] = 0;
		free(d.cache[b]);
		d.cache[b] = NULL;
	}
}

static void opt_reply(int c, uint32_t opt, uint32_t type, const void *data,
		      uint32_t len)
{
	struct __attribute__((packed)) {
		uint64_t magic;
		uint32_t opt, type, len;
	} h = { htobe64(NBD_REP_MAGIC), htobe32(opt), htobe32(type), htobe32(len) };

	if (xfer(c, &h, sizeof(h), 1) || (len && xfer(c, (void *)data, len, 1)))
		die("handshake: write failed");
}

static const uint16_t tx_flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
				 NBD_FLAG_SEND_FUA;

/* Fixed newstyle handshake; returns once the client is in transmission. */
static void handshake(int c)
{
	struct __attribute__((packed)) {
		char passwd[8];
		uint64_t magic;
		uint16_t flags;
	} hello = { .magic = htobe64(NBD_OPTS_MAGIC),
		    .flags = htobe16(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES) };
	uint32_t cflags;

	memcpy(hello.passwd, "NBDMAGIC", 8);
	if (xfer(c, &hello, sizeof(hello), 1) || xfer(c, &cflags, 4, 0))
		die("handshake: client went away");
	for (;;) {
		struct __attribute__((packed)) {
			uint64_t magic;
			uint32_t opt, len;
		} o;
		struct __attribute__((packed)) {
			uint16_t type;
			uint64_t size;
			uint16_t flags;
		} info = { htobe16(NBD_INFO_EXPORT), htobe64(d.size),
			   htobe16(tx_flags) };
		char data[4096];

		if (xfer(c, &o, sizeof(o), 0))
			die("handshake: client went away");
		o.opt = be32toh(o.opt);
		o.len = be32toh(o.len);
		if (be64toh(o.magic) != NBD_OPTS_MAGIC || o.len > sizeof(data))
			die("handshake: bad option");
		if (xfer(c, data, o.len, 0))
			die("handshake: client went away");
		switch (o.opt) {
		case NBD_OPT_EXPORT_NAME:
			/* Any name is our one export. No zeroes: the client said so. */
			if (xfer(c, &info.size, 10, 1))
				die("handshake: write failed");
			return;
		case NBD_OPT_GO:
			opt_reply(c, o.opt, NBD_REP_INFO, &info, sizeof(info));
			opt_reply(c, o.opt, NBD_REP_ACK, NULL, 0);
			return;
		case NBD_OPT_ABORT:
			opt_reply(c, o.opt, NBD_REP_ACK, NULL, 0);
			exit(0);
		default:
			/* Structured replies, meta contexts, TLS...: not here. */
			opt_reply(c, o.opt, NBD_REP_ERR_UNSUP, NULL, 0);
		}
	}
}

static void serve(int c)
{
	static uint8_t buf[32 << 20];

	for (;;) {
		struct __attribute__((packed)) {
			uint32_t magic;
			uint16_t flags, type;
			uint64_t handle, off;
			uint32_t len;
		} rq;
		struct __attribute__((packed)) {
			uint32_t magic, error;
			uint64_t handle;
		} rp = { htobe32(NBD_SIMPLE_REPLY_MAGIC), 0, 0 };
		uint64_t off;
		uint32_t len;
		int bad;

		if (xfer(c, &rq, sizeof(rq), 0))
			return;		/* EOF: the power cut */
		if (be32toh(rq.magic) != NBD_REQUEST_MAGIC)
			die("bad request magic");
		rp.handle = rq.handle;
		off = be64toh(rq.off);
		len = be32toh(rq.len);
		rq.type = be16toh(rq.type);
		rq.flags = be16toh(rq.flags);
		bad = len > sizeof(buf) || off > d.size || len > d.size - off;

		switch (rq.type) {
		case NBD_CMD_READ:
			d.reads++;
			if (bad) {
				rp.error = htobe32(NBD_EINVAL);
				len = 0;
			} else {
				do_read(buf, off, len);
			}
			if (xfer(c, &rp, sizeof(rp), 1) || xfer(c, buf, len, 1))
				return;
			break;
		case NBD_CMD_WRITE:
			d.writes++;
			if (len > sizeof(buf))
				die("write of %u bytes: larger than the buffer", len);
			if (xfer(c, buf, len, 0))
				return;
			if (bad) {
				rp.error = htobe32(NBD_EINVAL);
			} else {
				d.fua += !!(rq.flags & NBD_CMD_FLAG_FUA);
				do_write(buf, off, len, rq.flags & NBD_CMD_FLAG_FUA);
			}
			if (xfer(c, &rp, sizeof(rp), 1))
				return;
			break;
		case NBD_CMD_FLUSH:
			d.flushes++;
			if (!d.lying)
				commit_all();
			if (xfer(c, &rp, sizeof(rp), 1))
				return;
			break;
		case NBD_CMD_DISC:
			/* A clean shutdown: QEMU flushed before it. */
			d.clean_disc = 1;
			return;
		default:
			rp.error = htobe32(NBD_EINVAL);
			if (xfer(c, &rp, sizeof(rp), 1))
				return;
		}
	}
}

static void write_stats(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		die("%s: %s", path, strerror(errno));
	fprintf(f, "reads %llu\nwrites %llu\nflushes %llu\nfua %llu\n"
		"sectors_written %llu\nsectors_flushed %llu\n"
		"sectors_lost %llu\nsectors_kept %llu\nclean_disc %d\n",
		(unsigned long long)d.reads, (unsigned long long)d.writes,
		(unsigned long long)d.flushes, (unsigned long long)d.fua,
		(unsigned long long)d.sectors_written,
		(unsigned long long)d.sectors_flushed,
		(unsigned long long)d.lost, (unsigned long long)d.kept,
		d.clean_disc);
	fclose(f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lose", required_argument, NULL, 'l' },
		{ "seed", required_argument, NULL, 's' },
		{ "lying", no_argument, NULL, 'L' },
		{ "ready", required_argument, NULL, 'r' },
		{ "stats", required_argument, NULL, 'S' },
		{ 0 }
	};
	const char *ready = NULL, *stats = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int o, l, c;

	d.rng = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'l':
			if (!strcmp(optarg, "all"))
				d.lose = LOSE_ALL;
			else if (!strcmp(optarg, "random"))
				d.lose = LOSE_RANDOM;
			else if (!strcmp(optarg, "none"))
				d.lose = LOSE_NONE;
			else
				die("--lose all|random|none");
			break;
		case 's':
			d.rng = strtoull(optarg, NULL, 0) | 1;
			break;
		case 'L':
			d.lying = 1;
			break;
		case 'r':
			ready = optarg;
			break;
		case 'S':
			stats = optarg;
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2)
		die("usage: crashdisk [--lose all|random|none] [--seed N] [--lying] "
		    "[--ready FILE] [--stats FILE] SOCKET IMAGE");

	d.img = open(argv[optind + 1], O_RDWR | O_CLOEXEC);
	if (d.img < 0 || fstat(d.img, &st))
		die("%s: %s", argv[optind + 1], strerror(errno));
	d.size = st.st_size;
	if (!d.size || d.size % BLOCK)
		die("%s: size must be a non-zero multiple of %d", argv[optind + 1],
		    BLOCK);
	d.cache = calloc(d.size / BLOCK, sizeof(*d.cache));
	d.dirty = calloc(d.size / BLOCK, 1);
	if (!d.cache || !d.dirty)
		die("out of memory");

	if (strlen(argv[optind]) >= sizeof(sa.sun_path))
		die("socket path too long");
	strcpy(sa.sun_path, argv[optind]);
	unlink(sa.sun_path);
	l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) || listen(l, 1))
		die("%s: %s", sa.sun_path, strerror(errno));
	if (ready) {
		o = open(ready, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (o < 0)
			die("%s: %s", ready, strerror(errno));
		close(o);
	}
	/*
	 * QEMU killed while a reply is being sent: the write fails (EPIPE),
	 * and that is the power cut, not a reason to die without cutting and
	 * without the counters.
	 */
	signal(SIGPIPE, SIG_IGN);
	c = accept(l, NULL, NULL);
	if (c < 0)
		die("accept: %s", strerror(errno));
	close(l);
	unlink(sa.sun_path);

	handshake(c);
	serve(c);
	/* After a clean NBD_CMD_DISC nothing is dirty unless the disk lies. */
	power_cut();
	if (stats)
		write_stats(stats);
	return 0;
}
