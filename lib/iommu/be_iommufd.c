/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The iommufd backend: /dev/iommu with one IOAS (I/O address space) per
 * domain, and PCI devices opened through their VFIO cdev
 * (/dev/vfio/devices/vfioN), bound to the iommufd and attached to the IOAS.
 *
 * vfdma owns IOVA allocation: every map is IOMMU_IOAS_MAP with FIXED_IOVA
 * at the IOVA the core's allocator chose.  An IOAS can take maps before any
 * device is attached (the kernel replays them into each new device's page
 * table), so the backend is ready as soon as it is open.
 *
 * The fence.  IOMMU_IOAS_ALLOW_IOVAS holds the domain's usable ranges: while
 * it is set, the kernel refuses anything that would take IOVA out of them
 * (a device whose reserved regions or aperture fall inside them cannot
 * attach).  It does not constrain FIXED_IOVA maps; those are the core's
 * business.  An attach of ours must be able to narrow the ranges, so
 * device_attach lifts the fence for the ATTACH call only and sets it again
 * to "old ranges intersected with what the kernel reports now", which is
 * exactly what the core computes from query() a moment later.  If the core
 * then refuses the attach (-EBUSY), device_detach puts the old fence back.
 * A mapping in the way of a new reservation makes the kernel itself refuse
 * the attach (EADDRINUSE), which we report as -EBUSY, like the core does.
 *
 * Dirty tracking (iommufd_dirty.c) moves the devices onto dirty-tracking
 * HWPTs, with block split on a second IOAS; while that split IOAS exists,
 * map and unmap here apply to both, so it always mirrors the domain's.
 * The test-only mock device (iommufd_mock.h) attaches like a PCI device
 * and is told apart by its iommufd_dev.
 *
 * Locking: the core holds op_lock exclusive for open/close, attach/detach,
 * query, probe and dirty start/stop, so the backend state only changes
 * there; map, unmap and dirty reads only read it, and the kernel
 * serialises the IOAS itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "iommu/domain.h"
#include "iommu/iommufd_be.h"
#include "iommu/iommufd_mock.h"
#include "iommu/uapi_iommufd.h"
#include "iommu/vfio.h"
#include "util/log.h"
#include "util/sys.h"

/*
 * A fresh IOAS reports the whole 64-bit space, but every device brings an
 * aperture (VT-d: 39 or 48 bits; QEMU's emulated VT-d defaults to 39).
 * vfdma's allocator hands out IOVAs from the top, so maps made before the
 * first attach would sit above any real aperture and block the attach.
 * Until a device says otherwise, the domain uses the lowest common width.
 */
#define NODEV_IOVA_BITS 39

static struct iommufd_be *be_of(struct vfdma_domain *dom)
{
	return dom->be;
}

/* The IOAS's usable ranges and IOVA alignment, as the kernel reports them. */
static int read_ranges(struct iommufd_be *b, struct vfdma_iova_range **out, size_t *nout,
		       uint64_t *align)
{
	uint32_t room = 8;
	for (;;) {
		struct iommu_iova_range *kr = vfd_calloc(room, sizeof(*kr));
		if (!kr)
			return -ENOMEM;
		struct iommu_ioas_iova_ranges cmd = {
			.size = sizeof(cmd),
			.ioas_id = b->ioas_id,
			.num_iovas = room,
			.allowed_iovas = (uintptr_t)kr,
		};
		int rc = vfd_ioctl(b->fd, IOMMU_IOAS_IOVA_RANGES, &cmd);
		if (rc == -EMSGSIZE && cmd.num_iovas > room) {
			/* More ranges than room: the kernel said how many. */
			room = cmd.num_iovas;
			vfd_free(kr);
			continue;
		}
		if (rc) {
			vfd_free(kr);
			return rc;
		}
		struct vfdma_iova_range *r = vfd_calloc(cmd.num_iovas ? cmd.num_iovas : 1, sizeof(*r));
		if (!r) {
			vfd_free(kr);
			return -ENOMEM;
		}
		for (uint32_t i = 0; i < cmd.num_iovas; i++)
			r[i] = (struct vfdma_iova_range){kr[i].start, kr[i].last};
		vfd_free(kr);
		*out = r;
		*nout = cmd.num_iovas;
		*align = cmd.out_iova_alignment;
		return 0;
	}
}

