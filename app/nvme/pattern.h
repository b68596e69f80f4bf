/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The data pattern of the verify modes: every 8-byte word holds a mix of a
 * seed and the word's own byte offset on the device, so data written to
 * the wrong place, stale data or a torn write all show up as a mismatch at
 * a known offset.  Shared by vfdma_nvme_perf --verify and the VM tier's
 * `pattern` tool (test/vm/guest/pattern.c), which checks a guest's writes
 * in the NVMe image on the host: both sides agree by construction.
 */
#ifndef VFDMA_APP_NVME_PATTERN_H
#define VFDMA_APP_NVME_PATTERN_H

#include <stddef.h>
#include <stdint.h>

/* The word at byte offset @off (a multiple of 8) for @seed. */
static inline uint64_t pattern_word(uint64_t seed, uint64_t off)
{
	/* splitmix64 finaliser: cheap, and every bit depends on every input bit */
	uint64_t z = seed ^ (off * 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fill @len bytes (a multiple of 8) at @buf with the pattern of device offset @off. */
static inline void pattern_fill(void *buf, size_t len, uint64_t off, uint64_t seed)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = pattern_word(seed, off + i * 8);
}

/* Device offset of the first word in @buf that differs from the pattern, or -1. */
static inline int64_t pattern_mismatch(const void *buf, size_t len, uint64_t off, uint64_t seed)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != pattern_word(seed, off + i * 8))
			return (int64_t)(off + i * 8);
	return -1;
}

#endif
