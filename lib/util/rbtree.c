/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Red-black tree (see rbtree.h).  The classic algorithm with NULL leaves:
 * an insert recolours up the tree and rotates at most twice; an erase
 * splices out the node (or its successor) and repairs a missing black with
 * at most three rotations.
 *
 * Augmentation: a structural change alters the summaries of the nodes on
 * one path to the root, which are recomputed bottom-up first; a rotation
 * then only changes the two nodes it turns (the set of nodes below the top
 * is the same), so it recomputes those two.
 */
#include "util/rbtree.h"

#define BLACK ((uintptr_t)1)

static inline bool is_red(const struct vfd_rb_node *n)
{
	return n && !(n->parent_color & BLACK);
}

static inline bool is_black(const struct vfd_rb_node *n)
{
	return !is_red(n);
}

static inline void set_parent(struct vfd_rb_node *n, struct vfd_rb_node *p)
{
	n->parent_color = (uintptr_t)p | (n->parent_color & BLACK);
}

static inline void set_black(struct vfd_rb_node *n)
{
	n->parent_color |= BLACK;
}

static inline void set_red(struct vfd_rb_node *n)
{
	n->parent_color &= ~BLACK;
}

static inline void copy_color(struct vfd_rb_node *to, const struct vfd_rb_node *from)
{
	to->parent_color = (to->parent_color & ~BLACK) | (from->parent_color & BLACK);
}

static void update_up(struct vfd_rb_root *root, struct vfd_rb_node *n)
{
	if (!root->update)
		return;
	for (; n; n = vfd_rb_parent(n))
		root->update(n);
}

/* Put @v where @u hangs from its parent. */
static void replace_child(struct vfd_rb_root *root, struct vfd_rb_node *u, struct vfd_rb_node *v)
{
	struct vfd_rb_node *p = vfd_rb_parent(u);
	if (!p)
		root->node = v;
	else if (p->left == u)
		p->left = v;
	else
		p->right = v;
	if (v)
		set_parent(v, p);
}

static void rotate_left(struct vfd_rb_root *root, struct vfd_rb_node *x)
{
	struct vfd_rb_node *y = x->right;
	x->right = y->left;
	if (y->left)
		set_parent(y->left, x);
	replace_child(root, x, y);
	y->left = x;
	set_parent(x, y);
	if (root->update) {
		root->update(x);
		root->update(y);
	}
}

static void rotate_right(struct vfd_rb_root *root, struct vfd_rb_node *x)
{
	struct vfd_rb_node *y = x->left;
	x->left = y->right;
	if (y->right)
		set_parent(y->right, x);
	replace_child(root, x, y);
	y->right = x;
	set_parent(x, y);
	if (root->update) {
		root->update(x);
		root->update(y);
	}
}

void vfd_rb_insert(struct vfd_rb_root *root, struct vfd_rb_node *n)
{
	struct vfd_rb_node *p;

	update_up(root, n);
	while ((p = vfd_rb_parent(n)) && is_red(p)) {
		struct vfd_rb_node *g = vfd_rb_parent(p); /* exists: the root is black */
		if (p == g->left) {
			struct vfd_rb_node *u = g->right;
			if (is_red(u)) {
				set_black(p);
				set_black(u);
				set_red(g);
				n = g;
				continue;
			}
			if (n == p->right) {
				rotate_left(root, p);
				n = p;
				p = vfd_rb_parent(n);
			}
			set_black(p);
			set_red(g);
			rotate_right(root, g);
		} else {
			struct vfd_rb_node *u = g->left;
			if (is_red(u)) {
				set_black(p);
				set_black(u);
				set_red(g);
				n = g;
				continue;
			}
			if (n == p->left) {
				rotate_right(root, p);
				n = p;
				p = vfd_rb_parent(n);
			}
			set_black(p);
			set_red(g);
			rotate_left(root, g);
		}
	}
	set_black(root->node);
}

