/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The noiommu backend: VFIO's no-IOMMU mode (vfio.enable_unsafe_noiommu_mode=1,
 * groups /dev/vfio/noiommu-N, VFIO_NOIOMMU_IOMMU).  There is no translation:
 * the device sees physical addresses, so a mapping's IOVA is the physical
 * address of its memory (choose_iova, from /proc/self/pagemap), and "map"
 * makes no kernel call.  Nothing protects the rest of memory from the device.
 *
 * Only physically contiguous hugepage memory is accepted: it is locked here
 * (mlock, so its pages are present and never swapped) and a hugetlb page
 * does not move while it is mapped and locked.  The memory stays locked
 * after unmap (another mapping may share it).  Reading PFNs from pagemap
 * needs CAP_SYS_ADMIN, which no-IOMMU VFIO needs anyway (CAP_SYS_RAWIO).
 *
 * Never picked by VFDMA_BACKEND_AUTO; opening it logs a warning.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include <linux/vfio.h>

#include "iommu/domain.h"
#include "iommu/vfio.h"
#include "util/log.h"
#include "util/sys.h"

#define PM_PRESENT (1ull << 63)
#define PM_PFN_MASK ((1ull << 55) - 1)
#define KPF_HUGE_BIT 17 /* linux/kernel-page-flags.h */
#define PAGE_4K 4096ull

struct noiommu_be {
	struct vfd_container c;
};

static struct noiommu_be *noiommu_of(struct vfdma_domain *dom)
{
	return dom->be;
}

static int noiommu_open(struct vfdma_domain *dom)
{
	struct noiommu_be *n = vfd_calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	int rc = vfd_container_open(&n->c, VFIO_NOIOMMU_IOMMU, "noiommu-");
	/* Physical addresses: 52 bits is the x86-64 and arm64 architectural limit. */
	const struct vfdma_iova_range all = {0, (1ull << 52) - 1};
	if (!rc)
		rc = vfd_domain_set_ranges(dom, &all, 1);
	if (rc) {
		vfd_container_close(&n->c);
		vfd_free(n);
		return rc;
	}
	VFD_LOG_ONCE(VFDMA_LOG_WARN,
		     "noiommu backend: devices get PHYSICAL addresses and can reach ALL memory; "
		     "no isolation, no protection.  Use type1 or iommufd wherever an IOMMU exists");
	dom->be = n;
	dom->pgsizes = ~(PAGE_4K - 1);
	dom->be_ready = true; /* nothing to program: maps can be made before any device */
	return 0;
}

static void noiommu_close(struct vfdma_domain *dom)
{
	vfd_container_close(&noiommu_of(dom)->c);
	vfd_free(dom->be);
	dom->be = NULL;
}

static int noiommu_attach(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	return vfd_container_attach(&noiommu_of(dom)->c, dev);
}

static void noiommu_detach(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	vfd_container_detach(&noiommu_of(dom)->c, dev);
}

static int noiommu_query(struct vfdma_domain *dom, struct vfdma_iova_range **ranges, size_t *n,
			 uint64_t *pgsizes)
{
	*ranges = vfd_calloc(dom->nr_ranges, sizeof(**ranges));
	if (!*ranges)
		return -ENOMEM;
	for (size_t i = 0; i < dom->nr_ranges; i++)
		(*ranges)[i] = dom->ranges[i];
	*n = dom->nr_ranges;
	*pgsizes = ~(PAGE_4K - 1);
	return 0;
}

/*
 * The physical address of [va, va + len) if it is one contiguous run of
 * present pages, else -EINVAL (-EPERM if pagemap hides PFNs from us).
 */
