/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inside a DMA pool (include/vfdma/dma.h).  Internal to lib/dma; C++ tests
 * may include it (no <stdatomic.h>: __atomic builtins).
 *
 * A pool holds one heap per NUMA node it was asked for (plus one for
 * unbound memory).  A heap owns arenas (struct vfd_parena), each an arena
 * mapped into the domain once, carved in 4 KiB pages:
 *  - slabs: 64 KiB-aligned runs (64 KiB, or 4 objects for classes above
 *    16 KiB) of one power-of-two size class, 64 B .. 1 MiB;
 *  - runs: whole pages for buffers above 1 MiB.
 * Free small objects sit in per-thread magazines (a loaded and a previous
 * one per class, as in the IOVA caches), then in a per-class depot of full
 * magazines, then back in their slab.  An empty slab gives its pages back
 * to its arena; an arena with no pages in use is idle and may be returned.
 *
 * A buffer's state is one bit: its slab's live bit (set while the user has
 * it), flipped with one atomic operation on alloc and free, which is what
 * finds double frees and frees of addresses never handed out.  A run's
 * state is its length in the arena's run table.
 *
 * Lock order: a slot's spin lock, then a class lock, then the pool lock.
 * grow_lock is taken with none of them held (arena creation makes system
 * calls) and the pool lock nests inside it.
 */
#ifndef VFDMA_DMA_POOL_IMPL_H
#define VFDMA_DMA_POOL_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vfdma/arena.h"
#include "vfdma/dma.h"

#define VFD_POOL_MIN_SHIFT   6	/* 64 B */
#define VFD_POOL_MAX_SHIFT   20 /* 1 MiB: larger buffers are page runs */
#define VFD_POOL_NCLASS	     (VFD_POOL_MAX_SHIFT - VFD_POOL_MIN_SHIFT + 1)
#define VFD_POOL_PAGE_SHIFT  12
#define VFD_POOL_CHUNK_SHIFT 16	  /* slabs start and end on 64 KiB */
#define VFD_POOL_MAXOBJ	     1024 /* 64 KiB / 64 B */
#define VFD_POOL_MAG	     64	  /* magazine capacity (smaller for big classes) */
#define VFD_POOL_DEPOT	     8	  /* full magazines per class in the depot */
#define VFD_POOL_NSLOT	     64	  /* thread cache slots per heap */
#define VFD_POOL_MAX_NODES   64	  /* nodes 0..63 */
#define VFD_POOL_RADIX_SHIFT 21	  /* the address lookup's granule: 2 MiB */
#define VFD_POOL_RADIX_BITS  13	  /* two levels of 2^13: 47-bit addresses */
#define VFD_POOL_MAX_ALIGN   (UINT64_C(1) << 21)

struct vfd_parena;

struct vfd_slab {
	struct vfd_slab *next, *prev; /* the class's list of slabs with free objects */
	struct vfd_parena *pa;
	char *base;
	uint32_t cls;
	uint32_t nobj;
	uint32_t navail; /* objects free in the slab itself (class lock) */
	uint32_t first_page;
	uint32_t npages;
	bool listed;
	uint64_t live[VFD_POOL_MAXOBJ / 64];  /* atomic: 1 = the user has it */
	uint64_t avail[VFD_POOL_MAXOBJ / 64]; /* class lock: 1 = free in the slab */
};

struct vfd_pmag {
	uint32_t n;
	void *obj[VFD_POOL_MAG];
};

struct vfd_pslot {
	int lock; /* spin lock, __atomic */
	struct vfd_pmag *cur[VFD_POOL_NCLASS];
	struct vfd_pmag *prev[VFD_POOL_NCLASS];
} __attribute__((aligned(64)));

struct vfd_pclass {
	pthread_mutex_t lock;
	struct vfd_slab *partial; /* slabs with navail > 0 */
	struct vfd_pmag *full[VFD_POOL_DEPOT];
	struct vfd_pmag *empty[VFD_POOL_DEPOT];
	uint32_t nfull, nempty;
	uint32_t cap; /* magazine capacity */
};

struct vfd_heap {
	struct vfdma_pool *pool;
	int node; /* VFDMA_NUMA_ANY: unbound */
	struct vfd_pclass cls[VFD_POOL_NCLASS];
	struct vfd_pslot *slots[VFD_POOL_NSLOT]; /* made on first use, __atomic */
};

