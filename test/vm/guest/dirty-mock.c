/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dirty-mock: iommufd hardware dirty tracking against the kernel's
 * IOMMUFD_TEST mock device (lib/iommu/iommufd_mock.h), whose dirty bits the
 * test sets itself.
 *
 * The mock maps 2 KiB pages and, for a device made with HUGE_IOVA, 1 MiB
 * blocks, which it reports dirty as a whole.  Four 2 MiB hugetlb mappings
 * (so: 1 MiB blocks in the domain's IOAS) and one 64 KiB mapping of 4 KiB
 * pages; dirty bits are injected at chosen 4 KiB pages and the log synced:
 *
 *  - split on: exactly the injected pages are reported (single pages, runs,
 *    pages at block boundaries, pages in several mappings; a mapping made
 *    during tracking; a page written and then unmapped during a round);
 *  - split off: the whole 1 MiB block of each injected page;
 *  - peek keeps the bits, a clearing sync takes them;
 *  - info reports SRC_HW and split; the split IOAS and the tracking HWPT
 *    exist while the log runs and are gone after stop, the device back on
 *    the domain's IOAS, whose blocks are whole again (a later NO_SPLIT log
 *    reports whole blocks);
 *  - fault injection over start (split and not), stop, and a map during
 *    tracking: every failure undone (device on the domain's IOAS, no split
 *    IOAS or HWPT left, no fd leaked, the domain checks clean).
 *
 * The precision ratio (reported bytes / written bytes) of each mode is
 * printed on its PASS line.
 *
 * With argument "vtd" instead: on the emulated VT-d with an NVMe, the domain
 * reports no hardware dirty tracking and a log asking for it gets ENOTSUP,
 * while a MARK log still works.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "iommu/iommufd_mock.h"
#include "util/sys.h"
#include "vfdma-guest.h"
#include "vfdma/dirty.h"

#define PG 4096ull
#define HUGE (2ull << 20)
#define BLOCK ((uint64_t)VFD_MOCK_HUGE_SIZE) /* what the mock reports as one */
#define NHUGE 4
#define SMALL (64ull << 10)
#define NMAP (NHUGE + 1) /* mapping NHUGE is the small one */

struct ctx {
	struct vfdma_domain *d;
	struct vfdma_device *mock;
	void *mem[NMAP + 1]; /* + one for maps during tracking */
	uint64_t iova[NMAP + 1], len[NMAP + 1];
	uint64_t reported, written; /* bytes, for the precision ratio */
};

struct pg {
	int m;	    /* mapping */
	uint64_t p; /* 4 KiB page in it */
};

static void *huge_alloc(uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static uint64_t *bm_new(uint64_t len)
{
	return calloc((len / PG + 63) / 64 + 1, sizeof(uint64_t));
}

static bool bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] & (1ull << (i % 64));
}

