/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The IOVA tree: a red-black tree of busy blocks (allocations and
 * reservations), augmented so that every node knows the largest free gap,
 * and the largest naturally aligned power-of-two free block, anywhere in its
 * subtree.  Internal to lib/dma; not thread-safe (the space's lock protects
 * it).
 *
 * Everything is in granules ("pages").  Each block ("entry") stores the free
 * gap that precedes it, not its own size: an entry's size is derived from its
 * successor (succ.start - succ.gap - start).  The last entry is a zero-size
 * anchor just past the highest usable page, so the gaps cover the whole
 * space.  Holes between usable ranges are reserved entries.
 *
 * Cache-conscious layout ("fat" nodes).  A tree node holds a sorted run of
 * 1..VFD_IRUN consecutive entries, so the tree has n / 8 to n / 13 nodes
 * and its bottom three or four levels are one run.  A full node first
 * passes an entry to a neighbouring ancestor with room, else splits; a node
 * that runs low merges into its successor.  What a descent needs is in the
 * node's 64-byte header, one cache line: the key (first entry's start), the
 * child links, the aggregate of the node's own entries and those of each
 * child's subtree (stored in the parent, so that choosing a direction reads
 * only the current node), and the grandchildren's indices as a prefetch
 * hint, so that a descent's cache misses overlap two levels deep.  The
 * entries sit in a separate array (256 bytes per node) and are read only in
 * the node where a descent ends (near the bottom of the tree a descent
 * prefetches runs along with headers, so that the last run is not a miss in
 * series of its own); the headers stay dense (about 7.7 MB at a
 * million fragmented blocks, where one-entry nodes took 32-64 MB).
 *
 * Nodes are addressed by 32-bit indices into two parallel arrays that grow
 * by an eighth at a time (realloc: indices stay valid, pointers do not
 * survive a vfd_itree_prepare()); index 0 is a shared all-zero sentinel
 * ("nil").  There is no parent link: updates record the path from the root.
 */
#ifndef VFDMA_DMA_IOVA_TREE_H
#define VFDMA_DMA_IOVA_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Entry kinds. */
enum vfd_ikind {
	VFD_IK_UNUSED = 0, /* never in a live entry */
	VFD_IK_ALLOC = 1,  /* allocation freed through the tree (fixed or large) */
	VFD_IK_FAST = 2,   /* small allocation, liveness tracked by the live map */
	VFD_IK_RESV = 3,   /* reservation, hole or anchor */
};

#define VFD_IRUN 16 /* entries per node */
#define VFD_ITREE_MAX_DEPTH 128

/*
 * An aggregate ("sum") is one word: max gap (56 bits) | max order+1 of a
 * naturally aligned power-of-two free block (bits 56-62).
 */
struct vfd_inode {
	uint64_t key;        /* start of the first entry */
	uint64_t own;        /* aggregate of this node's entries */
	uint64_t lsum, rsum; /* aggregate of the left / right subtree, 0 if none */
	uint32_t left, right;
	uint8_t cnt; /* entries in the run; 0 only on the free list */
	uint8_t red;
	uint8_t pad[6];
	/* The children's children (left's two, right's two), as last seen by a
	 * descent: only a prefetch hint, two levels ahead; may be stale. */
	uint32_t gc[4];
} __attribute__((aligned(64)));

struct vfd_irun {
	uint64_t w0[VFD_IRUN]; /* start (56 bits) | kind (bits 57-58) */
	uint64_t w1[VFD_IRUN]; /* gap before the entry (56 bits) | order+1 of that gap (bits 56-62) */
};

