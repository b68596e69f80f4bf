/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * I/O queue pairs (see nvme.h): one completion queue and one submission
 * queue with the same identifier, their memory, the PRP lists and the
 * command identifiers that connect a completion to its caller.
 *
 * A command identifier (CID) is an index into qp->reqs; at most depth - 1
 * commands are outstanding, so the submission queue can never overflow
 * (a full queue has one empty slot) and a completion always finds a slot.
 *
 * Data pointers are PRPs (Physical Region Page entries, Base
 * Specification 4.1): PRP1 is the buffer's first address, PRP2 the second
 * page when the transfer touches exactly two pages, else the address of a
 * list of the remaining pages.  Each CID owns one list page (512 entries,
 * enough for 2 MiB), so submitting never allocates.
 */
#include "nvme.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE NVME_PAGE
#define CHECK_EVERY 64	    /* nvme_qpair_process() calls between clock reads */
#define CHECK_MS 10	    /* milliseconds between timeout scans */

static const char *opc_name(uint8_t opc)
{
	return opc == NVME_CMD_READ ? "Read" : opc == NVME_CMD_WRITE ? "Write" : "command";
}

static void *pool_zalloc(struct nvme_ctrl *c, uint64_t size, uint64_t *iova)
{
	struct vfdma_pool *pool = nvme_pool(c);
	void *p = pool ? vfdma_dma_alloc(pool, size, PAGE, VFDMA_NUMA_ANY, iova) : NULL;
	if (p)
		memset(p, 0, size);
	return p;
}

static void qpair_free(struct nvme_qpair *qp)
{
	struct vfdma_pool *pool = qp->c->pool;
	if (qp->sq.mem)
		vfdma_dma_free(pool, qp->sq.mem);
	if (qp->cq.mem)
		vfdma_dma_free(pool, qp->cq.mem);
	if (qp->prp_mem)
		vfdma_dma_free(pool, qp->prp_mem);
	free(qp->reqs);
	free(qp->free_cids);
	free(qp);
}

static int create_queues(struct nvme_qpair *qp, bool irq)
{
	struct nvme_ctrl *c = qp->c;
	uint32_t qsize = (qp->cq.depth - 1) << 16 | qp->qid; /* QSIZE is 0-based */
	struct nvme_sqe cq = {
		.opc = NVME_ADMIN_CREATE_CQ,
		.prp1 = qp->cq.iova,
		.cdw10 = qsize,
		.cdw11 = NVME_CQ_PC | (irq ? NVME_CQ_IEN | NVME_CQ_IV(qp->qid) : 0),
	};
	int rc = nvme_admin(c, &cq, NULL, NVME_ADMIN_TIMEOUT_MS);
	if (rc)
		return rc;
	struct nvme_sqe sq = {
		.opc = NVME_ADMIN_CREATE_SQ,
		.prp1 = qp->sq.iova,
		.cdw10 = qsize,
		.cdw11 = NVME_SQ_PC | NVME_SQ_CQID(qp->qid),
	};
	rc = nvme_admin(c, &sq, NULL, NVME_ADMIN_TIMEOUT_MS);
	if (rc) {
		struct nvme_sqe del = {.opc = NVME_ADMIN_DELETE_CQ, .cdw10 = qp->qid};
		nvme_admin(c, &del, NULL, NVME_ADMIN_TIMEOUT_MS);
	}
	return rc;
}

int nvme_qpair_create(struct nvme_ctrl *c, uint16_t qid, const struct nvme_qpair_opts *opts,
		      struct nvme_qpair **out)
{
	struct nvme_qpair_opts o = opts ? *opts : (struct nvme_qpair_opts){0};
	uint32_t depth = o.depth ? o.depth : 128;
	if (depth > NVME_CAP_MQES(c->cap) + 1)
		depth = NVME_CAP_MQES(c->cap) + 1;
	if (!qid || qid > c->nr_io_sq || qid > c->nr_io_cq || depth < 2 || depth > 65536 ||
	    (o.irq && qid >= c->nr_irqs))
		return -EINVAL;

