/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * Mapping memory into a domain, and translating addresses.
 *
 * A mapping makes [vaddr, vaddr + len) of this process visible to the
 * domain's devices at [iova, iova + len).  vaddr, len and iova must be
 * multiples of the domain's smallest page size (4 KiB on x86).  The IOVA is
 * chosen by the domain's allocator (limited by the domain's DMA limit,
 * aligned so the IOMMU can use large pages: a 2 MiB-aligned buffer of at
 * least 2 MiB gets a 2 MiB-aligned IOVA) or given by the caller
 * (VFDMA_MAP_FIXED).
 *
 * One call makes one mapping, which is unmapped whole: vfdma_unmap() of a
 * range that covers part of a mapping fails with -EINVAL, as in the
 * kernel's type1 and iommufd.  A batch (vfdma_map_batch()) maps many runs
 * with as few kernel calls as it can: runs that are contiguous in vaddr are
 * coalesced into one mapping at contiguous IOVAs, unless VFDMA_MAP_NOCOALESCE
 * is given; if any part fails, everything the call mapped is unmapped and
 * the allocator is as before when the error returns.
 *
 * The same memory may be mapped more than once (at different IOVAs).
 */
#ifndef VFDMA_DMA_H
#define VFDMA_DMA_H

#include <stddef.h>
#include <stdint.h>

#include "vfdma/iommu.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The device may read the memory (host to device). */
#define VFDMA_PROT_READ (1u << 0)
/** The device may write the memory (device to host). */
#define VFDMA_PROT_WRITE (1u << 1)
/** Both. */
#define VFDMA_PROT_RW (VFDMA_PROT_READ | VFDMA_PROT_WRITE)

/** Map flag: the IOVA is given by the caller, not allocated. */
#define VFDMA_MAP_FIXED (1u << 0)
/** Map flag (batches): map every run on its own, never coalesce. */
#define VFDMA_MAP_NOCOALESCE (1u << 1)

/** One run of a batch. */
struct vfdma_map_run {
	void *vaddr;   /**< start, page-aligned */
	uint64_t len;  /**< bytes, a multiple of the page size */
	uint64_t iova; /**< in with VFDMA_MAP_FIXED, out otherwise */
};

/**
 * Map [@p vaddr, @p vaddr + @p len) with protection @p prot.
 * @param[in,out] iova  with VFDMA_MAP_FIXED the IOVA to use; otherwise set
 *                      to the IOVA chosen
 * @return 0; -EINVAL (NULL argument, unaligned address or length, length 0,
 *         bad prot or flag), -EOVERFLOW, -ERANGE (fixed IOVA outside the
 *         usable ranges), -EBUSY (fixed IOVA overlaps a mapping), -ENOSPC (no
 *         IOVA space under the DMA limit), -EFAULT (the kernel could not pin
 *         the memory), -EIO (the domain is broken), -ENOMEM, or the kernel's
 *         errno.  On failure nothing is mapped and no IOVA is held.
 */
int vfdma_map(struct vfdma_domain *dom, void *vaddr, uint64_t len, unsigned int prot,
	      unsigned int flags, uint64_t *iova);

/**
 * Unmap the mapping that starts at @p iova and is @p len bytes long (or
 * several whole mappings that tile [iova, iova + len) exactly).  With
 * VFDMA_DOMAIN_DEFER_UNMAP the kernel unmap may happen later; the
 * translation is gone when this returns either way.
 * @return 0; -EINVAL (NULL, unaligned, length 0, or the range covers part of
 *         a mapping), -ENOENT (nothing mapped at @p iova), -EIO (the kernel
 *         unmapped a different size: the domain is now broken).
 */
int vfdma_unmap(struct vfdma_domain *dom, uint64_t iova, uint64_t len);

/**
 * Map @p n runs with protection @p prot, rolling everything back on failure.
 * @param flags  VFDMA_MAP_FIXED (every run's iova is given),
 *               VFDMA_MAP_NOCOALESCE
 * @return 0 with each run's iova set; or an error as for vfdma_map(), with
 *         nothing mapped.
 */
int vfdma_map_batch(struct vfdma_domain *dom, struct vfdma_map_run *runs, size_t n,
		    unsigned int prot, unsigned int flags);