/*
 * Page sizes.  iommufd does not report the IOMMU's page sizes; the IOVA
 * alignment is the smallest.  On x86 (VT-d, AMD-Vi) 2 MiB and 1 GiB leaves
 * exist too, and iommufd uses them when IOVA, memory and length line up,
 * so we offer them to the allocator for alignment.  Elsewhere only the
 * alignment is known for sure.
 */
static uint64_t pgsizes_for(uint64_t align)
{
	/*
	 * An IOAS without a device reports alignment 1 (byte granular);
	 * the kernel pins and maps whole CPU pages either way.
	 */
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	if (align < page)
		align = page;
	uint64_t pg = align;
#if defined(__x86_64__)
	pg |= (1ull << 21) | (1ull << 30);
#endif
	return pg & ~(align - 1);
}

int vfd_iommufd_set_allowed(struct iommufd_be *b, uint32_t ioas,
			    const struct vfdma_iova_range *r, size_t n)
{
	struct iommu_iova_range *kr = vfd_calloc(n ? n : 1, sizeof(*kr));
	if (!kr)
		return -ENOMEM;
	uint32_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (r[i].first < r[i].last) /* the kernel refuses one-byte ranges */
			kr[k++] = (struct iommu_iova_range){r[i].first, r[i].last};
	struct iommu_ioas_allow_iovas cmd = {
		.size = sizeof(cmd),
		.ioas_id = ioas,
		.num_iovas = k,
		.allowed_iovas = (uintptr_t)kr,
	};
	int rc = vfd_ioctl(b->fd, IOMMU_IOAS_ALLOW_IOVAS, &cmd);
	vfd_free(kr);
	return rc;
}

/* Set the domain IOAS's allowed IOVAs to @r[0..n) (n == 0: no fence). */
static int set_allowed(struct iommufd_be *b, const struct vfdma_iova_range *r, size_t n)
{
	return vfd_iommufd_set_allowed(b, b->ioas_id, r, n);
}

int vfd_iommufd_ioas_alloc(struct iommufd_be *b, uint32_t *id)
{
	struct iommu_ioas_alloc cmd = {.size = sizeof(cmd)};
	int rc = vfd_ioctl(b->fd, IOMMU_IOAS_ALLOC, &cmd);
	if (!rc)
		*id = cmd.out_ioas_id;
	return rc;
}

int vfd_iommufd_destroy(struct iommufd_be *b, uint32_t id)
{
	struct iommu_destroy cmd = {.size = sizeof(cmd), .id = id};
	int rc = vfd_ioctl(b->fd, IOMMU_DESTROY, &cmd);
	if (rc)
		VFD_ERR("iommufd: destroying object %u: %s", id, strerror(-rc));
	return rc;
}

static int ioas_alloc(struct iommufd_be *b, uint32_t *id)
{
	return vfd_iommufd_ioas_alloc(b, id);
}

static void obj_destroy(struct iommufd_be *b, uint32_t id)
{
	vfd_iommufd_destroy(b, id);
}

static int iommufd_open(struct vfdma_domain *dom)
{
	struct iommufd_be *b = vfd_calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	struct vfdma_iova_range *r = NULL;
	size_t n = 0;
	uint64_t align = 0;
	int rc = vfd_open("/dev/iommu", O_RDWR, 0);
	if (rc < 0) {
		VFD_ERR("iommufd: /dev/iommu: %s", strerror(-rc));
		if (rc == -ENOENT)
			rc = -ENODEV;
		goto fail;
	}
	b->fd = rc;
	rc = ioas_alloc(b, &b->ioas_id);
	if (rc) {
		VFD_ERR("iommufd: IOMMU_IOAS_ALLOC: %s", strerror(-rc));
		goto fail_fd;
	}
	rc = read_ranges(b, &r, &n, &align);
	if (rc)
		goto fail_ioas;
	if (align & (align - 1)) {
		VFD_ERR("iommufd: IOVA alignment 0x%llx is not a page size",
			(unsigned long long)align);
		rc = -EINVAL;
		goto fail_ioas;
	}
	/* No device yet: stay below the narrowest aperture (see NODEV_IOVA_BITS). */
	size_t k = 0;
	const uint64_t top = (1ull << NODEV_IOVA_BITS) - 1;
	for (size_t i = 0; i < n; i++) {
		if (r[i].first > top)
			continue;
		r[k] = r[i];
		if (r[k].last > top)
			r[k].last = top;
		k++;
	}
	n = k;
	rc = n ? set_allowed(b, r, n) : -ERANGE;
	if (rc) {
		VFD_ERR("iommufd: IOMMU_IOAS_ALLOW_IOVAS: %s", strerror(-rc));
		goto fail_ioas;
	}
	rc = vfd_domain_set_ranges(dom, r, n);
	if (rc)
		goto fail_ioas;
	vfd_free(r);
	dom->be = b;
	dom->pgsizes = pgsizes_for(align);
	dom->be_ready = true;
	VFD_DBG("iommufd: IOAS %u, alignment 0x%llx", b->ioas_id, (unsigned long long)align);
	return 0;

fail_ioas:
	obj_destroy(b, b->ioas_id);
fail_fd:
	vfd_close(b->fd);
fail:
	vfd_free(r);
	vfd_free(b);
	return rc;
}

