/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Registrations and the mapping cache of a domain (include/vfdma/mem.h);
 * the cache's code is in memcache.c.
 *
 * Registrations.  Registered pages are kept as spans: disjoint runs of
 * pages with one registration count, each inside one region (the kernel
 * mapping made when its pages were first registered).  A region counts its
 * registered bytes; when that reaches 0 the region is unmapped.  Regions
 * are never grown or split: a device may be using any part of one, and no
 * kernel can change a mapping in place, so the only safe moment to choose
 * a mapping's extent is when it is made (a batch maps adjacent ranges as
 * one).  Every structure a call needs is allocated before its kernel call,
 * so a call fails with nothing changed or succeeds whole.
 *
 * The cache.  An entry is one mapping made on demand, with a reference
 * count and a CLOCK bit, found through a lock-free index (a CONST
 * vfd_xlate: vaddr page -> entry).  A hit takes a reference with one
 * compare-and-swap that fails on an entry marked DEAD; eviction (under the
 * cache's lock) marks an idle entry DEAD with a compare-and-swap from 0, so
 * exactly one of a racing hit and eviction wins.  Only a DEAD entry leaves
 * the index, and only then is it unmapped (vfdma_unmap_batch: translation
 * first, gathered kernel unmap, then the IOVA).  Entries are never freed
 * before the domain closes, only reused, so a reader holding a stale
 * pointer touches live memory; having taken a reference it checks that the
 * entry (perhaps reused meanwhile) still covers its range, else lets go.
 *
 * Folding.  Most regions hold one span that covers them whole (one
 * registration, one mapping).  Such a region keeps no record here: its
 * count goes into the domain's own mapping record (vfd_map_reg_fold, which
 * has seven bits for it: a count above VFD_MAP_REG_COUNT_MAX stays in a
 * span) and its span and region are freed, so a registration costs the
 * mapping record and nothing else.  A call first unfolds the folded regions its
 * ranges touch back into records (allocating first, so it fails with
 * nothing changed), works on spans as described above, and folds again
 * before it lets go of mr->lock; the span code never sees a folded region.
 *
 * Locks: mr->lock (registrations, the CLOCK ring, misses, eviction), then
 * the domain's own (taken inside vfdma_map/unmap and vfd_map_reg_*).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vfdma/dma.h"
#include "vfdma/mem.h"
#include "dma/memreg.h"
#include "dma/xlate.h"
#include "iommu/domain.h"
#include "util/log.h"
#include "util/sys.h"

struct region {
	uint64_t va, len, iova;
	uint64_t live; /* registered bytes inside */
};

struct span {
	struct vfd_rb_node node;
	uint64_t va, len;
	union {
		struct region *reg;
		struct span *next_free; /* in a call's pool of spare spans */
	};
	uint64_t count;
};

