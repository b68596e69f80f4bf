/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Scatter-gather: buffers to IOVA segments under a device's limits.  Each
 * buffer is walked mapping by mapping (the translation gives the bytes to
 * the end of the mapping); every piece is appended to the last segment if
 * it continues it in IOVA, else it starts a new one, and a segment never
 * grows past max_seg_size or over a boundary (a multiple of mask + 1).
 * Translation is lock-free: the domain's tables, then the mapping cache.
 */
#include <errno.h>

#include "vfdma/dma.h"
#include "vfdma/mem.h"
#include "iommu/domain.h"

struct sg_out {
	struct vfdma_sg_seg *segs;
	size_t max, n;
	uint64_t max_seg, mask;
};

/* Bytes a segment [start, start + len) may still grow by. */
static uint64_t seg_room(const struct sg_out *o, uint64_t start, uint64_t len)
{
	uint64_t room = o->max_seg - len;
	if (o->mask) {
		uint64_t to_boundary = (start | o->mask) - (start + len) + 1;
		if (to_boundary < room)
			room = to_boundary;
	}
	return room;
}

static int emit(struct sg_out *o, uint64_t iova, uint64_t len)
{
	while (len) {
		struct vfdma_sg_seg *cur = o->n ? &o->segs[o->n - 1] : NULL;
		uint64_t k;
		if (cur && cur->iova + cur->len == iova && (k = seg_room(o, cur->iova, cur->len))) {
			k = k < len ? k : len;
			cur->len += k;
		} else {
			if (o->n == o->max)
				return -ENOSPC;
			k = seg_room(o, iova, 0);
			k = k < len ? k : len;
			o->segs[o->n++] = (struct vfdma_sg_seg){iova, k};
		}
		iova += k;
		len -= k;
	}
	return 0;
}

static int translate(struct vfdma_domain *dom, uint64_t va, uint64_t *iova, uint64_t *len)
{
	int rc = vfdma_vaddr_to_iova(dom, (const void *)(uintptr_t)va, iova, len);
	return rc == -ENOENT ? vfd_mem_cache_xlate(dom, va, iova, len) : rc;
}

int vfdma_sg_map(struct vfdma_domain *dom, const struct iovec *iov, int cnt,
		 const struct vfdma_sg_limits *lim, struct vfdma_sg_seg *segs, size_t max_segs,
		 size_t *nsegs)
{
	if (!dom || cnt < 0 || (!iov && cnt) || !nsegs || (!segs && max_segs))
		return -EINVAL;
	struct sg_out o = {segs, max_segs, 0, UINT64_MAX, 0};
	if (lim) {
		if (lim->seg_boundary_mask & (lim->seg_boundary_mask + 1))
			return -EINVAL;
		o.mask = lim->seg_boundary_mask == UINT64_MAX ? 0 : lim->seg_boundary_mask;
		if (lim->max_seg_size)
			o.max_seg = lim->max_seg_size;
	}
	for (int i = 0; i < cnt; i++) {
		uintptr_t va = (uintptr_t)iov[i].iov_base;
		if (va + iov[i].iov_len < va || (!va && iov[i].iov_len))
			return -EINVAL;
	}
	for (int i = 0; i < cnt; i++) {
		uint64_t va = (uintptr_t)iov[i].iov_base, left = iov[i].iov_len;
		while (left) {
			uint64_t iova, clen;
			int rc = translate(dom, va, &iova, &clen);
			if (rc)
				return rc;
			uint64_t take = clen < left ? clen : left;
			rc = emit(&o, iova, take);
			if (rc)
				return rc;
			va += take;
			left -= take;
		}
	}
	*nsegs = o.n;
	return 0;
}
