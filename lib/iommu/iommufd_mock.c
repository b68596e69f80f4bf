/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test support: the iommufd selftest mock device in a vfdma domain
 * (iommufd_mock.h).  In libvfdma.a for statically linked test programs;
 * the shared library exports vfdma_* only, so none of this leaves it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "iommu/iommufd_be.h"
#include "iommu/iommufd_mock.h"
#include "util/log.h"
#include "util/sys.h"

struct vfdma_device *vfd_iommufd_mock_open(struct vfdma_domain *dom, unsigned int dev_flags)
{
	if (!dom || (dev_flags & ~(VFD_MOCK_DEV_NO_DIRTY | VFD_MOCK_DEV_HUGE_IOVA))) {
		errno = EINVAL;
		return NULL;
	}
	if (dom->ops != &vfd_iommufd_ops) {
		errno = ENOTSUP;
		return NULL;
	}
	struct vfdma_device *dev = vfd_device_new(dom);
	if (!dev)
		return NULL;
	static unsigned seq;
	/* Not a PCI address, but unique per process (the core compares them). */
	snprintf(dev->bdf, sizeof(dev->bdf), "mock:%u",
		 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED) % 100000000u);
	int rc = 0;
	pthread_rwlock_wrlock(&dom->op_lock);
	bool was_ready = dom->be_ready;
	if (dom->dirty)
		rc = -EBUSY;
	if (!rc)
		rc = vfd_iommufd_attach_mock(dom, dev, dev_flags);
	return vfd_domain_attach_end(dom, dev, was_ready, rc);
}

int64_t vfd_iommufd_mock_dirty(struct vfdma_device *dev, uint64_t iova, uint64_t len,
			       const uint64_t *bitmap)
{
	if (!dev || !bitmap || !len || ((iova | len) & 4095))
		return -EINVAL;
	struct vfdma_domain *dom = dev->dom;
	if (dom->ops != &vfd_iommufd_ops)
		return -ENOTSUP;
	struct iommufd_dev *d = dev->be;
	if (!d || !d->mock)
		return -EINVAL;
	/* The mock keeps one dirty bit per 2 KiB page: both halves of each 4 KiB. */
	const uint64_t per = 4096 / VFD_MOCK_PAGE_SIZE, pages = len / 4096;
	uint64_t *mb = vfd_calloc((pages * per + 63) / 64, sizeof(*mb));
	if (!mb)
		return -ENOMEM;
	for (uint64_t p = 0; p < pages; p++) {
		if (!(bitmap[p / 64] & (1ull << (p % 64))))
			continue;
		for (uint64_t k = 0; k < per; k++) {
			uint64_t q = p * per + k;
			mb[q / 64] |= 1ull << (q % 64);
		}
	}
	pthread_rwlock_rdlock(&dom->op_lock);
	struct iommufd_be *b = dom->be;
	struct vfd_mock_cmd cmd = {
		.size = sizeof(cmd),
		.op = VFD_MOCK_OP_DIRTY,
		.id = d->pt_id,
		.dirty = {
			.iova = iova,
			.length = len,
			.page_size = VFD_MOCK_PAGE_SIZE,
			.uptr = (uintptr_t)mb,
		},
	};
	int rc = d->pt_id == b->ioas_id ? -EINVAL : vfd_ioctl(b->fd, VFD_IOMMU_TEST_CMD, &cmd);
	pthread_rwlock_unlock(&dom->op_lock);
	vfd_free(mb);
	return rc ? rc : (int64_t)cmd.dirty.out_nr_dirty;
}

int vfd_iommufd_get_ids(struct vfdma_domain *dom, struct vfdma_device *dev,
			struct vfd_iommufd_ids *ids)
{
	if (!dom || !ids || (dev && dev->dom != dom))
		return -EINVAL;
	if (dom->ops != &vfd_iommufd_ops)
		return -ENOTSUP;
	pthread_rwlock_rdlock(&dom->op_lock);
	const struct iommufd_be *b = dom->be;
	const struct iommufd_dev *d = dev ? dev->be : NULL;
	*ids = (struct vfd_iommufd_ids){
		.fd = b->fd,
		.ioas_id = b->ioas_id,
		.split_id = b->split_id,
		.nr_hwpts = b->nr_hwpts,
		.dev_pt_id = d ? d->pt_id : 0,
		.dev_id = d ? d->dev_id : 0,
	};
	pthread_rwlock_unlock(&dom->op_lock);
	return 0;
}
