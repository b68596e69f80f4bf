/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_bench map: what mapping costs on a domain's backend.
 *
 *   vfdma_bench map [--backend sim|iommufd|type1] [--bdf BDF] [--gib N]
 *                   [--pairs N]
 *
 * 1. Map and unmap N GiB (default 1) of 2 MiB-page memory: as one call, as
 *    a batch of 2 MiB runs (coalesced: still one kernel call), and as a
 *    batch that may not coalesce (one kernel call per run).  Reports kernel
 *    calls and time for each.
 * 2. Map+unmap pairs of 4 KiB buffers, strict and with deferred unmap:
 *    median and p99 latency of a pair, and kernel unmap calls per pair.
 *
 * Real backends need a device attached (type1 maps nothing before): pass
 * --bdf, or set VFDMA_VFIO_BDFS (the VM tier does).  JSON on stdout, a
 * human summary on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vfdma/vfdma.h>

#include "bench.h"

#define M2 (2ull << 20)

struct mem {
	void *p;
	size_t len;
	int hugetlb; /* 1: MAP_HUGETLB 2 MiB pages; 0: ordinary memory, 2 MiB-aligned */
};

static int mem_get(struct mem *m, size_t len)
{
	m->len = len;
	m->p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	m->hugetlb = m->p != MAP_FAILED;
	if (m->hugetlb)
		return 0;
	/* No hugepages reserved: 2 MiB-aligned ordinary memory, touched. */
	void *raw = mmap(NULL, len + M2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0);
	if (raw == MAP_FAILED)
		return -errno;
	uintptr_t a = ((uintptr_t)raw + M2 - 1) & ~(M2 - 1);
	m->p = (void *)a;
	madvise(m->p, len, MADV_HUGEPAGE);
	memset(m->p, 0, len);
	return 0;
}

struct phase {
	const char *name;
	uint64_t map_calls, unmap_calls;
	double map_ms, unmap_ms;
	int rc;
};

static void counters(struct vfdma_domain *d, uint64_t *maps, uint64_t *unmaps)
{
	struct vfdma_domain_info i;
	vfdma_domain_get_info(d, &i);
	*maps = i.kernel_map_calls;
	*unmaps = i.kernel_unmap_calls;
}

/* Map the region as @runs runs of @runlen bytes (flags for the batch). */
static void big_phase(struct vfdma_domain *d, struct mem *m, size_t runlen, unsigned flags,
		      struct phase *ph)
{
	size_t n = m->len / runlen;
	struct vfdma_map_run *runs = calloc(n, sizeof(*runs));
	if (!runs) {
		ph->rc = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < n; i++)
		runs[i] = (struct vfdma_map_run){(char *)m->p + i * runlen, runlen, 0};
	uint64_t m0, u0, m1, u1, m2, u2;
	counters(d, &m0, &u0);
	uint64_t t0 = bench_now_ns();
	ph->rc = n == 1 ? vfdma_map(d, m->p, m->len, VFDMA_PROT_RW, 0, &runs[0].iova)
			: vfdma_map_batch(d, runs, n, VFDMA_PROT_RW, flags);
	uint64_t t1 = bench_now_ns();
	counters(d, &m1, &u1);
	if (!ph->rc) {
		/* Unmap the mappings the call made, gathered in one batch. */
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if (k && !(flags & VFDMA_MAP_NOCOALESCE) &&
			    runs[k - 1].iova + runs[k - 1].len == runs[i].iova)
				runs[k - 1].len += runs[i].len;
			else
				runs[k++] = runs[i];
		}
		uint64_t t2 = bench_now_ns();
		ph->rc = vfdma_unmap_batch(d, runs, k);
		ph->unmap_ms = (double)(bench_now_ns() - t2) / 1e6;
	}
	counters(d, &m2, &u2);
	ph->map_ms = (double)(t1 - t0) / 1e6;
	ph->map_calls = m1 - m0;
	ph->unmap_calls = u2 - u1;
	free(runs);
}

