/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NVMe controller bring-up and admin commands over vfdma (see nvme.h).
 *
 * The sequence is the one the NVMe Base Specification gives for
 * initialisation (section 3.5.1): disable (CC.EN = 0) and wait for
 * CSTS.RDY = 0, program the admin queue (AQA, ASQ, ACQ), set CC with the
 * entry sizes and page size and EN = 1, wait for CSTS.RDY = 1.  Each wait
 * is bounded by CAP.TO.  Admin commands are polled, one at a time; the
 * commands themselves are in admin.c.
 */
#include "nvme.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE NVME_PAGE
#define HUGE_2M (2u << 20)
#define QMEM_PAGES 3 /* admin SQ, admin CQ, scratch (admin.c) */

static uint32_t rd32(struct nvme_ctrl *c, uint32_t reg)
{
	return *(volatile uint32_t *)(c->bar0 + reg);
}

static void wr32(struct nvme_ctrl *c, uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(c->bar0 + reg) = v;
}

/* 64-bit registers as two 32-bit accesses, low half first. */
static uint64_t rd64(struct nvme_ctrl *c, uint32_t reg)
{
	uint64_t lo = rd32(c, reg), hi = rd32(c, reg + 4);
	return lo | hi << 32;
}

static void wr64(struct nvme_ctrl *c, uint32_t reg, uint64_t v)
{
	wr32(c, reg, (uint32_t)v);
	wr32(c, reg + 4, (uint32_t)(v >> 32));
}

uint64_t nvme_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The coarse clock's tick in ms, rounded up (at least 1). */
static uint64_t tick_ms(void)
{
	static uint64_t tick;
	uint64_t t = __atomic_load_n(&tick, __ATOMIC_RELAXED);
	if (!t) {
		struct timespec res = {0, 10000000};
		clock_getres(CLOCK_MONOTONIC_COARSE, &res);
		t = ((uint64_t)res.tv_sec * 1000000000u + (uint64_t)res.tv_nsec + 999999) / 1000000;
		t = t ? t : 1;
		__atomic_store_n(&tick, t, __ATOMIC_RELAXED);
	}
	return t;
}

uint64_t nvme_deadline_ms(uint32_t ms)
{
	return nvme_now_ms() + ms + tick_ms();
}

uint64_t nvme_late_ms(uint32_t ms)
{
	return ms + tick_ms();
}

static void pause_us(long us)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
	nanosleep(&ts, NULL);
}

uint32_t nvme_csts(struct nvme_ctrl *c)
{
	return rd32(c, NVME_REG_CSTS);
}

const char *nvme_errmsg(const struct nvme_ctrl *c)
{
	return c->errmsg;
}

/*
 * A command did not complete: say what the controller looks like, since
 * "timed out" alone does not tell a dead device from a disabled one.
 */
void nvme_explain_timeout(struct nvme_ctrl *c, const char *what, uint32_t ms)
{
	uint32_t csts = nvme_csts(c);
	const char *why = csts == 0xffffffffu	    ? "the device does not answer register reads"
			  : (csts & NVME_CSTS_CFS)  ? "Controller Fatal Status is set"
			  : !(csts & NVME_CSTS_RDY) ? "the controller is not enabled (CSTS.RDY 0)"
						    : "the controller is ready but did not answer";
	snprintf(c->errmsg, sizeof(c->errmsg), "%s: no completion in %u ms; CSTS 0x%x: %s", what,
		 ms, csts, why);
	c->broken = true;
}

/* Wait until CSTS.RDY == @rdy; -EIO on fatal status, -ETIMEDOUT after CAP.TO. */
static int wait_ready(struct nvme_ctrl *c, uint32_t rdy)
{
	uint64_t end = nvme_deadline_ms(c->timeout_ms);
	for (;;) {
		uint32_t csts = rd32(c, NVME_REG_CSTS);
		if (csts == 0xffffffffu || (csts & NVME_CSTS_CFS)) {
			snprintf(c->errmsg, sizeof(c->errmsg),
				 "CSTS 0x%x: %s while waiting for RDY %u", csts,
				 csts == 0xffffffffu ? "device gone" : "controller fatal status",
				 rdy);
			return -EIO;
		}
		if ((csts & NVME_CSTS_RDY) == rdy)
			return 0;
		if (nvme_now_ms() > end) {
			snprintf(c->errmsg, sizeof(c->errmsg),
				 "CSTS.RDY did not become %u within CAP.TO (%u ms)", rdy,
				 c->timeout_ms);
			return -ETIMEDOUT;
		}
		pause_us(1000);
	}
}

