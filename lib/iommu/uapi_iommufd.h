/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The parts of the iommufd and VFIO-cdev uAPI that the iommufd backend uses,
 * for building on systems whose <linux/iommufd.h> / <linux/vfio.h> predate
 * them (Debian 12's linux-libc-dev 6.1 has no iommufd.h and no VFIO cdev
 * ioctls).  Re-typed from the Linux 6.12 uAPI headers
 * (include/uapi/linux/iommufd.h, include/uapi/linux/vfio.h; the kernel's
 * uAPI headers carry the Linux-syscall-note for use by userspace), and only
 * what vfdma needs.  Each ioctl is guarded on its own number, so a newer
 * system header wins: its definitions are then used as they are.  The
 * structures are part of the kernel ABI (extensible by size: the kernel
 * accepts older, shorter ones), so these never go stale.
 */
#ifndef VFDMA_IOMMU_UAPI_IOMMUFD_H
#define VFDMA_IOMMU_UAPI_IOMMUFD_H

#include <linux/types.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>

#if defined(__has_include)
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#endif
#endif

#ifndef IOMMUFD_TYPE
#define IOMMUFD_TYPE (';')
#endif

/* Command numbers (enum in the kernel header; only what we use). */
#define VFD_IOMMUFD_CMD_DESTROY 0x80
#define VFD_IOMMUFD_CMD_IOAS_ALLOC 0x81
#define VFD_IOMMUFD_CMD_IOAS_ALLOW_IOVAS 0x82
#define VFD_IOMMUFD_CMD_IOAS_COPY 0x83
#define VFD_IOMMUFD_CMD_IOAS_IOVA_RANGES 0x84
#define VFD_IOMMUFD_CMD_IOAS_MAP 0x85
#define VFD_IOMMUFD_CMD_IOAS_UNMAP 0x86
#define VFD_IOMMUFD_CMD_OPTION 0x87
#define VFD_IOMMUFD_CMD_HWPT_ALLOC 0x89
#define VFD_IOMMUFD_CMD_GET_HW_INFO 0x8a
#define VFD_IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING 0x8b
#define VFD_IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP 0x8c

/*
 * Flag and option values, under our own names: a system header that has
 * the ioctl but predates a flag (6.6 has HWPT_ALLOC, 6.7 its dirty flag)
 * defines them as enum constants we cannot test for.
 */
#define VFD_IOMMU_OPTION_HUGE_PAGES 1u    /* enum iommufd_option */
#define VFD_IOMMU_OPTION_OP_SET 0u        /* enum iommufd_option_ops */
#define VFD_IOMMU_HWPT_ALLOC_DIRTY_TRACKING (1u << 1)
#define VFD_IOMMU_HWPT_DIRTY_TRACKING_ENABLE 1u
#define VFD_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR 1u

#ifndef IOMMU_DESTROY
struct iommu_destroy {
	__u32 size;
	__u32 id;
};
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_DESTROY)
#endif

#ifndef IOMMU_IOAS_ALLOC
struct iommu_ioas_alloc {
	__u32 size;
	__u32 flags;
	__u32 out_ioas_id;
};
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_IOAS_ALLOC)
#endif

/* struct iommu_iova_range came with IOAS_IOVA_RANGES and ALLOW_IOVAS (6.2). */
#ifndef IOMMU_IOAS_IOVA_RANGES
struct iommu_iova_range {
	__aligned_u64 start;
	__aligned_u64 last;
};

struct iommu_ioas_iova_ranges {
	__u32 size;
	__u32 ioas_id;
	__u32 num_iovas; /* in: room in allowed_iovas; out: ranges there are */
	__u32 __reserved;
	__aligned_u64 allowed_iovas; /* struct iommu_iova_range[] */
	__aligned_u64 out_iova_alignment;
};
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_IOAS_IOVA_RANGES)
#endif

#ifndef IOMMU_IOAS_ALLOW_IOVAS
struct iommu_ioas_allow_iovas {
	__u32 size;
	__u32 ioas_id;
	__u32 num_iovas;
	__u32 __reserved;
	__aligned_u64 allowed_iovas; /* struct iommu_iova_range[] */
};
#define IOMMU_IOAS_ALLOW_IOVAS _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_IOAS_ALLOW_IOVAS)
#endif

