/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Admin commands (see nvme.h): Identify Controller, Identify Namespace,
 * the active namespace list, Set Features Number of Queues; and what a
 * controller needs besides its queues: MSI-X vectors, a DMA pool.
 *
 * Identify data lands in the controller's scratch page (the third page of
 * the admin queue memory, mapped on first use) and is parsed from there:
 * little-endian fields at the offsets of nvme_spec.h.
 */
#include "nvme.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE NVME_PAGE

int nvme_identify_ctrl(struct nvme_ctrl *c, uint64_t iova, uint32_t timeout_ms)
{
	struct nvme_sqe cmd = {
		.opc = NVME_ADMIN_IDENTIFY,
		.prp1 = iova,
		.cdw10 = NVME_IDENTIFY_CNS_CTRL,
	};
	return nvme_admin(c, &cmd, NULL, timeout_ms);
}

/* Identify with CNS @cns for @nsid into the scratch page (mapped on first use). */
static int identify(struct nvme_ctrl *c, uint32_t cns, uint32_t nsid)
{
	if (!c->scratch) {
		void *p = (char *)c->qmem + 2 * PAGE;
		int rc = vfdma_map(c->dom, p, PAGE, VFDMA_PROT_RW, 0, &c->scratch_iova);
		if (rc)
			return rc;
		c->scratch = p;
	}
	memset(c->scratch, 0, PAGE);
	struct nvme_sqe cmd = {
		.opc = NVME_ADMIN_IDENTIFY,
		.nsid = nsid,
		.prp1 = c->scratch_iova,
		.cdw10 = cns,
	};
	return nvme_admin(c, &cmd, NULL, NVME_ADMIN_TIMEOUT_MS);
}

/* An ASCII field of Identify data, trailing spaces removed. */
static void ascii(char *out, const uint8_t *id, size_t off, size_t len)
{
	memcpy(out, id + off, len);
	out[len] = '\0';
	for (size_t i = len; i > 0 && (out[i - 1] == ' ' || out[i - 1] == '\0'); i--)
		out[i - 1] = '\0';
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

int nvme_ctrl_identify(struct nvme_ctrl *c)
{
	int rc = identify(c, NVME_IDENTIFY_CNS_CTRL, 0);
	if (rc)
		return rc;
	const uint8_t *id = c->scratch;
	struct nvme_ctrl_id *d = &c->id;
	d->vid = le16(id + NVME_ID_VID);
	d->ssvid = le16(id + NVME_ID_SSVID);
	ascii(d->sn, id, NVME_ID_SN, NVME_ID_SN_LEN);
	ascii(d->mn, id, NVME_ID_MN, NVME_ID_MN_LEN);
	ascii(d->fr, id, NVME_ID_FR, NVME_ID_FR_LEN);
	ascii(d->subnqn, id, NVME_ID_SUBNQN, NVME_ID_SUBNQN_LEN);
	/* MDTS is in units of the minimum memory page size, CAP.MPSMIN (4 KiB here). */
	uint8_t mdts = id[NVME_ID_MDTS];
	d->mdts_bytes = mdts ? (mdts > 19 ? 1u << 31 : PAGE << mdts) : 0;
	d->cntlid = le16(id + NVME_ID_CNTLID);
	d->ver = le32(id + NVME_ID_VER);
	d->oacs = le16(id + NVME_ID_OACS);
	d->sqes = id[NVME_ID_SQES];
	d->cqes = id[NVME_ID_CQES];
	d->maxcmd = le16(id + NVME_ID_MAXCMD);
	d->nn = le32(id + NVME_ID_NN);
	d->oncs = le16(id + NVME_ID_ONCS);
	d->vwc = id[NVME_ID_VWC];
	return 0;
}

int nvme_ns_identify(struct nvme_ctrl *c, uint32_t nsid, struct nvme_ns *ns)
{
	memset(ns, 0, sizeof(*ns));
	int rc = identify(c, NVME_IDENTIFY_CNS_NS, nsid);
	if (rc)
		return rc;
	const uint8_t *id = c->scratch;
	ns->nsid = nsid;
	ns->nsze = le64(id + NVME_IDNS_NSZE);
	ns->ncap = le64(id + NVME_IDNS_NCAP);
	ns->nuse = le64(id + NVME_IDNS_NUSE);
	ns->nlbaf = id[NVME_IDNS_NLBAF];
	uint8_t flbas = id[NVME_IDNS_FLBAS];
	ns->lbaf = (uint8_t)((flbas & 0xf) | ((flbas >> 5) & 3) << 4);
	uint32_t lbaf = le32(id + NVME_IDNS_LBAF + 4u * ns->lbaf);
	ns->ms = (uint16_t)lbaf;
	uint32_t lbads = (lbaf >> 16) & 0xff;
	ns->lba_size = lbads >= 9 && lbads < 32 ? 1u << lbads : 0;
	return 0;
}

int nvme_ns_list(struct nvme_ctrl *c, uint32_t *nsids, unsigned int max, unsigned int *count)
{
	*count = 0;
	int rc = identify(c, NVME_IDENTIFY_CNS_ACTIVE_NS, 0);
	if (rc)
		return rc;
	const uint8_t *id = c->scratch;
	unsigned int n = 0;
	for (unsigned int i = 0; i < PAGE / 4 && n < max; i++) {
		uint32_t nsid = le32(id + 4 * i);
		if (!nsid)
			break; /* the list ends with the first zero entry */
		nsids[n++] = nsid;
	}
	*count = n;
	return 0;
}

int nvme_set_num_queues(struct nvme_ctrl *c, uint16_t n)
{
	if (!n)
		return -EINVAL;
	struct nvme_sqe cmd = {
		.opc = NVME_ADMIN_SET_FEATURES,
		.cdw10 = NVME_FEAT_NUM_QUEUES,
		.cdw11 = (uint32_t)(n - 1) << 16 | (uint32_t)(n - 1), /* NCQR, NSQR: 0-based */
	};
	struct nvme_cqe cqe;
	int rc = nvme_admin(c, &cmd, &cqe, NVME_ADMIN_TIMEOUT_MS);
	if (rc)
		return rc;
	/* Dword 0: what was allocated, which may be more or fewer than asked. */
	c->nr_io_sq = (uint16_t)((cqe.dw0 & 0xffff) + 1);
	c->nr_io_cq = (uint16_t)((cqe.dw0 >> 16) + 1);
	return 0;
}

int nvme_irq_enable(struct nvme_ctrl *c, unsigned int nvec)
{
	int *efds = calloc(nvec ? nvec : 1, sizeof(*efds));
	if (!efds)
		return -ENOMEM;
	int rc = vfdma_pci_irq_enable(c->dev, VFDMA_IRQ_MSIX, nvec, efds);
	if (rc < 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "%u MSI-X vectors: %s", nvec,
			 strerror(-rc));
		free(efds);
		return rc;
	}
	c->efds = efds;
	c->nr_irqs = nvec;
	return 0;
}

