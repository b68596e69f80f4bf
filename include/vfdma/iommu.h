/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * IOMMU domains and devices.
 *
 * A domain is one I/O address space: the mappings devices in it see.  It is
 * served by a backend:
 *
 * | backend  | kernel interface                          | notes |
 * |----------|-------------------------------------------|-------|
 * | iommufd  | /dev/iommu + /dev/vfio/devices/vfioN       | one IOAS per domain; vfdma chooses every IOVA |
 * | type1    | /dev/vfio/vfio container + /dev/vfio/N     | VFIO_TYPE1v2_IOMMU |
 * | noiommu  | VFIO no-IOMMU groups                       | IOVA = physical address; unsafe, asked for only |
 * | sim      | none: a software IOMMU in this process     | page table, IOTLB, A/D bits, faults; see vfdma/sim.h |
 *
 * VFDMA_BACKEND_AUTO picks iommufd when /dev/iommu and VFIO device cdevs
 * exist, else type1 when /dev/vfio/vfio exists, else sim (with a notice in
 * the log).  noiommu is never picked automatically.  The environment
 * variable VFDMA_BACKEND (auto, iommufd, type1, noiommu, sim) overrides the
 * choice of an unmodified program.
 *
 * A domain's page-size bitmap and usable IOVA ranges are the intersection
 * over its devices: they can shrink when a device is attached, and an attach
 * that would exclude an existing mapping fails with -EBUSY instead.
 *
 * All functions are thread-safe, except that vfdma_domain_close() and
 * vfdma_device_close() must not race with other calls on the same object.
 */
#ifndef VFDMA_IOMMU_H
#define VFDMA_IOMMU_H

#include <stddef.h>
#include <stdint.h>

#include "vfdma/iova.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A domain (opaque). */
struct vfdma_domain;
/** A device attached to a domain (opaque). */
struct vfdma_device;

/** Backends. */
enum vfdma_backend {
	VFDMA_BACKEND_AUTO = 0, /**< iommufd, else type1, else sim */
	VFDMA_BACKEND_IOMMUFD,
	VFDMA_BACKEND_TYPE1,
	VFDMA_BACKEND_NOIOMMU,
	VFDMA_BACKEND_SIM,
};

/** Domain flag: unmap at once in the kernel, never deferred (the default). */
#define VFDMA_DOMAIN_STRICT (0u)
/**
 * Domain flag: queue unmaps and issue them gathered, when the queue passes
 * defer_max_bytes or defer_max_entries, when its oldest entry is older than
 * defer_max_us (checked on the next call into the domain), on
 * vfdma_domain_flush(), or before an allocation would fail.  The translation
 * is removed at once; the IOVA is not handed out again before the kernel
 * unmap completed.
 */
#define VFDMA_DOMAIN_DEFER_UNMAP (1u << 0)
/** Domain flag: no per-thread IOVA caches (exact, reproducible placement). */
#define VFDMA_DOMAIN_NO_IOVA_CACHE (1u << 1)

/** Options for vfdma_domain_open(); zero means "default" for every field. */
struct vfdma_domain_opts {
	enum vfdma_backend backend; /**< default VFDMA_BACKEND_AUTO */
	unsigned int flags;         /**< VFDMA_DOMAIN_* */
	uint64_t defer_max_bytes;   /**< default 64 MiB */
	uint32_t defer_max_entries; /**< default 256 */
	uint32_t defer_max_us;      /**< default 1000 */
	/** sim: page sizes the software IOMMU may use (default 4K | 2M | 1G) */
	uint64_t sim_pgsizes;
	/** sim: IOVA width, 39 or 48 bits (default 48) */
	unsigned int sim_va_bits;
	/** sim: IOTLB entries per device, a power of two (default 64) */
	unsigned int sim_iotlb_entries;
};

/**
 * Open a domain.
 * @param opts  options, or NULL for all defaults
 * @return the domain, or NULL with errno: EINVAL (bad option), ENODEV (the
 *         backend asked for is not available here), EACCES, ENOMEM.
 */
struct vfdma_domain *vfdma_domain_open(const struct vfdma_domain_opts *opts);

/**
 * Close a domain: closes its devices, removes every mapping and releases
 * every fd and byte it holds.  NULL is ignored.
 * @return 0, or the first error a kernel call reported while tearing down
 *         (everything is released regardless).
 */
int vfdma_domain_close(struct vfdma_domain *dom);

/** The backend in use (never VFDMA_BACKEND_AUTO); -EINVAL for NULL. */
int vfdma_domain_backend(const struct vfdma_domain *dom);

/** Name of a backend: "iommufd", "type1", "noiommu", "sim" or "auto". */
const char *vfdma_backend_name(enum vfdma_backend backend);

/**
 * Page sizes the domain's IOMMU can use, as a bitmap (bit n set: 2^n bytes).
 * @return 0, or -EINVAL.
 */
