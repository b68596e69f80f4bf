/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The type1 backend: a VFIO container (/dev/vfio/vfio) per domain with the
 * devices' IOMMU groups in it, VFIO_TYPE1v2_IOMMU.
 *
 * The IOMMU exists only while a group is in the container, so the backend
 * is not ready before the first device: the core records maps meanwhile and
 * replays them when the first attach sets be_ready.  When the last group
 * leaves, the kernel drops the IOMMU with every mapping; be_ready goes back
 * to false and the core's table survives for the next attach.
 *
 * The kernel limits the number of mappings (vfio_dma entries) per container
 * (module parameter vfio_iommu_type1.dma_entry_limit, 65535 by default;
 * the DMA_AVAIL capability says how many are left).  The core coalesces
 * batches into as few runs as it can; past the limit MAP_DMA fails with
 * -ENOSPC, which we pass on (the core rolls the call back), with one log
 * line naming the limit.
 *
 * type1 cannot list its mappings, so probe tries to map one page at each
 * end of the range: EEXIST means something is mapped there (which vaddr
 * and permissions it has, type1 cannot tell).  A probe map that succeeds
 * is unmapped at once; it only ever targets IOVAs the core's table says
 * are mapped to that very memory, so it exposes nothing new.
 */
#include <errno.h>

#include <linux/vfio.h>

#include "iommu/domain.h"
#include "iommu/vfio.h"
#include "util/log.h"
#include "util/sys.h"

struct type1_be {
	struct vfd_container c;
	uint32_t dma_avail; /* from the last GET_INFO; UINT32_MAX if not reported */
};

static struct type1_be *type1_of(struct vfdma_domain *dom)
{
	return dom->be;
}

/*
 * Before the first group the kernel cannot tell the ranges, and the core
 * only ever narrows them (an attach intersects), while the allocator hands
 * out IOVAs from the top.  So start with the narrowest aperture in common
 * use, 39 bits (VT-d with 3-level tables, QEMU's emulated VT-d), less the
 * x86 MSI window: maps made before the first attach then stay inside any
 * real aperture.  Same choice as the iommufd backend.
 */
#define NODEV_IOVA_BITS 39
static const struct vfdma_iova_range initial_ranges[] = {
#if defined(__x86_64__) || defined(__i386__)
	{0, 0xfedfffffull},
	{0xfef00000ull, (1ull << NODEV_IOVA_BITS) - 1},
#else
	{0, (1ull << NODEV_IOVA_BITS) - 1},
#endif
};

static int type1_open(struct vfdma_domain *dom)
{
	struct type1_be *t = vfd_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	int rc = vfd_container_open(&t->c, VFIO_TYPE1v2_IOMMU, "");
	if (!rc)
		rc = vfd_domain_set_ranges(dom, initial_ranges,
					   sizeof(initial_ranges) / sizeof(initial_ranges[0]));
	if (rc) {
		vfd_container_close(&t->c);
		vfd_free(t);
		return rc;
	}
	t->dma_avail = UINT32_MAX;
	dom->be = t;
	/* Every size from 4 KiB up, until the kernel says which. */
	dom->pgsizes = ~0xfffull;
	dom->be_ready = false;
	return 0;
}

static void type1_close(struct vfdma_domain *dom)
{
	struct type1_be *t = type1_of(dom);
	vfd_container_close(&t->c);
	vfd_free(t);
	dom->be = NULL;
}

static int type1_attach(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	int rc = vfd_container_attach(&type1_of(dom)->c, dev);
	if (!rc)
		dom->be_ready = true;
	return rc;
}

static void type1_detach(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	if (!vfd_container_detach(&type1_of(dom)->c, dev))
		dom->be_ready = false;
}

/* VFIO_IOMMU_GET_INFO with its capability chain, in a buffer of ours. */
static int get_info(struct type1_be *t, struct vfio_iommu_type1_info **out)
{
	uint32_t argsz = sizeof(struct vfio_iommu_type1_info);
	for (int tries = 0; tries < 4; tries++) {
		struct vfio_iommu_type1_info *info = vfd_calloc(1, argsz);
		if (!info)
			return -ENOMEM;
		info->argsz = argsz;
		int rc = vfd_ioctl(t->c.fd, VFIO_IOMMU_GET_INFO, info);
		if (rc) {
			vfd_free(info);
			return rc;
		}
		if (info->argsz <= argsz) {
			*out = info;
			return 0;
		}
		argsz = info->argsz; /* the capabilities need more room */
		vfd_free(info);
	}
	return -EIO;
}

