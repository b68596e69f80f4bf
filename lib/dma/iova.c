/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The IOVA allocator's API: argument checking, the tree path under the space
 * lock, the lock-free validation of small frees through the live maps, and
 * the fast paths of cached sizes (at the end of the file).
 * Placement and errors are documented in include/vfdma/iova.h; the tree is
 * iova_tree.c, the caches iova_cache.c.
 */
#include <errno.h>
#include <string.h>

#include "dma/iova_space.h"
#include "util/log.h"
#include "util/sys.h"

/* Order of the power of two that n granules (1..32) round up to: the bit
 * length of n - 1.  From a table of nibbles in a constant: no memory load,
 * and a short dependency chain (the magazine and the live byte hang on it). */
static inline unsigned order_of(uint64_t n)
{
	const uint64_t nib = 0x4444444433332210; /* bit lengths of 0..15 */
	uint64_t x = n - 1;

	return x > 15 ? 5 : (unsigned)(nib >> (4 * x)) & 15;
}

/*
 * Where block b (pfn >> k) of class k lives in the live map: with
 * VFDMA_IOVA_BYTEMAP a byte of its own; by default one bit, 8 blocks to a
 * byte.  Leaves of the map hold 16 KiB in 256 cache lines.  Neighbouring
 * blocks, which threads allocating at once usually get, never share a byte
 * or a line: b's low 8 bits pick the line; in a bit map its next 3 pick
 * the bit and the 6 above them the byte in the line (a leaf covers 2^17
 * blocks), in a byte map its next 6 the byte (2^14 blocks).  With 8
 * consecutive blocks to a byte, two threads freeing and allocating
 * neighbours took 60-75 ns per pair each instead of 11-20.
 *
 * live_off() is the only definition of the layout: the leaf's tag and the
 * byte's offset in the leaf, in few dependent steps, for the fast paths.
 */
static inline uint64_t live_off(const struct vfdma_iova_space *sp, uint64_t b, uint64_t *tag,
				uint8_t *mask)
{
	if (sp->compact) {
		*tag = b >> 17;
		*mask = (uint8_t)(1u << ((b >> 8) & 7));
		return (b & 255) << 6 | ((b >> 11) & 63);
	}
	*tag = b >> VFD_LIVE_LEAF_BITS;
	*mask = 1;
	return (b & 255) << 6 | ((b >> 8) & 63);
}

/* The same as the map's byte index, for the map's own lookups: the tag
 * above the leaf bits, and the inverse of vfd_livemap_pos() below. */
static inline uint64_t live_index(const struct vfdma_iova_space *sp, unsigned k, uint64_t pfn,
				  uint8_t *mask)
{
	uint64_t tag, off = live_off(sp, pfn >> k, &tag, mask);

	return tag << VFD_LIVE_LEAF_BITS | (off & 63) << 8 | off >> 6;
}

static inline unsigned log2_of(uint64_t x)
{
	return 63 - (unsigned)__builtin_clzll(x);
}

static _Atomic uint64_t space_ids;

static inline uint64_t to_bytes(const struct vfdma_iova_space *sp, uint64_t pages)
{
	/* saturate: a space may cover all 2^64 bytes */
	return pages >> (64 - sp->shift) ? UINT64_MAX : pages << sp->shift;
}

static void space_free(struct vfdma_iova_space *sp)
{
	vfd_iova_cache_fini(sp);
	for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++)
		vfd_livemap_fini(&sp->live[k]);
	if (sp->tree.nodes)
		vfd_itree_fini(&sp->tree);
	vfd_free(sp->ranges);
	pthread_mutex_destroy(&sp->lock);
	vfd_free(sp);
}

static int insert_resv(struct vfdma_iova_space *sp, uint64_t pfn, uint64_t n)
{
	bool grew;
	int rc = vfd_itree_prepare(&sp->tree, &grew);

	if (rc)
		return rc;
	vfd_itree_insert(&sp->tree, pfn, n, VFD_IK_RESV);
	return 0;
}

