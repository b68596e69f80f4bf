/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The iommufd backend's state, shared by its files: be_iommufd.c (domain,
 * devices, map), iommufd_dirty.c (dirty-tracking HWPTs and the split IOAS)
 * and iommufd_mock.c (the selftest mock device, for tests).  Internal.
 */
#ifndef VFDMA_IOMMU_IOMMUFD_BE_H
#define VFDMA_IOMMU_IOMMUFD_BE_H

#include <stdbool.h>
#include <stdint.h>

#include "iommu/domain.h"

/*
 * The domain.  Dirty tracking state changes only under op_lock exclusive
 * (dirty start/stop, attach, close); map and unmap read it under op_lock
 * shared.  While split_id is set, every map and unmap goes to both IOASes,
 * so the split IOAS mirrors the domain's and stopping is a plain switch back.
 */
struct iommufd_be {
	int fd;		     /* /dev/iommu */
	uint32_t ioas_id;    /* the domain's IOAS */
	uint32_t scratch_id; /* probe's IOAS for IOAS_COPY, 0 until needed */
	uint32_t split_id;   /* the split IOAS (huge pages off), 0 if none */
	uint32_t dead_split; /* a split IOAS no device uses that could not be destroyed yet */
	uint32_t *hwpts;     /* dirty-tracking HWPTs (on split_id or ioas_id) */
	unsigned int nr_hwpts;
	bool tracking; /* a dirty log reads hwpts */
};

struct iommufd_dev {
	uint32_t dev_id; /* the device's object ID in the iommufd */
	uint32_t pt_id;	 /* what it is attached to: ioas_id or one of hwpts */
	bool hw_dirty;	 /* its IOMMU reports IOMMU_HW_CAP_DIRTY_TRACKING */
	bool mock;	 /* a selftest mock device (no VFIO fd) */
	uint32_t stdev_id; /* mock: the selftest object that owns it */
};

/* be_iommufd.c */
int vfd_iommufd_ioas_alloc(struct iommufd_be *b, uint32_t *id);
/* IOMMU_DESTROY; logs and returns the error. */
int vfd_iommufd_destroy(struct iommufd_be *b, uint32_t id);
/* IOMMU_IOAS_ALLOW_IOVAS on @ioas (n == 0: no fence). */
int vfd_iommufd_set_allowed(struct iommufd_be *b, uint32_t ioas,
			    const struct vfdma_iova_range *r, size_t n);
/* IOAS_MAP flags for VFDMA_PROT_* (with FIXED_IOVA). */
uint32_t vfd_iommufd_map_flags(unsigned int prot);
/* Attach-replace @dev (already attached) to @pt_id, atomically. */
int vfd_iommufd_replace(struct iommufd_be *b, struct vfdma_device *dev, uint32_t pt_id);
/* Attach a mock device (VFD_MOCK_DEV_*) to the IOAS; op_lock exclusive. */
int vfd_iommufd_attach_mock(struct vfdma_domain *dom, struct vfdma_device *dev,
			    unsigned int dev_flags);

/* iommufd_dirty.c: the backend's dirty ops. */
unsigned int vfd_iommufd_dirty_caps(struct vfdma_domain *dom);
int vfd_iommufd_dirty_start(struct vfdma_domain *dom, bool split);
void vfd_iommufd_dirty_stop(struct vfdma_domain *dom, bool split);
int64_t vfd_iommufd_dirty_read(struct vfdma_domain *dom, uint64_t iova, uint64_t len,
			       uint64_t *bitmap, bool clear);
/*
 * Undo what tracking left: devices back on the IOAS, HWPTs and the split
 * IOAS destroyed.  What fails stays consistent (still mirrored) and is
 * retried next time.  0 when nothing is left.
 */
int vfd_iommufd_dirty_teardown(struct vfdma_domain *dom);

#endif
