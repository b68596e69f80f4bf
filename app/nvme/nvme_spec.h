/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What the NVMe Base Specification (2.0) and the NVM Command Set
 * Specification define and this driver uses: controller registers,
 * queue entries, opcodes, status codes, Identify data offsets.  Names are
 * the specification's; nothing here is specific to vfdma.
 */
#ifndef VFDMA_APP_NVME_SPEC_H
#define VFDMA_APP_NVME_SPEC_H

#include <stdint.h>

/* Controller registers (BAR0), Base Specification section 3.1. */
#define NVME_REG_CAP 0x00   /* Controller Capabilities (64 bit) */
#define NVME_REG_VS 0x08    /* Version */
#define NVME_REG_INTMS 0x0c /* Interrupt Mask Set */
#define NVME_REG_INTMC 0x10 /* Interrupt Mask Clear */
#define NVME_REG_CC 0x14    /* Controller Configuration */
#define NVME_REG_CSTS 0x1c  /* Controller Status */
#define NVME_REG_AQA 0x24   /* Admin Queue Attributes */
#define NVME_REG_ASQ 0x28   /* Admin Submission Queue Base Address (64 bit) */
#define NVME_REG_ACQ 0x30   /* Admin Completion Queue Base Address (64 bit) */
#define NVME_REG_DBS 0x1000 /* SQ 0 Tail Doorbell; then CQ 0 Head, SQ 1 Tail, ... */

#define NVME_CAP_MQES(cap) ((uint32_t)((cap)&0xffff))		/* max entries - 1 */
#define NVME_CAP_CQR(cap) ((uint32_t)(((cap) >> 16) & 1))	/* contiguous queues */
#define NVME_CAP_TO(cap) ((uint32_t)(((cap) >> 24) & 0xff))	/* timeout, 500 ms */
#define NVME_CAP_DSTRD(cap) ((uint32_t)(((cap) >> 32) & 0xf))	/* doorbell stride */
#define NVME_CAP_MPSMIN(cap) ((uint32_t)(((cap) >> 48) & 0xf)) /* 2^(12+n) */

#define NVME_CC_EN (1u << 0)
#define NVME_CC_CSS_NVM (0u << 4)
#define NVME_CC_MPS(shift) (((shift)-12) << 7)
#define NVME_CC_AMS_RR (0u << 11)
#define NVME_CC_SHN_NORMAL (1u << 14)
#define NVME_CC_IOSQES(log2) ((log2) << 16)
#define NVME_CC_IOCQES(log2) ((log2) << 20)

#define NVME_CSTS_RDY (1u << 0)
#define NVME_CSTS_CFS (1u << 1) /* Controller Fatal Status */
#define NVME_CSTS_SHST_MASK (3u << 2)
#define NVME_CSTS_SHST_DONE (2u << 2)

/* Admin command opcodes (Base Specification figure 139). */
#define NVME_ADMIN_DELETE_SQ 0x00
#define NVME_ADMIN_CREATE_SQ 0x01
#define NVME_ADMIN_DELETE_CQ 0x04
#define NVME_ADMIN_CREATE_CQ 0x05
#define NVME_ADMIN_IDENTIFY 0x06
#define NVME_ADMIN_SET_FEATURES 0x09
#define NVME_ADMIN_ASYNC_EVENT 0x0c /* Asynchronous Event Request */
#define NVME_ADMIN_DBBUF_CONFIG 0x7c /* Doorbell Buffer Config */

/* NVM command set opcodes. */
#define NVME_CMD_FLUSH 0x00
#define NVME_CMD_WRITE 0x01
#define NVME_CMD_READ 0x02

/* Identify: Controller or Namespace Structure (CNS), in CDW10. */
#define NVME_IDENTIFY_CNS_NS 0x00	 /* Identify Namespace of NSID */
#define NVME_IDENTIFY_CNS_CTRL 0x01	 /* Identify Controller */
#define NVME_IDENTIFY_CNS_ACTIVE_NS 0x02 /* active NSIDs above NSID, 1024 max */

/* Set Features: Feature Identifiers. */
#define NVME_FEAT_NUM_QUEUES 0x07 /* Number of Queues: NCQR << 16 | NSQR, 0-based */