struct vfdma_iova_space *vfdma_iova_space_create(uint64_t granule,
						 const struct vfdma_iova_range *ranges,
						 size_t nr_ranges, unsigned int flags)
{
	struct vfdma_iova_space *sp;
	unsigned shift;
	size_t n = 0;

	if (granule < 4096 || (granule & (granule - 1)) || !ranges || !nr_ranges ||
	    (flags & ~(VFDMA_IOVA_NOCACHE | VFDMA_IOVA_BYTEMAP))) {
		errno = EINVAL;
		return NULL;
	}
	for (size_t i = 0; i < nr_ranges; i++) {
		if (ranges[i].first > ranges[i].last ||
		    (i && ranges[i].first <= ranges[i - 1].last)) {
			errno = EINVAL;
			return NULL;
		}
	}
	shift = log2_of(granule);
	sp = vfd_aligned_alloc(64, sizeof(*sp)); /* the fast paths' fields in one line */
	if (!sp) {
		errno = ENOMEM;
		return NULL;
	}
	memset(sp, 0, sizeof(*sp));
	pthread_mutex_init(&sp->lock, NULL);
	sp->id = atomic_fetch_add_explicit(&space_ids, 1, memory_order_relaxed) + 1;
	sp->granule = granule;
	sp->shift = shift;
	sp->nocache = flags & VFDMA_IOVA_NOCACHE;
	sp->compact = !(flags & VFDMA_IOVA_BYTEMAP);
	for (unsigned i = 0; i < VFD_IOVA_NSLOT; i++)
		atomic_init(&sp->slots[i], NULL);
	sp->ranges = vfd_calloc(nr_ranges, sizeof(*sp->ranges));
	if (!sp->ranges)
		goto nomem;
	for (size_t i = 0; i < nr_ranges; i++) {
		uint64_t f = ranges[i].first, l = ranges[i].last, mask = granule - 1;
		uint64_t lo = (f >> shift) + ((f & mask) != 0);
		uint64_t hi = (l >> shift) + ((l & mask) == mask);
		if (lo < hi) {
			sp->ranges[n].lo = lo;
			sp->ranges[n].hi = hi;
			sp->usable_pages += hi - lo;
			n++;
		}
	}
	if (!n) {
		space_free(sp);
		errno = EINVAL;
		return NULL;
	}
	sp->nranges = n;
	sp->end_pfn = sp->ranges[n - 1].hi;
	sp->cached_bytes = sp->nocache || shift > 58 ? 0 : (uint64_t)VFDMA_IOVA_CACHED_MAX << shift;
	sp->limit_all = (sp->end_pfn << shift) - 1; /* wraps to UINT64_MAX at 2^64 */
	if (vfd_itree_init(&sp->tree))
		goto nomem;
	/* The anchor first, then the holes below and between the ranges. */
	if (insert_resv(sp, sp->end_pfn, 0))
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		uint64_t from = i ? sp->ranges[i - 1].hi : 0;
		if (sp->ranges[i].lo > from && insert_resv(sp, from, sp->ranges[i].lo - from))
			goto nomem;
	}
	for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++) {
		uint8_t mask;
		vfd_livemap_init(&sp->live[k], live_index(sp, k, sp->end_pfn - 1, &mask));
	}
	VFD_DBG("iova: space %p granule %#llx, %zu ranges, %llu usable pages", (void *)sp,
		(unsigned long long)granule, n, (unsigned long long)sp->usable_pages);
	return sp;
nomem:
	space_free(sp);
	errno = ENOMEM;
	return NULL;
}

void vfdma_iova_space_destroy(struct vfdma_iova_space *sp)
{
	if (sp)
		space_free(sp);
}

/* Last usable page under @limit, or -ERANGE. */
static int limit_page(const struct vfdma_iova_space *sp, uint64_t limit, uint64_t *last)
{
	uint64_t mask = sp->granule - 1;
	uint64_t l = limit >> sp->shift;

	if ((limit & mask) != mask) {
		if (!l)
			return -ERANGE;
		l--;
	}
	if (l < sp->ranges[0].lo)
		return -ERANGE;
	if (l >= sp->end_pfn)
		l = sp->end_pfn - 1;
	*last = l;
	return 0;
}

