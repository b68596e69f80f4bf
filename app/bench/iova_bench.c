/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_bench iova: the IOVA allocator's figures (see docs/PERFORMANCE.md).
 *   pairs       alloc+free of one cached size, one thread (and N threads)
 *   fragmented  alloc latency with N live blocks in a fragmented space
 *   limit32     alloc under a 32-bit limit with the space below 4 GiB full
 *   memory      metadata bytes per live allocation
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "vfdma/vfdma.h"

#define G 4096ull
#define MSI_LO 0xfee00000ull
#define MSI_HI 0xfeefffffull

struct opts {
	uint64_t seed;
	unsigned threads;
	uint64_t max_live;
	bool quick;
	const char *only; /* run one part only (pairs, fragmented, limit32, memory) */
};

static bool want(const struct opts *o, const char *part)
{
	return !o->only || !strcmp(o->only, part);
}

static struct vfdma_iova_space *x86_space(unsigned bits, unsigned flags)
{
	struct vfdma_iova_range r[2] = { { 0, MSI_LO - 1 }, { MSI_HI + 1, (1ull << bits) - 1 } };
	struct vfdma_iova_space *sp = vfdma_iova_space_create(G, r, 2, flags);
	if (!sp) {
		perror("vfdma_iova_space_create");
		exit(1);
	}
	return sp;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "vfdma_bench iova: %s: %s\n", what, strerror(-rc));
	exit(1);
}

/* ---- pairs ---- */

static double pair_run(struct vfdma_iova_space *sp, uint64_t size, uint64_t n)
{
	uint64_t iova, t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		int rc = vfdma_iova_alloc(sp, size, G, ~0ull, &iova);
		if (rc)
			die("alloc", rc);
		vfdma_iova_free(sp, iova, size);
	}
	return (double)(bench_now_ns() - t0) / (double)n;
}

