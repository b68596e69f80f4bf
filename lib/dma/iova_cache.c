/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-thread caches of small IOVA blocks, after the kernel's rcache (itself
 * after Bonwick's magazines): each thread slot holds, per size class, a
 * loaded and a previous magazine of free block addresses; full magazines go
 * to a depot shared by the space, and an empty slot takes one back from it.
 * A cached block stays a FAST node in the tree (it is "allocated" there) with
 * its live byte at 0, so a free of it is a double free.
 *
 * Threads find their slot with vfd_tslot() (lib/util/tslot.h); a slot is
 * shared if more threads than VFD_IOVA_NSLOT run, which its lock makes safe.
 * The lock also lets vfd_iova_cache_flush() empty every slot when the space
 * runs out.
 */
#include <string.h>

#include "dma/iova_space.h"
#include "util/sys.h"
#include "util/tslot.h"

static void slot_free(struct vfd_islot *sl)
{
	for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++) {
		vfd_free(sl->cur[k]);
		vfd_free(sl->prev[k]);
	}
	vfd_free(sl);
}

__thread struct vfd_iova_tls vfd_iova_tls __attribute__((tls_model("initial-exec")));

struct vfd_islot *vfd_iova_slot_slow(struct vfdma_iova_space *sp)
{
	_Atomic(struct vfd_islot *) *p = &sp->slots[vfd_tslot() % VFD_IOVA_NSLOT];
	struct vfd_islot *sl = atomic_load_explicit(p, memory_order_acquire);

	if (__builtin_expect(sl != NULL, 1))
		return sl;
	sl = vfd_aligned_alloc(64, sizeof(*sl));
	if (!sl)
		return NULL;
	memset(sl, 0, sizeof(*sl));
	atomic_init(&sl->lock, 0);
	for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++) {
		sl->cur[k] = vfd_malloc(sizeof(struct vfd_mag));
		sl->prev[k] = vfd_malloc(sizeof(struct vfd_mag));
		if (!sl->cur[k] || !sl->prev[k]) {
			slot_free(sl);
			return NULL;
		}
		sl->cur[k]->n = sl->prev[k]->n = 0;
	}
	struct vfd_islot *none = NULL;
	if (!atomic_compare_exchange_strong_explicit(p, &none, sl, memory_order_acq_rel,
						     memory_order_acquire)) {
		slot_free(sl);
		return none;
	}
	return sl;
}

/* Take a block of 2^k pages ending at or below page last out of m. */
static bool mag_pop(struct vfd_mag *m, unsigned k, uint64_t last, uint64_t *pfn)
{
	uint64_t span = (UINT64_C(1) << k) - 1;

	for (uint64_t i = m->n; i--;) {
		if (m->pfn[i] + span <= last) {
			*pfn = m->pfn[i];
			m->pfn[i] = m->pfn[--m->n];
			return true;
		}
	}
	return false;
}

static uint64_t mag_release_locked(struct vfdma_iova_space *sp, struct vfd_mag *m, unsigned k)
{
	uint64_t n = m->n;

	for (uint64_t i = 0; i < n; i++)
		vfd_iova_release_locked(sp, m->pfn[i], k);
	m->n = 0;
	return n;
}

bool vfd_iova_cache_get_slow(struct vfdma_iova_space *sp, struct vfd_islot *sl, unsigned k,
			     uint64_t last, uint64_t *pfn)
{
	struct vfd_mag *m = sl->cur[k], *spare = NULL;
	bool ok;

	if (!m->n && sl->prev[k]->n) {
		sl->cur[k] = sl->prev[k];
		sl->prev[k] = m;
	}
	ok = mag_pop(sl->cur[k], k, last, pfn) || mag_pop(sl->prev[k], k, last, pfn);
	if (!ok && !sl->cur[k]->n && !sl->prev[k]->n) {
		/* both empty: swap the loaded one for a full one from the depot */
		struct vfd_depot *d = &sp->depot;
		pthread_mutex_lock(&sp->lock);
		if (d->nfull[k]) {
			m = sl->cur[k];
			sl->cur[k] = d->full[k][--d->nfull[k]];
			d->nmags--;
			if (d->nspare < VFD_SPARE_MAX) {
				d->spare[d->nspare++] = m;
				d->nmags++;
			} else {
				spare = m;
			}
		}
		pthread_mutex_unlock(&sp->lock);
		ok = mag_pop(sl->cur[k], k, last, pfn);
	}
	vfd_slot_unlock(sl);
	vfd_free(spare);
	return ok;
}