/**
 * Unmap @p n runs (each: iova and len of whole mappings; vaddr ignored),
 * gathering adjacent ones into as few kernel calls as possible.  All runs
 * are validated first: if one is invalid nothing is unmapped.
 * @return 0, or an error as for vfdma_unmap().
 */
int vfdma_unmap_batch(struct vfdma_domain *dom, const struct vfdma_map_run *runs, size_t n);

/**
 * Translate a process address to an IOVA.
 * @param[out] iova  the IOVA of @p vaddr
 * @param[out] len  may be NULL; bytes from @p vaddr to the end of its
 *                  mapping (contiguous in both spaces)
 * @return 0; -EINVAL; -ENOENT if @p vaddr is not mapped in @p dom (when the
 *         memory is mapped more than once, the lowest IOVA is returned).
 */
int vfdma_vaddr_to_iova(struct vfdma_domain *dom, const void *vaddr, uint64_t *iova,
			uint64_t *len);

/**
 * Translate an IOVA to a process address.
 * @param[out] vaddr  the address that @p iova maps to
 * @param[out] len  may be NULL; bytes to the end of the mapping
 * @return 0; -EINVAL; -ENOENT if nothing is mapped at @p iova.
 */
int vfdma_iova_to_vaddr(struct vfdma_domain *dom, uint64_t iova, void **vaddr, uint64_t *len);

/*
 * DMA pool: buffers carved from arenas (vfdma/arena.h) that are mapped into
 * the domain once.
 */

struct vfdma_arena_opts;

/** A DMA pool (opaque). */
struct vfdma_pool;

/** Pool flag: return every arena as soon as it is idle (keep none). */
#define VFDMA_POOL_RELEASE_IDLE (1u << 0)
/** Pool flag: never return idle arenas by itself (only vfdma_pool_trim()). */
#define VFDMA_POOL_KEEP_IDLE (1u << 1)

/**
 * Memory for a pool from elsewhere instead of its own arenas (for example
 * DPDK's: see vfdma_dpdk_pool_create() in vfdma/dpdk.h).
 */
struct vfdma_pool_source {
	/**
	 * Return @p size bytes (a multiple of 2 MiB) of memory, 2 MiB-aligned,
	 * on NUMA node @p node (or any, for VFDMA_NUMA_ANY), and set
	 * @p page_size to the page size backing it; NULL if there is none.
	 */
	void *(*get)(void *ctx, uint64_t size, int node, uint64_t *page_size);
	/** Give back memory get() returned. */
	void (*put)(void *ctx, void *addr, uint64_t size);
	void *ctx; /**< passed to get() and put() */
	/**
	 * Non-zero if the memory get() returns is already mapped in the
	 * pool's domain at contiguous IOVAs: the pool then uses those IOVAs
	 * and never maps or unmaps it.  Zero: the pool maps it, as its own.
	 */
	int premapped;
};

/** Options for vfdma_pool_create(); zero means "default" for every field. */
struct vfdma_pool_opts {
	unsigned int flags; /**< VFDMA_POOL_* */
	/**
	 * Bytes per arena (the pool grows by whole arenas), rounded up to a
	 * multiple of 2 MiB; default 64 MiB.  1 GiB pages are used only for
	 * arenas of at least 1 GiB.  A buffer larger than this gets an arena of
	 * its own, a multiple of this size.
	 */
	uint64_t arena_size;
	/** Most bytes of arenas the pool may hold; default no limit. */
	uint64_t max_bytes;
	/**
	 * Bytes of idle arenas (no buffer allocated in them) kept for reuse
	 * when a free makes an arena idle; default one arena.  See the flags.
	 */
	uint64_t idle_keep;
	/** Options for the pool's arenas (page sizes, NUMA binding mode, device). */
	const struct vfdma_arena_opts *arena;
	/** Where arenas come from; NULL: hugepage arenas of the pool's own. */
	const struct vfdma_pool_source *source;
};

