/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dirty-type1: dirty tracking on the type1 backend (VFIO_IOMMU_DIRTY_PAGES)
 * with real device writes: the first NVMe, brought up with app/nvme's
 * driver core, Reads blocks of its (zero-filled) namespace into chosen pages
 * of mapped memory, i.e. the device writes host memory by DMA.
 *
 *   caps        the domain offers VFDMA_DIRTY_CAP_TYPE1; a log started with
 *               the default sources and one asking for TYPE1 alone both
 *               report TYPE1 (the best source type1 has)
 *   written     after a clearing sync, the device writes 7 pages of an
 *               8 MiB buffer (2 MiB hugepages when there are some) and of a
 *               64 KiB buffer of 4 KiB pages: the next sync reports each of
 *               them.  How many it reports in all is printed and asserted:
 *               vfio-pci pins no pages, so the kernel cannot tell written
 *               from unwritten and reports EVERY mapped page, every sync
 *   partial     a sync of half a mapping (GET_BITMAP only takes whole
 *               kernel mappings: the library reads the whole one and keeps
 *               the other half for later) reports half, and the other half
 *               still reports all of its pages
 *   peek        a PEEK sync and the clearing sync after it report the same
 *   new_map     memory mapped while the log runs is tracked
 *   unmap       a page written and then unmapped during a round is reported
 *               by the next sync of its (now unmapped) range, and only once
 *   faults      vfdma_dirty_start, _sync and _stop with their nth system
 *               call or allocation failing: a negative errno each time, and
 *               the log still works afterwards
 *   stop        stop, start again, stop; the domain stays consistent
 */
#include <sys/mman.h>

#include "nvme-guest.h"
#include "util/sys.h"

#define K4 4096u
#define BIG (8u << 20)
#define SMALL (64u << 10)

struct t {
	struct nvme_ctrl c;
	struct nvme_qpair *qp;
	struct vfdma_domain *d;
	uint32_t nsid, lba;
	uint64_t slba;
};

/* The device writes page @page of the buffer at @va / @iova (zeros: the namespace is fresh). */
static bool dev_write(struct t *t, uint8_t *va, uint64_t iova, uint64_t page)
{
	memset(va + page * K4, 0xa5, K4);
	int rc = nvme_io_sync(t->qp, NVME_CMD_READ, t->nsid, t->slba, K4 / t->lba, iova + page * K4,
			      K4);
	t->slba += K4 / t->lba;
	if (rc) {
		vt_fail("dev_write", "Read into IOVA 0x%llx: %d %s", (unsigned long long)iova,
			rc, nvme_errmsg(&t->c));
		return false;
	}
	if (vg_all(va + page * K4, K4, 0xa5)) {
		vt_fail("dev_write", "the device did not write page %llu", (unsigned long long)page);
		return false;
	}
	return true;
}

static uint64_t *bitmap_new(uint64_t len)
{
	return calloc((len / K4 + 63) / 64, 8);
}

static bool bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] & (1ull << (i % 64));
}

static uint64_t popcount(const uint64_t *b, uint64_t bits)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < bits; i++)
		n += bit(b, i);
	return n;
}

/* Sync [iova, iova + len) into a fresh bitmap; NULL after a FAIL line. */
static uint64_t *sync_new(const char *check, struct vfdma_dirty *log, uint64_t iova, uint64_t len,
			  unsigned flags, int64_t *got)
{
	uint64_t *b = bitmap_new(len);
	*got = vfdma_dirty_sync(log, iova, len, b, flags);
	if (*got < 0 || (uint64_t)*got != popcount(b, len / K4)) {
		vt_fail(check, "sync of 0x%llx+0x%llx: %lld, %llu bits set", (unsigned long long)iova,
			(unsigned long long)len, (long long)*got,
			(unsigned long long)popcount(b, len / K4));
		free(b);
		return NULL;
	}
	return b;
}

