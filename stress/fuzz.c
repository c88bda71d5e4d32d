// SPDX-License-Identifier: GPL-2.0
/*
 * fuzz: an ioctl fuzzer for /dev/aiofsync, run as root in a guest (the
 * debug kernel: KASAN, lockdep, kmemleak, panic_on_warn).
 *
 * It works in rounds, each seeded from the run's seed and its number (a
 * round of one thread replays exactly with --seed S --round R). A round is
 * one of these scenarios:
 *
 *   single   one context, ~200 ioctls: random and boundary values in every
 *            field of SUBMIT, REAP, CANCEL and GET_INFO, unknown commands;
 *            bad, unaligned, read-only, PROT_NONE, unmapped, straddling,
 *            kernel and non-canonical pointers for the argument, the
 *            request array, the event array and the buffers; huge counts,
 *            duplicate tags, every kind of descriptor (pipes, sockets,
 *            O_PATH, O_DIRECT, read-only, the device itself, closed ones,
 *            numbers reused by another file after submit); buffers that
 *            stall on a userfaultfd, a MAP_SHARED mapping of the file being
 *            written, SIGALRM during an infinite reap
 *   limits   the same with module parameters made tiny (max_ctx_requests,
 *            max_requests, max_ctx_active down to 0), restored after
 *   unmap    READ/WRITE buffers munmap()ed, mprotect()ed or MADV_DONTNEED
 *            right after submit
 *   storm    8 threads on two shared contexts: submit, reap (with signals),
 *            cancel, close and reopen the contexts and the target files
 *            under each other (dup2), map and unmap buffers, fork children
 *            that submit on the shared contexts
 *   kill9    a child with 10,000 requests in flight is killed with SIGKILL
 *            (or exits) at a random moment
 *   forkexec requests in flight across fork(), and a child that submits
 *            on the inherited context and then exec()s
 *
 * What it checks besides the kernel's own detectors: every errno is one
 * the documentation lists for that ioctl; every event carries a tag this
 * context submitted, with that tag's opcode, res2 0, known flags and a
 * plausible res; each accepted request completes exactly once (per tag,
 * counting duplicates) once stalls are released and everything cancelled;
 * no event is lost when reaping into a faulting array; and at every
 * quiescent point the module's in_flight and unreaped counters are 0.
 * Each round writes "fuzz: round R" to /dev/kmsg, so a splat in the console
 * names the round.
 *
 *   fuzz [--seed S] [--seconds T] [--calls N] [--round R] [--dir DIR]
 *        [--only SCENARIO] [--threads K] [-v]
 *
 * Prints the seed, then the number of ioctl calls, results by errno and
 * completions by result. Exit 0, or 1 on the first broken check (with the
 * seed and the round).
 */
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/userfaultfd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/aiofsync.h>

#define PAGE		4096UL
#define BUF_SIZE	(8UL << 20)
#define MAX_RW		0x7ffff000ULL		/* MAX_RW_COUNT on 4 KiB pages */
#define KERNEL_ADDR	0xffff888000000000ULL
#define NONCANON	0x0000800000000000ULL
#define TASK_END	0x00007ffffffff000ULL	/* TASK_SIZE_MAX: nothing maps above */
#define NR_FDS		24
#define MAP_BITS	16
#define KILL9_REQS	10000

/* ---- random numbers: one generator per thread, seeded per round ---- */

static _Thread_local uint64_t rng;

static uint64_t r64(void)
{
	uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t rn(uint64_t n) { return n ? r64() % n : 0; }
static bool one_in(unsigned int n) { return rn(n) == 0; }

/* A value for a field of @bits bits: boundaries, small, or anything. */
static uint64_t rval(int bits)
{
	static const uint64_t edges[] = {
		0, 1, 2, 3, 7, 8, 20, 21, 63, 64, 65, 4095, 4096, 4097,
		INT_MAX, (uint64_t)INT_MAX + 1, UINT_MAX, (uint64_t)UINT_MAX + 1,
		LLONG_MAX, (uint64_t)LLONG_MAX + 1, (uint64_t)LLONG_MAX - 1,
		MAX_RW, MAX_RW + 1, ~0ULL, ~0ULL - 1, 1ULL << 32, 1ULL << 63,
	};
	uint64_t v;

	switch (rn(4)) {
	case 0: v = edges[rn(sizeof(edges) / sizeof(edges[0]))]; break;
	case 1: v = rn(256); break;
	case 2: v = 1ULL << rn(64); break;
	default: v = r64(); break;
	}
	return bits == 64 ? v : v & ((1ULL << bits) - 1);
}

/* Now and then (one time in @n) a random or boundary value instead of @v. */
static uint64_t or_wild(unsigned int n, uint64_t v, int bits)
{
	return one_in(n) ? rval(bits) : v;
}

/* ---- what the run counts and checks ---- */

static struct {
	uint64_t seed, calls_max, round, only_round;
	double seconds;
	const char *dir, *only;
	int threads, verbose;
	bool one_round;
} opt = { .seconds = 30, .dir = "/mnt/scratch/fuzz", .threads = 8 };

static atomic_ullong n_calls, n_accepted, n_events, n_rounds;
static atomic_ullong n_errno[135], n_res[135], n_res_ok;
static atomic_ullong n_scen[6];
static atomic_int failed;
static atomic_ullong round_started;	/* round number + 1, 0 between rounds */
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static int kmsg = -1;

static void failure(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_lock);
	if (!atomic_exchange(&failed, 1)) {
		fprintf(stderr, "fuzz: FAILED in round %llu (seed %llu): ",
			(unsigned long long)opt.round, (unsigned long long)opt.seed);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
		fprintf(stderr, "fuzz: replay: --seed %llu --round %llu\n",
			(unsigned long long)opt.seed, (unsigned long long)opt.round);
	}
	pthread_mutex_unlock(&fail_lock);
}

static void kmsg_note(const char *fmt, ...)
{
	char line[160];
	va_list ap;
	int n;

	if (kmsg < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (write(kmsg, line, n) < 0)
		return;
}

/* ---- the world: descriptors and memory the requests point at ---- */

enum fdkind {
	FD_FILE0, FD_FILE1, FD_FILE2, FD_FILE3, FD_RDONLY, FD_WRONLY, FD_APPEND,
	FD_DIRECT, FD_DIR, FD_PIPE_R, FD_PIPE_W, FD_SOCK, FD_EVENTFD, FD_EVENTFD2,
	FD_PATH, FD_NULL, FD_MEMFD, FD_TMPFS, FD_DEVICE, FD_CLOSED, FD_SWAP,
	FD_PROCFILE, FD_DEVZERO, FD_UFFD,
};

static struct {
	int fd[NR_FDS];
	char *buf;		/* BUF_SIZE bytes, read-write */
	char *ro, *none;	/* read-only, PROT_NONE pages */
	char *fmap;		/* MAP_SHARED of file 0, 1 MiB */
	char *volatile_map;	/* storm: mapped and unmapped by threads */
	pthread_mutex_t volatile_lock;
} w;

/*
 * A writable page followed by one that faults, per thread: what is placed
 * just before the boundary (arrays, structs) runs into it, and must not be
 * overwritten by another thread. The faulting page is PROT_NONE rather than
 * unmapped: an unmapped page is a gap that a later mmap() may fill, and
 * then the "hole" is memory that the kernel reads or writes.
 */
static _Thread_local char *t_hole;
/* The same for READ/WRITE buffers, which workers write at any time. */
static _Thread_local char *b_hole;

/*
 * What a thread hands the kernel to read or fill: arrays of requests, of
 * events, the info struct. In a guarded mapping of their own, not in
 * thread-local storage (which lies next to the thread's control block).
 */
struct tbufs {
	char arr[64 * 4200];
	struct aiofsync_event evs[256];
	char area[8192];
};

static _Thread_local struct tbufs *tb;

static char *make_hole(void)
{
	char *m = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED || mprotect(m + PAGE, PAGE, PROT_NONE)) {
		perror("fuzz: mmap");
		exit(2);
	}
	memset(m, 0x5a, PAGE);
	return m + PAGE;
}

static void *guarded_map(size_t len, int prot, int flags, int fd);