static void set(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

/* Inject dirty bits at @n pages of mapping @m (all pages of @pages in it). */
static bool inject(struct ctx *c, int m, const uint64_t *pages, size_t n)
{
	uint64_t *b = bm_new(c->len[m]);
	for (size_t i = 0; i < n; i++)
		set(b, pages[i]);
	int64_t got = vfd_iommufd_mock_dirty(c->mock, c->iova[m], c->len[m], b);
	free(b);
	if (got != (int64_t)(2 * n)) {
		fprintf(stderr, "inject: mapping %d: %lld marked, %zu pages\n", m, (long long)got,
			n);
		return false;
	}
	return true;
}

/*
 * Sync mapping @m and compare with what @pages (written) must give: those
 * pages exactly (@split or a 4 KiB mapping), or their whole blocks.
 */
static bool expect(struct ctx *c, struct vfdma_dirty *log, int m, const uint64_t *pages,
		   size_t n, bool split, unsigned flags, char *why, size_t wl)
{
	uint64_t np = c->len[m] / PG;
	uint64_t *want = bm_new(c->len[m]), *got = bm_new(c->len[m]);
	bool blocks = !split && m != NHUGE;
	for (size_t i = 0; i < n; i++) {
		if (!blocks) {
			set(want, pages[i]);
			continue;
		}
		uint64_t first = pages[i] & ~(BLOCK / PG - 1);
		for (uint64_t q = first; q < first + BLOCK / PG; q++)
			set(want, q);
	}
	int64_t rc = vfdma_dirty_sync(log, c->iova[m], c->len[m], got, flags);
	bool ok = rc >= 0;
	uint64_t nwant = 0;
	for (uint64_t q = 0; q < np && ok; q++) {
		nwant += bit(want, q);
		if (bit(want, q) != bit(got, q)) {
			snprintf(why, wl, "mapping %d page %llu: reported %d, expected %d", m,
				 (unsigned long long)q, bit(got, q), bit(want, q));
			ok = false;
		}
	}
	if (ok && rc != (int64_t)nwant) {
		snprintf(why, wl, "mapping %d: sync returned %lld, expected %llu", m,
			 (long long)rc, (unsigned long long)nwant);
		ok = false;
	} else if (rc < 0) {
		snprintf(why, wl, "mapping %d: sync: %s", m, strerror((int)-rc));
	}
	if (ok && !(flags & VFDMA_DIRTY_SYNC_PEEK)) {
		c->reported += (uint64_t)rc * PG;
		c->written += n * PG;
	}
	free(want);
	free(got);
	return ok;
}

/* Inject @list (several mappings), sync all, then sync again: all clean. */
static bool pattern(struct ctx *c, struct vfdma_dirty *log, const struct pg *list, size_t n,
		    bool split, char *why, size_t wl)
{
	uint64_t pages[NMAP][64];
	size_t cnt[NMAP] = {0};
	for (size_t i = 0; i < n; i++)
		pages[list[i].m][cnt[list[i].m]++] = list[i].p;
	for (int m = 0; m < NMAP; m++)
		if (cnt[m] && !inject(c, m, pages[m], cnt[m])) {
			snprintf(why, wl, "injecting into mapping %d failed", m);
			return false;
		}
	for (int m = 0; m < NMAP; m++)
		if (!expect(c, log, m, pages[m], cnt[m], split, 0, why, wl))
			return false;
	for (int m = 0; m < NMAP; m++)
		if (!expect(c, log, m, NULL, 0, split, 0, why, wl)) {
			strncat(why, " (after a clearing sync)", wl - strlen(why) - 1);
			return false;
		}
	return true;
}

static struct vfdma_dirty *start(struct ctx *c, bool split)
{
	struct vfdma_dirty_opts o = {
		.granule = PG,
		.sources = VFDMA_DIRTY_SRC_HW | VFDMA_DIRTY_SRC_MARK,
		.flags = split ? 0 : VFDMA_DIRTY_NO_SPLIT,
	};
	return vfdma_dirty_start(c->d, &o);
}

static bool ids(struct ctx *c, struct vfd_iommufd_ids *i)
{
	return vfd_iommufd_get_ids(c->d, c->mock, i) == 0;
}

/* Nothing of tracking left: device on the IOAS, no split IOAS, no HWPT. */
static bool clean(struct ctx *c)
{
	struct vfd_iommufd_ids i;
	return ids(c, &i) && !i.split_id && !i.nr_hwpts && i.dev_pt_id == i.ioas_id;
}

static bool object_gone(int fd, uint32_t ioas)
{
	struct iommu_iova_range r[4];
	struct iommu_ioas_iova_ranges q = {
		.size = sizeof(q), .ioas_id = ioas, .num_iovas = 4, .allowed_iovas = (uintptr_t)r};
	return ioctl(fd, IOMMU_IOAS_IOVA_RANGES, &q) < 0 && errno == ENOENT;
}

static bool hwpt_gone(int fd, uint32_t hwpt)
{
	struct iommu_hwpt_set_dirty_tracking q = {.size = sizeof(q), .hwpt_id = hwpt};
	return ioctl(fd, IOMMU_HWPT_SET_DIRTY_TRACKING, &q) < 0 && errno == ENOENT;
}

static const struct pg P_SINGLE[] = {{0, 0}, {1, 100}};
static const struct pg P_RUN[] = {{2, 10}, {2, 11}, {2, 12}, {2, 13}, {2, 14}, {2, 15},
				  {2, 16}, {2, 17}, {2, 18}, {2, 19}, {2, 20}, {2, 21}};
static const struct pg P_EDGE[] = {{0, 255}, {0, 256}, {0, 511}, {3, 0}, {1, 257}};
static const struct pg P_MANY[] = {{0, 7}, {1, 300}, {2, 511}, {3, 256}, {NHUGE, 0},
				   {NHUGE, 1}, {NHUGE, 15}};

struct pat {
	const char *name;
	const struct pg *list;
	size_t n;
};
#define PAT(name, a) {name, a, sizeof(a) / sizeof(a[0])}
static const struct pat PATS[] = {
	PAT("single", P_SINGLE), PAT("run", P_RUN), PAT("edges", P_EDGE), PAT("many", P_MANY)};

/* The patterns, peek, and a mapping made, written and unmapped in the round. */
static void rounds(struct ctx *c, bool split)
{
	const char *mode = split ? "split" : "nosplit";
	char name[80], why[200];
	c->reported = c->written = 0;
	struct vfdma_dirty *log = start(c, split);
	snprintf(name, sizeof(name), "%s_start", mode);
	if (!vt_check(name, log != NULL))
		return;
	struct vfdma_dirty_info info;
	snprintf(name, sizeof(name), "%s_info", mode);
	if (vfdma_dirty_get_info(log, &info) || !(info.sources & VFDMA_DIRTY_SRC_HW) ||
	    info.split != split)
		vt_fail(name, "sources 0x%x split %d", info.sources, info.split);
	else
		vt_pass(name);
	struct vfd_iommufd_ids i;
	snprintf(name, sizeof(name), "%s_objects", mode);
	if (!ids(c, &i) || i.nr_hwpts != 1 || i.dev_pt_id == i.ioas_id || !i.dev_pt_id ||
	    (split ? !i.split_id : i.split_id != 0))
		vt_fail(name, "split IOAS %u, %u HWPT(s), device on %u (IOAS %u)", i.split_id,
			i.nr_hwpts, i.dev_pt_id, i.ioas_id);
	else
		vt_pass(name);
	for (size_t k = 0; k < sizeof(PATS) / sizeof(PATS[0]); k++) {
		snprintf(name, sizeof(name), "%s_%s", mode, PATS[k].name);
		if (pattern(c, log, PATS[k].list, PATS[k].n, split, why, sizeof(why)))
			vt_pass(name);
		else
			vt_fail(name, "%s", why);
	}

	/* Peek keeps the bits; a clearing sync takes them. */
	uint64_t pk[] = {42};
	snprintf(name, sizeof(name), "%s_peek", mode);
	bool ok = inject(c, 1, pk, 1) &&
		  expect(c, log, 1, pk, 1, split, VFDMA_DIRTY_SYNC_PEEK, why, sizeof(why)) &&
		  expect(c, log, 1, pk, 1, split, VFDMA_DIRTY_SYNC_PEEK, why, sizeof(why)) &&
		  expect(c, log, 1, pk, 1, split, 0, why, sizeof(why)) &&
		  expect(c, log, 1, NULL, 0, split, 0, why, sizeof(why));
	ok ? vt_pass(name) : vt_fail(name, "%s", why);

	/* A mapping made during tracking is tracked (split too), then unmapped. */
	int m = NMAP;
	snprintf(name, sizeof(name), "%s_map_during", mode);
	c->len[m] = HUGE;
	ok = vfdma_map(c->d, c->mem[m], HUGE, VFDMA_PROT_RW, 0, &c->iova[m]) == 0;
	uint64_t np[] = {3, 300};
	ok = ok && inject(c, m, np, 2);
	/* Stand-in for expect(): mapping m is huge, pages 3 and 300 in blocks 0 and 1. */
	uint64_t *got = bm_new(HUGE);
	int64_t n = ok ? vfdma_dirty_sync(log, c->iova[m], HUGE, got, 0) : -1;
	int64_t want = split ? 2 : (int64_t)(2 * BLOCK / PG);
	ok = ok && n == want && bit(got, 3) && bit(got, 300);
	ok ? vt_pass(name) : vt_fail(name, "reported %lld, expected %lld", (long long)n,
				     (long long)want);
	if (ok) {
		c->reported += (uint64_t)n * PG;
		c->written += 2 * PG;
	}
	/* Written, then unmapped before the sync: still reported. */
	snprintf(name, sizeof(name), "%s_unmap_harvest", mode);
	memset(got, 0, (HUGE / PG / 64 + 1) * 8);
	uint64_t up[] = {77};
	ok = inject(c, m, up, 1) && vfdma_unmap(c->d, c->iova[m], HUGE) == 0;
	n = ok ? vfdma_dirty_sync(log, c->iova[m], HUGE, got, 0) : -1;
	want = split ? 1 : (int64_t)(BLOCK / PG);
	ok = ok && n == want && bit(got, 77);
	ok ? vt_pass(name) : vt_fail(name, "reported %lld, expected %lld", (long long)n,
				     (long long)want);
	free(got);

	printf("PASS %s_precision: ratio %.3f (%llu bytes reported / %llu written)\n", mode,
	       c->written ? (double)c->reported / (double)c->written : 0.0,
	       (unsigned long long)c->reported, (unsigned long long)c->written);
	fflush(stdout);

	/* Stop: back on the domain's IOAS; the HWPT and the split IOAS gone. */
	uint32_t hwpt = i.dev_pt_id, split_id = i.split_id;
	snprintf(name, sizeof(name), "%s_stop_merges", mode);
	int src = vfdma_dirty_stop(log);
	if (src || !clean(c) || !hwpt_gone(i.fd, hwpt) || (split_id && !object_gone(i.fd, split_id)))
		vt_fail(name, "stop %d, clean %d, HWPT %u gone %d, split IOAS %u gone %d", src,
			clean(c), hwpt, hwpt_gone(i.fd, hwpt), split_id,
			split_id ? object_gone(i.fd, split_id) : 1);
	else
		vt_pass(name);
}

/* ---- fault injection ---- */

struct snap {
	int fds;
	struct vfdma_domain_info info;
};

static void take(struct ctx *c, struct snap *s)
{
	s->fds = vg_nr_fds();
	vfdma_domain_get_info(c->d, &s->info);
}

static bool same(const struct snap *a, const struct snap *b)
{
	return a->fds == b->fds && a->info.mappings == b->info.mappings &&
	       a->info.mapped_bytes == b->info.mapped_bytes && !b->info.broken &&
	       a->info.nr_devices == b->info.nr_devices;
}

/* After a round: the domain as before, and tracking still works on it. */
static bool works(struct ctx *c, char *why, size_t wl)
{
	struct vfdma_dirty *log = start(c, true);
	uint64_t pages[] = {5};
	bool ok = log && inject(c, 0, pages, 1) &&
		  expect(c, log, 0, pages, 1, true, 0, why, wl);
	if (!log)
		snprintf(why, wl, "start afterwards: %s", strerror(errno));
	else if (!ok && !why[0])
		snprintf(why, wl, "tracking afterwards reports wrong pages");
	vfdma_dirty_stop(log);
	return ok && clean(c) && vfdma_domain_check(c->d) == 0;
}

enum sweep_op { SW_START_SPLIT, SW_START_NOSPLIT, SW_STOP, SW_MAP_DURING };

static void sweep(struct ctx *c, enum sweep_op op, const char *name)
{
	char why[240] = "", w[200];
	unsigned n, fails = 0, leftovers = 0;
	for (n = 1; n < 2000; n++) {
		struct snap s0, s1;
		struct vfdma_dirty *log = NULL;
		uint64_t iova = 0;
		int rc = 0;
		if (op == SW_STOP || op == SW_MAP_DURING)
			log = start(c, true);
		take(c, &s0);
		vfd_fault_arm(VFD_SYS_ANY, n, EIO, false);
		switch (op) {
		case SW_START_SPLIT:
		case SW_START_NOSPLIT:
			log = start(c, op == SW_START_SPLIT);
			rc = log ? 0 : -errno;
			break;
		case SW_STOP:
			rc = vfdma_dirty_stop(log);
			log = NULL;
			break;
		case SW_MAP_DURING:
			rc = vfdma_map(c->d, c->mem[NMAP], HUGE, VFDMA_PROT_RW, 0, &iova);
			break;
		}
		unsigned long injected = vfd_fault_disarm();
		take(c, &s1);
		w[0] = '\0';
		if (op == SW_MAP_DURING) {
			if (!rc) {
				/* The copy in the split IOAS works: its pages are tracked. */
				c->iova[NMAP] = iova;
				c->len[NMAP] = HUGE;
				uint64_t pg[] = {9};
				bool tracked = inject(c, NMAP, pg, 1) &&
					       expect(c, log, NMAP, pg, 1, true, 0, w, sizeof(w));
				if (!tracked && !fails++)
					snprintf(why, sizeof(why), "n=%u: mapped but not tracked: %s", n, w);
				vfdma_unmap(c->d, iova, HUGE);
			} else if (!same(&s0, &s1) && !fails++) {
				snprintf(why, sizeof(why), "n=%u: rc %d, domain changed", n, rc);
			}
		} else if (rc && (rc > 0 || rc < -4095 || !same(&s0, &s1)) && !fails++) {
			snprintf(why, sizeof(why), "n=%u: rc %d, domain changed", n, rc);
		} else if (rc && !clean(c) && !fails++) {
			/* One failure: the undo itself runs unharmed and must be complete. */
			snprintf(why, sizeof(why), "n=%u: rc %d, tracking state left", n, rc);
		}
		vfdma_dirty_stop(log);
		/* A stop that failed half-way leaves a consistent rest, taken by the next start. */
		if (op == SW_STOP && !clean(c))
			leftovers++;
		if (!works(c, w, sizeof(w)) && !fails++)
			snprintf(why, sizeof(why), "n=%u: rc %d, afterwards: %s", n, rc, w);
		if (!injected)
			break;
	}
	if (fails)
		vt_fail(name, "%u bad outcomes of %u injection points; first: %s", fails, n - 1, why);
	else
		printf("PASS %s: %u injection points%s\n", name, n - 1,
		       op == SW_STOP && leftovers ? " (failed stops left state, cleaned by the next start)"
						   : ""),
			fflush(stdout);
}

static int vtd(void)
{
	char bdf[32];
	if (!vg_bdf(0, bdf)) {
		vt_skip("vtd_no_hw", "no NVMe");
		return vt_exit_status();
	}
	struct vfdma_domain_opts o = {.backend = VFDMA_BACKEND_IOMMUFD};
	struct vfdma_domain *d = vfdma_domain_open(&o);
	struct vfdma_device *dev = d ? vfdma_device_open(d, bdf, 0) : NULL;
	if (!vt_check("vtd_open", dev != NULL)) {
		vfdma_domain_close(d);
		return vt_exit_status();
	}
	struct vfdma_domain_info info;
	vfdma_domain_get_info(d, &info);
	if (info.dirty_caps & (VFDMA_DIRTY_CAP_HW | VFDMA_DIRTY_CAP_SPLIT))
		vt_fail("vtd_no_hw_caps", "dirty_caps 0x%x", info.dirty_caps);
	else
		vt_pass("vtd_no_hw_caps");
	struct vfdma_dirty_opts opts = {.sources = VFDMA_DIRTY_SRC_HW};
	errno = 0;
	struct vfdma_dirty *log = vfdma_dirty_start(d, &opts);
	if (log || errno != ENOTSUP)
		vt_fail("vtd_hw_enotsup", "start gave %p, errno %d", (void *)log, errno);
	else
		vt_pass("vtd_hw_enotsup");
	vfdma_dirty_stop(log);
	log = vfdma_dirty_start(d, NULL); /* the best there is: MARK */
	struct vfdma_dirty_info di = {0};
	if (!log || vfdma_dirty_get_info(log, &di) || di.sources != VFDMA_DIRTY_SRC_MARK)
		vt_fail("vtd_mark_works", "log %p, sources 0x%x", (void *)log, di.sources);
	else
		vt_pass("vtd_mark_works");
	vfdma_dirty_stop(log);
	vfdma_device_close(dev);
	vfdma_domain_close(d);
	return vt_exit_status();
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "vtd"))
		return vtd();
	/* The mock's test ABI is that of one kernel series (iommufd_mock.h). */
	if (!vt_require_kernel_series("kernel_series", "6.12"))
		return VT_EXIT_SKIP;
	/* The spec's backend is "none" (no NVMe): the domain is iommufd, by option. */
	unsetenv("VFDMA_BACKEND");
	struct ctx c = {0};
	struct vfdma_domain_opts o = {.backend = VFDMA_BACKEND_IOMMUFD};
	c.d = vfdma_domain_open(&o);
	if (!vt_check("domain_open", c.d != NULL))
		return vt_exit_status();
	c.mock = vfd_iommufd_mock_open(c.d, VFD_MOCK_DEV_HUGE_IOVA);
	if (!vt_check("mock_open", c.mock != NULL))
		goto out;
	struct vfdma_domain_info info;
	vfdma_domain_get_info(c.d, &info);
	if ((info.dirty_caps & (VFDMA_DIRTY_CAP_HW | VFDMA_DIRTY_CAP_SPLIT)) !=
	    (VFDMA_DIRTY_CAP_HW | VFDMA_DIRTY_CAP_SPLIT))
		vt_fail("caps_hw_split", "dirty_caps 0x%x", info.dirty_caps);
	else
		vt_pass("caps_hw_split");

	bool ok = true;
	for (int m = 0; m <= NMAP && ok; m++) {
		c.len[m] = m == NHUGE ? SMALL : HUGE;
		c.mem[m] = m == NHUGE ? vg_buf(SMALL, 0) : huge_alloc(HUGE);
		ok = c.mem[m] != NULL;
		if (ok && m < NMAP)
			ok = vfdma_map(c.d, c.mem[m], c.len[m], VFDMA_PROT_RW, 0, &c.iova[m]) == 0;
		if (ok && m < NHUGE)
			ok = !(c.iova[m] & (HUGE - 1)); /* blocks need aligned IOVA */
	}
	if (!vt_check("map", ok))
		goto out;

	rounds(&c, true);
	rounds(&c, false);
	/* Stopped the split log earlier: the domain's blocks were whole again above. */

	sweep(&c, SW_START_SPLIT, "sweep_start_split");
	sweep(&c, SW_START_NOSPLIT, "sweep_start_nosplit");
	sweep(&c, SW_STOP, "sweep_stop");
	sweep(&c, SW_MAP_DURING, "sweep_map_during_split");

	/* A device cannot join a domain while it tracks (it would not be). */
	struct vfdma_dirty *log = start(&c, true);
	errno = 0;
	struct vfdma_device *late = vfd_iommufd_mock_open(c.d, VFD_MOCK_DEV_HUGE_IOVA);
	if (late || errno != EBUSY)
		vt_fail("attach_while_tracking", "%p, errno %d", (void *)late, errno);
	else
		vt_pass("attach_while_tracking");
	vfdma_device_close(late);
	vfdma_dirty_stop(log);
out:
	vt_check("close", vfdma_domain_close(c.d) == 0);
	return vt_exit_status();
}
