/* SPDX-License-Identifier: BSD-3-Clause */
/* vfdma_bench: shared helpers of the benchmark subcommands. */
#ifndef VFDMA_BENCH_H
#define VFDMA_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Nanoseconds on CLOCK_MONOTONIC. */
uint64_t bench_now_ns(void);

/* A cycle counter and its calibrated rate (ticks per ns). */
static inline uint64_t bench_ticks(void)
{
#if defined(__x86_64__)
	uint32_t lo, hi;
	__asm__ __volatile__("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
#else
	return bench_now_ns();
#endif
}
double bench_ticks_per_ns(void);

/* Percentile (0..100) of n samples, sorting them in place. */
uint64_t bench_pct(uint64_t *v, size_t n, double pct);
void bench_sort(uint64_t *v, size_t n);

/* xorshift64* */
static inline uint64_t bench_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

int bench_iova(int argc, char **argv);
int bench_map(int argc, char **argv);
int bench_dma(int argc, char **argv);
int bench_dirty(int argc, char **argv);

#endif
