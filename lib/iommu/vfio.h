/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers shared by the VFIO backends (internal).
 *
 * sysfs lookups for a PCI device (IOMMU group, driver, NUMA node, vfio
 * cdev name, IDs), and the VFIO container + group machinery that type1 and
 * noiommu share: both put groups (/dev/vfio/N or /dev/vfio/noiommu-N) into
 * one container per domain and differ only in the IOMMU type they set and in
 * how a mapping reaches the device.
 *
 * Every helper returns 0 or a negative errno and goes through the syscall
 * shim, so fault injection reaches all of them.
 */
#ifndef VFDMA_IOMMU_VFIO_H
#define VFDMA_IOMMU_VFIO_H

#include <stddef.h>
#include <stdint.h>

struct vfdma_domain;
struct vfdma_device;

/* ---- sysfs ---- */

/*
 * Read /sys/bus/pci/devices/<bdf>/<attr> into @buf (NUL-terminated, the
 * trailing newline removed).  -ENODEV if the device does not exist.
 */
int vfd_pci_sysfs_read(const char *bdf, const char *attr, char *buf, size_t len);
/* The same, parsed as a number (base 0: "0x1b36", "-1", "12"). */
int vfd_pci_sysfs_num(const char *bdf, const char *attr, int64_t *val);
/*
 * The name of the link target /sys/bus/pci/devices/<bdf>/<link> (its last
 * path component), e.g. "vfio-pci" for "driver", "12" for "iommu_group".
 * -ENOENT if the device has no such link, -ENODEV if there is no device.
 */
int vfd_pci_sysfs_link(const char *bdf, const char *link, char *buf, size_t len);
/* The IOMMU group number; -ENOENT if the device has none. */
int vfd_pci_iommu_group(const char *bdf, int *group);
/*
 * The device's VFIO cdev, "/dev/vfio/devices/vfioN" (the name listed in
 * /sys/bus/pci/devices/<bdf>/vfio-dev/); -ENOENT if it has none (not bound
 * to vfio-pci, or a kernel without CONFIG_VFIO_DEVICE_CDEV).
 */
int vfd_vfio_cdev_path(const char *bdf, char *buf, size_t len);
/*
 * -ENODEV with a log line saying why, unless the device exists and is bound
 * to vfio-pci.
 */
int vfd_pci_check_vfio_bound(const char *bdf);

/* ---- container + groups (type1, noiommu) ---- */

struct vfd_vfio_group;

struct vfd_container {
	int fd;			      /* /dev/vfio/vfio */
	unsigned long iommu_type;     /* VFIO_TYPE1v2_IOMMU or VFIO_NOIOMMU_IOMMU */
	const char *group_prefix;     /* "" or "noiommu-": /dev/vfio/<prefix><N> */
	struct vfd_vfio_group *groups; /* groups in the container */
	unsigned int nr_groups;
};

/*
 * Open /dev/vfio/vfio and check that it speaks VFIO_API_VERSION and offers
 * @iommu_type.  -ENODEV if not.
 */
int vfd_container_open(struct vfd_container *c, unsigned long iommu_type,
		       const char *group_prefix);
/* Close the container (and, defensively, any group still in it). */
void vfd_container_close(struct vfd_container *c);

/*
 * Add @dev's IOMMU group to the container (open it and set its container
 * on first use; the first group also sets the IOMMU type) and get the
 * device fd into dev->fd; dev->be points at the group.  -EPERM if the
 * group is not viable.  All or nothing.
 */
int vfd_container_attach(struct vfd_container *c, struct vfdma_device *dev);
/*
 * Close dev->fd and drop its group reference; the last device of a group
 * takes the group out of the container.  Returns the number of groups
 * left (0: the kernel dropped the IOMMU and every mapping with it).
 */
unsigned int vfd_container_detach(struct vfd_container *c, struct vfdma_device *dev);

#endif
