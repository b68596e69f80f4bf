/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_nvme_perf's vfdma engine: this directory's driver on a controller
 * bound to vfio-pci.  One I/O queue pair per --queues, each qd + 1
 * entries deep, all polled by the calling thread (or, with --irq, waited
 * for on their MSI-X eventfds).  Data buffers come from the controller's
 * DMA pool, so a command's PRPs are the buffer's IOVA and nothing is
 * mapped or translated per I/O.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nvme.h"
#include "perf.h"
#include "tool.h"

struct vf {
	struct vfdma_domain *dom;
	struct nvme_ctrl c;
	bool open;
	struct nvme_ns ns;
	struct nvme_qpair *qp[64];
	unsigned int nr_qp;
};

/* "vfdma_nvme_perf: <bdf>: <what><detail>"; returns -1. */
static int say(struct perf_job *job, const char *what, const char *detail)
{
	fprintf(stderr, "vfdma_nvme_perf: %s: %s%s\n", job->o->dev, what, detail);
	return -1;
}

static const char *status_or_errmsg(struct vf *v, int rc, char *buf, size_t len)
{
	return rc > 0 ? nvme_sf_str((uint16_t)rc, buf, len) : nvme_errmsg(&v->c);
}

/* The namespace: checked against Identify unless --no-check. */
static int open_ns(struct perf_job *job, struct vf *v)
{
	const struct perf_opts *o = job->o;
	char st[96], msg[200];
	uint32_t nn = v->c.id.nn;
	int rc = o->nsid && o->nsid <= nn ? nvme_ns_identify(&v->c, o->nsid, &v->ns) : 0;
	if (rc < 0)
		return say(job, "Identify Namespace: ", nvme_errmsg(&v->c));
	if (!o->no_check && (!o->nsid || o->nsid > nn)) {
		snprintf(msg, sizeof(msg), "namespace %u does not exist: NN is %u", o->nsid, nn);
		return say(job, "", msg);
	}
	if (!o->no_check && (rc > 0 || !v->ns.nsze)) {
		snprintf(msg, sizeof(msg), "namespace %u does not exist: %s%s", o->nsid,
			 rc > 0 ? "Identify Namespace: " : "not active (Identify Namespace NSZE 0)",
			 rc > 0 ? nvme_sf_str((uint16_t)rc, st, sizeof(st)) : "");
		return say(job, "", msg);
	}
	if (!v->ns.lba_size) {
		/*
		 * --no-check on a namespace that is not there: borrow namespace
		 * 1's format and size, so that the commands look ordinary and
		 * only the namespace ID is wrong.
		 */
		uint32_t nsid = v->ns.nsid;
		if (nvme_ns_identify(&v->c, 1, &v->ns) || !v->ns.lba_size)
			v->ns = (struct nvme_ns){.lba_size = 512, .nsze = 1};
		v->ns.nsid = nsid;
	}
	if (v->ns.ms && !o->no_check)
		return say(job, "", "namespaces with metadata are not supported");
	job->block = v->ns.lba_size;
	job->capacity = v->ns.nsze * v->ns.lba_size;
	snprintf(job->capdesc, sizeof(job->capdesc),
		 "namespace %u: NSZE %" PRIu64 " blocks of %u B = %" PRIu64 " bytes", o->nsid,
		 v->ns.nsze, v->ns.lba_size, job->capacity);
	return 0;
}

static int vf_open(struct perf_job *job)
{
	const struct perf_opts *o = job->o;
	struct vf *v = calloc(1, sizeof(*v));
	if (!v)
		return -1;
	job->priv = v;
	job->target = o->dev;
	char st[96];
	v->dom = tool_domain("vfdma_nvme_perf", o->backend);
	if (!v->dom)
		return -1;
	job->backend = vfdma_backend_name((enum vfdma_backend)vfdma_domain_backend(v->dom));
	int rc = nvme_open(&v->c, v->dom, o->dev);
	if (rc)
		return say(job, "", nvme_errmsg(&v->c));
	v->open = true;
	rc = nvme_ctrl_identify(&v->c);
	if (rc)
		return say(job, "Identify Controller: ", status_or_errmsg(v, rc, st, sizeof(st)));
	if (open_ns(job, v))
		return -1;
	/* What one command can move: MDTS, and what one PRP list page covers. */
	job->max_xfer = v->c.id.mdts_bytes && v->c.id.mdts_bytes < NVME_MAX_XFER
				? v->c.id.mdts_bytes
				: NVME_MAX_XFER;
	return 0;
}