int vfdma_domain_pgsizes(const struct vfdma_domain *dom, uint64_t *pgsizes);

/**
 * The usable IOVA ranges.
 * @param ranges  output array, may be NULL when @p max is 0
 * @param max  capacity of @p ranges
 * @return the number of ranges (which may exceed @p max: call again with a
 *         larger array), or -EINVAL.
 */
int vfdma_domain_ranges(const struct vfdma_domain *dom, struct vfdma_iova_range *ranges,
			size_t max);

/**
 * Set the highest IOVA the domain may hand out (a DMA mask such as
 * UINT32_MAX); the default is no limit beyond the usable ranges.  Devices
 * with a smaller mask lower it for their domain when they declare it.
 * @return 0, -EINVAL, or -ERANGE if no usable address is at or below it.
 */
int vfdma_domain_set_dma_limit(struct vfdma_domain *dom, uint64_t limit);

/** Dirty-tracking capabilities (see vfdma_domain_info.dirty_caps). */
#define VFDMA_DIRTY_CAP_HW      (1u << 0) /**< IOMMU dirty bits (iommufd HWPT, sim) */
#define VFDMA_DIRTY_CAP_TYPE1   (1u << 1) /**< VFIO_IOMMU_DIRTY_PAGES (page-pinned) */
#define VFDMA_DIRTY_CAP_SPLIT   (1u << 2) /**< 4 KiB precision by splitting blocks */
#define VFDMA_DIRTY_CAP_MARK    (1u << 3) /**< driver-reported writes (always) */

/** Counters of a domain, for tests and benchmarks. */
struct vfdma_domain_info {
	enum vfdma_backend backend;
	uint64_t pgsizes;
	unsigned int nr_devices;
	unsigned int dirty_caps;     /**< VFDMA_DIRTY_CAP_* */
	uint64_t mappings;           /**< live mappings */
	uint64_t mapped_bytes;
	uint64_t kernel_map_calls;   /**< backend map operations issued so far */
	uint64_t kernel_unmap_calls; /**< backend unmap operations issued so far */
	uint64_t deferred_bytes;     /**< unmaps queued, not yet issued */
	int broken;                  /**< 1 once an inconsistency was found */
};

/**
 * Read the domain's counters.
 * @return 0, or -EINVAL.
 */
int vfdma_domain_get_info(struct vfdma_domain *dom, struct vfdma_domain_info *info);

/**
 * Issue every queued (deferred) unmap now and release their IOVAs.
 * @return 0, -EINVAL, or the error of a failed kernel unmap (the domain is
 *         then broken: see vfdma_domain_check()).
 */
int vfdma_domain_flush(struct vfdma_domain *dom);

/**
 * Verify that the IOVA allocator, the mapping table and the backend agree:
 * every mapping's IOVA is allocated, every mapping is present in the
 * backend (probed where the backend cannot be read), nothing is mapped in
 * the backend that the table does not know of (where the backend can be
 * read).  A disagreement marks the domain broken: further maps fail with
 * -EIO, the first inconsistency is logged with its addresses, close still
 * cleans up.
 * @return 0 if consistent, -EIO if not (or already broken), -EINVAL.
 */
int vfdma_domain_check(struct vfdma_domain *dom);

/** Device open flags (none defined yet; pass 0). */
#define VFDMA_DEVICE_NOFLAGS 0u

/**
 * Open the PCI device @p bdf ("0000:00:03.0") into @p dom: for type1 its
 * IOMMU group is added to the domain's container (once per group; the group
 * must be viable: all its devices bound to vfio-pci or to no driver), for
 * iommufd its vfio cdev is bound and attached to the domain's IOAS.  The
 * domain's page sizes and usable ranges are then re-read and intersected.
 * @return the device, or NULL with errno: EINVAL (bad argument or address),
 *         ENODEV (no such device, or not bound to vfio-pci), EPERM (group not
 *         viable), EBUSY (the device's reserved ranges overlap existing
 *         mappings, or the device is open already, or an iommufd domain
 *         has a dirty log running: stop it first), EXDEV (the device cannot
 *         share this domain's page tables), ENOTSUP (sim domain: use
 *         vfdma_sim_device_create()), ENOMEM, or the kernel's errno.
 */
struct vfdma_device *vfdma_device_open(struct vfdma_domain *dom, const char *bdf,
				       unsigned int flags);

/**
 * Close a device: disables its interrupts, unmaps its BARs, detaches it
 * from the domain (the group leaves the container with its last device)
 * and closes its fds.  The domain and its other devices keep working.
 * NULL is ignored.
 * @return 0, or the first error reported while tearing down.
 */
int vfdma_device_close(struct vfdma_device *dev);

/** The domain a device belongs to, or NULL for NULL. */
struct vfdma_domain *vfdma_device_domain(const struct vfdma_device *dev);

#ifdef __cplusplus
}
#endif

#endif