struct vfd_memreg *vfd_memreg_get(struct vfdma_domain *dom, bool create)
{
	struct vfd_memreg *mr = __atomic_load_n(&dom->mem, __ATOMIC_ACQUIRE);
	if (mr || !create)
		return mr;
	pthread_mutex_lock(&dom->lock);
	mr = dom->mem;
	if (!mr) {
		mr = vfd_calloc(1, sizeof(*mr));
		if (mr) {
			pthread_mutex_init(&mr->lock, NULL);
			mr->dom = dom;
			mr->page = dom->granule;
			mr->budget = VFD_MEM_DEFAULT_BUDGET;
			vfd_xlate_init(&mr->index, VFD_XLATE_CONST);
			__atomic_store_n(&dom->mem, mr, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&dom->lock);
	return mr;
}

/* Page-rounded [*a, *b) of a caller's range. */
int vfd_mem_round(uint64_t page, const void *vaddr, uint64_t len, uint64_t *a, uint64_t *b)
{
	uintptr_t va = (uintptr_t)vaddr;
	if (!vaddr || !len)
		return -EINVAL;
	if (va + len < va || va + len + page - 1 < va + len)
		return -EOVERFLOW;
	*a = va & ~(page - 1);
	*b = (va + len + page - 1) & ~(page - 1);
	return 0;
}

/* ---- spans ---- */

static struct span *span_of(struct vfd_rb_node *n)
{
	return n ? vfd_container_of(n, struct span, node) : NULL;
}

static struct span *span_next(struct span *s)
{
	return span_of(vfd_rb_next(&s->node));
}

/* The span containing @va, else the first one after it, or NULL. */
static struct span *span_from(struct vfd_memreg *mr, uint64_t va)
{
	struct vfd_rb_node *n = mr->spans.node;
	struct span *below = NULL, *after = NULL;
	while (n) {
		struct span *s = span_of(n);
		if (s->va <= va) {
			below = s;
			n = n->right;
		} else {
			after = s;
			n = n->left;
		}
	}
	return below && va - below->va < below->len ? below : after;
}

static void span_insert(struct vfd_memreg *mr, struct span *s)
{
	struct vfd_rb_node **link = &mr->spans.node, *parent = NULL;
	while (*link) {
		parent = *link;
		link = s->va < span_of(parent)->va ? &parent->left : &parent->right;
	}
	vfd_rb_link(&s->node, parent, link);
	vfd_rb_insert(&mr->spans, &s->node);
	mr->nr_spans++;
}

static void span_erase(struct vfd_memreg *mr, struct span *s)
{
	vfd_rb_erase(&mr->spans, &s->node);
	mr->nr_spans--;
}

static struct span *pool_take(struct span **pool)
{
	struct span *s = *pool;
	*pool = s->next_free;
	return s;
}

static void pool_put(struct span **pool, struct span *s)
{
	s->next_free = *pool;
	*pool = s;
}

static int pool_fill(struct span **pool, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct span *s = vfd_calloc(1, sizeof(*s));
		if (!s)
			return -ENOMEM;
		pool_put(pool, s);
	}
	return 0;
}

static void pool_free(struct span *pool)
{
	while (pool) {
		struct span *n = pool->next_free;
		vfd_free(pool);
		pool = n;
	}
}

/* Make @x a span boundary (if a span has it inside). */
static void split_at(struct vfd_memreg *mr, uint64_t x, struct span **pool)
{
	struct span *s = span_from(mr, x);
	if (!s || s->va >= x)
		return;
	struct span *t = pool_take(pool);
	t->va = x;
	t->len = s->va + s->len - x;
	t->reg = s->reg;
	t->count = s->count;
	s->len = x - s->va;
	span_insert(mr, t);
}

/* Join equal neighbours among the spans touching [a, b]. */
static void merge_range(struct vfd_memreg *mr, uint64_t a, uint64_t b, struct span **pool)
{
	struct span *s = span_from(mr, a ? a - 1 : 0);
	while (s && s->va <= b) {
		struct span *t = span_next(s);
		if (t && t->va == s->va + s->len && t->reg == s->reg && t->count == s->count) {
			s->len += t->len;
			span_erase(mr, t);
			pool_put(pool, t);
			continue;
		}
		s = t;
	}
}

/* ---- folding (see the top of the file) ---- */

/* Give the folded regions overlapping [a, b) their span and region again. */
static int unfold(struct vfd_memreg *mr, uint64_t a, uint64_t b)
{
	size_t n = vfd_map_reg_unfold(mr->dom, a, b, NULL, NULL, 0);
	if (!n)
		return 0;
	struct vfdma_map_run *runs = vfd_calloc(n, sizeof(*runs));
	uint64_t *counts = vfd_calloc(n, sizeof(*counts));
	struct region **regs = vfd_calloc(n, sizeof(*regs));
	struct span *pool = NULL;
	int rc = runs && counts && regs ? pool_fill(&pool, n) : -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		regs[i] = vfd_calloc(1, sizeof(**regs));
		if (!regs[i])
			rc = -ENOMEM;
	}
	/* Only this call changes counts (mr->lock): no more than n now. */
	size_t k = rc ? 0 : vfd_map_reg_unfold(mr->dom, a, b, runs, counts, n);
	for (size_t i = 0; i < k; i++) {
		struct region *g = regs[i];
		*g = (struct region){(uintptr_t)runs[i].vaddr, runs[i].len, runs[i].iova,
				     runs[i].len};
		struct span *s = pool_take(&pool);
		*s = (struct span){.va = g->va, .len = g->len, .reg = g, .count = counts[i]};
		span_insert(mr, s);
		mr->nr_folded--;
		regs[i] = NULL;
	}
	for (size_t i = 0; regs && i < n; i++)
		vfd_free(regs[i]);
	vfd_free(regs);
	vfd_free(counts);
	vfd_free(runs);
	pool_free(pool);
	return rc;
}

/* Fold every region among the spans touching [a, b] that can be. */
static void fold(struct vfd_memreg *mr, uint64_t a, uint64_t b)
{
	struct span *s = span_from(mr, a ? a - 1 : 0);
	while (s && s->va <= b) {
		struct span *t = span_next(s);
		struct region *g = s->reg;
		struct vfdma_map_run run = {(void *)(uintptr_t)g->va, g->len, g->iova};
		if (s->va == g->va && s->len == g->len && s->count &&
		    !vfd_map_reg_fold(mr->dom, &run, s->count)) {
			span_erase(mr, s);
			vfd_free(s);
			vfd_free(g);
			mr->nr_folded++;
		}
		s = t;
	}
}

struct rng {
	uint64_t a, b;
};

static int cmp_rng(const void *x, const void *y)
{
	const struct rng *p = x, *q = y;
	return p->a < q->a ? -1 : p->a > q->a;
}

