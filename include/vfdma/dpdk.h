/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * DPDK memory in vfdma domains (library libvfdma_dpdk, built when
 * ./configure finds DPDK; pkg-config name libvfdma_dpdk).
 *
 * In a process that initialised the DPDK EAL, vfdma_dpdk_attach() maps all
 * of DPDK's memory (every memseg list, hugepage or not) into a domain and
 * then follows DPDK's memory events: pages the EAL allocates later are
 * mapped before rte_malloc() hands them out, pages it frees are unmapped
 * before they go back to the kernel.  Buffers from rte_malloc(), mempools
 * and mbufs are then DMA-able by the domain's devices;
 * vfdma_vaddr_to_iova() translates them.
 *
 * vfdma owns the devices, not the EAL: start the EAL so that it does not
 * probe PCI devices or pick physical addresses, e.g.
 *     --no-pci --iova-mode=va
 * (add --in-memory or --no-shconf for a process that shares nothing, and
 * --no-huge -m <MiB> where no hugepages are reserved).  Hugepage memory
 * is mapped one page per mapping, so that DPDK can free any page; memory
 * the EAL can never free (--no-huge, --legacy-mem is not followed) is
 * mapped in as few mappings as it is contiguous.
 */
#ifndef VFDMA_DPDK_H
#define VFDMA_DPDK_H

#include "vfdma/dma.h"
#include "vfdma/iommu.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Map all of DPDK's memory into @p dom and follow DPDK's memory events
 * until vfdma_dpdk_detach().  Call after rte_eal_init(), from a thread that
 * does not hold DPDK's memory lock.  Several domains may be attached.
 * @return 0; -EINVAL (NULL), -EALREADY (already attached), -ENODEV (the EAL
 *         is not initialised), -ERANGE or -EBUSY (IOVA-as-VA memory outside
 *         the usable ranges, or overlapping a mapping), or the error of a
 *         failed map; on error nothing is mapped and nothing followed.
 */
int vfdma_dpdk_attach(struct vfdma_domain *dom);

/**
 * Stop following DPDK's memory events for @p dom and unmap everything
 * vfdma_dpdk_attach() and the events mapped.  Call before closing the
 * domain and before rte_eal_cleanup().
 * @return 0; -EINVAL (NULL), -ENOENT (not attached), or the first unmap
 *         error (the rest is still unmapped).
 */
int vfdma_dpdk_detach(struct vfdma_domain *dom);

/**
 * How many mappings and bytes the attachment of @p dom holds now.
 * @param[out] mappings  may be NULL
 * @param[out] bytes     may be NULL
 * @return 0; -EINVAL (NULL @p dom), -ENOENT (not attached).
 */
int vfdma_dpdk_get_stats(struct vfdma_domain *dom, uint64_t *mappings, uint64_t *bytes);

/**
 * Create a DMA pool (vfdma/dma.h) whose arenas are DPDK memory
 * (rte_malloc_socket()) instead of vfdma's own hugepage arenas.  @p dom
 * must be attached (vfdma_dpdk_attach()): the memory is already mapped, so
 * the pool uses the attachment's IOVAs and maps nothing itself.  Destroy
 * the pool with vfdma_pool_destroy() before detaching.
 * @param node  a NUMA node (DPDK socket) or VFDMA_NUMA_ANY
 * @param opts  pool options or NULL; @c source must be NULL (it is set here)
 * @return the pool, or NULL with errno: EINVAL (NULL domain, opts with a
 *         source, or as vfdma_pool_create()), ENOENT (the domain is not
 *         attached), or as vfdma_pool_create().
 */
struct vfdma_pool *vfdma_dpdk_pool_create(struct vfdma_domain *dom, int node,
					  const struct vfdma_pool_opts *opts);

#ifdef __cplusplus
}
#endif

#endif /* VFDMA_DPDK_H */
