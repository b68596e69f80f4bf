/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * noiommu-nvme: the noiommu backend on a guest without an IOMMU
 * (intel_iommu=off, vfio.enable_unsafe_noiommu_mode=1).  A domain opened
 * with VFDMA_BACKEND_NOIOMMU takes the NVMe's no-IOMMU group; memory must
 * be hugepage memory and its IOVA is its physical address (checked against
 * /proc/self/pagemap here); Identify Controller into it returns the
 * controller's data.  Ordinary (non-hugepage) memory is refused with
 * -EINVAL and leaves the domain as it was.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nvme.h"
#include "vfdma-guest.h"

#define K4 4096u
#define M2 (2u << 20)

static uint64_t phys(const void *va)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t e = 0;
	if (fd >= 0 && pread(fd, &e, 8, (off_t)((uintptr_t)va / K4 * 8)) != 8)
		e = 0;
	if (fd >= 0)
		close(fd);
	return (e & (1ull << 63)) ? (e & ((1ull << 55) - 1)) * K4 : 0;
}

int main(void)
{
	char bdf[32];
	if (!vg_bdf(0, bdf)) {
		vt_fail("setup", "no device in $VFDMA_VFIO_BDFS");
		return vt_exit_status();
	}
	struct vfdma_domain_opts o = {.backend = VFDMA_BACKEND_NOIOMMU};
	struct vfdma_domain *d = vfdma_domain_open(&o);
	if (!vt_check("domain_open", d != NULL))
		return vt_exit_status();

	struct nvme_ctrl c;
	int rc = nvme_open(&c, d, bdf);
	if (rc) {
		vt_fail("nvme_open", "%s: %s", bdf, strerror(-rc));
		return vt_exit_status();
	}
	struct vfdma_device_info info;
	vfdma_device_get_info(c.dev, &info);
	printf("PASS nvme_open: %s, no-IOMMU group %d\n", bdf, info.iommu_group), fflush(stdout);

	uint8_t *huge = mmap(NULL, M2, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	if (!vt_check("hugepage", huge != MAP_FAILED))
		return vt_exit_status();
	memset(huge, 0xa5, M2);
	uint64_t iova = 0;
	rc = vfdma_map(d, huge + K4, K4, VFDMA_PROT_RW, 0, &iova);
	uint64_t pa = phys(huge + K4);
	if (rc || !pa || iova != pa)
		vt_fail("map_is_phys", "rc %d, iova 0x%llx, physical 0x%llx", rc,
			(unsigned long long)iova, (unsigned long long)pa);
	else
		printf("PASS map_is_phys: iova = physical address 0x%llx\n", (unsigned long long)pa),
			fflush(stdout);

	rc = nvme_identify_ctrl(&c, iova, 3000);
	char sn[NVME_ID_SN_LEN + 1];
	memcpy(sn, huge + K4 + NVME_ID_SN, NVME_ID_SN_LEN);
	sn[NVME_ID_SN_LEN] = '\0';
	if (rc || strncmp(sn, "vfdma0 ", 7))
		vt_fail("identify", "status/errno %d, serial '%s'", rc, sn);
	else
		vt_pass("identify");
	vt_check("neighbours_untouched", vg_all(huge, K4, 0xa5) && vg_all(huge + 2 * K4, K4, 0xa5));

	/* Ordinary memory: refused, nothing changes. */
	struct vfdma_domain_info before, after;
	vfdma_domain_get_info(d, &before);
	uint8_t *small = vg_buf(4 * K4, 0);
	uint64_t x;
	rc = vfdma_map(d, small, 4 * K4, VFDMA_PROT_RW, 0, &x);
	vfdma_domain_get_info(d, &after);
	if (rc != -EINVAL || after.mappings != before.mappings || vfdma_domain_check(d))
		vt_fail("non_huge_refused", "rc %d, mappings %llu -> %llu", rc,
			(unsigned long long)before.mappings, (unsigned long long)after.mappings);
	else
		vt_pass("non_huge_refused");

	vt_check("check", vfdma_domain_check(d) == 0);
	vt_check("unmap", vfdma_unmap(d, iova, K4) == 0);
	vt_check("nvme_close", nvme_close(&c) == 0);
	vt_check("domain_close", vfdma_domain_close(d) == 0);
	munmap(huge, M2);
	free(small);
	return vt_exit_status();
}