static double batch_run(struct vfdma_iova_space *sp, uint64_t size, uint64_t n)
{
	uint64_t iova[64], t0 = bench_now_ns();
	for (uint64_t i = 0; i < n; i += 64) {
		for (unsigned j = 0; j < 64; j++) {
			int rc = vfdma_iova_alloc(sp, size, G, ~0ull, &iova[j]);
			if (rc)
				die("alloc", rc);
		}
		for (unsigned j = 0; j < 64; j++)
			vfdma_iova_free(sp, iova[j], size);
	}
	return (double)(bench_now_ns() - t0) / (double)n;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Median of runs (and the best run in *best, if asked): ns per pair. */
static double median_of(double (*fn)(struct vfdma_iova_space *, uint64_t, uint64_t),
			struct vfdma_iova_space *sp, uint64_t size, unsigned runs, uint64_t n,
			double *best)
{
	double v[64];
	fn(sp, size, n); /* warm up */
	for (unsigned r = 0; r < runs; r++)
		v[r] = fn(sp, size, n);
	qsort(v, runs, sizeof(v[0]), cmp_dbl);
	if (best)
		*best = v[0];
	return v[runs / 2];
}

struct mt_arg {
	struct vfdma_iova_space *sp;
	uint64_t size, n;
	unsigned runs;
	double ns;
	pthread_barrier_t *bar;
};

static void *mt_worker(void *p)
{
	struct mt_arg *a = p;
	pthread_barrier_wait(a->bar);
	a->ns = median_of(pair_run, a->sp, a->size, a->runs, a->n, NULL);
	return NULL;
}

static void bench_pairs(const struct opts *o, FILE *js)
{
	static const uint64_t pages[] = { 1, 2, 4, 8, 16, 32 };
	const unsigned runs = o->quick ? 5 : 21;
	const uint64_t n = o->quick ? 100000 : 200000;
	struct vfdma_iova_space *sp = x86_space(39, 0);
	double worst = 0;

	double best[6];
	fprintf(js, "  \"pairs\": {\n    \"one_thread_ns\": {");
	fprintf(stderr, "alloc+free pair, cached sizes, 1 thread (median and best of %u runs of "
			"%llu pairs):\n",
		runs, (unsigned long long)n);
	for (unsigned i = 0; i < 6; i++) {
		double ns = median_of(pair_run, sp, pages[i] * G, runs, n, &best[i]);
		if (ns > worst)
			worst = ns;
		fprintf(js, "%s\"%llu\": %.1f", i ? ", " : "", (unsigned long long)pages[i], ns);
		fprintf(stderr, "  %2llu pages: median %6.1f ns, best %6.1f ns\n",
			(unsigned long long)pages[i], ns, best[i]);
	}
	fprintf(js, "},\n    \"one_thread_best_run_ns\": {");
	for (unsigned i = 0; i < 6; i++)
		fprintf(js, "%s\"%llu\": %.1f", i ? ", " : "", (unsigned long long)pages[i], best[i]);
	fprintf(js, "},\n    \"one_thread_worst_ns\": %.1f,\n", worst);

	/* the same with a byte per block in the live map (VFDMA_IOVA_BYTEMAP) */
	struct vfdma_iova_space *csp = x86_space(39, VFDMA_IOVA_BYTEMAP);
	fprintf(js, "    \"bytemap_one_thread_ns\": {");
	fprintf(stderr, "  with VFDMA_IOVA_BYTEMAP:");
	for (unsigned i = 0; i < 6; i++) {
		double ns = median_of(pair_run, csp, pages[i] * G, runs, n, NULL);
		fprintf(js, "%s\"%llu\": %.1f", i ? ", " : "", (unsigned long long)pages[i], ns);
		fprintf(stderr, " %.1f", ns);
	}
	fprintf(js, "},\n");
	fprintf(stderr, " ns\n");
	vfdma_iova_space_destroy(csp);
	fprintf(js, "    \"batch64_ns\": {");
	for (unsigned i = 0; i < 6; i++) {
		double ns = median_of(batch_run, sp, pages[i] * G, runs, n, NULL);
		fprintf(js, "%s\"%llu\": %.1f", i ? ", " : "", (unsigned long long)pages[i], ns);
		if (i == 0)
			fprintf(stderr, "  64 allocs then 64 frees, 1 page: %.1f ns per pair\n", ns);
	}
	fprintf(js, "},\n");

	/* several threads on one space, each with its own cache slot */
	unsigned t = o->threads;
	struct mt_arg a[64];
	pthread_t th[64];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, t);
	for (unsigned i = 0; i < t; i++) {
		a[i] = (struct mt_arg){ sp, G, n, runs, 0, &bar };
		pthread_create(&th[i], NULL, mt_worker, &a[i]);
	}
	double sum = 0;
	for (unsigned i = 0; i < t; i++) {
		pthread_join(th[i], NULL);
		sum += a[i].ns;
	}
	pthread_barrier_destroy(&bar);
	fprintf(js, "    \"threads\": %u,\n    \"per_thread_ns_1page\": %.1f\n  },\n", t, sum / t);
	fprintf(stderr, "  %u threads, 1 page: %.1f ns per pair per thread\n", t, sum / t);
	vfdma_iova_space_destroy(sp);
}

/* ---- fragmented space ---- */

struct lat {
	uint64_t p50, p99, p999, max;
};

static struct lat lat_of(uint64_t *ticks, size_t n)
{
	double r = bench_ticks_per_ns();
	struct lat l;
	bench_sort(ticks, n);
	l.p50 = (uint64_t)(ticks[(n - 1) / 2] / r);
	l.p99 = (uint64_t)(ticks[(size_t)((n - 1) * 0.99)] / r);
	l.p999 = (uint64_t)(ticks[(size_t)((n - 1) * 0.999)] / r);
	l.max = (uint64_t)(ticks[n - 1] / r);
	return l;
}

static uint64_t rand_pages(uint64_t *seed)
{
	return 1 + bench_rand(seed) % 64;
}

/* One live population of the fragmented test. */
struct frag {
	uint64_t n; /* live blocks */
	struct vfdma_iova_space *sp;
	uint64_t *iova, *len;
	uint64_t *ticks; /* samples so far */
	size_t nt;
	double meta;
};

