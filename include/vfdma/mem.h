/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * Caller memory in a domain: registration, the mapping cache, and
 * scatter-gather mapping.
 *
 * **Registration** (like spdk_mem_register) makes memory the caller owns
 * translatable for as long as it stays registered.  Ranges are rounded out
 * to the domain's page size.  Registrations may overlap: every page counts
 * its registrations and stays mapped while the count is above zero.  Only
 * pages not registered yet are mapped, one mapping per run of them, so a
 * batch of adjacent ranges becomes one kernel mapping.  A kernel mapping is
 * never changed once made (the kernels cannot grow or split one while a
 * device may be using it), so when part of a mapping is unregistered and
 * another part is still registered, the whole mapping stays until its last
 * page is unregistered.
 *
 * **The mapping cache** (vfdma_mem_acquire() / vfdma_mem_release()) maps
 * buffers the caller got from elsewhere on demand and keeps the mappings for
 * reuse: a hit costs no system call and takes no lock.  Idle mappings are
 * evicted in CLOCK order (an approximation of least recently used) when the
 * cached bytes exceed the domain's budget; a mapping in use is never
 * evicted.  An eviction removes the translation before the kernel unmap and
 * the IOVA returns to the allocator only after it, so no stale translation
 * or IOVA is ever handed out.
 *
 * **Translation** of any registered, cached, pool or otherwise mapped memory
 * is vfdma_vaddr_to_iova() (vfdma/dma.h): lock-free, a few loads.
 *
 * All functions are thread-safe.
 */
#ifndef VFDMA_MEM_H
#define VFDMA_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vfdma/iommu.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Register [@p vaddr, @p vaddr + @p len), rounded out to whole pages, for
 * DMA (read and write).  Pages registered already only gain a count.
 * @return 0; -EINVAL (NULL, length 0), -EOVERFLOW, -EFAULT (the memory
 *         cannot be pinned), -ENOSPC (no IOVA space), -EIO (broken domain),
 *         -ENOMEM; on failure nothing changes.
 */
int vfdma_mem_register(struct vfdma_domain *dom, void *vaddr, uint64_t len);

/**
 * Register @p n ranges at once.  Ranges that are adjacent or overlap (after
 * rounding) are mapped together, as one kernel mapping per run of pages
 * not registered before.  Each range counts as one registration.
 * @return 0, or an error as for vfdma_mem_register() with nothing changed.
 */
int vfdma_mem_register_batch(struct vfdma_domain *dom, const struct iovec *iov, size_t n);

/**
 * Drop one registration of every page of [@p vaddr, @p vaddr + @p len)
 * (rounded out to pages).  A kernel mapping whose pages are all
 * unregistered is unmapped (gathered with the others this call frees).
 * @return 0; -EINVAL, -EOVERFLOW, -ENOENT (a page of the range is not
 *         registered: nothing changes), -ENOMEM, or the error of a failed
 *         kernel unmap (the domain is then broken).
 */
int vfdma_mem_unregister(struct vfdma_domain *dom, void *vaddr, uint64_t len);

/**
 * Get an IOVA for [@p vaddr, @p vaddr + @p len) and hold it until
 * vfdma_mem_release().  Memory the domain translates already in one piece
 * (registered, pool or mapped memory) is returned as it is, without a
 * reference: it stays valid for as long as its owner keeps it.  Otherwise a
 * cached mapping covering the range is used (a hit: lock-free), or the
 * pages are mapped now (a miss) and idle cached mappings are evicted while
 * the cache holds more than its budget.
 * @param prot  VFDMA_PROT_READ and/or VFDMA_PROT_WRITE: what the device does
 * @param[out] iova  the IOVA of @p vaddr; [iova, iova + len) is contiguous
 * @return 0; -EINVAL, -EOVERFLOW, or an error of vfdma_map() with nothing
 *         changed.
 */
int vfdma_mem_acquire(struct vfdma_domain *dom, const void *vaddr, uint64_t len,
		      unsigned int prot, uint64_t *iova);

