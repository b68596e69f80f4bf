/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * PCI device access through a VFIO device fd (include/vfdma/pci.h).  Every
 * VFIO backend leaves the device fd in dev->fd, so this file serves type1,
 * iommufd and noiommu alike; sim devices (dev->fd < 0) get -ENOTSUP.
 *
 * A VFIO device exposes its BARs and config space as regions of the device
 * fd: VFIO_DEVICE_GET_REGION_INFO gives each one's size, file offset and
 * whether it may be mmapped (possibly only in parts: the sparse-mmap
 * capability lists the parts, e.g. around an MSI-X table).  The region info
 * is read once per device and cached in dev->pci.  Interrupts are routed to
 * eventfds with VFIO_DEVICE_SET_IRQS.
 *
 * Arguments are checked before anything is touched, so a bad call changes
 * nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/vfio.h>

#include "iommu/domain.h"
#include "iommu/vfio.h"
#include "util/log.h"
#include "util/sys.h"
#include "vfdma/pci.h"

#define NR_REGIONS (VFIO_PCI_CONFIG_REGION_INDEX + 1) /* BAR0-5, ROM, config */

struct vfd_pci_region {
	uint64_t size;
	uint64_t offset; /* in the device fd */
	uint32_t flags;	 /* VFIO_REGION_INFO_FLAG_* */
	uint32_t nr_areas; /* sparse mmap: parts that may be mapped; 0: all of it */
	struct vfio_region_sparse_mmap_area *areas;
};

struct vfd_pci {
	pthread_mutex_t lock; /* BAR mapping and IRQ state */
	struct vfd_pci_region regions[NR_REGIONS];
};

/* Read the info of region @index, with its sparse-mmap capability. */
static int region_read(int fd, unsigned int index, struct vfd_pci_region *out)
{
	uint32_t argsz = sizeof(struct vfio_region_info);
	struct vfio_region_info *ri = NULL;
	int rc = -EIO;
	for (int tries = 0; tries < 4; tries++) {
		ri = vfd_calloc(1, argsz);
		if (!ri)
			return -ENOMEM;
		ri->argsz = argsz;
		ri->index = index;
		rc = vfd_ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, ri);
		if (rc || ri->argsz <= argsz)
			break;
		argsz = ri->argsz;
		vfd_free(ri);
		ri = NULL;
		rc = -EIO;
	}
	if (rc) {
		vfd_free(ri);
		return rc == -EINVAL ? 0 : rc; /* no such region: size 0 */
	}
	*out = (struct vfd_pci_region){.size = ri->size, .offset = ri->offset, .flags = ri->flags};
	if (ri->flags & VFIO_REGION_INFO_FLAG_CAPS) {
		uint32_t off = ri->cap_offset;
		for (int guard = 0; off && off + sizeof(struct vfio_info_cap_header) <= ri->argsz &&
				    guard < 64;
		     guard++) {
			struct vfio_info_cap_header *h = (void *)((char *)ri + off);
			if (h->id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
				struct vfio_region_info_cap_sparse_mmap *s = (void *)h;
				uint64_t need = off + sizeof(*s) + (uint64_t)s->nr_areas * sizeof(s->areas[0]);
				if (need > ri->argsz || !s->nr_areas)
					break;
				out->areas = vfd_calloc(s->nr_areas, sizeof(s->areas[0]));
				if (!out->areas) {
					vfd_free(ri);
					return -ENOMEM;
				}
				memcpy(out->areas, s->areas, s->nr_areas * sizeof(s->areas[0]));
				out->nr_areas = s->nr_areas;
				break;
			}
			off = h->next;
		}
	}
	vfd_free(ri);
	return 0;
}

static void pci_free(struct vfd_pci *p)
{
	for (int i = 0; i < NR_REGIONS; i++)
		vfd_free(p->regions[i].areas);
	pthread_mutex_destroy(&p->lock);
	vfd_free(p);
}

/*
 * The device's PCI state, read on first use.  Several threads may race to
 * create it: one wins, the others free theirs.
 */
