/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_bench dirty: what a dirty-log sync costs and how precise it is.
 *
 *   vfdma_bench dirty [--gib N] [--runs N]
 *
 * On the sim backend (the only one with IOMMU dirty bits today), N GiB
 * (default 1) of 2 MiB-aligned memory is mapped with 2 MiB IOMMU pages and
 * a dirty log started at a 4 KiB granule, once with block split (the
 * default) and once with VFDMA_DIRTY_NO_SPLIT.  For each dirty set a sim
 * device writes one byte into each page of the set, then one
 * vfdma_dirty_sync() over the whole range is timed; median over --runs
 * (default 11) of the time per GiB tracked.  Dirty sets: none (clean),
 * sparse (one page per 2 MiB block) and dense (every 4th page).
 *
 * Precision: bytes the sync reported (dirty granules x 4 KiB) over bytes
 * written (distinct 4 KiB pages written x 4 KiB): 1.0 is exact; without
 * split every written block counts whole.
 *
 * JSON on stdout, a summary on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vfdma/vfdma.h>

#include "bench.h"

#define K4 4096ull
#define M2 (2ull << 20)
#define G1 (1ull << 30)
#define TARGET_US_PER_GIB 100.0

enum { SET_CLEAN, SET_SPARSE, SET_DENSE, NR_SETS };
static const char *const set_name[NR_SETS] = {"clean", "sparse", "dense"};

/* Page stride of each set: 0 for none. */
static const uint64_t set_stride[NR_SETS] = {0, M2 / K4, 4};

struct res {
	int rc;
	double us_per_gib; /* median */
	double us_min;
	uint64_t written, reported; /* bytes, of the last run */
};

struct rig {
	struct vfdma_domain *d;
	struct vfdma_device *dev;
	uint64_t iova, len;
	uint64_t *bitmap;
};