/**
 * Release what vfdma_mem_acquire() returned for @p vaddr: @p iova is the
 * IOVA it gave.  The mapping stays cached, idle, until evicted.
 * @return 0; -EINVAL (NULL, or the cached mapping holds no reference),
 *         -ENOENT (no acquired mapping and no translation of @p vaddr to
 *         @p iova).
 */
int vfdma_mem_release(struct vfdma_domain *dom, const void *vaddr, uint64_t iova);

/**
 * Set the cache's budget in bytes (the default is 1 GiB) and evict idle
 * mappings down to it now.  0 keeps nothing idle.
 * @return 0, -EINVAL, -ENOMEM.
 */
int vfdma_mem_set_budget(struct vfdma_domain *dom, uint64_t bytes);

/** Counters of a domain's registrations and mapping cache. */
struct vfdma_mem_stats {
	uint64_t registered_bytes; /**< pages registered at least once */
	uint64_t reg_mappings;     /**< kernel mappings held for registrations */
	uint64_t reg_mapped_bytes; /**< bytes of those */
	uint64_t cache_entries;    /**< cached mappings */
	uint64_t cache_bytes;      /**< bytes of those */
	uint64_t cache_in_use;     /**< cached mappings with a reference */
	uint64_t budget;           /**< see vfdma_mem_set_budget() */
	uint64_t hits;             /**< acquires served by a cached mapping */
	uint64_t misses;           /**< acquires that mapped */
	uint64_t passthrough;      /**< acquires of memory translated already */
	uint64_t evictions;        /**< cached mappings evicted */
	uint64_t entry_bytes;      /**< size of one cache entry */
	/**
	 * All metadata bytes behind the domain's mappings: registration and
	 * cache records, the cache index, the domain's mapping records (the
	 * whole slab they live in), its exception nodes and its translation
	 * tables (kernel calls: vfdma_domain_get_info()).
	 */
	uint64_t metadata_bytes;
	uint64_t mappings; /**< the domain's mappings (all kinds), for a per-mapping figure */
	/**
	 * The domain's IOVA allocator's own bookkeeping (its
	 * vfdma_iova_get_stats() metadata_bytes), not part of metadata_bytes.
	 */
	uint64_t iova_metadata_bytes;
};

/**
 * Read the counters.
 * @return 0, or -EINVAL.
 */
int vfdma_mem_get_stats(struct vfdma_domain *dom, struct vfdma_mem_stats *stats);

/** A device's scatter-gather limits. */
struct vfdma_sg_limits {
	uint64_t max_seg_size;      /**< largest segment in bytes; 0: no limit */
	uint64_t seg_boundary_mask; /**< 2^k - 1: no segment crosses a multiple of 2^k; 0: none */
};

/** One segment of a scatter-gather list. */
struct vfdma_sg_seg {
	uint64_t iova;
	uint64_t len;
};

/**
 * Translate @p cnt buffers into IOVA segments for a device: segments
 * contiguous in IOVA are merged (also across buffers), then split so that
 * none is longer than @p lim->max_seg_size or crosses a multiple of
 * @p lim->seg_boundary_mask + 1.  Every byte must be translatable already
 * (registered, pool or mapped memory; with the mapping cache, acquire each
 * buffer first).  Zero-length buffers are skipped.
 * @param lim  NULL for no limits
 * @param[out] nsegs  the number of segments written (set on success only)
 * @return 0; -EINVAL (NULL argument, negative @p cnt, a mask that is not
 *         2^k - 1, an overflowing buffer), -ENOENT (a byte is not
 *         translatable), -ENOSPC (more than @p max_segs segments needed).
 */
int vfdma_sg_map(struct vfdma_domain *dom, const struct iovec *iov, int cnt,
		 const struct vfdma_sg_limits *lim, struct vfdma_sg_seg *segs, size_t max_segs,
		 size_t *nsegs);

#ifdef __cplusplus
}
#endif

#endif
