/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Software IOMMU page table: map, unmap, split, merge and dirty reads (the
 * format and the dirty protocol: sim_pt_impl.h; the DMA engines that walk
 * it: sim_dma.c).
 */
#include "iommu/sim_pt_impl.h"

#include <errno.h>
#include <sched.h>
#include <string.h>

#include "util/bits.h"
#include "util/sys.h"

static uint64_t prot_bits(unsigned prot)
{
	return (prot & VFD_SIM_READ ? PTE_R : 0) | (prot & VFD_SIM_WRITE ? PTE_W : 0);
}

static struct table *table_new(void)
{
	struct table *t = vfd_aligned_alloc(4096, sizeof(*t));
	if (t)
		memset(t, 0, sizeof(*t));
	return t;
}

static bool table_empty(struct table *t)
{
	for (unsigned i = 0; i < ENTRIES; i++)
		if (atomic_load_explicit(&t->e[i], memory_order_relaxed))
			return false;
	return true;
}

/* Free a table and everything below it (no engine may be walking it). */
static void table_free_tree(struct table *t, unsigned level)
{
	if (level > 0) {
		for (unsigned i = 0; i < ENTRIES; i++) {
			uint64_t v = atomic_load_explicit(&t->e[i], memory_order_relaxed);
			if ((v & PTE_P) && !(v & PTE_LEAF))
				table_free_tree(entry_table(v), level - 1);
		}
	}
	vfd_free(t);
}

/*
 * Grace period: wait until no engine is inside an access that started
 * before now.  Engines publish their start epoch, then fence, then walk;
 * we unlinked first, then bump the epoch (a full barrier), then look.
 */
static void grace_wait(struct vfd_simpt *pt)
{
	uint64_t now = atomic_fetch_add(&pt->epoch, 1);
	pthread_mutex_lock(&pt->lock);
	for (int i = 0; i < MAX_ENGINES; i++) {
		struct vfd_simdma *e = pt->engines[i];
		if (!e)
			continue;
		for (;;) {
			uint64_t a = atomic_load(&e->active);
			if (a == 0 || a > now)
				break;
			sched_yield();
		}
	}
	pthread_mutex_unlock(&pt->lock);
}

/* A table unlinked from the tree: freed once the operation ends. */
static void retire(struct vfd_simpt *pt, struct table *t)
{
	if (pt->nretired == pt->cap_retired) {
		size_t cap = pt->cap_retired ? pt->cap_retired * 2 : 16;
		struct table **r = vfd_realloc(pt->retired, cap * sizeof(*r));
		if (!r) {
			/* No room to defer: wait for the engines now instead. */
			grace_wait(pt);
			vfd_free(t);
			return;
		}
		pt->retired = r;
		pt->cap_retired = cap;
	}
	pt->retired[pt->nretired++] = t;
}

static void reclaim(struct vfd_simpt *pt)
{
	if (!pt->nretired)
		return;
	grace_wait(pt);
	for (size_t i = 0; i < pt->nretired; i++)
		vfd_free(pt->retired[i]);
	pt->nretired = 0;
}

struct vfd_simpt *vfd_simpt_create(uint64_t pgsizes, unsigned va_bits)
{
	if (!(pgsizes & VFD_SIM_PG_4K) ||
	    (pgsizes & ~(VFD_SIM_PG_4K | VFD_SIM_PG_2M | VFD_SIM_PG_1G)) ||
	    (va_bits != 39 && va_bits != 48)) {
		errno = EINVAL;
		return NULL;
	}
	struct vfd_simpt *pt = vfd_calloc(1, sizeof(*pt));
	if (!pt) {
		errno = ENOMEM;
		return NULL;
	}
	pt->root = table_new();
	if (!pt->root) {
		vfd_free(pt);
		errno = ENOMEM;
		return NULL;
	}
	pt->top = va_bits == 39 ? 2 : 3;
	pt->va_bits = va_bits;
	pt->pgsizes = pgsizes;
	atomic_init(&pt->epoch, 1);
	pthread_mutex_init(&pt->lock, NULL);
	return pt;
}

void vfd_simpt_destroy(struct vfd_simpt *pt)
{
	if (!pt)
		return;
	reclaim(pt);
	table_free_tree(pt->root, pt->top);
	vfd_free(pt->retired);
	pthread_mutex_destroy(&pt->lock);
	vfd_free(pt);
}

uint64_t vfd_simpt_pgsizes(const struct vfd_simpt *pt)
{
	return pt->pgsizes;
}

