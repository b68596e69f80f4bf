/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Mappings: the table, map and unmap with rollback, batches, gathered and
 * deferred unmap, translation, and the consistency check.
 *
 * Invariants:
 *  - every mapping in the table has its IOVA allocated in dom->iova and is
 *    mapped in the backend (or the backend is not ready yet, for type1
 *    before its first device: then nothing is in the backend);
 *  - an IOVA is freed in the allocator only after the kernel unmap of it
 *    returned, so it is never handed out while the IOMMU still maps it;
 *  - a mapping leaves the table before its kernel unmap, so no translation
 *    is handed out for memory that is about to be unmapped;
 *  - the lock-free translation tables (dom->xl_va, dom->xl_iova) hold
 *    exactly the mappings of the trees that fit them: they change with the
 *    trees, under dom->lock, and vaddr pages translate to the lowest IOVA.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iommu/domain.h"
#include "util/log.h"
#include "util/sys.h"

/* Internal map flag (vfd_map_hidden): see domain.h. */
#define VFD_MAP_HIDDEN (1u << 31)

uint64_t vfd_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct vfd_map *map_of_iova(struct vfd_rb_node *n)
{
	return n ? vfd_container_of(n, struct vfd_map, by_iova) : NULL;
}

static struct vfd_map *map_of_va(struct vfd_rb_node *n)
{
	return n ? vfd_container_of(n, struct vfd_map, by_va) : NULL;
}

_Static_assert(sizeof(struct vfd_map) == 80, "a mapping record is 80 bytes");
_Static_assert(VFDMA_PROT_RW < 4, "prot fits its bit-field");

/* Ends are granule-aligned (>= 4 KiB), so the summary is kept in pages. */
static uint64_t va_max_end(const struct vfd_map *m)
{
	return (uint64_t)m->va_max_end_pg << 12;
}

static void va_update(struct vfd_rb_node *n)
{
	struct vfd_map *m = map_of_va(n);
	uint64_t mx = m->va + m->len;
	if (n->left && va_max_end(map_of_va(n->left)) > mx)
		mx = va_max_end(map_of_va(n->left));
	if (n->right && va_max_end(map_of_va(n->right)) > mx)
		mx = va_max_end(map_of_va(n->right));
	m->va_max_end_pg = mx >> 12;
}

void vfd_map_table_init(struct vfdma_domain *dom)
{
	dom->by_iova = (struct vfd_rb_root){NULL, NULL};
	dom->by_va = (struct vfd_rb_root){NULL, va_update};
	vfd_xlate_init(&dom->xl_va, VFD_XLATE_LINEAR);
	vfd_xlate_init(&dom->xl_iova, VFD_XLATE_LINEAR);
}

static bool fits_tables(const struct vfd_map *m)
{
	return vfd_xlate_fits(m->va, m->len) && vfd_xlate_fits(m->iova, m->len);
}

/* Tables for @m before table_insert() (dom->lock held); -ENOMEM. */
static int tables_prepare(struct vfdma_domain *dom, struct vfd_map *m)
{
	m->untabled = !fits_tables(m);
	if (m->untabled)
		return 0;
	int rc = m->hidden ? 0 : vfd_xlate_prepare(&dom->xl_va, m->va, m->len);
	return rc ? rc : vfd_xlate_prepare(&dom->xl_iova, m->iova, m->len);
}

static void find_va(struct vfd_rb_node *n, uintptr_t va, struct vfd_map **best);

/* vfd_xlate_best_fn for the vaddr table: the lowest-IOVA tabled mapping left. */
static bool best_va(void *ctx, uint64_t key, uint64_t *k0, uint64_t *t0, uint64_t *l0)
{
	struct vfdma_domain *dom = ctx;
	struct vfd_map *m = NULL;
	find_va(dom->by_va.node, key, &m);
	if (!m)
		return false;
	*k0 = m->va;
	*t0 = m->iova;
	*l0 = m->len;
	return true;
}