static int type1_query(struct vfdma_domain *dom, struct vfdma_iova_range **ranges, size_t *n,
		       uint64_t *pgsizes)
{
	struct type1_be *t = type1_of(dom);
	struct vfio_iommu_type1_info *info;
	int rc = get_info(t, &info);
	if (rc)
		return rc;
	*pgsizes = info->flags & VFIO_IOMMU_INFO_PGSIZES ? info->iova_pgsizes : ~0xfffull;
	const struct vfio_iova_range *kr = NULL;
	uint32_t nk = 0;
	t->dma_avail = UINT32_MAX;
	if (info->flags & VFIO_IOMMU_INFO_CAPS) {
		uint32_t off = info->cap_offset;
		/* Each header's next is an offset from the start of info. */
		for (int guard = 0; off && off + sizeof(struct vfio_info_cap_header) <= info->argsz &&
				    guard < 64;
		     guard++) {
			struct vfio_info_cap_header *h = (void *)((char *)info + off);
			if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
				struct vfio_iommu_type1_info_cap_iova_range *r = (void *)h;
				if (off + sizeof(*r) + (uint64_t)r->nr_iovas * sizeof(r->iova_ranges[0]) <=
				    info->argsz) {
					kr = r->iova_ranges;
					nk = r->nr_iovas;
				}
			} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
				t->dma_avail = ((struct vfio_iommu_type1_info_dma_avail *)h)->avail;
			}
			off = h->next;
		}
	}
	size_t cnt = kr ? nk : 1;
	struct vfdma_iova_range *r = vfd_calloc(cnt ? cnt : 1, sizeof(*r));
	if (!r) {
		vfd_free(info);
		return -ENOMEM;
	}
	if (kr) {
		for (uint32_t i = 0; i < nk; i++)
			r[i] = (struct vfdma_iova_range){kr[i].start, kr[i].end};
	} else {
		r[0] = (struct vfdma_iova_range){0, UINT64_MAX}; /* kernels before 5.4 */
	}
	VFD_DBG("type1: %zu usable ranges, page sizes 0x%llx, %u mappings left", cnt,
		(unsigned long long)*pgsizes, t->dma_avail);
	vfd_free(info);
	*ranges = r;
	*n = cnt;
	return 0;
}

static int dma_map(struct type1_be *t, uint64_t iova, void *vaddr, uint64_t len,
		   unsigned int prot)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = (prot & VFDMA_PROT_READ ? VFIO_DMA_MAP_FLAG_READ : 0) |
			 (prot & VFDMA_PROT_WRITE ? VFIO_DMA_MAP_FLAG_WRITE : 0),
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = len,
	};
	return vfd_ioctl(t->c.fd, VFIO_IOMMU_MAP_DMA, &m);
}

static int64_t dma_unmap(struct type1_be *t, uint64_t iova, uint64_t len)
{
	struct vfio_iommu_type1_dma_unmap u = {.argsz = sizeof(u), .iova = iova, .size = len};
	int rc = vfd_ioctl(t->c.fd, VFIO_IOMMU_UNMAP_DMA, &u);
	return rc ? rc : (int64_t)u.size;
}

static int type1_map(struct vfdma_domain *dom, uint64_t iova, void *vaddr, uint64_t len,
		     unsigned int prot)
{
	int rc = dma_map(type1_of(dom), iova, vaddr, len, prot);
	if (rc == -ENOSPC)
		VFD_LOG_ONCE(VFDMA_LOG_ERROR,
			     "type1: the container's mapping limit is reached "
			     "(vfio_iommu_type1.dma_entry_limit); map larger runs or raise it");
	return rc == -EEXIST ? -EBUSY : rc;
}

static int64_t type1_unmap(struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	return dma_unmap(type1_of(dom), iova, len);
}

/* 1: something is mapped at the page @iova; 0: nothing; negative errno. */
static int probe_page(struct type1_be *t, uint64_t iova, void *vaddr, unsigned int prot)
{
	int rc = dma_map(t, iova, vaddr, 4096, prot);
	if (rc == -EEXIST)
		return 1;
	if (rc == -ENOSPC)
		return 0; /* the kernel checks overlaps first: nothing there */
	if (rc)
		return rc;
	int64_t got = dma_unmap(t, iova, 4096);
	return got == 4096 ? 0 : got < 0 ? (int)got : -EIO;
}

static int type1_probe(struct vfdma_domain *dom, uint64_t iova, uint64_t len, void *vaddr,
		       unsigned int prot)
{
	struct type1_be *t = type1_of(dom);
	int rc = probe_page(t, iova, vaddr, prot);
	if (rc == 1 && len > 4096)
		rc = probe_page(t, iova + len - 4096, (char *)vaddr + len - 4096, prot);
	return rc;
}

const struct vfd_backend_ops vfd_type1_ops = {
	.name = "type1",
	.kind = VFDMA_BACKEND_TYPE1,
	.dirty_caps = 0, /* VFIO_IOMMU_DIRTY_PAGES: with the dirty-log issue */
	.open = type1_open,
	.close = type1_close,
	.device_attach = type1_attach,
	.device_detach = type1_detach,
	.query = type1_query,
	.map = type1_map,
	.unmap = type1_unmap,
	.probe = type1_probe,
};