static bool range_ok(const struct vfd_simpt *pt, uint64_t iova, uint64_t size)
{
	return size && !((iova | size) & (VFD_SIM_PG_4K - 1)) && iova + size > iova &&
	       iova + size <= (1ull << pt->va_bits);
}

/* Install one leaf of level @level at @iova; -EEXIST if anything is there. */
static int map_one(struct vfd_simpt *pt, uint64_t iova, uint64_t leaf, unsigned level)
{
	struct table *t = pt->root;
	for (unsigned l = pt->top; l > level; l--) {
		_Atomic uint64_t *slot = &t->e[level_index(iova, l)];
		uint64_t v = atomic_load_explicit(slot, memory_order_acquire);
		if (!(v & PTE_P)) {
			struct table *n = table_new();
			if (!n)
				return -ENOMEM;
			v = (uint64_t)(uintptr_t)n | PTE_P;
			atomic_store_explicit(slot, v, memory_order_release);
		} else if (v & PTE_LEAF) {
			return -EEXIST;
		}
		t = entry_table(v);
	}
	_Atomic uint64_t *slot = &t->e[level_index(iova, level)];
	uint64_t v = atomic_load_explicit(slot, memory_order_relaxed);
	if (v & PTE_P) {
		/* An empty table left where a block goes can be replaced. */
		if (level == 0 || (v & PTE_LEAF) || !table_empty(entry_table(v)))
			return -EEXIST;
		retire(pt, entry_table(v));
	}
	/* A new leaf starts clean, whatever a late write left in the slot. */
	dirty_take(t, level_index(iova, level));
	atomic_store_explicit(slot, leaf, memory_order_release);
	return 0;
}

static uint64_t unmap_level(struct vfd_simpt *pt, struct table *t, unsigned level, uint64_t base,
			    uint64_t start, uint64_t end);

/* Unlink tables in [start, end) that map nothing (after a failed map). */
static void prune_level(struct vfd_simpt *pt, struct table *t, unsigned level, uint64_t base,
			uint64_t start, uint64_t end)
{
	uint64_t sz = level_size(level);
	uint64_t first = start > base ? (start - base) / sz : 0;
	for (uint64_t i = first; i < ENTRIES && base + i * sz < end; i++) {
		uint64_t ebase = base + i * sz;
		uint64_t v = atomic_load_explicit(&t->e[i], memory_order_relaxed);
		if (!(v & PTE_P) || entry_is_leaf(v, level))
			continue;
		struct table *c = entry_table(v);
		prune_level(pt, c, level - 1, ebase, start > ebase ? start : ebase,
			    end < ebase + sz ? end : ebase + sz);
		if (table_empty(c)) {
			atomic_store_explicit(&t->e[i], 0, memory_order_release);
			retire(pt, c);
		}
	}
}

int vfd_simpt_map(struct vfd_simpt *pt, uint64_t iova, void *host, uint64_t size,
		  unsigned prot)
{
	uintptr_t h = (uintptr_t)host;
	if (!range_ok(pt, iova, size) || (h & (VFD_SIM_PG_4K - 1)) || (h & ~PTE_ADDR) ||
	    ((h + size - 1) >> 52) || h + size < h || !(prot & (VFD_SIM_READ | VFD_SIM_WRITE)) ||
	    (prot & ~(VFD_SIM_READ | VFD_SIM_WRITE)))
		return -EINVAL;

	uint64_t done = 0;
	int rc = 0;
	while (done < size) {
		unsigned level = 0;
		for (unsigned l = 2; l > 0; l--) {
			uint64_t ps = level_size(l);
			if ((pt->pgsizes & ps) && !((iova + done) & (ps - 1)) &&
			    !((h + done) & (ps - 1)) && size - done >= ps) {
				level = l;
				break;
			}
		}
		uint64_t leaf = ((h + done) & PTE_ADDR) | PTE_P | PTE_LEAF | prot_bits(prot);
		rc = map_one(pt, iova + done, leaf, level);
		if (rc)
			break;
		done += level_size(level);
	}
	if (rc) {
		/* Undo: what this call mapped, then the tables it made. */
		if (done)
			unmap_level(pt, pt->root, pt->top, 0, iova, iova + done);
		prune_level(pt, pt->root, pt->top, 0, iova, iova + size);
	}
	reclaim(pt);
	return rc;
}