static void table_insert(struct vfdma_domain *dom, struct vfd_map *m)
{
	struct vfd_rb_node **link = &dom->by_iova.node, *parent = NULL;
	while (*link) {
		parent = *link;
		link = m->iova < map_of_iova(parent)->iova ? &parent->left : &parent->right;
	}
	vfd_rb_link(&m->by_iova, parent, link);
	vfd_rb_insert(&dom->by_iova, &m->by_iova);

	link = &dom->by_va.node;
	parent = NULL;
	while (*link) {
		parent = *link;
		struct vfd_map *p = map_of_va(parent);
		bool left = m->va < p->va || (m->va == p->va && m->iova < p->iova);
		link = left ? &parent->left : &parent->right;
	}
	vfd_rb_link(&m->by_va, parent, link);
	vfd_rb_insert(&dom->by_va, &m->by_va);
	dom->nr_maps++;
	dom->mapped_bytes += m->len;
	if (m->untabled && !m->hidden) {
		__atomic_add_fetch(&dom->xl_untabled, 1, __ATOMIC_RELEASE);
		return;
	}
	if (m->untabled)
		return;
	if (!m->hidden)
		vfd_xlate_set(&dom->xl_va, m->va, m->len, m->iova, true);
	vfd_xlate_set(&dom->xl_iova, m->iova, m->len, m->va, false);
}

static void table_remove(struct vfdma_domain *dom, struct vfd_map *m)
{
	vfd_rb_erase(&dom->by_iova, &m->by_iova);
	vfd_rb_erase(&dom->by_va, &m->by_va);
	dom->nr_maps--;
	dom->mapped_bytes -= m->len;
	if (m->untabled && !m->hidden) {
		__atomic_sub_fetch(&dom->xl_untabled, 1, __ATOMIC_RELEASE);
		return;
	}
	if (m->untabled)
		return;
	/* Out of the trees already, so best_va() finds the mappings left. */
	if (!m->hidden)
		vfd_xlate_remove(&dom->xl_va, m->va, m->len, m->iova, best_va, dom);
	vfd_xlate_remove(&dom->xl_iova, m->iova, m->len, m->va, NULL, NULL);
}

/* The mapping containing @iova, or NULL. */
static struct vfd_map *find_iova(struct vfdma_domain *dom, uint64_t iova)
{
	struct vfd_rb_node *n = dom->by_iova.node;
	struct vfd_map *best = NULL;
	while (n) {
		struct vfd_map *m = map_of_iova(n);
		if (m->iova <= iova) {
			best = m;
			n = n->right;
		} else {
			n = n->left;
		}
	}
	return best && iova - best->iova < best->len ? best : NULL;
}

/*
 * The mapping with the lowest IOVA among those containing @va, or NULL.
 * Hidden (mapping-cache) mappings never count; untabled ones are skipped
 * when the answer is for the tables.
 */
static void find_va_in(struct vfd_rb_node *n, uintptr_t va, struct vfd_map **best,
		       bool tabled_only);

static void find_va(struct vfd_rb_node *n, uintptr_t va, struct vfd_map **best)
{
	find_va_in(n, va, best, true);
}

static void find_va_in(struct vfd_rb_node *n, uintptr_t va, struct vfd_map **best,
		       bool tabled_only)
{
	while (n) {
		struct vfd_map *m = map_of_va(n);
		if (va_max_end(m) <= va)
			return;
		if (n->left)
			find_va_in(n->left, va, best, tabled_only);
		if (m->va > va)
			return; /* everything to the right starts later still */
		if (va - m->va < m->len && (!*best || m->iova < (*best)->iova) && !m->hidden &&
		    !(tabled_only && m->untabled))
			*best = m;
		n = n->right;
	}
}

/* Folded registrations overlapping [a, b) under @n, in vaddr order. */
static void reg_overlaps(struct vfd_rb_node *n, uint64_t a, uint64_t b, struct vfdma_map_run *out,
			 uint64_t *counts, size_t max, size_t *k)
{
	while (n) {
		struct vfd_map *m = map_of_va(n);
		if (va_max_end(m) <= a)
			return;
		if (n->left)
			reg_overlaps(n->left, a, b, out, counts, max, k);
		if (m->va >= b)
			return;
		if (m->reg_count && m->va + m->len > a) {
			if (out && *k < max) {
				out[*k] = (struct vfdma_map_run){(void *)m->va, m->len, m->iova};
				counts[*k] = m->reg_count;
				m->reg_count = 0;
			}
			(*k)++;
		}
		n = n->right;
	}
}