void vfd_iova_cache_put_slow(struct vfdma_iova_space *sp, struct vfd_islot *sl, unsigned k,
			     uint64_t pfn)
{
	struct vfd_mag *m;

	if (!sl) {
		pthread_mutex_lock(&sp->lock);
		vfd_iova_release_locked(sp, pfn, k);
		pthread_mutex_unlock(&sp->lock);
		return;
	}
	m = sl->cur[k];
	if (sl->prev[k]->n == VFD_MAG_SIZE) {
		/* both full: the previous one goes to the depot, or to the tree */
		struct vfd_depot *d = &sp->depot;
		pthread_mutex_lock(&sp->lock);
		if (d->nfull[k] < VFD_DEPOT_MAX) {
			struct vfd_mag *e = NULL;
			if (d->nspare) {
				e = d->spare[--d->nspare];
				d->nmags--;
			} else {
				e = vfd_malloc(sizeof(*e));
			}
			if (e) {
				d->full[k][d->nfull[k]++] = sl->prev[k];
				d->nmags++;
				e->n = 0;
				sl->prev[k] = e;
			}
		}
		if (sl->prev[k]->n)
			mag_release_locked(sp, sl->prev[k], k);
		pthread_mutex_unlock(&sp->lock);
	}
	sl->cur[k] = sl->prev[k];
	sl->prev[k] = m;
	sl->cur[k]->pfn[sl->cur[k]->n++] = pfn;
	vfd_slot_unlock(sl);
}

uint64_t vfd_iova_cache_flush(struct vfdma_iova_space *sp)
{
	struct vfd_depot *d = &sp->depot;
	uint64_t released = 0;

	for (unsigned i = 0; i < VFD_IOVA_NSLOT; i++) {
		struct vfd_islot *sl = atomic_load_explicit(&sp->slots[i], memory_order_acquire);
		if (!sl)
			continue;
		vfd_slot_lock(sl);
		bool any = false;
		for (unsigned k = 0; k < VFD_IOVA_NCLASS && !any; k++)
			any = sl->cur[k]->n || sl->prev[k]->n;
		if (any) {
			pthread_mutex_lock(&sp->lock);
			for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++) {
				released += mag_release_locked(sp, sl->cur[k], k);
				released += mag_release_locked(sp, sl->prev[k], k);
			}
			pthread_mutex_unlock(&sp->lock);
		}
		vfd_slot_unlock(sl);
	}
	pthread_mutex_lock(&sp->lock);
	for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++) {
		while (d->nfull[k]) {
			struct vfd_mag *m = d->full[k][--d->nfull[k]];
			released += mag_release_locked(sp, m, k);
			if (d->nspare < VFD_SPARE_MAX) {
				d->spare[d->nspare++] = m;
			} else {
				vfd_free(m);
				d->nmags--;
			}
		}
	}
	pthread_mutex_unlock(&sp->lock);
	return released;
}

void vfd_iova_cache_count_slots(struct vfdma_iova_space *sp, uint64_t *blocks,
				uint64_t *pages, size_t *mem)
{
	*blocks = *pages = 0;
	*mem = 0;
	for (unsigned i = 0; i < VFD_IOVA_NSLOT; i++) {
		struct vfd_islot *sl = atomic_load_explicit(&sp->slots[i], memory_order_acquire);
		if (!sl)
			continue;
		*mem += sizeof(*sl) + 2 * VFD_IOVA_NCLASS * sizeof(struct vfd_mag);
		vfd_slot_lock(sl);
		for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++) {
			uint64_t n = sl->cur[k]->n + sl->prev[k]->n;
			*blocks += n;
			*pages += n << k;
		}
		vfd_slot_unlock(sl);
	}
}

void vfd_iova_cache_count_depot(struct vfdma_iova_space *sp, uint64_t *blocks,
				uint64_t *pages, size_t *mem)
{
	const struct vfd_depot *d = &sp->depot;

	*blocks = *pages = 0;
	for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++) {
		*blocks += (uint64_t)d->nfull[k] * VFD_MAG_SIZE;
		*pages += ((uint64_t)d->nfull[k] * VFD_MAG_SIZE) << k;
	}
	*mem = (size_t)d->nmags * sizeof(struct vfd_mag);
}

void vfd_iova_cache_fini(struct vfdma_iova_space *sp)
{
	struct vfd_depot *d = &sp->depot;

	for (unsigned i = 0; i < VFD_IOVA_NSLOT; i++) {
		struct vfd_islot *sl = atomic_load_explicit(&sp->slots[i], memory_order_relaxed);
		if (sl)
			slot_free(sl);
		atomic_store_explicit(&sp->slots[i], NULL, memory_order_relaxed);
	}
	for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++)
		while (d->nfull[k])
			vfd_free(d->full[k][--d->nfull[k]]);
	while (d->nspare)
		vfd_free(d->spare[--d->nspare]);
	d->nmags = 0;
}
