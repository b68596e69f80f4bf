/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dma-dpdk: a real device writes into DPDK memory through a vfdma domain.
 * The DPDK EAL is started in this process the way a vfdma user starts it
 * (--no-pci --iova-mode=va, here without hugepages), its memory attached to
 * the domain with libvfdma_dpdk; the first vfio NVMe, brought up with
 * app/nvme's driver core, runs Identify Controller into an rte_malloc()
 * buffer at the IOVA DPDK itself reports (rte_malloc_virt2iova), and the
 * data is checked.  After detach the same command must not reach the
 * buffer (the IOMMU blocks it: canary unchanged).
 */
#include <stdint.h>
#include <stdio.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#pragma GCC diagnostic pop

#include "nvme-guest.h"
#include "vfdma/dpdk.h"

#define K4 4096u
#define CANARY 0xa5
#define TMO_MS 3000

static bool eal_start(void)
{
	char *argv[] = {"dma-dpdk", "--no-pci", "--iova-mode=va", "--no-huge", "-m", "64",
			"--no-shconf", "--no-telemetry", "-l", "0", "--log-level", "lib.eal:4",
			NULL};
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	if (rte_eal_init(argc, argv) < 0) {
		vt_fail("eal_init", "%s", rte_strerror(rte_errno));
		return false;
	}
	if (rte_eal_iova_mode() != RTE_IOVA_VA) {
		vt_fail("eal_init", "IOVA mode %d, expected VA", rte_eal_iova_mode());
		return false;
	}
	vt_pass("eal_init");
	return true;
}

int main(void)
{
	if (!eal_start())
		return vt_exit_status();
	struct nvme_ctrl c;
	uint16_t vid, ssvid;
	struct vfdma_domain *d = vg_nvme_setup(&c, &vid, &ssvid);
	if (!d)
		return vt_exit_status();

	int rc = vfdma_dpdk_attach(d);
	uint64_t n = 0, bytes = 0;
	if (rc || vfdma_dpdk_get_stats(d, &n, &bytes) || !n) {
		vt_fail("dpdk_attach", "%s, %llu mappings", strerror(-rc), (unsigned long long)n);
	} else {
		printf("PASS dpdk_attach: %llu mappings, %llu MiB of EAL memory\n",
		       (unsigned long long)n, (unsigned long long)(bytes >> 20));
		fflush(stdout);
	}

	uint8_t *buf = rte_malloc("identify", K4, K4);
	if (!buf) {
		vt_fail("rte_malloc", "%s", rte_strerror(rte_errno));
		goto out;
	}
	memset(buf, CANARY, K4);
	uint64_t iova = rte_malloc_virt2iova(buf), ours = 0;
	if (vfdma_vaddr_to_iova(d, buf, &ours, NULL) || ours != iova)
		vt_fail("iova_is_dpdks", "vfdma 0x%llx, DPDK 0x%llx", (unsigned long long)ours,
			(unsigned long long)iova);
	else
		vt_pass("iova_is_dpdks");
	rc = nvme_identify_ctrl(&c, iova, TMO_MS);
	if (rc)
		vt_fail("identify_into_rte_malloc", "status %d", rc);
	else
		vg_identify_ok("identify_into_rte_malloc", buf, vid, ssvid, "vfdma0");

	/* Detached: the IOVA is no longer mapped, the device cannot write. */
	vt_check("dpdk_detach", vfdma_dpdk_detach(d) == 0);
	memset(buf, CANARY, K4);
	rc = nvme_identify_ctrl(&c, iova, TMO_MS);
	if (!vg_all(buf, K4, CANARY))
		vt_fail("blocked_after_detach", "host memory CHANGED (status %d)", rc);
	else if (rc < 0)
		vt_fail("blocked_after_detach", "no completion: %s", strerror(-rc));
	else
		vt_pass("blocked_after_detach");
	rte_free(buf);
out:
	vt_check("nvme_close", nvme_close(&c) == 0);
	vt_check("domain_close", vfdma_domain_close(d) == 0);
	rte_eal_cleanup();
	return vt_exit_status();
}
