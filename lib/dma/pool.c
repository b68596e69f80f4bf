/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The DMA pool (include/vfdma/dma.h): arenas, their pages, page runs for
 * large buffers, growth and the return of idle arenas.  The size classes
 * and the per-thread caches are in pool_cache.c; pool_impl.h has the
 * picture.
 *
 * Every arena is mapped into the domain once, when it is added; a buffer's
 * IOVA is the arena's IOVA plus the buffer's offset in it.  An address is
 * found in its arena by a two-level table indexed by the address's 2 MiB
 * granule (arenas are at least 2 MiB aligned and sized), written under the
 * pool lock, read without it.
 */
#include <errno.h>
#include <string.h>

#include "dma/arena_impl.h"
#include "dma/pool_impl.h"
#include "util/log.h"
#include "util/sys.h"
#include "vfdma/pci.h"

#define SZ_2M (UINT64_C(1) << 21)
/* page indices of an arena are 32-bit */
#define POOL_MAX_SIZE	   (UINT64_C(1) << 43)
#define PAGE		   (UINT64_C(1) << VFD_POOL_PAGE_SHIFT)
#define DEFAULT_ARENA_SIZE (UINT64_C(64) << 20)

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* ---- the page map of an arena (pool lock held) ---- */

/* First index in [i, end) whose bit equals @set, or end. */
static uint32_t find_bit(const uint64_t *m, uint32_t i, uint32_t end, bool set)
{
	while (i < end) {
		uint64_t w = (set ? m[i / 64] : ~m[i / 64]) >> (i % 64);
		if (w) {
			uint32_t r = i + (uint32_t)__builtin_ctzll(w);
			return r < end ? r : end;
		}
		i = (i | 63) + 1;
	}
	return end;
}

static void set_bits(uint64_t *m, uint32_t i, uint32_t n, bool set)
{
	for (uint32_t end = i + n; i < end;) {
		uint32_t b = i % 64, len = end - i < 64 - b ? end - i : 64 - b;
		uint64_t mask = (len == 64 ? ~UINT64_C(0) : (UINT64_C(1) << len) - 1) << b;
		m[i / 64] = set ? m[i / 64] | mask : m[i / 64] & ~mask;
		i += len;
	}
}

/* First fit of @npages free pages starting at a multiple of @align_pages. */
int64_t vfd_pool_pages_get(struct vfd_parena *pa, uint32_t npages, uint32_t align_pages)
{
	uint32_t i = 0;

	while ((uint64_t)i + npages <= pa->npages) {
		i = find_bit(pa->freemap, i, pa->npages, true);
		i = (uint32_t)round_up(i, align_pages);
		if ((uint64_t)i + npages > pa->npages)
			break;
		uint32_t busy = find_bit(pa->freemap, i, i + npages, false);
		if (busy == i + npages) {
			set_bits(pa->freemap, i, npages, false);
			if (!pa->used_pages && !pa->fresh)
				pa->heap->pool->idle_bytes -= pa->size;
			pa->fresh = false;
			pa->used_pages += npages;
			return i;
		}
		i = busy + 1;
	}
	return -1;
}

static void radix_set(struct vfdma_pool *p, struct vfd_parena *pa, struct vfd_parena *val)
{
	const unsigned mask = (1u << VFD_POOL_RADIX_BITS) - 1;
	uint64_t first = (uintptr_t)pa->base >> VFD_POOL_RADIX_SHIFT;
	uint64_t last = ((uintptr_t)pa->base + pa->size - 1) >> VFD_POOL_RADIX_SHIFT;

	for (uint64_t key = first; key <= last; key++)
		__atomic_store_n(&p->radix[key >> VFD_POOL_RADIX_BITS][key & mask], val,
				 __ATOMIC_RELEASE);
}

