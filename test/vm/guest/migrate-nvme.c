/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * migrate-nvme: a userspace NVMe driver migrated while its device writes
 * into host memory (include/vfdma/migrate.h, end to end on the real
 * kernel).
 *
 * The first vfio NVMe is brought up with app/nvme's driver in the domain
 * the harness asks for.  A 4 MiB buffer is mapped; a reader thread keeps
 * 8 random 4 KiB Reads in flight from a region written beforehand with a
 * known pattern into random pages of the buffer (device writes into host
 * memory), reporting each completed read with vfdma_dirty_mark() on the
 * migration's log, as a driver must where the IOMMU cannot track (the
 * emulated VT-d has no dirty bits; type1 reports every page anyway).
 * vfdma_migrate_save() runs pre-copy rounds into a destination (a sim
 * domain in the same process, through vfdma_migrate_dst_sink()); its
 * quiesce callback stops the reader and waits for the reads in flight.
 * Then: every page of the buffer, in particular every page the device
 * wrote, is byte-identical at the same IOVA in the destination; the
 * destination has as many mappings as the source; restore and resume ran.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvme-guest.h"
#include "pattern.h"
#include "vfdma/dirty.h"
#include "vfdma/migrate.h"

#define BUF_LEN (4u << 20)
#define PAGES (BUF_LEN / 4096)
#define DEPTH 8
#define SEED 0x316a7e5eedull
/*
 * Where on the namespace the pattern lives: far from the first MiBs, which
 * other tests sharing this boot expect to be zeros (nvme-errors).
 */
#define DISK_OFF (192ull << 20)

struct src {
	struct nvme_ctrl c;
	struct nvme_qpair *qp;
	struct vfdma_migrate *mig;
	uint8_t *buf;
	uint64_t iova;
	uint32_t lba_size;
	atomic_bool stop;
	pthread_t reader;
	bool reader_running;
	uint64_t reads, marked, errors;
	uint64_t state; /* the "device state" saved and restored */
	uint8_t written[PAGES];
};

struct read_done {
	struct src *s;
	uint32_t page;
	bool busy;
};

static void read_cb(void *arg, uint16_t sf)
{
	struct read_done *d = arg;
	struct src *s = d->s;
	d->busy = false;
	if (sf) {
		s->errors++;
		return;
	}
	s->reads++;
	s->written[d->page] = 1;
	struct vfdma_dirty *log = vfdma_migrate_log(s->mig);
	if (log && vfdma_dirty_mark(log, s->iova + (uint64_t)d->page * 4096, 4096) == 0)
		s->marked++;
}

static void *reader(void *arg)
{
	struct src *s = arg;
	struct read_done slots[DEPTH];
	uint64_t rng = SEED;
	uint32_t per_page = 4096 / s->lba_size;
	for (int i = 0; i < DEPTH; i++)
		slots[i] = (struct read_done){.s = s};
	while (!atomic_load(&s->stop)) {
		for (int i = 0; i < DEPTH; i++) {
			if (slots[i].busy)
				continue;
			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			uint32_t page = (uint32_t)(rng >> 33) % PAGES;
			uint64_t lba = (DISK_OFF + ((rng >> 13) % PAGES) * 4096) / s->lba_size;
			slots[i].page = page;
			slots[i].busy = true;
			if (nvme_qpair_rw(s->qp, NVME_CMD_READ, 1, lba, per_page,
					  s->iova + (uint64_t)page * 4096, 4096, read_cb, &slots[i]))
				slots[i].busy = false;
		}
		if (nvme_qpair_process(s->qp, DEPTH) < 0) {
			s->errors++;
			break;
		}
	}
	/* quiesce: no new reads; wait for those in flight */
	while (s->qp->outstanding && nvme_qpair_wait(s->qp) >= 0)
		;
	return NULL;
}

static int src_quiesce(void *ctx)
{
	struct src *s = ctx;
	atomic_store(&s->stop, true);
	if (s->reader_running)
		pthread_join(s->reader, NULL);
	s->reader_running = false;
	return s->qp->outstanding ? -EIO : 0;
}

static int src_save(void *ctx, struct vfdma_migrate *mig)
{
	struct src *s = ctx;
	return vfdma_migrate_put_state(mig, &s->state, sizeof(s->state));
}

static int src_resume(void *ctx)
{
	(void)ctx;
	return 0;
}