int nvme_dbbuf_enable(struct nvme_ctrl *c)
{
	if (!(c->id.oacs & NVME_OACS_DBBUF))
		return -ENOTSUP;
	/* Two pages: the shadow doorbells (read by the controller), EventIdx (written by it). */
	struct vfdma_pool *pool = nvme_pool(c);
	uint64_t iova;
	void *p = pool ? vfdma_dma_alloc(pool, 2 * PAGE, PAGE, VFDMA_NUMA_ANY, &iova) : NULL;
	if (!p)
		return -errno;
	memset(p, 0, 2 * PAGE);
	struct nvme_sqe cmd = {
		.opc = NVME_ADMIN_DBBUF_CONFIG,
		.prp1 = iova,
		.prp2 = iova + PAGE,
	};
	int rc = nvme_admin(c, &cmd, NULL, NVME_ADMIN_TIMEOUT_MS);
	if (rc) {
		vfdma_dma_free(pool, p);
		return rc;
	}
	c->dbbuf = p;
	/*
	 * The admin queue keeps writing its registers every time (Linux does
	 * the same, and controllers differ on whether queue 0 uses the
	 * shadow); its shadow entries are kept equal to the registers.
	 */
	c->asq.shadow = (uint32_t *)p;
	c->acq.shadow = (uint32_t *)((char *)p + c->dstrd);
	*c->asq.shadow = c->asq.tail;
	*c->acq.shadow = c->acq.head;
	return 0;
}

struct vfdma_pool *nvme_pool(struct nvme_ctrl *c)
{
	if (c->pool)
		return c->pool;
	/* Arenas on the device's node; small ones, since a tool's I/O needs little. */
	struct vfdma_arena_opts ao = {.dev = c->dev};
	struct vfdma_pool_opts po = {.arena_size = 16u << 20, .arena = &ao};
	c->pool = vfdma_pool_create(c->dom, VFDMA_NUMA_ANY, &po);
	return c->pool;
}