/*
 * Admin queue memory: one 2 MiB hugepage when the system has one free
 * (what a userspace driver normally uses, and all the noiommu backend
 * accepts), else three ordinary pages: admin SQ, admin CQ, scratch.
 */
static int qmem_alloc(struct nvme_ctrl *c)
{
	void *p = mmap(NULL, HUGE_2M, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
	if (p != MAP_FAILED) {
		c->qmem = p;
		c->qmem_len = HUGE_2M;
		return 0;
	}
	if (posix_memalign(&p, PAGE, QMEM_PAGES * PAGE))
		return -ENOMEM;
	memset(p, 0, QMEM_PAGES * PAGE);
	c->qmem = p;
	c->qmem_len = 0; /* from malloc */
	return 0;
}

static void qmem_free(struct nvme_ctrl *c)
{
	if (c->qmem_len)
		munmap(c->qmem, c->qmem_len);
	else
		free(c->qmem);
	c->qmem = NULL;
}

/* One page of admin queue entries, mapped for the device with @prot. */
static int queue_init(struct nvme_ctrl *c, struct nvme_queue *q, void *mem, uint32_t entry_size,
		      unsigned int prot)
{
	q->depth = PAGE / entry_size;
	if (q->depth > NVME_CAP_MQES(c->cap) + 1)
		q->depth = NVME_CAP_MQES(c->cap) + 1;
	q->head = q->tail = 0;
	q->phase = 1;
	int rc = vfdma_map(c->dom, mem, PAGE, prot, 0, &q->iova);
	if (!rc)
		q->mem = mem;
	return rc;
}

static void queue_fini(struct nvme_ctrl *c, struct nvme_queue *q)
{
	if (!q->mem)
		return;
	vfdma_unmap(c->dom, q->iova, PAGE);
	q->mem = NULL;
}

static int ctrl_enable(struct nvme_ctrl *c)
{
	c->cap = rd64(c, NVME_REG_CAP);
	c->vs = rd32(c, NVME_REG_VS);
	c->timeout_ms = (NVME_CAP_TO(c->cap) ? NVME_CAP_TO(c->cap) : 1) * 500;
	c->dstrd = 4u << NVME_CAP_DSTRD(c->cap);
	if (NVME_CAP_MPSMIN(c->cap) > 0) {
		snprintf(c->errmsg, sizeof(c->errmsg), "CAP.MPSMIN %u: 4 KiB pages not supported",
			 NVME_CAP_MPSMIN(c->cap));
		return -ENOTSUP; /* this driver uses 4 KiB memory pages */
	}

	/* Disable, and wait for the controller to acknowledge. */
	uint32_t cc = rd32(c, NVME_REG_CC);
	if (cc & NVME_CC_EN)
		wr32(c, NVME_REG_CC, cc & ~NVME_CC_EN);
	int rc = wait_ready(c, 0);
	if (rc)
		return rc;

	/* The device reads the SQ and writes the CQ, nothing else. */
	rc = qmem_alloc(c);
	if (!rc)
		rc = queue_init(c, &c->asq, c->qmem, sizeof(struct nvme_sqe), VFDMA_PROT_READ);
	if (!rc)
		rc = queue_init(c, &c->acq, (char *)c->qmem + PAGE, sizeof(struct nvme_cqe),
				VFDMA_PROT_RW);
	if (rc)
		return rc;
	c->asq.db = nvme_sq_db(c, 0);
	c->acq.db = nvme_cq_db(c, 0);

	wr32(c, NVME_REG_AQA, (c->acq.depth - 1) << 16 | (c->asq.depth - 1));
	wr64(c, NVME_REG_ASQ, c->asq.iova);
	wr64(c, NVME_REG_ACQ, c->acq.iova);
	wr32(c, NVME_REG_CC, NVME_CC_CSS_NVM | NVME_CC_MPS(12) | NVME_CC_AMS_RR |
				     NVME_CC_IOSQES(6) | NVME_CC_IOCQES(4) | NVME_CC_EN);
	return wait_ready(c, NVME_CSTS_RDY);
}

int nvme_open(struct nvme_ctrl *c, struct vfdma_domain *dom, const char *bdf)
{
	memset(c, 0, sizeof(*c));
	c->dom = dom;
	c->dev = vfdma_device_open(dom, bdf, 0);
	if (!c->dev) {
		int err = errno;
		snprintf(c->errmsg, sizeof(c->errmsg), "cannot open %s: %s", bdf, strerror(err));
		return -err;
	}
	void *bar0;
	uint64_t len;
	int rc = vfdma_pci_bar_map(c->dev, 0, &bar0, &len);
	if (!rc && len < NVME_REG_DBS + 16)
		rc = -ENODEV;
	if (!rc) {
		c->bar0 = bar0;
		/* Bus mastering on (PCI command register, bit 2): the device does DMA. */
		uint16_t cmd;
		rc = vfdma_pci_cfg_read(c->dev, 0x04, &cmd, 2);
		cmd |= 1u << 2;
		if (!rc)
			rc = vfdma_pci_cfg_write(c->dev, 0x04, &cmd, 2);
	}
	if (rc && !c->errmsg[0])
		snprintf(c->errmsg, sizeof(c->errmsg), "%s: BAR 0 / config space: %s", bdf,
			 strerror(-rc));
	if (!rc)
		rc = ctrl_enable(c);
	if (rc) {
		char msg[sizeof(c->errmsg)];
		memcpy(msg, c->errmsg, sizeof(msg));
		nvme_close(c);
		memcpy(c->errmsg, msg, sizeof(msg));
		return rc;
	}
	return 0;
}

int nvme_admin(struct nvme_ctrl *c, struct nvme_sqe *cmd, struct nvme_cqe *cqe,
	       uint32_t timeout_ms)
{
	if (c->broken)
		return -EIO; /* an earlier command may still complete: nothing is certain */
	cmd->cid = c->next_cid++;
	struct nvme_sqe *sq = c->asq.mem;
	sq[c->asq.tail] = *cmd;
	c->asq.tail = (c->asq.tail + 1) % c->asq.depth;
	nvme_wmb(); /* the entry before the doorbell */
	if (c->asq.shadow)
		*c->asq.shadow = c->asq.tail;
	*c->asq.db = c->asq.tail;

	volatile struct nvme_cqe *cq = c->acq.mem;
	uint64_t end = nvme_deadline_ms(timeout_ms);
	for (;;) {
		volatile struct nvme_cqe *e = &cq[c->acq.head];
		if ((e->status & 1) == c->acq.phase) {
			nvme_rmb();
			struct nvme_cqe got = *(struct nvme_cqe *)e;
			if (++c->acq.head == c->acq.depth) {
				c->acq.head = 0;
				c->acq.phase ^= 1;
			}
			if (c->acq.shadow)
				*c->acq.shadow = c->acq.head;
			*c->acq.db = c->acq.head;
			if (cqe)
				*cqe = got;
			if (got.cid != cmd->cid) {
				snprintf(c->errmsg, sizeof(c->errmsg),
					 "admin completion for command %u, expected %u", got.cid,
					 cmd->cid);
				return -EPROTO;
			}
			return got.status >> 1;
		}
		if (nvme_now_ms() > end) {
			char what[48];
			snprintf(what, sizeof(what), "admin command 0x%02x", cmd->opc);
			nvme_explain_timeout(c, what, timeout_ms);
			return -ETIMEDOUT;
		}
		pause_us(100);
	}
}

int nvme_close(struct nvme_ctrl *c)
{
	if (c->bar0) {
		wr32(c, NVME_REG_CC, rd32(c, NVME_REG_CC) & ~NVME_CC_EN);
		wait_ready(c, 0);
	}
	/* The device is quiet now: its queues and buffers can go. */
	if (c->dbbuf)
		vfdma_dma_free(c->pool, c->dbbuf);
	c->dbbuf = NULL;
	if (c->pool)
		vfdma_pool_destroy(c->pool);
	c->pool = NULL;
	if (c->scratch)
		vfdma_unmap(c->dom, c->scratch_iova, PAGE);
	c->scratch = NULL;
	queue_fini(c, &c->asq);
	queue_fini(c, &c->acq);
	if (c->qmem)
		qmem_free(c);
	int rc = vfdma_device_close(c->dev); /* also disables interrupts, closes the eventfds */
	free(c->efds);
	c->efds = NULL;
	c->dev = NULL;
	c->bar0 = NULL;
	return rc;
}
