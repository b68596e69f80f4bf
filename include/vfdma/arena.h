/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * Hugepage arenas: large blocks of DMA memory, backed by the largest page
 * size available, bound to a NUMA node, populated and locked.
 *
 * An arena is tried with 1 GiB pages, then 2 MiB pages (both from hugetlbfs
 * through memfd_create(MFD_HUGETLB)), then 4 KiB pages (shared anonymous
 * memory, with a warning logged once: small pages cost IOTLB reach).  A page size larger
 * than the requested size is skipped, and the size is rounded up to a
 * multiple of the page size used.  The memory is mapped without populating
 * it, bound to the node with mbind(2), populated (MADV_POPULATE_WRITE, so a
 * node without free huge pages is an error and not a SIGBUS), locked, and
 * then the node of every page is read back with move_pages(2): placement is
 * verified, not assumed.  The address is aligned to the page size used
 * (at least 2 MiB for arenas of 2 MiB or more), so that vfdma_map() gives it
 * an IOVA on which the IOMMU can use large pages.
 *
 * mlock() keeps the pages resident; what keeps the kernel from migrating
 * them while a device may DMA is the pin that mapping them into a VFIO
 * domain takes (hugetlb pages are not moved by compaction in any case).
 * Unmap an arena from every domain before destroying it.
 *
 * NUMA nodes are numbered as by the kernel (/sys/devices/system/node).  On a
 * kernel without NUMA support only node 0 exists and binding is skipped.
 */
#ifndef VFDMA_ARENA_H
#define VFDMA_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "vfdma/iommu.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Node argument: no node chosen (the device's, if one is given, else unbound). */
#define VFDMA_NUMA_ANY (-1)

/** Page sizes of arenas (bitmaps, as in vfdma_domain_pgsizes()). */
#define VFDMA_PGSIZE_4K (UINT64_C(1) << 12)
#define VFDMA_PGSIZE_2M (UINT64_C(1) << 21)
#define VFDMA_PGSIZE_1G (UINT64_C(1) << 30)

/**
 * Arena flag: bind with MPOL_PREFERRED instead of MPOL_BIND: pages may come
 * from another node when the chosen one has none (the info then reports
 * where they are; the arena is not refused).
 */
#define VFDMA_ARENA_PREFERRED (1u << 0)

/** Options for vfdma_arena_create(); zero means "default" for every field. */
struct vfdma_arena_opts {
	unsigned int flags; /**< VFDMA_ARENA_* */
	/**
	 * Page sizes that may be used (VFDMA_PGSIZE_*), tried largest first;
	 * default all three.  Leave out VFDMA_PGSIZE_4K to fail rather than
	 * fall back to small pages.
	 */
	uint64_t pgsizes;
	/** With node VFDMA_NUMA_ANY: bind to this device's node, if it has one. */
	struct vfdma_device *dev;
};

/** An arena (opaque). */
struct vfdma_arena;

/** Facts about an arena. */
struct vfdma_arena_info {
	void *addr;	    /**< first byte, aligned to page_size */
	uint64_t size;	    /**< bytes, a multiple of page_size */
	uint64_t page_size; /**< the page size actually used */
	int node_requested; /**< the node bound to, or VFDMA_NUMA_ANY */
	/**
	 * The node every page was found on when the arena was created, or -1
	 * if the pages are on several nodes (possible only unbound or with
	 * VFDMA_ARENA_PREFERRED) or the kernel cannot tell (no NUMA support).
	 */
	int node;
	unsigned int flags; /**< as created */
};

/**
 * Create an arena of at least @p size bytes.
 * @param node  the NUMA node to bind to, or VFDMA_NUMA_ANY
 * @param opts  options, or NULL for defaults
 * @return the arena, or NULL with errno: EINVAL (size 0 or not below 2^46,
 *         bad flag or page-size set), ENODEV (no such node online), EXDEV
 *         (bound with MPOL_BIND, yet a page was found on another node),
 *         ENOMEM (no page size worked; the error of the smallest one tried
 *         is reported when it is not ENOMEM), or the kernel's errno.  A
 *         failed call leaves no memory, mapping or descriptor behind.
 */
struct vfdma_arena *vfdma_arena_create(uint64_t size, int node,
				       const struct vfdma_arena_opts *opts);

/**
 * Destroy an arena: unlock and unmap its memory.  It must not be mapped in
 * any domain any more.  NULL is ignored.
 * @return 0, or the error of munmap (the arena is freed regardless).
 */
int vfdma_arena_destroy(struct vfdma_arena *arena);

/**
 * Read an arena's facts.
 * @return 0, or -EINVAL.
 */
int vfdma_arena_get_info(const struct vfdma_arena *arena, struct vfdma_arena_info *info);

/**
 * Verify now where an arena's pages are: every page must be on the node
 * it was bound to (or, unbound, all on one node).
 * @param[out] node  may be NULL; the node found, or -1 if the pages are on
 *                   several nodes
 * @return 0 if placement is as requested; -EXDEV if a page is elsewhere;
 *         -EINVAL; -ENOSYS (the kernel has no NUMA support: *node is 0);
 *         or the kernel's errno.
 */
int vfdma_arena_verify(const struct vfdma_arena *arena, int *node);

/**
 * Find the NUMA node of the memory [@p addr, @p addr + @p len), page by
 * page (base pages of the system; any resident memory, not only arenas).
 * Pages not yet touched are reported as -ENOENT by the kernel: this
 * function then fails with -ENOENT.
 * @param[out] node  the node of every page, or -1 if they are on several
 * @return 0; -EINVAL (NULL, length 0, overflow), -ENOENT (a page is not
 *         present), -ENOSYS (no NUMA support in the kernel), or the
 *         kernel's errno.
 */
int vfdma_numa_node_of(const void *addr, uint64_t len, int *node);

#ifdef __cplusplus
}
#endif

#endif