#ifndef IOMMU_IOAS_MAP
enum iommufd_ioas_map_flags {
	IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0,
	IOMMU_IOAS_MAP_WRITEABLE = 1 << 1,
	IOMMU_IOAS_MAP_READABLE = 1 << 2,
};

struct iommu_ioas_map {
	__u32 size;
	__u32 flags;
	__u32 ioas_id;
	__u32 __reserved;
	__aligned_u64 user_va;
	__aligned_u64 length;
	__aligned_u64 iova;
};
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_IOAS_MAP)
#endif

#ifndef IOMMU_IOAS_COPY
struct iommu_ioas_copy {
	__u32 size;
	__u32 flags; /* enum iommufd_ioas_map_flags */
	__u32 dst_ioas_id;
	__u32 src_ioas_id;
	__aligned_u64 length;
	__aligned_u64 dst_iova;
	__aligned_u64 src_iova;
};
#define IOMMU_IOAS_COPY _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_IOAS_COPY)
#endif

#ifndef IOMMU_IOAS_UNMAP
struct iommu_ioas_unmap {
	__u32 size;
	__u32 ioas_id;
	__aligned_u64 iova;
	__aligned_u64 length; /* in: bytes to unmap; out: bytes unmapped */
};
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_IOAS_UNMAP)
#endif

#ifndef IOMMU_GET_HW_INFO
enum iommu_hw_capabilities {
	IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0,
};

struct iommu_hw_info {
	__u32 size;
	__u32 flags;
	__u32 dev_id;
	__u32 data_len;
	__aligned_u64 data_uptr;
	__u32 out_data_type;
	__u8 out_max_pasid_log2;
	__u8 __reserved[3];
	__aligned_u64 out_capabilities;
};
#define IOMMU_GET_HW_INFO _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_GET_HW_INFO)
#endif

#ifndef IOMMU_OPTION
struct iommu_option {
	__u32 size;
	__u32 option_id;
	__u16 op;
	__u16 __reserved;
	__u32 object_id; /* the IOAS, for IOMMU_OPTION_HUGE_PAGES */
	__aligned_u64 val64;
};
#define IOMMU_OPTION _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_OPTION)
#endif

#ifndef IOMMU_HWPT_ALLOC
struct iommu_hwpt_alloc {
	__u32 size;
	__u32 flags;
	__u32 dev_id;
	__u32 pt_id; /* the IOAS the page table mirrors */
	__u32 out_hwpt_id;
	__u32 __reserved;
	__u32 data_type;
	__u32 data_len;
	__aligned_u64 data_uptr;
	__u32 fault_id;
	__u32 __reserved2;
};
#define IOMMU_HWPT_ALLOC _IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_HWPT_ALLOC)
#endif

#ifndef IOMMU_HWPT_SET_DIRTY_TRACKING
struct iommu_hwpt_set_dirty_tracking {
	__u32 size;
	__u32 flags;
	__u32 hwpt_id;
	__u32 __reserved;
};
#define IOMMU_HWPT_SET_DIRTY_TRACKING \
	_IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING)
#endif

#ifndef IOMMU_HWPT_GET_DIRTY_BITMAP
struct iommu_hwpt_get_dirty_bitmap {
	__u32 size;
	__u32 hwpt_id;
	__u32 flags;
	__u32 __reserved;
	__aligned_u64 iova;	 /* aligned to page_size */
	__aligned_u64 length;	 /* a multiple of page_size */
	__aligned_u64 page_size; /* bytes per bit */
	__aligned_u64 data;	 /* the bitmap, 8-byte aligned */
};
#define IOMMU_HWPT_GET_DIRTY_BITMAP \
	_IO(IOMMUFD_TYPE, VFD_IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP)
#endif

/* VFIO device cdev (linux/vfio.h, 6.6+). */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd {
	__u32 argsz;
	__u32 flags;
	__s32 iommufd;
	__u32 out_devid;
};
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#endif

#ifndef VFIO_DEVICE_ATTACH_IOMMUFD_PT
struct vfio_device_attach_iommufd_pt {
	__u32 argsz;
	__u32 flags;
	__u32 pt_id;
};
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
#endif

#ifndef VFIO_DEVICE_DETACH_IOMMUFD_PT
struct vfio_device_detach_iommufd_pt {
	__u32 argsz;
	__u32 flags;
};
#define VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)
#endif

#endif