size_t vfd_map_reg_unfold(struct vfdma_domain *dom, uint64_t a, uint64_t b,
			  struct vfdma_map_run *out, uint64_t *counts, size_t max)
{
	size_t k = 0;
	pthread_mutex_lock(&dom->lock);
	reg_overlaps(dom->by_va.node, a, b, out, counts, max, &k);
	pthread_mutex_unlock(&dom->lock);
	return k;
}

int vfd_map_reg_fold(struct vfdma_domain *dom, const struct vfdma_map_run *run, uint64_t count)
{
	pthread_mutex_lock(&dom->lock);
	struct vfd_map *m = find_iova(dom, run->iova);
	/* The registration's own mapping, not one that reused its IOVA. */
	bool same = m && m->iova == run->iova && m->va == (uintptr_t)run->vaddr &&
		    m->len == run->len;
	int rc = !same ? -ENOENT : count > VFD_MAP_REG_COUNT_MAX ? -ERANGE : 0;
	if (!rc)
		m->reg_count = count & VFD_MAP_REG_COUNT_MAX;
	pthread_mutex_unlock(&dom->lock);
	return rc;
}

bool vfd_map_overlaps(struct vfdma_domain *dom, uint64_t first, uint64_t last)
{
	struct vfd_rb_node *n = dom->by_iova.node;
	while (n) {
		struct vfd_map *m = map_of_iova(n);
		if (m->iova > last)
			n = n->left;
		else if (m->iova + m->len - 1 < first)
			n = n->right;
		else
			return true;
	}
	return false;
}

/* Largest page size that @va and @len allow, for the IOVA alignment. */
static uint64_t pick_align(const struct vfdma_domain *dom, uintptr_t va, uint64_t len)
{
	uint64_t align = dom->granule;
	for (uint64_t p = dom->pgsizes; p; p &= p - 1) {
		uint64_t sz = p & -p;
		if (sz > align && sz <= len && !(va & (sz - 1)))
			align = sz;
	}
	return align;
}

static int backend_map(struct vfdma_domain *dom, struct vfd_map *m)
{
	if (!dom->be_ready)
		return 0;
	__atomic_add_fetch(&dom->kernel_map_calls, 1, __ATOMIC_RELAXED);
	return dom->ops->map(dom, m->iova, (void *)m->va, m->len, m->prot);
}

/* Kernel unmap of [iova, iova + len), checked. */
static int backend_unmap(struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	if (!dom->be_ready)
		return 0;
	if (dom->dirty)
		vfd_dirty_harvest(dom, iova, len);
	__atomic_add_fetch(&dom->kernel_unmap_calls, 1, __ATOMIC_RELAXED);
	int64_t got = dom->ops->unmap(dom, iova, len);
	if (got == (int64_t)len)
		return 0;
	vfd_domain_mark_broken(dom, "kernel unmapped a different size", iova, len, got);
	return got < 0 ? (int)got : -EIO;
}

static void iova_release(struct vfdma_domain *dom, struct vfd_map *m)
{
	int rc = vfdma_iova_free(dom->iova, m->iova, m->len);
	if (rc)
		vfd_domain_mark_broken(dom, "allocator refused to free a mapped IOVA", m->iova,
				       m->len, rc);
}

/*
 * Is [iova, iova + len) inside one of the domain's usable ranges?  The
 * allocator keeps the ranges it was created with and holds what attaches
 * excluded later as reservations (-EBUSY); a fixed IOVA there is out of
 * range for the caller, as documented (-ERANGE).  op_lock held.
 */
static bool in_ranges(const struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	for (size_t i = 0; i < dom->nr_ranges; i++)
		if (dom->ranges[i].first <= iova && iova + len - 1 <= dom->ranges[i].last)
			return true;
	return false;
}