struct vfd_parena {
	struct vfd_parena *next, *prev; /* the pool's arenas (pool lock) */
	struct vfd_heap *heap;
	struct vfdma_arena *arena;
	char *base;
	uint64_t size;
	uint64_t iova;
	uint64_t pgsize;
	uint64_t align; /* alignment common to base and iova (capped) */
	uint32_t npages;
	uint32_t used_pages;	 /* in slabs and runs (pool lock) */
	bool fresh;		 /* not yet used since it was added */
	bool premapped;		 /* from a source that mapped it: never (un)mapped here */
	uint64_t *freemap;	 /* a bit per page, 1 = free (pool lock) */
	uint32_t *run;		 /* per page: length of the run starting there (pool lock) */
	struct vfd_slab **chunk; /* per 64 KiB: its slab or NULL (__atomic; set under pool lock) */
};

struct vfdma_pool {
	struct vfdma_domain *dom;
	pthread_mutex_t lock;
	pthread_mutex_t grow_lock;
	struct vfd_parena *arenas;
	struct vfd_heap *heaps[VFD_POOL_MAX_NODES + 1];	      /* [node + 1], __atomic */
	struct vfd_parena **radix[1u << VFD_POOL_RADIX_BITS]; /* __atomic */
	int node;
	unsigned int flags;
	uint64_t arena_size;
	uint64_t max_bytes;
	uint64_t idle_keep;
	struct vfdma_arena_opts aopts;
	struct vfdma_pool_source src; /* get == NULL: own arenas */
	/* pool lock */
	uint64_t bytes;	     /* of arenas held */
	uint64_t idle_bytes; /* of arenas that became idle and were kept */
	uint64_t gen;	     /* bumped when an arena is added */
	uint64_t grows, releases;
};

/* Size class of a buffer (size and align already checked), or -1 for a run. */
static inline int vfd_pool_class(uint64_t size, uint64_t align)
{
	uint64_t need = size > align ? size : align;
	if (need > (UINT64_C(1) << VFD_POOL_MAX_SHIFT))
		return -1;
	if (need <= (UINT64_C(1) << VFD_POOL_MIN_SHIFT))
		return 0;
	return 64 - __builtin_clzll(need - 1) - VFD_POOL_MIN_SHIFT;
}

/* The arena that holds @v, or NULL: two loads, no lock. */
static inline struct vfd_parena *vfd_pool_lookup(struct vfdma_pool *p, uintptr_t v)
{
	uint64_t key = v >> VFD_POOL_RADIX_SHIFT;
	const unsigned mask = (1u << VFD_POOL_RADIX_BITS) - 1;

	if (key >> (2 * VFD_POOL_RADIX_BITS))
		return NULL;
	struct vfd_parena **leaf =
	    __atomic_load_n(&p->radix[key >> VFD_POOL_RADIX_BITS], __ATOMIC_ACQUIRE);
	if (!leaf)
		return NULL;
	struct vfd_parena *pa = __atomic_load_n(&leaf[key & mask], __ATOMIC_ACQUIRE);
	if (!pa || v - (uintptr_t)pa->base >= pa->size)
		return NULL;
	return pa;
}

/* pool.c: pages of an arena (pool lock held). */
int64_t vfd_pool_pages_get(struct vfd_parena *pa, uint32_t npages, uint32_t align_pages);
void vfd_pool_pages_put(struct vfd_parena *pa, uint32_t first, uint32_t npages,
			struct vfd_parena **reap);
/* Add an arena to heap @h with room for @need bytes, unless one was added since @gen. */
int vfd_pool_grow(struct vfd_heap *h, uint64_t need, uint64_t gen);
/* Unmap and free arenas taken off the pool (no lock held). */
int vfd_pool_reap(struct vfdma_pool *p, struct vfd_parena *reap);

/* pool_cache.c: size classes. */
void vfd_pool_heap_init(struct vfd_heap *h);
void *vfd_pool_small_alloc(struct vfd_heap *h, unsigned k, int *err);
int vfd_pool_small_free(struct vfd_parena *pa, struct vfd_slab *s, void *v);
/* Empty every cache of @h into the slabs; returns arenas to reap. */
void vfd_pool_heap_flush(struct vfd_heap *h, struct vfd_parena **reap);
/* Bytes in the caches of @h. */
uint64_t vfd_pool_heap_cached(struct vfd_heap *h);
void vfd_pool_heap_free(struct vfd_heap *h);

#endif
