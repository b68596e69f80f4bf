/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Node and entry accessors, and the descent by key, shared by iova_tree.c
 * (updates), iova_tree_find.c (queries and searches) and iova_tree_check.c
 * (walking and invariant checks).  Private to the tree.
 */
#ifndef VFDMA_DMA_IOVA_TREE_IMPL_H
#define VFDMA_DMA_IOVA_TREE_IMPL_H

#include "dma/iova_tree.h"

#define VAL_MASK ((UINT64_C(1) << 56) - 1)
#define KIND_SHIFT 57
#define ORD_SHIFT 56
#define MAX_NODES (UINT32_C(1) << 31)
#define MAX_DEPTH VFD_ITREE_MAX_DEPTH

static inline struct vfd_inode *N(const struct vfd_itree *t, uint32_t i)
{
	return &t->nodes[i];
}

static inline struct vfd_irun *R(const struct vfd_itree *t, uint32_t i)
{
	return &t->runs[i];
}

static inline uint64_t e_start(const struct vfd_irun *r, unsigned j) { return r->w0[j] & VAL_MASK; }
static inline uint64_t e_gap(const struct vfd_irun *r, unsigned j) { return r->w1[j] & VAL_MASK; }
static inline unsigned e_ord(const struct vfd_irun *r, unsigned j)
{
	return (unsigned)(r->w1[j] >> ORD_SHIFT);
}
static inline enum vfd_ikind e_kind(const struct vfd_irun *r, unsigned j)
{
	return (enum vfd_ikind)((r->w0[j] >> KIND_SHIFT) & 3);
}

static inline uint64_t sum_gap(uint64_t s) { return s & VAL_MASK; }
static inline unsigned sum_ord(uint64_t s) { return (unsigned)(s >> ORD_SHIFT); }

/* Max of two aggregates, field by field. */
static inline uint64_t sum_max(uint64_t a, uint64_t b)
{
	uint64_t g = sum_gap(a) > sum_gap(b) ? sum_gap(a) : sum_gap(b);
	uint64_t o = (a >> ORD_SHIFT) > (b >> ORD_SHIFT) ? a >> ORD_SHIFT : b >> ORD_SHIFT;
	return g | o << ORD_SHIFT;
}

/* Aggregate of a node's whole subtree (0 for nil). */
static inline uint64_t agg_of(const struct vfd_itree *t, uint32_t i)
{
	const struct vfd_inode *n = N(t, i);
	return sum_max(n->own, sum_max(n->lsum, n->rsum));
}

/* Aggregate of the entries of a run. */
static inline uint64_t run_sum(const struct vfd_irun *r, unsigned cnt)
{
	uint64_t g = 0, o = 0;

	for (unsigned j = 0; j < cnt; j++) {
		uint64_t w = r->w1[j];
		g = (w & VAL_MASK) > g ? w & VAL_MASK : g;
		o = (w >> ORD_SHIFT) > o ? w >> ORD_SHIFT : o;
	}
	return g | o << ORD_SHIFT;
}

static inline bool red(const struct vfd_itree *t, uint32_t i)
{
	return N(t, i)->red;
}

/* ---- descents, shared by updates and queries ---- */

/* Entries of node i starting at or before pfn (runs are sorted). */
static inline unsigned count_le(const struct vfd_itree *t, uint32_t i, uint64_t pfn)
{
	const struct vfd_irun *r = R(t, i);
	unsigned c = N(t, i)->cnt, k = 0;

	for (unsigned j = 0; j < c; j++)
		k += e_start(r, j) <= pfn;
	return k;
}

/* A root-to-leaf path; with it, c, the node whose run covers pfn (the
 * floor), and s, the next node in order (the successor of c). */
struct path {
	uint32_t n[MAX_DEPTH];
	int d;  /* length */
	int ic; /* the last node with key <= pfn (where the descent turned right), or -1 */
	int is; /* the first node with key > pfn (the last left turn), or -1 */
};

/*
 * One step down from n, which is at depth d - 1 (right or left): prefetch
 * the two nodes below the child from n's grandchild hints, so that the loads
 * of a descent overlap two levels deep, and refresh the hints if they are
 * stale.  Where those two are about as deep as descents end, prefetch the
 * first line of each half of their runs too: the run of the node where a
 * descent stops is then on its way already instead of being one more miss
 * in series (in a large tree, runs are rarely in cache).  Higher up, runs
 * would be wasted traffic.
 */