static int iova_take(struct vfdma_domain *dom, struct vfd_map *m, unsigned int flags)
{
	int rc;
	if (!(flags & VFDMA_MAP_FIXED) && dom->ops->choose_iova) {
		rc = dom->ops->choose_iova(dom, (void *)m->va, m->len, &m->iova);
		if (rc)
			return rc;
		flags |= VFDMA_MAP_FIXED;
	}
	if (flags & VFDMA_MAP_FIXED) {
		if (!in_ranges(dom, m->iova, m->len))
			return -ERANGE;
		rc = vfdma_iova_alloc_fixed(dom->iova, m->iova, m->len);
		m->fixed = 1;
		return rc;
	}
	uint64_t align = pick_align(dom, m->va, m->len);
	rc = vfdma_iova_alloc(dom->iova, m->len, align, dom->dma_limit, &m->iova);
	if (rc == -ENOSPC && __atomic_load_n(&dom->defer_entries, __ATOMIC_RELAXED)) {
		/* IOVAs waiting in the deferred queue: release them and retry. */
		vfd_map_flush_locked_out(dom);
		rc = vfdma_iova_alloc(dom->iova, m->len, align, dom->dma_limit, &m->iova);
	}
	return rc;
}

static int check_run(const struct vfdma_domain *dom, const void *vaddr, uint64_t len,
		     uint64_t iova, unsigned int flags)
{
	uint64_t mask = dom->granule - 1;
	if (!vaddr || !len || ((uintptr_t)vaddr & mask) || (len & mask))
		return -EINVAL;
	if ((flags & VFDMA_MAP_FIXED) && (iova & mask))
		return -EINVAL;
	if ((uintptr_t)vaddr + len < (uintptr_t)vaddr ||
	    ((flags & VFDMA_MAP_FIXED) && iova + len < iova))
		return -EOVERFLOW;
	return 0;
}

/*
 * Map @n groups of runs already validated.  @groups[g] is the index of the
 * first run of group g; a group is one mapping.
 */
static int map_groups(struct vfdma_domain *dom, struct vfdma_map_run *runs, size_t nruns,
		      const size_t *starts, size_t ngroups, unsigned int prot, unsigned int flags)
{
	struct vfd_map **maps = vfd_calloc(ngroups, sizeof(*maps));
	if (!maps)
		return -ENOMEM;
	int rc = 0;
	size_t g, done = 0;
	for (g = 0; g < ngroups; g++) {
		maps[g] = vfd_calloc(1, sizeof(**maps));
		if (!maps[g]) {
			rc = -ENOMEM;
			goto undo;
		}
	}
	for (g = 0; g < ngroups; g++) {
		size_t end = g + 1 < ngroups ? starts[g + 1] : nruns;
		struct vfd_map *m = maps[g];
		m->va = (uintptr_t)runs[starts[g]].vaddr;
		m->iova = runs[starts[g]].iova;
		m->prot = prot;
		m->hidden = !!(flags & VFD_MAP_HIDDEN);
		for (size_t r = starts[g]; r < end; r++)
			m->len += runs[r].len;
		rc = iova_take(dom, m, flags);
		if (rc)
			goto undo;
		rc = backend_map(dom, m);
		if (rc) {
			iova_release(dom, m);
			goto undo;
		}
		done++;
	}
	pthread_mutex_lock(&dom->lock);
	for (g = 0; g < ngroups; g++) {
		rc = tables_prepare(dom, maps[g]);
		if (rc) {
			pthread_mutex_unlock(&dom->lock);
			goto undo;
		}
	}
	for (g = 0; g < ngroups; g++) {
		size_t end = g + 1 < ngroups ? starts[g + 1] : nruns;
		uint64_t off = 0;
		for (size_t r = starts[g]; r < end; r++) {
			runs[r].iova = maps[g]->iova + off;
			off += runs[r].len;
		}
		table_insert(dom, maps[g]);
	}
	pthread_mutex_unlock(&dom->lock);
	vfd_free(maps);
	return 0;

undo:
	/* Unmap what this call mapped, newest first, then free everything. */
	for (g = done; g-- > 0;) {
		backend_unmap(dom, maps[g]->iova, maps[g]->len);
		iova_release(dom, maps[g]);
	}
	for (g = 0; g < ngroups; g++)
		vfd_free(maps[g]);
	vfd_free(maps);
	return rc;
}

