/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * two-nvme: two NVMe controllers in one domain both DMA into the same
 * mapped buffer area (one mapping of 8 KiB: controller 0 writes its
 * Identify data into the first page, controller 1 into the second, then
 * both into the same page in turn).  Closing one controller leaves the
 * other working, with the mapping in place; after the last device is gone
 * a new open of the first controller still sees the mapping (type1: the
 * core replays it into the new container state).
 */
#include <stdio.h>

#include "nvme.h"
#include "vfdma-guest.h"

#define K4 4096u
#define TMO_MS 3000

static bool serial_is(const uint8_t *id, const char *want)
{
	char sn[NVME_ID_SN_LEN + 1];
	memcpy(sn, id + NVME_ID_SN, NVME_ID_SN_LEN);
	sn[NVME_ID_SN_LEN] = '\0';
	for (int i = NVME_ID_SN_LEN - 1; i >= 0 && sn[i] == ' '; i--)
		sn[i] = '\0';
	if (strcmp(sn, want))
		printf("# serial '%s', expected '%s'\n", sn, want);
	return !strcmp(sn, want);
}

static void identify(const char *check, struct nvme_ctrl *c, uint64_t iova, uint8_t *page,
		     const char *serial)
{
	memset(page, 0xa5, K4);
	int rc = nvme_identify_ctrl(c, iova, TMO_MS);
	if (rc)
		vt_fail(check, "status/errno %d", rc);
	else if (!serial_is(page, serial))
		vt_fail(check, "wrong data");
	else
		vt_pass(check);
}

int main(void)
{
	char bdf0[32], bdf1[32];
	if (!vg_bdf(0, bdf0) || !vg_bdf(1, bdf1)) {
		vt_fail("setup", "two devices needed in $VFDMA_VFIO_BDFS");
		return vt_exit_status();
	}
	int fds0 = vg_nr_fds();
	struct vfdma_domain *d = vg_domain();
	if (!d)
		return vt_exit_status();
	struct nvme_ctrl c0, c1;
	int rc = nvme_open(&c0, d, bdf0);
	if (!vt_check("open_0", rc == 0))
		return vt_exit_status();
	rc = nvme_open(&c1, d, bdf1);
	if (!vt_check("open_1", rc == 0))
		return vt_exit_status();
	struct vfdma_domain_info info;
	vfdma_domain_get_info(d, &info);
	if (info.nr_devices != 2)
		vt_fail("two_devices", "%u devices in the domain", info.nr_devices);
	else
		vt_pass("two_devices");

	uint8_t *buf = vg_buf(2 * K4, 0xa5);
	uint64_t iova;
	vt_check("map", vfdma_map(d, buf, 2 * K4, VFDMA_PROT_RW, 0, &iova) == 0);
	identify("dma_0_page0", &c0, iova, buf, "vfdma0");
	identify("dma_1_page1", &c1, iova + K4, buf + K4, "vfdma1");
	identify("dma_1_page0", &c1, iova, buf, "vfdma1");
	identify("dma_0_page1", &c0, iova + K4, buf + K4, "vfdma0");

	vt_check("close_0", nvme_close(&c0) == 0);
	identify("dma_1_after_close_0", &c1, iova, buf, "vfdma1");
	vt_check("check_after_close_0", vfdma_domain_check(d) == 0);

	vt_check("close_1", nvme_close(&c1) == 0);
	/* No device: the mapping lives on in the table; a new device sees it. */
	rc = nvme_open(&c0, d, bdf0);
	if (vt_check("reopen_0", rc == 0)) {
		identify("dma_0_after_reopen", &c0, iova + K4, buf + K4, "vfdma0");
		vt_check("check_after_reopen", vfdma_domain_check(d) == 0);
		vt_check("close_0_again", nvme_close(&c0) == 0);
	}
	vt_check("unmap", vfdma_unmap(d, iova, 2 * K4) == 0);
	rc = vfdma_domain_close(d);
	int fds1 = vg_nr_fds();
	if (rc || fds0 != fds1)
		vt_fail("domain_close", "rc %d, fds %d before, %d after", rc, fds0, fds1);
	else
		vt_pass("domain_close");
	free(buf);
	return vt_exit_status();
}
