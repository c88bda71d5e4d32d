// SPDX-License-Identifier: GPL-2.0
/*
 * Reproducer: CANCEL racing with the completion of a sync dereferences the
 * sync's inode state after the completion dropped it.
 *
 * aiofsync_finish() first drops what the request holds, req->ainode
 * included (aiofsync_order_detach() sets it to NULL and puts the
 * reference, which may free it), and only then, under ctx->lock, moves the
 * request from ctx->active to ctx->done. A CANCEL that walks ctx->active
 * in between finds the sync and calls aiofsync_order_cancel_sync(), which
 * takes req->ainode->lock: a NULL pointer dereference (or a use after free
 * when the pointer was read before it was cleared). Found by stress/fuzz:
 *
 *   BUG: kernel NULL pointer dereference, address: 000000000000001c
 *   RIP: 0010:_raw_spin_lock+0x13/0x30
 *    aiofsync_order_cancel_sync+0x1f/0x90 [aiofsync]
 *    aiofsync_cancel_matching+0x1c5/0x200 [aiofsync]
 *    aiofsync_ioc_cancel+0x175/0x1e0 [aiofsync]
 *
 * One thread keeps syncs completing on a context, others cancel everything
 * on it in a loop. The test passes if the kernel survives 20 s of it; with
 * the bug the guest oopses (tools/vm then reports the splat).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "../../selftests/aiofsync_util.h"
#include "kselftest_harness.h"

#define SECONDS		20
#define CANCELLERS	3

static atomic_int stop;
static int dev, file;

static void *canceller(void *arg)
{
	long n = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		afs_cancel(dev, AIOFSYNC_CANCEL_ALL, 0, 0, NULL);
		n++;
	}
	return (void *)n;
}

TEST(cancel_while_syncs_complete)
{
	pthread_t t[CANCELLERS];
	struct aiofsync_event ev[64];
	char data[512] = { 'c' };
	long rounds = 0, cancels = 0;
	time_t end = time(NULL) + SECONDS;

	dev = afs_open();
	ASSERT_LE(0, dev);
	file = afs_tmpfile("race", O_RDWR);
	ASSERT_LE(0, file);
	for (int i = 0; i < CANCELLERS; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, canceller, NULL));

	while (time(NULL) < end) {
		struct aiofsync_req r[32];
		int n = 0, got = 0, ret;

		for (int i = 0; i < 32; i++)
			r[i] = i % 4 ? afs_req(i % 2 ? AIOFSYNC_OP_FSYNC : AIOFSYNC_OP_FDATASYNC,
					       file, 0, 0, NULL, i) :
				       afs_req(AIOFSYNC_OP_WRITE, file, i * 512,
					       sizeof(data), data, i);
		n = afs_submit(dev, r, 32);
		ASSERT_EQ(32, n);
		while (got < n) {
			ret = afs_reap(dev, ev, 1, 64, 1000 * AFS_MS);
			ASSERT_LT(0, ret);
			got += ret;
		}
		rounds++;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < CANCELLERS; i++) {
		void *c;

		pthread_join(t[i], &c);
		cancels += (long)c;
	}
	TH_LOG("%ld batches of 32 requests, %ld CANCEL ALL", rounds, cancels);
	close(dev);
}

TEST_HARNESS_MAIN