/* Mark a block live; its byte exists.  A byte of its own is only written
 * by whoever holds the block: a plain store.  A shared byte needs an
 * atomic read-modify-write. */
static inline void set_live(const struct vfdma_iova_space *sp, _Atomic uint8_t *b, uint8_t mask)
{
	if (sp->compact)
		atomic_fetch_or_explicit(b, mask, memory_order_release);
	else
		atomic_store_explicit(b, 1, memory_order_release);
}

static void mark_live(struct vfdma_iova_space *sp, unsigned k, uint64_t pfn)
{
	uint8_t mask;
	uint64_t idx = live_index(sp, k, pfn, &mask);
	set_live(sp, vfd_iova_live_byte(sp, k, idx), mask);
}

/* Clear a live mark; false if it was not set (never allocated, freed). */
static inline bool clear_live(_Atomic uint8_t *b, uint8_t mask)
{
	return atomic_fetch_and_explicit(b, (uint8_t)~mask, memory_order_acq_rel) & mask;
}

static int tree_alloc(struct vfdma_iova_space *sp, const struct vfd_ifit *q, int k,
		      uint64_t *pfn)
{
	bool grew;
	int rc;

	pthread_mutex_lock(&sp->lock);
	rc = vfd_itree_find_fit(&sp->tree, q, pfn);
	if (rc)
		goto out;
	rc = vfd_itree_prepare(&sp->tree, &grew);
	if (rc)
		goto out;
	_Atomic uint8_t *b = NULL;
	uint8_t mask = 0;
	if (k >= 0 && !sp->nocache) {
		b = vfd_livemap_make(&sp->live[k], live_index(sp, (unsigned)k, *pfn, &mask));
		if (!b) {
			vfd_itree_unprepare(&sp->tree, grew);
			rc = -ENOMEM;
			goto out;
		}
		/* in a large space its line is likely cold: fetch it during the insert */
		__builtin_prefetch((const void *)b, 1);
	}
	vfd_itree_insert(&sp->tree, *pfn, q->s, k >= 0 ? VFD_IK_FAST : VFD_IK_ALLOC);
	sp->nr_busy++;
	sp->busy_pages += q->s;
	if (b)
		set_live(sp, b, mask);
out:
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

/* Everything vfdma_iova_alloc() does not decide on its fast path. */
static __attribute__((noinline)) int alloc_general(struct vfdma_iova_space *sp, uint64_t size,
						   uint64_t align, uint64_t limit, uint64_t *iova)
{
	struct vfd_ifit q;
	uint64_t pfn;
	int k = -1, rc;

	if (!sp || !iova || !size || align < sp->granule || (align & (align - 1)))
		return -EINVAL;
	if (size > UINT64_MAX - (sp->granule - 1))
		return -EOVERFLOW;
	rc = limit_page(sp, limit, &q.last);
	if (rc)
		return rc;
	q.s = (size + sp->granule - 1) >> sp->shift;
	q.a = align >> sp->shift;
	if (q.s <= VFDMA_IOVA_CACHED_MAX) {
		k = (int)order_of(q.s);
		q.s = UINT64_C(1) << k;
		if (q.a < q.s)
			q.a = q.s;
		if (!sp->nocache && q.a == q.s && vfd_iova_cache_get(sp, (unsigned)k, q.last, &pfn)) {
			mark_live(sp, (unsigned)k, pfn);
			*iova = pfn << sp->shift;
			return 0;
		}
	}
	rc = tree_alloc(sp, &q, k, &pfn);
	if (rc == -ENOSPC && !sp->nocache && vfd_iova_cache_flush(sp))
		rc = tree_alloc(sp, &q, k, &pfn);
	if (rc)
		return rc;
	*iova = pfn << sp->shift;
	return 0;
}

/* Pages of [iova, iova + size) after the common checks of fixed/reserve/free. */
static int range_args(const struct vfdma_iova_space *sp, uint64_t iova, uint64_t size,
		      uint64_t *pfn, uint64_t *n)
{
	if (!sp || !size || (iova & (sp->granule - 1)))
		return -EINVAL;
	if (size > UINT64_MAX - (sp->granule - 1))
		return -EOVERFLOW;
	*n = (size + sp->granule - 1) >> sp->shift;
	*pfn = iova >> sp->shift;
	if (*n - 1 > (UINT64_MAX >> sp->shift) - *pfn)
		return -EOVERFLOW;
	return 0;
}

static bool inside_one_range(const struct vfdma_iova_space *sp, uint64_t pfn, uint64_t n)
{
	size_t lo = 0, hi = sp->nranges;

	while (lo < hi) { /* the first range ending past pfn */
		size_t mid = (lo + hi) / 2;
		if (sp->ranges[mid].hi <= pfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < sp->nranges && sp->ranges[lo].lo <= pfn && n <= sp->ranges[lo].hi - pfn;
}

static int place(struct vfdma_iova_space *sp, uint64_t iova, uint64_t size, bool resv)
{
	uint64_t pfn, n;
	enum vfd_ikind busy;
	bool grew, flushed = false;
	int rc = range_args(sp, iova, size, &pfn, &n);

	if (rc)
		return rc;
	if (!inside_one_range(sp, pfn, n))
		return -ERANGE;
again:
	pthread_mutex_lock(&sp->lock);
	if (!vfd_itree_range_free(&sp->tree, pfn, n, &busy)) {
		pthread_mutex_unlock(&sp->lock);
		if (busy == VFD_IK_FAST && !sp->nocache && !flushed) {
			/* maybe only cached blocks are in the way */
			vfd_iova_cache_flush(sp);
			flushed = true;
			goto again;
		}
		return -EBUSY;
	}
	rc = vfd_itree_prepare(&sp->tree, &grew);
	if (!rc) {
		vfd_itree_insert(&sp->tree, pfn, n, resv ? VFD_IK_RESV : VFD_IK_ALLOC);
		if (resv) {
			sp->nr_resv++;
			sp->resv_pages += n;
		} else {
			sp->nr_busy++;
			sp->busy_pages += n;
		}
	}
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

int vfdma_iova_alloc_fixed(struct vfdma_iova_space *sp, uint64_t iova, uint64_t size)
{
	return place(sp, iova, size, false);
}

int vfdma_iova_reserve(struct vfdma_iova_space *sp, uint64_t iova, uint64_t size)
{
	return place(sp, iova, size, true);
}

void vfd_iova_release_locked(struct vfdma_iova_space *sp, uint64_t pfn, unsigned k)
{
	vfd_itree_remove(&sp->tree, pfn);
	sp->nr_busy--;
	sp->busy_pages -= UINT64_C(1) << k;
}

/* Everything vfdma_iova_free() does not decide on its fast path. */
static __attribute__((noinline)) int free_general(struct vfdma_iova_space *sp, uint64_t iova,
						  uint64_t size)
{
	uint64_t pfn, n, have;
	enum vfd_ikind kind;
	int rc = range_args(sp, iova, size, &pfn, &n);

	if (rc)
		return rc;
	if (pfn >= sp->end_pfn)
		return -ENOENT;
	unsigned k = n <= VFDMA_IOVA_CACHED_MAX ? order_of(n) : 0;
	uint64_t c = n <= VFDMA_IOVA_CACHED_MAX ? UINT64_C(1) << k : 0;
	if (c && !(pfn & (c - 1)) && !sp->nocache) {
		uint8_t mask;
		uint64_t idx = live_index(sp, k, pfn, &mask);
		_Atomic uint8_t *b = vfd_iova_live_byte(sp, k, idx);
		if (b && clear_live(b, mask)) {
			vfd_iova_cache_put(sp, k, pfn);
			return 0;
		}
	}
	/* Not a live small allocation of this size: ask the tree. */
	pthread_mutex_lock(&sp->lock);
	if (!vfd_itree_lookup(&sp->tree, pfn, &kind, &have)) {
		rc = -ENOENT;
	} else if (kind == VFD_IK_RESV) {
		rc = -EPERM;
	} else if (kind == VFD_IK_FAST && (!sp->nocache || c != have)) {
		/* with caches, the user's copy is gone (cached, or being freed):
		 * a double free; without, every small block in the tree is live */
		rc = c == have ? -ENOENT : -EMSGSIZE;
	} else if (kind != VFD_IK_FAST && have != n) {
		rc = -EMSGSIZE;
	} else {
		vfd_itree_remove(&sp->tree, pfn);
		sp->nr_busy--;
		sp->busy_pages -= have;
		rc = 0;
	}
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

/*
 * The fast paths of cached sizes are the bodies of vfdma_iova_alloc() and
 * vfdma_iova_free() below.  They take only the usual call: valid
 * arguments, no limit below the top of the space, this thread's slot and
 * live-map leaf already in its thread-local shortcuts.  On any doubt (an
 * argument to check, a limit, a shortcut to set up, an empty magazine, a
 * free the live map does not confirm) they hand the call, before changing
 * anything, to the general path.  Every way out is a tail call, so that
 * the common case saves few registers.
 */

/* The fast paths' rare ends, out of line: a live byte outside the
 * thread's leaf shortcut, a full magazine. */
static __attribute__((noinline)) int alloc_mark_slow(struct vfdma_iova_space *sp, unsigned k,
						     uint64_t pfn, uint64_t *iova)
{
	mark_live(sp, k, pfn); /* its byte exists: the block was live before */
	*iova = pfn << sp->shift;
	return 0;
}

static __attribute__((noinline)) int free_put_full(struct vfdma_iova_space *sp,
						   struct vfd_islot *sl, unsigned k, uint64_t pfn)
{
	vfd_iova_cache_put_slow(sp, sl, k, pfn); /* unlocks */
	return 0;
}

int vfdma_iova_alloc(struct vfdma_iova_space *sp, uint64_t size, uint64_t align,
		     uint64_t limit, uint64_t *iova)
{
	struct vfd_iova_tls *t = vfd_iova_tls_get();

	/* size in [1, cached_bytes] (none without caches), align a power of
	 * two from the granule up to the block size, no limit */
	if (__builtin_expect(!sp || !iova || size - 1 >= sp->cached_bytes ||
				     (align & (align - 1)) || align < sp->granule ||
				     limit < sp->limit_all,
			     0))
		return alloc_general(sp, size, align, limit, iova);
	unsigned k = order_of(((size - 1) >> sp->shift) + 1);
	struct vfd_islot *sl = t->slot;
	if (__builtin_expect(align > sp->granule << k || t->id != sp->id || !sl, 0))
		return alloc_general(sp, size, align, limit, iova);

	vfd_slot_lock(sl);
	struct vfd_mag *m = sl->cur[k];
	if (__builtin_expect(!m->n, 0)) {
		vfd_slot_unlock(sl);
		return alloc_general(sp, size, align, limit, iova);
	}
	uint64_t pfn = m->pfn[--m->n];
	vfd_slot_unlock(sl);
	/* every cached block fits a limit of limit_all: it is below the anchor */
	uint8_t mask;
	uint64_t tag, off = live_off(sp, pfn >> k, &tag, &mask);
	if (__builtin_expect(t->tag[k] != tag, 0))
		return alloc_mark_slow(sp, k, pfn, iova);
	set_live(sp, t->leaf[k] + off, mask);
	*iova = pfn << sp->shift;
	return 0;
}

int vfdma_iova_free(struct vfdma_iova_space *sp, uint64_t iova, uint64_t size)
{
	struct vfd_iova_tls *t = vfd_iova_tls_get();

	if (__builtin_expect(!sp || size - 1 >= sp->cached_bytes, 0))
		return free_general(sp, iova, size);
	unsigned k = order_of(((size - 1) >> sp->shift) + 1);
	struct vfd_islot *sl = t->slot;
	/* aligned to its block (so to the granule); an address past the end
	 * has no live mark, which sends it to the general path */
	if (__builtin_expect((iova & ((sp->granule << k) - 1)) || t->id != sp->id || !sl, 0))
		return free_general(sp, iova, size);
	uint64_t pfn = iova >> sp->shift;
	uint8_t mask;
	uint64_t tag, off = live_off(sp, pfn >> k, &tag, &mask);
	if (__builtin_expect(t->tag[k] != tag || !clear_live(t->leaf[k] + off, mask), 0))
		return free_general(sp, iova, size);

	vfd_slot_lock(sl);
	struct vfd_mag *m = sl->cur[k];
	if (__builtin_expect(m->n == VFD_MAG_SIZE, 0))
		return free_put_full(sp, sl, k, pfn);
	m->pfn[m->n++] = pfn;
	vfd_slot_unlock(sl);
	return 0;
}

int vfdma_iova_flush(struct vfdma_iova_space *sp)
{
	if (!sp)
		return -EINVAL;
	vfd_iova_cache_flush(sp);
	return 0;
}

int vfdma_iova_get_stats(struct vfdma_iova_space *sp, struct vfdma_iova_stats *st)
{
	uint64_t cb = 0, cp = 0, db, dp;
	size_t cmem = 0, dmem, lmem = 0;

	if (!sp || !st)
		return -EINVAL;
	vfd_iova_cache_count_slots(sp, &cb, &cp, &cmem);
	pthread_mutex_lock(&sp->lock);
	vfd_iova_cache_count_depot(sp, &db, &dp, &dmem);
	for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++)
		lmem += sp->live[k].bytes;
	memset(st, 0, sizeof(*st));
	st->granule = sp->granule;
	st->cached = cb + db;
	st->allocs = sp->nr_busy - st->cached;
	st->reservations = sp->nr_resv;
	st->usable_bytes = to_bytes(sp, sp->usable_pages);
	st->free_bytes = to_bytes(sp, sp->usable_pages - sp->resv_pages - sp->busy_pages + cp + dp);
	st->largest_free = to_bytes(sp, vfd_itree_max_gap(&sp->tree));
	st->metadata_bytes = sizeof(*sp) + sp->nranges * sizeof(*sp->ranges) +
			     vfd_itree_mem(&sp->tree) + lmem + cmem + dmem;
	pthread_mutex_unlock(&sp->lock);
	return 0;
}

int vfd_iova_check(struct vfdma_iova_space *sp, const char **what)
{
	pthread_mutex_lock(&sp->lock);
	int rc = vfd_itree_check(&sp->tree, what);
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

const void *vfd_iova_live_addr(struct vfdma_iova_space *sp, uint64_t iova, uint64_t size,
			       unsigned *bit)
{
	uint64_t n = ((size - 1) >> sp->shift) + 1;
	unsigned k = order_of(n);
	uint8_t mask;

	if (sp->nocache || n > VFDMA_IOVA_CACHED_MAX)
		return NULL;
	uint64_t idx = live_index(sp, k, iova >> sp->shift, &mask);
	*bit = (unsigned)__builtin_ctz(mask);
	return (const void *)vfd_livemap_find(&sp->live[k], idx);
}

struct walk_ctx {
	int (*fn)(void *ctx, uint64_t start, uint64_t n, int kind);
	void *ctx;
};

static int walk_fn(void *ctx, uint64_t start, uint64_t n, enum vfd_ikind kind)
{
	struct walk_ctx *w = ctx;
	return w->fn(w->ctx, start, n, (int)kind);
}

int vfd_iova_walk(struct vfdma_iova_space *sp,
		  int (*fn)(void *ctx, uint64_t start, uint64_t n, int kind), void *ctx)
{
	struct walk_ctx w = { fn, ctx };

	pthread_mutex_lock(&sp->lock);
	int rc = vfd_itree_walk(&sp->tree, walk_fn, &w);
	pthread_mutex_unlock(&sp->lock);
	return rc;
}
