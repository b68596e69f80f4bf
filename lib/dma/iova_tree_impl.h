/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Node accessors shared by iova_tree.c (updates and searches) and
 * iova_tree_check.c (walking and invariant checks).  Private to the tree.
 */
#ifndef VFDMA_DMA_IOVA_TREE_IMPL_H
#define VFDMA_DMA_IOVA_TREE_IMPL_H

#include "dma/iova_tree.h"

#define VAL_MASK ((UINT64_C(1) << 56) - 1)
#define RED_BIT (UINT64_C(1) << 56)
#define KIND_SHIFT 57
#define ORD_SHIFT 56
#define MAX_NODES (UINT32_C(1) << 31)
#define MAX_DEPTH 128

static inline struct vfd_inode *N(const struct vfd_itree *t, uint32_t i)
{
	return &t->nodes[i];
}

static inline uint64_t start_of(const struct vfd_inode *n) { return n->w0 & VAL_MASK; }
static inline uint64_t gap_of(const struct vfd_inode *n) { return n->w1 & VAL_MASK; }
static inline unsigned ord_of(const struct vfd_inode *n) { return (unsigned)(n->w1 >> ORD_SHIFT); }
static inline uint64_t maxgap_of(const struct vfd_inode *n) { return n->w2 & VAL_MASK; }
static inline unsigned maxord_of(const struct vfd_inode *n) { return (unsigned)(n->w2 >> ORD_SHIFT); }
static inline enum vfd_ikind kind_of(const struct vfd_inode *n)
{
	return (enum vfd_ikind)((n->w0 >> KIND_SHIFT) & 3);
}

static inline bool red(const struct vfd_itree *t, uint32_t i)
{
	return i && (N(t, i)->w0 & RED_BIT);
}

#endif
