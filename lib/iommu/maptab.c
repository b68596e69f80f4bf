/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The mapping table: where a domain's mapping records live and how they
 * are found.  Records (struct vfd_map, 32 bytes) sit in a type-stable
 * slab; the index is the two lock-free translation tables themselves, plus
 * exception trees for the little they cannot say.
 *
 *  - By IOVA: xl_iova is a CONST table from each IOVA page to its record.
 *    Lookups (unmap, tiles, overlaps, fold) read it; ordered walks
 *    (replay, close, check) step through it record by record, visiting
 *    only the populated 1 GiB slots (xlate.h).
 *  - By vaddr: xl_va (LINEAR) already gives every vaddr page the lowest
 *    IOVA mapping it, and the IOVA gives the record.  A record whose
 *    vaddr range overlaps another's (a duplicate) is also kept in the
 *    exception interval tree exc_va, which answers the questions the
 *    table cannot: the next-lowest mapping when the lowest goes (best_va),
 *    and every mapping of a page, not just the lowest.  A record that
 *    overlaps nothing is "clean": its vaddr pages all translate to it.
 *    Invariant: every tabled, visible record that overlaps another such
 *    record is in exc_va (insert moves the clean ones it overlaps there;
 *    remove moves back those left alone).
 *  - Beyond 48 bits (UNTABLED): in neither table, in exc_iova and (unless
 *    hidden) exc_va; dom->xl_untabled sends translation to the trees.
 *
 * Exception nodes are allocated in prepare (an upper bound: each record
 * itself plus the clean records its range holds), so insert and remove
 * never need memory.  All sizes reported by vfd_map_table_bytes() are
 * what the heap really hands out, chunk headers included.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iommu/maptab.h"
#include "util/sys.h"

#define PAGE 4096ull
#define SLAB_RECS 2048u
#define SLAB_BYTES (SLAB_RECS * sizeof(struct vfd_map))

_Static_assert(sizeof(struct vfd_map) == 32, "a mapping record is 32 bytes");
_Static_assert(VFDMA_PROT_RW <= VFD_MAPW_PROT, "prot fits its bits");

struct vfd_exc {
	struct vfd_rb_node by_va;   /* exc_va: ordered by (va, iova), augmented */
	struct vfd_rb_node by_iova; /* exc_iova (untabled records only) */
	uint64_t max_end;	    /* largest va + len in the by_va subtree */
	union {
		struct vfd_map *m;
		struct vfd_exc *next_spare;
	};
};

/* What glibc's malloc really takes for @n bytes (header, 16-byte rounding). */
static uint64_t heap_bytes(uint64_t n)
{
	uint64_t c = (n + 8 + 15) & ~15ull;
	return c < 32 ? 32 : c;
}

static struct vfd_exc *exc_of_va(struct vfd_rb_node *n)
{
	return n ? vfd_container_of(n, struct vfd_exc, by_va) : NULL;
}

static struct vfd_exc *exc_of_iova(struct vfd_rb_node *n)
{
	return n ? vfd_container_of(n, struct vfd_exc, by_iova) : NULL;
}

static void exc_update(struct vfd_rb_node *n)
{
	struct vfd_exc *x = exc_of_va(n);
	uint64_t mx = x->m->va + x->m->len;
	if (n->left && exc_of_va(n->left)->max_end > mx)
		mx = exc_of_va(n->left)->max_end;
	if (n->right && exc_of_va(n->right)->max_end > mx)
		mx = exc_of_va(n->right)->max_end;
	x->max_end = mx;
}

void vfd_map_table_init(struct vfdma_domain *dom)
{
	dom->exc_va = (struct vfd_rb_root){NULL, exc_update};
	dom->exc_iova = (struct vfd_rb_root){NULL, NULL};
	vfd_xlate_init(&dom->xl_va, VFD_XLATE_LINEAR);
	vfd_xlate_init(&dom->xl_iova, VFD_XLATE_CONST);
}