/* Create I/O Completion / Submission Queue, CDW11. */
#define NVME_CQ_PC (1u << 0)  /* Physically Contiguous */
#define NVME_CQ_IEN (1u << 1) /* Interrupts Enabled */
#define NVME_CQ_IV(v) ((uint32_t)(v) << 16)
#define NVME_SQ_PC (1u << 0)
#define NVME_SQ_CQID(q) ((uint32_t)(q) << 16)

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
	uint16_t status; /* bit 0: Phase Tag; bits 1-15: Status Field */
};

/*
 * Status of a completion.  NVME_STATUS_* take the raw 16-bit word (phase
 * tag in bit 0); the driver's functions return the Status Field without
 * the phase tag ("sf" = status >> 1), read with NVME_SF_*.
 */
#define NVME_STATUS_SC(st) (((st) >> 1) & 0xff)
#define NVME_STATUS_SCT(st) (((st) >> 9) & 0x7)
#define NVME_SF_SC(sf) ((sf)&0xff)	     /* Status Code */
#define NVME_SF_SCT(sf) (((sf) >> 8) & 0x7) /* Status Code Type */
#define NVME_SF_DNR(sf) (((sf) >> 14) & 1)  /* Do Not Retry */

/* Status Code Types. */
#define NVME_SCT_GENERIC 0
#define NVME_SCT_CMD_SPECIFIC 1
#define NVME_SCT_MEDIA 2
#define NVME_SCT_PATH 3
#define NVME_SCT_VENDOR 7

/* Generic command status codes used by name in this driver. */
#define NVME_SC_SUCCESS 0x00
#define NVME_SC_DATA_XFER_ERROR 0x04
#define NVME_SC_INVALID_NS 0x0b   /* Invalid Namespace or Format */
#define NVME_SC_LBA_RANGE 0x80	  /* LBA Out of Range */
#define NVME_SC_CAP_EXCEEDED 0x81 /* Capacity Exceeded */

/* Identify Controller data structure: offsets in bytes. */
#define NVME_ID_VID 0	  /* PCI Vendor ID (16 bit) */
#define NVME_ID_SSVID 2	  /* PCI Subsystem Vendor ID (16 bit) */
#define NVME_ID_SN 4	  /* Serial Number (ASCII, space padded) */
#define NVME_ID_SN_LEN 20
#define NVME_ID_MN 24 /* Model Number */
#define NVME_ID_MN_LEN 40
#define NVME_ID_FR 64 /* Firmware Revision */
#define NVME_ID_FR_LEN 8
#define NVME_ID_MDTS 77	   /* Maximum Data Transfer Size: 2^n min. pages, 0 none */
#define NVME_ID_CNTLID 78  /* Controller ID (16 bit) */
#define NVME_ID_VER 80	   /* Version (32 bit) */
#define NVME_ID_OACS 256   /* Optional Admin Command Support (16 bit) */
#define NVME_OACS_DBBUF (1u << 8) /* Doorbell Buffer Config supported */
#define NVME_ID_SQES 512   /* SQ entry size: max << 4 | required, log2 */
#define NVME_ID_CQES 513   /* CQ entry size */
#define NVME_ID_MAXCMD 514 /* Maximum Outstanding Commands (16 bit) */
#define NVME_ID_NN 516	   /* Number of Namespaces (32 bit) */
#define NVME_ID_ONCS 520   /* Optional NVM Command Support (16 bit) */
#define NVME_ID_VWC 525	   /* Volatile Write Cache */
#define NVME_ID_SUBNQN 768 /* NVM Subsystem NVMe Qualified Name (256 bytes) */
#define NVME_ID_SUBNQN_LEN 256

/* Identify Namespace data structure (NVM Command Set): offsets in bytes. */
#define NVME_IDNS_NSZE 0   /* Namespace Size, in logical blocks (64 bit) */
#define NVME_IDNS_NCAP 8   /* Namespace Capacity (64 bit) */
#define NVME_IDNS_NUSE 16  /* Namespace Utilization (64 bit) */
#define NVME_IDNS_NLBAF 25 /* Number of LBA Formats, 0-based */
#define NVME_IDNS_FLBAS 26 /* Formatted LBA Size: bits 3:0 index, 6:5 high bits */
#define NVME_IDNS_LBAF 128 /* LBA Format n at 128 + 4n: MS[15:0] LBADS[23:16] RP[25:24] */

#endif