/* Take an arena off the pool (pool lock held); the caller reaps it later. */
static void detach(struct vfdma_pool *p, struct vfd_parena *pa, struct vfd_parena **reap)
{
	if (!pa->used_pages && !pa->fresh)
		p->idle_bytes -= pa->size;
	if (pa->prev)
		pa->prev->next = pa->next;
	else
		p->arenas = pa->next;
	if (pa->next)
		pa->next->prev = pa->prev;
	radix_set(p, pa, NULL);
	p->bytes -= pa->size;
	p->releases++;
	pa->next = *reap;
	*reap = pa;
}

void vfd_pool_pages_put(struct vfd_parena *pa, uint32_t first, uint32_t npages,
			struct vfd_parena **reap)
{
	struct vfdma_pool *p = pa->heap->pool;

	set_bits(pa->freemap, first, npages, true);
	pa->used_pages -= npages;
	if (pa->used_pages)
		return;
	/* idle now: keep it, or give it back */
	bool keep = (p->flags & VFDMA_POOL_KEEP_IDLE) || (!(p->flags & VFDMA_POOL_RELEASE_IDLE) &&
							  p->idle_bytes + pa->size <= p->idle_keep);
	p->idle_bytes += pa->size;
	if (!keep)
		detach(p, pa, reap);
}

/* ---- arenas ---- */

static void parena_free(struct vfd_parena *pa)
{
	vfd_free(pa->freemap);
	vfd_free(pa->run);
	vfd_free(pa->chunk);
	vfd_free(pa);
}

/* Slabs are found through their chunks; free each once (at destroy). */
static void parena_free_slabs(struct vfd_parena *pa)
{
	uint32_t per = 1u << (VFD_POOL_CHUNK_SHIFT - VFD_POOL_PAGE_SHIFT);

	for (uint32_t c = 0; c < pa->npages / per;) {
		struct vfd_slab *s = pa->chunk[c];
		if (!s) {
			c++;
			continue;
		}
		c += s->npages / per;
		vfd_free(s);
	}
}

static void arena_put(struct vfdma_pool *p, struct vfd_parena *pa);

int vfd_pool_reap(struct vfdma_pool *p, struct vfd_parena *reap)
{
	int first = 0;

	while (reap) {
		struct vfd_parena *pa = reap;
		reap = pa->next;
		int rc = pa->premapped ? 0 : vfdma_unmap(p->dom, pa->iova, pa->size);
		if (rc < 0) {
			VFD_ERR("pool: unmap of arena at iova 0x%llx failed: %d",
				(unsigned long long)pa->iova, rc);
			first = first ? first : rc;
		}
		arena_put(p, pa);
		parena_free(pa);
	}
	return first;
}

/* Make the radix leaves an arena needs (pool lock held). */
static int radix_prepare(struct vfdma_pool *p, const struct vfd_parena *pa)
{
	uint64_t first = (uintptr_t)pa->base >> VFD_POOL_RADIX_SHIFT;
	uint64_t last = ((uintptr_t)pa->base + pa->size - 1) >> VFD_POOL_RADIX_SHIFT;

	if (last >> (2 * VFD_POOL_RADIX_BITS))
		return -ERANGE; /* beyond 47-bit addresses: never from a plain mmap */
	for (uint64_t top = first >> VFD_POOL_RADIX_BITS; top <= last >> VFD_POOL_RADIX_BITS;
	     top++) {
		if (p->radix[top])
			continue;
		struct vfd_parena **leaf = vfd_calloc(1u << VFD_POOL_RADIX_BITS, sizeof(*leaf));
		if (!leaf)
			return -ENOMEM;
		__atomic_store_n(&p->radix[top], leaf, __ATOMIC_RELEASE);
	}
	return 0;
}

/*
 * The IOVA of premapped memory [va, va + size): it must be translated at
 * contiguous IOVAs all along (it may be several mappings, e.g. one per
 * page).
 */
static int premapped_iova(struct vfdma_domain *dom, const char *va, uint64_t size, uint64_t *iova)
{
	uint64_t first = 0;
	for (uint64_t off = 0; off < size;) {
		uint64_t iv, len;
		int rc = vfdma_vaddr_to_iova(dom, va + off, &iv, &len);
		if (rc < 0)
			return rc == -ENOENT ? -EFAULT : rc;
		if (off == 0)
			first = iv;
		else if (iv != first + off)
			return -EFAULT;
		off += len;
	}
	*iova = first;
	return 0;
}

