/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A small NVMe driver over vfdma, written to be read.  It uses only the
 * public vfdma API: an example of a userspace driver.
 *
 *   ctrl.c    bring-up (CAP, CC, CSTS, AQA/ASQ/ACQ), the admin queue
 *   admin.c   Identify, Set Features, MSI-X to eventfds, the DMA pool
 *   qpair.c   I/O queue pairs: Create/Delete I/O SQ and CQ, Read/Write
 *             with PRP lists, completions by phase tag, timeouts
 *   status.c  completion status in words
 *
 * Memory: the admin SQ and CQ are a page each, in a 2 MiB hugepage when
 * one is free (else ordinary pages), mapped through the controller's
 * domain: the device may only read the SQ.  I/O queues, PRP lists and the
 * callers' data buffers come from a vfdma DMA pool (nvme_pool()).
 *
 * Errors: functions return 0, a negative errno, or (for a command the
 * controller failed) the positive Status Field of its completion (see
 * NVME_SF_* and nvme_sf_str()).  -ETIMEDOUT and -EIO come with a sentence
 * in nvme_errmsg(); after either, the controller is marked broken and only
 * nvme_close() makes sense.  The driver prints nothing: its callers do.
 *
 * Threads: one thread per queue pair; the admin queue is not thread-safe.
 */
#ifndef VFDMA_APP_NVME_H
#define VFDMA_APP_NVME_H

#include <stdbool.h>
#include <stdint.h>

#include "nvme_spec.h"
#include "vfdma/vfdma.h"

/* Timeout of the admin commands the driver sends by itself. */
#define NVME_ADMIN_TIMEOUT_MS 5000

/* A ring of entries shared with the controller (a submission or completion queue). */
struct nvme_queue {
	void *mem; /* the entries */
	uint64_t iova;
	uint32_t depth; /* entries */
	uint32_t head, tail;
	uint8_t phase; /* expected phase tag (CQ) */
	volatile uint32_t *db;
	volatile uint32_t *shadow; /* with nvme_dbbuf_enable(): Shadow Doorbell */
	volatile uint32_t *ei;	   /* and EventIdx entry; else NULL */
};

/* Identify Controller, the fields this driver and its tools use. */
struct nvme_ctrl_id {
	uint16_t vid, ssvid;
	char sn[NVME_ID_SN_LEN + 1]; /* trailing spaces removed */
	char mn[NVME_ID_MN_LEN + 1];
	char fr[NVME_ID_FR_LEN + 1];
	char subnqn[NVME_ID_SUBNQN_LEN + 1];
	uint32_t mdts_bytes; /* Maximum Data Transfer Size; 0: no limit */
	uint16_t cntlid, oacs, oncs, maxcmd;
	uint32_t ver, nn;
	uint8_t sqes, cqes, vwc;
};

/* Identify Namespace, the fields used here. */
struct nvme_ns {
	uint32_t nsid;
	uint64_t nsze, ncap, nuse; /* logical blocks */
	uint32_t lba_size;	   /* bytes (2^LBADS) */
	uint16_t ms;		   /* metadata bytes per block */
	uint8_t lbaf, nlbaf;	   /* format in use; formats - 1 */
};

/* A controller (ctrl.c). */
struct nvme_ctrl {
	struct vfdma_device *dev;
	struct vfdma_domain *dom;
	volatile uint8_t *bar0;
	uint64_t cap;
	uint32_t vs;
	uint32_t timeout_ms; /* CAP.TO */
	uint32_t dstrd;	     /* doorbell stride, bytes */
	void *qmem;	     /* admin SQ, CQ and a scratch page */
	uint64_t qmem_len;   /* its hugepage mapping's length; 0: from malloc */
	struct nvme_queue asq, acq;
	uint16_t next_cid;
	bool broken; /* a command timed out or the controller failed: close it */
	void *scratch; /* 4 KiB for Identify data, mapped on first use */
	uint64_t scratch_iova;
	struct nvme_ctrl_id id; /* after nvme_ctrl_identify() */
	uint16_t nr_io_sq, nr_io_cq; /* granted by Set Features Number of Queues */
	struct vfdma_pool *pool;     /* after nvme_pool() */
	void *dbbuf;		     /* after nvme_dbbuf_enable(): shadow doorbells, EventIdx */
	int *efds;		     /* after nvme_irq_enable(): one per vector */
	unsigned int nr_irqs;
	char errmsg[192];
};

/*
 * Open the NVMe controller at @bdf into @dom, reset it and enable it with
 * an admin queue pair.  Returns 0 and fills @c, or a negative errno
 * (-ETIMEDOUT if the controller does not become ready in CAP.TO, -EIO on
 * controller fatal status; nvme_errmsg() says which).  On failure @c is
 * closed already.
 */
int nvme_open(struct nvme_ctrl *c, struct vfdma_domain *dom, const char *bdf);