/* Fill a 48-bit space without caches with 2n random blocks, free a random half. */
static void frag_build(struct frag *f, uint64_t n, size_t samples, uint64_t *seed)
{
	f->n = n;
	f->sp = x86_space(48, VFDMA_IOVA_NOCACHE);
	f->iova = malloc(2 * n * sizeof(*f->iova));
	f->len = malloc(2 * n * sizeof(*f->len));
	f->ticks = malloc(samples * sizeof(*f->ticks));
	f->nt = 0;
	if (!f->iova || !f->len || !f->ticks)
		die("malloc", -ENOMEM);
	for (uint64_t i = 0; i < 2 * n; i++) {
		f->len[i] = rand_pages(seed) * G;
		int rc = vfdma_iova_alloc(f->sp, f->len[i], G, ~0ull, &f->iova[i]);
		if (rc)
			die("fill", rc);
	}
	/* free a random half: shuffle, free the second half */
	for (uint64_t i = 2 * n - 1; i > 0; i--) {
		uint64_t j = bench_rand(seed) % (i + 1), t;
		t = f->iova[i], f->iova[i] = f->iova[j], f->iova[j] = t;
		t = f->len[i], f->len[i] = f->len[j], f->len[j] = t;
	}
	for (uint64_t i = n; i < 2 * n; i++)
		vfdma_iova_free(f->sp, f->iova[i], f->len[i]);
	struct vfdma_iova_stats st;
	vfdma_iova_get_stats(f->sp, &st);
	f->meta = (double)st.metadata_bytes / (double)st.allocs;
}

/* Steady state: allocate a random size (timed when tick), free a random live block. */
static void frag_steps(struct frag *f, size_t count, bool tick, uint64_t *seed)
{
	for (size_t k = 0; k < count; k++) {
		uint64_t sz = rand_pages(seed) * G, at;
		uint64_t t0 = bench_ticks();
		int rc = vfdma_iova_alloc(f->sp, sz, G, ~0ull, &at);
		uint64_t t1 = bench_ticks();
		if (rc)
			die("alloc", rc);
		if (tick)
			f->ticks[f->nt++] = t1 - t0;
		uint64_t j = bench_rand(seed) % f->n;
		vfdma_iova_free(f->sp, f->iova[j], f->len[j]);
		f->iova[j] = at;
		f->len[j] = sz;
	}
}

/*
 * The live counts are measured in interleaved rounds (each round: every
 * population in turn, an untimed warm-up, then its share of the samples),
 * so that a slow or a quiet spell of a shared machine weighs on every
 * population alike, and their ratio compares the allocator with itself,
 * not two moments of the machine.  Percentiles are over all of a
 * population's samples.
 */
static void bench_fragmented(const struct opts *o, FILE *js)
{
	static const uint64_t sizes[] = { 1000, 10000, 100000, 1000000 };
	const size_t samples = o->quick ? 20000 : 100000;
	const unsigned rounds = o->quick ? 4 : 10;
	const size_t chunk = samples / rounds, warm = 2000;
	uint64_t seed = o->seed;
	struct frag f[4];
	unsigned nf = 0;
	double p99_1k = 0, p99_top = 0;

	for (unsigned s = 0; s < 4 && sizes[s] <= o->max_live; s++)
		frag_build(&f[nf++], sizes[s], samples, &seed);
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned s = 0; s < nf; s++) {
			frag_steps(&f[s], warm, false, &seed);
			frag_steps(&f[s], chunk, true, &seed);
		}
	}
	fprintf(js, "  \"fragmented\": [\n");
	fprintf(stderr, "alloc latency, fragmented space (2N random 1-64 page blocks, a random half "
			"freed; no caches; %zu samples in %u interleaved rounds; metadata at the "
			"high-water mark):\n",
		chunk * rounds, rounds);
	for (unsigned s = 0; s < nf; s++) {
		struct lat l = lat_of(f[s].ticks, f[s].nt);
		if (s == 0)
			p99_1k = (double)l.p99;
		p99_top = (double)l.p99;
		fprintf(js, "%s    {\"live\": %llu, \"p50_ns\": %llu, \"p99_ns\": %llu, \"p999_ns\": %llu, "
			    "\"max_ns\": %llu, \"metadata_bytes_per_alloc\": %.1f}",
			s ? ",\n" : "", (unsigned long long)f[s].n, (unsigned long long)l.p50,
			(unsigned long long)l.p99, (unsigned long long)l.p999,
			(unsigned long long)l.max, f[s].meta);
		fprintf(stderr, "  %8llu live: p50 %5llu ns  p99 %5llu ns  p99.9 %6llu ns  "
				"(metadata %.1f B/alloc)\n",
			(unsigned long long)f[s].n, (unsigned long long)l.p50,
			(unsigned long long)l.p99, (unsigned long long)l.p999, f[s].meta);
		free(f[s].iova);
		free(f[s].len);
		free(f[s].ticks);
		vfdma_iova_space_destroy(f[s].sp);
	}
	fprintf(js, "\n  ],\n  \"fragmented_rounds\": %u,\n  \"fragmented_p99_ratio_top_vs_1k\": %.2f,\n",
		rounds, p99_1k ? p99_top / p99_1k : 0);
}