/*
 * Clear leaves in [start, end) below table @t (covering [base, base +
 * level_size(level + 1))); returns the bytes of the leaves cleared.
 */
static uint64_t unmap_level(struct vfd_simpt *pt, struct table *t, unsigned level, uint64_t base,
			    uint64_t start, uint64_t end)
{
	uint64_t bytes = 0, sz = level_size(level);
	uint64_t first = start > base ? (start - base) / sz : 0;
	for (uint64_t i = first; i < ENTRIES; i++) {
		uint64_t ebase = base + i * sz;
		if (ebase >= end)
			break;
		uint64_t v = atomic_load_explicit(&t->e[i], memory_order_relaxed);
		if (!(v & PTE_P))
			continue;
		if (entry_is_leaf(v, level)) {
			atomic_store_explicit(&t->e[i], 0, memory_order_release);
			dirty_take(t, (unsigned)i);
			bytes += sz;
			continue;
		}
		struct table *c = entry_table(v);
		bytes += unmap_level(pt, c, level - 1, ebase, start > ebase ? start : ebase,
				     end < ebase + sz ? end : ebase + sz);
		if (table_empty(c)) {
			atomic_store_explicit(&t->e[i], 0, memory_order_release);
			retire(pt, c);
		}
	}
	return bytes;
}

int64_t vfd_simpt_unmap(struct vfd_simpt *pt, uint64_t iova, uint64_t size)
{
	if (!range_ok(pt, iova, size))
		return -EINVAL;
	uint64_t bytes = unmap_level(pt, pt->root, pt->top, 0, iova, iova + size);
	reclaim(pt);
	return (int64_t)bytes;
}

void *vfd_simpt_lookup(struct vfd_simpt *pt, uint64_t iova, uint64_t *leaf_size,
		       unsigned *prot)
{
	uint64_t v;
	unsigned level;
	if (iova >> pt->va_bits || !walk(pt, iova, &v, &level))
		return NULL;
	uint64_t sz = level_size(level);
	if (leaf_size)
		*leaf_size = sz;
	if (prot)
		*prot = entry_prot(v);
	return (void *)(uintptr_t)((v & PTE_ADDR) + (iova & (sz - 1)));
}

static void dirty_fill(struct table *n)
{
	for (unsigned w = 0; w < ENTRIES / 64; w++)
		atomic_store(&n->d[w], ~0ull);
}

/*
 * Replace the block leaf in entry @i of @t (level @level >= 1) by a table of
 * leaves one level down, atomically; every small leaf inherits the block's
 * A bit and dirty bit.
 */
static int split_block(struct table *t, unsigned i, unsigned level)
{
	struct table *n = table_new();
	if (!n)
		return -ENOMEM;
	uint64_t sz = level_size(level - 1);
	_Atomic uint64_t *slot = &t->e[i];
	uint64_t old = atomic_load(slot);
	for (;;) {
		uint64_t attrs = (old & (PTE_P | PTE_R | PTE_W | PTE_A)) | PTE_LEAF;
		for (unsigned k = 0; k < ENTRIES; k++)
			atomic_store_explicit(&n->e[k], ((old & PTE_ADDR) + k * sz) | attrs,
					      memory_order_relaxed);
		uint64_t want = (uint64_t)(uintptr_t)n | PTE_P;
		if (atomic_compare_exchange_strong(slot, &old, want))
			break;
		/* An engine set A meanwhile: rebuild with the new bit. */
	}
	/*
	 * Taken after the swap: a bit an engine set while the block was still
	 * in place (its check saw the block) is here; one set later is stale,
	 * that engine's check fails and it sets the bit in @n instead.
	 */
	if (dirty_take(t, i))
		dirty_fill(n);
	return 0;
}

static int split_level(struct table *t, unsigned level, uint64_t base, uint64_t start,
		       uint64_t end)
{
	int n = 0;
	uint64_t sz = level_size(level);
	uint64_t first = start > base ? (start - base) / sz : 0;
	for (uint64_t i = first; i < ENTRIES && base + i * sz < end; i++) {
		uint64_t ebase = base + i * sz;
		uint64_t v = atomic_load(&t->e[i]);
		if (!(v & PTE_P) || level == 0)
			continue;
		if (v & PTE_LEAF) {
			int rc = split_block(t, (unsigned)i, level);
			if (rc)
				return rc;
			n++;
			v = atomic_load(&t->e[i]);
		}
		int rc = split_level(entry_table(v), level - 1, ebase, start > ebase ? start : ebase,
				     end < ebase + sz ? end : ebase + sz);
		if (rc < 0)
			return rc;
		n += rc;
	}
	return n;
}