/**
 * Create a DMA pool over @p dom.  No memory is taken until the first
 * allocation.  Destroy the pool before closing the domain.
 * @param node  NUMA node for allocations that ask for VFDMA_NUMA_ANY: a
 *              node, or VFDMA_NUMA_ANY for the node of opts->arena->dev if
 *              given and known, else unbound memory
 * @return the pool, or NULL with errno: EINVAL (NULL domain, bad option or
 *         node), ENODEV (no such node), ENOMEM.
 */
struct vfdma_pool *vfdma_pool_create(struct vfdma_domain *dom, int node,
				     const struct vfdma_pool_opts *opts);

/**
 * Destroy a pool: unmap its arenas from the domain and free them.  Buffers
 * still allocated are freed with it (a warning is logged).  NULL is ignored.
 * Must not race with other calls on the pool.
 * @return 0, or the first error reported while unmapping (everything is
 *         released regardless).
 */
int vfdma_pool_destroy(struct vfdma_pool *pool);

/**
 * Allocate a DMA buffer: memory the domain's devices can read and write.
 * Sizes up to 1 MiB come from per-thread caches of power-of-two size
 * classes (64 B .. 1 MiB, naturally aligned), with no lock and no system
 * call when the cache has one; larger sizes are runs of 4 KiB pages.  The
 * pool grows by an arena (system calls) only when it has no room.
 * Thread-safe.
 * @param size  bytes, > 0
 * @param align  0 (natural: the size class, or 4 KiB for runs) or a power
 *               of two up to 2 MiB; the address has it, and so does the
 *               IOVA in every domain with 2 MiB IOMMU pages (elsewhere the
 *               IOVA is aligned as far as the domain aligned the arena's
 *               mapping, and a warning is logged once)
 * @param node  a NUMA node, or VFDMA_NUMA_ANY for the pool's node
 * @param[out] iova  may be NULL; the buffer's IOVA (contiguous for @p size
 *                   bytes)
 * @return the buffer's address, or NULL with errno: EINVAL (NULL pool, size
 *         0 or too large, bad alignment or node), ENODEV (no such node),
 *         ENOMEM (out of memory or past max_bytes), or the errno of a
 *         failed arena creation or mapping.
 */
void *vfdma_dma_alloc(struct vfdma_pool *pool, uint64_t size, uint64_t align, int node,
		      uint64_t *iova);

/**
 * Free a buffer from vfdma_dma_alloc().  Thread-safe; any thread may free.
 * @return 0; -EINVAL (NULL, an address the pool did not return, or a buffer
 *         already freed: detected for every address inside the pool's
 *         arenas; an address in an arena being returned by another thread
 *         at that moment is not safe to pass).
 */
int vfdma_dma_free(struct vfdma_pool *pool, void *vaddr);

/**
 * Empty every thread's cache back into the pool, then return idle arenas
 * (unmap and free them) beyond @p keep_bytes of idle arenas.
 * @param[out] released  may be NULL; arena bytes returned
 * @return 0, -EINVAL, or the first unmap error (the arena is freed anyway).
 */
int vfdma_pool_trim(struct vfdma_pool *pool, uint64_t keep_bytes, uint64_t *released);

/** Counters of a pool (vfdma_pool_get_stats()). */
struct vfdma_pool_stats {
	uint64_t arenas;        /**< arenas held (mapped) */
	uint64_t arena_bytes;   /**< their bytes */
	uint64_t arenas_1g;     /**< arenas of 1 GiB pages */
	uint64_t arenas_2m;     /**< arenas of 2 MiB pages */
	uint64_t arenas_4k;     /**< arenas of 4 KiB pages */
	uint64_t idle_arenas;   /**< arenas with nothing allocated and nothing cached */
	uint64_t idle_bytes;
	uint64_t buffers;       /**< buffers allocated now */
	uint64_t buffer_bytes;  /**< their bytes (size classes, runs in pages) */
	uint64_t cached_bytes;  /**< free buffers held in thread caches */
	uint64_t grows;         /**< arenas added so far */
	uint64_t releases;      /**< arenas returned so far */
};

/**
 * Read a pool's counters (takes the pool's locks; not for hot paths).
 * @return 0, or -EINVAL.
 */
int vfdma_pool_get_stats(struct vfdma_pool *pool, struct vfdma_pool_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