	struct nvme_qpair *qp = calloc(1, sizeof(*qp));
	if (!qp)
		return -ENOMEM;
	qp->c = c;
	qp->qid = qid;
	qp->timeout_ms = o.timeout_ms ? o.timeout_ms : 5000;
	qp->efd = o.irq ? c->efds[qid] : -1;
	qp->max_xfer = c->id.mdts_bytes && c->id.mdts_bytes < NVME_MAX_XFER ? c->id.mdts_bytes
									     : NVME_MAX_XFER;
	qp->sq.depth = qp->cq.depth = depth;
	qp->sq.phase = qp->cq.phase = 1;
	qp->sq.db = nvme_sq_db(c, qid);
	qp->cq.db = nvme_cq_db(c, qid);
	if (c->dbbuf) {
		/* Shadow Doorbell and EventIdx entries: at the registers' offsets, a page apart. */
		char *shadow = c->dbbuf, *ei = shadow + PAGE;
		uint32_t sq_off = 2u * qid * c->dstrd, cq_off = sq_off + c->dstrd;
		qp->sq.shadow = (uint32_t *)(shadow + sq_off);
		qp->sq.ei = (uint32_t *)(ei + sq_off);
		qp->cq.shadow = (uint32_t *)(shadow + cq_off);
		qp->cq.ei = (uint32_t *)(ei + cq_off);
	}
	errno = 0;
	qp->reqs = calloc(depth, sizeof(*qp->reqs));
	qp->free_cids = calloc(depth, sizeof(*qp->free_cids));
	qp->sq.mem = pool_zalloc(c, (uint64_t)depth * sizeof(struct nvme_sqe), &qp->sq.iova);
	qp->cq.mem = pool_zalloc(c, (uint64_t)depth * sizeof(struct nvme_cqe), &qp->cq.iova);
	uint64_t prp_iova = 0;
	qp->prp_mem = pool_zalloc(c, (uint64_t)(depth - 1) * PAGE, &prp_iova);
	if (!qp->reqs || !qp->free_cids || !qp->sq.mem || !qp->cq.mem || !qp->prp_mem) {
		int err = errno ? errno : ENOMEM;
		snprintf(c->errmsg, sizeof(c->errmsg), "queue pair %u memory: %s", qid,
			 strerror(err));
		qpair_free(qp);
		return -err;
	}
	/* CIDs 0 .. depth - 2; taken from the top of the stack, lowest first. */
	for (uint32_t i = 0; i < depth - 1; i++) {
		struct nvme_req *r = &qp->reqs[i];
		r->prp_list = (uint64_t *)((char *)qp->prp_mem + (uint64_t)i * PAGE);
		r->prp_iova = prp_iova + (uint64_t)i * PAGE;
		qp->free_cids[depth - 2 - i] = (uint16_t)i;
	}
	qp->nr_free = depth - 1;

	int rc = create_queues(qp, o.irq);
	if (rc) {
		if (rc > 0) {
			char st[96];
			snprintf(c->errmsg, sizeof(c->errmsg), "Create I/O queue %u: %s", qid,
				 nvme_sf_str((uint16_t)rc, st, sizeof(st)));
		}
		qpair_free(qp);
		return rc;
	}
	*out = qp;
	return 0;
}