void vfd_map_table_fini(struct vfdma_domain *dom)
{
	/* Close removed every mapping: the trees are empty, the spares freed. */
	for (uint64_t i = 0; i < dom->nr_chunks; i++)
		vfd_free(dom->slab_chunks[i]);
	vfd_free(dom->slab_chunks);
	dom->slab_chunks = NULL;
	dom->nr_chunks = dom->cap_chunks = 0;
	dom->slab_free = NULL;
	vfd_maptab_done(dom);
	vfd_xlate_fini(&dom->xl_va);
	vfd_xlate_fini(&dom->xl_iova);
}

uint64_t vfd_map_table_bytes(const struct vfdma_domain *dom)
{
	uint64_t b = dom->nr_chunks * heap_bytes(SLAB_BYTES);
	if (dom->cap_chunks)
		b += heap_bytes(dom->cap_chunks * sizeof(void *));
	b += dom->nr_exc * heap_bytes(sizeof(struct vfd_exc));
	b += dom->xl_va.table_bytes + dom->xl_iova.table_bytes;
	if (dom->xl_va.cap_slots)
		b += heap_bytes(vfd_xlate_slot_bytes(&dom->xl_va));
	if (dom->xl_iova.cap_slots)
		b += heap_bytes(vfd_xlate_slot_bytes(&dom->xl_iova));
	return b;
}

/* ---- the slab ---- */

