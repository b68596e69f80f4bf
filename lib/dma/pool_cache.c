/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The DMA pool's size classes: slabs, per-thread magazines, the depot (see
 * pool_impl.h for the picture and the lock order).
 *
 * The hot paths are vfd_pool_small_alloc() and vfd_pool_small_free() when
 * the thread's magazine has an object or room: an uncontended spin lock on
 * the thread's slot, an array push or pop, the two-load address lookup and
 * one atomic on the slab's live bit.  Nothing else: no mutex, no system
 * call, no allocation.
 */
#include <errno.h>
#include <string.h>

#include "dma/pool_impl.h"
#include "util/sys.h"
#include "util/tslot.h"

static inline uint64_t cls_size(unsigned k)
{
	return UINT64_C(1) << (k + VFD_POOL_MIN_SHIFT);
}

/* A slab holds 64 KiB of small objects, or 4 objects of the big classes. */
static inline uint64_t slab_bytes(unsigned k)
{
	uint64_t four = 4 * cls_size(k);
	return four > (UINT64_C(1) << VFD_POOL_CHUNK_SHIFT) ? four
							    : UINT64_C(1) << VFD_POOL_CHUNK_SHIFT;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline void slot_lock(struct vfd_pslot *sl)
{
	while (__atomic_exchange_n(&sl->lock, 1, __ATOMIC_ACQUIRE)) {
		while (__atomic_load_n(&sl->lock, __ATOMIC_RELAXED))
			cpu_relax();
	}
}

static inline void slot_unlock(struct vfd_pslot *sl)
{
	__atomic_store_n(&sl->lock, 0, __ATOMIC_RELEASE);
}

void vfd_pool_heap_init(struct vfd_heap *h)
{
	for (unsigned k = 0; k < VFD_POOL_NCLASS; k++) {
		struct vfd_pclass *c = &h->cls[k];
		uint64_t cap = (UINT64_C(1) << VFD_POOL_MAX_SHIFT) / cls_size(k);
		pthread_mutex_init(&c->lock, NULL);
		/* a thread caches at most about 2 MiB of a class */
		c->cap = cap > VFD_POOL_MAG ? VFD_POOL_MAG : (uint32_t)cap;
	}
}

static void slot_free(struct vfd_pslot *sl)
{
	for (unsigned k = 0; k < VFD_POOL_NCLASS; k++) {
		vfd_free(sl->cur[k]);
		vfd_free(sl->prev[k]);
	}
	vfd_free(sl);
}

/* This thread's slot in @h, made on first use; NULL if out of memory. */
static struct vfd_pslot *slot_get(struct vfd_heap *h)
{
	struct vfd_pslot **p = &h->slots[vfd_tslot() % VFD_POOL_NSLOT];
	struct vfd_pslot *sl = __atomic_load_n(p, __ATOMIC_ACQUIRE);

	if (__builtin_expect(sl != NULL, 1))
		return sl;
	sl = vfd_aligned_alloc(64, sizeof(*sl));
	if (!sl)
		return NULL;
	memset(sl, 0, sizeof(*sl));
	for (unsigned k = 0; k < VFD_POOL_NCLASS; k++) {
		sl->cur[k] = vfd_calloc(1, sizeof(struct vfd_pmag));
		sl->prev[k] = vfd_calloc(1, sizeof(struct vfd_pmag));
		if (!sl->cur[k] || !sl->prev[k]) {
			slot_free(sl);
			return NULL;
		}
	}
	struct vfd_pslot *none = NULL;
	if (!__atomic_compare_exchange_n(p, &none, sl, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		slot_free(sl);
		return none;
	}
	return sl;
}

static void list_add(struct vfd_pclass *c, struct vfd_slab *s)
{
	s->prev = NULL;
	s->next = c->partial;
	if (c->partial)
		c->partial->prev = s;
	c->partial = s;
	s->listed = true;
}

static void list_del(struct vfd_pclass *c, struct vfd_slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		c->partial = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->listed = false;
}

/*
 * A new slab of class @k from any arena of @h (class lock held).  Returns
 * NULL with *err 0 when no arena has room (the caller grows the heap), or
 * -ENOMEM.
 */
static struct vfd_slab *slab_new(struct vfd_heap *h, unsigned k, int *err)
{
	struct vfdma_pool *p = h->pool;
	uint32_t npages = (uint32_t)(slab_bytes(k) >> VFD_POOL_PAGE_SHIFT);
	struct vfd_slab *s = vfd_malloc(sizeof(*s));

	*err = 0;
	if (!s) {
		*err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&p->lock);
	for (struct vfd_parena *pa = p->arenas; pa; pa = pa->next) {
		if (pa->heap != h)
			continue;
		/* aligned to the slab's size: objects are naturally aligned */
		int64_t first = vfd_pool_pages_get(pa, npages, npages);
		if (first < 0)
			continue;
		memset(s, 0, sizeof(*s));
		s->pa = pa;
		s->base = pa->base + ((uint64_t)first << VFD_POOL_PAGE_SHIFT);
		s->cls = k;
		s->nobj = (uint32_t)(slab_bytes(k) / cls_size(k));
		s->navail = s->nobj;
		s->first_page = (uint32_t)first;
		s->npages = npages;
		for (uint32_t i = 0; i < s->nobj; i++)
			s->avail[i / 64] |= UINT64_C(1) << (i % 64);
		uint32_t c0 = (uint32_t)first >> (VFD_POOL_CHUNK_SHIFT - VFD_POOL_PAGE_SHIFT);
		uint32_t nc = npages >> (VFD_POOL_CHUNK_SHIFT - VFD_POOL_PAGE_SHIFT);
		for (uint32_t c = c0; c < c0 + nc; c++)
			__atomic_store_n(&pa->chunk[c], s, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&p->lock);
		return s;
	}
	pthread_mutex_unlock(&p->lock);
	vfd_free(s);
	return NULL;
}

/* Give an empty slab's pages back (class lock held). */
static void slab_release(struct vfd_pclass *c, struct vfd_slab *s, struct vfd_parena **reap)
{
	struct vfd_parena *pa = s->pa;
	struct vfdma_pool *p = pa->heap->pool;
	uint32_t c0 = s->first_page >> (VFD_POOL_CHUNK_SHIFT - VFD_POOL_PAGE_SHIFT);
	uint32_t nc = s->npages >> (VFD_POOL_CHUNK_SHIFT - VFD_POOL_PAGE_SHIFT);

	if (s->listed)
		list_del(c, s);
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = c0; i < c0 + nc; i++)
		__atomic_store_n(&pa->chunk[i], NULL, __ATOMIC_RELEASE);
	vfd_pool_pages_put(pa, s->first_page, s->npages, reap);
	pthread_mutex_unlock(&p->lock);
	vfd_free(s);
}

/* The slab of a cached object: its arena is alive while the object is cached. */
static struct vfd_slab *slab_of(struct vfdma_pool *p, void *v)
{
	struct vfd_parena *pa = vfd_pool_lookup(p, (uintptr_t)v);
	uint64_t off = (uint64_t)((char *)v - pa->base);
	return __atomic_load_n(&pa->chunk[off >> VFD_POOL_CHUNK_SHIFT], __ATOMIC_ACQUIRE);
}

/* A cached object goes back to its slab (class lock held). */
static void slab_put(struct vfd_heap *h, struct vfd_pclass *c, void *v, struct vfd_parena **reap)
{
	struct vfd_slab *s = slab_of(h->pool, v);
	uint32_t i = (uint32_t)((uint64_t)((char *)v - s->base) >> (s->cls + VFD_POOL_MIN_SHIFT));

	s->avail[i / 64] |= UINT64_C(1) << (i % 64);
	if (++s->navail == s->nobj)
		slab_release(c, s, reap);
	else if (!s->listed)
		list_add(c, s);
}

static void mag_drain(struct vfd_heap *h, struct vfd_pclass *c, struct vfd_pmag *m,
		      struct vfd_parena **reap)
{
	while (m->n)
		slab_put(h, c, m->obj[--m->n], reap);
}

/*
 * Fill @m with up to @want free objects from the slabs (class lock held).
 * Returns 0, or -ENOMEM; an empty @m means the heap needs an arena.
 */
static int mag_fill(struct vfd_heap *h, unsigned k, struct vfd_pmag *m, uint32_t want)
{
	struct vfd_pclass *c = &h->cls[k];

	while (m->n < want) {
		struct vfd_slab *s = c->partial;
		if (!s) {
			int err;
			s = slab_new(h, k, &err);
			if (!s)
				return m->n ? 0 : err;
			list_add(c, s);
		}
		for (unsigned w = 0; w < VFD_POOL_MAXOBJ / 64 && m->n < want && s->navail; w++) {
			while (s->avail[w] && m->n < want) {
				unsigned b = (unsigned)__builtin_ctzll(s->avail[w]);
				s->avail[w] &= s->avail[w] - 1;
				s->navail--;
				m->obj[m->n++] =
				    s->base + ((uint64_t)(w * 64 + b) << (k + VFD_POOL_MIN_SHIFT));
			}
		}
		if (!s->navail)
			list_del(c, s);
	}
	return 0;
}

/* The user has @v now: set its live bit. */
static void mark_live(struct vfdma_pool *p, void *v)
{
	struct vfd_slab *s = slab_of(p, v);
	uint32_t i = (uint32_t)((uint64_t)((char *)v - s->base) >> (s->cls + VFD_POOL_MIN_SHIFT));
	__atomic_fetch_or(&s->live[i / 64], UINT64_C(1) << (i % 64), __ATOMIC_ACQ_REL);
}

void *vfd_pool_small_alloc(struct vfd_heap *h, unsigned k, int *err)
{
	struct vfdma_pool *p = h->pool;
	struct vfd_pclass *c = &h->cls[k];
	struct vfd_pslot *sl = slot_get(h);
	void *v;

	if (!sl) {
		*err = -ENOMEM;
		return NULL;
	}
	for (;;) {
		slot_lock(sl);
		struct vfd_pmag *m = sl->cur[k];
		if (__builtin_expect(m->n != 0, 1)) {
			v = m->obj[--m->n];
			slot_unlock(sl);
			break;
		}
		if (sl->prev[k]->n) {
			sl->cur[k] = sl->prev[k];
			sl->prev[k] = m;
			m = sl->cur[k];
			v = m->obj[--m->n];
			slot_unlock(sl);
			break;
		}
		/* both empty: a full magazine from the depot, or objects from slabs */
		uint64_t gen = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
		struct vfd_pmag *spare = NULL;
		int rc = 0;
		pthread_mutex_lock(&c->lock);
		if (c->nfull) {
			sl->cur[k] = c->full[--c->nfull];
			if (c->nempty < VFD_POOL_DEPOT)
				c->empty[c->nempty++] = m;
			else
				spare = m;
			m = sl->cur[k];
		} else {
			rc = mag_fill(h, k, m, c->cap > 1 ? c->cap / 2 : 1);
		}
		pthread_mutex_unlock(&c->lock);
		if (m->n) {
			v = m->obj[--m->n];
			slot_unlock(sl);
			vfd_free(spare);
			break;
		}
		slot_unlock(sl);
		vfd_free(spare);
		if (!rc)
			rc = vfd_pool_grow(h, slab_bytes(k), gen);
		if (rc < 0) {
			*err = rc;
			return NULL;
		}
	}
	mark_live(p, v);
	return v;
}

int vfd_pool_small_free(struct vfd_parena *pa, struct vfd_slab *s, void *v)
{
	struct vfd_heap *h = pa->heap;
	unsigned k = s->cls;
	struct vfd_pclass *c = &h->cls[k];
	uint64_t off = (uint64_t)((char *)v - s->base);
	struct vfd_parena *reap = NULL;

	if (off & (cls_size(k) - 1))
		return -EINVAL;
	uint32_t i = (uint32_t)(off >> (k + VFD_POOL_MIN_SHIFT));
	uint64_t bit = UINT64_C(1) << (i % 64);
	if (!(__atomic_fetch_and(&s->live[i / 64], ~bit, __ATOMIC_ACQ_REL) & bit))
		return -EINVAL; /* double free, or never handed out */

	struct vfd_pslot *sl = slot_get(h);
	if (__builtin_expect(sl == NULL, 0)) {
		pthread_mutex_lock(&c->lock);
		slab_put(h, c, v, &reap);
		pthread_mutex_unlock(&c->lock);
		return vfd_pool_reap(h->pool, reap);
	}
	slot_lock(sl);
	struct vfd_pmag *m = sl->cur[k];
	if (__builtin_expect(m->n < c->cap, 1)) {
		m->obj[m->n++] = v;
		slot_unlock(sl);
		return 0;
	}
	struct vfd_pmag *pm = sl->prev[k];
	if (pm->n == c->cap) {
		/* both full: the previous one goes to the depot, or back to slabs */
		pthread_mutex_lock(&c->lock);
		struct vfd_pmag *e = NULL;
		if (c->nfull < VFD_POOL_DEPOT)
			e = c->nempty ? c->empty[--c->nempty] : vfd_malloc(sizeof(*e));
		if (e) {
			c->full[c->nfull++] = pm;
			e->n = 0;
			pm = sl->prev[k] = e;
		} else {
			mag_drain(h, c, pm, &reap);
		}
		pthread_mutex_unlock(&c->lock);
	}
	sl->cur[k] = pm;
	sl->prev[k] = m;
	pm->obj[pm->n++] = v;
	slot_unlock(sl);
	return reap ? vfd_pool_reap(h->pool, reap) : 0;
}

void vfd_pool_heap_flush(struct vfd_heap *h, struct vfd_parena **reap)
{
	for (unsigned i = 0; i < VFD_POOL_NSLOT; i++) {
		struct vfd_pslot *sl = __atomic_load_n(&h->slots[i], __ATOMIC_ACQUIRE);
		if (!sl)
			continue;
		slot_lock(sl);
		for (unsigned k = 0; k < VFD_POOL_NCLASS; k++) {
			if (!sl->cur[k]->n && !sl->prev[k]->n)
				continue;
			pthread_mutex_lock(&h->cls[k].lock);
			mag_drain(h, &h->cls[k], sl->cur[k], reap);
			mag_drain(h, &h->cls[k], sl->prev[k], reap);
			pthread_mutex_unlock(&h->cls[k].lock);
		}
		slot_unlock(sl);
	}
	for (unsigned k = 0; k < VFD_POOL_NCLASS; k++) {
		struct vfd_pclass *c = &h->cls[k];
		pthread_mutex_lock(&c->lock);
		while (c->nfull) {
			struct vfd_pmag *m = c->full[--c->nfull];
			mag_drain(h, c, m, reap);
			if (c->nempty < VFD_POOL_DEPOT)
				c->empty[c->nempty++] = m;
			else
				vfd_free(m);
		}
		pthread_mutex_unlock(&c->lock);
	}
}

uint64_t vfd_pool_heap_cached(struct vfd_heap *h)
{
	uint64_t bytes = 0;

	for (unsigned i = 0; i < VFD_POOL_NSLOT; i++) {
		struct vfd_pslot *sl = __atomic_load_n(&h->slots[i], __ATOMIC_ACQUIRE);
		if (!sl)
			continue;
		slot_lock(sl);
		for (unsigned k = 0; k < VFD_POOL_NCLASS; k++)
			bytes += (uint64_t)(sl->cur[k]->n + sl->prev[k]->n) * cls_size(k);
		slot_unlock(sl);
	}
	for (unsigned k = 0; k < VFD_POOL_NCLASS; k++) {
		struct vfd_pclass *c = &h->cls[k];
		pthread_mutex_lock(&c->lock);
		for (uint32_t j = 0; j < c->nfull; j++)
			bytes += (uint64_t)c->full[j]->n * cls_size(k);
		pthread_mutex_unlock(&c->lock);
	}
	return bytes;
}

void vfd_pool_heap_free(struct vfd_heap *h)
{
	if (!h)
		return;
	for (unsigned i = 0; i < VFD_POOL_NSLOT; i++) {
		if (h->slots[i])
			slot_free(h->slots[i]);
	}
	for (unsigned k = 0; k < VFD_POOL_NCLASS; k++) {
		struct vfd_pclass *c = &h->cls[k];
		for (uint32_t j = 0; j < c->nfull; j++)
			vfd_free(c->full[j]);
		for (uint32_t j = 0; j < c->nempty; j++)
			vfd_free(c->empty[j]);
		pthread_mutex_destroy(&c->lock);
	}
	vfd_free(h);
}
