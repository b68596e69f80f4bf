/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Queries of the IOVA tree: lookups, range checks, and the search for where
 * the placement rule puts a block (see iova_tree.h for the layout).
 */
#include <errno.h>

#include "dma/iova_tree_impl.h"

bool vfd_itree_lookup(const struct vfd_itree *t, uint64_t pfn, enum vfd_ikind *kind,
		      uint64_t *n)
{
	struct path path;
	struct ent p, y;

	locate(t, pfn, &path, &p, &y);
	if (!p.n || e_start(R(t, p.n), p.j) != pfn)
		return false;
	*kind = e_kind(R(t, p.n), p.j);
	*n = y.n ? e_start(R(t, y.n), y.j) - e_gap(R(t, y.n), y.j) - pfn : 0;
	return true;
}

bool vfd_itree_range_free(const struct vfd_itree *t, uint64_t pfn, uint64_t n,
			  enum vfd_ikind *busy_kind)
{
	struct path path;
	struct ent p, y;

	locate(t, pfn, &path, &p, &y);
	if (y.n) {
		const struct vfd_irun *r = R(t, y.n);
		uint64_t s = e_start(r, y.j), lo = s - e_gap(r, y.j);
		if (pfn >= lo && n <= s - pfn)
			return true;
		if (pfn >= lo) {
			*busy_kind = e_kind(r, y.j);
			return false;
		}
	}
	*busy_kind = p.n ? e_kind(R(t, p.n), p.j) : VFD_IK_RESV;
	return false;
}

uint64_t vfd_itree_max_gap(const struct vfd_itree *t)
{
	return sum_gap(agg_of(t, t->root));
}

/* ---- search ---- */

enum fit_mode { FIT_ROOMY, FIT_POW2, FIT_ANY };

struct fit {
	const struct vfd_itree *t;
	uint64_t end; /* first page past the limit */
	uint64_t s, a, need;
	unsigned ordp1; /* FIT_POW2: order + 1 wanted; FIT_ANY: a necessary minimum */
	enum fit_mode mode;
	uint32_t *path; /* search(): the path to the entry found, and its length */
	int depth;
	/* ROOMY and POW2 as one branch-free test on a gap word or an aggregate:
	 * ((w >> sh) & mask) >= thr */
	unsigned sh;
	uint64_t mask, thr;
};

static inline bool exact_can(const struct fit *f, uint64_t w)
{
	return ((w >> f->sh) & f->mask) >= f->thr;
}

static void set_mode(struct fit *f, enum fit_mode mode, unsigned ordp1)
{
	f->mode = mode;
	f->ordp1 = ordp1;
	f->sh = mode == FIT_POW2 ? ORD_SHIFT : 0;
	f->mask = mode == FIT_POW2 ? 0x7f : VAL_MASK;
	f->thr = mode == FIT_POW2 ? ordp1 : f->need;
}