static int write_set(struct rig *r, uint64_t stride, uint64_t *written)
{
	uint8_t v = 0xa5;
	*written = 0;
	if (!stride)
		return 0;
	for (uint64_t p = 0; p < r->len / K4; p += stride) {
		int rc = vfdma_sim_dma_write(r->dev, r->iova + p * K4 + 17, &v, 1);
		if (rc)
			return rc;
		*written += K4;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void run_set(struct rig *r, unsigned flags, int set, unsigned runs, struct res *out)
{
	memset(out, 0, sizeof(*out));
	struct vfdma_dirty_opts o = {.granule = K4, .flags = flags};
	struct vfdma_dirty *log = vfdma_dirty_start(r->d, &o);
	double *us = calloc(runs, sizeof(*us));
	if (!log || !us) {
		out->rc = log ? -ENOMEM : -errno;
		vfdma_dirty_stop(log);
		free(us);
		return;
	}
	size_t words = r->len / K4 / 64;
	for (unsigned k = 0; k < runs && !out->rc; k++) {
		out->rc = write_set(r, set_stride[set], &out->written);
		memset(r->bitmap, 0, words * 8);
		uint64_t t0 = bench_now_ns();
		int64_t n = vfdma_dirty_sync(log, r->iova, r->len, r->bitmap, 0);
		uint64_t t1 = bench_now_ns();
		if (n < 0 && !out->rc)
			out->rc = (int)n;
		out->reported = n > 0 ? (uint64_t)n * K4 : 0;
		us[k] = (double)(t1 - t0) / 1e3 / ((double)r->len / G1);
	}
	qsort(us, runs, sizeof(*us), cmp_double);
	out->us_per_gib = us[runs / 2];
	out->us_min = us[0];
	free(us);
	vfdma_dirty_stop(log);
}

static void print_mode(const char *name, const struct res *r, int last)
{
	printf("  \"%s\": {\n", name);
	for (int s = 0; s < NR_SETS; s++) {
		double ratio = r[s].written ? (double)r[s].reported / (double)r[s].written : 0;
		printf("    \"%s\": {\"rc\": %d, \"sync_us_per_gib_p50\": %.1f, "
		       "\"sync_us_per_gib_min\": %.1f, \"written_bytes\": %llu, "
		       "\"reported_bytes\": %llu, \"precision_ratio\": %.3f}%s\n",
		       set_name[s], r[s].rc, r[s].us_per_gib, r[s].us_min,
		       (unsigned long long)r[s].written, (unsigned long long)r[s].reported, ratio,
		       s + 1 < NR_SETS ? "," : "");
	}
	printf("  }%s\n", last ? "" : ",");
}

int bench_dirty(int argc, char **argv)
{
	unsigned gib = 1, runs = 11;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--gib") && i + 1 < argc) {
			gib = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = (unsigned)atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: vfdma_bench dirty [--gib N] [--runs N]\n");
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}
	if (!gib || !runs) {
		fprintf(stderr, "dirty: --gib and --runs must be positive\n");
		return 2;
	}
	struct vfdma_domain_opts dopts = {.backend = VFDMA_BACKEND_SIM,
					  .sim_pgsizes = K4 | M2};
	struct rig r = {.len = (uint64_t)gib * G1};
	r.d = vfdma_domain_open(&dopts);
	if (!r.d) {
		fprintf(stderr, "dirty: cannot open a sim domain: %s\n", strerror(errno));
		return 1;
	}
	void *raw = mmap(NULL, r.len + M2, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	r.bitmap = calloc(r.len / K4 / 64, 8);
	r.dev = vfdma_sim_device_create(r.d);
	int rc = raw == MAP_FAILED || !r.bitmap || !r.dev ? -ENOMEM : 0;
	void *buf = (void *)(((uintptr_t)raw + M2 - 1) & ~(uintptr_t)(M2 - 1));
	if (!rc)
		rc = vfdma_map(r.d, buf, r.len, VFDMA_PROT_RW, 0, &r.iova);
	if (rc) {
		fprintf(stderr, "dirty: setup failed: %s\n", strerror(-rc));
		vfdma_domain_close(r.d);
		return 1;
	}
	struct res split[NR_SETS], nosplit[NR_SETS];
	for (int s = 0; s < NR_SETS; s++) {
		run_set(&r, 0, s, runs, &split[s]);
		run_set(&r, VFDMA_DIRTY_NO_SPLIT, s, runs, &nosplit[s]);
	}
	printf("{\n  \"bench\": \"dirty\",\n  \"backend\": \"sim\",\n  \"tracked_bytes\": %llu,\n"
	       "  \"granule\": 4096,\n  \"runs\": %u,\n  \"target_us_per_gib\": %.0f,\n",
	       (unsigned long long)r.len, runs, TARGET_US_PER_GIB);
	print_mode("split", split, 0);
	print_mode("nosplit", nosplit, 1);
	printf("}\n");

	fprintf(stderr, "dirty (sim, %u GiB in 2 MiB pages, 4 KiB granule, median of %u):\n", gib,
		runs);
	for (int s = 0; s < NR_SETS; s++) {
		double rs = split[s].written ? (double)split[s].reported / (double)split[s].written : 0;
		double rn = nosplit[s].written ? (double)nosplit[s].reported / (double)nosplit[s].written
					       : 0;
		fprintf(stderr, "  %-6s split: %9.1f us/GiB (ratio %.3f)   no split: %9.1f us/GiB "
				"(ratio %.3f)%s\n",
			set_name[s], split[s].us_per_gib, rs, nosplit[s].us_per_gib, rn,
			split[s].rc || nosplit[s].rc ? "  ERROR" : "");
	}
	fprintf(stderr, "  target: <= %.0f us per GiB tracked at 4 KiB\n", TARGET_US_PER_GIB);
	vfdma_device_close(r.dev);
	vfdma_domain_close(r.d);
	munmap(raw, r.len + M2);
	free(r.bitmap);
	for (int s = 0; s < NR_SETS; s++)
		if (split[s].rc || nosplit[s].rc)
			return 1;
	return 0;
}
