/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * Software devices on the sim backend.  A sim device reads and writes the
 * domain's IOVA space through the software IOMMU, exactly as a PCI device
 * does through a real one: translations are cached in the device's IOTLB
 * until the domain invalidates them, writes set dirty bits, and an access to
 * an unmapped IOVA or against the mapping's protection faults, is logged,
 * and touches no memory.  Useful to develop and test drivers without
 * hardware.
 */
#ifndef VFDMA_SIM_H
#define VFDMA_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "vfdma/iommu.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Create a software device in a sim domain.  Close it with
 * vfdma_device_close().  A sim device is used by one thread at a time;
 * create one per thread for concurrent DMA.
 * @return the device, or NULL with errno: EINVAL, ENOTSUP (not a sim
 *         domain), ENOSPC (too many devices, 64 at most), ENOMEM.
 */
struct vfdma_device *vfdma_sim_device_create(struct vfdma_domain *dom);

/**
 * The device reads @p len bytes at @p iova into @p buf (a device read:
 * memory to device).
 * @return 0; -EINVAL (not a sim device, NULL buffer), -EFAULT (a page was
 *         not mapped or not readable: the access stopped there and the fault
 *         was logged).
 */
int vfdma_sim_dma_read(struct vfdma_device *dev, uint64_t iova, void *buf, size_t len);

/**
 * The device writes @p len bytes from @p buf at @p iova (device to memory).
 * @return 0; -EINVAL; -EFAULT as for vfdma_sim_dma_read().
 */
int vfdma_sim_dma_write(struct vfdma_device *dev, uint64_t iova, const void *buf, size_t len);

/** Fault reasons. */
enum vfdma_sim_fault_reason {
	VFDMA_SIM_FAULT_NOT_PRESENT = 1, /**< nothing mapped there */
	VFDMA_SIM_FAULT_PERM,            /**< mapped without the needed permission */
	VFDMA_SIM_FAULT_RANGE,           /**< beyond the IOMMU's address width */
};

/** One logged fault. */
struct vfdma_sim_fault {
	uint64_t iova;
	unsigned int write;  /**< 1 for a device write, 0 for a read */
	unsigned int reason; /**< enum vfdma_sim_fault_reason */
};

/**
 * Take up to @p max logged faults of a device, oldest first.  The log keeps
 * the 64 most recent.
 * @param[out] lost  may be NULL; faults dropped from the log since the last call
 * @return the number of faults stored in @p out, or -EINVAL.
 */
int vfdma_sim_faults(struct vfdma_device *dev, struct vfdma_sim_fault *out, unsigned int max,
		     uint64_t *lost);

/** Page-table statistics of a sim domain. */
struct vfdma_sim_stats {
	uint64_t leaves_4k;
	uint64_t leaves_2m;
	uint64_t leaves_1g;
	uint64_t tables;
};

/**
 * Read the sim IOMMU's page-table statistics.
 * @return 0; -EINVAL, -ENOTSUP (not a sim domain).
 */
int vfdma_sim_get_stats(struct vfdma_domain *dom, struct vfdma_sim_stats *stats);

#ifdef __cplusplus
}
#endif

#endif