static void iommufd_close(struct vfdma_domain *dom)
{
	struct iommufd_be *b = be_of(dom);
	if (!b)
		return;
	/* Normally done by dirty_stop; here for what a failed stop left. */
	vfd_iommufd_dirty_teardown(dom);
	vfd_free(b->hwpts);
	/* Destroying the IOAS unmaps whatever is left; closing the fd would too. */
	if (b->scratch_id)
		obj_destroy(b, b->scratch_id);
	obj_destroy(b, b->ioas_id);
	vfd_close(b->fd);
	vfd_free(b);
	dom->be = NULL;
}

/* The VFIO cdev of PCI device @bdf, which must be bound to vfio-pci. */
static int find_cdev(const char *bdf, char *path, size_t len)
{
	int rc = vfd_pci_check_vfio_bound(bdf);
	if (rc)
		return rc;
	rc = vfd_vfio_cdev_path(bdf, path, len);
	if (rc == -ENOENT) {
		VFD_ERR("iommufd: %s has no VFIO cdev (a kernel without VFIO_DEVICE_CDEV?)", bdf);
		rc = -ENODEV;
	}
	return rc;
}

/* Does the IOMMU behind @dev_id track dirty pages?  Best effort. */
static bool hw_dirty_cap(struct iommufd_be *b, uint32_t dev_id)
{
	struct iommu_hw_info cmd = {.size = sizeof(cmd), .dev_id = dev_id};
	if (vfd_ioctl(b->fd, IOMMU_GET_HW_INFO, &cmd))
		return false;
	return cmd.out_capabilities & IOMMU_HW_CAP_DIRTY_TRACKING;
}

/* Current ranges intersected with @nr[0..nn) (both sorted, disjoint). */
static size_t intersect(const struct vfdma_iova_range *a, size_t na,
			const struct vfdma_iova_range *nr, size_t nn, struct vfdma_iova_range *out)
{
	size_t k = 0;
	for (size_t i = 0; i < na; i++) {
		for (size_t j = 0; j < nn; j++) {
			uint64_t lo = a[i].first > nr[j].first ? a[i].first : nr[j].first;
			uint64_t hi = a[i].last < nr[j].last ? a[i].last : nr[j].last;
			if (lo <= hi)
				out[k++] = (struct vfdma_iova_range){lo, hi};
		}
	}
	return k;
}

/* Fence the IOAS at the domain's ranges intersected with the kernel's now. */
static int fence_after_attach(struct vfdma_domain *dom, struct iommufd_be *b)
{
	struct vfdma_iova_range *nr = NULL, *both = NULL;
	size_t nn = 0;
	uint64_t align;
	int rc = read_ranges(b, &nr, &nn, &align);
	if (rc)
		return rc;
	both = vfd_calloc(dom->nr_ranges + nn + 1, sizeof(*both));
	if (!both) {
		vfd_free(nr);
		return -ENOMEM;
	}
	size_t k = intersect(dom->ranges, dom->nr_ranges, nr, nn, both);
	/* Nothing left: no fence; the core refuses this attach anyway. */
	rc = set_allowed(b, both, k);
	vfd_free(both);
	vfd_free(nr);
	return rc;
}