static bool setup(struct t *t)
{
	uint16_t vid, ssvid;
	t->d = vg_nvme_setup(&t->c, &vid, &ssvid);
	if (!t->d)
		return false;
	struct nvme_ns ns;
	int rc = nvme_ctrl_identify(&t->c);
	if (!rc)
		rc = nvme_set_num_queues(&t->c, 1);
	if (!rc)
		rc = nvme_ns_identify(&t->c, 1, &ns);
	struct nvme_qpair_opts o = {.depth = 16};
	if (!rc)
		rc = nvme_qpair_create(&t->c, 1, &o, &t->qp);
	if (rc) {
		vt_fail("setup", "%d: %s", rc, nvme_errmsg(&t->c));
		return false;
	}
	t->nsid = 1;
	t->lba = ns.lba_size;
	return true;
}

/* 8 MiB in 2 MiB hugepages if the guest has them, else ordinary pages. */
static uint8_t *big_buf(bool *huge)
{
	void *p = mmap(NULL, BIG, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	*huge = p != MAP_FAILED;
	return *huge ? p : vg_buf(BIG, 0);
}

static void caps(struct t *t)
{
	struct vfdma_domain_info di;
	vfdma_domain_get_info(t->d, &di);
	struct vfdma_dirty *log = vfdma_dirty_start(t->d, NULL);
	struct vfdma_dirty_info li = {0};
	if (log)
		vfdma_dirty_get_info(log, &li);
	vfdma_dirty_stop(log);
	if (!(di.dirty_caps & VFDMA_DIRTY_CAP_TYPE1) || !log ||
	    li.sources != (VFDMA_DIRTY_SRC_TYPE1 | VFDMA_DIRTY_SRC_MARK) || li.split)
		vt_fail("caps", "domain caps 0x%x; default log %p sources 0x%x split %d",
			di.dirty_caps, (void *)log, li.sources, li.split);
	else
		printf("PASS caps: domain dirty caps 0x%x, default sources 0x%x (type1 + mark)\n",
		       di.dirty_caps, li.sources), fflush(stdout);
}

/* The nth call failing: a negative errno (or success) every time; n until none was hit. */
static void sweep(const char *check, struct vfdma_dirty **logp, struct t *t, uint64_t iova,
		  uint64_t len, int which)
{
	uint64_t *b = bitmap_new(len);
	unsigned n;
	for (n = 1; n < 200; n++) {
		int64_t rc = 0;
		vfd_fault_arm(VFD_SYS_ANY, n, EIO, false);
		if (which == 0) {
			rc = vfdma_dirty_sync(*logp, iova, len, b, 0);
		} else {
			/* stop then start: the log is replaced either way */
			struct vfdma_dirty_opts o = {.sources = VFDMA_DIRTY_SRC_TYPE1};
			rc = vfdma_dirty_stop(*logp);
			*logp = vfdma_dirty_start(t->d, &o);
			if (!*logp)
				rc = -errno;
		}
		unsigned long hit = vfd_fault_disarm();
		if (rc > 0 && which == 0)
			rc = 0;
		if (rc > 0 || rc < -4095 || (rc && !hit)) {
			vt_fail(check, "n=%u: returned %lld (%lu injected)", n, (long long)rc, hit);
			free(b);
			return;
		}
		if (!*logp) {
			struct vfdma_dirty_opts o = {.sources = VFDMA_DIRTY_SRC_TYPE1};
			*logp = vfdma_dirty_start(t->d, &o);
		}
		if (!hit)
			break;
	}
	memset(b, 0, (len / K4 + 63) / 64 * 8);
	int64_t got = *logp ? vfdma_dirty_sync(*logp, iova, len, b, 0) : -1;
	struct vfdma_domain_info di;
	vfdma_domain_get_info(t->d, &di);
	if (got != (int64_t)(len / K4) || di.broken || vfdma_domain_check(t->d))
		vt_fail(check, "after %u points: sync %lld of %llu, broken %d", n, (long long)got,
			(unsigned long long)(len / K4), di.broken);
	else
		printf("PASS %s: %u injection points, each a clean error; log works after\n", check,
		       n - 1), fflush(stdout);
	free(b);
}

int main(void)
{
	struct t t = {.slba = 0};
	if (!setup(&t))
		return vt_exit_status();
	caps(&t);

	bool huge;
	uint8_t *big = big_buf(&huge), *small = vg_buf(SMALL, 0);
	uint64_t bi = 0, si = 0;
	if (vfdma_map(t.d, big, BIG, VFDMA_PROT_RW, 0, &bi) ||
	    vfdma_map(t.d, small, SMALL, VFDMA_PROT_RW, 0, &si)) {
		vt_fail("map", "8 MiB and 64 KiB buffers");
		return vt_exit_status();
	}
	struct vfdma_dirty_opts o = {.sources = VFDMA_DIRTY_SRC_TYPE1};
	struct vfdma_dirty *log = vfdma_dirty_start(t.d, &o);
	struct vfdma_dirty_info li = {0};
	if (log)
		vfdma_dirty_get_info(log, &li);
	if (!log || li.sources != VFDMA_DIRTY_SRC_TYPE1 || li.granule != K4) {
		vt_fail("start", "log %p (%s), sources 0x%x granule %llu", (void *)log,
			log ? "" : strerror(errno), li.sources, (unsigned long long)li.granule);
		return vt_exit_status();
	}
	printf("PASS start: sources 0x%x (TYPE1 only), granule %llu, big buffer in %s pages\n",
	       li.sources, (unsigned long long)li.granule, huge ? "2 MiB" : "4 KiB");
	fflush(stdout);

	/* written: clear, the device writes 7 pages, every one is reported. */
	int64_t got, got2;
	free(sync_new("clear", log, bi, BIG, 0, &got));
	free(sync_new("clear", log, si, SMALL, 0, &got));
	static const uint64_t bp[] = {0, 1, 100, 511, 512, 2047}, sp = 3;
	bool ok = true;
	for (size_t i = 0; i < sizeof(bp) / sizeof(bp[0]); i++)
		ok &= dev_write(&t, big, bi, bp[i]);
	ok &= dev_write(&t, small, si, sp);
	uint64_t *b1 = sync_new("written", log, bi, BIG, 0, &got);
	uint64_t *b2 = sync_new("written", log, si, SMALL, 0, &got2);
	if (ok && b1 && b2) {
		bool all = bit(b2, sp);
		for (size_t i = 0; i < sizeof(bp) / sizeof(bp[0]); i++)
			all &= bit(b1, bp[i]);
		uint64_t mapped = (BIG + SMALL) / K4;
		if (!all)
			vt_fail("written", "a written page was not reported");
		else if ((uint64_t)(got + got2) != mapped)
			vt_fail("written", "reported %lld of %llu mapped pages (7 written): expected "
				"every mapped page (vfio-pci pins nothing)", (long long)(got + got2),
				(unsigned long long)mapped);
		else
			printf("PASS written: 7 pages written, all 7 reported; reported %lld of %llu "
			       "mapped pages (type1 + vfio-pci: every mapped page)\n",
			       (long long)(got + got2), (unsigned long long)mapped), fflush(stdout);
	}
	free(b1);
	free(b2);
	/* No write since: type1 still reports every page. */
	b1 = sync_new("resync", log, bi, BIG, 0, &got);
	if (b1 && got == BIG / K4)
		printf("PASS resync: no write since the last sync, still %lld of %u pages reported\n",
		       (long long)got, BIG / K4), fflush(stdout);
	else if (b1)
		vt_fail("resync", "%lld of %u pages", (long long)got, BIG / K4);
	free(b1);

	/* partial: half a mapping, then the other half. */
	b1 = sync_new("partial", log, bi, BIG / 2, 0, &got);
	b2 = sync_new("partial", log, bi + BIG / 2, BIG / 2, 0, &got2);
	if (b1 && b2 && got == BIG / 2 / K4 && got2 == BIG / 2 / K4)
		printf("PASS partial: halves of one kernel mapping: %lld + %lld pages\n",
		       (long long)got, (long long)got2), fflush(stdout);
	else if (b1 && b2)
		vt_fail("partial", "%lld + %lld pages, expected %u each", (long long)got,
			(long long)got2, BIG / 2 / K4);
	free(b1);
	free(b2);

	/* peek: the same report twice, the second one clearing. */
	dev_write(&t, small, si, 5);
	b1 = sync_new("peek", log, si, SMALL, VFDMA_DIRTY_SYNC_PEEK, &got);
	b2 = sync_new("peek", log, si, SMALL, 0, &got2);
	if (b1 && b2 && bit(b1, 5) && got == got2 && !memcmp(b1, b2, 8))
		printf("PASS peek: PEEK then clearing sync both report %lld pages, page 5 in both\n",
		       (long long)got), fflush(stdout);
	else if (b1 && b2)
		vt_fail("peek", "peek %lld (page 5: %d), then %lld", (long long)got, bit(b1, 5),
			(long long)got2);
	free(b1);
	free(b2);

	/* new_map: mapped while tracking, written, reported. */
	uint8_t *nb = vg_buf(SMALL, 0);
	uint64_t ni = 0;
	if (vfdma_map(t.d, nb, SMALL, VFDMA_PROT_RW, 0, &ni)) {
		vt_fail("new_map", "map during tracking");
	} else {
		dev_write(&t, nb, ni, 9);
		b1 = sync_new("new_map", log, ni, SMALL, 0, &got);
		if (b1 && bit(b1, 9))
			printf("PASS new_map: mapped during tracking, written page reported (%lld "
			       "of %u pages)\n", (long long)got, SMALL / K4), fflush(stdout);
		else if (b1)
			vt_fail("new_map", "page 9 not reported (%lld pages)", (long long)got);
		free(b1);

		/* unmap: clear, write, unmap; the next sync of the range reports it, once. */
		free(sync_new("unmap", log, ni, SMALL, 0, &got));
		dev_write(&t, nb, ni, 2);
		int rc = vfdma_unmap(t.d, ni, SMALL);
		b1 = sync_new("unmap", log, ni, SMALL, 0, &got);
		b2 = sync_new("unmap", log, ni, SMALL, 0, &got2);
		if (!rc && b1 && b2 && bit(b1, 2) && got2 == 0)
			printf("PASS unmap: written then unmapped in a round: reported by the next "
			       "sync (%lld pages: the unmap's bitmap), then nothing\n",
			       (long long)got), fflush(stdout);
		else if (b1 && b2)
			vt_fail("unmap", "unmap %d; page 2 %d of %lld, then %lld", rc, bit(b1, 2),
				(long long)got, (long long)got2);
		free(b1);
		free(b2);
	}

	sweep("faults_sync", &log, &t, bi, BIG, 0);
	sweep("faults_start_stop", &log, &t, bi, BIG, 1);

	/* stop, start again, stop. */
	int rc = vfdma_dirty_stop(log);
	log = vfdma_dirty_start(t.d, &o);
	int rc2 = log ? vfdma_dirty_stop(log) : -errno;
	struct vfdma_domain_info di;
	vfdma_domain_get_info(t.d, &di);
	if (rc || rc2 || di.broken || vfdma_domain_check(t.d) || vfdma_unmap(t.d, si, SMALL))
		vt_fail("stop", "stop %d, restart+stop %d, broken %d", rc, rc2, di.broken);
	else
		vt_pass("stop");

	nvme_qpair_destroy(t.qp);
	vfdma_unmap(t.d, bi, BIG);
	nvme_close(&t.c);
	vt_check("close", vfdma_domain_close(t.d) == 0);
	return vt_exit_status();
}