/*
 * The runs of [a, b) with no span: stores up to @max of them in @out (may
 * be NULL) and returns how many there are.
 */
static size_t holes(struct vfd_memreg *mr, uint64_t a, uint64_t b, struct vfdma_map_run *out,
		    size_t max)
{
	size_t n = 0;
	uint64_t pos = a;
	struct span *s = span_from(mr, a);
	while (pos < b) {
		uint64_t end = !s || s->va >= b ? b : s->va;
		if (end > pos) {
			if (out && n < max)
				out[n] = (struct vfdma_map_run){(void *)(uintptr_t)pos, end - pos, 0};
			n++;
		}
		if (!s || s->va >= b)
			break;
		pos = s->va + s->len;
		s = span_next(s);
	}
	return n;
}

int vfdma_mem_register_batch(struct vfdma_domain *dom, const struct iovec *iov, size_t n)
{
	if (!dom || !iov || !n)
		return -EINVAL;
	uint64_t page = dom->granule;
	struct rng *r = vfd_calloc(2 * n, sizeof(*r));
	if (!r)
		return -ENOMEM;
	struct rng *u = r + n; /* the union of the ranges, sorted */
	int rc = 0;
	for (size_t i = 0; i < n && !rc; i++)
		rc = vfd_mem_round(page, iov[i].iov_base, iov[i].iov_len, &r[i].a, &r[i].b);
	if (rc) {
		vfd_free(r);
		return rc;
	}
	memcpy(u, r, n * sizeof(*r));
	qsort(u, n, sizeof(*u), cmp_rng);
	size_t nu = 0;
	for (size_t i = 0; i < n; i++) {
		if (nu && u[i].a <= u[nu - 1].b) {
			if (u[i].b > u[nu - 1].b)
				u[nu - 1].b = u[i].b;
		} else {
			u[nu++] = u[i];
		}
	}
	struct vfd_memreg *mr = vfd_memreg_get(dom, true);
	if (!mr) {
		vfd_free(r);
		return -ENOMEM;
	}

	pthread_mutex_lock(&mr->lock);
	for (size_t i = 0; i < nu && !rc; i++)
		rc = unfold(mr, u[i].a, u[i].b);
	size_t nh = 0;
	for (size_t i = 0; i < nu && !rc; i++)
		nh += holes(mr, u[i].a, u[i].b, NULL, 0);
	struct vfdma_map_run *runs = nh ? vfd_calloc(nh, sizeof(*runs)) : NULL;
	struct region **regs = nh ? vfd_calloc(nh, sizeof(*regs)) : NULL;
	struct span *pool = NULL;
	if (!rc)
		rc = nh && (!runs || !regs) ? -ENOMEM : 0;
	for (size_t i = 0; i < nh && !rc; i++) {
		regs[i] = vfd_calloc(1, sizeof(**regs));
		if (!regs[i])
			rc = -ENOMEM;
	}
	if (!rc)
		rc = pool_fill(&pool, 2 * n + nh);
	size_t h = 0;
	for (size_t i = 0; i < nu && !rc; i++)
		h += holes(mr, u[i].a, u[i].b, runs + h, nh - h);
	if (!rc && nh)
		rc = vfdma_map_batch(dom, runs, nh, VFDMA_PROT_RW, VFDMA_MAP_NOCOALESCE);
	if (!rc) {
		/* New pages first get spans with count 0, then every range counts. */
		for (size_t i = 0; i < nh; i++) {
			struct region *g = regs[i];
			*g = (struct region){(uintptr_t)runs[i].vaddr, runs[i].len, runs[i].iova,
					     runs[i].len};
			struct span *s = pool_take(&pool);
			s->va = g->va;
			s->len = g->len;
			s->reg = g;
			s->count = 0;
			span_insert(mr, s);
			mr->nr_regions++;
			mr->region_bytes += g->len;
			mr->reg_bytes += g->len;
			regs[i] = NULL;
		}
		for (size_t i = 0; i < n; i++) {
			split_at(mr, r[i].a, &pool);
			split_at(mr, r[i].b, &pool);
			for (struct span *s = span_from(mr, r[i].a); s && s->va < r[i].b;
			     s = span_next(s))
				s->count++;
		}
		for (size_t i = 0; i < nu; i++)
			merge_range(mr, u[i].a, u[i].b, &pool);
	}
	for (size_t i = 0; i < nu; i++)
		fold(mr, u[i].a, u[i].b);
	pthread_mutex_unlock(&mr->lock);
	for (size_t i = 0; regs && i < nh; i++)
		vfd_free(regs[i]);
	vfd_free(regs);
	vfd_free(runs);
	pool_free(pool);
	vfd_free(r);
	return rc;
}