/*
 * Disable the controller (CC.EN = 0), unmap and free its queues and pool,
 * close the device.  Destroy the I/O queue pairs first.
 */
int nvme_close(struct nvme_ctrl *c);

/* The last error in words ("" if none). */
const char *nvme_errmsg(const struct nvme_ctrl *c);

/*
 * Submit one admin command and wait up to @timeout_ms for its completion
 * (copied to @cqe if not NULL).  Returns 0, the Status Field (> 0) if the
 * controller failed it, or a negative errno (-ETIMEDOUT, -EIO).
 */
int nvme_admin(struct nvme_ctrl *c, struct nvme_sqe *cmd, struct nvme_cqe *cqe,
	       uint32_t timeout_ms);

/*
 * Admin commands (admin.c).
 */

/* Identify Controller into the 4 KiB buffer at @iova; as nvme_admin(). */
int nvme_identify_ctrl(struct nvme_ctrl *c, uint64_t iova, uint32_t timeout_ms);

/* Identify Controller into c->id; as nvme_admin(). */
int nvme_ctrl_identify(struct nvme_ctrl *c);

/* Identify Namespace @nsid into @ns; as nvme_admin().  An NSZE of 0: inactive. */
int nvme_ns_identify(struct nvme_ctrl *c, uint32_t nsid, struct nvme_ns *ns);

/*
 * The active namespace IDs (Identify CNS 2), up to @max of them, into
 * @nsids and their number into @count; returns as nvme_admin().
 */
int nvme_ns_list(struct nvme_ctrl *c, uint32_t *nsids, unsigned int max, unsigned int *count);

/*
 * Set Features Number of Queues: ask for @n I/O submission and completion
 * queues; c->nr_io_sq / nr_io_cq hold what the controller granted.
 */
int nvme_set_num_queues(struct nvme_ctrl *c, uint16_t n);

/*
 * Doorbell Buffer Config (if Identify OACS has it; -ENOTSUP if not): from
 * now on the driver writes queue doorbells to a shadow page in memory, and
 * writes the doorbell register only when the controller's EventIdx says it
 * is not looking (the scheme of virtio's event index).  Meant for emulated
 * controllers, where a register write costs a trap; Linux uses it there.
 * Call before creating I/O queues; nvme_ctrl_identify() first.
 */
int nvme_dbbuf_enable(struct nvme_ctrl *c);

/*
 * Enable @nvec MSI-X vectors, each signalling an eventfd (c->efds[i]);
 * vector 0 belongs to the admin queue, vector q to I/O queue q.
 */
int nvme_irq_enable(struct nvme_ctrl *c, unsigned int nvec);

/*
 * The controller's DMA pool (created on first use, on the device's NUMA
 * node): I/O queues, PRP lists and data buffers come from it.  NULL with
 * errno on failure.
 */
struct vfdma_pool *nvme_pool(struct nvme_ctrl *c);

/*
 * I/O queue pairs (qpair.c).
 */

/* Most bytes per command: what one PRP list page (512 entries) covers; MDTS may say less. */
#define NVME_MAX_XFER (2u << 20)

/* Called with the Status Field of a command's completion (0: success). */
typedef void (*nvme_io_cb)(void *arg, uint16_t sf);

struct nvme_req {
	nvme_io_cb cb;
	void *arg;
	uint64_t *prp_list; /* this command's PRP list page */
	uint64_t prp_iova;
	uint64_t submitted_ms; /* for the timeout */
	uint64_t slba;	       /* for error messages */
	uint32_t nsid;
	uint8_t opc;
	bool busy;
};

struct nvme_qpair {
	struct nvme_ctrl *c;
	uint16_t qid;
	struct nvme_queue sq, cq;
	uint32_t sq_rung; /* tail last written to the doorbell */
	struct nvme_req *reqs; /* by command identifier */
	uint16_t *free_cids;
	uint32_t nr_free, outstanding;
	uint32_t max_xfer;   /* bytes per command */
	uint32_t timeout_ms; /* per command */
	void *prp_mem;	     /* PRP list pages, one per command identifier */
	int efd;	     /* interrupt eventfd, -1: polled */
	uint32_t polls;	     /* nvme_qpair_process() calls since the last clock read */
	uint64_t next_check_ms; /* next scan for commands past their timeout */
};

/* Options for a queue pair; zero means default for every field. */
struct nvme_qpair_opts {
	uint32_t depth;	     /* entries per queue (outstanding: depth - 1); default 128 */
	uint32_t timeout_ms; /* per command; default 5000 */
	bool irq;	     /* MSI-X vector qid (nvme_irq_enable() first) instead of polling */
};

/*
 * Create I/O completion and submission queue @qid (1 ..
 * c->nr_io_sq) with memory from the controller's pool.  Returns 0 and
 * sets @out, or a negative errno, or a Status Field.
 */
