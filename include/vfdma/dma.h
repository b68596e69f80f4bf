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

#ifdef __cplusplus
}
#endif

#endif