static int iommufd_device_attach(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	struct iommufd_be *b = be_of(dom);
	char path[64];
	/* A new device would not be tracked: attach between logs. */
	if (b->tracking)
		return -EBUSY;
	int rc = vfd_iommufd_dirty_teardown(dom); /* what a failed stop left, if anything */
	if (!rc)
		rc = find_cdev(dev->bdf, path, sizeof(path));
	if (rc)
		return rc;
	struct iommufd_dev *d = vfd_calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	int fd = vfd_open(path, O_RDWR, 0);
	if (fd < 0) {
		VFD_ERR("iommufd: %s (%s): %s", path, dev->bdf, strerror(-fd));
		rc = fd;
		goto fail;
	}
	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = b->fd,
	};
	rc = vfd_ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
	if (rc) {
		VFD_ERR("iommufd: VFIO_DEVICE_BIND_IOMMUFD %s: %s", dev->bdf, strerror(-rc));
		goto fail_fd;
	}
	d->dev_id = bind.out_devid;

	/* Lift the fence for the attach (see the top of this file). */
	rc = set_allowed(b, NULL, 0);
	if (rc)
		goto fail_fd;
	struct vfio_device_attach_iommufd_pt at = {
		.argsz = sizeof(at),
		.pt_id = b->ioas_id,
	};
	rc = vfd_ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	if (rc) {
		if (rc == -EADDRINUSE) {
			VFD_ERR("iommufd: %s reserves IOVA that holds a mapping", dev->bdf);
			rc = -EBUSY;
		} else {
			VFD_ERR("iommufd: VFIO_DEVICE_ATTACH_IOMMUFD_PT %s: %s", dev->bdf,
				strerror(-rc));
		}
		goto fail_fence;
	}
	rc = fence_after_attach(dom, b);
	if (rc) {
		VFD_ERR("iommufd: fencing the IOAS after attaching %s: %s", dev->bdf,
			strerror(-rc));
		struct vfio_device_detach_iommufd_pt dt = {.argsz = sizeof(dt)};
		vfd_ioctl(fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt);
		goto fail_fence;
	}
	d->hw_dirty = hw_dirty_cap(b, d->dev_id);
	d->pt_id = b->ioas_id;
	VFD_DBG("iommufd: %s is %s, device %u in IOAS %u%s", dev->bdf, path, d->dev_id,
		b->ioas_id, d->hw_dirty ? ", IOMMU tracks dirty pages" : "");
	dev->be = d;
	dev->fd = fd;
	dom->be_ready = true;
	return 0;

fail_fence:
	/* Back to the domain's ranges, which this attach did not change. */
	if (set_allowed(b, dom->ranges, dom->nr_ranges))
		VFD_ERR("iommufd: could not restore the IOVA fence");
fail_fd:
	vfd_close(fd); /* also unbinds the device from the iommufd */
fail:
	vfd_free(d);
	return rc;
}

static void iommufd_device_detach(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	struct iommufd_be *b = be_of(dom);
	struct iommufd_dev *d = dev->be;
	if (d && d->mock) {
		/* Destroying the selftest object detaches and unbinds the mock. */
		vfd_iommufd_destroy(b, d->stdev_id);
	} else if (dev->fd >= 0) {
		struct vfio_device_detach_iommufd_pt dt = {.argsz = sizeof(dt)};
		int rc = vfd_ioctl(dev->fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt);
		if (rc)
			VFD_ERR("iommufd: VFIO_DEVICE_DETACH_IOMMUFD_PT %s: %s", dev->bdf,
				strerror(-rc));
		vfd_close(dev->fd);
		dev->fd = -1;
	}
	vfd_free(dev->be);
	dev->be = NULL;
	/*
	 * The core's ranges did not grow back when the device left (or did
	 * not change, when the core refused the attach): fence at them.
	 */
	int rc = set_allowed(b, dom->ranges, dom->nr_ranges);
	if (rc)
		VFD_ERR("iommufd: IOMMU_IOAS_ALLOW_IOVAS after detaching %s: %s", dev->bdf,
			strerror(-rc));
}