int vfd_simpt_split(struct vfd_simpt *pt, uint64_t iova, uint64_t size)
{
	if (!range_ok(pt, iova, size))
		return -EINVAL;
	return split_level(pt->root, pt->top, 0, iova, iova + size);
}

/* Can the table @c (leaves of level @level - 1) become one leaf of @level? */
static bool mergeable(struct table *c, unsigned level, uint64_t *leaf)
{
	uint64_t sz = level_size(level - 1);
	uint64_t v0 = atomic_load(&c->e[0]);
	if (!entry_is_leaf(v0, level - 1) || ((v0 & PTE_ADDR) & (level_size(level) - 1)))
		return false;
	uint64_t a = 0;
	for (unsigned i = 0; i < ENTRIES; i++) {
		uint64_t v = atomic_load(&c->e[i]);
		if (!entry_is_leaf(v, level - 1) || (v & ~PTE_A) != ((v0 & ~PTE_A) + i * sz))
			return false;
		a |= v & PTE_A;
	}
	*leaf = (v0 & ~PTE_A) | PTE_LEAF | a;
	return true;
}

static bool any_dirty(struct table *c)
{
	uint64_t any = 0;
	for (unsigned w = 0; w < ENTRIES / 64; w++)
		any |= atomic_load(&c->d[w]);
	return any;
}

static int merge_level(struct vfd_simpt *pt, struct table *t, unsigned level, uint64_t base,
		       uint64_t start, uint64_t end)
{
	int n = 0;
	uint64_t sz = level_size(level);
	uint64_t first = start > base ? (start - base) / sz : 0;
	for (uint64_t i = first; i < ENTRIES && base + i * sz < end; i++) {
		uint64_t ebase = base + i * sz;
		uint64_t v = atomic_load(&t->e[i]);
		if (!(v & PTE_P) || (v & PTE_LEAF) || level == 0)
			continue;
		struct table *c = entry_table(v);
		n += merge_level(pt, c, level - 1, ebase, start > ebase ? start : ebase,
				 end < ebase + sz ? end : ebase + sz);
		uint64_t leaf;
		if (!(pt->pgsizes & sz) || level > 2 || !mergeable(c, level, &leaf))
			continue;
		/* Drop a stale bit (the slot held a table), then install. */
		dirty_take(t, (unsigned)i);
		atomic_store(&t->e[i], leaf);
		/*
		 * An engine may have set A, or a dirty bit, in the old table
		 * after we read it: once no engine can still be in it, carry
		 * the OR of them over to the block.
		 */
		grace_wait(pt);
		uint64_t late = 0;
		for (unsigned k = 0; k < ENTRIES; k++)
			late |= atomic_load(&c->e[k]) & PTE_A;
		if (late & ~leaf)
			atomic_fetch_or(&t->e[i], late);
		if (any_dirty(c))
			atomic_fetch_or(dirty_word(t, (unsigned)i), dirty_mask((unsigned)i));
		vfd_free(c);
		n++;
	}
	return n;
}

int vfd_simpt_merge(struct vfd_simpt *pt, uint64_t iova, uint64_t size)
{
	if (!range_ok(pt, iova, size))
		return -EINVAL;
	return merge_level(pt, pt->root, pt->top, 0, iova, iova + size);
}

/* Set bits [from, to) of @bitmap, whole words where it can. */
static void set_bits(uint64_t *bitmap, uint64_t from, uint64_t to)
{
	while (from < to && (from % 64))
		bitmap[from / 64] |= 1ull << (from % 64), from++;
	for (; from + 64 <= to; from += 64)
		bitmap[from / 64] = ~0ull;
	for (; from < to; from++)
		bitmap[from / 64] |= 1ull << (from % 64);
}

/* OR the 64 bits @x into @bitmap at bit @bit (any alignment). */
static inline void put_bits(uint64_t *bitmap, uint64_t bit, uint64_t x)
{
	unsigned sh = bit % 64;
	bitmap[bit / 64] |= x << sh;
	if (sh && (x >> (64 - sh)))
		bitmap[bit / 64 + 1] |= x >> (64 - sh);
}

/*
 * Leaves [lo, hi) of a last-level table, entry @lo at bit @bit of @bitmap:
 * whole dirty words at a time (one exchange clears 64 leaves).  Bits of
 * empty slots are clear (unmap clears them), so no entry is read.
 */