static int pci_get(struct vfdma_device *dev, struct vfd_pci **out)
{
	if (!dev)
		return -EINVAL;
	if (dev->fd < 0)
		return -ENOTSUP;
	struct vfd_pci *p = __atomic_load_n(&dev->pci, __ATOMIC_ACQUIRE);
	if (p) {
		*out = p;
		return 0;
	}
	p = vfd_calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	for (unsigned i = 0; i < NR_REGIONS; i++) {
		int rc = region_read(dev->fd, i, &p->regions[i]);
		if (rc) {
			pci_free(p);
			return rc;
		}
	}
	struct vfd_pci *expected = NULL;
	if (!__atomic_compare_exchange_n(&dev->pci, &expected, p, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		pci_free(p);
		p = expected;
	}
	*out = p;
	return 0;
}

static int irq_index(enum vfdma_irq_type type)
{
	switch (type) {
	case VFDMA_IRQ_MSIX:
		return VFIO_PCI_MSIX_IRQ_INDEX;
	case VFDMA_IRQ_MSI:
		return VFIO_PCI_MSI_IRQ_INDEX;
	case VFDMA_IRQ_INTX:
		return VFIO_PCI_INTX_IRQ_INDEX;
	default:
		return -1;
	}
}

/* How many vectors of @type the device has (0: none). */
static int irq_count(int fd, enum vfdma_irq_type type, unsigned int *count)
{
	struct vfio_irq_info ii = {.argsz = sizeof(ii), .index = (uint32_t)irq_index(type)};
	int rc = vfd_ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, &ii);
	if (rc == -EINVAL) {
		*count = 0;
		return 0;
	}
	if (!rc)
		*count = ii.flags & VFIO_IRQ_INFO_EVENTFD ? ii.count : 0;
	return rc;
}

/* Switch the device's vectors of @type off in the kernel. */
static int irq_off(int fd, enum vfdma_irq_type type)
{
	struct vfio_irq_set s = {
		.argsz = sizeof(s),
		.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = (uint32_t)irq_index(type),
		.start = 0,
		.count = 0,
	};
	return vfd_ioctl(fd, VFIO_DEVICE_SET_IRQS, &s);
}

void vfd_pci_release(struct vfdma_device *dev)
{
	if (dev->fd >= 0 && dev->irq_type > 0 && irq_off(dev->fd, dev->irq_type))
		VFD_WARN("%s: could not disable interrupts before closing", dev->bdf);
	dev->irq_type = 0;
	if (dev->pci)
		pci_free(dev->pci);
	dev->pci = NULL;
}

int vfdma_device_get_info(struct vfdma_device *dev, struct vfdma_device_info *info)
{
	if (!dev || !info)
		return -EINVAL;
	struct vfdma_device_info o = {.numa_node = -1, .iommu_group = -1};
	snprintf(o.bdf, sizeof(o.bdf), "%s", dev->bdf);
	if (dev->fd < 0) { /* sim device: nothing more to tell */
		*info = o;
		return 0;
	}
	int64_t v;
	int rc = vfd_pci_sysfs_num(dev->bdf, "vendor", &v);
	if (!rc)
		o.vendor_id = (uint16_t)v;
	if (!rc)
		rc = vfd_pci_sysfs_num(dev->bdf, "device", &v);
	if (!rc)
		o.device_id = (uint16_t)v;
	if (!rc)
		rc = vfd_pci_sysfs_num(dev->bdf, "class", &v);
	if (!rc)
		o.class_code = (uint32_t)v;
	if (!rc && vfd_pci_sysfs_num(dev->bdf, "numa_node", &v) == 0)
		o.numa_node = (int)v;
	if (!rc) {
		int g;
		rc = vfd_pci_iommu_group(dev->bdf, &g);
		if (!rc)
			o.iommu_group = g;
		else if (rc == -ENOENT)
			rc = 0; /* no group (noiommu without one) */
	}
	if (!rc)
		rc = irq_count(dev->fd, VFDMA_IRQ_MSIX, &o.nr_irqs_msix);
	if (!rc)
		rc = irq_count(dev->fd, VFDMA_IRQ_MSI, &o.nr_irqs_msi);
	if (!rc)
		rc = irq_count(dev->fd, VFDMA_IRQ_INTX, &o.has_intx);
	struct vfio_device_info di = {.argsz = sizeof(di)};
	if (!rc)
		rc = vfd_ioctl(dev->fd, VFIO_DEVICE_GET_INFO, &di);
	if (rc)
		return rc;
	o.has_intx = !!o.has_intx;
	o.can_reset = !!(di.flags & VFIO_DEVICE_FLAGS_RESET);
	*info = o;
	return 0;
}