int vfd_iommufd_replace(struct iommufd_be *b, struct vfdma_device *dev, uint32_t pt_id)
{
	struct iommufd_dev *d = dev->be;
	int rc;
	if (d->mock) {
		/* Not a VFIO cdev: the selftest object replaces the attachment. */
		struct vfd_mock_cmd cmd = {
			.size = sizeof(cmd),
			.op = VFD_MOCK_OP_MOCK_DOMAIN_REPLACE,
			.id = d->stdev_id,
			.replace = {.pt_id = pt_id},
		};
		rc = vfd_ioctl(b->fd, VFD_IOMMU_TEST_CMD, &cmd);
	} else {
		/* ATTACH on an attached device replaces its page table atomically. */
		struct vfio_device_attach_iommufd_pt at = {.argsz = sizeof(at), .pt_id = pt_id};
		rc = vfd_ioctl(dev->fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
	}
	if (rc)
		VFD_ERR("iommufd: replacing %s's page table with %u: %s", dev->bdf, pt_id,
			strerror(-rc));
	else
		d->pt_id = pt_id;
	return rc;
}

int vfd_iommufd_attach_mock(struct vfdma_domain *dom, struct vfdma_device *dev,
			    unsigned int dev_flags)
{
	struct iommufd_be *b = be_of(dom);
	if (b->tracking)
		return -EBUSY;
	int rc = vfd_iommufd_dirty_teardown(dom);
	if (rc)
		return rc;
	struct iommufd_dev *d = vfd_calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	/* Like a PCI device: lift the fence for the attach (top of this file). */
	rc = set_allowed(b, NULL, 0);
	if (rc)
		goto fail;
	struct vfd_mock_cmd cmd = {
		.size = sizeof(cmd),
		.op = VFD_MOCK_OP_MOCK_DOMAIN_FLAGS,
		.id = b->ioas_id,
		.mock_domain = {.dev_flags = dev_flags},
	};
	rc = vfd_ioctl(b->fd, VFD_IOMMU_TEST_CMD, &cmd);
	if (rc) {
		VFD_ERR("iommufd: adding a mock device: %s", strerror(-rc));
		if (rc == -ENOTTY)
			rc = -ENOTSUP; /* a kernel without CONFIG_IOMMUFD_TEST */
		else if (rc == -EADDRINUSE)
			rc = -EBUSY;
		goto fail_fence;
	}
	d->mock = true;
	d->stdev_id = cmd.mock_domain.out_stdev_id;
	d->dev_id = cmd.mock_domain.out_idev_id;
	d->pt_id = b->ioas_id;
	rc = fence_after_attach(dom, b);
	if (rc) {
		vfd_iommufd_destroy(b, d->stdev_id);
		goto fail_fence;
	}
	d->hw_dirty = hw_dirty_cap(b, d->dev_id);
	VFD_DBG("iommufd: mock device %u (flags 0x%x) in IOAS %u%s", d->dev_id, dev_flags,
		b->ioas_id, d->hw_dirty ? ", tracks dirty pages" : "");
	dev->be = d;
	dom->be_ready = true;
	return 0;

fail_fence:
	if (set_allowed(b, dom->ranges, dom->nr_ranges))
		VFD_ERR("iommufd: could not restore the IOVA fence");
fail:
	vfd_free(d);
	return rc;
}

static int iommufd_query(struct vfdma_domain *dom, struct vfdma_iova_range **ranges, size_t *n,
			 uint64_t *pgsizes)
{
	uint64_t align;
	int rc = read_ranges(be_of(dom), ranges, n, &align);
	if (!rc)
		*pgsizes = pgsizes_for(align);
	return rc;
}

uint32_t vfd_iommufd_map_flags(unsigned int prot)
{
	uint32_t f = IOMMU_IOAS_MAP_FIXED_IOVA;
	if (prot & VFDMA_PROT_READ)
		f |= IOMMU_IOAS_MAP_READABLE;
	if (prot & VFDMA_PROT_WRITE)
		f |= IOMMU_IOAS_MAP_WRITEABLE;
	return f;
}

static int iommufd_map(struct vfdma_domain *dom, uint64_t iova, void *vaddr, uint64_t len,
		       unsigned int prot)
{
	struct iommufd_be *b = be_of(dom);
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd),
		.flags = vfd_iommufd_map_flags(prot),
		.ioas_id = b->ioas_id,
		.user_va = (uintptr_t)vaddr,
		.length = len,
		.iova = iova,
	};
	int rc = vfd_ioctl(b->fd, IOMMU_IOAS_MAP, &cmd);
	if (rc)
		VFD_DBG("iommufd: IOMMU_IOAS_MAP 0x%llx+0x%llx: %s", (unsigned long long)iova,
			(unsigned long long)len, strerror(-rc));
	if (!rc && b->split_id) {
		/*
		 * A dirty log with split runs: the devices use the split IOAS,
		 * which must mirror this one.  A copy shares the pinned pages.
		 */
		struct iommu_ioas_copy cp = {
			.size = sizeof(cp),
			.flags = cmd.flags,
			.dst_ioas_id = b->split_id,
			.src_ioas_id = b->ioas_id,
			.length = len,
			.dst_iova = iova,
			.src_iova = iova,
		};
		rc = vfd_ioctl(b->fd, IOMMU_IOAS_COPY, &cp);
		if (rc) {
			VFD_DBG("iommufd: IOMMU_IOAS_COPY to the split IOAS: %s", strerror(-rc));
			struct iommu_ioas_unmap un = {
				.size = sizeof(un), .ioas_id = b->ioas_id, .iova = iova, .length = len};
			if (vfd_ioctl(b->fd, IOMMU_IOAS_UNMAP, &un))
				vfd_domain_mark_broken(dom, "could not take back a half-done map",
						       iova, len, rc);
		}
	}
	return rc == -EEXIST ? -EBUSY : rc;
}