static void make_holes(void)
{
	t_hole = make_hole();
	b_hole = make_hole();
	tb = guarded_map(sizeof(*tb), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (tb == MAP_FAILED) {
		perror("fuzz: mmap");
		exit(2);
	}
}

static void die(const char *what)
{
	fprintf(stderr, "fuzz: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int open_in(const char *name, int flags)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", opt.dir, name);
	fd = open(path, flags | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		die(path);
	return fd;
}

/*
 * A mapping with a PROT_NONE page on each side. A READ runs from where its
 * buffer starts until it faults: it must never reach a mapping it was not
 * aimed at (the fuzzer's own memory), so every region buffers point into
 * ends in a guard.
 */
static void *guarded_map(size_t len, int prot, int flags, int fd)
{
	char *r = mmap(NULL, len + 2 * PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (r == MAP_FAILED)
		return MAP_FAILED;
	if (mmap(r + PAGE, len, prot, flags | MAP_FIXED, fd, 0) == MAP_FAILED) {
		munmap(r, len + 2 * PAGE);
		return MAP_FAILED;
	}
	return r + PAGE;
}

static void guarded_unmap(void *p, size_t len)
{
	munmap((char *)p - PAGE, len + 2 * PAGE);
}

static void world_init(void)
{
	int p[2], s[2];
	char *m;

	mkdir(opt.dir, 0755);
	w.fd[FD_FILE0] = open_in("f0", O_RDWR);
	w.fd[FD_FILE1] = open_in("f1", O_RDWR);
	w.fd[FD_FILE2] = open_in("f2", O_RDWR);
	w.fd[FD_FILE3] = open_in("f3", O_RDWR);
	w.fd[FD_RDONLY] = open_in("f0", O_RDONLY);
	w.fd[FD_WRONLY] = open_in("f1", O_WRONLY);
	w.fd[FD_APPEND] = open_in("f2", O_WRONLY | O_APPEND);
	w.fd[FD_DIRECT] = open_in("f3", O_RDWR | O_DIRECT);
	w.fd[FD_DIR] = open(opt.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s))
		die("pipe");
	w.fd[FD_PIPE_R] = p[0];
	w.fd[FD_PIPE_W] = p[1];
	w.fd[FD_SOCK] = s[0];
	w.fd[FD_EVENTFD] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	w.fd[FD_EVENTFD2] = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
	w.fd[FD_PATH] = open(opt.dir, O_PATH | O_CLOEXEC);
	w.fd[FD_NULL] = open("/dev/null", O_RDWR | O_CLOEXEC);
	w.fd[FD_MEMFD] = memfd_create("fuzz", MFD_CLOEXEC);
	w.fd[FD_TMPFS] = open("/tmp/fuzz-tmpfs", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	w.fd[FD_DEVICE] = open(AIOFSYNC_DEVICE, O_RDWR | O_CLOEXEC);
	w.fd[FD_CLOSED] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	close(w.fd[FD_CLOSED]);		/* a number that is not open */
	w.fd[FD_SWAP] = open_in("swap", O_RDWR);
	w.fd[FD_PROCFILE] = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	w.fd[FD_DEVZERO] = open("/dev/zero", O_RDWR | O_CLOEXEC);
	w.fd[FD_UFFD] = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	for (int i = 0; i < NR_FDS; i++)
		if (w.fd[i] < 0 && i != FD_CLOSED && i != FD_UFFD)
			die("opening the descriptors");
	if (ftruncate(w.fd[FD_FILE0], 1 << 20) || ftruncate(w.fd[FD_MEMFD], 1 << 20))
		die("ftruncate");

	w.buf = guarded_map(BUF_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1);
	/* [rw][ro][none]: ro and none end in a fault too. */
	m = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	w.fmap = guarded_map(1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, w.fd[FD_FILE0]);
	if (w.buf == MAP_FAILED || m == MAP_FAILED || w.fmap == MAP_FAILED)
		die("mmap");
	for (size_t i = 0; i < BUF_SIZE; i += 8)
		memcpy(w.buf + i, &i, 8);
	memset(m, 0x5a, 3 * PAGE);
	w.ro = m + PAGE;
	w.none = m + 2 * PAGE;
	if (mprotect(w.ro, PAGE, PROT_READ) || mprotect(w.none, PAGE, PROT_NONE))
		die("mprotect");
	make_holes();
	pthread_mutex_init(&w.volatile_lock, NULL);
}

/* A descriptor number for a request's fd. */
static uint32_t pick_fd(void)
{
	if (one_in(12))
		return (uint32_t)rval(32);
	/* Mostly the writable files, so that requests get accepted. */
	if (rn(3))
		return w.fd[FD_FILE0 + rn(4)];
	return (uint32_t)w.fd[rn(NR_FDS)];
}

/* A uffd-registered region whose pages block the worker until released. */
struct stall {
	int uffd;
	char *addr;
	size_t len;
};

static void stall_make(struct stall *s, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };

	s->len = len;
	s->addr = NULL;
	s->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (s->uffd < 0 || ioctl(s->uffd, UFFDIO_API, &api))
		goto none;
	s->addr = guarded_map(len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (s->addr == MAP_FAILED)
		goto none;
	reg.range.start = (uintptr_t)s->addr;
	reg.range.len = len;
	if (!ioctl(s->uffd, UFFDIO_REGISTER, &reg))
		return;
none:
	if (s->uffd >= 0)
		close(s->uffd);
	s->uffd = -1;
	s->addr = NULL;
}

/* Let every stalled copy go on: the pages get filled. */
static void stall_release(struct stall *s)
{
	struct uffdio_zeropage z = { .mode = 0 };

	if (!s->addr)
		return;
	z.range.start = (uintptr_t)s->addr;
	z.range.len = s->len;
	if (ioctl(s->uffd, UFFDIO_ZEROPAGE, &z) && errno != EEXIST) {
		/* Some pages were filled already: page by page. */
		for (size_t o = 0; o < s->len; o += PAGE) {
			z.range.start = (uintptr_t)s->addr + o;
			z.range.len = PAGE;
			ioctl(s->uffd, UFFDIO_ZEROPAGE, &z);
		}
	}
	/* Without the registration, later faults are ordinary. */
	guarded_unmap(s->addr, s->len);
	close(s->uffd);
	s->addr = NULL;
	s->uffd = -1;
}

/*
 * An address for the buffer of a READ or WRITE of @len bytes. A READ writes
 * there, from a worker, at any time until it completes: nothing the fuzzer
 * itself relies on may be reachable (its own arrays are at t_hole, never
 * here; an address near the top of user space may be the stack).
 */
static uint64_t pick_ptr(size_t len, const struct stall *st)
{
	switch (rn(20)) {
	case 0: return 0;
	case 1: return KERNEL_ADDR + rn(1 << 20);
	case 2: return NONCANON - rn(2) * 8;
	case 3: return r64() | NONCANON;
	case 4: return (uintptr_t)w.ro + rn(PAGE);
	case 5: return (uintptr_t)w.none + rn(PAGE);
	case 6: return (uintptr_t)b_hole + rn(PAGE);
	case 7: return (uintptr_t)b_hole - 1 - rn(len < PAGE ? len + 1 : PAGE);
	case 8: return (uintptr_t)w.fmap + rn(1 << 20);
	case 9:
		if (st && st->addr)
			return (uintptr_t)st->addr + rn(st->len);
		/* fall through */
	case 10: return TASK_END + rn(2) * PAGE;
	default: {
		/*
		 * One draw for the alignment: two (one to divide, one to
		 * multiply) put a buffer up to 8 x BUF_SIZE past w.buf, into
		 * libc's data, where a READ from a sparse file wrote zeros.
		 */
		uint64_t align = one_in(3) ? 1 : 8;

		if (len >= BUF_SIZE)
			return (uintptr_t)w.buf;
		return (uintptr_t)w.buf + rn(BUF_SIZE - len) / align * align;
	}
	}
}

/*
 * An address for an ioctl's argument or array that the kernel must refuse
 * or fault on: nothing readable there could pass for a request.
 */
static uint64_t pick_bad_ptr(size_t len)
{
	switch (rn(8)) {
	case 0: return 0;
	case 1: return KERNEL_ADDR + rn(1 << 20);
	case 2: return NONCANON - rn(2) * 8;
	case 3: return r64() | NONCANON;
	case 4: return (uintptr_t)w.none + rn(PAGE);
	case 5: return (uintptr_t)t_hole + rn(PAGE);
	case 6: return TASK_END + rn(16);
	default: return (uintptr_t)t_hole - 1 - rn(len < PAGE ? len : PAGE - 1);
	}
}

/* ---- per-context bookkeeping: every accepted tag completes once ---- */

struct tagent {
	uint64_t tag;
	uint32_t count;
	uint32_t opmask;
};

struct ctx {
	int fd;
	uint32_t sig;		/* upper half of every tag of this context */
	bool track;		/* exact accounting (one thread, no swaps) */
	uint64_t accepted, reaped, next_tag, recent[8];
	struct tagent *map;
	/* The last requests offered to SUBMIT, for the report of a mismatch. */
	struct offered {
		uint64_t tag, addr, len;
		uint32_t opcode, fd;
		int32_t ret;		/* the SUBMIT's return value */
		uint16_t idx;		/* position in its array */
	} *log;
	unsigned int nlog;
};

#define LOG_SIZE	65536

/* Note what one SUBMIT offered (@n requests at @reqs) and what it returned. */
static void offer_log(struct ctx *c, const void *reqs, uint32_t n, uint32_t stride,
		      long ret)
{
	if (!c->log)
		return;
	for (uint32_t i = 0; i < n && i < 64; i++) {
		struct aiofsync_req r;
		struct offered *o = &c->log[c->nlog++ % LOG_SIZE];

		memcpy(&r, (const char *)reqs + (size_t)i * stride, sizeof(r));
		*o = (struct offered){ r.user_tag, r.addr, r.len, r.opcode, r.fd,
				       (int32_t)ret, (uint16_t)i };
	}
}

static void offer_dump(const struct ctx *c, uint64_t tag)
{
	for (unsigned int i = 0; c->log && i < LOG_SIZE && i < c->nlog; i++) {
		const struct offered *o = &c->log[i];

		if (o->tag == tag)
			fprintf(stderr, "fuzz:   offered: opcode %u fd %u addr %#llx len %llu, "
				"at %u of a SUBMIT that returned %d\n", o->opcode, o->fd,
				(unsigned long long)o->addr, (unsigned long long)o->len,
				o->idx, o->ret);
	}
}

static struct tagent *tag_slot(struct ctx *c, uint64_t tag)
{
	uint64_t i = (tag * 0x9E3779B97F4A7C15ULL) >> (64 - MAP_BITS);

	for (;;) {
		struct tagent *e = &c->map[i];

		if (!e->count && !e->opmask) {
			e->tag = tag;
			return e;
		}
		if (e->tag == tag)
			return e;
		i = (i + 1) & ((1 << MAP_BITS) - 1);
	}
}

static void ctx_init(struct ctx *c, int fd, bool track)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->sig = (uint32_t)r64() | 1;
	c->track = track;
	if (track) {
		c->map = calloc(1 << MAP_BITS, sizeof(*c->map));
		c->log = calloc(LOG_SIZE, sizeof(*c->log));
		if (!c->map || !c->log)
			die("calloc");
	}
}

static void ctx_free(struct ctx *c)
{
	free(c->map);
	free(c->log);
	c->map = NULL;
	c->log = NULL;
}

static uint64_t new_tag(struct ctx *c)
{
	uint64_t low;

	/* Duplicates on purpose, now and then. */
	if (one_in(6))
		low = c->recent[rn(8)] & 0xffffffff;
	else if (one_in(20))
		low = 0;
	else
		low = ++c->next_tag;
	c->recent[rn(8)] = low;
	return (uint64_t)c->sig << 32 | low;
}

static void count_errno(int e)
{
	atomic_fetch_add(&n_errno[e > 0 && e < 134 ? e : 134], 1);
}

static bool errno_in(int e, const int *ok)
{
	for (; *ok; ok++)
		if (*ok == e)
			return true;
	return false;
}

/* ---- the four ioctls ---- */

static const int submit_errs[] = { EFAULT, EINVAL, EBADF, ESPIPE, EAGAIN, ENOMEM, 0 };
static const int reap_errs[] = { EINVAL, EFAULT, EINTR, 0 };
static const int cancel_errs[] = { EINVAL, EBADF, EFAULT, 0 };
static const int info_errs[] = { EINVAL, EFAULT, 0 };

/* ioctl() on the device, counted; errors checked against @ok. */
static long dev_ioctl(struct ctx *c, unsigned long cmd, void *arg, const int *ok,
		      const char *name)
{
	long ret = ioctl(c->fd, cmd, arg);
	int e = errno;

	atomic_fetch_add(&n_calls, 1);
	if (ret < 0) {
		count_errno(e);
		/* EBADF/ENOTTY: the number may have been closed or reused. */
		if (ok && !errno_in(e, ok) && !(!c->track && (e == EBADF || e == ENOTTY)))
			failure("%s: unexpected errno %d (%s)", name, e, strerror(e));
	}
	errno = e;
	return ret;
}

static void fill_req(struct ctx *c, struct aiofsync_req *r, const struct stall *st)
{
	static const uint32_t ops[] = {
		AIOFSYNC_OP_WRITE, AIOFSYNC_OP_WRITE, AIOFSYNC_OP_WRITE,
		AIOFSYNC_OP_READ, AIOFSYNC_OP_READ, AIOFSYNC_OP_FSYNC,
		AIOFSYNC_OP_FSYNC, AIOFSYNC_OP_FDATASYNC,
	};
	bool rw;

	memset(r, 0, sizeof(*r));
	r->user_tag = new_tag(c);
	r->opcode = one_in(12) ? (uint32_t)rval(32) : ops[rn(8)];
	rw = r->opcode == AIOFSYNC_OP_WRITE || r->opcode == AIOFSYNC_OP_READ;
	r->fd = pick_fd();
	if (one_in(10)) {
		r->flags = AIOFSYNC_REQ_EVENTFD;
		r->resfd = one_in(4) ? pick_fd() : (uint32_t)w.fd[FD_EVENTFD + rn(2)];
	} else if (one_in(30)) {
		r->flags = (uint32_t)rval(32);
		r->resfd = (uint32_t)rval(32);
	}
	r->prio = one_in(10) ? (uint32_t)rval(32) : rn(AIOFSYNC_PRIO_MAX + 1);
	if (one_in(10))
		r->offset = rval(64);
	else {
		uint64_t align = one_in(2) ? 1 : 512;

		r->offset = rn(32 << 20) / align * align;
	}
	if (rw) {
		if (one_in(10))
			r->len = rval(64);
		else if (one_in(20))
			r->len = 1 << (16 + rn(5));
		else
			r->len = rn(65536) + 1;
		r->addr = pick_ptr(r->len, st);
	} else {
		r->len = one_in(4) ? rval(64) : 0;
		r->addr = one_in(15) ? pick_ptr(8, st) : 0;
	}
	r->reserved0 = or_wild(40, 0, 32);
	r->reserved1 = or_wild(40, 0, 64);
}

static void do_submit(struct ctx *c, const struct stall *st)
{
	static const uint32_t sizes[] = { 64, 64, 64, 64, 64, 64, 72, 128, 4096,
					  0, 1, 32, 63, 65, 4097, UINT_MAX };
	char *arr = tb->arr;
	struct aiofsync_submit s = { 0 }, *sp = &s;
	uint32_t nr, stride = sizes[rn(16)], room;
	long ret;

	nr = one_in(15) ? (uint32_t)rval(32) : 1 + rn(one_in(4) ? 64 : 8);
	/* The array as far as it fits; a huge nr runs into whatever follows. */
	room = stride >= 64 && stride <= 4096 ? sizeof(tb->arr) / stride : 0;
	for (uint32_t i = 0; i < nr && i < room; i++) {
		struct aiofsync_req r;

		fill_req(c, &r, st);
		memcpy(arr + (size_t)i * stride, &r, sizeof(r));
		if (stride > sizeof(r))
			memset(arr + (size_t)i * stride + sizeof(r),
			       one_in(20) ? 0xff : 0, stride - sizeof(r));
	}
	s.nr = nr;
	s.req_size = stride;
	s.reqs = (uintptr_t)arr;
	if (stride >= 64 && stride <= PAGE && (nr > room || one_in(8))) {
		/*
		 * The array ends where the memory does: the first k requests
		 * are read, then the copy faults. (A huge nr always goes this
		 * way, so that nothing past our array passes for a request.)
		 */
		size_t k = 1 + rn(PAGE / stride);

		if (k > nr)
			k = nr;
		s.reqs = (uintptr_t)t_hole - k * stride;
		memcpy((void *)(uintptr_t)s.reqs, arr, k * stride);
	} else if (one_in(15)) {
		s.reqs = pick_bad_ptr((size_t)nr * stride);
	}
	s.flags = or_wild(30, 0, 32);
	s.reserved = or_wild(30, 0, 32);
	if (one_in(25))
		sp = (void *)(uintptr_t)pick_bad_ptr(sizeof(s));

	ret = dev_ioctl(c, AIOFSYNC_IOC_SUBMIT, sp, submit_errs, "SUBMIT");
	if (sp == &s && stride >= 64 && stride <= PAGE && (s.reqs == (uintptr_t)arr ||
			 (s.reqs >= (uintptr_t)t_hole - PAGE && s.reqs < (uintptr_t)t_hole)))
		offer_log(c, (void *)(uintptr_t)s.reqs,
			  s.reqs == (uintptr_t)arr ? nr : ((uintptr_t)t_hole - s.reqs) / stride,
			  stride, ret);
	if (ret <= 0)
		return;
	if (sp != &s) {
		/* Read from elsewhere: what was accepted is unknown. */
		c->track = false;
		return;
	}
	if ((uint64_t)ret > nr || (ret == 0 && nr))
		failure("SUBMIT returned %ld for nr %u", ret, nr);
	atomic_fetch_add(&n_accepted, ret);
	c->accepted += ret;
	if (!c->track)
		return;
	for (long i = 0; i < ret; i++) {
		struct aiofsync_req r;
		struct tagent *e;

		memcpy(&r, (char *)(uintptr_t)s.reqs + (size_t)i * stride, sizeof(r));
		e = tag_slot(c, r.user_tag);
		e->count++;
		e->opmask |= 1U << (r.opcode & 31);
	}
}

static void check_event(struct ctx *c, const struct aiofsync_event *ev)
{
	bool sync = ev->opcode == AIOFSYNC_OP_FSYNC || ev->opcode == AIOFSYNC_OP_FDATASYNC;
	long long res = ev->res;

	atomic_fetch_add(&n_events, 1);
	if (res >= 0)
		atomic_fetch_add(&n_res_ok, 1);
	else
		atomic_fetch_add(&n_res[-res < 134 ? -res : 134], 1);
	if ((ev->user_tag >> 32) != c->sig)
		failure("event with a tag this context never used: %#llx (res %lld)",
			(unsigned long long)ev->user_tag, res);
	if (ev->opcode < 1 || ev->opcode > 4 || ev->res2 ||
	    (ev->flags & ~AIOFSYNC_EV_SHARED_FLUSH) ||
	    (ev->flags && !sync) || res < -4095 || (sync && res > 0) ||
	    res > (long long)MAX_RW)
		failure("implausible event: tag %#llx opcode %u res %lld res2 %lld flags %#x",
			(unsigned long long)ev->user_tag, ev->opcode, res,
			(long long)ev->res2, ev->flags);
	if (c->track) {
		struct tagent *e = tag_slot(c, ev->user_tag);

		if (!e->count) {
			failure("%s completion for tag %#llx (opcode %u, res %lld)",
				e->opmask ? "one completion too many" : "a never submitted",
				(unsigned long long)ev->user_tag, ev->opcode, res);
			offer_dump(c, ev->user_tag);
		}
		else if (!(e->opmask & (1U << (ev->opcode & 31))))
			failure("tag %#llx completed as opcode %u, submitted as mask %#x",
				(unsigned long long)ev->user_tag, ev->opcode, e->opmask);
		else
			e->count--;
	}
}

static void on_alarm(int sig) { (void)sig; }

/* The fuzzer's own bug: say where, and in which round. */
static void on_crash(int sig, siginfo_t *si, void *uc)
{
	void *bt[32];
	char line[160];
	int n = snprintf(line, sizeof(line), "fuzz: signal %d at %p in round %llu (seed %llu)\n",
			 sig, si->si_addr, (unsigned long long)opt.round,
			 (unsigned long long)opt.seed);

	(void)uc;
	if (write(2, line, n) < 0)
		_exit(3);
	backtrace_symbols_fd(bt, backtrace(bt, 32), 2);
	/* What is mapped around the address (not signal-safe: we are dying). */
	{
		FILE *f = fopen("/proc/self/maps", "r");
		unsigned long a, b, addr = (unsigned long)si->si_addr;

		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "%lx-%lx", &a, &b) == 2 &&
			    b + (1 << 20) > addr && a < addr + (1 << 20))
				fprintf(stderr, "fuzz:   map %s", line);
	}
	_exit(3);
}

