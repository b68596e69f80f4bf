/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inside an IOVA space: the tree (iova_tree.h) under one mutex, the live maps
 * of small allocations (iova_live.h), and the per-thread magazine caches with
 * their shared depot (iova_cache.c).  Internal to lib/dma.
 *
 * Lock order: a slot's lock, then the space lock.  The space lock protects the
 * tree, the counters and the depot; a slot's lock protects its magazines.
 */
#ifndef VFDMA_DMA_IOVA_SPACE_H
#define VFDMA_DMA_IOVA_SPACE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dma/iova_live.h"
#include "dma/iova_tree.h"
#include "vfdma/iova.h"

#define VFD_IOVA_NCLASS 6 /* orders 0..5: 1..32 granules */
#define VFD_IOVA_NSLOT 64 /* per-thread cache slots per space */
#define VFD_MAG_SIZE 127
#define VFD_DEPOT_MAX 32 /* full magazines per class in the depot */
#define VFD_SPARE_MAX 16 /* empty magazines kept by the depot */

struct vfd_mag {
	uint64_t n;
	uint64_t pfn[VFD_MAG_SIZE];
};

struct vfd_islot {
	atomic_int lock;
	struct vfd_mag *cur[VFD_IOVA_NCLASS];
	struct vfd_mag *prev[VFD_IOVA_NCLASS];
} __attribute__((aligned(64)));

struct vfd_depot {
	struct vfd_mag *full[VFD_IOVA_NCLASS][VFD_DEPOT_MAX];
	uint32_t nfull[VFD_IOVA_NCLASS];
	struct vfd_mag *spare[VFD_SPARE_MAX];
	uint32_t nspare;
	uint32_t nmags; /* magazines owned by the depot (full and spare) */
};

struct vfd_prange {
	uint64_t lo, hi; /* usable pages [lo, hi) */
};

struct vfdma_iova_space {
	/* What the fast paths read, in the first cache line. */
	uint64_t id; /* unique per process, for the per-thread shortcuts */
	uint64_t granule;
	/* sizes up to this many bytes are cached (0 without caches) */
	uint64_t cached_bytes;
	uint64_t limit_all; /* a limit at or above it bounds nothing */
	unsigned shift;
	bool nocache;
	bool compact; /* live map: a bit per block (default) or a byte (BYTEMAP) */
	pthread_mutex_t lock;
	struct vfd_itree tree;
	uint64_t end_pfn; /* one past the highest usable page: the anchor */
	uint64_t usable_pages;
	struct vfd_prange *ranges;
	size_t nranges;
	/* counters, under the lock */
	uint64_t nr_busy;     /* ALLOC and FAST nodes (cached ones included) */
	uint64_t busy_pages;
	uint64_t nr_resv;     /* vfdma_iova_reserve() ranges */
	uint64_t resv_pages;
	struct vfd_livemap live[VFD_IOVA_NCLASS];
	struct vfd_depot depot;
	_Atomic(struct vfd_islot *) slots[VFD_IOVA_NSLOT];
};

static inline void vfd_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline void vfd_slot_lock(struct vfd_islot *sl)
{
	while (atomic_exchange_explicit(&sl->lock, 1, memory_order_acquire)) {
		while (atomic_load_explicit(&sl->lock, memory_order_relaxed))
			vfd_cpu_relax();
	}
}

static inline void vfd_slot_unlock(struct vfd_islot *sl)
{
	atomic_store_explicit(&sl->lock, 0, memory_order_release);
}

/* Give a cached (FAST, not live) block back to the tree; space lock held. */
void vfd_iova_release_locked(struct vfdma_iova_space *sp, uint64_t pfn, unsigned k);

/*
 * Per-thread shortcuts for the space the thread used last: its cache slot and,
 * per size class, the live-map leaf it touched last.  Tagged with the space's
 * unique id, so that nothing of a destroyed space is ever used.
 */
struct vfd_iova_tls {
	uint64_t id;
	struct vfd_islot *slot;
	uint64_t tag[VFD_IOVA_NCLASS];
	_Atomic uint8_t *leaf[VFD_IOVA_NCLASS];
};

extern __thread struct vfd_iova_tls vfd_iova_tls __attribute__((tls_model("initial-exec")));

/*
 * This thread's shortcuts.  The address goes through an empty asm: with
 * -fsanitize=null, gcc 12 folds away the test of a thread-local address
 * but keeps the branch on it, which then reads whatever flags an earlier
 * compare left (a false "member access within null pointer" when the
 * size class was 5).  Without a sanitizer the asm costs nothing.
 */
static inline struct vfd_iova_tls *vfd_iova_tls_get(void)
{
	struct vfd_iova_tls *t = &vfd_iova_tls;

	__asm__("" : "+r"(t));
	return t;
}

