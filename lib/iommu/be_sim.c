/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sim backend: the domain's mappings go into a software IOMMU page
 * table (sim_pt.c) instead of the kernel, and sim devices do DMA through it
 * with their own IOTLBs.  Unmap invalidates every device's IOTLB for the
 * range before it returns, as the kernel does for a real IOMMU.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iommu/domain.h"
#include "iommu/sim_pt.h"
#include "util/log.h"
#include "util/sys.h"
#include "vfdma/sim.h"

#define SIM_MAX_DEVICES 64

struct sim_be {
	struct vfd_simpt *pt;
	pthread_mutex_t lock; /* the page table and the engine list */
	struct vfd_simdma *engines[SIM_MAX_DEVICES];
	unsigned int next_id;
	bool split; /* dirty tracking with split: new mappings are split too */
};

static struct sim_be *sim_of(struct vfdma_domain *dom)
{
	return dom->be;
}

static int sim_open(struct vfdma_domain *dom)
{
	const struct vfdma_domain_opts *o = &dom->opts;
	struct sim_be *s = vfd_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->pt = vfd_simpt_create(o->sim_pgsizes, o->sim_va_bits);
	if (!s->pt) {
		int rc = -errno;
		vfd_free(s);
		return rc;
	}
	pthread_mutex_init(&s->lock, NULL);
	/* Like VT-d on x86: everything but the MSI window. */
	const struct vfdma_iova_range ranges[] = {
		{0, 0xfedfffffull},
		{0xfef00000ull, (1ull << o->sim_va_bits) - 1},
	};
	int rc = vfd_domain_set_ranges(dom, ranges, 2);
	if (rc) {
		vfd_simpt_destroy(s->pt);
		pthread_mutex_destroy(&s->lock);
		vfd_free(s);
		return rc;
	}
	dom->be = s;
	dom->pgsizes = o->sim_pgsizes;
	dom->be_ready = true;
	return 0;
}

static void sim_close(struct vfdma_domain *dom)
{
	struct sim_be *s = sim_of(dom);
	vfd_simpt_destroy(s->pt);
	pthread_mutex_destroy(&s->lock);
	vfd_free(s);
	dom->be = NULL;
}

static void sim_detach(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	struct sim_be *s = sim_of(dom);
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < SIM_MAX_DEVICES; i++)
		if (s->engines[i] == dev->sim)
			s->engines[i] = NULL;
	pthread_mutex_unlock(&s->lock);
	vfd_simdma_destroy(dev->sim);
	dev->sim = NULL;
}

static int sim_query(struct vfdma_domain *dom, struct vfdma_iova_range **ranges, size_t *n,
		     uint64_t *pgsizes)
{
	*ranges = vfd_calloc(dom->nr_ranges, sizeof(**ranges));
	if (!*ranges)
		return -ENOMEM;
	memcpy(*ranges, dom->ranges, dom->nr_ranges * sizeof(**ranges));
	*n = dom->nr_ranges;
	*pgsizes = dom->opts.sim_pgsizes;
	return 0;
}