/*
 * A per-thread timer: SIGALRM to this thread after @ms, then every 20 ms
 * (a signal that comes before the wait begins must not leave it endless);
 * 0 stops it.
 */
static void arm_alarm(timer_t *t, int ms)
{
	struct itimerspec its = {
		.it_value = { ms / 1000, (ms % 1000) * 1000000L },
		.it_interval = { 0, ms ? 20 * 1000000L : 0 },
	};

	timer_settime(*t, 0, &its, NULL);
}

static timer_t make_timer(void)
{
	struct sigevent sev = {
		.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGALRM,
	};
	timer_t t;

	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &t))
		die("timer_create");
	return t;
}

static _Thread_local timer_t thread_timer;

/* The crash report needs a stack even when the fault is an overflow. */
static void alt_stack(void)
{
	stack_t ss = { .ss_size = 1 << 16 };

	ss.ss_sp = malloc(ss.ss_size);
	if (ss.ss_sp)
		sigaltstack(&ss, NULL);
}

static long do_reap(struct ctx *c, bool wild)
{
	struct aiofsync_event *evs = tb->evs;
	struct aiofsync_reap r = { .events = (uintptr_t)evs }, *rp = &r;
	struct aiofsync_event *out = evs;
	bool infinite = false;
	long ret;

	r.max_nr = 1 + rn(256);
	r.min_nr = rn(r.max_nr + 1) / (one_in(3) ? 1 : 4);
	r.timeout_ns = one_in(2) ? 0 : rn(3) * 1000000ULL;
	if (wild) {
		r.max_nr = or_wild(8, r.max_nr, 32);
		r.min_nr = or_wild(8, r.min_nr, 32);
		r.timeout_ns = or_wild(10, r.timeout_ns, 64);
		r.flags = or_wild(12, 0, 32);
		r.fg_takes = or_wild(12, 0, 32);
		if (one_in(8)) {
			/* Events into a read-only page or across the hole. */
			out = (void *)(uintptr_t)(one_in(2) ? (uintptr_t)w.ro :
				(uintptr_t)t_hole - (1 + rn(4)) * sizeof(*evs));
			r.events = (uintptr_t)out;
			if (r.max_nr > 4)
				r.max_nr = 4 + rn(8);
			if (r.min_nr > r.max_nr)
				r.min_nr = r.max_nr;
		} else if (one_in(15)) {
			r.events = pick_bad_ptr(sizeof(*evs));
			out = NULL;
		}
		if (one_in(25)) {
			rp = (void *)(uintptr_t)pick_bad_ptr(sizeof(r));
			out = NULL;
		}
	}
	if (r.max_nr > 256 && out == evs)
		r.max_nr = 256;
	/* A wait that may not end: a signal ends it (EINTR, nothing taken). */
	if (r.timeout_ns > 50000000ULL || one_in(40)) {
		if (one_in(2))
			r.timeout_ns = AIOFSYNC_TIMEOUT_INFINITE;
		infinite = true;
		arm_alarm(&thread_timer, 1 + rn(30));
	}
	/* Either number: REAP_TAKES also writes fg_takes back. */
	ret = dev_ioctl(c, one_in(2) ? AIOFSYNC_IOC_REAP_TAKES : AIOFSYNC_IOC_REAP,
			rp, reap_errs, "REAP");
	if (infinite)
		arm_alarm(&thread_timer, 0);
	if (ret <= 0)
		return ret;
	if (rp != &r || !out) {
		/* Events stored where we cannot read them: no more accounting. */
		c->track = false;
		return ret;
	}
	if ((uint64_t)ret > r.max_nr)
		failure("REAP returned %ld for max_nr %u", ret, r.max_nr);
	c->reaped += ret;
	for (long i = 0; i < ret; i++)
		check_event(c, &out[i]);
	return ret;
}

