/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The augmented red-black tree behind the IOVA allocator, with fat nodes
 * (see iova_tree.h for the layout).  Nodes have no parent link: insertion and
 * deletion descend from the root recording the path (at most 2 log2 n deep)
 * and rebalance bottom-up along it (the classic insert and delete fix-ups).
 *
 * Which nodes change.  An insertion or removal changes the entries of at
 * most two nodes, the one holding the block and the one holding its
 * successor entry (whose gap changes); the second is the first node with a
 * key above the block, which is the last node where the descent turned
 * left, so both are on the recorded path.  A full node passes an entry to
 * its in-order neighbour when that is an ancestor; a split adds one node
 * next to the full one, a merge splices out one node that has at most one
 * child.  Either way every node
 * whose aggregate changes is on the path, and the aggregates stored in the
 * parents are recomputed along it, bottom-up, before the fix-up; rotations
 * then recompute what they move.
 *
 * An allocation inserts where the search just found room: the search
 * leaves its path as a hint, and the insertion does not descend again.
 */
#include <errno.h>
#include <string.h>

#include "dma/iova_tree.h"
#include "util/sys.h"

#include "dma/iova_tree_impl.h"

#define INITIAL_NODES 64u
/* A node that loses an entry merges into the next if both then fit in this
 * (well below what a split leaves, so that the two do not alternate). */
#define MERGE_MAX (VFD_IRUN * 3 / 4)

unsigned vfd_block_ordp1(uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return 0;
	unsigned k = 63 - (unsigned)__builtin_clzll(hi - lo);
	uint64_t b = UINT64_C(1) << k;
	uint64_t p = (lo + b - 1) & ~(b - 1);
	return p + b <= hi ? k + 1 : k;
}

static inline uint64_t gap_word(uint64_t start, uint64_t gap)
{
	return gap | (uint64_t)vfd_block_ordp1(start - gap, start) << ORD_SHIFT;
}

static inline void own_update(struct vfd_itree *t, uint32_t i)
{
	N(t, i)->own = run_sum(R(t, i), N(t, i)->cnt);
}

/* ---- node storage ---- */

/*
 * Resize an array kept 64-byte aligned inside a realloc'd block (*raw; *al
 * is the aligned start), keeping its first keep bytes.  realloc keeps large
 * blocks' contents in place by moving pages; only the alignment offset may
 * change, and then the contents slide.
 */
