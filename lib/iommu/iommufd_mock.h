/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Test support (internal, not exported from the shared library): the
 * iommufd selftest "mock" device as a device of a vfdma iommufd domain, so
 * that the VM tier can drive hardware dirty tracking (dirty-tracking HWPTs,
 * block split) with dirty bits it injects itself.  Needs a kernel built
 * with CONFIG_IOMMUFD_TEST.
 *
 * The test command below is not part of the exported uAPI.  These
 * definitions are our own, written to be binary compatible with the test
 * ABI of Linux 6.12 (one ioctl, IOMMUFD_CMD_BASE + 32, taking a sized
 * command whose @op picks the operation); only the operations vfdma's tests
 * use are described.  The mock domain has pages of half a CPU page (2 KiB
 * on x86) and, for a device made with VFD_MOCK_DEV_HUGE_IOVA, "huge" pages
 * of 512 of those (1 MiB), which it reports dirty as a whole; its aperture
 * is [16 MiB, 2 GiB).
 */
#ifndef VFDMA_IOMMU_IOMMUFD_MOCK_H
#define VFDMA_IOMMU_IOMMUFD_MOCK_H

#include <stdint.h>

#include "iommu/uapi_iommufd.h"

struct vfdma_domain;
struct vfdma_device;

/* Operation codes (the 6.12 numbering). */
#define VFD_MOCK_OP_MOCK_DOMAIN 2u
#define VFD_MOCK_OP_MOCK_DOMAIN_REPLACE 10u
#define VFD_MOCK_OP_MOCK_DOMAIN_FLAGS 12u
#define VFD_MOCK_OP_DIRTY 13u

/* Mock device flags (VFD_MOCK_OP_MOCK_DOMAIN_FLAGS). */
#define VFD_MOCK_DEV_NO_DIRTY (1u << 0)	  /* its IOMMU cannot track dirty pages */
#define VFD_MOCK_DEV_HUGE_IOVA (1u << 1) /* its domains also map 512-page blocks */

/* The mock's page: half a CPU page; its block: 512 of them. */
#define VFD_MOCK_PAGE_SIZE 2048u
#define VFD_MOCK_HUGE_SIZE (512u * VFD_MOCK_PAGE_SIZE)
#define VFD_MOCK_APERTURE_FIRST (1ull << 24)
#define VFD_MOCK_APERTURE_LAST ((1ull << 31) - 1)

/*
 * The command: a header, then one operation's arguments (a union in the
 * kernel, 48 bytes in 6.12, whose largest member is the iommufd_test_dirty
 * arguments), then one word the kernel uses to find the end.
 */
struct vfd_mock_cmd {
	__u32 size;
	__u32 op;
	__u32 id; /* the object the operation acts on */
	__u32 __reserved;
	union {
		struct { /* MOCK_DOMAIN, MOCK_DOMAIN_FLAGS: id is the IOAS or HWPT */
			__u32 out_stdev_id; /* the selftest object owning the device */
			__u32 out_hwpt_id;  /* what it got attached to */
			__u32 out_idev_id;  /* its iommufd device ID (for HWPT_ALLOC) */
			__u32 dev_flags;    /* VFD_MOCK_DEV_* (FLAGS only) */
		} mock_domain;
		struct { /* MOCK_DOMAIN_REPLACE: id is the selftest object */
			__u32 pt_id;
		} replace;
		struct { /* DIRTY: id is the mock HWPT, which must be tracking */
			__u32 flags;
			__aligned_u64 iova;
			__aligned_u64 length;
			__aligned_u64 page_size; /* must be VFD_MOCK_PAGE_SIZE */
			__aligned_u64 uptr;	 /* bitmap, one bit per page_size from iova */
			__aligned_u64 out_nr_dirty;
		} dirty;
		__u8 room[48];
	};
	__u32 last;
};
#define VFD_IOMMU_TEST_CMD _IO(IOMMUFD_TYPE, 0x80 + 32)

/*
 * Add a mock device (VFD_MOCK_DEV_* flags) to iommufd domain @dom,
 * attached to its IOAS like a PCI device: the domain's ranges narrow to the
 * mock aperture.  Close it with vfdma_device_close().  NULL and errno
 * (ENOTSUP: not an iommufd domain; EBUSY: a dirty log is running).
 */
struct vfdma_device *vfd_iommufd_mock_open(struct vfdma_domain *dom, unsigned int dev_flags);

/*
 * "The device wrote" the 4 KiB pages of [iova, iova + len) whose bit is set
 * in @bitmap (bit i: iova + i * 4096): sets the mock's dirty bits in the
 * dirty-tracking page table the device is attached to.  Returns the mock
 * pages marked (2 per 4 KiB page that is mapped), or a negative errno
 * (-EINVAL: the device is not on a tracking page table).
 */
int64_t vfd_iommufd_mock_dirty(struct vfdma_device *dev, uint64_t iova, uint64_t len,
			       const uint64_t *bitmap);

/* The iommufd objects behind a domain and one of its devices, for tests. */
struct vfd_iommufd_ids {
	int fd;		     /* /dev/iommu */
	uint32_t ioas_id;    /* the domain's IOAS */
	uint32_t split_id;   /* the split IOAS, 0 if none */
	uint32_t nr_hwpts;   /* dirty-tracking HWPTs alive */
	uint32_t dev_pt_id;  /* what @dev is attached to (the IOAS or a HWPT) */
	uint32_t dev_id;     /* @dev's iommufd device ID */
};
int vfd_iommufd_get_ids(struct vfdma_domain *dom, struct vfdma_device *dev,
			struct vfd_iommufd_ids *ids);

#endif