struct pairs {
	uint64_t p50, p99;
	double unmap_calls_per_pair;
	int rc;
};

static void pair_phase(struct vfdma_domain *d, void *buf, unsigned n, struct pairs *out)
{
	uint64_t *lat = calloc(n, sizeof(*lat));
	if (!lat) {
		out->rc = -ENOMEM;
		return;
	}
	uint64_t m0, u0, m1, u1;
	counters(d, &m0, &u0);
	out->rc = 0;
	for (unsigned i = 0; i < n && !out->rc; i++) {
		uint64_t iova, t0 = bench_now_ns();
		out->rc = vfdma_map(d, buf, 4096, VFDMA_PROT_RW, 0, &iova);
		if (!out->rc)
			out->rc = vfdma_unmap(d, iova, 4096);
		lat[i] = bench_now_ns() - t0;
	}
	vfdma_domain_flush(d);
	counters(d, &m1, &u1);
	out->p50 = bench_pct(lat, n, 50);
	out->p99 = bench_pct(lat, n, 99);
	out->unmap_calls_per_pair = (double)(u1 - u0) / n;
	free(lat);
}

static struct vfdma_domain *open_domain(enum vfdma_backend be, unsigned flags, const char *bdf,
					struct vfdma_device **dev)
{
	struct vfdma_domain_opts o = {.backend = be, .flags = flags};
	struct vfdma_domain *d = vfdma_domain_open(&o);
	*dev = NULL;
	if (d && bdf && vfdma_domain_backend(d) != VFDMA_BACKEND_SIM) {
		*dev = vfdma_device_open(d, bdf, 0);
		if (!*dev) {
			fprintf(stderr, "map: cannot open %s: %s\n", bdf, strerror(errno));
			vfdma_domain_close(d);
			return NULL;
		}
	}
	return d;
}

