/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_bench dirty: what a dirty-log sync costs and how precise it is.
 *
 *   vfdma_bench dirty [--backend sim|iommufd-mock] [--gib N | --mib N] [--runs N]
 *
 * sim (default): N GiB (default 1) of 2 MiB-aligned memory is mapped with
 * 2 MiB IOMMU pages; a sim device writes one byte into each page of a
 * dirty set.  iommufd-mock (the VM tier: a kernel with IOMMUFD_TEST and
 * /dev/iommu): --mib (default 64) of 2 MiB hugetlb memory is mapped on an
 * iommufd domain with the kernel's mock device, whose page table has 1 MiB
 * blocks, and the set's pages get dirty bits injected (the mock device
 * cannot write).  Then, once with block split (the default) and once with
 * VFDMA_DIRTY_NO_SPLIT, a log at a 4 KiB granule is started and for each
 * set one vfdma_dirty_sync() over the whole range is timed; median over
 * --runs (default 11) of the time per GiB tracked.  Dirty sets: none
 * (clean), sparse (one page per 2 MiB) and dense (every 4th page).  Times
 * on the mock are the kernel's mock walk in an emulated guest: only the
 * precision means something there.
 *
 * Precision: bytes the sync reported (dirty granules x 4 KiB) over bytes
 * written (distinct 4 KiB pages written x 4 KiB): 1.0 is exact; without
 * split every written block counts whole.
 *
 * JSON on stdout, a summary on stderr.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vfdma/vfdma.h>

#include "bench.h"
#include "iommu/iommufd_mock.h"

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
	bool mock;
	struct vfdma_domain *d;
	struct vfdma_device *dev;
	uint64_t iova, len;
	uint64_t *bitmap, *inject; /* the sync's; the mock's injected pages */
};