int nvme_qpair_destroy(struct nvme_qpair *qp)
{
	if (!qp)
		return 0;
	struct nvme_ctrl *c = qp->c;
	struct nvme_sqe sq = {.opc = NVME_ADMIN_DELETE_SQ, .cdw10 = qp->qid};
	struct nvme_sqe cq = {.opc = NVME_ADMIN_DELETE_CQ, .cdw10 = qp->qid};
	int rc = nvme_admin(c, &sq, NULL, NVME_ADMIN_TIMEOUT_MS);
	if (!rc)
		rc = nvme_admin(c, &cq, NULL, NVME_ADMIN_TIMEOUT_MS);
	if (rc) {
		/*
		 * The controller may still own the queues: disabling it is the
		 * only way to be sure it no longer writes into their memory.
		 */
		*(volatile uint32_t *)(c->bar0 + NVME_REG_CC) &= ~NVME_CC_EN;
		uint64_t end = nvme_deadline_ms(c->timeout_ms);
		while ((nvme_csts(c) & NVME_CSTS_RDY) && nvme_now_ms() <= end)
			usleep(1000);
		c->broken = true;
	}
	qpair_free(qp);
	return rc;
}

/* PRP1 and PRP2 for @len bytes at @iova, using @r's list page when needed. */
static void build_prps(struct nvme_req *r, struct nvme_sqe *cmd, uint64_t iova, uint32_t len)
{
	cmd->prp1 = iova;
	uint32_t first = PAGE - (uint32_t)(iova & (PAGE - 1));
	if (len <= first)
		return;
	uint64_t next = iova + first; /* page-aligned from here on */
	uint32_t rest = len - first;
	if (rest <= PAGE) {
		cmd->prp2 = next;
		return;
	}
	uint32_t n = (rest + PAGE - 1) / PAGE;
	for (uint32_t i = 0; i < n; i++)
		r->prp_list[i] = next + (uint64_t)i * PAGE;
	cmd->prp2 = r->prp_iova;
}

int nvme_qpair_rw(struct nvme_qpair *qp, uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb,
		  uint64_t iova, uint32_t len, nvme_io_cb cb, void *arg)
{
	if (!len || len > qp->max_xfer || (iova & 3) || !nlb || nlb > 65536)
		return -EINVAL;
	/* A transfer that does not start on a page may need one list entry more. */
	if ((iova & (PAGE - 1)) + len > qp->max_xfer + PAGE)
		return -EINVAL;
	if (!qp->nr_free)
		return -EAGAIN;
	uint16_t cid = qp->free_cids[--qp->nr_free];
	struct nvme_req *r = &qp->reqs[cid];
	struct nvme_sqe cmd = {
		.opc = opc,
		.cid = cid,
		.nsid = nsid,
		.cdw10 = (uint32_t)slba,
		.cdw11 = (uint32_t)(slba >> 32),
		.cdw12 = nlb - 1, /* NLB is 0-based */
	};
	build_prps(r, &cmd, iova, len);
	r->cb = cb;
	r->arg = arg;
	r->submitted_ms = nvme_now_ms();
	r->slba = slba;
	r->nsid = nsid;
	r->opc = opc;
	r->busy = true;
	((struct nvme_sqe *)qp->sq.mem)[qp->sq.tail] = cmd;
	if (++qp->sq.tail == qp->sq.depth)
		qp->sq.tail = 0;
	qp->outstanding++;
	return 0;
}

void nvme_qpair_ring(struct nvme_qpair *qp)
{
	if (qp->sq.tail == qp->sq_rung)
		return;
	nvme_wmb(); /* the entries before the doorbell */
	nvme_db_update(&qp->sq, qp->sq_rung, qp->sq.tail);
	qp->sq_rung = qp->sq.tail;
}

/* The oldest outstanding command older than its timeout, or NULL. */
static struct nvme_req *expired(struct nvme_qpair *qp)
{
	uint64_t now = nvme_now_ms(), late = nvme_late_ms(qp->timeout_ms);
	for (uint32_t i = 0; i + 1 < qp->sq.depth; i++) {
		struct nvme_req *r = &qp->reqs[i];
		if (r->busy && now - r->submitted_ms > late)
			return r;
	}
	return NULL;
}