/*
 * Map region @r: reserve its whole length, then map over the reservation
 * either all of it or, with a sparse-mmap capability, only the parts the
 * kernel allows (the holes stay PROT_NONE).
 */
static int bar_mmap(int fd, const struct vfd_pci_region *r, void **out)
{
	int prot = (r->flags & VFIO_REGION_INFO_FLAG_READ ? PROT_READ : 0) |
		   (r->flags & VFIO_REGION_INFO_FLAG_WRITE ? PROT_WRITE : 0);
	if (!r->nr_areas)
		return vfd_mmap(out, NULL, r->size, prot, MAP_SHARED, fd, (off_t)r->offset);
	void *base;
	int rc = vfd_mmap(&base, NULL, r->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < r->nr_areas; i++) {
		const struct vfio_region_sparse_mmap_area *a = &r->areas[i];
		if (!a->size)
			continue;
		if (a->offset + a->size > r->size || a->offset + a->size < a->offset) {
			rc = -EIO;
			break;
		}
		void *got;
		rc = vfd_mmap(&got, (char *)base + a->offset, a->size, prot, MAP_SHARED | MAP_FIXED,
			      fd, (off_t)(r->offset + a->offset));
		if (rc)
			break;
	}
	if (rc) {
		vfd_munmap(base, r->size);
		return rc;
	}
	*out = base;
	return 0;
}

/* The device's region @index, which must exist (-ENOENT otherwise). */
static int region_get(struct vfdma_device *dev, unsigned int index, struct vfd_pci **pp,
		      const struct vfd_pci_region **rp)
{
	int rc = pci_get(dev, pp);
	if (rc)
		return rc;
	*rp = &(*pp)->regions[index];
	return (*rp)->size ? 0 : -ENOENT;
}

