/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The IOVA tree: a red-black tree of busy blocks (allocations and
 * reservations), keyed by first page frame, augmented so that every node
 * knows the largest free gap, and the largest naturally aligned power-of-two
 * free block, anywhere in its subtree.  Internal to lib/dma; not thread-safe
 * (the space's lock protects it).
 *
 * Everything is in granules ("pages").  Each node stores the free gap that
 * precedes it, not its own size: a node's size is derived from its successor
 * (succ.start - succ.gap - start).  The last node is a zero-size anchor just
 * past the highest usable page, so the gaps of all nodes cover the whole
 * space.  Holes between usable ranges are reserved nodes.
 *
 * Nodes are 32 bytes, addressed by 32-bit indices into one array that grows
 * by an eighth at a time (realloc: indices stay valid, pointers do not
 * survive a vfd_itree_prepare()); index 0 is a shared all-zero sentinel
 * ("nil").  There is no parent link: updates record the path from the root.
 */
#ifndef VFDMA_DMA_IOVA_TREE_H
#define VFDMA_DMA_IOVA_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Node kinds. */
enum vfd_ikind {
	VFD_IK_UNUSED = 0, /* on the free list */
	VFD_IK_ALLOC = 1,  /* allocation freed through the tree (fixed or large) */
	VFD_IK_FAST = 2,   /* small allocation, liveness tracked by the live map */
	VFD_IK_RESV = 3,   /* reservation, hole or anchor */
};

struct vfd_inode {
	uint64_t w0; /* start (56 bits) | red (bit 56) | kind (bits 57-58) */
	uint64_t w1; /* gap before the node (56 bits) | order+1 of that gap (bits 56-62) */
	uint64_t w2; /* max gap in subtree (56 bits) | max order+1 in subtree (bits 56-62) */
	uint32_t left, right;
};

#define VFD_ITREE_INITIAL_NODES 4096u

struct vfd_itree {
	struct vfd_inode *nodes; /* grown by realloc; indices stay valid */
	uint32_t cap, prev_cap;
	uint32_t next_fresh; /* first never-used index */
	uint32_t free_head;  /* recycled indices, linked through .left */
	uint32_t root;
	uint32_t last;  /* the highest node (the anchor), 0 while empty */
	uint32_t nodes_live; /* live nodes, including reserved ones and the anchor */
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
 * whether the array grew, which vfd_itree_unprepare() undoes.
 */
int vfd_itree_prepare(struct vfd_itree *t, bool *grew);
void vfd_itree_unprepare(struct vfd_itree *t, bool grew);

/* Find where the placement rule (see vfdma/iova.h) puts a block; -ENOSPC. */
int vfd_itree_find_fit(const struct vfd_itree *t, const struct vfd_ifit *q, uint64_t *pfn);

/*
 * Is [pfn, pfn + n) entirely free?  If not, *busy_kind is the kind of a node
 * overlapping it (the lowest one).
 */
bool vfd_itree_range_free(const struct vfd_itree *t, uint64_t pfn, uint64_t n,
			  enum vfd_ikind *busy_kind);

/* Insert the busy block [pfn, pfn + n), which must be free; prepare first. */
void vfd_itree_insert(struct vfd_itree *t, uint64_t pfn, uint64_t n, enum vfd_ikind kind);

/* The node starting at pfn: true with its kind and size, or false. */
bool vfd_itree_lookup(const struct vfd_itree *t, uint64_t pfn, enum vfd_ikind *kind,
		      uint64_t *n);

/* Remove the node starting at pfn, which must exist (not the anchor). */
void vfd_itree_remove(struct vfd_itree *t, uint64_t pfn);

/* Largest gap in the tree, in pages. */
uint64_t vfd_itree_max_gap(const struct vfd_itree *t);

/* Visit nodes in order: fn(start, size, kind); stops when fn returns non-zero. */
int vfd_itree_walk(const struct vfd_itree *t,
		   int (*fn)(void *ctx, uint64_t start, uint64_t n, enum vfd_ikind kind),
		   void *ctx);

/*
 * Check every invariant: order, red-black rules (no red right link, no two
 * reds in a row, equal black height), stored gaps equal the real gaps, and
 * augmented values.  Returns 0 or a negative number naming the first broken
 * rule; *what gets a short description.
 */
int vfd_itree_check(const struct vfd_itree *t, const char **what);

/* Order+1 of the largest naturally aligned power-of-two block in [lo, hi). */
unsigned vfd_block_ordp1(uint64_t lo, uint64_t hi);

#endif
