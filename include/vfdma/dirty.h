/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * Dirty tracking: which pages did the domain's devices write?
 *
 * A dirty log is started on a domain, read with vfdma_dirty_sync() as often
 * as a migration round needs, and stopped.  Sources, combined:
 *
 * | source | what reports writes |
 * |--------|---------------------|
 * | VFDMA_DIRTY_SRC_HW    | the IOMMU's dirty bits (the sim backend's software IOMMU; iommufd dirty-tracking HWPTs) |
 * | VFDMA_DIRTY_SRC_TYPE1 | VFIO_IOMMU_DIRTY_PAGES (with vfio-pci every mapped page counts as dirty) |
 * | VFDMA_DIRTY_SRC_MARK  | the driver: vfdma_dirty_mark() when a device-to-host DMA completes |
 *
 * Block split: an IOMMU that maps 2 MiB or 1 GiB with one entry reports the
 * whole block dirty when a device wrote one byte of it.  Unless
 * VFDMA_DIRTY_NO_SPLIT is given, starting the log splits the domain's block
 * mappings into 4 KiB entries (each keeping the block's dirty state), and
 * stopping it merges them back.  The library serialises this against map
 * and unmap; mappings created while the log runs are tracked (and split),
 * and a page written and then unmapped during a round is still reported by
 * the next sync.
 *
 * The guarantee: a device write that completed before a sync began is
 * reported by that sync or an earlier one; none is ever lost.
 */
#ifndef VFDMA_DIRTY_H
#define VFDMA_DIRTY_H

#include <stddef.h>
#include <stdint.h>

#include "vfdma/iommu.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A running dirty log (opaque). */
struct vfdma_dirty;

/** Source: the IOMMU's dirty bits. */
#define VFDMA_DIRTY_SRC_HW (1u << 0)
/** Source: VFIO type1 dirty page tracking. */
#define VFDMA_DIRTY_SRC_TYPE1 (1u << 1)
/** Source: writes the driver reports with vfdma_dirty_mark(). */
#define VFDMA_DIRTY_SRC_MARK (1u << 2)

/** Start flag: keep block mappings whole (precision of the block size). */
#define VFDMA_DIRTY_NO_SPLIT (1u << 0)

/** Sync flag: read without clearing. */
#define VFDMA_DIRTY_SYNC_PEEK (1u << 0)

/** Options for vfdma_dirty_start(); zero fields mean "default". */
struct vfdma_dirty_opts {
	/** bytes per bit of a sync bitmap: a power of two, at least the
	 *  domain's smallest page (default 4096) */
	uint64_t granule;
	/** VFDMA_DIRTY_SRC_*; 0: the best source the backend has, plus MARK */
	unsigned int sources;
	/** VFDMA_DIRTY_NO_SPLIT */
	unsigned int flags;
};

/** What a log is doing (vfdma_dirty_get_info()). */
struct vfdma_dirty_info {
	unsigned int sources; /**< VFDMA_DIRTY_SRC_* in use */
	uint64_t granule;
	int split;            /**< 1 while blocks are split */
	uint64_t syncs;       /**< vfdma_dirty_sync() calls so far */
	uint64_t reported;    /**< granules reported dirty so far */
};

/**
 * Start dirty tracking on @p dom.  One log per domain at a time.
 * @param opts  options, or NULL for the defaults
 * @return the log, or NULL with errno: EINVAL (bad option), EBUSY (the
 *         domain already has a log), ENOTSUP (a source asked for is not
 *         available on this backend), ENOMEM, or the kernel's errno.
 */
struct vfdma_dirty *vfdma_dirty_start(struct vfdma_domain *dom,
				      const struct vfdma_dirty_opts *opts);

/**
 * Report the granules of [@p iova, @p iova + @p len) written since the
 * last sync (or since the start), OR-ing one bit per granule into
 * @p bitmap (bit i: iova + i * granule), and clear them unless
 * VFDMA_DIRTY_SYNC_PEEK.
 * @param iova, len  granule-aligned
 * @return the number of dirty granules reported; -EINVAL (NULL, unaligned,
 *         zero length, bad flag), -EOVERFLOW, or the kernel's errno.
 */
int64_t vfdma_dirty_sync(struct vfdma_dirty *log, uint64_t iova, uint64_t len,
			 uint64_t *bitmap, unsigned int flags);

/**
 * Record that a device wrote [@p iova, @p iova + @p len) (any alignment:
 * every granule it touches).  For drivers whose IOMMU cannot track, call it
 * when a device-to-host transfer completes.
 * @return 0; -EINVAL, -EOVERFLOW, -ENOTSUP (the log was started without
 *         VFDMA_DIRTY_SRC_MARK), -ENOMEM.
 */
int vfdma_dirty_mark(struct vfdma_dirty *log, uint64_t iova, uint64_t len);

/**
 * Read a log's sources, granule and counters.
 * @return 0, or -EINVAL.
 */
int vfdma_dirty_get_info(struct vfdma_dirty *log, struct vfdma_dirty_info *info);

/**
 * Stop tracking, merge split blocks back, free the log.  Writes not yet
 * synced are dropped.  NULL is ignored.
 * @return 0, or the kernel's errno (the log is freed regardless).
 */
int vfdma_dirty_stop(struct vfdma_dirty *log);

#ifdef __cplusplus
}
#endif

#endif
