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
 *  - the lock-free translation tables (dom->xl_va, dom->xl_iova) are the
 *    table's index (maptab.c): they change under dom->lock, and vaddr
 *    pages translate to the lowest IOVA.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iommu/maptab.h"
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

bool vfd_map_overlaps(struct vfdma_domain *dom, uint64_t first, uint64_t last)
{
	struct vfd_map *m = vfd_maptab_from(dom, first);
	return m && m->iova <= last;
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
	return dom->ops->map(dom, m->iova, (void *)m->va, m->len,
			     (unsigned int)(m->word & VFD_MAPW_PROT));
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
		m->word |= VFD_MAPW_FIXED;
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

/* Give records back to the slab (takes dom->lock unless @locked). */
static void release_records(struct vfdma_domain *dom, struct vfd_map *list, bool locked)
{
	if (!locked)
		pthread_mutex_lock(&dom->lock);
	vfd_maptab_release(dom, list);
	if (!locked)
		pthread_mutex_unlock(&dom->lock);
}

/*
 * Map @n groups of runs already validated.  @groups[g] is the index of the
 * first run of group g; a group is one mapping.  Each mapping is built in
 * a private copy and published into its slab record (reserved first, so
 * no kernel call is made that could not be recorded) only when entered:
 * lock-free readers may be reading a recycled record at any time.
 */
static int map_groups(struct vfdma_domain *dom, struct vfdma_map_run *runs, size_t nruns,
		      const size_t *starts, size_t ngroups, unsigned int prot, unsigned int flags)
{
	struct vfd_map *maps = vfd_calloc(ngroups, sizeof(*maps));
	struct vfd_map **recs = vfd_calloc(ngroups, sizeof(*recs));
	int rc = maps && recs ? 0 : -ENOMEM;
	size_t g, done = 0, nrec = 0;
	pthread_mutex_lock(&dom->lock);
	for (; !rc && nrec < ngroups; nrec++) {
		recs[nrec] = vfd_maptab_alloc(dom);
		if (!recs[nrec])
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&dom->lock);
	if (rc)
		goto undo;
	for (g = 0; g < ngroups; g++) {
		size_t end = g + 1 < ngroups ? starts[g + 1] : nruns;
		struct vfd_map *m = &maps[g];
		m->va = (uintptr_t)runs[starts[g]].vaddr;
		m->iova = runs[starts[g]].iova;
		m->word = prot | (flags & VFD_MAP_HIDDEN ? VFD_MAPW_HIDDEN : 0);
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
	rc = vfd_maptab_prepare(dom, maps, ngroups);
	if (rc) {
		vfd_maptab_done(dom);
		pthread_mutex_unlock(&dom->lock);
		goto undo;
	}
	for (g = 0; g < ngroups; g++) {
		size_t end = g + 1 < ngroups ? starts[g + 1] : nruns;
		uint64_t off = 0;
		for (size_t r = starts[g]; r < end; r++) {
			runs[r].iova = maps[g].iova + off;
			off += runs[r].len;
		}
		vfd_maptab_insert(dom, recs[g], &maps[g]);
	}
	vfd_maptab_done(dom);
	pthread_mutex_unlock(&dom->lock);
	vfd_free(recs);
	vfd_free(maps);
	return 0;

undo:
	/* Unmap what this call mapped, newest first, then free everything. */
	for (g = done; g-- > 0;) {
		backend_unmap(dom, maps[g].iova, maps[g].len);
		iova_release(dom, &maps[g]);
	}
	struct vfd_map *list = NULL;
	for (g = 0; recs && g < nrec; g++) {
		if (recs[g]) {
			vfd_map_set_next(recs[g], list);
			list = recs[g];
		}
	}
	release_records(dom, list, false);
	vfd_free(recs);
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
	struct vfd_map *m = vfd_maptab_find_iova(dom, iova);
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
		m = pos < end ? vfd_maptab_find_iova(dom, pos) : NULL;
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
 * (adjacent IOVAs joined), then free their IOVAs and records (@locked:
 * dom->lock is held).  Returns the first error; every mapping is released
 * regardless.
 */
static int unmap_gathered(struct vfdma_domain *dom, struct vfd_map *list, bool locked)
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
	for (struct vfd_map *m = list; m; m = m->next) {
		/* Never hand out an IOVA the kernel may still map. */
		if (!__atomic_load_n(&dom->broken, __ATOMIC_ACQUIRE))
			iova_release(dom, m);
	}
	release_records(dom, list, locked);
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
	return unmap_gathered(dom, list, false);
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
	unmap_gathered(dom, list, false);
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
			left -= m->len;
			next = left ? vfd_maptab_find_iova(dom, m->iova + m->len) : NULL;
			vfd_maptab_remove(dom, m);
			vfd_map_set_next(m, all);
			all = m;
		}
	}
	bool defer = dom->opts.flags & VFDMA_DOMAIN_DEFER_UNMAP;
	if (defer) {
		for (struct vfd_map *m = all, *next; m; m = next) {
			next = m->next;
			if (!dom->defer_head)
				dom->defer_oldest_ns = vfd_now_ns();
			vfd_map_set_next(m, dom->defer_head);
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
	rc = unmap_gathered(dom, all, false);
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
 * vaddr -> IOVA is the hot direction and one table walk (LINEAR entries).
 * IOVA -> vaddr walks the CONST table to the record and reads it: the
 * record may be leaving or recycled under the reader, so its fields are
 * read between two loads of its word and used only if the generation is
 * the same and even (entered) and the record contains the IOVA; else the
 * lock decides.  A record is written only while its generation is odd,
 * with release stores, so a field the reader saw written after it turned
 * odd implies the second word load sees it odd too.
 *
 * The slow paths live in their own functions on purpose: with the mutex
 * inline, the compiler gives the public functions a frame (five
 * callee-saved registers pushed and popped on every call), which cost more
 * than the table walk itself (measured: 10.6 TSC ticks a hit against 3.8
 * for an empty call).  Split out, a hit is a leaf function without a
 * frame, and (with the table walk's layout, xlate.h) without a taken
 * branch but its return.
 */
static __attribute__((noinline, cold)) int va_to_iova_tree(struct vfdma_domain *dom, uintptr_t va,
							   uint64_t *iova, uint64_t *len)
{
	pthread_mutex_lock(&dom->lock);
	int rc = vfd_maptab_va_lookup(dom, va, iova, len);
	pthread_mutex_unlock(&dom->lock);
	return rc;
}

static __attribute__((noinline, cold)) int iova_to_va_tree(struct vfdma_domain *dom, uint64_t iova,
							   void **vaddr, uint64_t *len)
{
	pthread_mutex_lock(&dom->lock);
	struct vfd_map *m = vfd_maptab_find_iova(dom, iova);
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
		const struct vfd_map *m =
			(const struct vfd_map *)(uintptr_t)vfd_xlate_get(&dom->xl_iova, iova);
		if (!m)
			return -ENOENT;
		uint64_t w = __atomic_load_n(&m->word, __ATOMIC_ACQUIRE);
		uint64_t mi = __atomic_load_n(&m->iova, __ATOMIC_ACQUIRE);
		uint64_t ml = __atomic_load_n(&m->len, __ATOMIC_ACQUIRE);
		uintptr_t mv = __atomic_load_n(&m->va, __ATOMIC_ACQUIRE);
		uint64_t w2 = __atomic_load_n(&m->word, __ATOMIC_RELAXED);
		uint64_t off = iova - mi;
		if (__builtin_expect(!((w ^ w2) >> VFD_MAPW_GEN_SHIFT) &&
				     !((w >> VFD_MAPW_GEN_SHIFT) & 1) && off < ml, 1)) {
			*vaddr = (void *)(mv + off);
			if (len)
				*len = ml - off;
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
	for (struct vfd_map *m = vfd_maptab_from(dom, 0); m; m = vfd_maptab_next(dom, m)) {
		int rc = backend_map(dom, m);
		if (rc) {
			for (struct vfd_map *u = vfd_maptab_from(dom, 0); u != m;
			     u = vfd_maptab_next(dom, u))
				backend_unmap(dom, u->iova, u->len);
			return rc;
		}
	}
	return 0;
}

/* Close or last detach: remove every mapping and queued unmap (dom->lock held). */
void vfd_map_destroy_all(struct vfdma_domain *dom, int *first_err)
{
	struct vfd_map *all = defer_take(dom);
	for (struct vfd_map *m = vfd_maptab_from(dom, 0), *next; m; m = next) {
		next = vfd_maptab_next(dom, m);
		vfd_maptab_remove(dom, m);
		vfd_map_set_next(m, all);
		all = m;
	}
	int rc = unmap_gathered(dom, all, true);
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
	/* The index (tables and trees) agrees with the records. */
	const struct vfd_map *bad;
	const char *what = vfd_maptab_check(dom, &bad);
	if (what) {
		vfd_domain_mark_broken(dom, what, bad ? bad->iova : 0, bad ? bad->len : dom->nr_maps,
				       -EIO);
		return -EIO;
	}
	for (struct vfd_map *m = vfd_maptab_from(dom, 0); m; m = vfd_maptab_next(dom, m)) {
		if (!dom->be_ready || !dom->ops->probe)
			continue;
		int p = dom->ops->probe(dom, m->iova, m->len, (void *)m->va,
					(unsigned int)(m->word & VFD_MAPW_PROT));
		if (p != 1) {
			vfd_domain_mark_broken(dom, "mapping missing from the backend", m->iova,
					       m->len, p);
			return -EIO;
		}
	}
	return __atomic_load_n(&dom->broken, __ATOMIC_ACQUIRE) ? -EIO : 0;
}