static int check_health(struct nvme_qpair *qp)
{
	struct nvme_ctrl *c = qp->c;
	struct nvme_req *r = qp->outstanding ? expired(qp) : NULL;
	if (r) {
		char what[96];
		snprintf(what, sizeof(what), "%s of namespace %u LBA %llu (queue %u, command %u)",
			 opc_name(r->opc), r->nsid, (unsigned long long)r->slba, qp->qid,
			 (unsigned)(r - qp->reqs));
		nvme_explain_timeout(c, what, qp->timeout_ms);
		return -ETIMEDOUT;
	}
	return c->broken ? -EIO : 0;
}

int nvme_qpair_process(struct nvme_qpair *qp, uint32_t max)
{
	nvme_qpair_ring(qp);
	volatile struct nvme_cqe *cq = qp->cq.mem;
	uint32_t n = 0, head = qp->cq.head;
	while (n < max) {
		volatile struct nvme_cqe *e = &cq[qp->cq.head];
		if ((e->status & 1) != qp->cq.phase)
			break;
		nvme_rmb(); /* the rest of the entry after its phase tag */
		struct nvme_cqe got = *(struct nvme_cqe *)e;
		if (++qp->cq.head == qp->cq.depth) {
			qp->cq.head = 0;
			qp->cq.phase ^= 1;
		}
		n++;
		if (got.cid + 1u >= qp->sq.depth || !qp->reqs[got.cid].busy) {
			snprintf(qp->c->errmsg, sizeof(qp->c->errmsg),
				 "queue %u: completion for command %u, which is not outstanding",
				 qp->qid, got.cid);
			qp->c->broken = true;
			return -EPROTO;
		}
		struct nvme_req *r = &qp->reqs[got.cid];
		nvme_io_cb cb = r->cb;
		void *arg = r->arg;
		r->busy = false;
		qp->free_cids[qp->nr_free++] = got.cid;
		qp->outstanding--;
		if (cb)
			cb(arg, got.status >> 1); /* may submit again: the CID is free */
	}
	if (n)
		nvme_db_update(&qp->cq, head, qp->cq.head);
	nvme_qpair_ring(qp);
	/*
	 * Timeouts: a look at the clock every CHECK_EVERY calls, a scan of
	 * the outstanding commands every CHECK_MS, also while others complete
	 * (one stuck command among many must still be found).
	 */
	if (qp->efd >= 0 || ++qp->polls >= CHECK_EVERY) { /* with interrupts, calls are rare */
		qp->polls = 0;
		uint64_t now = nvme_now_ms();
		if (now >= qp->next_check_ms) {
			qp->next_check_ms = now + CHECK_MS;
			int rc = check_health(qp);
			if (rc)
				return rc;
		}
	}
	return (int)n;
}

int nvme_qpair_wait(struct nvme_qpair *qp)
{
	for (;;) {
		if (!qp->outstanding)
			return 0;
		int n = nvme_qpair_process(qp, UINT32_MAX);
		if (n)
			return n;
		if (qp->efd < 0)
			continue;
		/*
		 * Sleep on the interrupt, waking at least every 100 ms to check
		 * the timeouts.  An interrupt that arrived since the CQ was read
		 * left the eventfd readable: no wakeup is lost.
		 */
		struct pollfd pfd = {.fd = qp->efd, .events = POLLIN};
		if (poll(&pfd, 1, 100) > 0) {
			uint64_t v;
			if (read(qp->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				return -errno;
		} else {
			int rc = check_health(qp);
			if (rc)
				return rc;
		}
	}
}

struct sync_done {
	bool done;
	uint16_t sf;
};

static void sync_cb(void *arg, uint16_t sf)
{
	struct sync_done *d = arg;
	d->done = true;
	d->sf = sf;
}

int nvme_io_sync(struct nvme_qpair *qp, uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb,
		 uint64_t iova, uint32_t len)
{
	struct sync_done d = {0};
	int rc = nvme_qpair_rw(qp, opc, nsid, slba, nlb, iova, len, sync_cb, &d);
	while (!rc && !d.done) {
		rc = nvme_qpair_wait(qp);
		rc = rc < 0 ? rc : 0;
	}
	return rc ? rc : d.sf;
}