static int64_t dirty_leaves(struct table *t, unsigned lo, unsigned hi, uint64_t bit,
			    uint64_t *bitmap, bool clear)
{
	int64_t n = 0;
	for (unsigned w = lo / 64; w * 64 < hi; w++) {
		uint64_t m = ~0ull;
		if (w * 64 < lo)
			m &= ~0ull << (lo % 64);
		if (w * 64 + 64 > hi)
			m &= ~0ull >> (64 - hi % 64);
		uint64_t x = atomic_load_explicit(&t->d[w], memory_order_relaxed) & m;
		if (!x)
			continue;
		if (clear)
			x = (m == ~0ull ? atomic_exchange(&t->d[w], 0)
					: atomic_fetch_and(&t->d[w], ~m)) & m;
		n += vfd_popcount64(x);
		if (!bitmap || !x)
			continue;
		/* Bit of entry w * 64 is bit - lo + w * 64; below 0 only for w == lo / 64. */
		if (w * 64 >= lo)
			put_bits(bitmap, bit + (w * 64 - lo), x);
		else
			put_bits(bitmap, bit, x >> (lo - w * 64));
	}
	return n;
}

/* @origin: the IOVA of bit 0 of @bitmap. */
static int64_t dirty_level(struct table *t, unsigned level, uint64_t base, uint64_t start,
			   uint64_t end, uint64_t origin, uint64_t *bitmap, bool clear)
{
	uint64_t sz = level_size(level);
	uint64_t first = start > base ? (start - base) / sz : 0;
	if (level == 0) {
		uint64_t last = (end - base + sz - 1) / sz;
		return dirty_leaves(t, (unsigned)first, last < ENTRIES ? (unsigned)last : ENTRIES,
				    (base + first * sz - origin) >> 12, bitmap, clear);
	}
	int64_t n = 0;
	for (uint64_t i = first; i < ENTRIES && base + i * sz < end; i++) {
		uint64_t ebase = base + i * sz;
		uint64_t v = atomic_load(&t->e[i]);
		if (level == 1 && i + 4 < ENTRIES) {
			/* The dirty vectors are in other pages: start the miss early. */
			uint64_t ahead = atomic_load_explicit(&t->e[i + 4], memory_order_relaxed);
			if ((ahead & (PTE_P | PTE_LEAF)) == PTE_P)
				__builtin_prefetch(entry_table(ahead)->d);
		}
		if (!(v & PTE_P))
			continue;
		if (!entry_is_leaf(v, level)) {
			n += dirty_level(entry_table(v), level - 1, ebase,
					 start > ebase ? start : ebase,
					 end < ebase + sz ? end : ebase + sz, origin, bitmap, clear);
			continue;
		}
		/* A block leaf: its one bit stands for all its pages. */
		if (!(atomic_load(dirty_word(t, (unsigned)i)) & dirty_mask((unsigned)i)))
			continue;
		if (clear && !dirty_take(t, (unsigned)i))
			continue;
		n++;
		if (!bitmap)
			continue;
		uint64_t lo = ebase > start ? ebase : start;
		uint64_t hi = ebase + sz < end ? ebase + sz : end;
		set_bits(bitmap, (lo - origin) >> 12, (hi - origin) >> 12);
	}
	return n;
}

int64_t vfd_simpt_read_dirty(struct vfd_simpt *pt, uint64_t iova, uint64_t size,
			     uint64_t *bitmap, bool clear)
{
	if (!range_ok(pt, iova, size))
		return -EINVAL;
	return dirty_level(pt->root, pt->top, 0, iova, iova + size, iova, bitmap, clear);
}

static void stats_level(struct table *t, unsigned level, struct vfd_simpt_stats *st)
{
	st->tables++;
	for (unsigned i = 0; i < ENTRIES; i++) {
		uint64_t v = atomic_load(&t->e[i]);
		if (!(v & PTE_P))
			continue;
		if (entry_is_leaf(v, level)) {
			if (level == 0)
				st->leaves_4k++;
			else if (level == 1)
				st->leaves_2m++;
			else
				st->leaves_1g++;
		} else {
			stats_level(entry_table(v), level - 1, st);
		}
	}
}

void vfd_simpt_get_stats(struct vfd_simpt *pt, struct vfd_simpt_stats *st)
{
	memset(st, 0, sizeof(*st));
	stats_level(pt->root, pt->top, st);
}