/* Can an aggregate hold a fit?  (Exact for ROOMY and POW2, necessary for ANY.) */
static inline bool can(const struct fit *f, uint64_t sum)
{
	switch (f->mode) {
	case FIT_ROOMY:
		return sum_gap(sum) >= f->need;
	case FIT_POW2:
		return sum_ord(sum) >= f->ordp1;
	default:
		return sum_gap(sum) >= f->s && sum_ord(sum) >= f->ordp1;
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

static inline bool entry_fits(const struct fit *f, const struct vfd_irun *r, unsigned j)
{
	switch (f->mode) {
	case FIT_ROOMY:
		return e_gap(r, j) >= f->need;
	case FIT_POW2:
		return e_ord(r, j) >= f->ordp1;
	default:
		return gap_fits(f, e_start(r, j) - e_gap(r, j), e_start(r, j));
	}
}


/*
 * Highest entry in h's subtree (only entries starting at or below f->end
 * when bounded) whose gap satisfies the phase.  Every decision reads only
 * the current node's header; the run is read where an own entry fits.
 * Unbounded, ROOMY and POW2 never backtrack (their test is exact); bounded,
 * the walk follows the limit's path, with one unbounded descent at the end.
 * The path from the root (h is at depth d) goes to f->path, its length to
 * f->depth, for the insertion that follows.
 */
static bool search(struct fit *f, uint32_t h, bool bounded, int d, struct ent *e)
{
	while (h) {
		const struct vfd_inode *n = N(f->t, h);
		f->path[d++] = h;
		if (bounded && n->key > f->end) {
			if (!can(f, n->lsum))
				return false;
			h = n->left;
			continue;
		}
		if (can(f, n->rsum) && search(f, n->right, bounded, d, e))
			return true;
		if (can(f, n->own)) {
			const struct vfd_irun *r = R(f->t, h);
			for (int k = n->cnt - 1; k >= 0; k--) {
				if (bounded && e_start(r, (unsigned)k) > f->end)
					continue;
				if (entry_fits(f, r, (unsigned)k)) {
					e->n = h;
					e->j = (unsigned)k;
					f->depth = d;
					return true;
				}
			}
		}
		if (!can(f, n->lsum))
			return false;
		h = n->left;
		bounded = false;
	}
	return false;
}

/*
 * Unbounded search in an exact mode (ROOMY or POW2), where the aggregates say
 * exactly where a fit is: right if the right subtree has one, else here if
 * the node's own entries have one, else left.  It never backtracks, reads one
 * header per level, chooses the direction without a data-dependent branch,
 * and records the path for the insertion (the hint).  Returns false when the
 * tree has no fit.
 */
static bool search_exact(struct vfd_itree *t, const struct fit *f, struct ent *e)
{
	uint32_t h = t->root;
	int d = 0;

	if (!exact_can(f, agg_of(t, h)))
		return false;
	for (;;) {
		struct vfd_inode *n = N(t, h);
		bool r = exact_can(f, n->rsum);
		t->hint.path[d++] = h;
		if (!r && exact_can(f, n->own))
			break;
		h = descend_step(t, n, r, d);
	}
	/* the highest fitting entry of the run: a mask, no branch per entry */
	const struct vfd_irun *run = R(t, h);
	for (size_t off = 0; off < sizeof(run->w1); off += 64) {
		__builtin_prefetch((const char *)run->w1 + off);
		__builtin_prefetch((const char *)run->w0 + off);
	}
	uint64_t m = 0;
	for (unsigned j = 0; j < VFD_IRUN; j++)
		m |= (uint64_t)exact_can(f, run->w1[j]) << j;
	m &= ~UINT64_C(0) >> (64 - N(t, h)->cnt);
	e->n = h;
	e->j = 63 - (unsigned)__builtin_clzll(m); /* m != 0: own said so */
	t->hint.depth = d;
	t->hint.j = e->j;
	return true;
}

static bool phase(struct fit *f, const struct ent *yb, bool unbounded, uint64_t *pfn)
{
	struct vfd_itree *t = (struct vfd_itree *)f->t;
	struct ent e;

	if (yb->n) {
		const struct vfd_irun *r = R(t, yb->n);
		uint64_t lo = e_start(r, yb->j) - e_gap(r, yb->j);
		if (lo < f->end && gap_fits(f, lo, f->end)) {
			*pfn = (f->end - f->s) & ~(f->a - 1);
			return true;
		}
	}
	if (unbounded && f->mode != FIT_ANY) {
		if (!search_exact(t, f, &e))
			return false;
	} else {
		if (!can(f, agg_of(t, t->root)) || !search(f, t->root, true, 0, &e))
			return false;
		t->hint.depth = f->depth;
		t->hint.j = e.j;
	}
	*pfn = (e_start(R(t, e.n), e.j) - f->s) & ~(f->a - 1);
	t->hint.pfn = *pfn;
	if (N(t, e.n)->cnt == VFD_IRUN)
		prefetch_overflow(t, t->hint.path, t->hint.depth - 1);
	return true;
}

int vfd_itree_find_fit(struct vfd_itree *t, const struct vfd_ifit *q, uint64_t *pfn)
{
	struct fit f = {
		.t = t,
		.path = t->hint.path,
		.end = q->last + 1,
		.s = q->s,
		.a = q->a,
		.need = q->s + q->a - 1,
	};
	struct ent yb = { t->last, N(t, t->last)->cnt - 1u }, p;
	/* first entry starting past the limit: usually the anchor, no search;
	 * a limit at the anchor bounds nothing */
	bool unbounded = t->last && q->last < e_start(R(t, yb.n), yb.j) &&
			 q->last + 1 >= e_start(R(t, yb.n), yb.j);

	t->hint.depth = 0;
	if (!unbounded) {
		struct path path;
		locate(t, q->last, &path, &p, &yb);
	}
	set_mode(&f, FIT_ROOMY, 0);
	if (phase(&f, &yb, unbounded, pfn))
		return 0;
	if (q->a == 1)
		return -ENOSPC;
	unsigned ka = (unsigned)__builtin_ctzll(q->a);
	if (q->s == q->a) {
		set_mode(&f, FIT_POW2, ka + 1);
	} else {
		unsigned ks = 63 - (unsigned)__builtin_clzll(q->s);
		set_mode(&f, FIT_ANY, (ka < ks ? ka : ks) + 1);
	}
	return phase(&f, &yb, unbounded, pfn) ? 0 : -ENOSPC;
}
