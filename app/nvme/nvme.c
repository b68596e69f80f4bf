/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * NVMe controller bring-up and admin commands over vfdma (see nvme.h).
 *
 * The sequence is the one the NVMe Base Specification gives for
 * initialisation (section 3.5.1): disable (CC.EN = 0) and wait for
 * CSTS.RDY = 0, program the admin queue (AQA, ASQ, ACQ), set CC with the
 * entry sizes and page size and EN = 1, wait for CSTS.RDY = 1.  Each wait
 * is bounded by CAP.TO.
 */
#include "nvme.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/*
 * Ordering between memory the device reads or writes by DMA and the
 * doorbells: the submission entry must be in memory before the doorbell
 * write (wmb), and a completion's other fields are read only after its
 * phase bit (rmb).  x86 keeps stores in order and loads in order (and a
 * store to uncached MMIO after them), so a compiler barrier is all it needs;
 * other architectures get a full fence.  (Not C11 fences: they order
 * threads, not devices, and ThreadSanitizer rejects them.)
 */
#if defined(__x86_64__) || defined(__i386__)
#define nvme_wmb() __asm__ __volatile__("" ::: "memory")
#define nvme_rmb() __asm__ __volatile__("" ::: "memory")
#else
#define nvme_wmb() __sync_synchronize()
#define nvme_rmb() __sync_synchronize()
#endif

#define PAGE 4096u
#define HUGE_2M (2u << 20)

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

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_us(long us)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
	nanosleep(&ts, NULL);
}

/* Wait until CSTS.RDY == @rdy; -EIO on fatal status, -ETIMEDOUT after CAP.TO. */
static int wait_ready(struct nvme_ctrl *c, uint32_t rdy)
{
	uint64_t end = now_ms() + c->timeout_ms;
	for (;;) {
		uint32_t csts = rd32(c, NVME_REG_CSTS);
		if (csts == 0xffffffffu || (csts & NVME_CSTS_CFS))
			return -EIO;
		if ((csts & NVME_CSTS_RDY) == rdy)
			return 0;
		if (now_ms() > end)
			return -ETIMEDOUT;
		pause_us(1000);
	}
}

/*
 * Queue memory: one 2 MiB hugepage when the system has one free (what a
 * userspace driver normally uses, and all the noiommu backend accepts),
 * else two ordinary pages.  The admin SQ is its first page, the CQ the
 * second.
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
	if (posix_memalign(&p, PAGE, 2 * PAGE))
		return -ENOMEM;
	memset(p, 0, 2 * PAGE);
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

/* One page of queue entries, mapped for the device with @prot. */
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
	if (NVME_CAP_MPSMIN(c->cap) > 0)
		return -ENOTSUP; /* this driver uses 4 KiB memory pages */

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
	uint32_t dstrd = 4u << NVME_CAP_DSTRD(c->cap);
	c->asq.db = (volatile uint32_t *)(c->bar0 + NVME_REG_DBS);	   /* SQ 0 tail */
	c->acq.db = (volatile uint32_t *)(c->bar0 + NVME_REG_DBS + dstrd); /* CQ 0 head */

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
	if (!c->dev)
		return -errno;
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
	if (!rc)
		rc = ctrl_enable(c);
	if (rc) {
		nvme_close(c);
		return rc;
	}
	return 0;
}

int nvme_admin(struct nvme_ctrl *c, struct nvme_sqe *cmd, struct nvme_cqe *cqe,
	       uint32_t timeout_ms)
{
	cmd->cid = c->next_cid++;
	struct nvme_sqe *sq = c->asq.mem;
	sq[c->asq.tail] = *cmd;
	c->asq.tail = (c->asq.tail + 1) % c->asq.depth;
	nvme_wmb(); /* the entry before the doorbell */
	*c->asq.db = c->asq.tail;

	volatile struct nvme_cqe *cq = c->acq.mem;
	uint64_t end = now_ms() + timeout_ms;
	for (;;) {
		volatile struct nvme_cqe *e = &cq[c->acq.head];
		if ((e->status & 1) == c->acq.phase) {
			nvme_rmb();
			struct nvme_cqe got = *(struct nvme_cqe *)e;
			if (++c->acq.head == c->acq.depth) {
				c->acq.head = 0;
				c->acq.phase ^= 1;
			}
			*c->acq.db = c->acq.head;
			if (cqe)
				*cqe = got;
			if (got.cid != cmd->cid)
				return -EPROTO;
			return got.status >> 1;
		}
		if (now_ms() > end)
			return -ETIMEDOUT;
		pause_us(100);
	}
}

int nvme_identify_ctrl(struct nvme_ctrl *c, uint64_t iova, uint32_t timeout_ms)
{
	struct nvme_sqe cmd = {
		.opc = NVME_ADMIN_IDENTIFY,
		.prp1 = iova,
		.cdw10 = NVME_IDENTIFY_CNS_CTRL,
	};
	return nvme_admin(c, &cmd, NULL, timeout_ms);
}

int nvme_close(struct nvme_ctrl *c)
{
	if (c->bar0) {
		wr32(c, NVME_REG_CC, rd32(c, NVME_REG_CC) & ~NVME_CC_EN);
		wait_ready(c, 0);
	}
	/* The device is quiet now: its queues can go. */
	queue_fini(c, &c->asq);
	queue_fini(c, &c->acq);
	if (c->qmem)
		qmem_free(c);
	int rc = vfdma_device_close(c->dev);
	c->dev = NULL;
	c->bar0 = NULL;
	return rc;
}