static void do_cancel(struct ctx *c)
{
	static const uint32_t sels[] = { AIOFSYNC_CANCEL_TAG, AIOFSYNC_CANCEL_FD,
					 AIOFSYNC_CANCEL_ALL };
	struct aiofsync_cancel a = { 0 }, *ap = &a;
	long ret;

	a.flags = one_in(10) ? (uint32_t)rval(32) : sels[rn(3)];
	if (a.flags == AIOFSYNC_CANCEL_FD || one_in(20))
		a.fd = pick_fd();
	if (a.flags == AIOFSYNC_CANCEL_TAG || one_in(20))
		a.user_tag = one_in(10) ? rval(64) : (uint64_t)c->sig << 32 | c->recent[rn(8)];
	a.canceled = or_wild(20, 0, 32);
	a.running = or_wild(20, 0, 32);
	if (one_in(20))
		ap = (void *)(uintptr_t)pick_bad_ptr(sizeof(a));
	ret = dev_ioctl(c, AIOFSYNC_IOC_CANCEL, ap, cancel_errs, "CANCEL");
	if (!ret && ap == &a && (uint64_t)a.canceled + a.running > c->accepted - c->reaped &&
	    c->track)
		failure("CANCEL counted %u + %u, but only %llu requests are unreaped",
			a.canceled, a.running,
			(unsigned long long)(c->accepted - c->reaped));
}