int vfdma_pci_bar_map(struct vfdma_device *dev, unsigned int bar, void **addr, uint64_t *len)
{
	if (!dev || bar > VFIO_PCI_BAR5_REGION_INDEX || !addr)
		return -EINVAL;
	struct vfd_pci *p;
	const struct vfd_pci_region *r;
	int rc = region_get(dev, bar, &p, &r);
	if (rc)
		return rc;
	if (!(r->flags & VFIO_REGION_INFO_FLAG_MMAP))
		return -ENOTSUP;
	pthread_mutex_lock(&p->lock);
	if (!dev->bars[bar].addr) {
		void *a;
		rc = bar_mmap(dev->fd, r, &a);
		if (!rc)
			dev->bars[bar] = (struct vfd_bar_map){.addr = a, .len = r->size};
	}
	if (!rc) {
		*addr = dev->bars[bar].addr;
		if (len)
			*len = dev->bars[bar].len;
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

/* pread/pwrite @len bytes at @off of region @index, range-checked. */
static int region_rw(struct vfdma_device *dev, unsigned int index, uint64_t off, void *buf,
		     size_t len, bool write)
{
	if (!dev || !buf || !len)
		return -EINVAL;
	struct vfd_pci *p;
	const struct vfd_pci_region *r;
	int rc = region_get(dev, index, &p, &r);
	if (rc)
		return rc;
	if (off >= r->size || len > r->size - off)
		return -ERANGE;
	if (!(r->flags & (write ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ)))
		return -EACCES;
	ssize_t n = write ? vfd_pwrite(dev->fd, buf, len, (off_t)(r->offset + off))
			  : vfd_pread(dev->fd, buf, len, (off_t)(r->offset + off));
	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

int vfdma_pci_bar_read(struct vfdma_device *dev, unsigned int bar, uint64_t off, void *buf,
		       size_t len)
{
	if (bar > VFIO_PCI_BAR5_REGION_INDEX)
		return -EINVAL;
	return region_rw(dev, bar, off, buf, len, false);
}

int vfdma_pci_bar_write(struct vfdma_device *dev, unsigned int bar, uint64_t off,
			const void *buf, size_t len)
{
	if (bar > VFIO_PCI_BAR5_REGION_INDEX)
		return -EINVAL;
	return region_rw(dev, bar, off, (void *)buf, len, true);
}

int vfdma_pci_cfg_read(struct vfdma_device *dev, uint64_t off, void *buf, size_t len)
{
	return region_rw(dev, VFIO_PCI_CONFIG_REGION_INDEX, off, buf, len, false);
}

int vfdma_pci_cfg_write(struct vfdma_device *dev, uint64_t off, const void *buf, size_t len)
{
	return region_rw(dev, VFIO_PCI_CONFIG_REGION_INDEX, off, (void *)buf, len, true);
}

/* Route @nvec vectors of @type to new eventfds; all or nothing. */
static int irq_on(struct vfdma_device *dev, enum vfdma_irq_type type, unsigned int nvec,
		  int *efds)
{
	unsigned int have;
	int rc = irq_count(dev->fd, type, &have);
	if (rc)
		return rc;
	if (have < nvec)
		return -ENOTSUP;
	size_t sz = sizeof(struct vfio_irq_set) + nvec * sizeof(int32_t);
	struct vfio_irq_set *s = vfd_calloc(1, sz);
	int *fds = vfd_calloc(nvec, sizeof(int));
	if (!s || !fds) {
		vfd_free(s);
		vfd_free(fds);
		return -ENOMEM;
	}
	unsigned int made = 0;
	for (; made < nvec; made++) {
		rc = vfd_eventfd(0, 0);
		if (rc < 0)
			break;
		fds[made] = rc;
		rc = 0;
	}
	if (!rc) {
		*s = (struct vfio_irq_set){
			.argsz = (uint32_t)sz,
			.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			.index = (uint32_t)irq_index(type),
			.start = 0,
			.count = nvec,
		};
		memcpy(s->data, fds, nvec * sizeof(int32_t));
		rc = vfd_ioctl(dev->fd, VFIO_DEVICE_SET_IRQS, s);
	}
	vfd_free(s);
	if (rc) {
		for (unsigned int i = 0; i < made; i++)
			vfd_close(fds[i]);
		vfd_free(fds);
		return rc;
	}
	memcpy(efds, fds, nvec * sizeof(int));
	dev->irq_fds = fds;
	dev->nr_irq_fds = nvec;
	dev->irq_type = type;
	return 0;
}

int vfdma_pci_irq_enable(struct vfdma_device *dev, enum vfdma_irq_type type, unsigned int nvec,
			 int *efds)
{
	if (!dev || !efds || !nvec || (unsigned)type > VFDMA_IRQ_INTX ||
	    (type == VFDMA_IRQ_INTX && nvec != 1))
		return -EINVAL;
	struct vfd_pci *p;
	int rc = pci_get(dev, &p);
	if (rc)
		return rc;
	pthread_mutex_lock(&p->lock);
	if (dev->irq_type > 0) {
		rc = -EBUSY;
	} else if (type != VFDMA_IRQ_AUTO) {
		rc = irq_on(dev, type, nvec, efds);
	} else {
		/* MSI-X, then MSI, then INTx (one vector only). */
		static const enum vfdma_irq_type order[] = {VFDMA_IRQ_MSIX, VFDMA_IRQ_MSI,
							    VFDMA_IRQ_INTX};
		rc = -ENOTSUP;
		for (unsigned i = 0; i < 3 && rc == -ENOTSUP; i++) {
			if (order[i] == VFDMA_IRQ_INTX && nvec != 1)
				break;
			rc = irq_on(dev, order[i], nvec, efds);
		}
	}
	if (!rc)
		rc = dev->irq_type;
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int vfdma_pci_irq_disable(struct vfdma_device *dev)
{
	struct vfd_pci *p;
	int rc = pci_get(dev, &p);
	if (rc)
		return rc;
	pthread_mutex_lock(&p->lock);
	if (dev->irq_type > 0) {
		rc = irq_off(dev->fd, dev->irq_type);
		if (!rc) {
			for (unsigned i = 0; i < dev->nr_irq_fds; i++)
				vfd_close(dev->irq_fds[i]);
			vfd_free(dev->irq_fds);
			dev->irq_fds = NULL;
			dev->nr_irq_fds = 0;
			dev->irq_type = 0;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int vfdma_pci_reset(struct vfdma_device *dev)
{
	if (!dev)
		return -EINVAL;
	if (dev->fd < 0)
		return -ENOTSUP;
	struct vfio_device_info di = {.argsz = sizeof(di)};
	int rc = vfd_ioctl(dev->fd, VFIO_DEVICE_GET_INFO, &di);
	if (rc)
		return rc;
	if (!(di.flags & VFIO_DEVICE_FLAGS_RESET))
		return -ENOTSUP;
	return vfd_ioctl(dev->fd, VFIO_DEVICE_RESET, NULL);
}