int bench_map(int argc, char **argv)
{
	enum vfdma_backend be = VFDMA_BACKEND_AUTO;
	const char *bdf = getenv("VFDMA_VFIO_BDFS");
	unsigned gib = 1, npairs = 20000;
	char first_bdf[32] = "";
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
			const char *b = argv[++i];
			be = !strcmp(b, "sim")	     ? VFDMA_BACKEND_SIM
			     : !strcmp(b, "iommufd") ? VFDMA_BACKEND_IOMMUFD
			     : !strcmp(b, "type1")   ? VFDMA_BACKEND_TYPE1
						     : VFDMA_BACKEND_AUTO;
		} else if (!strcmp(argv[i], "--bdf") && i + 1 < argc) {
			bdf = argv[++i];
		} else if (!strcmp(argv[i], "--gib") && i + 1 < argc) {
			gib = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--pairs") && i + 1 < argc) {
			npairs = (unsigned)atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: vfdma_bench map [--backend sim|iommufd|type1] "
					"[--bdf BDF] [--gib N] [--pairs N]\n");
			return 2;
		}
	}
	if (bdf) { /* VFDMA_VFIO_BDFS may list several: take the first */
		snprintf(first_bdf, sizeof(first_bdf), "%s", bdf);
		first_bdf[strcspn(first_bdf, " ,")] = 0;
		bdf = first_bdf[0] ? first_bdf : NULL;
	}
	if (!gib || !npairs)
		return 2;

	struct vfdma_device *dev;
	struct vfdma_domain *d = open_domain(be, 0, bdf, &dev);
	if (!d) {
		fprintf(stderr, "map: cannot open a domain: %s\n", strerror(errno));
		return 1;
	}
	struct mem m;
	if (mem_get(&m, (size_t)gib << 30)) {
		fprintf(stderr, "map: no memory\n");
		vfdma_domain_close(d);
		return 1;
	}
	struct phase ph[3] = {{.name = "one_call"},
			      {.name = "batch_2m_coalesced"},
			      {.name = "batch_2m_separate"}};
	big_phase(d, &m, m.len, 0, &ph[0]);
	big_phase(d, &m, M2, 0, &ph[1]);
	big_phase(d, &m, M2, VFDMA_MAP_NOCOALESCE, &ph[2]);

	struct pairs strict, deferred;
	pair_phase(d, m.p, npairs, &strict);
	int backend = vfdma_domain_backend(d);
	vfdma_device_close(dev);
	vfdma_domain_close(d);
	d = open_domain((enum vfdma_backend)backend, VFDMA_DOMAIN_DEFER_UNMAP, bdf, &dev);
	if (d) {
		pair_phase(d, m.p, npairs, &deferred);
		vfdma_device_close(dev);
		vfdma_domain_close(d);
	} else {
		deferred = (struct pairs){.rc = -errno};
	}

	printf("{\n  \"bench\": \"map\",\n  \"backend\": \"%s\",\n  \"device\": \"%s\",\n"
	       "  \"gib\": %u,\n  \"hugetlb_2m\": %s,\n  \"big\": [\n",
	       vfdma_backend_name((enum vfdma_backend)backend), bdf ? bdf : "", gib,
	       m.hugetlb ? "true" : "false");
	for (int i = 0; i < 3; i++)
		printf("    {\"mode\": \"%s\", \"rc\": %d, \"map_kernel_calls\": %llu, "
		       "\"map_ms\": %.3f, \"unmap_kernel_calls\": %llu, \"unmap_ms\": %.3f}%s\n",
		       ph[i].name, ph[i].rc, (unsigned long long)ph[i].map_calls, ph[i].map_ms,
		       (unsigned long long)ph[i].unmap_calls, ph[i].unmap_ms, i < 2 ? "," : "");
	printf("  ],\n  \"pairs_4k\": {\"n\": %u,\n"
	       "    \"strict\": {\"rc\": %d, \"p50_ns\": %llu, \"p99_ns\": %llu, "
	       "\"unmap_calls_per_pair\": %.4f},\n"
	       "    \"deferred\": {\"rc\": %d, \"p50_ns\": %llu, \"p99_ns\": %llu, "
	       "\"unmap_calls_per_pair\": %.4f},\n"
	       "    \"deferred_over_strict_p50\": %.3f\n  }\n}\n",
	       npairs, strict.rc, (unsigned long long)strict.p50, (unsigned long long)strict.p99,
	       strict.unmap_calls_per_pair, deferred.rc, (unsigned long long)deferred.p50,
	       (unsigned long long)deferred.p99, deferred.unmap_calls_per_pair,
	       strict.p50 ? (double)deferred.p50 / (double)strict.p50 : 0.0);

	fprintf(stderr, "map (%s%s%s, %u GiB, %s):\n", vfdma_backend_name((enum vfdma_backend)backend),
		bdf ? " " : "", bdf ? bdf : "", gib, m.hugetlb ? "2 MiB hugetlb" : "ordinary memory");
	for (int i = 0; i < 3; i++)
		fprintf(stderr, "  %-20s map %5llu calls %9.3f ms   unmap %5llu calls %9.3f ms%s\n",
			ph[i].name, (unsigned long long)ph[i].map_calls, ph[i].map_ms,
			(unsigned long long)ph[i].unmap_calls, ph[i].unmap_ms,
			ph[i].rc ? "  (FAILED)" : "");
	fprintf(stderr, "  4 KiB map+unmap pair: strict p50 %llu ns p99 %llu ns; deferred p50 %llu ns "
			"p99 %llu ns (%.4f kernel unmaps per pair)\n",
		(unsigned long long)strict.p50, (unsigned long long)strict.p99,
		(unsigned long long)deferred.p50, (unsigned long long)deferred.p99,
		deferred.unmap_calls_per_pair);
	munmap(m.p, m.len);
	return ph[0].rc || ph[1].rc || ph[2].rc || strict.rc || deferred.rc ? 1 : 0;
}
