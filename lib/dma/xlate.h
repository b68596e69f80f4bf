/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A lock-free translation table: a radix table over 48-bit keys in 4 KiB
 * pages, read without a lock by any number of threads, written by one
 * writer at a time (the caller serialises writers).
 *
 *   top[key >> 30]             one pointer per 1 GiB (2^18 of them, in an
 *                              anonymous mapping the kernel fills lazily)
 *   l2[(key >> 21) & 511]      one 64-bit entry per 2 MiB
 *   l3[(key >> 12) & 511]      one 64-bit entry per 4 KiB, only where a
 *                              2 MiB chunk is not covered uniformly
 *
 * An l2 entry is 0 (nothing), a leaf (bit 0 set) that covers its whole
 * 2 MiB chunk, or a pointer to an l3 table.  A hit is two or three
 * dependent loads after the top pointer; readers use acquire loads and
 * writers publish new tables with release stores, so a reader sees either
 * the old or the new entry, never a half-built table.
 *
 * Two kinds of leaves:
 *  - LINEAR (translations): bits 63..28 the target page number of the
 *    entry's first page (targets below 2^48), bits 27..1 the pages from the
 *    entry's first page to the end of the run it belongs to, saturated at
 *    VFD_XLATE_REM_SAT ("at least that many": the caller asks its records);
 *  - CONST: any value with bit 0 clear (a pointer), the same for every page.
 *
 * Tables are never freed before vfd_xlate_fini() (the owner's close), so a
 * reader never touches freed memory and no grace period is needed.  Once a
 * 2 MiB chunk has an l3 table it keeps it.  Invariant the writer keeps:
 * every chunk that a live run covers only in part has an l3 table
 * (vfd_xlate_prepare() splits the end chunks of a run before it is set), so
 * set and remove never need memory and cannot fail.
 */
#ifndef VFDMA_DMA_XLATE_H
#define VFDMA_DMA_XLATE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#define VFD_XLATE_BITS 48
#define VFD_XLATE_TOP_N (1ull << (VFD_XLATE_BITS - 30))
#define VFD_XLATE_REM_SAT ((1ull << 27) - 1)

enum vfd_xlate_kind {
	VFD_XLATE_LINEAR,
	VFD_XLATE_CONST,
};

struct vfd_xlate {
	uint64_t **top; /* atomic; NULL until the first prepare */
	enum vfd_xlate_kind kind;
	uint64_t table_bytes; /* l2 and l3 tables (not the lazily filled top) */
	/*
	 * The top slots that have an l2 table, ascending (writer side only):
	 * walks and fini visit these instead of all 2^18 top pointers, so a
	 * sparse table costs what it holds, not what it spans.
	 */
	uint32_t *slots;
	uint32_t nr_slots, cap_slots;
};

/* Can [key, key + len) be held (below 2^48, no wrap)? */
static inline bool vfd_xlate_fits(uint64_t key, uint64_t len)
{
	return key + len >= key && key + len <= (1ull << VFD_XLATE_BITS);
}

void vfd_xlate_init(struct vfd_xlate *t, enum vfd_xlate_kind kind);
/* Free every table.  No reader may be running. */
void vfd_xlate_fini(struct vfd_xlate *t);

/*
 * Make [key, key + len) (page-aligned, fitting) ready for set: allocate the
 * tables it needs and split its partly covered end chunks.  What a reader
 * sees does not change.  0 or -ENOMEM (the table stays valid).
 */
int vfd_xlate_prepare(struct vfd_xlate *t, uint64_t key, uint64_t len);

/*
 * Enter the run [key, key + len) (prepared).  LINEAR: page key + i
 * translates to val + i, with the length to key + len; with @if_lower, a
 * page keeps its current translation when that is lower.  CONST: every
 * page gets val (@if_lower ignored).
 */
void vfd_xlate_set(struct vfd_xlate *t, uint64_t key, uint64_t len, uint64_t val, bool if_lower);

/*
 * For LINEAR removal with replacement: the run [*k0, *k0 + *l0) -> *t0 that
 * should translate @key now, or false for none.  A run returned for the
 * first page of a chunk that is uniform must cover the whole chunk (the
 * invariant above guarantees that for runs that were entered).
 */
typedef bool (*vfd_xlate_best_fn)(void *ctx, uint64_t key, uint64_t *k0, uint64_t *t0,
				  uint64_t *l0);

/*
 * Remove the run entered by vfd_xlate_set(t, key, len, val, ...): every
 * page of it that still holds that run's translation gets @best's answer
 * (NULL: none) in one store, so a reader never sees a page of another run
 * disappear in between.
 */
void vfd_xlate_remove(struct vfd_xlate *t, uint64_t key, uint64_t len, uint64_t val,
		      vfd_xlate_best_fn best, void *ctx);

/*
 * Writer side (under the writer's lock): the first leaf at a page in
 * [key, end) (key page-aligned), with that page in *at, or 0 for none.
 * The leaf is the one for *at itself (LINEAR: its target and remaining
 * length are *at's).  Costs the populated slots and tables it crosses.
 */
uint64_t vfd_xlate_next(const struct vfd_xlate *t, uint64_t key, uint64_t end, uint64_t *at);

/* Bytes of the slot list (metadata beside table_bytes). */
static inline uint64_t vfd_xlate_slot_bytes(const struct vfd_xlate *t)
{
	return (uint64_t)t->cap_slots * sizeof(*t->slots);
}

/*
 * The leaf for @key, or 0, and in *mask the offset mask of the page it
 * covers (2 MiB - 1 or 4 KiB - 1).  Lock-free.
 *
 * Written so that a hit on a whole-chunk entry (pool and hugepage memory)
 * falls straight through: every branch on that path is predicted not
 * taken.  On a wide core the taken branches, not the loads, bound how many
 * lookups per cycle a caller's loop retires (measured: three taken jumps
 * on the old layout cost as much as the walk).
 */
static inline uint64_t vfd_xlate_leaf(const struct vfd_xlate *t, uint64_t key, uint64_t *mask)
{
	uint64_t *const *top = __atomic_load_n(&t->top, __ATOMIC_ACQUIRE);
	if (__builtin_expect(!top || (key >> VFD_XLATE_BITS), 0))
		return 0;
	const uint64_t *l2 = __atomic_load_n(&top[key >> 30], __ATOMIC_ACQUIRE);
	if (__builtin_expect(!l2, 0))
		return 0;
	uint64_t e = __atomic_load_n(&l2[(key >> 21) & 511], __ATOMIC_ACQUIRE);
	*mask = (1ull << 21) - 1;
	if (__builtin_expect(!(e & 1), 0)) {
		if (!e)
			return 0;
		*mask = 4095;
		e = __atomic_load_n(&((const uint64_t *)(uintptr_t)e)[(key >> 12) & 511],
				    __ATOMIC_ACQUIRE);
	}
	return e;
}

/*
 * LINEAR lookup.  0: *target and *len set; 1: *target set but the run is
 * too long for the entry to say its length (ask the record); -ENOENT.
 */
static inline int vfd_xlate_lookup(const struct vfd_xlate *t, uint64_t key, uint64_t *target,
				   uint64_t *len)
{
	uint64_t mask;
	uint64_t e = vfd_xlate_leaf(t, key, &mask);
	if (__builtin_expect(!e, 0))
		return -ENOENT;
	uint64_t off = key & mask;
	*target = ((e >> 28) << 12) + off;
	uint64_t rem = (e >> 1) & VFD_XLATE_REM_SAT;
	if (__builtin_expect(rem == VFD_XLATE_REM_SAT, 0))
		return 1;
	*len = (rem << 12) - off;
	return 0;
}

/* CONST lookup: the value entered for @key's page, or 0. */
static inline uint64_t vfd_xlate_get(const struct vfd_xlate *t, uint64_t key)
{
	uint64_t mask;
	return vfd_xlate_leaf(t, key, &mask) & ~1ull;
}

#endif
