/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nvme-guest.h - helpers for the guest programs that drive an NVMe
 * controller with app/nvme's driver core (dma-nvme, dma-memory, dma-dpdk).
 * Header-only, like vmtest.h.
 */
#ifndef VFDMA_NVME_GUEST_H
#define VFDMA_NVME_GUEST_H

#include <stdint.h>
#include <stdio.h>

#include "nvme.h"
#include "vfdma-guest.h"

/* Identify data as QEMU's NVMe reports it for serial @serial. */
static inline bool vg_identify_ok(const char *check, const uint8_t *id, uint16_t vid, uint16_t ssvid,
			const char *serial)
{
	uint16_t v, s;
	memcpy(&v, id + NVME_ID_VID, 2);
	memcpy(&s, id + NVME_ID_SSVID, 2);
	char sn[NVME_ID_SN_LEN + 1];
	memcpy(sn, id + NVME_ID_SN, NVME_ID_SN_LEN);
	sn[NVME_ID_SN_LEN] = '\0';
	for (int i = NVME_ID_SN_LEN - 1; i >= 0 && sn[i] == ' '; i--)
		sn[i] = '\0';
	if (v != vid || s != ssvid || strcmp(sn, serial)) {
		vt_fail(check, "VID 0x%04x SSVID 0x%04x SN '%s'; expected 0x%04x 0x%04x '%s'", v, s,
			sn, vid, ssvid, serial);
		return false;
	}
	char mn[NVME_ID_MN_LEN + 1];
	memcpy(mn, id + NVME_ID_MN, NVME_ID_MN_LEN);
	mn[NVME_ID_MN_LEN] = '\0';
	printf("PASS %s: VID 0x%04x SSVID 0x%04x SN '%s' MN '%.20s'\n", check, v, s, sn, mn);
	fflush(stdout);
	return true;
}

/* The vendor and subsystem vendor IDs in @dev's config space. */
static inline void vg_pci_ids(struct vfdma_device *dev, uint16_t *vid, uint16_t *ssvid)
{
	*vid = *ssvid = 0;
	vfdma_pci_cfg_read(dev, 0x00, vid, 2);
	vfdma_pci_cfg_read(dev, 0x2c, ssvid, 2);
}

/*
 * The usual start of a test on the first vfio NVMe: the domain the harness
 * asks for, the controller brought up in it (@c), its PCI IDs for the
 * Identify check.  NULL (after a FAIL line) if any step failed.
 */
static inline struct vfdma_domain *vg_nvme_setup(struct nvme_ctrl *c, uint16_t *vid,
						 uint16_t *ssvid)
{
	char bdf[32];
	if (!vg_bdf(0, bdf)) {
		vt_fail("setup", "no device in $VFDMA_VFIO_BDFS");
		return NULL;
	}
	struct vfdma_domain *d = vg_domain();
	if (!d)
		return NULL;
	int rc = nvme_open(c, d, bdf);
	if (rc) {
		vt_fail("nvme_open", "%s: %s", bdf, strerror(-rc));
		vfdma_domain_close(d);
		return NULL;
	}
	vt_pass("nvme_open");
	vg_pci_ids(c->dev, vid, ssvid);
	return d;
}

#endif
