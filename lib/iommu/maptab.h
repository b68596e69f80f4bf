/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The mapping table of a domain (internal to lib/iommu; maptab.c): the
 * record slab, the translation tables as the index, and the exception
 * trees.  Every function but the accessors is called with dom->lock held.
 */
#ifndef VFDMA_IOMMU_MAPTAB_H
#define VFDMA_IOMMU_MAPTAB_H

#include "iommu/domain.h"

/* Record fields: written atomically (lock-free readers load them). */
static inline void vfd_map_set_word(struct vfd_map *m, uint64_t w)
{
	__atomic_store_n(&m->word, w, __ATOMIC_RELEASE);
}

static inline void vfd_map_set_next(struct vfd_map *m, struct vfd_map *next)
{
	__atomic_store_n(&m->next, next, __ATOMIC_RELEASE);
}

/* A free record of the slab (its generation odd), or NULL: no memory. */
struct vfd_map *vfd_maptab_alloc(struct vfdma_domain *dom);
/* Give a chain of records (linked by ->next, out of the tables) back. */
void vfd_maptab_release(struct vfdma_domain *dom, struct vfd_map *list);

/*
 * Make the tables and exception nodes ready to enter the @n mappings
 * described by @tmp (plain copies: iova, len, va, flags); sets their
 * UNTABLED bit.  0 or -ENOMEM (nothing a reader sees changes either way).
 * vfd_maptab_done() frees what an insert did not use.
 */
int vfd_maptab_prepare(struct vfdma_domain *dom, struct vfd_map *tmp, size_t n);
/* Publish @tmp in the slab record @m and enter it (prepared). */
void vfd_maptab_insert(struct vfdma_domain *dom, struct vfd_map *m, const struct vfd_map *tmp);
void vfd_maptab_done(struct vfdma_domain *dom);
/*
 * Take @m out of the tables and trees; its generation turns odd, so
 * m->next may be used from then on.
 */
void vfd_maptab_remove(struct vfdma_domain *dom, struct vfd_map *m);

/* The mapping containing @iova, or NULL. */
struct vfd_map *vfd_maptab_find_iova(struct vfdma_domain *dom, uint64_t iova);
/* The mapping with the lowest IOVA that ends after @key, or NULL (walks in IOVA order). */
struct vfd_map *vfd_maptab_from(struct vfdma_domain *dom, uint64_t key);
/* The next mapping by IOVA after @m, or NULL. */
struct vfd_map *vfd_maptab_next(struct vfdma_domain *dom, const struct vfd_map *m);
/*
 * vaddr -> IOVA with everything (tables and trees): the lowest-IOVA
 * mapping of @va that is not hidden; 0 or -ENOENT.
 */
int vfd_maptab_va_lookup(struct vfdma_domain *dom, uintptr_t va, uint64_t *iova, uint64_t *len);
/* The index agrees with the records: NULL, or what is wrong (op_lock exclusive). */
const char *vfd_maptab_check(struct vfdma_domain *dom, const struct vfd_map **bad);

#endif