int nvme_qpair_create(struct nvme_ctrl *c, uint16_t qid, const struct nvme_qpair_opts *opts,
		      struct nvme_qpair **out);

/* Delete the queues (SQ, then CQ) and free them.  Outstanding commands are lost. */
int nvme_qpair_destroy(struct nvme_qpair *qp);

/*
 * Queue a Read or Write (@opc NVME_CMD_READ/WRITE) of @nlb blocks at @slba
 * of namespace @nsid, @len bytes at @iova (contiguous in IOVA space,
 * dword-aligned, up to qp->max_xfer).  The doorbell is written by the next
 * nvme_qpair_process() or nvme_qpair_ring(): submissions are batched.
 * @cb is called from nvme_qpair_process().  Returns 0, -EAGAIN (no free
 * command identifier: process completions first), -EINVAL.
 */
int nvme_qpair_rw(struct nvme_qpair *qp, uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb,
		  uint64_t iova, uint32_t len, nvme_io_cb cb, void *arg);

/* Write the SQ tail doorbell if commands were queued since the last write. */
void nvme_qpair_ring(struct nvme_qpair *qp);

/*
 * Ring the doorbell, reap up to @max completions (calling their
 * callbacks), ring again for what the callbacks queued.  Never blocks.
 * Returns the number reaped, or -ETIMEDOUT (a command is older than its
 * timeout), -EIO (controller fatal status or gone), -EPROTO (a completion
 * for no command), with nvme_errmsg() set.
 */
int nvme_qpair_process(struct nvme_qpair *qp, uint32_t max);

/*
 * Block until at least one completion was reaped (on the eventfd with
 * interrupts, spinning without): returns as nvme_qpair_process(), 0 if
 * nothing is outstanding.
 */
int nvme_qpair_wait(struct nvme_qpair *qp);

/*
 * One Read or Write, waited for: 0, a Status Field, or a negative errno.
 */
int nvme_io_sync(struct nvme_qpair *qp, uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb,
		 uint64_t iova, uint32_t len);

/*
 * Status in words (status.c).
 */

/* The name of the status in @sf, e.g. "LBA Out of Range". */
const char *nvme_sf_name(uint16_t sf);

/* "<name> (SCT n SC 0xnn[, DNR])" into @buf; returns @buf. */
char *nvme_sf_str(uint16_t sf, char *buf, unsigned long len);

/*
 * Helpers shared by the driver's files.
 */

/*
 * Ordering between memory the device reads or writes by DMA and the
 * doorbells: a submission entry must be in memory before the doorbell
 * write (wmb), and a completion's other fields are read only after its
 * phase tag (rmb).  x86 keeps stores in order and loads in order (and a
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

#define NVME_PAGE 4096u /* the memory page size this driver sets in CC.MPS */

/* Monotonic milliseconds (the coarse clock: cheap, a tick is enough for timeouts). */
uint64_t nvme_now_ms(void);

/*
 * The deadline @ms from now by nvme_now_ms(), and the time a command must
 * have been outstanding to be late: both add the coarse clock's tick, by
 * which a reading may lag the real time, so that no timeout fires early.
 */
uint64_t nvme_deadline_ms(uint32_t ms);
uint64_t nvme_late_ms(uint32_t ms);

/* Doorbell registers of queue @qid: SQ y Tail at 2y, CQ y Head at 2y + 1 strides. */
static inline volatile uint32_t *nvme_sq_db(struct nvme_ctrl *c, uint16_t qid)
{
	return (volatile uint32_t *)(c->bar0 + NVME_REG_DBS + 2u * qid * c->dstrd);
}

static inline volatile uint32_t *nvme_cq_db(struct nvme_ctrl *c, uint16_t qid)
{
	return (volatile uint32_t *)(c->bar0 + NVME_REG_DBS + (2u * qid + 1) * c->dstrd);
}

/*
 * Tell the controller that queue @q's doorbell moved from @old to @new
 * (SQ tail or CQ head).  Without shadow doorbells a register write; with
 * them, the shadow entry, and the register only if the controller's
 * EventIdx lies in [old, new): it has caught up and may be waiting for it.
 */
static inline void nvme_db_update(struct nvme_queue *q, uint32_t old, uint32_t new)
{
	if (!q->shadow) {
		*q->db = new;
		return;
	}
	*q->shadow = new;
	/*
	 * The shadow store must be visible before EventIdx is read, or both
	 * sides could miss each other: a full fence (x86 reorders a store
	 * with a later load).
	 */
	__sync_synchronize();
	uint16_t ei = (uint16_t)*q->ei;
	if ((uint16_t)(new - ei - 1) < (uint16_t)(new - old))
		*q->db = new;
}

/* Controller Status, and why a controller stopped answering, into c->errmsg. */
uint32_t nvme_csts(struct nvme_ctrl *c);
void nvme_explain_timeout(struct nvme_ctrl *c, const char *what, uint32_t ms);

#endif
