/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * An intrusive red-black tree: the node lives inside the caller's structure
 * (recovered with vfd_container_of), the caller walks down to find where a
 * new node goes, links it with vfd_rb_link() and calls vfd_rb_insert().
 *
 * Augmentation: a root may carry an update callback that recomputes a
 * node's summary (for instance the largest end address in its subtree)
 * from the node and its children.  The tree calls it on every node whose
 * subtree changed, bottom-up, after inserts, erases and rotations, so
 * summaries are always exact.  Without a callback there is no extra cost.
 *
 * Internal; not part of the public API.
 */
#ifndef VFDMA_UTIL_RBTREE_H
#define VFDMA_UTIL_RBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define vfd_container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct vfd_rb_node {
	uintptr_t parent_color; /* parent pointer | colour in bit 0 (1 = black) */
	struct vfd_rb_node *left, *right;
};

struct vfd_rb_root {
	struct vfd_rb_node *node;
	/* Optional: recompute @n's augmented summary from @n and its children. */
	void (*update)(struct vfd_rb_node *n);
};

static inline struct vfd_rb_node *vfd_rb_parent(const struct vfd_rb_node *n)
{
	return (struct vfd_rb_node *)(n->parent_color & ~(uintptr_t)1);
}

/* Link @n as a child of @parent at *@link (a NULL pointer found by walking). */
static inline void vfd_rb_link(struct vfd_rb_node *n, struct vfd_rb_node *parent,
			       struct vfd_rb_node **link)
{
	n->parent_color = (uintptr_t)parent; /* red */
	n->left = n->right = NULL;
	*link = n;
}

/* Rebalance after vfd_rb_link(). */
void vfd_rb_insert(struct vfd_rb_root *root, struct vfd_rb_node *n);
/* Remove @n from the tree. */
void vfd_rb_erase(struct vfd_rb_root *root, struct vfd_rb_node *n);

struct vfd_rb_node *vfd_rb_first(const struct vfd_rb_root *root);
struct vfd_rb_node *vfd_rb_last(const struct vfd_rb_root *root);
struct vfd_rb_node *vfd_rb_next(const struct vfd_rb_node *n);
struct vfd_rb_node *vfd_rb_prev(const struct vfd_rb_node *n);

/*
 * Check the red-black properties (root black, no red node with a red
 * child, equal black height on every path, parent links consistent).
 * Returns the black height, or -1 if broken.  For tests.
 */
int vfd_rb_validate(const struct vfd_rb_root *root);

#endif