/* Restore the black height after a black node left from above @x. */
static void erase_fixup(struct vfd_rb_root *root, struct vfd_rb_node *x, struct vfd_rb_node *xp)
{
	while (x != root->node && is_black(x)) {
		if (x == xp->left) {
			struct vfd_rb_node *w = xp->right;
			if (is_red(w)) {
				set_black(w);
				set_red(xp);
				rotate_left(root, xp);
				w = xp->right;
			}
			if (is_black(w->left) && is_black(w->right)) {
				set_red(w);
				x = xp;
				xp = vfd_rb_parent(x);
				continue;
			}
			if (is_black(w->right)) {
				set_black(w->left);
				set_red(w);
				rotate_right(root, w);
				w = xp->right;
			}
			copy_color(w, xp);
			set_black(xp);
			set_black(w->right);
			rotate_left(root, xp);
			x = root->node;
			break;
		} else {
			struct vfd_rb_node *w = xp->left;
			if (is_red(w)) {
				set_black(w);
				set_red(xp);
				rotate_right(root, xp);
				w = xp->left;
			}
			if (is_black(w->left) && is_black(w->right)) {
				set_red(w);
				x = xp;
				xp = vfd_rb_parent(x);
				continue;
			}
			if (is_black(w->left)) {
				set_black(w->right);
				set_red(w);
				rotate_left(root, w);
				w = xp->left;
			}
			copy_color(w, xp);
			set_black(xp);
			set_black(w->left);
			rotate_right(root, xp);
			x = root->node;
			break;
		}
	}
	if (x)
		set_black(x);
}

void vfd_rb_erase(struct vfd_rb_root *root, struct vfd_rb_node *z)
{
	struct vfd_rb_node *x, *xp;
	bool removed_black;

	if (!z->left || !z->right) {
		/* At most one child: splice z out. */
		x = z->left ? z->left : z->right;
		xp = vfd_rb_parent(z);
		removed_black = is_black(z);
		replace_child(root, z, x);
	} else {
		/* Two children: the successor y takes z's place and colour. */
		struct vfd_rb_node *y = z->right;
		while (y->left)
			y = y->left;
		removed_black = is_black(y);
		x = y->right;
		if (vfd_rb_parent(y) == z) {
			xp = y;
		} else {
			xp = vfd_rb_parent(y);
			replace_child(root, y, x);
			y->right = z->right;
			set_parent(y->right, y);
		}
		replace_child(root, z, y);
		y->left = z->left;
		set_parent(y->left, y);
		copy_color(y, z);
	}
	update_up(root, xp);
	if (removed_black)
		erase_fixup(root, x, xp);
}

struct vfd_rb_node *vfd_rb_first(const struct vfd_rb_root *root)
{
	struct vfd_rb_node *n = root->node;
	while (n && n->left)
		n = n->left;
	return n;
}

struct vfd_rb_node *vfd_rb_last(const struct vfd_rb_root *root)
{
	struct vfd_rb_node *n = root->node;
	while (n && n->right)
		n = n->right;
	return n;
}

struct vfd_rb_node *vfd_rb_next(const struct vfd_rb_node *n)
{
	if (n->right) {
		n = n->right;
		while (n->left)
			n = n->left;
		return (struct vfd_rb_node *)n;
	}
	struct vfd_rb_node *p;
	while ((p = vfd_rb_parent(n)) && n == p->right)
		n = p;
	return p;
}

struct vfd_rb_node *vfd_rb_prev(const struct vfd_rb_node *n)
{
	if (n->left) {
		n = n->left;
		while (n->right)
			n = n->right;
		return (struct vfd_rb_node *)n;
	}
	struct vfd_rb_node *p;
	while ((p = vfd_rb_parent(n)) && n == p->left)
		n = p;
	return p;
}

static int validate(const struct vfd_rb_node *n, const struct vfd_rb_node *parent)
{
	if (!n)
		return 1;
	if (vfd_rb_parent(n) != parent)
		return -1;
	if (is_red(n) && (is_red(n->left) || is_red(n->right)))
		return -1;
	int l = validate(n->left, n), r = validate(n->right, n);
	if (l < 0 || r < 0 || l != r)
		return -1;
	return l + (is_black(n) ? 1 : 0);
}

int vfd_rb_validate(const struct vfd_rb_root *root)
{
	if (is_red(root->node))
		return -1;
	return validate(root->node, NULL);
}