static int realign(void **raw, void **al, size_t size, size_t keep)
{
	size_t off = *raw ? (size_t)((char *)*al - (char *)*raw) : 0;
	char *p = vfd_realloc(*raw, size + 63);

	if (!p)
		return -ENOMEM;
	char *a = (char *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
	if ((size_t)(a - p) != off && keep)
		memmove(a, p + off, keep);
	*raw = p;
	*al = a;
	return 0;
}

/* Resize both arrays to cap nodes; on failure the capacity is unchanged
 * (an array may be left larger than it, which is harmless). */
static int resize(struct vfd_itree *t, uint32_t cap)
{
	size_t keep = cap < t->cap ? cap : t->cap;

	if (realign(&t->nodes_raw, (void **)&t->nodes, (size_t)cap * sizeof(struct vfd_inode),
		    keep * sizeof(struct vfd_inode)))
		return -ENOMEM;
	if (cap < t->cap)
		t->cap = cap; /* the node array already shrank */
	if (realign(&t->runs_raw, (void **)&t->runs, (size_t)cap * sizeof(struct vfd_irun),
		    keep * sizeof(struct vfd_irun)))
		return -ENOMEM;
	t->cap = cap;
	return 0;
}

int vfd_itree_init(struct vfd_itree *t)
{
	memset(t, 0, sizeof(*t));
	if (resize(t, INITIAL_NODES)) {
		vfd_itree_fini(t);
		return -ENOMEM;
	}
	memset(N(t, 0), 0, sizeof(struct vfd_inode));
	memset(R(t, 0), 0, sizeof(struct vfd_irun));
	t->next_fresh = 1; /* index 0 is the nil sentinel */
	return 0;
}

void vfd_itree_fini(struct vfd_itree *t)
{
	vfd_free(t->nodes_raw);
	vfd_free(t->runs_raw);
	memset(t, 0, sizeof(*t));
}

size_t vfd_itree_mem(const struct vfd_itree *t)
{
	return (size_t)t->cap * (sizeof(struct vfd_inode) + sizeof(struct vfd_irun)) + 2 * 63;
}

/*
 * An insertion takes at most one node.  The arrays grow by an eighth (at
 * least 64 nodes), so that at most ~12% of them is slack.
 */
int vfd_itree_prepare(struct vfd_itree *t, bool *grew)
{
	*grew = false;
	if (t->free_head || t->next_fresh < t->cap)
		return 0;
	uint64_t cap = t->cap + (t->cap / 8 > INITIAL_NODES ? t->cap / 8 : INITIAL_NODES);
	cap = (cap + INITIAL_NODES - 1) & ~(uint64_t)(INITIAL_NODES - 1);
	if (cap > MAX_NODES)
		return -ENOMEM;
	uint32_t old = t->cap;
	if (resize(t, (uint32_t)cap))
		return -ENOMEM;
	t->prev_cap = old;
	*grew = true;
	return 0;
}

void vfd_itree_unprepare(struct vfd_itree *t, bool grew)
{
	/* shrinking cannot really fail; if it does, the arrays stay larger */
	if (grew)
		(void)resize(t, t->prev_cap);
}

/*
 * Descents mostly end within a level or two of log2(nodes) deep (a
 * red-black tree's leaves are between that and twice that; measured at 1M
 * fragmented blocks: 120K nodes, 88% of searches end at depth 14-18):
 * runs are prefetched from two levels above it.
 */
static void set_run_pf_depth(struct vfd_itree *t)
{
	unsigned lg = 31 - (unsigned)__builtin_clz(t->nodes_live | 1);

	t->run_pf_depth = lg > 2 ? lg - 2 : 0;
}

static uint32_t node_get(struct vfd_itree *t)
{
	uint32_t i = t->free_head;

	if (i)
		t->free_head = N(t, i)->left;
	else
		i = t->next_fresh++;
	memset(N(t, i), 0, sizeof(struct vfd_inode));
	t->nodes_live++;
	set_run_pf_depth(t);
	return i;
}

static void node_put(struct vfd_itree *t, uint32_t i)
{
	struct vfd_inode *n = N(t, i);

	memset(n, 0, sizeof(*n));
	n->left = t->free_head;
	t->free_head = i;
	t->nodes_live--;
	set_run_pf_depth(t);
}

/* ---- runs ---- */

static void run_insert(struct vfd_itree *t, uint32_t i, unsigned j, uint64_t w0, uint64_t w1)
{
	struct vfd_irun *r = R(t, i);
	unsigned c = N(t, i)->cnt;

	memmove(&r->w0[j + 1], &r->w0[j], (c - j) * sizeof(r->w0[0]));
	memmove(&r->w1[j + 1], &r->w1[j], (c - j) * sizeof(r->w1[0]));
	r->w0[j] = w0;
	r->w1[j] = w1;
	N(t, i)->cnt = (uint8_t)(c + 1);
	N(t, i)->key = e_start(r, 0);
}

/* Move entries [from, from + n) of node s to position at of node d. */
static void run_move(struct vfd_itree *t, uint32_t d, unsigned at, uint32_t s, unsigned from,
		     unsigned n)
{
	memcpy(&R(t, d)->w0[at], &R(t, s)->w0[from], n * sizeof(uint64_t));
	memcpy(&R(t, d)->w1[at], &R(t, s)->w1[from], n * sizeof(uint64_t));
}

/* ---- red-black mechanics over a recorded root-to-node path ---- */

static inline void set_red(struct vfd_itree *t, uint32_t i, bool r)
{
	if (i)
		N(t, i)->red = r;
}

/* Make c take h's place under parent p (0: h is the root); p's stored
 * aggregate of that side does not change (same entries below). */
static inline void relink(struct vfd_itree *t, uint32_t p, uint32_t h, uint32_t c)
{
	if (!p)
		t->root = c;
	else if (N(t, p)->left == h)
		N(t, p)->left = c;
	else
		N(t, p)->right = c;
}

/* Rotations keep colours and the aggregate of the rotated subtree; they
 * recompute what the two moving nodes store about their children. */
static uint32_t rot_left(struct vfd_itree *t, uint32_t p, uint32_t h)
{
	struct vfd_inode *hn = N(t, h);
	uint32_t x = hn->right;
	struct vfd_inode *xn = N(t, x);

	hn->right = xn->left;
	hn->rsum = xn->lsum;
	xn->left = h;
	xn->lsum = agg_of(t, h);
	relink(t, p, h, x);
	return x;
}

static uint32_t rot_right(struct vfd_itree *t, uint32_t p, uint32_t h)
{
	struct vfd_inode *hn = N(t, h);
	uint32_t x = hn->left;
	struct vfd_inode *xn = N(t, x);

	hn->left = xn->right;
	hn->lsum = xn->rsum;
	xn->right = h;
	xn->rsum = agg_of(t, h);
	relink(t, p, h, x);
	return x;
}

/*
 * Store path[k]'s aggregate in its parent, for k from `from` up to 1.  The
 * nodes whose own entries changed are at or below path[top]; above it, the
 * walk stops as soon as a stored aggregate does not change.  Only path nodes
 * are read: the other child's aggregate is already stored in the parent.
 */
static void propagate(struct vfd_itree *t, const uint32_t *path, int from, int top)
{
	for (int k = from; k > 0; k--) {
		struct vfd_inode *pn = N(t, path[k - 1]);
		uint64_t a = agg_of(t, path[k]);
		uint64_t *slot = pn->left == path[k] ? &pn->lsum : &pn->rsum;
		if (*slot == a && k <= top)
			break;
		*slot = a;
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
				path[i] = path[i - 1];
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
				path[i] = path[i - 1];
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

/* ---- updates ---- */

/* A full run with entry (w0, w1) inserted at i, as VFD_IRUN + 1 entries. */
static void overfull(const struct vfd_irun *xr, unsigned i, uint64_t w0, uint64_t w1,
		     uint64_t *v0, uint64_t *v1)
{
	memcpy(v0, xr->w0, i * sizeof(v0[0]));
	memcpy(v1, xr->w1, i * sizeof(v1[0]));
	v0[i] = w0;
	v1[i] = w1;
	memcpy(&v0[i + 1], &xr->w0[i], (VFD_IRUN - i) * sizeof(v0[0]));
	memcpy(&v1[i + 1], &xr->w1[i], (VFD_IRUN - i) * sizeof(v1[0]));
}

/*
 * Node x (path[ix]) is full and entry (w0, w1) goes at index i: the
 * VFD_IRUN + 1 entries are cut after the first l, and a new node m, a red
 * leaf next to x in order, takes one side.  Where the entry lands at an
 * edge of the run, the cut is at the entry, so that a run of allocations in
 * one direction (the placement rule fills gaps from the top) leaves full
 * nodes behind; elsewhere it is in the middle.  m hangs where x has no
 * child if it can: as x's right child with the upper part, or as its left
 * child with the lower part; only when x has both does m go below the
 * leftmost node of x's right subtree, a walk down headers that in a large
 * tree are likely not in cache.
 */
static void split(struct vfd_itree *t, struct path *p, int ix, unsigned i, uint64_t w0,
		  uint64_t w1)
{
	uint32_t x = p->n[ix], m = node_get(t); /* prepared: nothing moves */
	struct vfd_inode *xn = N(t, x), *mn = N(t, m);
	uint64_t v0[VFD_IRUN + 1], v1[VFD_IRUN + 1];
	unsigned l = i <= 1 ? i + 1 : i >= VFD_IRUN - 1 ? i : (VFD_IRUN + 1) / 2;
	bool before = xn->right && !xn->left;
	uint32_t lo = before ? m : x, hi = before ? x : m;

	overfull(R(t, x), i, w0, w1, v0, v1);
	memcpy(R(t, lo)->w0, v0, l * sizeof(v0[0]));
	memcpy(R(t, lo)->w1, v1, l * sizeof(v1[0]));
	memcpy(R(t, hi)->w0, &v0[l], (VFD_IRUN + 1 - l) * sizeof(v0[0]));
	memcpy(R(t, hi)->w1, &v1[l], (VFD_IRUN + 1 - l) * sizeof(v1[0]));
	N(t, lo)->cnt = (uint8_t)l;
	N(t, hi)->cnt = (uint8_t)(VFD_IRUN + 1 - l);
	xn->key = e_start(R(t, x), 0);
	mn->key = e_start(R(t, m), 0);
	own_update(t, x);
	own_update(t, m);
	mn->red = 1;
	if (t->last == x && !before)
		t->last = m;
	if (before)
		t->stats.splits_before++;
	else
		t->stats.splits++;

	int d = ix + 1;
	uint32_t c = xn->right;
	if (before) {
		xn->left = m;
	} else if (!c) {
		xn->right = m;
	} else {
		p->n[d++] = c;
		while (N(t, c)->left)
			p->n[d++] = c = N(t, c)->left;
		N(t, c)->left = m;
	}
	p->n[d] = m;
	propagate(t, p->n, d, ix);
	insert_fixup(t, p->n, d);
}

/*
 * Node x (path[ix]) is full and entry (w0, w1) goes at index i.  Before
 * splitting, a neighbour with room takes one entry: the previous node the
 * first of the VFD_IRUN + 1, or the next node the last (as in a B*-tree,
 * this keeps nodes fuller than splits alone).  Only a neighbour that is an
 * ancestor: its header is on the path, in cache, where finding one below x
 * would read headers that are likely not (measured: about 10% less metadata
 * with any neighbour, but a slower p99 in a large tree).
 */
static void overflow(struct vfd_itree *t, struct path *p, int ix, unsigned i, uint64_t w0,
		     uint64_t w1)
{
	uint32_t x = p->n[ix];
	struct vfd_irun *xr = R(t, x);
	uint64_t v0[VFD_IRUN + 1], v1[VFD_IRUN + 1];

	for (int next = 0; next < 2; next++) {
		int k = ancestor_neighbour(t, p->n, ix, next);
		if (k < 0 || N(t, p->n[k])->cnt >= VFD_IRUN)
			continue;
		uint32_t nb = p->n[k];
		overfull(xr, i, w0, w1, v0, v1);
		if (next) {
			memcpy(xr->w0, v0, VFD_IRUN * sizeof(v0[0]));
			memcpy(xr->w1, v1, VFD_IRUN * sizeof(v1[0]));
			N(t, x)->key = e_start(xr, 0);
			run_insert(t, nb, 0, v0[VFD_IRUN], v1[VFD_IRUN]);
		} else {
			memcpy(xr->w0, &v0[1], VFD_IRUN * sizeof(v0[0]));
			memcpy(xr->w1, &v1[1], VFD_IRUN * sizeof(v1[0]));
			N(t, x)->key = e_start(xr, 0);
			run_insert(t, nb, N(t, nb)->cnt, v0[0], v1[0]);
		}
		own_update(t, x);
		own_update(t, nb);
		t->stats.passes++;
		propagate(t, p->n, ix, k);
		return;
	}
	split(t, p, ix, i, w0, w1);
}

void vfd_itree_insert(struct vfd_itree *t, uint64_t pfn, uint64_t n, enum vfd_ikind kind)
{
	struct path p;
	uint64_t w0 = pfn | (uint64_t)kind << KIND_SHIFT;
	uint32_t x;
	unsigned i;
	int ix;

	t->entries++;
	if (!t->root) {
		/* the first entry (the anchor): its gap starts at 0 */
		x = node_get(t);
		run_insert(t, x, 0, w0, gap_word(pfn, pfn));
		own_update(t, x);
		t->root = t->last = x;
		return;
	}
	if (t->hint.depth && t->hint.pfn == pfn) {
		/* the search just found this gap: its path is recorded */
		memcpy(p.n, t->hint.path, (size_t)t->hint.depth * sizeof(p.n[0]));
		ix = t->hint.depth - 1;
		i = t->hint.j;
	} else {
		descend(t, pfn, &p);
		/* y, the entry after the block, owns the gap it goes into: it is
		 * in the last node with key <= pfn (c), or first in the next (s). */
		uint32_t c = p.ic >= 0 ? p.n[p.ic] : 0;
		i = c ? count_le(t, c, pfn) : 0;
		if (c && i < N(t, c)->cnt) {
			ix = p.ic;
		} else {
			ix = p.is; /* exists: the anchor is above any free block */
			i = 0;
		}
	}
	t->hint.depth = 0;
	x = p.n[ix];
	struct vfd_irun *r = R(t, x);
	uint64_t ys = e_start(r, i), lo = ys - e_gap(r, i);
	uint64_t w1 = gap_word(pfn, pfn - lo);
	r->w1[i] = gap_word(ys, ys - (pfn + n));
	if (N(t, x)->cnt < VFD_IRUN) {
		run_insert(t, x, i, w0, w1);
		own_update(t, x);
		propagate(t, p.n, ix, ix);
	} else {
		overflow(t, &p, ix, i, w0, w1);
	}
}

/*
 * Node c (path[ic]) ran low or empty: move its entries into its successor
 * node s (path[is]), and splice out one node.  If s is below c (the
 * leftmost of c's right subtree), c keeps the entries and s, which has no
 * left child, goes; otherwise s is an ancestor, c has no right child, and
 * c goes.
 */
static void merge(struct vfd_itree *t, struct path *p, int ic, int is)
{
	uint32_t c = p->n[ic], s = p->n[is];
	unsigned cc = N(t, c)->cnt, sc = N(t, s)->cnt;
	uint32_t keep, r;
	int ir;

	if (is > ic) {
		keep = c;
		r = s;
		ir = is;
		run_move(t, c, cc, s, 0, sc);
	} else {
		keep = s;
		r = c;
		ir = ic;
		memmove(&R(t, s)->w0[cc], &R(t, s)->w0[0], sc * sizeof(uint64_t));
		memmove(&R(t, s)->w1[cc], &R(t, s)->w1[0], sc * sizeof(uint64_t));
		run_move(t, s, 0, c, 0, cc);
	}
	N(t, keep)->cnt = (uint8_t)(cc + sc);
	N(t, keep)->key = e_start(R(t, keep), 0);
	own_update(t, keep);
	if (t->last == r)
		t->last = keep;
	t->stats.merges++;

	struct vfd_inode *rn = N(t, r);
	uint32_t ch = rn->left ? rn->left : rn->right;
	uint32_t pr = p->n[ir - 1]; /* ir >= 1: r is below keep */
	bool ch_left = N(t, pr)->left == r;
	bool was_black = !rn->red;

	relink(t, pr, r, ch);
	if (ch_left)
		N(t, pr)->lsum = agg_of(t, ch);
	else
		N(t, pr)->rsum = agg_of(t, ch);
	node_put(t, r);
	propagate(t, p->n, ir - 1, ic < is ? ic : is);
	if (was_black)
		delete_fixup(t, p->n, ir, ch, ch_left);
}

void vfd_itree_remove(struct vfd_itree *t, uint64_t pfn)
{
	struct path p;

	t->hint.depth = 0;
	descend(t, pfn, &p);
	int ic = p.ic, iy;
	uint32_t c = p.n[ic];
	unsigned i = count_le(t, c, pfn) - 1, yj;
	struct vfd_inode *cn = N(t, c);
	struct vfd_irun *cr = R(t, c);

	/* the next entry absorbs the block and its gap */
	if (i + 1 < cn->cnt) {
		iy = ic;
		yj = i + 1;
	} else {
		iy = p.is;
		yj = 0;
	}
	struct vfd_irun *yr = R(t, p.n[iy]);
	uint64_t ys = e_start(yr, yj), lo = e_start(cr, i) - e_gap(cr, i);
	yr->w1[yj] = gap_word(ys, ys - lo);

	memmove(&cr->w0[i], &cr->w0[i + 1], (cn->cnt - i - 1) * sizeof(uint64_t));
	memmove(&cr->w1[i], &cr->w1[i + 1], (cn->cnt - i - 1) * sizeof(uint64_t));
	cn->cnt--;
	if (cn->cnt)
		cn->key = e_start(cr, 0);
	t->entries--;
	own_update(t, c);
	if (iy != ic)
		own_update(t, p.n[iy]);
	/* c is not the last node (that holds the anchor) when it can run empty */
	if (p.is >= 0 && (!cn->cnt || cn->cnt + N(t, p.n[p.is])->cnt <= MERGE_MAX)) {
		merge(t, &p, ic, p.is);
		return;
	}
	propagate(t, p.n, ic > iy ? ic : iy, ic < iy ? ic : iy);
}
