/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Bit helpers.  The library is built for baseline x86-64 (no POPCNT), where
 * __builtin_popcountll is a call into libgcc; dirty-bitmap loops count
 * thousands of words per sync, so they use this inline SWAR form instead.
 */
#ifndef VFDMA_UTIL_BITS_H
#define VFDMA_UTIL_BITS_H

#include <stdint.h>

static inline unsigned vfd_popcount64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

#endif