/* Get an arena's memory: the pool's own arena, or from the source. */
static int arena_get(struct vfdma_pool *p, struct vfd_heap *h, uint64_t size,
		     struct vfdma_arena_info *ai, struct vfdma_arena **arena)
{
	*arena = NULL;
	if (!p->src.get) {
		*arena = vfdma_arena_create(size, h->node, &p->aopts);
		if (!*arena)
			return -errno;
		return vfdma_arena_get_info(*arena, ai);
	}
	uint64_t pgsize = 0;
	void *va = p->src.get(p->src.ctx, size, h->node, &pgsize);
	if (!va)
		return -ENOMEM;
	if (((uintptr_t)va & (SZ_2M - 1)) || pgsize < PAGE || (pgsize & (pgsize - 1))) {
		VFD_ERR("pool: the memory source gave %p (page size %llu): not 2 MiB-aligned", va,
			(unsigned long long)pgsize);
		p->src.put(p->src.ctx, va, size);
		return -EINVAL;
	}
	*ai = (struct vfdma_arena_info){.addr = va, .size = size, .page_size = pgsize,
					.node_requested = h->node, .node = h->node};
	return 0;
}

static void arena_put(struct vfdma_pool *p, struct vfd_parena *pa)
{
	if (p->src.get)
		p->src.put(p->src.ctx, pa->base, pa->size);
	else
		vfdma_arena_destroy(pa->arena);
}

static int parena_make(struct vfdma_pool *p, struct vfd_heap *h, uint64_t size,
		       struct vfd_parena **out)
{
	struct vfdma_arena_info ai;
	struct vfd_parena *pa = vfd_calloc(1, sizeof(*pa));
	int rc = -ENOMEM;

	if (!pa)
		return -ENOMEM;
	rc = arena_get(p, h, size, &ai, &pa->arena);
	if (rc < 0) {
		vfdma_arena_destroy(pa->arena);
		vfd_free(pa);
		return rc;
	}
	pa->heap = h;
	pa->base = ai.addr;
	pa->size = ai.size;
	pa->pgsize = ai.page_size;
	pa->npages = (uint32_t)(ai.size / PAGE);
	pa->fresh = true;
	pa->freemap = vfd_calloc((pa->npages + 63) / 64, sizeof(uint64_t));
	pa->run = vfd_calloc(pa->npages, sizeof(uint32_t));
	pa->chunk = vfd_calloc(ai.size >> VFD_POOL_CHUNK_SHIFT, sizeof(*pa->chunk));
	rc = -ENOMEM;
	if (!pa->freemap || !pa->run || !pa->chunk)
		goto fail;
	set_bits(pa->freemap, 0, pa->npages, true);
	pa->premapped = p->src.get && p->src.premapped;
	if (pa->premapped)
		rc = premapped_iova(p->dom, pa->base, pa->size, &pa->iova);
	else
		rc = vfdma_map(p->dom, pa->base, pa->size, VFDMA_PROT_RW, 0, &pa->iova);
	if (rc < 0)
		goto fail;
	uint64_t both = (uintptr_t)pa->base | pa->iova;
	pa->align = both ? both & -both : UINT64_C(1) << 63;
	if (pa->align < SZ_2M)
		VFD_LOG_ONCE(VFDMA_LOG_WARN,
			     "pool: the domain gave an arena an IOVA aligned to only %llu bytes",
			     (unsigned long long)pa->align);
	*out = pa;
	return 0;
fail:
	arena_put(p, pa);
	parena_free(pa);
	return rc;
}