static int sim_map(struct vfdma_domain *dom, uint64_t iova, void *vaddr, uint64_t len,
		   unsigned int prot)
{
	struct sim_be *s = sim_of(dom);
	pthread_mutex_lock(&s->lock);
	int rc = vfd_simpt_map(s->pt, iova, vaddr, len, prot);
	if (!rc && s->split) {
		/* Tracking at 4 KiB: a new mapping starts split. */
		int n = vfd_simpt_split(s->pt, iova, len);
		if (n < 0) {
			vfd_simpt_unmap(s->pt, iova, len);
			rc = n;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc == -EEXIST ? -EBUSY : rc;
}

static int64_t sim_unmap(struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	struct sim_be *s = sim_of(dom);
	pthread_mutex_lock(&s->lock);
	int64_t got = vfd_simpt_unmap(s->pt, iova, len);
	/* More than asked (a block cut in part) is invalidated wholesale. */
	for (int i = 0; i < SIM_MAX_DEVICES; i++) {
		if (!s->engines[i])
			continue;
		if (got == (int64_t)len)
			vfd_simdma_invalidate(s->engines[i], iova, len);
		else
			vfd_simdma_invalidate_all(s->engines[i]);
	}
	pthread_mutex_unlock(&s->lock);
	return got;
}

static int sim_probe(struct vfdma_domain *dom, uint64_t iova, uint64_t len, void *vaddr,
		     unsigned int prot)
{
	struct sim_be *s = sim_of(dom);
	uint64_t off = 0;
	while (off < len) {
		uint64_t leaf;
		unsigned p;
		void *host = vfd_simpt_lookup(s->pt, iova + off, &leaf, &p);
		if (host != (char *)vaddr + off || p != prot)
			return 0;
		/* Skip to the end of this leaf. */
		uint64_t next = ((iova + off) | (leaf - 1)) + 1;
		off = next - iova;
	}
	return 1;
}

static uint64_t sim_space(struct vfdma_domain *dom)
{
	return 1ull << dom->opts.sim_va_bits;
}

static int sim_dirty_start(struct vfdma_domain *dom, bool split)
{
	struct sim_be *s = sim_of(dom);
	pthread_mutex_lock(&s->lock);
	int rc = 0;
	if (split) {
		int n = vfd_simpt_split(s->pt, 0, sim_space(dom));
		if (n < 0) {
			vfd_simpt_merge(s->pt, 0, sim_space(dom));
			rc = n;
		}
	}
	if (!rc) {
		/* Start clean: what was written before tracking is not reported. */
		vfd_simpt_read_dirty(s->pt, 0, sim_space(dom), NULL, true);
		s->split = split;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void sim_dirty_stop(struct vfdma_domain *dom, bool split)
{
	struct sim_be *s = sim_of(dom);
	pthread_mutex_lock(&s->lock);
	if (split)
		vfd_simpt_merge(s->pt, 0, sim_space(dom));
	s->split = false;
	pthread_mutex_unlock(&s->lock);
}

static int64_t sim_dirty_read(struct vfdma_domain *dom, uint64_t iova, uint64_t len,
			      uint64_t *bitmap, bool clear)
{
	struct sim_be *s = sim_of(dom);
	pthread_mutex_lock(&s->lock);
	int64_t n = vfd_simpt_read_dirty(s->pt, iova, len, bitmap, clear);
	pthread_mutex_unlock(&s->lock);
	return n;
}

const struct vfd_backend_ops vfd_sim_ops = {
	.name = "sim",
	.kind = VFDMA_BACKEND_SIM,
	.dirty_caps = VFDMA_DIRTY_CAP_HW | VFDMA_DIRTY_CAP_SPLIT,
	.open = sim_open,
	.close = sim_close,
	.device_attach = NULL, /* no PCI devices: vfdma_sim_device_create() */
	.device_detach = sim_detach,
	.query = sim_query,
	.map = sim_map,
	.unmap = sim_unmap,
	.probe = sim_probe,
	.dirty_start = sim_dirty_start,
	.dirty_stop = sim_dirty_stop,
	.dirty_read = sim_dirty_read,
};

struct vfd_simpt *vfd_sim_domain_pt(struct vfdma_domain *dom)
{
	return dom->ops == &vfd_sim_ops ? sim_of(dom)->pt : NULL;
}

/* ---- The public sim API ---- */

struct vfdma_device *vfdma_sim_device_create(struct vfdma_domain *dom)
{
	if (!dom) {
		errno = EINVAL;
		return NULL;
	}
	if (dom->ops != &vfd_sim_ops) {
		errno = ENOTSUP;
		return NULL;
	}
	struct sim_be *s = sim_of(dom);
	struct vfdma_device *dev = vfd_device_new(dom);
	if (!dev)
		return NULL;
	pthread_rwlock_wrlock(&dom->op_lock);
	pthread_mutex_lock(&s->lock);
	int slot = -1;
	for (int i = 0; i < SIM_MAX_DEVICES && slot < 0; i++)
		if (!s->engines[i])
			slot = i;
	int err = ENOSPC;
	if (slot >= 0) {
		dev->sim = vfd_simdma_create(s->pt, dom->opts.sim_iotlb_entries);
		err = dev->sim ? 0 : errno;
	}
	if (!err) {
		s->engines[slot] = dev->sim;
		snprintf(dev->bdf, sizeof(dev->bdf), "sim:%u", s->next_id++);
	}
	pthread_mutex_unlock(&s->lock);
	if (!err)
		vfd_domain_list_device(dom, dev);
	pthread_rwlock_unlock(&dom->op_lock);
	if (err) {
		vfd_free(dev);
		errno = err;
		return NULL;
	}
	return dev;
}

static bool is_sim_device(const struct vfdma_device *dev)
{
	return dev && dev->sim;
}

int vfdma_sim_dma_read(struct vfdma_device *dev, uint64_t iova, void *buf, size_t len)
{
	if (!is_sim_device(dev) || (!buf && len))
		return -EINVAL;
	return vfd_simdma_rw(dev->sim, iova, buf, len, VFD_SIM_READ);
}

int vfdma_sim_dma_write(struct vfdma_device *dev, uint64_t iova, const void *buf, size_t len)
{
	if (!is_sim_device(dev) || (!buf && len))
		return -EINVAL;
	return vfd_simdma_rw(dev->sim, iova, (void *)buf, len, VFD_SIM_WRITE);
}

int vfdma_sim_faults(struct vfdma_device *dev, struct vfdma_sim_fault *out, unsigned int max,
		     uint64_t *lost)
{
	if (!is_sim_device(dev) || (!out && max))
		return -EINVAL;
	struct vfd_sim_fault f[16];
	unsigned n = 0;
	while (n < max) {
		unsigned want = max - n < 16 ? max - n : 16;
		unsigned got = vfd_simdma_faults(dev->sim, f, want, n ? NULL : lost);
		for (unsigned i = 0; i < got; i++)
			out[n + i] = (struct vfdma_sim_fault){
				.iova = f[i].iova,
				.write = f[i].access == VFD_SIM_WRITE,
				.reason = f[i].reason,
			};
		n += got;
		if (got < want)
			break;
	}
	if (!max && lost)
		vfd_simdma_faults(dev->sim, f, 0, lost);
	return (int)n;
}

int vfdma_sim_get_stats(struct vfdma_domain *dom, struct vfdma_sim_stats *stats)
{
	if (!dom || !stats)
		return -EINVAL;
	if (dom->ops != &vfd_sim_ops)
		return -ENOTSUP;
	struct sim_be *s = sim_of(dom);
	struct vfd_simpt_stats st;
	pthread_mutex_lock(&s->lock);
	vfd_simpt_get_stats(s->pt, &st);
	pthread_mutex_unlock(&s->lock);
	*stats = (struct vfdma_sim_stats){st.leaves_4k, st.leaves_2m, st.leaves_1g, st.tables};
	return 0;
}
