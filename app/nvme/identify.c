/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_nvme_identify <bdf>: bring up the NVMe controller at <bdf> (bound to
 * vfio-pci) in a vfdma domain (backend from VFDMA_BACKEND, else auto) and
 * print its Identify Controller data: PCI IDs, serial and model number.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvme.h"

/* An ASCII field of the Identify data, trailing spaces removed. */
static void field(char *out, const uint8_t *id, size_t off, size_t len)
{
	memcpy(out, id + off, len);
	out[len] = '\0';
	for (size_t i = len; i > 0 && out[i - 1] == ' '; i--)
		out[i - 1] = '\0';
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s <pci address, e.g. 0000:01:00.0>\n", argv[0]);
		return 2;
	}
	struct vfdma_domain *dom = vfdma_domain_open(NULL);
	if (!dom) {
		fprintf(stderr, "vfdma_domain_open: %s\n", strerror(errno));
		return 1;
	}
	struct nvme_ctrl c;
	int rc = nvme_open(&c, dom, argv[1]);
	if (rc) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(-rc));
		vfdma_domain_close(dom);
		return 1;
	}
	uint8_t *id = NULL;
	uint64_t iova = 0;
	if (posix_memalign((void **)&id, 4096, 4096))
		rc = -ENOMEM;
	if (!rc)
		rc = vfdma_map(dom, id, 4096, VFDMA_PROT_WRITE | VFDMA_PROT_READ, 0, &iova);
	if (!rc)
		rc = nvme_identify_ctrl(&c, iova, 5000);
	if (rc) {
		fprintf(stderr, "Identify: %s\n", rc < 0 ? strerror(-rc) : "command failed");
	} else {
		char sn[NVME_ID_SN_LEN + 1], mn[NVME_ID_MN_LEN + 1];
		uint16_t vid, ssvid;
		memcpy(&vid, id + NVME_ID_VID, 2);
		memcpy(&ssvid, id + NVME_ID_SSVID, 2);
		field(sn, id, NVME_ID_SN, NVME_ID_SN_LEN);
		field(mn, id, NVME_ID_MN, NVME_ID_MN_LEN);
		printf("%s: backend %s, NVMe %u.%u, VID 0x%04x SSVID 0x%04x SN '%s' MN '%s'\n",
		       argv[1], vfdma_backend_name((enum vfdma_backend)vfdma_domain_backend(dom)),
		       c.vs >> 16, (c.vs >> 8) & 0xff, vid, ssvid, sn, mn);
	}
	if (iova)
		vfdma_unmap(dom, iova, 4096);
	nvme_close(&c);
	vfdma_domain_close(dom);
	free(id);
	return rc ? 1 : 0;
}
