/* SPDX-License-Identifier: BSD-3-Clause */
/* vfdma_bench: timing and statistics helpers. */
#include <stdlib.h>
#include <time.h>

#include "bench.h"

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_ticks_per_ns(void)
{
	static double rate;
	if (rate == 0) {
		uint64_t t0 = bench_now_ns(), c0 = bench_ticks();
		while (bench_now_ns() - t0 < 50000000)
			;
		uint64_t t1 = bench_now_ns(), c1 = bench_ticks();
		rate = (double)(c1 - c0) / (double)(t1 - t0);
	}
	return rate;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void bench_sort(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
}

uint64_t bench_pct(uint64_t *v, size_t n, double pct)
{
	if (!n)
		return 0;
	bench_sort(v, n);
	size_t i = (size_t)(pct / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}