struct dst {
	uint64_t state;
	int restored, resumed;
};

static int dst_restore(void *ctx, const void *state, size_t len)
{
	struct dst *d = ctx;
	if (len != sizeof(d->state))
		return -EINVAL;
	memcpy(&d->state, state, len);
	d->restored++;
	return 0;
}

static int dst_resume(void *ctx)
{
	((struct dst *)ctx)->resumed++;
	return 0;
}

/* Write the pattern over BUF_LEN bytes at DISK_OFF of namespace 1, through the buffer. */
static int prefill(struct src *s)
{
	uint32_t chunk = s->qp->max_xfer < (256u << 10) ? s->qp->max_xfer : (256u << 10);
	for (uint64_t off = 0; off < BUF_LEN; off += chunk) {
		pattern_fill(s->buf, chunk, DISK_OFF + off, SEED);
		int rc = nvme_io_sync(s->qp, NVME_CMD_WRITE, 1, (DISK_OFF + off) / s->lba_size,
				      chunk / s->lba_size,
				      s->iova, chunk);
		if (rc)
			return rc;
	}
	memset(s->buf, 0xa5, BUF_LEN); /* what the CPU left: the reads overwrite pages of it */
	return 0;
}

int main(void)
{
	static struct src s;
	uint16_t vid, ssvid;
	struct vfdma_domain *d = vg_nvme_setup(&s.c, &vid, &ssvid);
	if (!d)
		return vt_exit_status();
	struct nvme_ns ns;
	int rc = nvme_ctrl_identify(&s.c);
	if (!rc)
		rc = nvme_set_num_queues(&s.c, 1);
	if (rc) {
		vt_fail("queues", "Identify / Number of Queues: %d (%s)", rc, nvme_errmsg(&s.c));
		goto out;
	}
	rc = nvme_ns_identify(&s.c, 1, &ns);
	if (rc || !ns.lba_size || 4096 % ns.lba_size) {
		vt_fail("ns", "Identify Namespace 1: %d (LBA size %u)", rc, rc ? 0 : ns.lba_size);
		goto out;
	}
	s.lba_size = ns.lba_size;
	rc = nvme_qpair_create(&s.c, 1, &(struct nvme_qpair_opts){.depth = 32}, &s.qp);
	if (rc) {
		vt_fail("qpair", "nvme_qpair_create: %d (%s)", rc, nvme_errmsg(&s.c));
		goto out;
	}
	s.buf = vg_buf(BUF_LEN, 0);
	rc = s.buf ? vfdma_map(d, s.buf, BUF_LEN, VFDMA_PROT_RW, 0, &s.iova) : -ENOMEM;
	if (rc) {
		vt_fail("map", "4 MiB buffer: %s", strerror(-rc));
		goto out;
	}
	rc = prefill(&s);
	if (rc) {
		vt_fail("prefill", "writing the pattern: %d (%s)", rc, nvme_errmsg(&s.c));
		goto out;
	}
	vt_pass("setup");
	s.state = 0x57a7e0f5eedull;

	struct vfdma_domain *dd = vfdma_domain_open(&(struct vfdma_domain_opts){.backend = VFDMA_BACKEND_SIM});
	struct dst dctx = {0};
	struct vfdma_migrate_ops dops = {.restore = dst_restore, .resume = dst_resume};
	struct vfdma_migrate_dst *dst = dd ? vfdma_migrate_dst_create(dd, &dops, &dctx, NULL) : NULL;
	struct vfdma_migrate_sink sink;
	struct vfdma_migrate_ops sops = {.quiesce = src_quiesce, .save = src_save, .resume = src_resume};
	s.mig = vfdma_migrate_create(d, &sops, &s);
	if (!dst || !s.mig || vfdma_migrate_dst_sink(dst, &sink)) {
		vt_fail("migrate_create", "destination or source: %s", strerror(errno));
		goto out_mig;
	}
	if (pthread_create(&s.reader, NULL, reader, &s)) {
		vt_fail("reader", "pthread_create failed");
		goto out_mig;
	}
	s.reader_running = true;
	struct vfdma_migrate_stats st;
	struct vfdma_migrate_opts mo = {.max_rounds = 6, .threshold = 16 * 4096};
	rc = vfdma_migrate_save(s.mig, &sink, &mo, &st);
	if (s.reader_running) { /* save failed before quiesce */
		atomic_store(&s.stop, true);
		pthread_join(s.reader, NULL);
	}
	if (rc) {
		vt_fail("save", "vfdma_migrate_save: %s", strerror(-rc));
		goto out_mig;
	}
	unsigned written = 0;
	for (unsigned p = 0; p < PAGES; p++)
		written += s.written[p];
	if (s.errors || !s.reads || !s.marked)
		vt_fail("device_writes", "%llu reads, %llu marked, %llu errors",
			(unsigned long long)s.reads, (unsigned long long)s.marked,
			(unsigned long long)s.errors);
	else
		printf("PASS device_writes: %llu reads during migration into %u distinct pages, %llu "
		       "marked in the log\n",
		       (unsigned long long)s.reads, written, (unsigned long long)s.marked);
	if (st.rounds < 2)
		vt_fail("rounds", "%u pre-copy rounds", st.rounds);
	else
		printf("PASS rounds: %u rounds (round 0 %llu B, round 1 %llu B), final %llu B, "
		       "downtime %.1f ms\n",
		       st.rounds, (unsigned long long)st.round_bytes[0],
		       (unsigned long long)st.round_bytes[1], (unsigned long long)st.final_bytes,
		       st.downtime_ns / 1e6);

	/* The destination: same IOVA, same bytes, for every page. */
	void *dv = NULL;
	uint64_t dlen = 0;
	rc = vfdma_iova_to_vaddr(dd, s.iova, &dv, &dlen);
	unsigned bad = 0, bad_written = 0, first_bad = PAGES;
	for (unsigned p = 0; !rc && dlen >= BUF_LEN && p < PAGES; p++)
		if (memcmp((uint8_t *)dv + p * 4096, s.buf + p * 4096, 4096)) {
			bad++;
			bad_written += s.written[p];
			if (first_bad == PAGES)
				first_bad = p;
		}
	if (rc || dlen < BUF_LEN)
		vt_fail("identical", "IOVA 0x%llx not mapped in the destination (%d, %llu bytes)",
			(unsigned long long)s.iova, rc, (unsigned long long)dlen);
	else if (bad)
		vt_fail("identical", "%u pages differ (%u of them written by the device), first %u",
			bad, bad_written, first_bad);
	else
		printf("PASS identical: all %u pages at IOVA 0x%llx identical in the destination, "
		       "the %u the device wrote included\n",
		       PAGES, (unsigned long long)s.iova, written);
	/* the data is the disk's, where the device wrote */
	unsigned wrong = 0;
	for (unsigned p = 0; p < PAGES; p++)
		if (s.written[p] && s.buf[p * 4096] == 0xa5 && s.buf[p * 4096 + 1] == 0xa5)
			wrong++;
	if (wrong)
		vt_fail("device_data", "%u written pages still hold the CPU's fill", wrong);
	else
		vt_pass("device_data");

	struct vfdma_domain_info si, di;
	struct vfdma_migrate_dst_info dinfo;
	if (vfdma_domain_get_info(d, &si) || vfdma_domain_get_info(dd, &di) ||
	    vfdma_migrate_dst_get_info(dst, &dinfo))
		vt_fail("mappings", "get_info failed");
	else if (di.mappings != si.mappings || dinfo.mappings != si.mappings)
		vt_fail("mappings", "source %llu mappings, destination %llu (%llu made)",
			(unsigned long long)si.mappings, (unsigned long long)di.mappings,
			(unsigned long long)dinfo.mappings);
	else
		printf("PASS mappings: %llu mappings (%llu bytes) recreated at the same IOVAs\n",
		       (unsigned long long)si.mappings, (unsigned long long)dinfo.bytes);
	if (dctx.restored != 1 || dctx.resumed != 1 || dctx.state != s.state)
		vt_fail("state", "restored %d, resumed %d, state 0x%llx", dctx.restored, dctx.resumed,
			(unsigned long long)dctx.state);
	else
		vt_pass("state");
out_mig:
	vfdma_migrate_destroy(s.mig);
	if (dst)
		vfdma_migrate_dst_destroy(dst);
	if (dd)
		vfdma_domain_close(dd);
out:
	if (s.qp)
		nvme_qpair_destroy(s.qp);
	nvme_close(&s.c);
	if (s.iova)
		vfdma_unmap(d, s.iova, BUF_LEN);
	vfdma_domain_close(d);
	free(s.buf);
	return vt_exit_status();
}
