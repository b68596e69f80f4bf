/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Walking the IOVA tree in order, and checking every invariant of it (used by
 * the unit tests after random operations).
 */
#include <errno.h>

#include "dma/iova_tree_impl.h"

/* In-order iteration over nodes with an explicit stack. */
struct iter {
	const struct vfd_itree *t;
	uint32_t stack[MAX_DEPTH];
	unsigned sp;
	uint32_t h;
};

/* The next node in order, 0 at the end, UINT32_MAX if the tree is too deep. */
static uint32_t next_node(struct iter *it)
{
	while (it->h) {
		if (it->sp == MAX_DEPTH)
			return UINT32_MAX;
		it->stack[it->sp++] = it->h;
		it->h = N(it->t, it->h)->left;
	}
	if (!it->sp)
		return 0;
	uint32_t h = it->stack[--it->sp];
	it->h = N(it->t, h)->right;
	return h;
}

int vfd_itree_walk(const struct vfd_itree *t,
		   int (*fn)(void *ctx, uint64_t start, uint64_t n, enum vfd_ikind kind),
		   void *ctx)
{
	struct iter it = { .t = t, .h = t->root };
	uint64_t ps = 0;
	enum vfd_ikind pk = VFD_IK_UNUSED;
	bool have = false;
	uint32_t h;
	int rc;

	/* an entry's size is known once the next entry is seen */
	while ((h = next_node(&it)) != 0) {
		if (h == UINT32_MAX)
			return -EOVERFLOW;
		const struct vfd_irun *r = R(t, h);
		for (unsigned j = 0; j < N(t, h)->cnt; j++) {
			if (have) {
				rc = fn(ctx, ps, e_start(r, j) - e_gap(r, j) - ps, pk);
				if (rc)
					return rc;
			}
			ps = e_start(r, j);
			pk = e_kind(r, j);
			have = true;
		}
	}
	return have ? fn(ctx, ps, 0, pk) : 0;
}

struct check {
	const struct vfd_itree *t;
	const char *what;
	uint32_t nodes;
	uint64_t entries;
};

static int fail(struct check *c, const char *what)
{
	c->what = what;
	return -1;
}

/* One node's own rules: its run, key and aggregates. */
static int check_node(struct check *c, uint32_t h)
{
	const struct vfd_itree *t = c->t;
	const struct vfd_inode *n = N(t, h);
	const struct vfd_irun *r = R(t, h);

	if (n->cnt == 0 || n->cnt > VFD_IRUN)
		return fail(c, "node with no entries or too many");
	if (n->key != e_start(r, 0) || (r->w0[0] & ~VAL_MASK & ~(UINT64_C(3) << KIND_SHIFT)))
		return fail(c, "node key is not its first start");
	for (unsigned j = 0; j < n->cnt; j++) {
		uint64_t s = e_start(r, j), g = e_gap(r, j);
		if (e_kind(r, j) == VFD_IK_UNUSED)
			return fail(c, "entry of kind unused");
		if (j && s <= e_start(r, j - 1))
			return fail(c, "run out of order");
		if (g > s)
			return fail(c, "gap reaches below zero");
		if (e_ord(r, j) != vfd_block_ordp1(s - g, s))
			return fail(c, "stale gap order");
	}
	if (n->own != run_sum(r, n->cnt))
		return fail(c, "stale aggregate of a node's own entries");
	if (n->lsum != agg_of(t, n->left) || n->rsum != agg_of(t, n->right))
		return fail(c, "stale subtree aggregate");
	return 0;
}

/* Red-black rules, key order and aggregates; returns the black height, or -1. */
static int check_rec(struct check *c, uint32_t h, unsigned depth)
{
	const struct vfd_itree *t = c->t;

	if (!h)
		return 0;
	if (depth > MAX_DEPTH)
		return fail(c, "tree too deep");
	const struct vfd_inode *n = N(t, h);
	if (red(t, h) && (red(t, n->left) || red(t, n->right)))
		return fail(c, "two reds in a row");
	if ((n->left && N(t, n->left)->key >= n->key) ||
	    (n->right && N(t, n->right)->key <= n->key))
		return fail(c, "keys out of order");
	if (check_node(c, h))
		return -1;
	int bl = check_rec(c, n->left, depth + 1);
	if (bl < 0)
		return -1;
	int br = check_rec(c, n->right, depth + 1);
	if (br < 0)
		return -1;
	if (bl != br)
		return fail(c, "unequal black height");
	c->nodes++;
	c->entries += n->cnt;
	return bl + (red(t, h) ? 0 : 1);
}

/* Free-list nodes are blank and unreachable; every index is accounted for. */
static int check_free(struct check *c)
{
	const struct vfd_itree *t = c->t;
	uint32_t nfree = 0;

	for (uint32_t i = t->free_head; i; i = N(t, i)->left) {
		const struct vfd_inode *n = N(t, i);
		if (i >= t->next_fresh || n->cnt || n->red || n->right || n->key || n->own ||
		    n->lsum || n->rsum || ++nfree > t->next_fresh)
			return fail(c, "bad free list");
	}
	if (t->next_fresh > t->cap || (uint64_t)nfree + t->nodes_live + 1 != t->next_fresh)
		return fail(c, "node count differs");
	return 0;
}

int vfd_itree_check(const struct vfd_itree *t, const char **what)
{
	struct check c = { .t = t, .what = "ok" };
	struct iter it = { .t = t, .h = t->root };
	const struct vfd_inode *z = N(t, 0);
	uint64_t prev = 0;
	bool first = true;
	uint32_t h, lastn = 0;

	*what = "ok";
	if (z->key || z->own || z->lsum || z->rsum || z->left || z->right || z->cnt || z->red) {
		*what = "sentinel written";
		return -1;
	}
	if (red(t, t->root)) {
		*what = "red root";
		return -2;
	}
	if (check_rec(&c, t->root, 0) < 0) {
		*what = c.what;
		return -3;
	}
	if (c.nodes != t->nodes_live || c.entries != t->entries || check_free(&c)) {
		*what = c.nodes != t->nodes_live || c.entries != t->entries ? "count differs"
									     : c.what;
		return -4;
	}
	/* In order: the first gap starts at 0; every later gap starts strictly
	 * after the previous entry's start (only the last entry may be empty). */
	while ((h = next_node(&it)) != 0) {
		if (h == UINT32_MAX) {
			*what = "tree too deep";
			return -5;
		}
		const struct vfd_irun *r = R(t, h);
		for (unsigned j = 0; j < N(t, h)->cnt; j++) {
			uint64_t lo = e_start(r, j) - e_gap(r, j);
			if (first ? lo != 0 : lo <= prev) {
				*what = first ? "first gap not at 0" : "block of size zero or overlapping";
				return -5;
			}
			prev = e_start(r, j);
			first = false;
		}
		lastn = h;
	}
	if (lastn != t->last) {
		*what = "last node misplaced";
		return -6;
	}
	return 0;
}
