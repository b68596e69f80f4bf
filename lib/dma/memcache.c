/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The mapping cache (include/vfdma/mem.h, design in memreg.c's comment):
 * lock-free hits through a CONST vfd_xlate index, misses and CLOCK
 * eviction under mr->lock.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "vfdma/dma.h"
#include "vfdma/mem.h"
#include "dma/memreg.h"
#include "iommu/domain.h"
#include "util/sys.h"

#define DEAD VFD_MENT_DEAD
#define MERGE_MAX 16 /* overlapping idle entries a miss folds into its new one */

_Static_assert(sizeof(struct ment) <= 64, "a cache entry fits one cache line");

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/*
 * Take a reference on the entry @e if it is live; then it cannot be evicted
 * or reused until the reference is dropped.
 */
static bool entry_get(struct ment *e)
{
	uint32_t r = __atomic_load_n(&e->refs, __ATOMIC_RELAXED);
	do {
		if (r & DEAD)
			return false;
	} while (!__atomic_compare_exchange_n(&e->refs, &r, r + 1, true, __ATOMIC_ACQUIRE,
					      __ATOMIC_RELAXED));
	return true;
}

static bool entry_covers(const struct ment *e, uint64_t va, uint64_t len)
{
	uint64_t ev = ld(&e->va);
	return ev <= va && va - ev + len <= ld(&e->len);
}

/* The lock-free hit: 0 with a reference taken, or -ENOENT. */
static int try_hit(struct vfd_memreg *mr, uint64_t va, uint64_t len, unsigned prot,
		   uint64_t *iova)
{
	struct ment *e = (struct ment *)(uintptr_t)vfd_xlate_get(&mr->index, va);
	if (!e || !entry_get(e))
		return -ENOENT;
	if (!entry_covers(e, va, len) || (prot & ~__atomic_load_n(&e->prot, __ATOMIC_RELAXED))) {
		__atomic_sub_fetch(&e->refs, 1, __ATOMIC_RELEASE);
		return -ENOENT;
	}
	*iova = ld(&e->iova) + (va - ld(&e->va));
	if (!__atomic_load_n(&e->referenced, __ATOMIC_RELAXED))
		__atomic_store_n(&e->referenced, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&e->hits, 1, __ATOMIC_RELAXED);
	return 0;
}

static void ring_add(struct vfd_memreg *mr, struct ment *e)
{
	if (!mr->hand) {
		e->next = e->prev = e;
		mr->hand = e;
		return;
	}
	/* Just behind the hand: the last one the sweep reaches. */
	e->next = mr->hand;
	e->prev = mr->hand->prev;
	e->prev->next = e;
	mr->hand->prev = e;
}

static void ring_del(struct vfd_memreg *mr, struct ment *e)
{
	if (mr->hand == e)
		mr->hand = e->next == e ? NULL : e->next;
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

/* A gather of unmaps; issued when full and at the end. */
struct gather {
	struct vfdma_map_run runs[16];
	size_t n;
	int err;
};

static void gather_flush(struct vfd_memreg *mr, struct gather *g)
{
	int rc = g->n ? vfdma_unmap_batch(mr->dom, g->runs, g->n) : 0;
	if (rc && !g->err)
		g->err = rc;
	g->n = 0;
}

/*
 * An entry marked DEAD leaves the index and the ring; its unmap joins the
 * gather, and then it waits on the free list for reuse.
 */
static void entry_retire(struct vfd_memreg *mr, struct ment *e, struct gather *g)
{
	uint64_t va = ld(&e->va), len = ld(&e->len);
	vfd_xlate_remove(&mr->index, va, len, (uintptr_t)e, NULL, NULL);
	ring_del(mr, e);
	mr->nr_entries--;
	mr->cached_bytes -= len;
	mr->evictions++;
	mr->retired_hits += ld(&e->hits);
	g->runs[g->n++] = (struct vfdma_map_run){(void *)(uintptr_t)va, len, ld(&e->iova)};
	if (g->n == sizeof(g->runs) / sizeof(g->runs[0]))
		gather_flush(mr, g);
	e->next = mr->free;
	mr->free = e;
}

/* CLOCK: evict idle entries (not @keep) until the cache holds @target bytes. */
static int evict_to(struct vfd_memreg *mr, uint64_t target, struct ment *keep)
{
	struct gather g = {.n = 0, .err = 0};
	/* Two turns: the first may only clear CLOCK bits. */
	for (uint64_t steps = 2 * mr->nr_entries + 1; mr->cached_bytes > target && mr->hand &&
						      steps;
	     steps--) {
		struct ment *e = mr->hand;
		mr->hand = e->next;
		if (e == keep || __atomic_load_n(&e->refs, __ATOMIC_RELAXED))
			continue;
		if (__atomic_load_n(&e->referenced, __ATOMIC_RELAXED)) {
			__atomic_store_n(&e->referenced, 0, __ATOMIC_RELAXED);
			continue;
		}
		uint32_t zero = 0;
		if (__atomic_compare_exchange_n(&e->refs, &zero, DEAD, false, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			entry_retire(mr, e, &g);
	}
	gather_flush(mr, &g);
	return g.err;
}

static struct ment *entry_alloc(struct vfd_memreg *mr)
{
	struct ment *e = mr->free;
	if (e) {
		mr->free = e->next;
		return e;
	}
	e = vfd_aligned_alloc(64, 64);
	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->refs = DEAD;
	mr->nr_alloc++;
	return e;
}

static void entry_unalloc(struct vfd_memreg *mr, struct ment *e)
{
	e->next = mr->free;
	mr->free = e;
}

/*
 * The miss, under mr->lock: map [a, b) as a new entry holding one
 * reference.  Idle entries overlapping it are folded into it (their range
 * joins the new mapping and they are evicted once it exists), so entries
 * rarely overlap; an entry in use stays, its pages shadowed in the index.
 */
static int miss(struct vfd_memreg *mr, uint64_t a, uint64_t b, unsigned prot,
		struct ment **out)
{
	struct ment *fold[MERGE_MAX];
	size_t nf = 0;
	for (uint64_t p = a; p < b && nf < MERGE_MAX; p += mr->page) {
		struct ment *e = (struct ment *)(uintptr_t)vfd_xlate_get(&mr->index, p);
		if (!e || (nf && fold[nf - 1] == e))
			continue;
		bool seen = false;
		for (size_t i = 0; i < nf; i++)
			seen |= fold[i] == e;
		if (seen)
			continue;
		uint32_t zero = 0;
		if (__atomic_compare_exchange_n(&e->refs, &zero, DEAD, false, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			fold[nf++] = e;
	}
	uint64_t na = a, nb = b;
	unsigned nprot = prot;
	for (size_t i = 0; i < nf; i++) {
		uint64_t ev = ld(&fold[i]->va), ee = ev + ld(&fold[i]->len);
		na = ev < na ? ev : na;
		nb = ee > nb ? ee : nb;
		nprot |= fold[i]->prot;
	}
	struct ment *e = entry_alloc(mr);
	int rc = e ? vfd_xlate_prepare(&mr->index, na, nb - na) : -ENOMEM;
	uint64_t iova = 0;
	if (!rc)
		rc = vfd_map_hidden(mr->dom, (void *)(uintptr_t)na, nb - na, nprot, &iova);
	if (rc) {
		if (e)
			entry_unalloc(mr, e);
		for (size_t i = 0; i < nf; i++) /* nothing changed: revive them */
			__atomic_store_n(&fold[i]->refs, 0, __ATOMIC_RELEASE);
		return rc;
	}
	__atomic_store_n(&e->va, na, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, nb - na, __ATOMIC_RELAXED);
	__atomic_store_n(&e->iova, iova, __ATOMIC_RELAXED);
	__atomic_store_n(&e->prot, (uint8_t)nprot, __ATOMIC_RELAXED);
	/* No CLOCK bit yet: only a hit after this miss makes it "recently used". */
	__atomic_store_n(&e->referenced, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->hits, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&e->refs, 1, __ATOMIC_RELEASE);
	vfd_xlate_set(&mr->index, na, nb - na, (uintptr_t)e, false);
	ring_add(mr, e);
	mr->nr_entries++;
	mr->cached_bytes += nb - na;
	mr->misses++;
	struct gather g = {.n = 0, .err = 0};
	for (size_t i = 0; i < nf; i++) {
		entry_retire(mr, fold[i], &g);
		mr->evictions--; /* folded, not evicted */
	}
	gather_flush(mr, &g);
	*out = e;
	return 0;
}

int vfdma_mem_acquire(struct vfdma_domain *dom, const void *vaddr, uint64_t len,
		      unsigned int prot, uint64_t *iova)
{
	if (!dom || !iova || !prot || (prot & ~VFDMA_PROT_RW))
		return -EINVAL;
	uint64_t a, b, va = (uintptr_t)vaddr;
	int rc = vfd_mem_round(dom->granule, vaddr, len, &a, &b);
	if (rc)
		return rc;
	struct vfd_memreg *mr = vfd_memreg_get(dom, true);
	if (!mr)
		return -ENOMEM;
	if (!try_hit(mr, va, len, prot, iova))
		return 0;
	uint64_t t, l;
	if (!vfdma_vaddr_to_iova(dom, vaddr, &t, &l) && l >= len) {
		__atomic_add_fetch(&mr->passthrough, 1, __ATOMIC_RELAXED);
		*iova = t;
		return 0;
	}
	pthread_mutex_lock(&mr->lock);
	if (!try_hit(mr, va, len, prot, iova)) {
		pthread_mutex_unlock(&mr->lock);
		return 0;
	}
	struct ment *e;
	rc = miss(mr, a, b, prot, &e);
	if (!rc) {
		*iova = ld(&e->iova) + (va - ld(&e->va));
		evict_to(mr, mr->budget, e);
	}
	pthread_mutex_unlock(&mr->lock);
	return rc;
}

/*
 * Drop the caller's reference on @e if @e is the entry that gave @iova for
 * @va.  A temporary reference keeps @e from being reused while it is
 * checked.  1 done, 0 not this entry, -EINVAL no reference to drop.
 */
static int entry_put(struct ment *e, uint64_t va, uint64_t iova)
{
	if (!entry_get(e))
		return 0;
	if (!entry_covers(e, va, 1) || ld(&e->iova) + (va - ld(&e->va)) != iova) {
		__atomic_sub_fetch(&e->refs, 1, __ATOMIC_RELEASE);
		return 0;
	}
	uint32_t r = __atomic_load_n(&e->refs, __ATOMIC_RELAXED);
	do {
		if (r < 2) {
			__atomic_sub_fetch(&e->refs, 1, __ATOMIC_RELEASE);
			return -EINVAL;
		}
	} while (!__atomic_compare_exchange_n(&e->refs, &r, r - 2, true, __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
	return 1;
}

int vfdma_mem_release(struct vfdma_domain *dom, const void *vaddr, uint64_t iova)
{
	if (!dom || !vaddr)
		return -EINVAL;
	uint64_t va = (uintptr_t)vaddr;
	struct vfd_memreg *mr = vfd_memreg_get(dom, false);
	if (mr) {
		struct ment *e = (struct ment *)(uintptr_t)vfd_xlate_get(&mr->index, va);
		int rc = e ? entry_put(e, va, iova) : 0;
		if (rc)
			return rc < 0 ? rc : 0;
		/* Shadowed in the index by a newer entry: look through the ring. */
		pthread_mutex_lock(&mr->lock);
		struct ment *x = mr->hand;
		for (uint64_t i = 0; x && i < mr->nr_entries && !rc; i++, x = x->next)
			rc = entry_put(x, va, iova);
		pthread_mutex_unlock(&mr->lock);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	uint64_t t;
	if (!vfdma_vaddr_to_iova(dom, vaddr, &t, NULL) && t == iova)
		return 0; /* passthrough: nothing was taken */
	return -ENOENT;
}

int vfd_mem_cache_xlate(struct vfdma_domain *dom, uint64_t va, uint64_t *iova, uint64_t *len)
{
	struct vfd_memreg *mr = vfd_memreg_get(dom, false);
	struct ment *e = mr ? (struct ment *)(uintptr_t)vfd_xlate_get(&mr->index, va) : NULL;
	if (!e || !entry_get(e))
		return -ENOENT;
	int rc = -ENOENT;
	if (entry_covers(e, va, 1)) {
		*iova = ld(&e->iova) + (va - ld(&e->va));
		*len = ld(&e->len) - (va - ld(&e->va));
		rc = 0;
	}
	__atomic_sub_fetch(&e->refs, 1, __ATOMIC_RELEASE);
	return rc;
}

int vfdma_mem_set_budget(struct vfdma_domain *dom, uint64_t bytes)
{
	if (!dom)
		return -EINVAL;
	struct vfd_memreg *mr = vfd_memreg_get(dom, true);
	if (!mr)
		return -ENOMEM;
	pthread_mutex_lock(&mr->lock);
	mr->budget = bytes;
	int rc = evict_to(mr, bytes, NULL);
	pthread_mutex_unlock(&mr->lock);
	return rc;
}

void vfd_memcache_stats(struct vfd_memreg *mr, struct vfdma_mem_stats *st)
{
	st->cache_entries = mr->nr_entries;
	st->cache_bytes = mr->cached_bytes;
	st->budget = mr->budget;
	st->misses = mr->misses;
	st->evictions = mr->evictions;
	st->hits = mr->retired_hits;
	st->entry_bytes = 64;
	struct ment *e = mr->hand;
	for (uint64_t i = 0; e && i < mr->nr_entries; i++, e = e->next) {
		st->hits += ld(&e->hits);
		st->cache_in_use += __atomic_load_n(&e->refs, __ATOMIC_RELAXED) != 0;
	}
	st->passthrough = __atomic_load_n(&mr->passthrough, __ATOMIC_RELAXED);
}

void vfd_memcache_free(struct vfd_memreg *mr)
{
	while (mr->hand) {
		struct ment *e = mr->hand;
		ring_del(mr, e);
		vfd_free(e);
	}
	while (mr->free) {
		struct ment *e = mr->free;
		mr->free = e->next;
		vfd_free(e);
	}
	vfd_xlate_fini(&mr->index);
}
