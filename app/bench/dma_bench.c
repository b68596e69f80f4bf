/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_bench dma: what a driver's per-I/O memory work costs.
 *
 *   vfdma_bench dma [--backend sim|iommufd|type1] [--bdf BDF] [--rounds N]
 *
 * 1. Translation hit: vfdma_vaddr_to_iova() (and iova_to_vaddr) of random
 *    addresses inside a 64 MiB 2 MiB-aligned registration (what pool and
 *    hugepage memory look like: whole 2 MiB entries), and inside 1024
 *    registered 64 KiB buffers spread over 1 GiB (4 KiB entries).
 * 2. Mapping-cache hit: vfdma_mem_acquire() of a buffer the cache holds,
 *    then vfdma_mem_release(); the system calls and allocations made
 *    during the timed loop are counted through the syscall shim (the
 *    promise is none).
 * 3. DMA pool: vfdma_dma_alloc() + vfdma_dma_free() pairs from one thread
 *    (64 B and 4 KiB), and from two threads at once.
 * 4. Metadata bytes per mapping: 16384 registrations of separate 4 KiB
 *    pages (nothing coalesces), the library's own count of the bytes behind
 *    them (records, indexes, translation tables) divided by the mappings.
 *
 * Times are medians over rounds of 1024 operations each, timed with the
 * TSC (a round's time divided by its operations), so the timer's own cost
 * is spread over a round.  JSON on stdout, a summary on stderr.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <vfdma/vfdma.h>

#include "bench.h"
#include "util/sys.h" /* the shim's call counters */

#define K4 4096ull
#define K64 (64ull << 10)
#define G1 (1ull << 30)
#define OPS 1024 /* operations per timed round */
#define NBUF 1024

struct opts {
	const char *backend;
	const char *bdf;
	unsigned rounds;
};

/* ns per operation of each round, median and p99 over rounds */
struct lat {
	double p50, p99;
};

static struct lat summarize(uint64_t *ticks, unsigned rounds)
{
	double tpn = bench_ticks_per_ns();
	bench_sort(ticks, rounds);
	return (struct lat){
		.p50 = (double)bench_pct(ticks, rounds, 50) / tpn / OPS,
		.p99 = (double)bench_pct(ticks, rounds, 99) / tpn / OPS,
	};
}

/* Address space for buffers the sim backend never touches. */
static void *reserve(size_t len)
{
	void *p = mmap(NULL, len + 2 * (2u << 20), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	return (void *)(((uintptr_t)p + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
}

struct xlate_res {
	struct lat to_iova, to_vaddr;
	int rc;
};

/* Time vfdma_vaddr_to_iova and vfdma_iova_to_vaddr over @va/@iova. */
static void time_translate(struct vfdma_domain *d, const struct opts *o, const void **va,
			   const uint64_t *iova, uint64_t *ticks, struct xlate_res *r)
{
	uint64_t sink = 0;
	for (unsigned k = 0; k < o->rounds; k++) {
		uint64_t t0 = bench_ticks();
		for (unsigned i = 0; i < OPS; i++) {
			uint64_t x;
			vfdma_vaddr_to_iova(d, va[i], &x, NULL);
			sink += x;
		}
		ticks[k] = bench_ticks() - t0;
	}
	r->to_iova = summarize(ticks, o->rounds);
	for (unsigned k = 0; k < o->rounds; k++) {
		uint64_t t0 = bench_ticks();
		for (unsigned i = 0; i < OPS; i++) {
			void *x;
			vfdma_iova_to_vaddr(d, iova[i], &x, NULL);
			sink += (uintptr_t)x;
		}
		ticks[k] = bench_ticks() - t0;
	}
	r->to_vaddr = summarize(ticks, o->rounds);
	__asm__ __volatile__("" ::"r"(sink));
}

/*
 * @huge: one 64 MiB 2 MiB-aligned registration (pool and hugepage memory:
 * whole 2 MiB entries); otherwise 1024 registrations of 64 KiB spread
 * over 1 GiB (4 KiB entries, 4 MiB of them).  Random addresses inside.
 */
static void bench_translate(struct vfdma_domain *d, const struct opts *o, int huge,
			    struct xlate_res *r)
{
	const unsigned nbuf = huge ? 1 : NBUF;
	const uint64_t blen = huge ? 64ull << 20 : K64, stride = huge ? blen : G1 / NBUF;
	char *base = reserve(nbuf * stride);
	uint64_t *ticks = calloc(o->rounds, sizeof(*ticks));
	const void **va = calloc(OPS, sizeof(*va));
	uint64_t *iova = calloc(OPS, sizeof(*iova));
	r->rc = base && ticks && va && iova ? 0 : -ENOMEM;
	for (unsigned i = 0; i < nbuf && !r->rc; i++)
		r->rc = vfdma_mem_register(d, base + i * stride, blen);
	uint64_t seed = 42;
	for (unsigned i = 0; i < OPS && !r->rc; i++) {
		uint64_t b = bench_rand(&seed) % nbuf, off = bench_rand(&seed) % blen;
		va[i] = base + b * stride + off;
		r->rc = vfdma_vaddr_to_iova(d, va[i], &iova[i], NULL);
	}
	if (!r->rc)
		time_translate(d, o, va, iova, ticks, r);
	for (unsigned i = 0; base && i < nbuf; i++)
		vfdma_mem_unregister(d, base + i * stride, blen);
	free(ticks);
	free(va);
	free(iova);
}

struct cache_res {
	struct lat pair;
	unsigned long syscalls, allocs;
	int rc;
};

static void bench_cache(struct vfdma_domain *d, const struct opts *o, struct cache_res *r)
{
	enum { N = 16 };
	char *bufs = reserve(N * K64);
	uint64_t *ticks = calloc(o->rounds, sizeof(*ticks));
	r->rc = bufs && ticks ? vfdma_mem_set_budget(d, 64ull << 20) : -ENOMEM;
	uint64_t iova[N];
	/* warm: every buffer mapped once, then idle in the cache */
	for (unsigned i = 0; i < N && !r->rc; i++) {
		r->rc = vfdma_mem_acquire(d, bufs + i * K64, K4, VFDMA_PROT_RW, &iova[i]);
		if (!r->rc)
			r->rc = vfdma_mem_release(d, bufs + i * K64, iova[i]);
	}
	if (!r->rc) {
		vfd_fault_arm(VFD_SYS_ANY, ULONG_MAX, 0, false);
		for (unsigned k = 0; k < o->rounds && !r->rc; k++) {
			uint64_t t0 = bench_ticks();
			for (unsigned i = 0; i < OPS; i++) {
				void *p = bufs + (i % N) * K64 + (i & 7) * 512;
				uint64_t x;
				int rc = vfdma_mem_acquire(d, p, 512, VFDMA_PROT_RW, &x);
				rc |= vfdma_mem_release(d, p, x);
				r->rc |= rc;
			}
			ticks[k] = bench_ticks() - t0;
		}
		r->allocs = vfd_fault_calls(VFD_SYS_ALLOC);
		r->syscalls = vfd_fault_calls(VFD_SYS_ANY) - r->allocs;
		vfd_fault_disarm();
	}
	if (!r->rc)
		r->pair = summarize(ticks, o->rounds);
	vfdma_mem_set_budget(d, 0);
	free(ticks);
}

struct pool_res {
	struct lat pair64, pair4k, pair4k_mt;
	int rc;
};

struct pool_thread {
	struct vfdma_pool *pool;
	unsigned rounds;
	uint64_t size;
	uint64_t *ticks;
	int rc;
};

static void *pool_pairs(void *arg)
{
	struct pool_thread *t = arg;
	void *keep[8];
	for (unsigned k = 0; k < t->rounds && !t->rc; k++) {
		uint64_t t0 = bench_ticks();
		for (unsigned i = 0; i < OPS / 8; i++) {
			for (unsigned j = 0; j < 8; j++)
				keep[j] = vfdma_dma_alloc(t->pool, t->size, 0, VFDMA_NUMA_ANY, NULL);
			for (unsigned j = 0; j < 8; j++)
				t->rc |= keep[j] ? vfdma_dma_free(t->pool, keep[j]) : -ENOMEM;
		}
		t->ticks[k] = bench_ticks() - t0;
	}
	return NULL;
}

static int pool_run(struct vfdma_pool *pool, const struct opts *o, uint64_t size, int threads,
		    struct lat *out)
{
	struct pool_thread t[2];
	pthread_t th[2];
	for (int i = 0; i < threads; i++) {
		t[i] = (struct pool_thread){pool, o->rounds, size, calloc(o->rounds, 8), 0};
		if (!t[i].ticks)
			return -ENOMEM;
	}
	for (int i = 1; i < threads; i++)
		pthread_create(&th[i], NULL, pool_pairs, &t[i]);
	pool_pairs(&t[0]);
	int rc = t[0].rc;
	for (int i = 1; i < threads; i++) {
		pthread_join(th[i], NULL);
		rc |= t[i].rc;
	}
	if (!rc)
		*out = summarize(t[0].ticks, o->rounds);
	for (int i = 0; i < threads; i++)
		free(t[i].ticks);
	return rc;
}

static void bench_pool(struct vfdma_domain *d, const struct opts *o, struct pool_res *r)
{
	struct vfdma_pool *pool = vfdma_pool_create(d, VFDMA_NUMA_ANY, NULL);
	if (!pool) {
		r->rc = -errno;
		return;
	}
	r->rc = pool_run(pool, o, 64, 1, &r->pair64);
	if (!r->rc)
		r->rc = pool_run(pool, o, K4, 1, &r->pair4k);
	if (!r->rc)
		r->rc = pool_run(pool, o, K4, 2, &r->pair4k_mt);
	vfdma_pool_destroy(pool);
}

struct meta_res {
	double per_mapping;
	double iova_per_mapping; /* the IOVA allocator's own, accounted apart */
	uint64_t mappings;
	int rc;
};

/*
 * Metadata per mapping: 16384 registrations of separate 4 KiB pages, 8 KiB
 * apart, in a domain of their own (so records left free in the slab by
 * the other parts do not make the figure look cheaper than it is).
 */
static void bench_meta(struct vfdma_domain *shared, const struct vfdma_domain_opts *dopts,
		       struct meta_res *r)
{
	enum { N = 16384 };
	struct vfdma_domain *d = vfdma_domain_open(dopts);
	if (!d)
		d = shared; /* a backend that needs a device for a second domain */
	char *base = reserve(2 * N * K4);
	r->rc = base ? 0 : -ENOMEM;
	struct vfdma_mem_stats s0, s1;
	if (!r->rc)
		r->rc = vfdma_mem_get_stats(d, &s0);
	for (unsigned i = 0; i < N && !r->rc; i++)
		r->rc = vfdma_mem_register(d, base + 2 * i * K4, K4);
	if (!r->rc)
		r->rc = vfdma_mem_get_stats(d, &s1);
	if (!r->rc) {
		r->mappings = s1.mappings - s0.mappings;
		r->per_mapping = (double)(s1.metadata_bytes - s0.metadata_bytes) / (double)r->mappings;
		r->iova_per_mapping = (double)(s1.iova_metadata_bytes - s0.iova_metadata_bytes) /
				      (double)r->mappings;
	}
	for (unsigned i = 0; base && i < N; i++)
		vfdma_mem_unregister(d, base + 2 * i * K4, K4);
	if (d != shared)
		vfdma_domain_close(d);
}

static int parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.backend = "sim", .rounds = 2000};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--backend") && i + 1 < argc)
			o->backend = argv[++i];
		else if (!strcmp(a, "--bdf") && i + 1 < argc)
			o->bdf = argv[++i];
		else if (!strcmp(a, "--rounds") && i + 1 < argc)
			o->rounds = (unsigned)strtoul(argv[++i], NULL, 0);
		else {
			fprintf(stderr,
				"usage: vfdma_bench dma [--backend sim|iommufd|type1] [--bdf BDF] "
				"[--rounds N]\n");
			return strcmp(a, "--help") ? 2 : 0;
		}
	}
	if (!o->rounds)
		o->rounds = 1;
	return -1;
}

static void jlat(const char *name, struct lat l, const char *sep)
{
	printf("    \"%s\": {\"p50_ns\": %.2f, \"p99_ns\": %.2f}%s\n", name, l.p50, l.p99, sep);
}

int bench_dma(int argc, char **argv)
{
	struct opts o;
	int rc = parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	struct vfdma_domain_opts dopts = {.backend = VFDMA_BACKEND_SIM};
	if (!strcmp(o.backend, "iommufd"))
		dopts.backend = VFDMA_BACKEND_IOMMUFD;
	else if (!strcmp(o.backend, "type1"))
		dopts.backend = VFDMA_BACKEND_TYPE1;
	else if (strcmp(o.backend, "sim")) {
		fprintf(stderr, "vfdma_bench dma: unknown backend '%s'\n", o.backend);
		return 2;
	}
	struct vfdma_domain *d = vfdma_domain_open(&dopts);
	if (!d) {
		fprintf(stderr, "vfdma_bench dma: domain (%s): %s\n", o.backend, strerror(errno));
		return 1;
	}
	struct vfdma_device *dev = NULL;
	if (!o.bdf && dopts.backend != VFDMA_BACKEND_SIM) {
		static char first[32];
		const char *l = getenv("VFDMA_VFIO_BDFS");
		if (l && sscanf(l, "%31s", first) == 1)
			o.bdf = first;
	}
	if (o.bdf && !(dev = vfdma_device_open(d, o.bdf, 0))) {
		fprintf(stderr, "vfdma_bench dma: device %s: %s\n", o.bdf, strerror(errno));
		vfdma_domain_close(d);
		return 1;
	}

	struct xlate_res x = {0}, x4 = {0};
	struct cache_res c = {0};
	struct pool_res p = {0};
	struct meta_res m = {0};
	bench_translate(d, &o, 1, &x);
	bench_translate(d, &o, 0, &x4);
	bench_cache(d, &o, &c);
	bench_pool(d, &o, &p);
	bench_meta(d, &dopts, &m);

	printf("{\n  \"bench\": \"dma\",\n  \"backend\": \"%s\",\n  \"rounds\": %u,\n"
	       "  \"ops_per_round\": %u,\n",
	       o.backend, o.rounds, OPS);
	printf("  \"translate\": {\n    \"rc\": %d,\n", x.rc | x4.rc);
	jlat("vaddr_to_iova", x.to_iova, ",");
	jlat("iova_to_vaddr", x.to_vaddr, ",");
	jlat("vaddr_to_iova_4k_entries", x4.to_iova, ",");
	jlat("iova_to_vaddr_4k_entries", x4.to_vaddr, "");
	printf("  },\n  \"mapping_cache_hit\": {\n    \"rc\": %d,\n", c.rc);
	jlat("acquire_release", c.pair, ",");
	printf("    \"syscalls\": %lu,\n    \"allocations\": %lu\n  },\n", c.syscalls, c.allocs);
	printf("  \"pool\": {\n    \"rc\": %d,\n", p.rc);
	jlat("pair_64b", p.pair64, ",");
	jlat("pair_4k", p.pair4k, ",");
	jlat("pair_4k_2threads", p.pair4k_mt, "");
	printf("  },\n  \"metadata\": {\"rc\": %d, \"mappings\": %llu, \"bytes_per_mapping\": "
	       "%.1f, \"iova_allocator_bytes_per_mapping\": %.1f}\n}\n",
	       m.rc, (unsigned long long)m.mappings, m.per_mapping, m.iova_per_mapping);

	fprintf(stderr,
		"dma (%s): translate %.2f ns (iova->vaddr %.2f; scattered 4 KiB entries %.2f / "
		"%.2f); cache hit acquire+release "
		"%.1f ns, %lu syscalls, %lu allocations; pool pair 64 B %.1f ns, 4 KiB %.1f ns, "
		"4 KiB on 2 threads %.1f ns; %.1f metadata bytes per mapping (IOVA allocator: %.1f "
		"more)\n",
		o.backend, x.to_iova.p50, x.to_vaddr.p50, x4.to_iova.p50, x4.to_vaddr.p50, c.pair.p50, c.syscalls, c.allocs,
		p.pair64.p50, p.pair4k.p50, p.pair4k_mt.p50, m.per_mapping, m.iova_per_mapping);
	if (dev)
		vfdma_device_close(dev);
	vfdma_domain_close(d);
	return x.rc || x4.rc || c.rc || p.rc || m.rc ? 1 : 0;
}
