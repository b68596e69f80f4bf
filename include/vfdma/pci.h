/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * Access to a PCI device opened with vfdma_device_open(): BARs, config
 * space, interrupts delivered to eventfds, reset.  These work on VFIO
 * devices (iommufd, type1, noiommu); on a sim device they return -ENOTSUP.
 */
#ifndef VFDMA_PCI_H
#define VFDMA_PCI_H

#include <stddef.h>
#include <stdint.h>

#include "vfdma/iommu.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Facts about a device. */
struct vfdma_device_info {
	char bdf[16];        /**< "0000:00:03.0" ("sim:N" for sim devices) */
	uint16_t vendor_id;
	uint16_t device_id;
	uint32_t class_code; /**< base class, subclass, prog-if */
	int numa_node;       /**< -1 if unknown */
	int iommu_group;     /**< -1 if none (sim) */
	unsigned int nr_irqs_msix; /**< vectors available */
	unsigned int nr_irqs_msi;
	unsigned int has_intx;
	unsigned int can_reset;
};

/**
 * Read facts about a device.
 * @return 0, or -EINVAL.
 */
int vfdma_device_get_info(struct vfdma_device *dev, struct vfdma_device_info *info);

/**
 * Map BAR @p bar (0-5) into this process.  The mapping lives until the
 * device is closed; mapping the same BAR again returns the same address.
 * @param[out] addr  the BAR's first byte
 * @param[out] len  may be NULL; the BAR's size
 * @return 0; -EINVAL (bad BAR number), -ENOENT (the BAR does not exist),
 *         -ENOTSUP (the BAR cannot be mmapped: use vfdma_pci_bar_read/write),
 *         or the kernel's errno.
 */
int vfdma_pci_bar_map(struct vfdma_device *dev, unsigned int bar, void **addr, uint64_t *len);

/**
 * Read @p len bytes at offset @p off of BAR @p bar through the VFIO region
 * (for BARs that cannot be mapped, such as I/O port BARs).
 * @return 0; -EINVAL, -ENOENT, -ERANGE (past the BAR's end), or the kernel's errno.
 */
int vfdma_pci_bar_read(struct vfdma_device *dev, unsigned int bar, uint64_t off, void *buf,
		       size_t len);

/** Write to a BAR through the VFIO region; as vfdma_pci_bar_read(). */
int vfdma_pci_bar_write(struct vfdma_device *dev, unsigned int bar, uint64_t off,
			const void *buf, size_t len);

/**
 * Read @p len bytes of config space at @p off.
 * @return 0; -EINVAL, -ERANGE, or the kernel's errno.
 */
int vfdma_pci_cfg_read(struct vfdma_device *dev, uint64_t off, void *buf, size_t len);

/** Write config space; as vfdma_pci_cfg_read(). */
int vfdma_pci_cfg_write(struct vfdma_device *dev, uint64_t off, const void *buf, size_t len);

/** Interrupt kinds. */
enum vfdma_irq_type {
	VFDMA_IRQ_AUTO = 0, /**< MSI-X, else MSI, else INTx */
	VFDMA_IRQ_MSIX,
	VFDMA_IRQ_MSI,
	VFDMA_IRQ_INTX,
};

/**
 * Enable @p nvec interrupt vectors, each delivered to a new eventfd.
 * @param[out] efds  @p nvec eventfds, owned by the device (closed by
 *                   vfdma_pci_irq_disable() and vfdma_device_close())
 * @return the vfdma_irq_type used (> 0); -EINVAL, -ENOTSUP (the device has
 *         no interrupt of that kind, or fewer vectors), -EBUSY (already
 *         enabled: disable first), or the kernel's errno.
 */
int vfdma_pci_irq_enable(struct vfdma_device *dev, enum vfdma_irq_type type, unsigned int nvec,
			 int *efds);

/**
 * Disable the device's interrupts and close their eventfds.
 * @return 0 (also when none were enabled), -EINVAL, or the kernel's errno.
 */
int vfdma_pci_irq_disable(struct vfdma_device *dev);

/**
 * Reset the device (VFIO_DEVICE_RESET: FLR or whatever the kernel can do).
 * @return 0; -EINVAL, -ENOTSUP (the device cannot be reset), or the kernel's errno.
 */
int vfdma_pci_reset(struct vfdma_device *dev);

#ifdef __cplusplus
}
#endif

#endif
