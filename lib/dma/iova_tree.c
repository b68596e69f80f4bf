/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The augmented red-black tree behind the IOVA allocator (see iova_tree.h for
 * the layout).  Nodes have no parent link: insertion and deletion descend
 * from the root recording the path (at most 2 log2 n deep) and rebalance
 * bottom-up along it (the classic insert and delete fix-ups).  Augmentation:
 * the only nodes whose own gap changes are the inserted or removed node and
 * its successor, and both are on the recorded path, so aggregates are
 * recomputed along the path, then rotations recompute the nodes they move.
 * (A first version used Sedgewick's left-leaning variant, recursive; its
 * extra rotations and its full walk back up cost 2-3x more.)
 */
#include <errno.h>
#include <string.h>

#include "dma/iova_tree.h"
#include "util/sys.h"

#include "dma/iova_tree_impl.h"

unsigned vfd_block_ordp1(uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return 0;
	unsigned k = 63 - (unsigned)__builtin_clzll(hi - lo);
	uint64_t b = UINT64_C(1) << k;
	uint64_t p = (lo + b - 1) & ~(b - 1);
	return p + b <= hi ? k + 1 : k;
}

static inline void set_gap(struct vfd_inode *n, uint64_t gap)
{
	uint64_t s = start_of(n);
	n->w1 = gap | ((uint64_t)vfd_block_ordp1(s - gap, s) << ORD_SHIFT);
}

static inline void update(struct vfd_itree *t, uint32_t i)
{
	struct vfd_inode *n = N(t, i);
	const struct vfd_inode *l = N(t, n->left), *r = N(t, n->right);
	uint64_t g = gap_of(n);
	unsigned o = ord_of(n);

	if (maxgap_of(l) > g)
		g = maxgap_of(l);
	if (maxgap_of(r) > g)
		g = maxgap_of(r);
	if (maxord_of(l) > o)
		o = maxord_of(l);
	if (maxord_of(r) > o)
		o = maxord_of(r);
	n->w2 = g | ((uint64_t)o << ORD_SHIFT);
}

/* ---- node storage ---- */

int vfd_itree_init(struct vfd_itree *t)
{
	memset(t, 0, sizeof(*t));
	t->nodes = vfd_calloc(VFD_ITREE_INITIAL_NODES, sizeof(*t->nodes));
	if (!t->nodes)
		return -ENOMEM;
	t->cap = VFD_ITREE_INITIAL_NODES;
	t->next_fresh = 1; /* index 0 is the nil sentinel */
	return 0;
}

void vfd_itree_fini(struct vfd_itree *t)
{
	vfd_free(t->nodes);
	memset(t, 0, sizeof(*t));
}

size_t vfd_itree_mem(const struct vfd_itree *t)
{
	return (size_t)t->cap * sizeof(struct vfd_inode);
}

/*
 * The array grows by an eighth (at least 4096 nodes), so that at most ~12%
 * of it is slack; large reallocs move pages (mremap), they do not copy.
 */
