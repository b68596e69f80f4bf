/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Registrations (memreg.c) and the mapping cache (memcache.c) of a domain:
 * the state they share.  Internal.
 */
#ifndef VFDMA_DMA_MEMREG_H
#define VFDMA_DMA_MEMREG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vfdma/mem.h"
#include "dma/xlate.h"
#include "util/rbtree.h"

#define VFD_MENT_DEAD (1u << 31)
#define VFD_MEM_DEFAULT_BUDGET (1ull << 30)

/* One cache line: hits and references do not share lines across entries. */
struct ment {
	uint64_t va, len, iova; /* atomic: read by hits */
	uint32_t refs;		/* atomic; VFD_MENT_DEAD while not in use as an entry */
	uint8_t referenced;	/* atomic: the CLOCK bit */
	uint8_t prot;		/* atomic */
	struct ment *prev, *next; /* CLOCK ring (mr->lock); next: free list */
	uint64_t hits;		  /* atomic */
};

struct vfd_memreg {
	pthread_mutex_t lock;
	struct vfdma_domain *dom;
	uint64_t page;

	struct vfd_rb_root spans;
	uint64_t nr_spans, nr_regions, reg_bytes, region_bytes;
	uint64_t nr_folded; /* regions kept as a count in their mapping record */

	struct vfd_xlate index;
	struct ment *hand; /* CLOCK ring */
	struct ment *free;
	uint64_t nr_entries, nr_alloc, cached_bytes, budget;
	uint64_t misses, evictions, retired_hits;
	uint64_t passthrough; /* atomic */
};

/* The domain's registry and cache, made on first use (NULL: ENOMEM, or none yet). */
struct vfd_memreg *vfd_memreg_get(struct vfdma_domain *dom, bool create);

/* Page-rounded [*a, *b) of a caller's range: 0, -EINVAL, -EOVERFLOW. */
int vfd_mem_round(uint64_t page, const void *vaddr, uint64_t len, uint64_t *a, uint64_t *b);

/* memcache.c, under mr->lock: the cache's counters into @st; free its entries. */
void vfd_memcache_stats(struct vfd_memreg *mr, struct vfdma_mem_stats *st);
void vfd_memcache_free(struct vfd_memreg *mr);

#endif