static int write_set(struct rig *r, uint64_t stride, uint64_t *written)
{
	uint8_t v = 0xa5;
	*written = 0;
	if (!stride)
		return 0;
	if (r->mock)
		memset(r->inject, 0, r->len / K4 / 8);
	for (uint64_t p = 0; p < r->len / K4; p += stride) {
		if (r->mock) {
			r->inject[p / 64] |= 1ull << (p % 64);
		} else {
			int rc = vfdma_sim_dma_write(r->dev, r->iova + p * K4 + 17, &v, 1);
			if (rc)
				return rc;
		}
		*written += K4;
	}
	if (!r->mock)
		return 0;
	/* Two mock pages (2 KiB each) per 4 KiB page marked. */
	int64_t n = vfd_iommufd_mock_dirty(r->dev, r->iova, r->len, r->inject);
	return n < 0 ? (int)n : n == (int64_t)(*written / K4 * 2) ? 0 : -EIO;
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

/* Map the memory and make the device: a sim domain, or the kernel's mock. */
static int setup(struct rig *r, void **raw, uint64_t *rawlen, const char **step)
{
	*step = "domain";
	if (!r->mock) {
		struct vfdma_domain_opts o = {.backend = VFDMA_BACKEND_SIM, .sim_pgsizes = K4 | M2};
		r->d = vfdma_domain_open(&o);
	} else {
		struct vfdma_domain_opts o = {.backend = VFDMA_BACKEND_IOMMUFD};
		r->d = vfdma_domain_open(&o);
	}
	if (!r->d)
		return -errno;
	*step = "device";
	r->dev = r->mock ? vfd_iommufd_mock_open(r->d, VFD_MOCK_DEV_HUGE_IOVA)
			 : vfdma_sim_device_create(r->d);
	if (!r->dev)
		return -errno;
	*step = "memory";
	/* The mock's blocks need physically contiguous memory: hugetlb pages. */
	*rawlen = r->mock ? r->len : r->len + M2;
	*raw = mmap(NULL, *rawlen, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS |
			    (r->mock ? MAP_HUGETLB | MAP_POPULATE : MAP_NORESERVE),
		    -1, 0);
	if (*raw == MAP_FAILED) {
		*raw = NULL;
		return -errno;
	}
	r->bitmap = calloc(r->len / K4 / 64, 8);
	r->inject = calloc(r->len / K4 / 64, 8);
	if (!r->bitmap || !r->inject)
		return -ENOMEM;
	void *buf = (void *)(((uintptr_t)*raw + M2 - 1) & ~(uintptr_t)(M2 - 1));
	*step = "map";
	return vfdma_map(r->d, buf, r->len, VFDMA_PROT_RW, 0, &r->iova);
}

int bench_dirty(int argc, char **argv)
{
	unsigned runs = 11;
	uint64_t mib = 0;
	struct rig r = {0};
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--gib") && i + 1 < argc) {
			mib = (uint64_t)strtoull(argv[++i], NULL, 0) * 1024;
		} else if (!strcmp(argv[i], "--mib") && i + 1 < argc) {
			mib = (uint64_t)strtoull(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--backend") && i + 1 < argc &&
			   (!strcmp(argv[i + 1], "sim") || !strcmp(argv[i + 1], "iommufd-mock"))) {
			r.mock = !strcmp(argv[++i], "iommufd-mock");
		} else {
			fprintf(stderr, "usage: vfdma_bench dirty [--backend sim|iommufd-mock] "
					"[--gib N | --mib N] [--runs N]\n");
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}
	if (!mib)
		mib = r.mock ? 64 : 1024;
	if (!runs || mib % 2) {
		fprintf(stderr, "dirty: --runs must be positive, the size a multiple of 2 MiB\n");
		return 2;
	}
	r.len = mib << 20;
	const char *backend = r.mock ? "iommufd-mock" : "sim";
	void *raw = NULL;
	uint64_t rawlen = 0;
	const char *step = "";
	int rc = setup(&r, &raw, &rawlen, &step);
	if (rc) {
		fprintf(stderr, "dirty: %s setup failed (%s): %s%s\n", backend, step, strerror(-rc),
			r.mock ? " (needs /dev/iommu, a kernel with IOMMUFD_TEST, and 2 MiB "
				 "hugepages)"
			       : "");
		vfdma_device_close(r.dev);
		vfdma_domain_close(r.d);
		if (raw)
			munmap(raw, rawlen);
		free(r.bitmap);
		free(r.inject);
		return 1;
	}
	struct res split[NR_SETS], nosplit[NR_SETS];
	for (int s = 0; s < NR_SETS; s++) {
		run_set(&r, 0, s, runs, &split[s]);
		run_set(&r, VFDMA_DIRTY_NO_SPLIT, s, runs, &nosplit[s]);
	}
	printf("{\n  \"bench\": \"dirty\",\n  \"backend\": \"%s\",\n  \"tracked_bytes\": %llu,\n"
	       "  \"granule\": 4096,\n  \"runs\": %u,\n  \"target_us_per_gib\": %.0f,\n"
	       "  \"target_precision_ratio_split\": 1.05,\n",
	       backend, (unsigned long long)r.len, runs, TARGET_US_PER_GIB);
	print_mode("split", split, 0);
	print_mode("nosplit", nosplit, 1);
	printf("}\n");

	fprintf(stderr, "dirty (%s, %llu MiB in %s pages, 4 KiB granule, median of %u):\n",
		backend, (unsigned long long)mib, r.mock ? "1 MiB mock" : "2 MiB", runs);
	for (int s = 0; s < NR_SETS; s++) {
		double rs = split[s].written ? (double)split[s].reported / (double)split[s].written : 0;
		double rn = nosplit[s].written ? (double)nosplit[s].reported / (double)nosplit[s].written
					       : 0;
		fprintf(stderr, "  %-6s split: %9.1f us/GiB (ratio %.3f)   no split: %9.1f us/GiB "
				"(ratio %.3f)%s\n",
			set_name[s], split[s].us_per_gib, rs, nosplit[s].us_per_gib, rn,
			split[s].rc || nosplit[s].rc ? "  ERROR" : "");
	}
	fprintf(stderr, "  target: <= %.0f us per GiB tracked at 4 KiB%s; precision ratio <= 1.05 "
			"with split\n",
		TARGET_US_PER_GIB, r.mock ? " (sim figure: emulated time here)" : "");
	vfdma_device_close(r.dev);
	vfdma_domain_close(r.d);
	munmap(raw, rawlen);
	free(r.bitmap);
	free(r.inject);
	for (int s = 0; s < NR_SETS; s++)
		if (split[s].rc || nosplit[s].rc)
			return 1;
	return 0;
}