static inline uint32_t descend_step(const struct vfd_itree *t, struct vfd_inode *n, bool right,
				    int d)
{
	/* selected by arithmetic, not a branch: the direction is random */
	uint32_t c = n->left ^ ((n->left ^ n->right) & -(uint32_t)right);
	uint32_t *g = &n->gc[2 * (unsigned)right];

	__builtin_prefetch(N(t, g[0]));
	__builtin_prefetch(N(t, g[1]));
	if ((uint32_t)d + 1 >= t->run_pf_depth) {
		__builtin_prefetch(R(t, g[0])->w0);
		__builtin_prefetch(R(t, g[0])->w1);
		__builtin_prefetch(R(t, g[1])->w0);
		__builtin_prefetch(R(t, g[1])->w1);
	}
	const struct vfd_inode *cn = N(t, c);
	if (__builtin_expect(c && (g[0] != cn->left || g[1] != cn->right), 0)) {
		g[0] = cn->left;
		g[1] = cn->right;
	}
	return c;
}

/* Descend by key to a leaf, recording the path, c and s. */
static inline void descend(const struct vfd_itree *t, uint64_t pfn, struct path *p)
{
	uint32_t h = t->root;

	p->d = 0;
	p->ic = p->is = -1;
	while (h) {
		struct vfd_inode *n = N(t, h);
		bool right = pfn >= n->key;
		p->n[p->d] = h;
		if (right)
			p->ic = p->d;
		else
			p->is = p->d;
		p->d++;
		h = descend_step(t, n, right, p->d);
	}
}

/* An entry: node and index; node 0 means none. */
struct ent {
	uint32_t n;
	unsigned j;
};

/* The last entry starting at or before pfn (*p) and the first after it (*y). */
static inline void locate(const struct vfd_itree *t, uint64_t pfn, struct path *path,
			  struct ent *p, struct ent *y)
{
	descend(t, pfn, path);
	uint32_t c = path->ic >= 0 ? path->n[path->ic] : 0;

	p->n = 0;
	y->n = path->is >= 0 ? path->n[path->is] : 0;
	y->j = 0;
	if (c) {
		unsigned k = count_le(t, c, pfn); /* >= 1: the key is at or below pfn */
		p->n = c;
		p->j = k - 1;
		if (k < N(t, c)->cnt) {
			y->n = c;
			y->j = k;
		}
	}
}

/*
 * The node before (or after) path[ix] in order if it is an ancestor, which
 * is when path[ix] has no child on that side: its path index, else -1.
 */
static inline int ancestor_neighbour(const struct vfd_itree *t, const uint32_t *path, int ix,
				     bool next)
{
	if (next ? N(t, path[ix])->right : N(t, path[ix])->left)
		return -1;
	for (int k = ix; k > 0; k--)
		if ((next ? N(t, path[k - 1])->left : N(t, path[k - 1])->right) == path[k])
			return k - 1;
	return -1;
}

/* Fetch all of a run that is about to be written. */
static inline void prefetch_run_for_write(const struct vfd_irun *r)
{
	for (size_t off = 0; off < sizeof(r->w0); off += 64) {
		__builtin_prefetch((const char *)r->w0 + off, 1);
		__builtin_prefetch((const char *)r->w1 + off, 1);
	}
}

/*
 * An insertion will go into node path[ix], which is full: fetch what the
 * overflow will write while the insertion starts, so that its misses
 * overlap instead of coming one after the other: the run of the ancestor
 * neighbour that will take an entry (see overflow()), else the header and
 * run of the node a split will take.
 */
static inline void prefetch_overflow(const struct vfd_itree *t, const uint32_t *path, int ix)
{
	for (int next = 0; next < 2; next++) {
		int k = ancestor_neighbour(t, path, ix, next);
		if (k >= 0 && N(t, path[k])->cnt < VFD_IRUN) {
			prefetch_run_for_write(R(t, path[k]));
			return;
		}
	}
	uint32_t m = t->free_head ? t->free_head : t->next_fresh;
	if (m < t->cap) {
		__builtin_prefetch(N(t, m), 1);
		prefetch_run_for_write(R(t, m));
	}
}

#endif