/* ---- 32-bit limit, nearly full ---- */

static void bench_limit32(const struct opts *o, FILE *js, unsigned flags, const char *name)
{
	const size_t samples = o->quick ? 20000 : 100000;
	uint64_t seed = o->seed + 7;
	struct vfdma_iova_space *sp = x86_space(39, flags);
	size_t cap = (1u << 20), n = 0;
	uint64_t *iova = malloc(cap * sizeof(*iova)), *len = malloc(cap * sizeof(*len));
	uint64_t *ok = malloc(samples * sizeof(*ok)), *bad = malloc(samples * sizeof(*bad));
	uint64_t at, fails = 0;

	if (!iova || !len || !ok || !bad)
		die("malloc", -ENOMEM);
	/* something above 4 GiB too, so that the tree is not only the low part */
	for (unsigned i = 0; i < 1000; i++)
		vfdma_iova_alloc(sp, (1 + i % 16) * G, G, ~0ull, &at);
	for (uint64_t pages = 16; pages; pages /= 2) {
		for (;;) {
			uint64_t p = 1 + bench_rand(&seed) % pages;
			if (vfdma_iova_alloc(sp, p * G, G, 0xffffffff, &iova[n]))
				break;
			len[n++] = p * G;
		}
	}
	/* free 1% at random: holes of 1-16 pages */
	for (size_t i = 0; i < n / 100; i++) {
		size_t j = bench_rand(&seed) % n;
		if (len[j]) {
			vfdma_iova_free(sp, iova[j], len[j]);
			len[j] = 0;
		}
	}
	for (size_t k = 0; k < samples; k++) {
		uint64_t t0 = bench_ticks();
		int rc = vfdma_iova_alloc(sp, G, G, 0xffffffff, &at);
		uint64_t t1 = bench_ticks();
		if (rc)
			die("alloc under 4 GiB", rc);
		ok[k] = t1 - t0;
		vfdma_iova_free(sp, at, G);
	}
	for (size_t k = 0; k < samples; k++) {
		uint64_t t0 = bench_ticks();
		int rc = vfdma_iova_alloc(sp, 64 * G, 64 * G, 0xffffffff, &at);
		uint64_t t1 = bench_ticks();
		if (rc == 0) {
			vfdma_iova_free(sp, at, 64 * G);
		} else {
			fails++;
		}
		bad[k] = t1 - t0;
	}
	struct lat a = lat_of(ok, samples), b = lat_of(bad, samples);
	fprintf(js, "  \"%s\": {\"live_below_4g\": %zu, \"success_p50_ns\": %llu, "
		    "\"success_p99_ns\": %llu, \"failure_p50_ns\": %llu, \"failure_p99_ns\": %llu, "
		    "\"failures\": %llu, \"samples\": %zu},\n",
		name, n - n / 100, (unsigned long long)a.p50, (unsigned long long)a.p99,
		(unsigned long long)b.p50, (unsigned long long)b.p99, (unsigned long long)fails,
		samples);
	fprintf(stderr, "32-bit limit, space below 4 GiB full (%zu blocks, %s):\n"
			"  success p50 %llu ns p99 %llu ns; failure p50 %llu ns p99 %llu ns (%llu/%zu failed)\n",
		n, name, (unsigned long long)a.p50, (unsigned long long)a.p99,
		(unsigned long long)b.p50, (unsigned long long)b.p99, (unsigned long long)fails,
		samples);
	free(iova);
	free(len);
	free(ok);
	free(bad);
	vfdma_iova_space_destroy(sp);
}

/* ---- memory ---- */