static int vf_setup(struct perf_job *job)
{
	const struct perf_opts *o = job->o;
	struct vf *v = job->priv;
	char st[96];
	int rc = o->dbbuf ? nvme_dbbuf_enable(&v->c) : 0;
	if (rc == -ENOTSUP)
		return say(job, "--dbbuf: ", "the controller has no Doorbell Buffer Config (OACS)");
	if (rc)
		return say(job, "Doorbell Buffer Config: ", status_or_errmsg(v, rc, st, sizeof(st)));
	job->dbbuf = o->dbbuf;
	rc = nvme_set_num_queues(&v->c, (uint16_t)o->queues);
	if (rc)
		return say(job, "Set Features Number of Queues: ",
			   status_or_errmsg(v, rc, st, sizeof(st)));
	if (v->c.nr_io_sq < o->queues || v->c.nr_io_cq < o->queues) {
		snprintf(st, sizeof(st), "%u I/O queues asked for, the controller has %u",
			 o->queues, v->c.nr_io_sq < v->c.nr_io_cq ? v->c.nr_io_sq : v->c.nr_io_cq);
		return say(job, "", st);
	}
	if (o->irq && nvme_irq_enable(&v->c, o->queues + 1))
		return say(job, "", nvme_errmsg(&v->c));
	struct nvme_qpair_opts qo = {.depth = o->qd + 1, .timeout_ms = o->timeout_ms, .irq = o->irq};
	if (qo.depth > NVME_CAP_MQES(v->c.cap) + 1) {
		snprintf(st, sizeof(st), "--qd %u: the controller's queues hold %u commands", o->qd,
			 NVME_CAP_MQES(v->c.cap));
		return say(job, "", st);
	}
	for (unsigned int q = 0; q < o->queues; q++) {
		rc = nvme_qpair_create(&v->c, (uint16_t)(q + 1), &qo, &v->qp[q]);
		if (rc)
			return say(job, "", rc > 0 || v->c.errmsg[0] ? v->c.errmsg : strerror(-rc));
		v->nr_qp++;
	}
	struct vfdma_pool *pool = nvme_pool(&v->c);
	for (unsigned int i = 0; i < job->nr_slots; i++) {
		struct perf_slot *s = &job->slots[i];
		s->buf = pool ? vfdma_dma_alloc(pool, o->bs, NVME_PAGE, VFDMA_NUMA_ANY, &s->iova)
			      : NULL;
		if (!s->buf)
			return say(job, "data buffers: ", strerror(errno));
		memset(s->buf, 0, o->bs);
	}
	return 0;
}

static void vf_done(void *arg, uint16_t sf)
{
	struct perf_slot *s = arg;
	struct perf_job *job = s->job;
	if (!sf) {
		perf_complete(job, s, NULL);
		return;
	}
	struct vf *v = job->priv;
	char st[96], msg[224];
	uint64_t lba = s->off / job->block;
	snprintf(msg, sizeof(msg), "%s of namespace %u LBA %" PRIu64 " (%u blocks): %s",
		 s->write ? "Write" : "Read", job->o->nsid, lba, job->o->bs / job->block,
		 nvme_sf_str(sf, st, sizeof(st)));
	if (NVME_SF_SCT(sf) == NVME_SCT_GENERIC && NVME_SF_SC(sf) == NVME_SC_LBA_RANGE)
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "; NSZE is %" PRIu64,
			 v->ns.nsze);
	perf_complete(job, s, msg);
}

static int vf_submit(struct perf_job *job, struct perf_slot *s)
{
	struct vf *v = job->priv;
	return nvme_qpair_rw(v->qp[s->queue], s->write ? NVME_CMD_WRITE : NVME_CMD_READ,
			     job->o->nsid, s->off / job->block, job->o->bs / job->block, s->iova,
			     job->o->bs, vf_done, s);
}

/* With --irq: sleep until a queue's eventfd fires (100 ms at most, for the timeouts). */
static void wait_irq(struct vf *v)
{
	struct pollfd pfd[64];
	for (unsigned int q = 0; q < v->nr_qp; q++)
		pfd[q] = (struct pollfd){.fd = v->qp[q]->efd, .events = POLLIN};
	if (poll(pfd, v->nr_qp, 100) <= 0)
		return;
	for (unsigned int q = 0; q < v->nr_qp; q++) {
		uint64_t n;
		if (pfd[q].revents & POLLIN)
			(void)!read(pfd[q].fd, &n, sizeof(n));
	}
}

static int vf_reap(struct perf_job *job, bool wait)
{
	struct vf *v = job->priv;
	int total = 0;
	for (unsigned int q = 0; q < v->nr_qp; q++) {
		int n = nvme_qpair_process(v->qp[q], UINT32_MAX);
		if (n < 0) {
			snprintf(job->errmsg, sizeof(job->errmsg), "%s", nvme_errmsg(&v->c));
			return n;
		}
		total += n;
	}
	if (!total && wait && job->o->irq)
		wait_irq(v);
	return total;
}

static void vf_close(struct perf_job *job)
{
	struct vf *v = job->priv;
	if (!v)
		return;
	struct vfdma_pool *pool = v->c.pool;
	for (unsigned int i = 0; i < job->nr_slots; i++)
		if (job->slots[i].buf && pool)
			vfdma_dma_free(pool, job->slots[i].buf);
	for (unsigned int q = 0; q < v->nr_qp; q++)
		nvme_qpair_destroy(v->qp[q]);
	if (v->open)
		nvme_close(&v->c);
	if (v->dom)
		vfdma_domain_close(v->dom);
	free(v);
	job->priv = NULL;
}

const struct perf_engine perf_vfdma_engine = {
	.name = "vfdma",
	.open = vf_open,
	.setup = vf_setup,
	.submit = vf_submit,
	.reap = vf_reap,
	.close = vf_close,
};