static int slab_grow(struct vfdma_domain *dom)
{
	if (dom->nr_chunks == dom->cap_chunks) {
		uint64_t cap = dom->cap_chunks ? 2 * dom->cap_chunks : 8;
		void **v = vfd_realloc(dom->slab_chunks, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		dom->slab_chunks = v;
		dom->cap_chunks = cap;
	}
	struct vfd_map *c = vfd_malloc(SLAB_BYTES);
	if (!c)
		return -ENOMEM;
	/* Not reachable by any reader yet: plain stores. */
	for (unsigned i = SLAB_RECS; i-- > 0;) {
		c[i] = (struct vfd_map){.word = VFD_MAPW_GEN1};
		c[i].next = dom->slab_free;
		dom->slab_free = &c[i];
	}
	dom->slab_chunks[dom->nr_chunks++] = c;
	return 0;
}

struct vfd_map *vfd_maptab_alloc(struct vfdma_domain *dom)
{
	if (!dom->slab_free && slab_grow(dom))
		return NULL;
	struct vfd_map *m = dom->slab_free;
	dom->slab_free = m->next;
	return m;
}

void vfd_maptab_release(struct vfdma_domain *dom, struct vfd_map *list)
{
	while (list) {
		struct vfd_map *next = list->next;
		vfd_map_set_next(list, dom->slab_free);
		dom->slab_free = list;
		list = next;
	}
}

/* ---- exception trees ---- */

static bool va_less(const struct vfd_map *a, const struct vfd_map *b)
{
	return a->va < b->va || (a->va == b->va && a->iova < b->iova);
}

static void exc_add(struct vfdma_domain *dom, struct vfd_map *m)
{
	struct vfd_exc *x = dom->exc_spare; /* reserved by prepare */
	dom->exc_spare = x->next_spare;
	x->m = m;
	dom->nr_exc++;
	uint64_t w = m->word;
	if (!(w & VFD_MAPW_HIDDEN)) {
		struct vfd_rb_node **link = &dom->exc_va.node, *parent = NULL;
		while (*link) {
			parent = *link;
			link = va_less(m, exc_of_va(parent)->m) ? &parent->left : &parent->right;
		}
		vfd_rb_link(&x->by_va, parent, link);
		x->max_end = m->va + m->len;
		vfd_rb_insert(&dom->exc_va, &x->by_va);
		w |= VFD_MAPW_EXC;
	}
	if (w & VFD_MAPW_UNTABLED) {
		struct vfd_rb_node **link = &dom->exc_iova.node, *parent = NULL;
		while (*link) {
			parent = *link;
			link = m->iova < exc_of_iova(parent)->m->iova ? &parent->left : &parent->right;
		}
		vfd_rb_link(&x->by_iova, parent, link);
		vfd_rb_insert(&dom->exc_iova, &x->by_iova);
	}
	vfd_map_set_word(m, w);
}

/* The untabled record's node containing @iova, or NULL. */
static struct vfd_exc *exc_at_iova(const struct vfdma_domain *dom, uint64_t iova)
{
	struct vfd_rb_node *n = dom->exc_iova.node;
	struct vfd_exc *best = NULL;
	while (n) {
		struct vfd_exc *x = exc_of_iova(n);
		if (x->m->iova <= iova) {
			best = x;
			n = n->right;
		} else {
			n = n->left;
		}
	}
	return best && iova - best->m->iova < best->m->len ? best : NULL;
}

/* The untabled record's node with the lowest IOVA ending after @key. */
static struct vfd_exc *exc_from_iova(const struct vfdma_domain *dom, uint64_t key)
{
	struct vfd_exc *x = exc_at_iova(dom, key);
	if (x)
		return x;
	struct vfd_rb_node *n = dom->exc_iova.node;
	while (n) {
		struct vfd_exc *y = exc_of_iova(n);
		if (y->m->iova > key) {
			x = y;
			n = n->left;
		} else {
			n = n->right;
		}
	}
	return x;
}

/* @m's node in exc_va. */
static struct vfd_exc *exc_find_va(const struct vfdma_domain *dom, const struct vfd_map *m)
{
	struct vfd_rb_node *n = dom->exc_va.node;
	while (n) {
		struct vfd_exc *x = exc_of_va(n);
		if (x->m == m)
			return x;
		n = va_less(m, x->m) ? n->left : n->right;
	}
	return NULL;
}

static void exc_del(struct vfdma_domain *dom, struct vfd_exc *x, uint64_t w)
{
	if (w & VFD_MAPW_EXC)
		vfd_rb_erase(&dom->exc_va, &x->by_va);
	if (w & VFD_MAPW_UNTABLED)
		vfd_rb_erase(&dom->exc_iova, &x->by_iova);
	dom->nr_exc--;
	vfd_free(x);
}

/*
 * Lowest-IOVA record in exc_va under @n containing @va (untabled ones only
 * with @all), into *best.
 */
static void exc_stab(struct vfd_rb_node *n, uintptr_t va, bool all, struct vfd_map **best)
{
	while (n) {
		struct vfd_exc *x = exc_of_va(n);
		if (x->max_end <= va)
			return;
		if (n->left)
			exc_stab(n->left, va, all, best);
		const struct vfd_map *m = x->m;
		if (m->va > va)
			return; /* everything to the right starts later still */
		if (va - m->va < m->len && (!*best || m->iova < (*best)->iova) &&
		    (all || !(m->word & VFD_MAPW_UNTABLED)))
			*best = x->m;
		n = n->right;
	}
}

/* The first node in (va, iova) order after @cur (NULL: from the start) overlapping [a, b). */
static struct vfd_exc *exc_first(struct vfd_rb_node *n, uint64_t a, uint64_t b,
				 const struct vfd_map *cur)
{
	while (n) {
		struct vfd_exc *x = exc_of_va(n);
		if (x->max_end <= a)
			return NULL;
		if (n->left && (!cur || va_less(cur, x->m))) {
			struct vfd_exc *y = exc_first(n->left, a, b, cur);
			if (y)
				return y;
		}
		if (x->m->va >= b)
			return NULL;
		if ((!cur || va_less(cur, x->m)) && x->m->va + x->m->len > a)
			return x;
		n = n->right;
	}
	return NULL;
}

/* vfd_xlate_best_fn for the vaddr table: the lowest-IOVA tabled duplicate left. */
static bool best_va(void *ctx, uint64_t key, uint64_t *k0, uint64_t *t0, uint64_t *l0)
{
	struct vfdma_domain *dom = ctx;
	struct vfd_map *m = NULL;
	exc_stab(dom->exc_va.node, key, false, &m);
	if (!m)
		return false;
	*k0 = m->va;
	*t0 = m->iova;
	*l0 = m->len;
	return true;
}

/* Does a tabled record other than @r in exc_va overlap @r? */
static bool exc_overlaps_other(const struct vfdma_domain *dom, const struct vfd_map *r)
{
	const struct vfd_map *cur = NULL;
	struct vfd_exc *x;
	while ((x = exc_first(dom->exc_va.node, r->va, r->va + r->len, cur))) {
		cur = x->m;
		if (x->m != r && !(x->m->word & VFD_MAPW_UNTABLED))
			return true;
	}
	return false;
}

/* After a duplicate in [a, b) went: the records it leaves alone are clean again. */
static void exc_settle(struct vfdma_domain *dom, uint64_t a, uint64_t b)
{
	const struct vfd_map *cur = NULL;
	struct vfd_exc *x;
	while ((x = exc_first(dom->exc_va.node, a, b, cur))) {
		struct vfd_map *r = x->m;
		cur = r;
		uint64_t w = r->word;
		if ((w & VFD_MAPW_UNTABLED) || exc_overlaps_other(dom, r))
			continue;
		exc_del(dom, x, w);
		vfd_map_set_word(r, w & ~VFD_MAPW_EXC);
	}
}

/* ---- lookups ---- */

static struct vfd_map *rec_at_iova(const struct vfdma_domain *dom, uint64_t iova)
{
	uint64_t p = vfd_xlate_get(&dom->xl_iova, iova);
	if (p)
		return (struct vfd_map *)(uintptr_t)p;
	struct vfd_exc *x = dom->xl_untabled ? exc_at_iova(dom, iova) : NULL;
	return x ? x->m : NULL;
}

struct vfd_map *vfd_maptab_find_iova(struct vfdma_domain *dom, uint64_t iova)
{
	return rec_at_iova(dom, iova);
}

struct vfd_map *vfd_maptab_from(struct vfdma_domain *dom, uint64_t key)
{
	uint64_t at;
	struct vfd_map *m = (struct vfd_map *)(uintptr_t)(
		vfd_xlate_next(&dom->xl_iova, key & ~(PAGE - 1), UINT64_MAX, &at) & ~1ull);
	struct vfd_exc *x = dom->xl_untabled ? exc_from_iova(dom, key) : NULL;
	if (x && (!m || x->m->iova < m->iova))
		m = x->m;
	return m;
}

struct vfd_map *vfd_maptab_next(struct vfdma_domain *dom, const struct vfd_map *m)
{
	uint64_t end = m->iova + m->len;
	return end ? vfd_maptab_from(dom, end) : NULL;
}

int vfd_maptab_va_lookup(struct vfdma_domain *dom, uintptr_t va, uint64_t *iova, uint64_t *len)
{
	struct vfd_map *best = NULL;
	uint64_t t, l;
	if (vfd_xlate_lookup(&dom->xl_va, va, &t, &l) >= 0)
		best = rec_at_iova(dom, t);
	exc_stab(dom->exc_va.node, va, true, &best);
	if (!best)
		return -ENOENT;
	*iova = best->iova + (va - best->va);
	if (len)
		*len = best->len - (va - best->va);
	return 0;
}

/*
 * The records visible in the vaddr table over [a, b): with @move, each
 * clean one goes to exc_va.  Returns how many clean ones there are, and
 * in *any whether there is a record at all.
 */
static uint64_t scan_va(struct vfdma_domain *dom, uint64_t a, uint64_t b, bool move, bool *any)
{
	uint64_t n = 0, at, e;
	*any = false;
	for (uint64_t k = a; k < b && (e = vfd_xlate_next(&dom->xl_va, k, b, &at)) != 0;) {
		struct vfd_map *r = rec_at_iova(dom, (e >> 28) << 12);
		*any = true;
		if (!(r->word & VFD_MAPW_EXC)) {
			n++;
			if (move)
				exc_add(dom, r);
		}
		/* A clean record is never shadowed: its whole range is its run. */
		k = r->va + r->len;
	}
	return n;
}

/* ---- insert and remove ---- */

static int spare_reserve(struct vfdma_domain *dom, uint64_t n)
{
	for (struct vfd_exc *x = dom->exc_spare; x && n; x = x->next_spare)
		n--;
	while (n--) {
		struct vfd_exc *x = vfd_calloc(1, sizeof(*x));
		if (!x)
			return -ENOMEM;
		x->next_spare = dom->exc_spare;
		dom->exc_spare = x;
	}
	return 0;
}

void vfd_maptab_done(struct vfdma_domain *dom)
{
	while (dom->exc_spare) {
		struct vfd_exc *x = dom->exc_spare;
		dom->exc_spare = x->next_spare;
		vfd_free(x);
	}
}

int vfd_maptab_prepare(struct vfdma_domain *dom, struct vfd_map *tmp, size_t n)
{
	uint64_t nodes = 0;
	for (size_t i = 0; i < n; i++) {
		struct vfd_map *m = &tmp[i];
		bool fits = vfd_xlate_fits(m->va, m->len) && vfd_xlate_fits(m->iova, m->len);
		bool hidden = m->word & VFD_MAPW_HIDDEN;
		if (!fits) {
			m->word |= VFD_MAPW_UNTABLED;
			nodes++;
			continue;
		}
		int rc = vfd_xlate_prepare(&dom->xl_iova, m->iova, m->len);
		if (!rc && !hidden)
			rc = vfd_xlate_prepare(&dom->xl_va, m->va, m->len);
		if (rc)
			return rc;
		bool any;
		if (!hidden)
			nodes += 1 + scan_va(dom, m->va, m->va + m->len, false, &any);
	}
	return spare_reserve(dom, nodes);
}

void vfd_maptab_insert(struct vfdma_domain *dom, struct vfd_map *m, const struct vfd_map *tmp)
{
	__atomic_store_n(&m->iova, tmp->iova, __ATOMIC_RELEASE);
	__atomic_store_n(&m->len, tmp->len, __ATOMIC_RELEASE);
	__atomic_store_n(&m->va, tmp->va, __ATOMIC_RELEASE);
	uint64_t gen = (m->word & ~(VFD_MAPW_GEN1 - 1)) + VFD_MAPW_GEN1; /* even: entered */
	uint64_t w = (tmp->word & (VFD_MAPW_GEN1 - 1) & ~(VFD_MAPW_EXC | VFD_MAPW_REG)) | gen;
	vfd_map_set_word(m, w);
	dom->nr_maps++;
	dom->mapped_bytes += m->len;
	if (w & VFD_MAPW_UNTABLED) {
		exc_add(dom, m);
		__atomic_add_fetch(&dom->xl_untabled, 1, __ATOMIC_RELEASE);
		return;
	}
	vfd_xlate_set(&dom->xl_iova, m->iova, m->len, (uintptr_t)m, false);
	if (w & VFD_MAPW_HIDDEN)
		return;
	bool dup;
	scan_va(dom, m->va, m->va + m->len, true, &dup);
	if (dup)
		exc_add(dom, m);
	vfd_xlate_set(&dom->xl_va, m->va, m->len, m->iova, true);
}

void vfd_maptab_remove(struct vfdma_domain *dom, struct vfd_map *m)
{
	uint64_t w = m->word;
	dom->nr_maps--;
	dom->mapped_bytes -= m->len;
	if (w & VFD_MAPW_UNTABLED) {
		exc_del(dom, exc_at_iova(dom, m->iova), w);
		__atomic_sub_fetch(&dom->xl_untabled, 1, __ATOMIC_RELEASE);
	} else if (!(w & VFD_MAPW_HIDDEN) && (w & VFD_MAPW_EXC)) {
		/* Out of the tree first, so best_va() finds the duplicates left. */
		exc_del(dom, exc_find_va(dom, m), w);
		vfd_xlate_remove(&dom->xl_va, m->va, m->len, m->iova, best_va, dom);
		exc_settle(dom, m->va, m->va + m->len);
	} else if (!(w & VFD_MAPW_HIDDEN)) {
		vfd_xlate_remove(&dom->xl_va, m->va, m->len, m->iova, NULL, NULL);
	}
	if (!(w & VFD_MAPW_UNTABLED))
		vfd_xlate_remove(&dom->xl_iova, m->iova, m->len, (uintptr_t)m, NULL, NULL);
	/* Odd: a reader that loaded @m before this asks again under the lock. */
	vfd_map_set_word(m, (w & ~(VFD_MAPW_EXC | VFD_MAPW_REG)) + VFD_MAPW_GEN1);
}

/* ---- registrations folded into records (memreg.c) ---- */

static void reg_take(struct vfd_map *m, struct vfdma_map_run *out, uint64_t *counts, size_t max,
		     size_t *k)
{
	uint64_t w = m->word;
	uint64_t c = (w & VFD_MAPW_REG) >> VFD_MAPW_REG_SHIFT;
	if (!c)
		return;
	if (out && *k < max) {
		out[*k] = (struct vfdma_map_run){(void *)m->va, m->len, m->iova};
		counts[*k] = c;
		vfd_map_set_word(m, w & ~VFD_MAPW_REG);
	}
	(*k)++;
}

size_t vfd_map_reg_unfold(struct vfdma_domain *dom, uint64_t a, uint64_t b,
			  struct vfdma_map_run *out, uint64_t *counts, size_t max)
{
	size_t k = 0;
	pthread_mutex_lock(&dom->lock);
	/* Clean records through the table, then the duplicates and untabled ones. */
	uint64_t at, e;
	for (uint64_t p = a & ~(PAGE - 1); p < b && (e = vfd_xlate_next(&dom->xl_va, p, b, &at));) {
		struct vfd_map *r = rec_at_iova(dom, (e >> 28) << 12);
		if (!(r->word & VFD_MAPW_EXC))
			reg_take(r, out, counts, max, &k);
		p = r->va + r->len;
	}
	const struct vfd_map *cur = NULL;
	struct vfd_exc *x;
	while ((x = exc_first(dom->exc_va.node, a, b, cur))) {
		cur = x->m;
		reg_take(x->m, out, counts, max, &k);
	}
	pthread_mutex_unlock(&dom->lock);
	return k;
}

int vfd_map_reg_fold(struct vfdma_domain *dom, const struct vfdma_map_run *run, uint64_t count)
{
	pthread_mutex_lock(&dom->lock);
	struct vfd_map *m = rec_at_iova(dom, run->iova);
	/* The registration's own mapping, not one that reused its IOVA. */
	bool same = m && m->iova == run->iova && m->va == (uintptr_t)run->vaddr &&
		    m->len == run->len;
	int rc = !same ? -ENOENT : count > VFD_MAP_REG_COUNT_MAX ? -ERANGE : 0;
	if (!rc)
		vfd_map_set_word(m, (m->word & ~VFD_MAPW_REG) | (count << VFD_MAPW_REG_SHIFT));
	pthread_mutex_unlock(&dom->lock);
	return rc;
}

/* ---- consistency ---- */

static bool va_translates(const struct vfdma_domain *dom, uint64_t va, uint64_t iova)
{
	uint64_t t, l;
	return vfd_xlate_lookup(&dom->xl_va, va, &t, &l) >= 0 && t == iova;
}

const char *vfd_maptab_check(struct vfdma_domain *dom, const struct vfd_map **bad)
{
	uint64_t n = 0, exc = 0;
	for (const struct vfd_map *m = vfd_maptab_from(dom, 0); m; m = vfd_maptab_next(dom, m)) {
		uint64_t w = m->word;
		*bad = m;
		n++;
		if ((w >> VFD_MAPW_GEN_SHIFT) & 1)
			return "a dead record is in the table";
		if (w & VFD_MAPW_UNTABLED) {
			if (!exc_at_iova(dom, m->iova) || ((w & VFD_MAPW_EXC) && !exc_find_va(dom, m)))
				return "an untabled mapping is missing from the trees";
			exc++;
			continue;
		}
		uint64_t last = m->len - PAGE;
		if (rec_at_iova(dom, m->iova) != m || rec_at_iova(dom, m->iova + last) != m)
			return "the IOVA table disagrees with a mapping";
		if (w & VFD_MAPW_HIDDEN)
			continue;
		if (w & VFD_MAPW_EXC) {
			if (!exc_find_va(dom, m))
				return "a duplicate mapping is missing from its tree";
			exc++;
		} else if (!va_translates(dom, m->va, m->iova) ||
			   !va_translates(dom, m->va + last, m->iova + last)) {
			return "the vaddr table disagrees with a mapping";
		}
	}
	*bad = NULL;
	if (n != dom->nr_maps || exc != dom->nr_exc)
		return "the mapping count disagrees with the index";
	return NULL;
}