struct vfd_itree {
	struct vfd_inode *nodes; /* 64-byte aligned, inside nodes_raw */
	struct vfd_irun *runs;   /* same, inside runs_raw */
	void *nodes_raw, *runs_raw;
	uint32_t cap, prev_cap;
	uint32_t next_fresh; /* first never-used index */
	uint32_t free_head;  /* recycled indices, linked through .left */
	uint32_t root;
	uint32_t last;       /* the highest node (its last entry is the anchor), 0 while empty */
	uint32_t nodes_live; /* nodes in the tree */
	/* Depth from which a descent also prefetches the runs of the nodes it
	 * prefetches: about where descents end (see descend_step()). */
	uint32_t run_pf_depth;
	uint64_t entries;    /* entries in the tree, reserved ones and the anchor included */
	/* How often the rarer update paths ran (for tests and profiling). */
	struct {
		uint64_t passes;        /* a full node passed an entry to a neighbour */
		uint64_t splits;        /* a full node split, the new node after it */
		uint64_t splits_before; /* the same, the new node before it */
		uint64_t merges;        /* a node merged into its successor */
	} stats;
	/*
	 * Where the last search put a block, for the insertion that follows it:
	 * the path from the root to the node holding the entry that owns the
	 * gap (index j).  Valid until the tree changes; depth 0: none.
	 */
	struct {
		uint64_t pfn;
		uint32_t path[VFD_ITREE_MAX_DEPTH];
		int depth;
		unsigned j;
	} hint;
};

/* A search request: s pages aligned to a pages, ending at or below page last. */
struct vfd_ifit {
	uint64_t s, a;
	uint64_t last;
};

int vfd_itree_init(struct vfd_itree *t);
void vfd_itree_fini(struct vfd_itree *t);
size_t vfd_itree_mem(const struct vfd_itree *t);

/*
 * Make sure the next insertion cannot fail.  Returns 0 or -ENOMEM; *grew tells
 * whether the arrays grew, which vfd_itree_unprepare() undoes.
 */
int vfd_itree_prepare(struct vfd_itree *t, bool *grew);
void vfd_itree_unprepare(struct vfd_itree *t, bool grew);

/*
 * Find where the placement rule (see vfdma/iova.h) puts a block; -ENOSPC.
 * Leaves a hint that makes inserting the block there cheaper.
 */
int vfd_itree_find_fit(struct vfd_itree *t, const struct vfd_ifit *q, uint64_t *pfn);

/*
 * Is [pfn, pfn + n) entirely free?  If not, *busy_kind is the kind of an
 * entry overlapping it (the lowest one).
 */
bool vfd_itree_range_free(const struct vfd_itree *t, uint64_t pfn, uint64_t n,
			  enum vfd_ikind *busy_kind);

/* Insert the busy block [pfn, pfn + n), which must be free; prepare first. */
void vfd_itree_insert(struct vfd_itree *t, uint64_t pfn, uint64_t n, enum vfd_ikind kind);

/* The entry starting at pfn: true with its kind and size, or false. */
bool vfd_itree_lookup(const struct vfd_itree *t, uint64_t pfn, enum vfd_ikind *kind,
		      uint64_t *n);

/* Remove the entry starting at pfn, which must exist (not the anchor). */
void vfd_itree_remove(struct vfd_itree *t, uint64_t pfn);

/* Largest gap in the tree, in pages. */
uint64_t vfd_itree_max_gap(const struct vfd_itree *t);

/* Visit entries in order: fn(start, size, kind); stops when fn returns non-zero. */
int vfd_itree_walk(const struct vfd_itree *t,
		   int (*fn)(void *ctx, uint64_t start, uint64_t n, enum vfd_ikind kind),
		   void *ctx);

/*
 * Check every invariant: red-black rules (no two reds in a row, equal black
 * height), runs sorted and non-empty, keys, order across nodes, stored gaps
 * equal the real gaps, every aggregate (own, and each child's stored in its
 * parent), counts, the free list.  Returns 0 or a negative number naming the
 * first broken rule; *what gets a short description.
 */
int vfd_itree_check(const struct vfd_itree *t, const char **what);

/* Order+1 of the largest naturally aligned power-of-two block in [lo, hi). */
unsigned vfd_block_ordp1(uint64_t lo, uint64_t hi);

#endif