/* metadata bytes per live allocation after n random allocations of 1..maxp pages */
static double memory_per_alloc(uint64_t n, uint64_t maxp, unsigned flags, uint64_t seed)
{
	struct vfdma_iova_space *sp = x86_space(48, flags);
	struct vfdma_iova_stats st;
	uint64_t at;

	for (uint64_t i = 0; i < n; i++) {
		int rc = vfdma_iova_alloc(sp, (1 + bench_rand(&seed) % maxp) * G, G, ~0ull, &at);
		if (rc)
			die("alloc", rc);
	}
	vfdma_iova_get_stats(sp, &st);
	vfdma_iova_space_destroy(sp);
	return (double)st.metadata_bytes / (double)st.allocs;
}

static void bench_memory(const struct opts *o, FILE *js)
{
	uint64_t n = o->max_live < 1000000 ? o->max_live : 1000000;
	/* the default space (caches on); without caches there is no live map */
	double mixed = memory_per_alloc(n, 64, 0, o->seed + 11);
	double nocache = memory_per_alloc(n, 64, VFDMA_IOVA_NOCACHE, o->seed + 11);
	double small = memory_per_alloc(n, 32, 0, o->seed + 13);
	double cmixed = memory_per_alloc(n, 64, VFDMA_IOVA_BYTEMAP, o->seed + 11);
	double csmall = memory_per_alloc(n, 32, VFDMA_IOVA_BYTEMAP, o->seed + 13);

	fprintf(js, "  \"memory\": {\"live\": %llu, \"metadata_bytes_per_alloc\": %.1f, "
		    "\"metadata_bytes_per_alloc_no_cache\": %.1f, "
		    "\"metadata_bytes_per_alloc_small_sizes\": %.1f, "
		    "\"bytemap_metadata_bytes_per_alloc\": %.1f, "
		    "\"bytemap_metadata_bytes_per_alloc_small_sizes\": %.1f},\n",
		(unsigned long long)n, mixed, nocache, small, cmixed, csmall);
	fprintf(stderr, "metadata per live allocation (%llu live): %.1f B for random 1-64 pages "
			"(%.1f without caches), %.1f B for random 1-32 pages; with VFDMA_IOVA_BYTEMAP: "
			"%.1f B and %.1f B\n",
		(unsigned long long)n, mixed, nocache, small, cmixed, csmall);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vfdma_bench iova [--quick] [--seed N] [--threads N] [--max-live N]\n"
		   "  --quick       fewer samples and runs (CI)\n"
		   "  --seed N      random seed (default 1)\n"
		   "  --threads N   threads for the multi-thread pair figure (default 2)\n"
		   "  --max-live N  largest live count of the fragmented test (default 1000000)\n"
		   "  --only PART   run one part: pairs, fragmented, limit32 or memory\n");
}

int bench_iova(int argc, char **argv)
{
	struct opts o = { .seed = 1, .threads = 2, .max_live = 1000000 };
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' },	   { "seed", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' }, { "max-live", required_argument, NULL, 'm' },
		{ "only", required_argument, NULL, 'o' },  { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "qs:t:m:o:h", lo, NULL)) != -1) {
		switch (c) {
		case 'q':
			o.quick = true;
			break;
		case 's':
			o.seed = strtoull(optarg, NULL, 0) | 1;
			break;
		case 't':
			o.threads = (unsigned)atoi(optarg);
			if (o.threads < 1 || o.threads > 64) {
				usage(stderr);
				return 2;
			}
			break;
		case 'm':
			o.max_live = strtoull(optarg, NULL, 0);
			break;
		case 'o':
			o.only = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	uint64_t t0 = bench_now_ns();
	bench_ticks_per_ns();
	printf("{\n  \"bench\": \"iova\",\n  \"version\": \"%s\",\n", vfdma_version());
	if (want(&o, "pairs"))
		bench_pairs(&o, stdout);
	if (want(&o, "fragmented"))
		bench_fragmented(&o, stdout);
	if (want(&o, "limit32")) {
		bench_limit32(&o, stdout, VFDMA_IOVA_NOCACHE, "limit32_nocache");
		bench_limit32(&o, stdout, 0, "limit32_cached");
	}
	if (want(&o, "memory"))
		bench_memory(&o, stdout);
	printf("  \"seconds\": %.1f\n}\n", (double)(bench_now_ns() - t0) / 1e9);
	return 0;
}