static int phys_of(uintptr_t va, uint64_t len, uint64_t *pa)
{
	int fd = vfd_open("/proc/self/pagemap", O_RDONLY, 0);
	if (fd < 0)
		return fd;
	uint64_t ent[64], first = 0;
	int rc = 0;
	for (uint64_t off = 0; off < len && !rc;) {
		uint64_t pages = (len - off) / PAGE_4K;
		if (pages > 64)
			pages = 64;
		ssize_t got = vfd_pread(fd, ent, pages * 8, (off_t)((va + off) / PAGE_4K * 8));
		if (got != (ssize_t)(pages * 8)) {
			rc = got < 0 ? (int)got : -EIO;
			break;
		}
		for (uint64_t i = 0; i < pages; i++, off += PAGE_4K) {
			uint64_t pfn = ent[i] & PM_PFN_MASK;
			if (!(ent[i] & PM_PRESENT)) {
				rc = -EINVAL;
				break;
			}
			if (!pfn) {
				VFD_ERR("noiommu: /proc/self/pagemap hides PFNs (needs CAP_SYS_ADMIN)");
				rc = -EPERM;
				break;
			}
			if (!off)
				first = pfn;
			else if (pfn != first + off / PAGE_4K) {
				rc = -EINVAL; /* not physically contiguous */
				break;
			}
		}
	}
	vfd_close(fd);
	if (!rc)
		*pa = first * PAGE_4K;
	return rc;
}

/* Is the page frame @pfn part of a hugetlb page?  1, 0 or negative errno. */
static int pfn_is_huge(uint64_t pfn)
{
	int fd = vfd_open("/proc/kpageflags", O_RDONLY, 0);
	if (fd < 0)
		return fd;
	uint64_t flags = 0;
	ssize_t got = vfd_pread(fd, &flags, 8, (off_t)(pfn * 8));
	vfd_close(fd);
	if (got != 8)
		return got < 0 ? (int)got : -EIO;
	return (flags >> KPF_HUGE_BIT) & 1;
}

static int noiommu_choose_iova(struct vfdma_domain *dom, void *vaddr, uint64_t len,
			       uint64_t *iova)
{
	(void)dom;
	int rc = vfd_mlock(vaddr, len); /* faults the pages in and keeps them */
	uint64_t pa = 0;
	if (!rc)
		rc = phys_of((uintptr_t)vaddr, len, &pa);
	if (!rc) {
		rc = pfn_is_huge(pa / PAGE_4K);
		rc = rc == 1 ? 0 : rc == 0 ? -EINVAL : rc;
		if (rc == -EINVAL)
			VFD_ERR("noiommu: %p is not hugepage memory", vaddr);
	} else if (rc == -EINVAL) {
		VFD_ERR("noiommu: %p + 0x%llx is not physically contiguous", vaddr,
			(unsigned long long)len);
	}
	if (!rc)
		*iova = pa;
	return rc;
}

static int noiommu_map(struct vfdma_domain *dom, uint64_t iova, void *vaddr, uint64_t len,
		       unsigned int prot)
{
	(void)dom;
	(void)prot; /* no IOMMU: no permissions either */
	uint64_t pa;
	int rc = phys_of((uintptr_t)vaddr, len, &pa);
	return rc ? rc : pa == iova ? 0 : -EINVAL;
}

static int64_t noiommu_unmap(struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	(void)dom;
	(void)iova;
	return (int64_t)len;
}

static int noiommu_probe(struct vfdma_domain *dom, uint64_t iova, uint64_t len, void *vaddr,
			 unsigned int prot)
{
	(void)dom;
	(void)prot;
	uint64_t pa;
	int rc = phys_of((uintptr_t)vaddr, len, &pa);
	if (rc == -EINVAL)
		return 0;
	return rc ? rc : pa == iova;
}

const struct vfd_backend_ops vfd_noiommu_ops = {
	.name = "noiommu",
	.kind = VFDMA_BACKEND_NOIOMMU,
	.open = noiommu_open,
	.close = noiommu_close,
	.device_attach = noiommu_attach,
	.device_detach = noiommu_detach,
	.query = noiommu_query,
	.map = noiommu_map,
	.unmap = noiommu_unmap,
	.choose_iova = noiommu_choose_iova,
	.probe = noiommu_probe,
};
