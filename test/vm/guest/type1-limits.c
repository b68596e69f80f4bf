/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * type1-limits: the type1 container's mapping-count limit.  The spec boots
 * with vfio_iommu_type1.dma_entry_limit=LIMIT (passed as argv[1]); the
 * domain holds one device.  Checks:
 *  - 4 KiB maps one by one succeed until the kernel's count is used up,
 *    then fail with -ENOSPC, and the domain stays consistent (no broken
 *    flag, check() == 0, the failed map left nothing behind);
 *  - a batch that would need more entries than are left fails as a whole
 *    and rolls back (mapping count unchanged);
 *  - a batch of many adjacent runs is coalesced into one kernel mapping
 *    and succeeds even with a single entry left;
 *  - after unmapping, maps succeed again.
 */
#include <stdio.h>

#include "vfdma-guest.h"

#define K4 4096u

int main(int argc, char **argv)
{
	char bdf[32];
	unsigned limit = argc > 1 ? (unsigned)atoi(argv[1]) : 0;
	if (!limit || !vg_bdf(0, bdf)) {
		vt_fail("setup", "usage: type1-limits <dma_entry_limit>, with a vfio device");
		return vt_exit_status();
	}
	struct vfdma_domain *d = vg_domain();
	if (!d)
		return vt_exit_status();
	struct vfdma_device *dev = vfdma_device_open(d, bdf, 0);
	if (!vt_check("device_open", dev != NULL))
		return vt_exit_status();

	/* Every other page, so that nothing can be coalesced by accident. */
	size_t npages = 2 * (limit + 8);
	uint8_t *buf = vg_buf(npages * K4, 0);
	uint64_t *iova = calloc(limit + 8, sizeof(*iova));
	unsigned made = 0;
	int rc = 0;
	while (made < limit + 8) {
		rc = vfdma_map(d, buf + 2 * made * K4, K4, VFDMA_PROT_RW, 0, &iova[made]);
		if (rc)
			break;
		made++;
	}
	struct vfdma_domain_info info;
	vfdma_domain_get_info(d, &info);
	if (rc != -ENOSPC || made == 0 || made > limit || info.mappings != made || info.broken ||
	    vfdma_domain_check(d))
		vt_fail("limit_enospc", "%u maps then rc %d (limit %u); %llu mappings, broken %d",
			made, rc, limit, (unsigned long long)info.mappings, info.broken);
	else
		printf("PASS limit_enospc: %u maps, then -ENOSPC (limit %u); domain consistent\n",
		       made, limit), fflush(stdout);

	/* Free two entries; a batch of three separate runs must fail whole. */
	vfdma_unmap(d, iova[--made], K4);
	vfdma_unmap(d, iova[--made], K4);
	struct vfdma_map_run runs[3];
	for (int i = 0; i < 3; i++)
		runs[i] = (struct vfdma_map_run){buf + (2 * (made + (unsigned)i)) * K4, K4, 0};
	rc = vfdma_map_batch(d, runs, 3, VFDMA_PROT_RW, 0);
	vfdma_domain_get_info(d, &info);
	if (rc != -ENOSPC || info.mappings != made || vfdma_domain_check(d))
		vt_fail("batch_rollback", "rc %d, %llu mappings (expected %u)", rc,
			(unsigned long long)info.mappings, made);
	else
		vt_pass("batch_rollback");

	/* One entry left after this: 16 adjacent runs coalesce into one kernel mapping. */
	uint64_t one;
	vfdma_map(d, buf + 2 * made * K4, K4, VFDMA_PROT_RW, 0, &one);
	uint8_t *adj = vg_buf(16 * K4, 0);
	struct vfdma_map_run many[16];
	for (int i = 0; i < 16; i++)
		many[i] = (struct vfdma_map_run){adj + i * K4, K4, 0};
	uint64_t calls0 = info.kernel_map_calls;
	rc = vfdma_map_batch(d, many, 16, VFDMA_PROT_RW, 0);
	vfdma_domain_get_info(d, &info);
	if (rc)
		vt_fail("batch_coalesced", "rc %d", rc);
	else
		printf("PASS batch_coalesced: 16 runs in %llu kernel call(s) with one entry left\n",
		       (unsigned long long)(info.kernel_map_calls - calls0 - 1)), fflush(stdout);

	/* Full again; after an unmap, a map succeeds. */
	uint64_t x;
	int full = vfdma_map(d, adj, K4, VFDMA_PROT_RW, 0, &x);
	vfdma_unmap(d, one, K4);
	rc = vfdma_map(d, buf + 2 * made * K4, K4, VFDMA_PROT_RW, 0, &one);
	if (full != -ENOSPC || rc)
		vt_fail("map_after_unmap", "full %d, after unmap %d", full, rc);
	else
		vt_pass("map_after_unmap");

	vt_check("check", vfdma_domain_check(d) == 0);
	vt_check("domain_close", vfdma_domain_close(d) == 0);
	free(iova);
	free(buf);
	free(adj);
	return vt_exit_status();
}