static int map_enter(struct vfdma_domain *dom)
{
	pthread_rwlock_rdlock(&dom->op_lock);
	if (__atomic_load_n(&dom->broken, __ATOMIC_ACQUIRE)) {
		pthread_rwlock_unlock(&dom->op_lock);
		return -EIO;
	}
	return 0;
}

static void maybe_flush_on_time(struct vfdma_domain *dom);

static int map_one(struct vfdma_domain *dom, void *vaddr, uint64_t len, unsigned int prot,
		   unsigned int flags, uint64_t *iova);

int vfd_map_hidden(struct vfdma_domain *dom, void *vaddr, uint64_t len, unsigned int prot,
		   uint64_t *iova)
{
	return map_one(dom, vaddr, len, prot, VFD_MAP_HIDDEN, iova);
}

int vfdma_map(struct vfdma_domain *dom, void *vaddr, uint64_t len, unsigned int prot,
	      unsigned int flags, uint64_t *iova)
{
	if (flags & ~(VFDMA_MAP_FIXED | VFDMA_MAP_NOCOALESCE))
		return -EINVAL;
	return map_one(dom, vaddr, len, prot, flags, iova);
}

static int map_one(struct vfdma_domain *dom, void *vaddr, uint64_t len, unsigned int prot,
		   unsigned int flags, uint64_t *iova)
{
	if (!dom || !iova || !prot || (prot & ~VFDMA_PROT_RW))
		return -EINVAL;
	int rc = check_run(dom, vaddr, len, *iova, flags);
	if (rc)
		return rc;
	rc = map_enter(dom);
	if (rc)
		return rc;
	maybe_flush_on_time(dom);
	struct vfdma_map_run run = {.vaddr = vaddr, .len = len, .iova = *iova};
	size_t start = 0;
	rc = map_groups(dom, &run, 1, &start, 1, prot, flags);
	pthread_rwlock_unlock(&dom->op_lock);
	if (!rc)
		*iova = run.iova;
	return rc;
}

int vfdma_map_batch(struct vfdma_domain *dom, struct vfdma_map_run *runs, size_t n,
		    unsigned int prot, unsigned int flags)
{
	if (!dom || !runs || !n || !prot || (prot & ~VFDMA_PROT_RW) ||
	    (flags & ~(VFDMA_MAP_FIXED | VFDMA_MAP_NOCOALESCE)))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int rc = check_run(dom, runs[i].vaddr, runs[i].len, runs[i].iova, flags);
		if (rc)
			return rc;
	}
	size_t *starts = vfd_calloc(n, sizeof(*starts));
	if (!starts)
		return -ENOMEM;
	size_t ngroups = 0;
	for (size_t i = 0; i < n; i++) {
		bool join = i > 0 && !(flags & VFDMA_MAP_NOCOALESCE) &&
			    (uintptr_t)runs[i - 1].vaddr + runs[i - 1].len == (uintptr_t)runs[i].vaddr &&
			    (!(flags & VFDMA_MAP_FIXED) ||
			     runs[i - 1].iova + runs[i - 1].len == runs[i].iova);
		if (!join)
			starts[ngroups++] = i;
	}
	int rc = map_enter(dom);
	if (!rc) {
		maybe_flush_on_time(dom);
		rc = map_groups(dom, runs, n, starts, ngroups, prot, flags);
		pthread_rwlock_unlock(&dom->op_lock);
	}
	vfd_free(starts);
	return rc;
}

/*
 * Do whole mappings tile [iova, iova + len) exactly?  0 (the first tile in
 * *first; the others follow it by IOVA), -ENOENT or -EINVAL.  Under
 * dom->lock.
 */
static int collect_tiles(struct vfdma_domain *dom, uint64_t iova, uint64_t len,
			 struct vfd_map **first)
{
	struct vfd_map *m = find_iova(dom, iova);
	if (!m)
		return -ENOENT;
	if (m->iova != iova)
		return -EINVAL;
	*first = m;
	uint64_t pos = iova, end = iova + len;
	while (pos < end) {
		if (!m || m->iova != pos || m->len > end - pos)
			return -EINVAL;
		pos += m->len;
		m = map_of_iova(vfd_rb_next(&m->by_iova));
	}
	return 0;
}

