/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Walking the IOVA tree in order, and checking every invariant of it (used by
 * the unit tests after random operations).
 */
#include <errno.h>

#include "dma/iova_tree_impl.h"

int vfd_itree_walk(const struct vfd_itree *t,
		   int (*fn)(void *ctx, uint64_t start, uint64_t n, enum vfd_ikind kind),
		   void *ctx)
{
	uint32_t stack[MAX_DEPTH];
	unsigned sp = 0;
	uint32_t h = t->root, prev = 0;
	int rc;

	for (;;) {
		while (h) {
			if (sp == MAX_DEPTH)
				return -EOVERFLOW;
			stack[sp++] = h;
			h = N(t, h)->left;
		}
		if (!sp)
			break;
		h = stack[--sp];
		if (prev) {
			const struct vfd_inode *pn = N(t, prev), *hn = N(t, h);
			rc = fn(ctx, start_of(pn), start_of(hn) - gap_of(hn) - start_of(pn),
				kind_of(pn));
			if (rc)
				return rc;
		}
		prev = h;
		h = N(t, h)->right;
	}
	if (prev)
		return fn(ctx, start_of(N(t, prev)), 0, kind_of(N(t, prev)));
	return 0;
}

struct check {
	const struct vfd_itree *t;
	const char *what;
	uint32_t count;
};

/* Red-black rules and aggregates; returns the black height, or -1. */
static int check_rec(struct check *c, uint32_t h, unsigned depth)
{
	const struct vfd_itree *t = c->t;

	if (!h)
		return 0;
	if (depth > MAX_DEPTH) {
		c->what = "tree too deep";
		return -1;
	}
	const struct vfd_inode *n = N(t, h);
	if (kind_of(n) == VFD_IK_UNUSED) {
		c->what = "unused node in tree";
		return -1;
	}
	if (red(t, h) && (red(t, n->left) || red(t, n->right))) {
		c->what = "two reds in a row";
		return -1;
	}
	if ((n->left && start_of(N(t, n->left)) >= start_of(n)) ||
	    (n->right && start_of(N(t, n->right)) <= start_of(n))) {
		c->what = "keys out of order";
		return -1;
	}
	int bl = check_rec(c, n->left, depth + 1);
	if (bl < 0)
		return -1;
	int br = check_rec(c, n->right, depth + 1);
	if (br < 0)
		return -1;
	if (bl != br) {
		c->what = "unequal black height";
		return -1;
	}
	c->count++;
	uint64_t s = start_of(n), g = gap_of(n);
	if (g > s) {
		c->what = "gap reaches below zero";
		return -1;
	}
	if (ord_of(n) != vfd_block_ordp1(s - g, s)) {
		c->what = "stale gap order";
		return -1;
	}
	uint64_t mg = g;
	unsigned mo = ord_of(n);
	const struct vfd_inode *l = N(t, n->left), *r = N(t, n->right);
	if (maxgap_of(l) > mg)
		mg = maxgap_of(l);
	if (maxgap_of(r) > mg)
		mg = maxgap_of(r);
	if (maxord_of(l) > mo)
		mo = maxord_of(l);
	if (maxord_of(r) > mo)
		mo = maxord_of(r);
	if (maxgap_of(n) != mg || maxord_of(n) != mo) {
		c->what = "stale subtree aggregate";
		return -1;
	}
	return bl + (red(t, h) ? 0 : 1);
}

int vfd_itree_check(const struct vfd_itree *t, const char **what)
{
	struct check c = { .t = t, .what = "ok" };
	uint32_t stack[MAX_DEPTH];
	unsigned sp = 0;
	uint32_t h = t->root, prev = 0;

	*what = "ok";
	if (N(t, 0)->w0 || N(t, 0)->w1 || N(t, 0)->w2 || N(t, 0)->left || N(t, 0)->right) {
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
	if (c.count != t->nodes_live) {
		*what = "node count differs";
		return -4;
	}
	/* In order: the first gap starts at 0; every later gap starts strictly
	 * after the previous node's start (only the last node may be empty). */
	for (;;) {
		while (h) {
			stack[sp++] = h;
			h = N(t, h)->left;
		}
		if (!sp)
			break;
		h = stack[--sp];
		const struct vfd_inode *hn = N(t, h);
		uint64_t lo = start_of(hn) - gap_of(hn);
		if (!prev ? lo != 0 : lo <= start_of(N(t, prev))) {
			*what = prev ? "block of size zero or overlapping" : "first gap not at 0";
			return -5;
		}
		prev = h;
		h = hn->right;
	}
	return 0;
}
