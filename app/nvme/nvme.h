/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A minimal NVMe controller driver over vfdma: controller bring-up and the
 * admin queue, enough for Identify.  Names follow the NVMe Base
 * Specification (registers CAP, VS, CC, CSTS, AQA, ASQ, ACQ; submission
 * queue entry, completion queue entry).  Later issues grow it into the I/O
 * path of nvme_identify/nvme_perf.
 *
 * Memory: the admin SQ and CQ are one page each, in a 2 MiB hugepage when
 * one is free (else ordinary pages), mapped through the controller's
 * domain: the device may only read the SQ; the CQ is mapped read-write.
 * Commands are polled; nothing uses interrupts.
 */
#ifndef VFDMA_APP_NVME_H
#define VFDMA_APP_NVME_H

#include <stdint.h>

#include "vfdma/vfdma.h"

/* Controller registers (BAR0), NVMe Base Specification 2.0, section 3.1. */
#define NVME_REG_CAP 0x00  /* Controller Capabilities (64 bit) */
#define NVME_REG_VS 0x08   /* Version */
#define NVME_REG_INTMS 0x0c
#define NVME_REG_INTMC 0x10
#define NVME_REG_CC 0x14   /* Controller Configuration */
#define NVME_REG_CSTS 0x1c /* Controller Status */
#define NVME_REG_AQA 0x24  /* Admin Queue Attributes */
#define NVME_REG_ASQ 0x28  /* Admin Submission Queue Base Address (64 bit) */
#define NVME_REG_ACQ 0x30  /* Admin Completion Queue Base Address (64 bit) */
#define NVME_REG_DBS 0x1000 /* first doorbell */

#define NVME_CAP_MQES(cap) ((uint32_t)((cap)&0xffff))	 /* max queue entries - 1 */
#define NVME_CAP_TO(cap) ((uint32_t)(((cap) >> 24) & 0xff)) /* timeout, 500 ms units */
#define NVME_CAP_DSTRD(cap) ((uint32_t)(((cap) >> 32) & 0xf)) /* doorbell stride */
#define NVME_CAP_MPSMIN(cap) ((uint32_t)(((cap) >> 48) & 0xf))

#define NVME_CC_EN (1u << 0)
#define NVME_CC_CSS_NVM (0u << 4)
#define NVME_CC_MPS(shift) (((shift)-12) << 7)
#define NVME_CC_AMS_RR (0u << 11)
#define NVME_CC_SHN_NORMAL (1u << 14)
#define NVME_CC_IOSQES(log2) ((log2) << 16)
#define NVME_CC_IOCQES(log2) ((log2) << 20)

#define NVME_CSTS_RDY (1u << 0)
#define NVME_CSTS_CFS (1u << 1) /* controller fatal status */
#define NVME_CSTS_SHST_MASK (3u << 2)
#define NVME_CSTS_SHST_DONE (2u << 2)

/* Admin opcodes. */
#define NVME_ADMIN_IDENTIFY 0x06
#define NVME_IDENTIFY_CNS_CTRL 0x01

/* Submission Queue Entry (64 bytes). */
struct nvme_sqe {
	uint8_t opc;
	uint8_t flags; /* FUSE, PSDT (0: PRPs) */
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2, cdw3;
	uint64_t mptr;
	uint64_t prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

/* Completion Queue Entry (16 bytes). */
struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status; /* bit 0: phase tag; bits 1-15: status field */
};

/* Status field of a completion: SCT (type) and SC (code). */
#define NVME_STATUS_SC(st) (((st) >> 1) & 0xff)
#define NVME_STATUS_SCT(st) (((st) >> 9) & 0x7)
#define NVME_SC_DATA_XFER_ERROR 0x04 /* generic status */

/* Identify Controller data structure: the fields used here (offsets in bytes). */
#define NVME_ID_VID 0     /* PCI Vendor ID (16 bit) */
#define NVME_ID_SSVID 2   /* PCI Subsystem Vendor ID (16 bit) */
#define NVME_ID_SN 4      /* Serial Number (20 ASCII bytes, space padded) */
#define NVME_ID_SN_LEN 20
#define NVME_ID_MN 24     /* Model Number (40 bytes) */
#define NVME_ID_MN_LEN 40

struct nvme_queue {
	void *mem;      /* page of entries */
	uint64_t iova;
	uint32_t depth; /* entries */
	uint32_t head, tail;
	uint8_t phase;  /* expected phase tag (CQ) */
	volatile uint32_t *db;
};

struct nvme_ctrl {
	struct vfdma_device *dev;
	struct vfdma_domain *dom;
	volatile uint8_t *bar0;
	uint64_t cap;
	uint32_t vs;
	uint32_t timeout_ms; /* CAP.TO */
	void *qmem;	  /* memory of both admin queues */
	uint64_t qmem_len; /* its hugepage mapping's length; 0: from malloc */
	struct nvme_queue asq, acq;
	uint16_t next_cid;
};

/*
 * Open the NVMe controller at @bdf into @dom, reset it and enable it with
 * an admin queue pair.  Returns 0 and fills @c, or a negative errno
 * (-ETIMEDOUT if the controller does not become ready in CAP.TO, -EIO on
 * controller fatal status).
 */
int nvme_open(struct nvme_ctrl *c, struct vfdma_domain *dom, const char *bdf);

/*
 * Submit one admin command and wait up to @timeout_ms for its completion
 * (which is copied to @cqe if not NULL).  Returns 0 on success, the
 * non-zero status field (SCT << 8 | SC) if the controller failed it, or
 * -ETIMEDOUT.
 */
int nvme_admin(struct nvme_ctrl *c, struct nvme_sqe *cmd, struct nvme_cqe *cqe,
	       uint32_t timeout_ms);

/* Identify Controller into the 4 KiB buffer at @iova; as nvme_admin(). */
int nvme_identify_ctrl(struct nvme_ctrl *c, uint64_t iova, uint32_t timeout_ms);

/* Disable the controller (CC.EN = 0), unmap and free its queues, close the device. */
int nvme_close(struct nvme_ctrl *c);

#endif