static int cmp_iova(const void *a, const void *b)
{
	const struct vfd_map *x = *(struct vfd_map *const *)a, *y = *(struct vfd_map *const *)b;
	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/*
 * Kernel-unmap the chain @list gathered into as few calls as possible
 * (adjacent IOVAs joined), then free their IOVAs and structures.  Returns
 * the first error; every mapping is released regardless.
 */
static int unmap_gathered(struct vfdma_domain *dom, struct vfd_map *list)
{
	size_t n = 0;
	for (struct vfd_map *m = list; m; m = m->next)
		n++;
	if (!n)
		return 0;
	struct vfd_map **v = vfd_calloc(n, sizeof(*v));
	int err = 0;
	if (v) {
		size_t i = 0;
		for (struct vfd_map *m = list; m; m = m->next)
			v[i++] = m;
		qsort(v, n, sizeof(*v), cmp_iova);
		for (i = 0; i < n;) {
			size_t j = i + 1;
			uint64_t end = v[i]->iova + v[i]->len;
			while (j < n && v[j]->iova == end)
				end += v[j++]->len;
			int rc = backend_unmap(dom, v[i]->iova, end - v[i]->iova);
			if (rc && !err)
				err = rc;
			i = j;
		}
		vfd_free(v);
	} else {
		/* No memory to sort: unmap one by one, still correct. */
		for (struct vfd_map *m = list; m; m = m->next) {
			int rc = backend_unmap(dom, m->iova, m->len);
			if (rc && !err)
				err = rc;
		}
	}
	while (list) {
		struct vfd_map *next = list->next;
		/* Never hand out an IOVA the kernel may still map. */
		if (!__atomic_load_n(&dom->broken, __ATOMIC_ACQUIRE))
			iova_release(dom, list);
		vfd_free(list);
		list = next;
	}
	return err;
}

/* Take the deferred queue (under dom->lock). */
static struct vfd_map *defer_take(struct vfdma_domain *dom)
{
	struct vfd_map *list = dom->defer_head;
	dom->defer_head = NULL;
	dom->defer_bytes = 0;
	__atomic_store_n(&dom->defer_entries, 0, __ATOMIC_RELAXED);
	return list;
}

/* Flush the deferred queue; caller holds op_lock (shared or exclusive). */
int vfd_map_flush_locked_out(struct vfdma_domain *dom)
{
	pthread_mutex_lock(&dom->lock);
	struct vfd_map *list = defer_take(dom);
	pthread_mutex_unlock(&dom->lock);
	return unmap_gathered(dom, list);
}

static void maybe_flush_on_time(struct vfdma_domain *dom)
{
	if (!__atomic_load_n(&dom->defer_entries, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&dom->lock);
	bool due = dom->defer_head &&
		   vfd_now_ns() - dom->defer_oldest_ns >= dom->opts.defer_max_us * 1000ull;
	struct vfd_map *list = due ? defer_take(dom) : NULL;
	pthread_mutex_unlock(&dom->lock);
	unmap_gathered(dom, list);
}

/* Remove the tiles of each run from the table and unmap them (or queue). */
static int unmap_runs(struct vfdma_domain *dom, const struct vfdma_map_run *runs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t mask = dom->granule - 1;
		if (!runs[i].len || ((runs[i].iova | runs[i].len) & mask))
			return -EINVAL;
		if (runs[i].iova + runs[i].len < runs[i].iova)
			return -EOVERFLOW;
	}
	pthread_rwlock_rdlock(&dom->op_lock);
	pthread_mutex_lock(&dom->lock);
	struct vfd_map *all = NULL;
	int rc = 0;
	/* Validate every run before removing anything. */
	for (size_t i = 0; i < n && !rc; i++) {
		struct vfd_map *tiles;
		rc = collect_tiles(dom, runs[i].iova, runs[i].len, &tiles);
		/* Runs may not overlap each other: a tile already taken fails. */
		for (size_t j = 0; j < i && !rc; j++)
			if (runs[j].iova < runs[i].iova + runs[i].len &&
			    runs[i].iova < runs[j].iova + runs[j].len)
				rc = -EINVAL;
	}
	if (rc) {
		pthread_mutex_unlock(&dom->lock);
		pthread_rwlock_unlock(&dom->op_lock);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		struct vfd_map *m, *next;
		collect_tiles(dom, runs[i].iova, runs[i].len, &m);
		for (uint64_t left = runs[i].len; left; m = next) {
			/* The successor first: ->next overlays the by-IOVA node. */
			next = map_of_iova(vfd_rb_next(&m->by_iova));
			left -= m->len;
			table_remove(dom, m);
			m->next = all;
			all = m;
		}
	}
	bool defer = dom->opts.flags & VFDMA_DOMAIN_DEFER_UNMAP;
	if (defer) {
		for (struct vfd_map *m = all, *next; m; m = next) {
			next = m->next;
			if (!dom->defer_head)
				dom->defer_oldest_ns = vfd_now_ns();
			m->next = dom->defer_head;
			dom->defer_head = m;
			dom->defer_bytes += m->len;
			__atomic_add_fetch(&dom->defer_entries, 1, __ATOMIC_RELAXED);
		}
		all = NULL;
		if (dom->defer_bytes >= dom->opts.defer_max_bytes ||
		    dom->defer_entries >= dom->opts.defer_max_entries ||
		    vfd_now_ns() - dom->defer_oldest_ns >= dom->opts.defer_max_us * 1000ull)
			all = defer_take(dom);
	}
	pthread_mutex_unlock(&dom->lock);
	rc = unmap_gathered(dom, all);
	pthread_rwlock_unlock(&dom->op_lock);
	return rc;
}

int vfdma_unmap(struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	if (!dom)
		return -EINVAL;
	struct vfdma_map_run run = {.vaddr = NULL, .len = len, .iova = iova};
	return unmap_runs(dom, &run, 1);
}

int vfdma_unmap_batch(struct vfdma_domain *dom, const struct vfdma_map_run *runs, size_t n)
{
	if (!dom || !runs || !n)
		return -EINVAL;
	return unmap_runs(dom, runs, n);
}

/*
 * Translation: the tables without a lock; the trees under the lock only
 * when a mapping does not fit the tables or a run is too long for an entry
 * to give its length.  A caller racing an unmap of the same memory gets
 * the translation before or after it, as with a lock.
 *
 * The tree walks live in their own functions on purpose: with the mutex
 * and the tree walk inline, the compiler gives the public functions a
 * frame (five callee-saved registers pushed and popped on every call),
 * which cost more than the table walk itself (measured: 10.6 TSC ticks a
 * hit against 3.8 for an empty call).  Split out, a hit is a leaf
 * function without a frame, and (with the table walk's layout, xlate.h)
 * without a taken branch but its return.
 */
static __attribute__((noinline, cold)) int va_to_iova_tree(struct vfdma_domain *dom, uintptr_t va,
							   uint64_t *iova, uint64_t *len)
{
	struct vfd_map *m = NULL;
	pthread_mutex_lock(&dom->lock);
	find_va_in(dom->by_va.node, va, &m, false);
	if (m) {
		*iova = m->iova + (va - m->va);
		if (len)
			*len = m->len - (va - m->va);
	}
	pthread_mutex_unlock(&dom->lock);
	return m ? 0 : -ENOENT;
}

static __attribute__((noinline, cold)) int iova_to_va_tree(struct vfdma_domain *dom, uint64_t iova,
							   void **vaddr, uint64_t *len)
{
	pthread_mutex_lock(&dom->lock);
	struct vfd_map *m = find_iova(dom, iova);
	if (m) {
		*vaddr = (void *)(m->va + (iova - m->iova));
		if (len)
			*len = m->len - (iova - m->iova);
	}
	pthread_mutex_unlock(&dom->lock);
	return m ? 0 : -ENOENT;
}

__attribute__((aligned(64))) int vfdma_vaddr_to_iova(struct vfdma_domain *dom, const void *vaddr, uint64_t *iova,
			uint64_t *len)
{
	if (!dom || !iova)
		return -EINVAL;
	uintptr_t va = (uintptr_t)vaddr;
	if (__builtin_expect(!__atomic_load_n(&dom->xl_untabled, __ATOMIC_ACQUIRE), 1)) {
		uint64_t t, l = 0;
		int rc = vfd_xlate_lookup(&dom->xl_va, va, &t, &l);
		if (rc == -ENOENT)
			return rc;
		if (__builtin_expect(rc == 0 || !len, 1)) {
			*iova = t;
			if (len)
				*len = l;
			return 0;
		}
	}
	return va_to_iova_tree(dom, va, iova, len);
}

__attribute__((aligned(64))) int vfdma_iova_to_vaddr(struct vfdma_domain *dom, uint64_t iova, void **vaddr, uint64_t *len)
{
	if (!dom || !vaddr)
		return -EINVAL;
	if (__builtin_expect(!__atomic_load_n(&dom->xl_untabled, __ATOMIC_ACQUIRE), 1)) {
		uint64_t t, l = 0;
		int rc = vfd_xlate_lookup(&dom->xl_iova, iova, &t, &l);
		if (rc == -ENOENT)
			return rc;
		if (__builtin_expect(rc == 0 || !len, 1)) {
			*vaddr = (void *)(uintptr_t)t;
			if (len)
				*len = l;
			return 0;
		}
	}
	return iova_to_va_tree(dom, iova, vaddr, len);
}

/*
 * The backend became ready (type1's first device): issue every mapping the
 * table holds.  op_lock is held exclusive.  On failure, what was issued is
 * unmapped again and the error returned.
 */
int vfd_map_replay(struct vfdma_domain *dom)
{
	for (struct vfd_rb_node *n = vfd_rb_first(&dom->by_iova); n; n = vfd_rb_next(n)) {
		struct vfd_map *m = map_of_iova(n);
		int rc = backend_map(dom, m);
		if (rc) {
			for (struct vfd_rb_node *u = vfd_rb_prev(n); u; u = vfd_rb_prev(u))
				backend_unmap(dom, map_of_iova(u)->iova, map_of_iova(u)->len);
			return rc;
		}
	}
	return 0;
}

/* Close or last detach: remove every mapping and queued unmap. */
void vfd_map_destroy_all(struct vfdma_domain *dom, int *first_err)
{
	struct vfd_map *all = defer_take(dom);
	struct vfd_rb_node *n;
	while ((n = vfd_rb_first(&dom->by_iova))) {
		struct vfd_map *m = map_of_iova(n);
		table_remove(dom, m);
		m->next = all;
		all = m;
	}
	int rc = unmap_gathered(dom, all);
	if (rc && first_err && !*first_err)
		*first_err = rc;
}

/* vfdma_domain_check()'s work; op_lock held exclusive. */
int vfd_map_check(struct vfdma_domain *dom)
{
	struct vfdma_iova_stats st;
	if (vfdma_iova_get_stats(dom->iova, &st))
		return -EIO;
	/* Every mapping holds exactly one allocation of the allocator. */
	uint64_t queued = 0;
	for (struct vfd_map *m = dom->defer_head; m; m = m->next)
		queued++;
	if (st.allocs != dom->nr_maps + queued) {
		vfd_domain_mark_broken(dom, "allocator and mapping table disagree on the count",
				       0, dom->nr_maps + queued, (int64_t)st.allocs);
		return -EIO;
	}
	for (struct vfd_rb_node *n = vfd_rb_first(&dom->by_iova); n; n = vfd_rb_next(n)) {
		struct vfd_map *m = map_of_iova(n);
		if (!dom->be_ready || !dom->ops->probe)
			continue;
		int p = dom->ops->probe(dom, m->iova, m->len, (void *)m->va, m->prot);
		if (p != 1) {
			vfd_domain_mark_broken(dom, "mapping missing from the backend", m->iova,
					       m->len, p);
			return -EIO;
		}
	}
	return __atomic_load_n(&dom->broken, __ATOMIC_ACQUIRE) ? -EIO : 0;
}