int vfd_itree_prepare(struct vfd_itree *t, bool *grew)
{
	*grew = false;
	if (t->free_head || t->next_fresh < t->cap)
		return 0;
	uint64_t cap = t->cap + (t->cap / 8 > 4096 ? t->cap / 8 : 4096);
	cap = (cap + 4095) & ~(uint64_t)4095;
	if (cap > MAX_NODES)
		return -ENOMEM;
	struct vfd_inode *n = vfd_realloc(t->nodes, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	t->nodes = n;
	t->prev_cap = t->cap;
	t->cap = (uint32_t)cap;
	*grew = true;
	return 0;
}

void vfd_itree_unprepare(struct vfd_itree *t, bool grew)
{
	if (!grew)
		return;
	/* shrinking cannot really fail; if it does, the array stays larger */
	struct vfd_inode *n = vfd_realloc(t->nodes, (size_t)t->prev_cap * sizeof(*n));
	if (n) {
		t->nodes = n;
		t->cap = t->prev_cap;
	}
}

static uint32_t node_get(struct vfd_itree *t)
{
	uint32_t i = t->free_head;

	if (i)
		t->free_head = N(t, i)->left;
	else
		i = t->next_fresh++;
	t->nodes_live++;
	return i;
}

static void node_put(struct vfd_itree *t, uint32_t i)
{
	struct vfd_inode *n = N(t, i);

	n->w0 = n->w1 = n->w2 = 0;
	n->right = 0;
	n->left = t->free_head;
	t->free_head = i;
	t->nodes_live--;
}

/* ---- red-black mechanics over a recorded root-to-node path ---- */

static inline void set_red(struct vfd_itree *t, uint32_t i, bool r)
{
	struct vfd_inode *n = N(t, i);
	n->w0 = r ? n->w0 | RED_BIT : n->w0 & ~RED_BIT;
}

/* Make c take h's place under parent p (0: h is the root). */
static inline void relink(struct vfd_itree *t, uint32_t p, uint32_t h, uint32_t c)
{
	if (!p)
		t->root = c;
	else if (N(t, p)->left == h)
		N(t, p)->left = c;
	else
		N(t, p)->right = c;
}

/* Rotations keep colours; they recompute the two nodes that move. */
static uint32_t rot_left(struct vfd_itree *t, uint32_t p, uint32_t h)
{
	struct vfd_inode *hn = N(t, h);
	uint32_t x = hn->right;
	struct vfd_inode *xn = N(t, x);

	hn->right = xn->left;
	xn->left = h;
	relink(t, p, h, x);
	update(t, h);
	update(t, x);
	return x;
}

static uint32_t rot_right(struct vfd_itree *t, uint32_t p, uint32_t h)
{
	struct vfd_inode *hn = N(t, h);
	uint32_t x = hn->left;
	struct vfd_inode *xn = N(t, x);

	hn->left = xn->right;
	xn->right = h;
	relink(t, p, h, x);
	update(t, h);
	update(t, x);
	return x;
}

/*
 * Recompute aggregates along path[0..top] bottom-up: fully from path[top] up
 * to path[dirty] (the highest node whose own gap changed), then only while
 * something changes.  Above dirty only one child of each node changed, in a
 * known direction, which saves reading the other child (a cache miss in a
 * large tree): when gaps only grew (a removal), the new value is the max of
 * the old one and the child's; when they only shrank (an insertion), the node
 * only needs recomputing where its value came from that child.
 */
static void propagate(struct vfd_itree *t, const uint32_t *path, int top, int dirty, bool grow)
{
	uint64_t cold = 0, cnew = 0; /* the path child's aggregate before and after */

	for (int i = top; i >= 0; i--) {
		struct vfd_inode *n = N(t, path[i]);
		uint64_t old = n->w2;
		if (i >= dirty || i == top) {
			update(t, path[i]);
		} else if (grow) {
			uint64_t g = maxgap_of(n) > (cnew & VAL_MASK) ? maxgap_of(n) : (cnew & VAL_MASK);
			unsigned o = maxord_of(n) > (cnew >> ORD_SHIFT) ? maxord_of(n)
								       : (unsigned)(cnew >> ORD_SHIFT);
			n->w2 = g | ((uint64_t)o << ORD_SHIFT);
		} else if ((old & VAL_MASK) == (cold & VAL_MASK) || (old >> ORD_SHIFT) == (cold >> ORD_SHIFT)) {
			update(t, path[i]);
		}
		if (n->w2 == old && i < dirty)
			break;
		cold = old;
		cnew = n->w2;
	}
}

static void insert_fixup(struct vfd_itree *t, uint32_t *path, int i)
{
	/* path[i] is the new red node */
	while (i >= 2 && red(t, path[i - 1])) {
		uint32_t x = path[i], p = path[i - 1], g = path[i - 2];
		uint32_t gg = i >= 3 ? path[i - 3] : 0;
		if (N(t, g)->left == p) {
			uint32_t u = N(t, g)->right;
			if (red(t, u)) {
				set_red(t, p, false);
				set_red(t, u, false);
				set_red(t, g, true);
				i -= 2;
				continue;
			}
			if (N(t, p)->right == x)
				p = rot_left(t, g, p);
			rot_right(t, gg, g);
		} else {
			uint32_t u = N(t, g)->left;
			if (red(t, u)) {
				set_red(t, p, false);
				set_red(t, u, false);
				set_red(t, g, true);
				i -= 2;
				continue;
			}
			if (N(t, p)->left == x)
				p = rot_right(t, g, p);
			rot_left(t, gg, g);
		}
		set_red(t, p, false);
		set_red(t, g, true);
		break;
	}
	set_red(t, t->root, false);
}

/*
 * Restore the black height after a black node was spliced out: x (possibly
 * nil) is the child that took its place, a "double black"; path[0..i-1] are
 * its ancestors, and x_left says on which side of path[i-1] it hangs.
 */
static void delete_fixup(struct vfd_itree *t, uint32_t *path, int i, uint32_t x, bool x_left)
{
	while (i > 0 && !red(t, x)) {
		uint32_t p = path[i - 1], pp = i >= 2 ? path[i - 2] : 0;
		if (x_left) {
			uint32_t w = N(t, p)->right;
			if (red(t, w)) {
				set_red(t, w, false);
				set_red(t, p, true);
				rot_left(t, pp, p);
				/* w is now between pp and p on the path */
				for (int j = i; j > i - 1; j--)
					path[j] = path[j - 1];
				path[i - 1] = w;
				i++;
				pp = w;
				w = N(t, p)->right;
			}
			if (!red(t, N(t, w)->left) && !red(t, N(t, w)->right)) {
				set_red(t, w, true);
				x = p;
				i--;
				x_left = i > 0 && N(t, path[i - 1])->left == x;
				continue;
			}
			if (!red(t, N(t, w)->right)) {
				set_red(t, N(t, w)->left, false);
				set_red(t, w, true);
				w = rot_right(t, p, w);
			}
			set_red(t, w, red(t, p));
			set_red(t, p, false);
			set_red(t, N(t, w)->right, false);
			rot_left(t, pp, p);
		} else {
			uint32_t w = N(t, p)->left;
			if (red(t, w)) {
				set_red(t, w, false);
				set_red(t, p, true);
				rot_right(t, pp, p);
				for (int j = i; j > i - 1; j--)
					path[j] = path[j - 1];
				path[i - 1] = w;
				i++;
				pp = w;
				w = N(t, p)->left;
			}
			if (!red(t, N(t, w)->right) && !red(t, N(t, w)->left)) {
				set_red(t, w, true);
				x = p;
				i--;
				x_left = i > 0 && N(t, path[i - 1])->left == x;
				continue;
			}
			if (!red(t, N(t, w)->left)) {
				set_red(t, N(t, w)->right, false);
				set_red(t, w, true);
				w = rot_left(t, p, w);
			}
			set_red(t, w, red(t, p));
			set_red(t, p, false);
			set_red(t, N(t, w)->left, false);
			rot_right(t, pp, p);
		}
		x = t->root;
		break;
	}
	if (x)
		set_red(t, x, false);
}

/* ---- queries ---- */

/* The first node starting after pfn (0 if none); *pred: the last at or before. */
static uint32_t succ_of(const struct vfd_itree *t, uint64_t pfn, uint32_t *pred)
{
	uint32_t h = t->root, succ = 0, p = 0;

	while (h) {
		const struct vfd_inode *n = N(t, h);
		if (pfn < start_of(n)) {
			succ = h;
			h = n->left;
		} else {
			p = h;
			h = n->right;
		}
	}
	if (pred)
		*pred = p;
	return succ;
}

bool vfd_itree_lookup(const struct vfd_itree *t, uint64_t pfn, enum vfd_ikind *kind,
		      uint64_t *n)
{
	uint32_t p, y = succ_of(t, pfn, &p);

	if (!p || start_of(N(t, p)) != pfn)
		return false;
	*kind = kind_of(N(t, p));
	*n = y ? start_of(N(t, y)) - gap_of(N(t, y)) - pfn : 0;
	return true;
}

bool vfd_itree_range_free(const struct vfd_itree *t, uint64_t pfn, uint64_t n,
			  enum vfd_ikind *busy_kind)
{
	uint32_t p, y = succ_of(t, pfn, &p);

	if (y) {
		const struct vfd_inode *yn = N(t, y);
		uint64_t lo = start_of(yn) - gap_of(yn);
		if (pfn >= lo && n <= start_of(yn) - pfn)
			return true;
		if (pfn >= lo) {
			*busy_kind = kind_of(yn);
			return false;
		}
	}
	*busy_kind = p ? kind_of(N(t, p)) : VFD_IK_RESV;
	return false;
}

uint64_t vfd_itree_max_gap(const struct vfd_itree *t)
{
	return maxgap_of(N(t, t->root));
}

/* ---- search ---- */

enum fit_mode { FIT_ROOMY, FIT_POW2, FIT_ANY };

struct fit {
	const struct vfd_itree *t;
	uint64_t end; /* first page past the limit */
	uint64_t s, a, need;
	unsigned ordp1; /* FIT_POW2: order + 1 wanted; FIT_ANY: a necessary minimum */
	enum fit_mode mode;
};

static bool can(const struct fit *f, const struct vfd_inode *n)
{
	switch (f->mode) {
	case FIT_ROOMY:
		return maxgap_of(n) >= f->need;
	case FIT_POW2:
		return maxord_of(n) >= f->ordp1;
	default:
		return maxgap_of(n) >= f->s && maxord_of(n) >= f->ordp1;
	}
}

/* Does the gap [lo, hi) satisfy the current phase? */
static bool gap_fits(const struct fit *f, uint64_t lo, uint64_t hi)
{
	if (hi <= lo || hi - lo < f->s)
		return false;
	switch (f->mode) {
	case FIT_ROOMY:
		return hi - lo >= f->need;
	case FIT_POW2:
		return vfd_block_ordp1(lo, hi) >= f->ordp1;
	default:
		return ((hi - f->s) & ~(f->a - 1)) >= lo;
	}
}

static bool node_fits(const struct fit *f, const struct vfd_inode *n)
{
	switch (f->mode) {
	case FIT_ROOMY:
		return gap_of(n) >= f->need;
	case FIT_POW2:
		return ord_of(n) >= f->ordp1;
	default:
		return gap_fits(f, start_of(n) - gap_of(n), start_of(n));
	}
}

/* Highest node in h's subtree (only nodes starting at or below f->end when
 * bounded) whose gap satisfies the phase. */
static uint32_t search(const struct fit *f, uint32_t h, bool bounded)
{
	while (h) {
		const struct vfd_inode *n = N(f->t, h);
		/* both children are looked at next: fetch them in parallel */
		__builtin_prefetch(N(f->t, n->left));
		__builtin_prefetch(N(f->t, n->right));
		if (!can(f, n))
			return 0;
		if (bounded && start_of(n) > f->end) {
			h = n->left;
			continue;
		}
		uint32_t r = search(f, n->right, bounded);
		if (r)
			return r;
		if (node_fits(f, n))
			return h;
		h = n->left;
		bounded = false;
	}
	return 0;
}

static bool phase(struct fit *f, uint32_t yb, uint64_t *pfn)
{
	uint64_t hi;

	if (yb) {
		const struct vfd_inode *n = N(f->t, yb);
		uint64_t lo = start_of(n) - gap_of(n);
		if (lo < f->end && gap_fits(f, lo, f->end)) {
			*pfn = (f->end - f->s) & ~(f->a - 1);
			return true;
		}
	}
	uint32_t y = search(f, f->t->root, true);
	if (!y)
		return false;
	hi = start_of(N(f->t, y));
	*pfn = (hi - f->s) & ~(f->a - 1);
	return true;
}

int vfd_itree_find_fit(const struct vfd_itree *t, const struct vfd_ifit *q, uint64_t *pfn)
{
	struct fit f = {
		.t = t,
		.end = q->last + 1,
		.s = q->s,
		.a = q->a,
		.need = q->s + q->a - 1,
		.mode = FIT_ROOMY,
	};
	/* first node starting past the limit: usually the anchor, no search */
	uint32_t yb = q->last < start_of(N(t, t->last)) && q->last + 1 >= start_of(N(t, t->last))
			      ? t->last
			      : succ_of(t, q->last, NULL);

	if (phase(&f, yb, pfn))
		return 0;
	if (q->a == 1)
		return -ENOSPC;
	unsigned ka = (unsigned)__builtin_ctzll(q->a);
	if (q->s == q->a) {
		f.mode = FIT_POW2;
		f.ordp1 = ka + 1;
	} else {
		unsigned ks = 63 - (unsigned)__builtin_clzll(q->s);
		f.mode = FIT_ANY;
		f.ordp1 = (ka < ks ? ka : ks) + 1;
	}
	return phase(&f, yb, pfn) ? 0 : -ENOSPC;
}

/* ---- updates ---- */

void vfd_itree_insert(struct vfd_itree *t, uint64_t pfn, uint64_t n, enum vfd_ikind kind)
{
	uint32_t path[MAX_DEPTH];
	int d = 0, iy = -1;
	uint32_t h = t->root, y = 0;
	uint64_t lo = 0;

	/* Descend to the leaf position, noting the owner of the gap (the
	 * successor y), which is always on the path. */
	while (h) {
		path[d++] = h;
		if (pfn < start_of(N(t, h))) {
			y = h;
			iy = d - 1;
			h = N(t, h)->left;
		} else {
			h = N(t, h)->right;
		}
	}
	uint32_t z = node_get(t);
	struct vfd_inode *zn = N(t, z);
	zn->w0 = pfn | RED_BIT | ((uint64_t)kind << KIND_SHIFT);
	zn->left = zn->right = 0;
	if (y) {
		struct vfd_inode *yn = N(t, y);
		lo = start_of(yn) - gap_of(yn);
		set_gap(yn, start_of(yn) - (pfn + n));
	}
	set_gap(zn, pfn - lo);
	zn->w2 = zn->w1;
	if (!y)
		t->last = z;
	if (!d) {
		t->root = z;
	} else if (pfn < start_of(N(t, path[d - 1]))) {
		N(t, path[d - 1])->left = z;
	} else {
		N(t, path[d - 1])->right = z;
	}
	propagate(t, path, d - 1, iy < 0 ? d - 1 : iy, false);
	path[d] = z;
	insert_fixup(t, path, d);
}

void vfd_itree_remove(struct vfd_itree *t, uint64_t pfn)
{
	uint32_t path[MAX_DEPTH];
	int d = 0, iz = -1, iy = -1;
	uint32_t h = t->root;

	/* Find z, recording the path; the successor y is the last node where
	 * the search went left, or the leftmost node of z's right subtree. */
	while (h) {
		path[d++] = h;
		uint64_t s = start_of(N(t, h));
		if (pfn < s) {
			iy = d - 1;
			h = N(t, h)->left;
		} else if (pfn > s) {
			h = N(t, h)->right;
		} else {
			break;
		}
	}
	iz = d - 1;
	uint32_t z = path[iz];
	if (N(t, z)->right) {
		h = N(t, z)->right;
		while (h) {
			path[d++] = h;
			h = N(t, h)->left;
		}
		iy = d - 1;
	}
	struct vfd_inode *zn = N(t, z), *yn = N(t, path[iy]);
	uint64_t size = start_of(yn) - gap_of(yn) - pfn;
	set_gap(yn, gap_of(yn) + gap_of(zn) + size);

	/* With two children, z takes its successor's payload and the
	 * successor's node (which has no left child) is spliced out instead. */
	int ir = iz;
	if (zn->left && zn->right) {
		ir = d - 1;
		const struct vfd_inode *sn = N(t, path[ir]);
		zn->w0 = (sn->w0 & ~RED_BIT) | (zn->w0 & RED_BIT);
		zn->w1 = sn->w1;
	}
	uint32_t r = path[ir];
	struct vfd_inode *rn = N(t, r);
	uint32_t c = rn->left ? rn->left : rn->right;
	uint32_t pr = ir ? path[ir - 1] : 0;
	bool c_left = pr && N(t, pr)->left == r;
	bool was_black = !(rn->w0 & RED_BIT);

	relink(t, pr, r, c);
	if (r == t->last)
		t->last = z; /* the highest node's payload moved into z */
	node_put(t, r);
	/* Aggregates: nodes whose own gap changed and everything above them. */
	int dirty;
	if (ir > iz) {
		dirty = iz; /* z took the successor's payload */
	} else if (iy > iz) {
		/* z spliced out; y sits below it, in the subtree that moved up */
		for (int j = iy; j > iz; j--)
			update(t, path[j]);
		dirty = ir - 1;
	} else {
		dirty = iy; /* z spliced out; y is an ancestor */
	}
	propagate(t, path, ir - 1, dirty, true);
	if (was_black)
		delete_fixup(t, path, ir, c, c_left);
}
