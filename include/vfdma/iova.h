/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * IOVA allocator: one I/O virtual address space per IOMMU domain.
 *
 * A space is created with a granule (the smallest IOMMU page, a power of two
 * of at least 4 KiB) and the list of usable address ranges the kernel reports
 * (everything else, such as the x86 MSI window 0xfee00000-0xfeefffff, can
 * never be handed out).  All sizes and addresses are in bytes.
 *
 * Size rounding.  vfdma_iova_alloc() rounds @p size up to the granule; a
 * "small" size, of at most VFDMA_IOVA_CACHED_MAX granules, is further rounded
 * up to a power of two and naturally aligned (like the kernel's iova
 * allocator), so that it can be served from the per-thread caches.  Free takes
 * the size given to the allocating call (any size that rounds to the same
 * value is accepted); any other size is a partial free and fails.
 * vfdma_iova_alloc_fixed() and vfdma_iova_reserve() only round to the granule.
 *
 * Placement (deterministic when caching is disabled, and documented because
 * callers and tests rely on it).  The free space is a set of gaps between
 * allocations and reservations.  A gap is cut at the limit.  With s the
 * rounded size and a the alignment (both in granules):
 *  1. take the highest gap whose length is at least s + a - 1 (any such gap
 *     fits the request whatever its alignment);
 *  2. if there is none, take the highest gap in which an a-aligned block of s
 *     granules fits;
 * and place the block at the highest a-aligned address in that gap.
 * Cost: step 1 is O(log n) worst case, n being the number of allocations and
 * reservations, however fragmented the space.  Step 2 runs only when step 1
 * finds nothing and a > 1; it is O(log n) worst case for naturally aligned
 * power-of-two requests (s == a: every small size not given a larger
 * alignment); for other shapes it prunes with necessary conditions (gap >= s,
 * and a large enough aligned power-of-two block in the gap), which is fast in
 * practice but not bounded by O(log n).  A failing call costs the same.
 *
 * Caches.  Unless VFDMA_IOVA_NOCACHE is given, freed small blocks go to a
 * per-thread magazine cache (with a shared depot, as in the kernel's rcache)
 * and are handed out again without touching the tree; an allocation that
 * finds no space flushes every cache and retries before failing with -ENOSPC.
 * With caches, addresses are still aligned, under the limit and inside the
 * usable ranges, but not necessarily where the placement rule above says.
 *
 * Thread safety: every function may be called concurrently on the same space,
 * except vfdma_iova_space_destroy(), which must be the last call.  Frees are
 * validated on the fast path too: of two threads freeing the same block at
 * once, exactly one succeeds.  Statistics are a snapshot, exact when no other
 * call runs at the same time.
 *
 * Errors (negative errno).  A failing call changes no allocation or
 * reservation; with caches, a call that found no room (-ENOSPC, -EBUSY) may
 * have flushed the caches on the way, which only moves cached blocks back to
 * the free space.  With caches, a free of an already freed block with a size
 * other than its own reports -EMSGSIZE rather than -ENOENT while the block
 * sits in a cache.
 * | errno        | meaning                                                        |
 * |--------------|----------------------------------------------------------------|
 * | -EINVAL      | NULL space or output pointer, unknown flag, size 0, alignment not a power of two or below the granule, address not granule-aligned |
 * | -EOVERFLOW   | size or address + size overflows 64 bits (after rounding)     |
 * | -ERANGE      | limit below every usable address; fixed/reserved range not inside one usable range |
 * | -EBUSY       | fixed/reserved range overlaps an allocation or a reservation  |
 * | -ENOSPC      | no free block fits (after flushing the caches)                 |
 * | -ENOENT      | free: no live allocation starts at this address (never allocated, or already freed: a double free) |
 * | -EPERM       | free: the address is the start of a reservation or of a hole   |
 * | -EMSGSIZE    | free: the size does not match the allocation (partial free)    |
 * | -ENOMEM      | out of memory for metadata                                     |
 */
#ifndef VFDMA_IOVA_H
#define VFDMA_IOVA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** An IOVA space (opaque). */
struct vfdma_iova_space;

/** A usable address range, both ends inclusive: [first, last]. */
struct vfdma_iova_range {
	uint64_t first; /**< lowest usable address */
	uint64_t last;  /**< highest usable address */
};

/**
 * Flag for vfdma_iova_space_create(): no per-thread caches (exact placement).
 * Every free then goes to the tree, which validates it, and the space keeps
 * no live map (VFDMA_IOVA_BYTEMAP has no effect).
 */
#define VFDMA_IOVA_NOCACHE (1u << 0)

/**
 * Flag for vfdma_iova_space_create(): track live small allocations with one
 * byte per block instead of one bit.  The free fast path validates a free
 * against this map without taking a lock.  With a bit (the default), marking
 * an allocation is an atomic read-modify-write of a byte shared by 8
 * neighbouring blocks; with a byte of its own it is a plain store, and
 * neighbours never share a byte, for 8-12 more bytes of metadata per
 * allocation.  Measured on one thread the two cost the same (see
 * docs/PERFORMANCE.md); the flag is for heavily threaded users to try.
 */
#define VFDMA_IOVA_BYTEMAP (1u << 1)

/** Largest size, in granules, served by the caches (rounded to a power of two). */
#define VFDMA_IOVA_CACHED_MAX 32

/** Statistics of a space (see vfdma_iova_get_stats()). */
struct vfdma_iova_stats {
	uint64_t granule;       /**< bytes per granule */
	uint64_t allocs;        /**< live allocations (alloc and alloc_fixed), not counting cached blocks */
	uint64_t reservations;  /**< live vfdma_iova_reserve() ranges */
	uint64_t usable_bytes;  /**< bytes in the usable ranges (after clipping to the granule) */
	uint64_t free_bytes;    /**< usable bytes neither allocated nor reserved (cached blocks count as free) */
	uint64_t largest_free;  /**< largest contiguous free block in the tree, bytes (cached blocks are not merged in: flush first for the exact value) */
	uint64_t cached;        /**< blocks held in the per-thread caches and depot */
	uint64_t metadata_bytes; /**< heap bytes used by the space's bookkeeping */
};

/**
 * Create an IOVA space.
 * @param granule  IOMMU page size: a power of two, at least 4096
 * @param ranges  usable ranges, sorted by address and not overlapping; each is
 *                clipped inward to the granule, and ranges that vanish are ignored
 * @param nr_ranges  number of entries in @p ranges (at least one must remain)
 * @param flags  0, or VFDMA_IOVA_NOCACHE and/or VFDMA_IOVA_BYTEMAP
 * @return the space, or NULL with errno: EINVAL (bad granule, flags, no range,
 *         unsorted or overlapping ranges, first > last), ENOMEM.
 */
struct vfdma_iova_space *vfdma_iova_space_create(uint64_t granule,
						 const struct vfdma_iova_range *ranges,
						 size_t nr_ranges, unsigned int flags);

/**
 * Destroy a space and free all its memory, whatever is still allocated.
 * NULL is ignored.  No other call on the space may run concurrently or follow.
 */
void vfdma_iova_space_destroy(struct vfdma_iova_space *space);

/**
 * Allocate @p size bytes of IOVA.
 * @param size  bytes, rounded as described in the file comment
 * @param align  alignment in bytes: a power of two, at least the granule
 *               (small sizes are in addition naturally aligned)
 * @param limit  highest address the block may touch (e.g. UINT32_MAX for a
 *               32-bit DMA mask); UINT64_MAX for no limit
 * @param[out] iova  the block's first address
 * @return 0; -EINVAL, -EOVERFLOW, -ERANGE (limit below every usable address),
 *         -ENOSPC, -ENOMEM.
 */
int vfdma_iova_alloc(struct vfdma_iova_space *space, uint64_t size, uint64_t align,
		     uint64_t limit, uint64_t *iova);

/**
 * Allocate the block [@p iova, @p iova + @p size) exactly.  The block is freed
 * with vfdma_iova_free(space, iova, size).  Blocks sitting in the caches are
 * flushed out of the way if needed.
 * @return 0; -EINVAL (unaligned address, size 0), -EOVERFLOW, -ERANGE (not
 *         inside one usable range), -EBUSY (overlaps an allocation or a
 *         reservation), -ENOMEM.
 */
int vfdma_iova_alloc_fixed(struct vfdma_iova_space *space, uint64_t iova, uint64_t size);

/**
 * Reserve [@p iova, @p iova + @p size) so that it is never allocated, until
 * the space is destroyed.  Same rules and errors as vfdma_iova_alloc_fixed().
 */
int vfdma_iova_reserve(struct vfdma_iova_space *space, uint64_t iova, uint64_t size);

/**
 * Free a block returned by vfdma_iova_alloc() or vfdma_iova_alloc_fixed().
 * @param size  the size given when allocating (or one that rounds the same)
 * @return 0; -EINVAL (NULL space, unaligned address, size 0), -EOVERFLOW,
 *         -ENOENT (no live allocation starts here: never allocated or double
 *         free), -EPERM (a reservation or a hole starts here), -EMSGSIZE
 *         (partial free: the size does not round to the allocation's size).
 */
int vfdma_iova_free(struct vfdma_iova_space *space, uint64_t iova, uint64_t size);

/**
 * Return every block held in the per-thread caches and the depot to the tree.
 * @return 0, or -EINVAL if @p space is NULL.
 */
int vfdma_iova_flush(struct vfdma_iova_space *space);

/**
 * Read the statistics of a space.
 * @return 0, or -EINVAL if @p space or @p stats is NULL.
 */
int vfdma_iova_get_stats(struct vfdma_iova_space *space, struct vfdma_iova_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