static int64_t iommufd_unmap(struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	struct iommufd_be *b = be_of(dom);
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd),
		.ioas_id = b->ioas_id,
		.iova = iova,
		.length = len,
	};
	int rc = vfd_ioctl(b->fd, IOMMU_IOAS_UNMAP, &cmd);
	if (!rc && b->split_id) {
		/* The devices' view (the split IOAS) goes too; its size must agree. */
		struct iommu_ioas_unmap un = {
			.size = sizeof(un), .ioas_id = b->split_id, .iova = iova, .length = len};
		int rc2 = vfd_ioctl(b->fd, IOMMU_IOAS_UNMAP, &un);
		if (rc2)
			return rc2;
		if (un.length != cmd.length)
			return -EIO;
	}
	return rc ? rc : (int64_t)cmd.length;
}

/*
 * Is [iova, iova + len) entirely mapped, with at least @prot?  iommufd has
 * no lookup, but IOAS_COPY of a range succeeds only if mappings cover it
 * without a hole, and refuses a writeable copy of read-only pages.  The copy
 * goes into a scratch IOAS with no device, so it pins nothing and costs one
 * call each way.  The memory behind the IOVA (@vaddr) cannot be checked.
 */
static int iommufd_probe(struct vfdma_domain *dom, uint64_t iova, uint64_t len, void *vaddr,
			 unsigned int prot)
{
	(void)vaddr;
	struct iommufd_be *b = be_of(dom);
	if (!b->scratch_id) {
		int rc = ioas_alloc(b, &b->scratch_id);
		if (rc)
			return rc;
	}
	struct iommu_ioas_copy cp = {
		.size = sizeof(cp),
		.flags = vfd_iommufd_map_flags(prot),
		.dst_ioas_id = b->scratch_id,
		.src_ioas_id = b->ioas_id,
		.length = len,
		.dst_iova = iova,
		.src_iova = iova,
	};
	int rc = vfd_ioctl(b->fd, IOMMU_IOAS_COPY, &cp);
	if (rc == -ENOENT || rc == -EPERM)
		return 0;
	if (rc)
		return rc;
	struct iommu_ioas_unmap un = {
		.size = sizeof(un),
		.ioas_id = b->scratch_id,
		.iova = iova,
		.length = len,
	};
	rc = vfd_ioctl(b->fd, IOMMU_IOAS_UNMAP, &un);
	if (rc) {
		/* Leave no stale copy behind: drop the scratch IOAS. */
		obj_destroy(b, b->scratch_id);
		b->scratch_id = 0;
	}
	return 1;
}

const struct vfd_backend_ops vfd_iommufd_ops = {
	.name = "iommufd",
	.kind = VFDMA_BACKEND_IOMMUFD,
	/*
	 * Whether the IOMMU tracks dirty pages is only known per device
	 * (IOMMU_GET_HW_INFO, in struct iommufd_dev): the domain offers it
	 * when every attached device has it (dirty_caps_get); the emulated
	 * VT-d of QEMU has none.  iommufd_dirty.c.
	 */
	.dirty_caps = VFDMA_DIRTY_CAP_HW | VFDMA_DIRTY_CAP_SPLIT,
	.dirty_caps_get = vfd_iommufd_dirty_caps,
	.dirty_start = vfd_iommufd_dirty_start,
	.dirty_stop = vfd_iommufd_dirty_stop,
	.dirty_read = vfd_iommufd_dirty_read,
	.open = iommufd_open,
	.close = iommufd_close,
	.device_attach = iommufd_device_attach,
	.device_detach = iommufd_device_detach,
	.query = iommufd_query,
	.map = iommufd_map,
	.unmap = iommufd_unmap,
	.probe = iommufd_probe,
};
