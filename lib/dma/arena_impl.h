/* SPDX-License-Identifier: BSD-3-Clause */
/* Arena internals shared with the DMA pool.  Internal to lib/dma. */
#ifndef VFDMA_DMA_ARENA_IMPL_H
#define VFDMA_DMA_ARENA_IMPL_H

/*
 * 0 if @node is a NUMA node of this machine (node 0 also on a kernel
 * without NUMA); -ENODEV if not; or the error of the sysfs lookup.
 */
int vfd_numa_node_check(int node);

#endif