static void do_info(struct ctx *c)
{
	static const uint32_t sizes[] = { 0, 4, 7, 8, 9, 16, 47, 48, 49, 4096, UINT_MAX };
	char *area = tb->area;
	struct aiofsync_info *ip = (void *)area;
	uint32_t size = sizes[rn(11)];
	long ret;

	if (one_in(6))
		/* The struct ends where the memory does. */
		ip = (void *)(t_hole - 8 - rn(48));
	else if (one_in(10))
		ip = (void *)(uintptr_t)pick_bad_ptr(8);
	if ((char *)ip + 8 <= t_hole && (char *)ip >= t_hole - PAGE)
		memcpy(ip, &size, 4);
	else if (ip == (void *)area)
		memcpy(area, &size, 4);
	ret = dev_ioctl(c, AIOFSYNC_IOC_GET_INFO, ip, info_errs, "GET_INFO");
	if (!ret && ip == (void *)area) {
		struct aiofsync_info inf;

		memcpy(&inf, area, sizeof(inf));
		if (inf.size != sizeof(inf))
			failure("GET_INFO size %u", inf.size);
	}
}

/* An ioctl command the device does not have, or a known one mangled. */
static void do_badcmd(struct ctx *c)
{
	static const unsigned long known[] = {
		AIOFSYNC_IOC_SUBMIT, AIOFSYNC_IOC_REAP, AIOFSYNC_IOC_CANCEL,
		AIOFSYNC_IOC_GET_INFO, AIOFSYNC_IOC_REAP_TAKES,
	};
	const int nknown = sizeof(known) / sizeof(known[0]);
	unsigned long cmd;
	char arg[256] = { 0 };
	long ret;

	switch (rn(4)) {
	case 0: cmd = (uint32_t)r64(); break;
	case 1: cmd = _IOC(rn(4), AIOFSYNC_IOC_MAGIC, 4 + rn(252), rn(256)); break;
	case 2: cmd = known[rn(nknown)] ^ (1UL << rn(32)); break;
	default: cmd = _IOC(rn(4), AIOFSYNC_IOC_MAGIC, rn(4), rn(1 << 14)); break;
	}
	for (int i = 0; i < nknown; i++)
		if (cmd == known[i])
			return;
	ret = ioctl(c->fd, cmd, one_in(2) ? (void *)arg : (void *)(uintptr_t)pick_bad_ptr(8));
	atomic_fetch_add(&n_calls, 1);
	if (ret < 0)
		count_errno(errno);
	/* Generic ioctls (FIONBIO, FIOCLEX, ...) may succeed; ours must not. */
	if (_IOC_TYPE(cmd) == AIOFSYNC_IOC_MAGIC && (ret >= 0 || errno != ENOTTY))
		failure("unknown command %#lx: ret %ld errno %d", cmd, ret, errno);
}

/* A descriptor number reused by another file after requests named it. */
static void reuse_fd(void)
{
	int k = FD_FILE0 + rn(4), fresh = open_in(one_in(2) ? "f1" : "swap", O_RDWR);

	if (dup3(fresh, w.fd[k], O_CLOEXEC) < 0)
		die("dup3");
	close(fresh);
}

/* One random call. */
static void random_op(struct ctx *c, struct stall *st)
{
	switch (rn(20)) {
	case 0 ... 8: do_submit(c, st); break;
	case 9 ... 13: do_reap(c, true); break;
	case 14 ... 15: do_cancel(c); break;
	case 16: do_info(c); break;
	case 17: do_badcmd(c); break;
	case 18:
		if (one_in(4))
			reuse_fd();
		else if (one_in(3))
			stall_release(st);
		else
			do_reap(c, false);
		break;
	default:
		/* A WRITE from a mapping of the file it writes to. */
		{
			struct aiofsync_req r = {
				.user_tag = new_tag(c), .opcode = AIOFSYNC_OP_WRITE,
				.fd = w.fd[FD_FILE0], .offset = rn(1 << 20),
				.len = 1 + rn(1 << 16), .addr = (uintptr_t)w.fmap + rn(1 << 19),
			};
			struct aiofsync_submit s = { .nr = 1, .req_size = sizeof(r),
						     .reqs = (uintptr_t)&r };

			if (dev_ioctl(c, AIOFSYNC_IOC_SUBMIT, &s, submit_errs, "SUBMIT") == 1) {
				atomic_fetch_add(&n_accepted, 1);
				c->accepted++;
				if (c->track) {
					struct tagent *e = tag_slot(c, r.user_tag);

					e->count++;
					e->opmask |= 1U << AIOFSYNC_OP_WRITE;
				}
			}
		}
	}
}

/*
 * The end of a round for a context: everything completes once stalls are
 * released and the rest cancelled, and every tag exactly as often as it
 * was accepted.
 */