int vfd_pool_grow(struct vfd_heap *h, uint64_t need, uint64_t gen)
{
	struct vfdma_pool *p = h->pool;
	struct vfd_parena *pa = NULL;
	int rc = 0;

	pthread_mutex_lock(&p->grow_lock);
	pthread_mutex_lock(&p->lock);
	bool added = p->gen != gen; /* someone grew meanwhile: look again first */
	uint64_t size = need <= p->arena_size ? p->arena_size : round_up(need, p->arena_size);
	bool full = p->max_bytes && p->bytes + size > p->max_bytes;
	pthread_mutex_unlock(&p->lock);
	if (added)
		goto out;
	if (full) {
		rc = -ENOMEM;
		goto out;
	}
	rc = parena_make(p, h, size, &pa);
	if (rc < 0)
		goto out;
	pthread_mutex_lock(&p->lock);
	rc = radix_prepare(p, pa);
	if (rc == 0) {
		radix_set(p, pa, pa);
		pa->next = p->arenas;
		if (p->arenas)
			p->arenas->prev = pa;
		p->arenas = pa;
		p->bytes += pa->size;
		p->grows++;
		__atomic_store_n(&p->gen, p->gen + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&p->lock);
	if (rc < 0) {
		pa->next = NULL;
		vfd_pool_reap(p, pa);
	}
out:
	pthread_mutex_unlock(&p->grow_lock);
	return rc;
}

/* ---- the pool ---- */

static void pool_free(struct vfdma_pool *p)
{
	for (unsigned i = 0; i <= VFD_POOL_MAX_NODES; i++)
		vfd_pool_heap_free(p->heaps[i]);
	for (unsigned i = 0; i < (1u << VFD_POOL_RADIX_BITS); i++)
		vfd_free(p->radix[i]);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->grow_lock);
	vfd_free(p);
}

struct vfdma_pool *vfdma_pool_create(struct vfdma_domain *dom, int node,
				     const struct vfdma_pool_opts *opts)
{
	const unsigned int flags = VFDMA_POOL_RELEASE_IDLE | VFDMA_POOL_KEEP_IDLE;
	const uint64_t pgs = VFDMA_PGSIZE_4K | VFDMA_PGSIZE_2M | VFDMA_PGSIZE_1G;
	struct vfdma_pool_opts o = {0};
	struct vfdma_arena_opts ao = {0};
	int rc;

	if (opts)
		o = *opts;
	if (o.arena)
		ao = *o.arena;
	if (o.source && (!o.source->get || !o.source->put)) {
		errno = EINVAL;
		return NULL;
	}
	if (!dom || (o.flags & ~flags) || (o.flags & flags) == flags ||
	    o.arena_size >= POOL_MAX_SIZE || node < VFDMA_NUMA_ANY || node >= VFD_POOL_MAX_NODES ||
	    (ao.flags & ~VFDMA_ARENA_PREFERRED) || (ao.pgsizes & ~pgs)) {
		errno = EINVAL;
		return NULL;
	}
	if (node == VFDMA_NUMA_ANY && ao.dev) {
		struct vfdma_device_info di;
		rc = vfdma_device_get_info(ao.dev, &di);
		if (rc < 0) {
			errno = -rc;
			return NULL;
		}
		if (di.numa_node >= 0 && di.numa_node < VFD_POOL_MAX_NODES)
			node = di.numa_node;
	}
	if (node >= 0 && (rc = vfd_numa_node_check(node)) < 0) {
		errno = -rc;
		return NULL;
	}
	struct vfdma_pool *p = vfd_calloc(1, sizeof(*p));
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->grow_lock, NULL);
	p->dom = dom;
	p->node = node;
	p->flags = o.flags;
	p->arena_size = round_up(o.arena_size ? o.arena_size : DEFAULT_ARENA_SIZE, SZ_2M);
	p->max_bytes = o.max_bytes;
	p->idle_keep = o.idle_keep ? o.idle_keep : p->arena_size;
	p->aopts = ao;
	p->aopts.dev = NULL; /* the node is resolved here, once */
	if (o.source)
		p->src = *o.source;
	return p;
}