int vfdma_mem_register(struct vfdma_domain *dom, void *vaddr, uint64_t len)
{
	struct iovec v = {vaddr, len};
	return vfdma_mem_register_batch(dom, &v, 1);
}

int vfdma_mem_unregister(struct vfdma_domain *dom, void *vaddr, uint64_t len)
{
	if (!dom)
		return -EINVAL;
	uint64_t a, b;
	int rc = vfd_mem_round(dom->granule, vaddr, len, &a, &b);
	if (rc)
		return rc;
	struct vfd_memreg *mr = vfd_memreg_get(dom, false);
	if (!mr)
		return -ENOENT;
	pthread_mutex_lock(&mr->lock);
	rc = unfold(mr, a, b);
	if (rc) {
		pthread_mutex_unlock(&mr->lock);
		return rc;
	}
	/* Every page must be registered; count the spans (bounds the regions). */
	size_t ns = 0;
	uint64_t pos = a;
	for (struct span *s = span_from(mr, a); pos < b; s = span_next(s), ns++) {
		if (!s || s->va > pos) {
			fold(mr, a, b);
			pthread_mutex_unlock(&mr->lock);
			return -ENOENT;
		}
		pos = s->va + s->len;
	}
	struct span *pool = NULL;
	struct vfdma_map_run *runs = vfd_calloc(ns, sizeof(*runs));
	struct region **dead = vfd_calloc(ns, sizeof(*dead));
	rc = runs && dead ? pool_fill(&pool, 2) : -ENOMEM;
	if (rc) {
		fold(mr, a, b);
		pthread_mutex_unlock(&mr->lock);
		vfd_free(runs);
		vfd_free(dead);
		pool_free(pool);
		return rc;
	}
	split_at(mr, a, &pool);
	split_at(mr, b, &pool);
	size_t nd = 0;
	for (struct span *s = span_from(mr, a), *next; s && s->va < b; s = next) {
		next = span_next(s);
		if (--s->count)
			continue;
		struct region *g = s->reg;
		g->live -= s->len;
		mr->reg_bytes -= s->len;
		span_erase(mr, s);
		pool_put(&pool, s);
		if (!g->live) {
			runs[nd] = (struct vfdma_map_run){(void *)(uintptr_t)g->va, g->len, g->iova};
			dead[nd++] = g;
			mr->nr_regions--;
			mr->region_bytes -= g->len;
		}
	}
	merge_range(mr, a, b, &pool);
	rc = nd ? vfdma_unmap_batch(dom, runs, nd) : 0;
	fold(mr, a, b);
	pthread_mutex_unlock(&mr->lock);
	for (size_t i = 0; i < nd; i++)
		vfd_free(dead[i]);
	vfd_free(dead);
	vfd_free(runs);
	pool_free(pool);
	return rc;
}

int vfdma_mem_get_stats(struct vfdma_domain *dom, struct vfdma_mem_stats *st)
{
	if (!dom || !st)
		return -EINVAL;
	*st = (struct vfdma_mem_stats){.budget = VFD_MEM_DEFAULT_BUDGET, .entry_bytes = 64};
	struct vfd_memreg *mr = vfd_memreg_get(dom, false);
	uint64_t meta = 0;
	if (mr) {
		pthread_mutex_lock(&mr->lock);
		st->registered_bytes = mr->reg_bytes;
		st->reg_mappings = mr->nr_regions;
		st->reg_mapped_bytes = mr->region_bytes;
		vfd_memcache_stats(mr, st);
		meta = sizeof(*mr) + mr->nr_spans * sizeof(struct span) +
		       (mr->nr_regions - mr->nr_folded) * sizeof(struct region) +
		       mr->nr_alloc * 64 +
		       mr->index.table_bytes;
		pthread_mutex_unlock(&mr->lock);
	}
	pthread_mutex_lock(&dom->lock);
	st->mappings = dom->nr_maps;
	meta += vfd_map_table_bytes(dom);
	pthread_mutex_unlock(&dom->lock);
	st->metadata_bytes = meta;
	struct vfdma_iova_stats ist;
	if (!vfdma_iova_get_stats(dom->iova, &ist))
		st->iova_metadata_bytes = ist.metadata_bytes;
	return 0;
}

void vfd_mem_destroy(struct vfdma_domain *dom)
{
	struct vfd_memreg *mr = dom->mem;
	if (!mr)
		return;
	struct vfd_rb_node *n;
	while ((n = vfd_rb_first(&mr->spans))) {
		struct span *s = span_of(n);
		span_erase(mr, s);
		s->reg->live -= s->len;
		if (!s->reg->live)
			vfd_free(s->reg);
		vfd_free(s);
	}
	vfd_memcache_free(mr);
	pthread_mutex_destroy(&mr->lock);
	vfd_free(mr);
	dom->mem = NULL;
}
