/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The live map: one bit (or with VFDMA_IOVA_BYTEMAP one byte) per naturally
 * aligned block of one size class, set while a small ("fast") allocation of
 * that class is held by the user, clear otherwise (free, cached, or never
 * allocated).  It is what lets vfdma_iova_free() validate a small free
 * without the tree or its lock: the free is accepted exactly when it clears
 * the mark (compare-and-swap).  This file deals in bytes; iova.c picks the
 * byte (the block index, or for a bit map an index that keeps neighbouring
 * blocks in different bytes and lines: live_index()) and the bit.
 *
 * A sparse radix tree: interior nodes of 512 pointers, leaves of 16 KiB.
 * Readers walk it without a lock (acquire loads); nodes are only added, under
 * the space lock, and never freed before the space is destroyed.
 */
#ifndef VFDMA_DMA_IOVA_LIVE_H
#define VFDMA_DMA_IOVA_LIVE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define VFD_LIVE_LEAF_BITS 14
#define VFD_LIVE_INT_BITS 9

struct vfd_livemap {
	_Atomic(void *) root;
	unsigned levels; /* interior levels above the leaves */
	unsigned idx_bits;
	size_t bytes;
};

void vfd_livemap_init(struct vfd_livemap *m, uint64_t max_index);
void vfd_livemap_fini(struct vfd_livemap *m);

/*
 * Where block idx's byte sits in its leaf: consecutive blocks go to
 * consecutive cache lines (256 lines of 64 bytes per leaf), so that threads
 * holding neighbouring blocks do not write the same line.
 */
static inline uint64_t vfd_livemap_pos(uint64_t idx)
{
	uint64_t off = idx & ((1u << VFD_LIVE_LEAF_BITS) - 1);
	return ((off & 255) << 6) | (off >> 8);
}

/* The byte of block idx, or NULL if its leaf was never created.  Lock-free. */
static inline _Atomic uint8_t *vfd_livemap_find(const struct vfd_livemap *m, uint64_t idx)
{
	if (idx >> m->idx_bits)
		return NULL;
	void *p = atomic_load_explicit((_Atomic(void *) *)&m->root, memory_order_acquire);
	for (unsigned l = m->levels; l && p; l--) {
		unsigned sh = VFD_LIVE_LEAF_BITS + (l - 1) * VFD_LIVE_INT_BITS;
		_Atomic(void *) *slot =
			&((_Atomic(void *) *)p)[(idx >> sh) & ((1u << VFD_LIVE_INT_BITS) - 1)];
		p = atomic_load_explicit(slot, memory_order_acquire);
	}
	return p ? &((_Atomic uint8_t *)p)[vfd_livemap_pos(idx)] : NULL;
}

/* The byte of block idx, creating its path (all or nothing); NULL: ENOMEM.
 * Writers are serialised by the caller. */
_Atomic uint8_t *vfd_livemap_make(struct vfd_livemap *m, uint64_t idx);

#endif