int vfdma_pool_destroy(struct vfdma_pool *pool)
{
	struct vfdma_pool_stats st;
	int first = 0;

	if (!pool)
		return 0;
	if (vfdma_pool_get_stats(pool, &st) == 0 && st.buffers)
		VFD_WARN("pool: destroyed with %llu buffers still allocated",
			 (unsigned long long)st.buffers);
	while (pool->arenas) {
		struct vfd_parena *pa = pool->arenas;
		pool->arenas = pa->next;
		parena_free_slabs(pa);
		pa->next = NULL;
		int rc = vfd_pool_reap(pool, pa);
		first = first ? first : rc;
	}
	pool_free(pool);
	return first;
}

/* The heap of @node (VFDMA_NUMA_ANY: the pool's), made on first use. */
static struct vfd_heap *heap_get(struct vfdma_pool *p, int node, int *err)
{
	if (node == VFDMA_NUMA_ANY)
		node = p->node;
	struct vfd_heap **slot = &p->heaps[node + 1];
	struct vfd_heap *h = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (__builtin_expect(h != NULL, 1))
		return h;
	if (node >= 0 && (*err = vfd_numa_node_check(node)) < 0)
		return NULL;
	pthread_mutex_lock(&p->lock);
	h = *slot;
	if (!h) {
		h = vfd_calloc(1, sizeof(*h));
		if (h) {
			h->pool = p;
			h->node = node;
			vfd_pool_heap_init(h);
			__atomic_store_n(slot, h, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (!h)
		*err = -ENOMEM;
	return h;
}

/* A run of whole pages (pool lock for the search; grows when nothing fits). */
static void *large_alloc(struct vfd_heap *h, uint64_t size, uint64_t align, int *err)
{
	struct vfdma_pool *p = h->pool;
	uint32_t npages = (uint32_t)(round_up(size, PAGE) / PAGE);
	uint32_t ap = (uint32_t)((align > PAGE ? align : PAGE) / PAGE);

	for (;;) {
		pthread_mutex_lock(&p->lock);
		uint64_t gen = p->gen;
		for (struct vfd_parena *pa = p->arenas; pa; pa = pa->next) {
			if (pa->heap != h)
				continue;
			int64_t i = vfd_pool_pages_get(pa, npages, ap);
			if (i >= 0) {
				pa->run[i] = npages;
				pthread_mutex_unlock(&p->lock);
				return pa->base + (uint64_t)i * PAGE;
			}
		}
		pthread_mutex_unlock(&p->lock);
		*err = vfd_pool_grow(h, (uint64_t)npages * PAGE, gen);
		if (*err < 0)
			return NULL;
	}
}

static int large_free(struct vfdma_pool *p, struct vfd_parena *pa, void *v)
{
	uint64_t off = (uint64_t)((char *)v - pa->base);
	struct vfd_parena *reap = NULL;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	uint32_t i = (uint32_t)(off / PAGE), n = pa->run[i];
	if ((off % PAGE) || !n) {
		rc = -EINVAL; /* not the start of a live run */
	} else {
		pa->run[i] = 0;
		vfd_pool_pages_put(pa, i, n, &reap);
	}
	pthread_mutex_unlock(&p->lock);
	if (reap)
		vfd_pool_reap(p, reap);
	return rc;
}

void *vfdma_dma_alloc(struct vfdma_pool *pool, uint64_t size, uint64_t align, int node,
		      uint64_t *iova)
{
	int err = -EINVAL;
	void *v = NULL;

	if (!pool || !size || size >= POOL_MAX_SIZE || (align & (align - 1)) ||
	    align > VFD_POOL_MAX_ALIGN || node < VFDMA_NUMA_ANY || node >= VFD_POOL_MAX_NODES)
		goto fail;
	struct vfd_heap *h = heap_get(pool, node, &err);
	if (!h)
		goto fail;
	int k = vfd_pool_class(size, align);
	v = k >= 0 ? vfd_pool_small_alloc(h, (unsigned)k, &err) : large_alloc(h, size, align, &err);
	if (!v)
		goto fail;
	if (iova) {
		struct vfd_parena *pa = vfd_pool_lookup(pool, (uintptr_t)v);
		*iova = pa->iova + (uint64_t)((char *)v - pa->base);
	}
	return v;
fail:
	errno = -err;
	return NULL;
}

int vfdma_dma_free(struct vfdma_pool *pool, void *vaddr)
{
	if (!pool || !vaddr)
		return -EINVAL;
	struct vfd_parena *pa = vfd_pool_lookup(pool, (uintptr_t)vaddr);
	if (!pa)
		return -EINVAL;
	uint64_t off = (uint64_t)((char *)vaddr - pa->base);
	struct vfd_slab *s =
	    __atomic_load_n(&pa->chunk[off >> VFD_POOL_CHUNK_SHIFT], __ATOMIC_ACQUIRE);
	if (s)
		return vfd_pool_small_free(pa, s, vaddr);
	return large_free(pool, pa, vaddr);
}

int vfdma_pool_trim(struct vfdma_pool *pool, uint64_t keep_bytes, uint64_t *released)
{
	struct vfd_parena *reap = NULL;
	uint64_t kept = 0, freed = 0;

	if (!pool)
		return -EINVAL;
	for (unsigned i = 0; i <= VFD_POOL_MAX_NODES; i++) {
		struct vfd_heap *h = __atomic_load_n(&pool->heaps[i], __ATOMIC_ACQUIRE);
		if (h)
			vfd_pool_heap_flush(h, &reap);
	}
	pthread_mutex_lock(&pool->lock);
	/* arenas the flush released were over the idle budget already */
	for (struct vfd_parena *pa = reap; pa; pa = pa->next)
		freed += pa->size;
	for (struct vfd_parena *pa = pool->arenas, *next; pa; pa = next) {
		next = pa->next;
		if (pa->used_pages)
			continue;
		if (kept + pa->size <= keep_bytes) {
			kept += pa->size;
			continue;
		}
		freed += pa->size;
		detach(pool, pa, &reap);
	}
	pthread_mutex_unlock(&pool->lock);
	if (released)
		*released = freed;
	return vfd_pool_reap(pool, reap);
}

int vfdma_pool_get_stats(struct vfdma_pool *pool, struct vfdma_pool_stats *st)
{
	const uint32_t per = 1u << (VFD_POOL_CHUNK_SHIFT - VFD_POOL_PAGE_SHIFT);

	if (!pool || !st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	/* caches first: their locks come before the pool lock */
	for (unsigned i = 0; i <= VFD_POOL_MAX_NODES; i++) {
		struct vfd_heap *h = __atomic_load_n(&pool->heaps[i], __ATOMIC_ACQUIRE);
		if (h)
			st->cached_bytes += vfd_pool_heap_cached(h);
	}
	pthread_mutex_lock(&pool->lock);
	for (struct vfd_parena *pa = pool->arenas; pa; pa = pa->next) {
		st->arenas++;
		st->arena_bytes += pa->size;
		st->arenas_1g += pa->pgsize == VFDMA_PGSIZE_1G;
		st->arenas_2m += pa->pgsize == VFDMA_PGSIZE_2M;
		st->arenas_4k += pa->pgsize == VFDMA_PGSIZE_4K;
		if (!pa->used_pages) {
			st->idle_arenas++;
			st->idle_bytes += pa->size;
			continue;
		}
		for (uint32_t c = 0; c < pa->npages / per; c++) {
			struct vfd_slab *s = __atomic_load_n(&pa->chunk[c], __ATOMIC_ACQUIRE);
			if (!s || s->first_page != c * per)
				continue;
			for (unsigned w = 0; w < VFD_POOL_MAXOBJ / 64; w++) {
				uint64_t n = (uint64_t)__builtin_popcountll(
				    __atomic_load_n(&s->live[w], __ATOMIC_RELAXED));
				st->buffers += n;
				st->buffer_bytes += n << (s->cls + VFD_POOL_MIN_SHIFT);
			}
		}
		for (uint32_t i = 0; i < pa->npages; i++) {
			if (pa->run[i]) {
				st->buffers++;
				st->buffer_bytes += (uint64_t)pa->run[i] * PAGE;
			}
		}
	}
	st->grows = pool->grows;
	st->releases = pool->releases;
	pthread_mutex_unlock(&pool->lock);
	return 0;
}