static void drain(struct ctx *c, struct stall *st)
{
	struct aiofsync_cancel a = { .flags = AIOFSYNC_CANCEL_ALL };
	double end;
	struct timespec ts;

	stall_release(st);
	if (dev_ioctl(c, AIOFSYNC_IOC_CANCEL, &a, NULL, "CANCEL") < 0)
		failure("CANCEL ALL: %s", strerror(errno));
	/*
	 * A background reap of the round may still hold the foreground ones
	 * off (for bg_hold_ms): a background call that finds nothing ends it.
	 */
	for (;;) {
		struct aiofsync_event ev[64];
		struct aiofsync_reap r = { .max_nr = 64, .events = (uintptr_t)ev,
					   .flags = AIOFSYNC_REAP_BACKGROUND };
		long n = dev_ioctl(c, AIOFSYNC_IOC_REAP, &r, reap_errs, "REAP");

		if (n <= 0)
			break;
		for (long i = 0; i < n; i++)
			check_event(c, &ev[i]);
		c->reaped += n;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	end = ts.tv_sec + 60;
	while (c->reaped < c->accepted && !atomic_load(&failed)) {
		struct aiofsync_event ev[64];
		struct aiofsync_reap r = { .min_nr = 1, .max_nr = 64,
					   .events = (uintptr_t)ev,
					   .timeout_ns = 100000000ULL };
		long n = dev_ioctl(c, AIOFSYNC_IOC_REAP, &r, reap_errs, "REAP");

		for (long i = 0; i < n; i++)
			check_event(c, &ev[i]);
		if (n > 0)
			c->reaped += n;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (ts.tv_sec > end) {
			failure("%llu accepted requests never completed (60 s after CANCEL ALL)",
				(unsigned long long)(c->accepted - c->reaped));
			return;
		}
	}
	if (c->track && !atomic_load(&failed)) {
		struct aiofsync_event ev;

		if (c->reaped != c->accepted)
			failure("%llu events for %llu accepted requests",
				(unsigned long long)c->reaped,
				(unsigned long long)c->accepted);
		for (int i = 0; i < 1 << MAP_BITS; i++)
			if (c->map[i].count)
				failure("tag %#llx: %u completions missing",
					(unsigned long long)c->map[i].tag, c->map[i].count);
		/* And nothing more comes. */
		struct aiofsync_reap r = { .min_nr = 0, .max_nr = 1,
					   .events = (uintptr_t)&ev };
		if (dev_ioctl(c, AIOFSYNC_IOC_REAP, &r, reap_errs, "REAP") > 0)
			failure("an event after all were reaped: tag %#llx",
				(unsigned long long)ev.user_tag);
	}
}

static long long stat_read(const char *name)
{
	char path[128], buf[32] = "";
	int fd;
	long long v = -1;

	snprintf(path, sizeof(path), "/sys/class/misc/aiofsync/stats/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && read(fd, buf, sizeof(buf) - 1) > 0)
		v = atoll(buf);
	if (fd >= 0)
		close(fd);
	return v;
}

/* The first number after @key in the text file @path, or -1. */
static long long file_number(const char *path, const char *key)
{
	char buf[1 << 15];
	const char *at;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	at = strstr(buf, key);
	return at ? atoll(at + strlen(key)) : -1;
}

/*
 * What the guest kernel holds, for the progress line: a run that slows down
 * or runs out of memory over time shows why (memory, slab, the objects
 * kmemleak tracks on the debug kernel, the module's unreaped requests).
 */
static void guest_health(char *out, size_t len)
{
	char name[64], top[3][64] = { "", "", "" }, line[512];
	long long kb, top_kb[3] = { 0, 0, 0 };
	unsigned long active, total, size;
	FILE *f = fopen("/proc/slabinfo", "re");

	/* The three slab caches holding the most. */
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %lu %lu %lu", name, &active, &total, &size) != 4)
			continue;
		kb = (long long)active * size / 1024;
		for (int i = 0; i < 3; i++) {
			if (kb <= top_kb[i])
				continue;
			for (int j = 2; j > i; j--) {
				top_kb[j] = top_kb[j - 1];
				memcpy(top[j], top[j - 1], sizeof(top[j]));
			}
			top_kb[i] = kb;
			snprintf(top[i], sizeof(top[i]), "%s", name);
			break;
		}
	}
	if (f)
		fclose(f);
	int vmas = 0;

	f = fopen("/proc/self/maps", "re");
	while (f && fgets(line, sizeof(line), f))
		vmas += !!strchr(line, '\n');
	if (f)
		fclose(f);
	snprintf(out, len, "%d mappings; MemAvailable %lld kB, Slab %lld kB (%s %lld, %s %lld, %s %lld), unreaped %lld",
		 vmas, file_number("/proc/meminfo", "MemAvailable:"),
		 file_number("/proc/meminfo", "\nSlab:"),
		 top[0], top_kb[0], top[1], top_kb[1], top[2], top_kb[2],
		 stat_read("unreaped"));
}

/*
 * With no context open anywhere, nothing may be in flight or unreaped. A
 * close() by a live process waits for the running requests: the counters
 * are 0 at once. When the last reference went with an exiting process,
 * running requests finish on their own: @grace_ms for them to.
 */
static void check_quiescent(const char *when, int grace_ms)
{
	long long f, u;
	int ms = 0;

	while ((f = stat_read("in_flight")) | (u = stat_read("unreaped")) && ms < grace_ms) {
		usleep(10000);
		ms += 10;
	}
	if (f || u)
		failure("%s: in_flight %lld, unreaped %lld with no context open%s", when, f, u,
			grace_ms ? " (after waiting for them)" : "");
}

static void xwaitpid(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static int open_dev(void)
{
	int fd = open(AIOFSYNC_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die(AIOFSYNC_DEVICE);
	return fd;
}

/* ---- scenarios ---- */

static void scen_single(int calls)
{
	struct ctx c;
	struct stall st;

	ctx_init(&c, open_dev(), true);
	stall_make(&st, 16 * PAGE);
	for (int i = 0; i < calls && !atomic_load(&failed); i++)
		random_op(&c, &st);
	/* Without accounting (a reap into memory we cannot read) just close. */
	if (c.track)
		drain(&c, &st);
	stall_release(&st);
	close(c.fd);
	ctx_free(&c);
	check_quiescent("after a single-context round", 0);
}

static const char *const params[] = { "max_ctx_requests", "max_requests", "max_ctx_active" };

static void param_set(const char *name, long long v)
{
	char path[128], buf[32];
	int fd, n;

	snprintf(path, sizeof(path), "/sys/module/aiofsync/parameters/%s", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(path);
	n = snprintf(buf, sizeof(buf), "%lld\n", v);
	if (write(fd, buf, n) != n)
		die(path);
	close(fd);
}

static long long param_get(const char *name)
{
	char path[128], buf[32] = "";
	int fd;

	snprintf(path, sizeof(path), "/sys/module/aiofsync/parameters/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0)
		die(path);
	close(fd);
	return atoll(buf);
}

static void scen_limits(void)
{
	long long saved[3];

	for (int i = 0; i < 3; i++) {
		saved[i] = param_get(params[i]);
		param_set(params[i], one_in(4) ? 0 : (long long)rn(one_in(2) ? 4 : 64));
	}
	scen_single(100 + rn(200));
	for (int i = 0; i < 3; i++)
		param_set(params[i], saved[i]);
}

/* Buffers that go away right after submit. */
static void scen_unmap(void)
{
	struct ctx c;
	struct stall none = { .uffd = -1 };

	struct { char *m; size_t len; } left[20];
	int n_left = 0;

	ctx_init(&c, open_dev(), true);
	for (int k = 0; k < 20 && !atomic_load(&failed); k++) {
		size_t len = PAGE * (1 + rn(64));
		char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct aiofsync_req r[16];
		struct aiofsync_submit s = { .req_size = sizeof(r[0]), .reqs = (uintptr_t)r };
		long ret;

		if (m == MAP_FAILED)
			die("mmap");
		if (one_in(2))
			memset(m, 'u', len);
		s.nr = 1 + rn(16);
		for (uint32_t i = 0; i < s.nr; i++) {
			uint64_t off = rn(len - 1);

			r[i] = (struct aiofsync_req){
				.user_tag = new_tag(&c),
				.opcode = one_in(2) ? AIOFSYNC_OP_WRITE : AIOFSYNC_OP_READ,
				.fd = w.fd[FD_FILE0 + rn(4)], .offset = rn(1 << 20),
				.len = 1 + rn(len - off), .addr = (uintptr_t)m + off,
			};
		}
		ret = dev_ioctl(&c, AIOFSYNC_IOC_SUBMIT, &s, submit_errs, "SUBMIT");
		for (long i = 0; i < ret; i++) {
			struct tagent *e = tag_slot(&c, r[i].user_tag);

			e->count++;
			e->opmask |= 1U << r[i].opcode;
		}
		if (ret > 0) {
			c.accepted += ret;
			atomic_fetch_add(&n_accepted, ret);
		}
		switch (rn(4)) {
		case 0: munmap(m, len); break;
		case 1: mprotect(m, len, PROT_NONE); break;
		case 2: madvise(m, len, MADV_DONTNEED); break;
		default: munmap(m + len / 2, len - len / 2); break;
		}
		if (one_in(3))
			do_reap(&c, false);
		/* Left mapped (protections changed) on purpose: unmap later. */
		if (one_in(2))
			munmap(m, len);
		else
			left[n_left++] = (typeof(left[0])){ m, len };
	}
	drain(&c, &none);
	close(c.fd);
	ctx_free(&c);
	check_quiescent("after an unmap round", 0);
	/* Later is now: a long run must not pile up mappings. */
	while (n_left--)
		munmap(left[n_left].m, left[n_left].len);
}

/* ---- storm: threads on shared contexts ---- */

static struct {
	int ctxfd[2];
	uint32_t sig;
	int calls;
	uint64_t seed;
	pthread_barrier_t go;
	char *b_holes[32];	/* unmapped once the round is quiescent */
} storm;

static void *storm_thread(void *arg)
{
	struct ctx c;
	struct stall none = { .uffd = -1 };

	rng = storm.seed ^ (uintptr_t)arg * 0x51ED27;
	thread_timer = make_timer();
	alt_stack();
	make_holes();
	memset(&c, 0, sizeof(c));
	c.sig = storm.sig;
	pthread_barrier_wait(&storm.go);
	for (int i = 0; i < storm.calls && !atomic_load(&failed); i++) {
		c.fd = storm.ctxfd[rn(2)];
		switch (rn(24)) {
		case 0:
			/* Replace a context under the others' feet. */
			{
				int fresh = open_dev();

				dup3(fresh, storm.ctxfd[rn(2)], O_CLOEXEC);
				close(fresh);
			}
			break;
		case 1:
			reuse_fd();
			break;
		case 2:
			pthread_mutex_lock(&w.volatile_lock);
			if (w.volatile_map) {
				munmap(w.volatile_map, 64 * PAGE);
				w.volatile_map = NULL;
			} else {
				w.volatile_map = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE,
						      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
				if (w.volatile_map == MAP_FAILED)
					w.volatile_map = NULL;
			}
			pthread_mutex_unlock(&w.volatile_lock);
			break;
		case 3:
			/* WRITE/READ on the volatile mapping, whoever unmaps it. */
			{
				char *m = w.volatile_map;
				struct aiofsync_req r = {
					.user_tag = (uint64_t)c.sig << 32 | rn(1000),
					.opcode = one_in(2) ? AIOFSYNC_OP_WRITE : AIOFSYNC_OP_READ,
					.fd = w.fd[FD_FILE0 + rn(4)], .offset = rn(1 << 20),
					.len = 1 + rn(64 * PAGE),
					.addr = m ? (uintptr_t)m : (uintptr_t)w.buf,
				};
				struct aiofsync_submit s = { .nr = 1, .req_size = sizeof(r),
							     .reqs = (uintptr_t)&r };

				if (dev_ioctl(&c, AIOFSYNC_IOC_SUBMIT, &s, submit_errs, "SUBMIT") > 0)
					atomic_fetch_add(&n_accepted, 1);
			}
			break;
		case 4:
			if (one_in(8)) {
				/* A child that submits on the shared contexts and goes. */
				pid_t pid = fork();

				if (!pid) {
					c.fd = storm.ctxfd[rn(2)];
					for (int k = 0; k < 5; k++)
						do_submit(&c, NULL);
					_exit(0);
				}
				if (pid > 0)
					xwaitpid(pid);
			}
			break;
		case 5 ... 12: do_submit(&c, NULL); break;
		case 13 ... 18: do_reap(&c, one_in(2)); break;
		case 19 ... 21: do_cancel(&c); break;
		case 22: do_info(&c); break;
		default: do_badcmd(&c); break;
		}
	}
	(void)none;
	timer_delete(thread_timer);
	/*
	 * Not b_hole: READs of this thread may still be running. The round
	 * unmaps it when nothing is in flight any more; left mapped, the
	 * thousands of rounds of a long run would pile up mappings, and
	 * every fork (kill9, forkexec, the storm's children) gets slower.
	 */
	storm.b_holes[(uintptr_t)arg] = b_hole;
	munmap(t_hole - PAGE, 2 * PAGE);
	guarded_unmap(tb, sizeof(*tb));
	return NULL;
}

static void scen_storm(int threads, int calls)
{
	pthread_t t[32];

	storm.sig = (uint32_t)r64() | 1;
	storm.seed = r64();
	storm.calls = calls;
	storm.ctxfd[0] = open_dev();
	storm.ctxfd[1] = open_dev();
	pthread_barrier_init(&storm.go, NULL, threads);
	for (long i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, storm_thread, (void *)i))
			die("pthread_create");
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&storm.go);
	close(storm.ctxfd[0]);
	close(storm.ctxfd[1]);
	pthread_mutex_lock(&w.volatile_lock);
	if (w.volatile_map)
		munmap(w.volatile_map, 64 * PAGE);
	w.volatile_map = NULL;
	pthread_mutex_unlock(&w.volatile_lock);
	check_quiescent("after a storm round", 30000);
	for (int i = 0; i < threads; i++) {
		munmap(storm.b_holes[i] - PAGE, 2 * PAGE);
		storm.b_holes[i] = NULL;
	}
}

/* ---- kill -9 with 10,000 requests in flight ---- */

static void scen_kill9(void)
{
	int p[2], how = rn(3);
	uint64_t got = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid) {
		struct ctx c;
		struct aiofsync_req r[100];
		struct aiofsync_submit s = { .nr = 100, .req_size = sizeof(r[0]),
					     .reqs = (uintptr_t)r };
		uint64_t n = 0;

		ctx_init(&c, open_dev(), false);
		while (n < KILL9_REQS) {
			for (int i = 0; i < 100; i++) {
				uint32_t op = one_in(5) ? AIOFSYNC_OP_FSYNC :
					one_in(3) ? AIOFSYNC_OP_READ : AIOFSYNC_OP_WRITE;
				bool rw = op != AIOFSYNC_OP_FSYNC;

				r[i] = (struct aiofsync_req){
					.user_tag = n + i, .opcode = op,
					.fd = w.fd[FD_FILE0 + rn(4)], .prio = rn(21),
					.offset = rn(4 << 20), .len = rw ? 1 + rn(16384) : 0,
					.addr = rw ? (uintptr_t)w.buf + rn(BUF_SIZE - 16384) : 0,
				};
			}
			long ret = ioctl(c.fd, AIOFSYNC_IOC_SUBMIT, &s);

			if (ret <= 0)
				break;
			n += ret;
		}
		if (write(p[1], &n, sizeof(n)) != sizeof(n))
			_exit(3);
		if (how == 2)
			_exit(0);	/* exit, not killed, with all of it in flight */
		pause();
		_exit(0);
	}
	close(p[1]);
	while (read(p[0], &got, sizeof(got)) != sizeof(got))
		if (errno != EINTR) {
			got = 0;
			break;
		}
	close(p[0]);
	/* The calls the child made, as counted by what it had accepted. */
	atomic_fetch_add(&n_calls, got / 100 + 1);
	atomic_fetch_add(&n_accepted, got);
	if (how == 1)
		usleep(rn(20000));
	kill(pid, SIGKILL);
	xwaitpid(pid);
	if (got < KILL9_REQS && param_get("max_ctx_requests") >= KILL9_REQS)
		failure("kill9: only %llu of %d requests accepted",
			(unsigned long long)got, KILL9_REQS);
	check_quiescent("after a child with 10,000 requests died", 30000);
}

/* ---- fork and exec with requests in flight ---- */

static void scen_forkexec(void)
{
	struct ctx c;
	struct stall st;
	int p[2];
	uint64_t child_n = 0;
	pid_t pid;
	int shared;

	/* Not close-on-exec: the exec'd program holds the context too. */
	shared = open(AIOFSYNC_DEVICE, O_RDWR);
	if (shared < 0)
		die(AIOFSYNC_DEVICE);
	ctx_init(&c, shared, true);
	stall_make(&st, 8 * PAGE);
	for (int i = 0; i < 30; i++)
		do_submit(&c, &st);
	if (pipe2(p, O_CLOEXEC))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid) {
		/* The child's requests name the child's address space. */
		struct aiofsync_req r[32];
		struct aiofsync_submit s = { .req_size = sizeof(r[0]), .reqs = (uintptr_t)r };
		long ret;

		s.nr = 1 + rn(32);
		for (uint32_t i = 0; i < s.nr; i++)
			r[i] = (struct aiofsync_req){
				.user_tag = (uint64_t)c.sig << 32 | (0x80000000U + i),
				.opcode = one_in(4) ? AIOFSYNC_OP_FDATASYNC : AIOFSYNC_OP_WRITE,
				.fd = w.fd[FD_FILE0 + rn(4)], .offset = rn(1 << 20),
			};
		for (uint32_t i = 0; i < s.nr; i++)
			if (r[i].opcode == AIOFSYNC_OP_WRITE) {
				r[i].len = 1 + rn(65536);
				r[i].addr = one_in(2) && st.addr ? (uintptr_t)st.addr :
					(uintptr_t)w.buf + rn(BUF_SIZE - 65536);
			}
		ret = ioctl(shared, AIOFSYNC_IOC_SUBMIT, &s);
		if (ret < 0)
			ret = 0;
		if (write(p[1], &ret, sizeof(ret)) != sizeof(ret) || write(p[1], r, sizeof(r)) != sizeof(r))
			_exit(3);
		if (one_in(2))
			execl("/bin/true", "true", (char *)NULL);
		_exit(0);
	}
	close(p[1]);
	{
		struct aiofsync_req r[32];
		long n = 0;

		if (read(p[0], &n, sizeof(n)) == sizeof(n) && n > 0 &&
		    read(p[0], r, sizeof(r)) == sizeof(r)) {
			for (long i = 0; i < n; i++) {
				struct tagent *e = tag_slot(&c, r[i].user_tag);

				e->count++;
				e->opmask |= 1U << r[i].opcode;
			}
			c.accepted += n;
			child_n = n;
			atomic_fetch_add(&n_accepted, n);
		}
		atomic_fetch_add(&n_calls, 1);
	}
	close(p[0]);
	xwaitpid(pid);
	/* Our own exec-free requests go on; the rest completes. */
	for (int i = 0; i < 20; i++)
		random_op(&c, &st);
	if (c.track)
		drain(&c, &st);
	stall_release(&st);
	close(shared);
	ctx_free(&c);
	(void)child_n;
	check_quiescent("after a fork/exec round", 0);
}

/* ---- main ---- */

static const char *const scen_names[] = { "single", "limits", "unmap", "storm",
					   "kill9", "forkexec" };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int pick_scenario(void)
{
	static const int weights[] = { 60, 6, 10, 12, 4, 8 };
	int x = rn(100), s = 0;

	if (opt.only) {
		for (s = 0; s < 6; s++)
			if (!strcmp(opt.only, scen_names[s]))
				return s;
		fprintf(stderr, "fuzz: no scenario %s\n", opt.only);
		exit(2);
	}
	while (x >= weights[s]) {
		x -= weights[s];
		s++;
	}
	return s;
}

static void run_round(uint64_t round)
{
	int s;

	opt.round = round;
	rng = opt.seed * 0x9E3779B97F4A7C15ULL ^ round;
	r64();
	s = pick_scenario();
	kmsg_note("fuzz: round %llu (%s) seed %llu\n", (unsigned long long)round,
		  scen_names[s], (unsigned long long)opt.seed);
	if (opt.verbose)
		fprintf(stderr, "fuzz: round %llu: %s\n", (unsigned long long)round, scen_names[s]);
	atomic_fetch_add(&n_scen[s], 1);
	atomic_store(&round_started, round + 1);
	switch (s) {
	case 0: scen_single(100 + rn(200)); break;
	case 1: scen_limits(); break;
	case 2: scen_unmap(); break;
	case 3: scen_storm(opt.threads, 300 + rn(300)); break;
	case 4: scen_kill9(); break;
	default: scen_forkexec(); break;
	}
	atomic_fetch_add(&n_rounds, 1);
	atomic_store(&round_started, 0);
}

/*
 * A round that does not end is a finding too (a request that never
 * completes, a close that never returns), or the fuzzer's own deadlock:
 * show where every thread of the process is, in user space and in the
 * kernel, and the blocked tasks on the console, then stop.
 */

static void *watchdog(void *arg)
{
	uint64_t seen = 0;
	int same = 0;

	(void)arg;
	for (;;) {
		uint64_t r = atomic_load(&round_started);

		sleep(1);
		if (!r || r != seen) {
			seen = r;
			same = 0;
			continue;
		}
		if (++same < 120)
			continue;
		fprintf(stderr, "fuzz: round %llu (seed %llu) has run for 120 s: stuck\n",
			(unsigned long long)r - 1, (unsigned long long)opt.seed);
		if (system("for t in /proc/self/../$PPID/task/*; do echo \"== task ${t##*/}: $(cat $t/wchan)\"; "
			   "cat $t/stack; done >&2; echo w >/proc/sysrq-trigger") < 0)
			perror("system");
		_exit(1);
	}
	return NULL;
}

static void report(double secs)
{
	printf("fuzz: seed %llu: %llu ioctl calls in %llu rounds, %.0f s "
	       "(%.0f calls/s); %llu requests accepted, %llu events reaped\n",
	       (unsigned long long)opt.seed, (unsigned long long)n_calls,
	       (unsigned long long)n_rounds, secs, n_calls / (secs > 0 ? secs : 1),
	       (unsigned long long)n_accepted, (unsigned long long)n_events);
	printf("fuzz: rounds:");
	for (int s = 0; s < 6; s++)
		printf(" %s %llu", scen_names[s], (unsigned long long)n_scen[s]);
	printf("\nfuzz: ioctl errors:");
	for (int e = 1; e < 135; e++)
		if (n_errno[e])
			printf(" %s %llu", e < 134 ? strerrorname_np(e) : "other",
			       (unsigned long long)n_errno[e]);
	printf("\nfuzz: completions: ok %llu", (unsigned long long)n_res_ok);
	for (int e = 1; e < 135; e++)
		if (n_res[e])
			printf(" -%s %llu", e < 134 ? strerrorname_np(e) : "other",
			       (unsigned long long)n_res[e]);
	printf("\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "seconds", required_argument, NULL, 't' },
		{ "calls", required_argument, NULL, 'n' },
		{ "round", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "only", required_argument, NULL, 'o' },
		{ "threads", required_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 }
	};
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	double t0;
	int o;

	opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	while ((o = getopt_long(argc, argv, "v", lo, NULL)) != -1) {
		switch (o) {
		case 's': opt.seed = strtoull(optarg, NULL, 0); break;
		case 't': opt.seconds = atof(optarg); break;
		case 'n': opt.calls_max = strtoull(optarg, NULL, 0); break;
		case 'r': opt.only_round = strtoull(optarg, NULL, 0); opt.one_round = true; break;
		case 'd': opt.dir = optarg; break;
		case 'o': opt.only = optarg; break;
		case 'T': opt.threads = atoi(optarg); break;
		case 'v': opt.verbose = 1; break;
		default:
			fprintf(stderr, "usage: fuzz [--seed S] [--seconds T] [--calls N] "
				"[--round R] [--dir DIR] [--only SCENARIO] [--threads K] [-v]\n");
			return 2;
		}
	}
	if (opt.threads < 1 || opt.threads > 32)
		opt.threads = 8;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("fuzz: seed %llu\n", (unsigned long long)opt.seed);
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_sigaction = on_crash;
	/*
	 * Once: the report itself may fault (backtrace() loads libgcc_s with
	 * malloc, and a crash is often a corrupted heap); a second fault then
	 * ends the process instead of looping in the handler.
	 */
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESETHAND;
	alt_stack();
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	/* Every round's note in the console, not a rate-limited few. */
	{
		int fd = open("/proc/sys/kernel/printk_devkmsg", O_WRONLY | O_CLOEXEC);

		if (fd >= 0 && write(fd, "on\n", 3) < 0)
			perror("fuzz: printk_devkmsg");
		if (fd >= 0)
			close(fd);
	}
	world_init();
	thread_timer = make_timer();
	check_quiescent("at the start", 0);
	{
		pthread_t wd;

		if (pthread_create(&wd, NULL, watchdog, NULL))
			die("pthread_create");
		pthread_detach(wd);
	}

	t0 = now();
	if (opt.one_round) {
		run_round(opt.only_round);
	} else {
		double last = t0;

		for (uint64_t r = 0; !atomic_load(&failed); r++) {
			if (opt.calls_max ? n_calls >= opt.calls_max : now() - t0 >= opt.seconds)
				break;
			run_round(r);
			if (now() - last >= 30) {
				char health[256];

				last = now();
				guest_health(health, sizeof(health));
				printf("fuzz: %.0f s: %llu calls, %llu rounds; %s\n", last - t0,
				       (unsigned long long)n_calls, (unsigned long long)n_rounds,
				       health);
				fflush(stdout);
			}
		}
	}
	report(now() - t0);
	return atomic_load(&failed) ? 1 : 0;
}