static inline struct vfd_iova_tls *vfd_iova_tls_for(const struct vfdma_iova_space *sp)
{
	struct vfd_iova_tls *t = vfd_iova_tls_get();

	if (__builtin_expect(t->id != sp->id, 0)) {
		t->id = sp->id;
		t->slot = NULL;
		for (unsigned k = 0; k < VFD_IOVA_NCLASS; k++)
			t->tag[k] = UINT64_MAX;
	}
	return t;
}

/* The byte of block idx of class k in the live map, or NULL. */
static inline _Atomic uint8_t *vfd_iova_live_byte(struct vfdma_iova_space *sp, unsigned k,
						  uint64_t idx)
{
	struct vfd_iova_tls *t = vfd_iova_tls_for(sp);
	uint64_t tag = idx >> VFD_LIVE_LEAF_BITS, off = vfd_livemap_pos(idx);

	if (__builtin_expect(t->tag[k] == tag, 1))
		return t->leaf[k] + off;
	_Atomic uint8_t *b = vfd_livemap_find(&sp->live[k], idx);
	if (b) {
		t->tag[k] = tag;
		t->leaf[k] = b - off;
	}
	return b;
}

/* Caches (iova_cache.c). */
struct vfd_islot *vfd_iova_slot_slow(struct vfdma_iova_space *sp);
bool vfd_iova_cache_get_slow(struct vfdma_iova_space *sp, struct vfd_islot *sl, unsigned k,
			     uint64_t last, uint64_t *pfn);
void vfd_iova_cache_put_slow(struct vfdma_iova_space *sp, struct vfd_islot *sl, unsigned k,
			     uint64_t pfn);

/* This thread's cache slot in sp, created on first use; NULL if out of memory. */
static inline struct vfd_islot *vfd_iova_slot(struct vfdma_iova_space *sp)
{
	struct vfd_iova_tls *t = vfd_iova_tls_for(sp);

	if (__builtin_expect(t->slot != NULL, 1))
		return t->slot;
	return t->slot = vfd_iova_slot_slow(sp);
}

/* A cached block of 2^k pages ending at or below page last. */
static inline bool vfd_iova_cache_get(struct vfdma_iova_space *sp, unsigned k, uint64_t last,
				      uint64_t *pfn)
{
	struct vfd_islot *sl = vfd_iova_slot(sp);

	if (__builtin_expect(sl == NULL, 0))
		return false;
	vfd_slot_lock(sl);
	struct vfd_mag *m = sl->cur[k];
	if (__builtin_expect(m->n != 0, 1)) {
		uint64_t p = m->pfn[m->n - 1];
		if (__builtin_expect(p + ((UINT64_C(1) << k) - 1) <= last, 1)) {
			m->n--;
			vfd_slot_unlock(sl);
			*pfn = p;
			return true;
		}
	}
	return vfd_iova_cache_get_slow(sp, sl, k, last, pfn); /* unlocks */
}

/* Cache a freed block of 2^k pages (its live byte already cleared). */
static inline void vfd_iova_cache_put(struct vfdma_iova_space *sp, unsigned k, uint64_t pfn)
{
	struct vfd_islot *sl = vfd_iova_slot(sp);

	if (__builtin_expect(sl != NULL, 1)) {
		vfd_slot_lock(sl);
		struct vfd_mag *m = sl->cur[k];
		if (__builtin_expect(m->n < VFD_MAG_SIZE, 1)) {
			m->pfn[m->n++] = pfn;
			vfd_slot_unlock(sl);
			return;
		}
	}
	vfd_iova_cache_put_slow(sp, sl, k, pfn); /* unlocks */
}

/* Return every cached block to the tree; returns how many there were. */
uint64_t vfd_iova_cache_flush(struct vfdma_iova_space *sp);
/* Cached blocks and pages; takes the slot locks, not the space lock. */
void vfd_iova_cache_count_slots(struct vfdma_iova_space *sp, uint64_t *blocks,
				uint64_t *pages, size_t *mem);
/* Same for the depot; space lock held. */
void vfd_iova_cache_count_depot(struct vfdma_iova_space *sp, uint64_t *blocks,
				uint64_t *pages, size_t *mem);
void vfd_iova_cache_fini(struct vfdma_iova_space *sp);

/* For tests: check the tree's invariants under the lock (0 or negative). */
int vfd_iova_check(struct vfdma_iova_space *sp, const char **what);
/* For tests: the live-map byte of a small block (and its bit), or NULL. */
const void *vfd_iova_live_addr(struct vfdma_iova_space *sp, uint64_t iova, uint64_t size,
			       unsigned *bit);
/* For tests: visit every node in order (kind: enum vfd_ikind), under the lock. */
int vfd_iova_walk(struct vfdma_iova_space *sp,
		  int (*fn)(void *ctx, uint64_t start, uint64_t n, int kind), void *ctx);

#endif
