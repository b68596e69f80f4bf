/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Dirty logs (include/vfdma/dirty.h).
 *
 * A log combines the backend's dirty bits (ops->dirty_read) with a software
 * log: pages the driver marked, and pages harvested from the backend just
 * before their kernel unmap (a page written and then unmapped during a round
 * must still be reported).  The software log is a tree of 64-page chunks,
 * so it costs nothing where nothing was marked.
 *
 * Everything below works in pages of the domain's granule; the caller's
 * granule (a power of two at least that large) only appears when a sync
 * folds pages into the caller's bitmap.  Syncs work through the range one
 * window at a time, so their scratch memory is bounded.
 */
#include <errno.h>
#include <string.h>

#include "iommu/domain.h"
#include "util/bits.h"
#include "util/log.h"
#include "util/sys.h"
#include "vfdma/dirty.h"

#define WINDOW_PAGES (1ull << 18) /* 1 GiB of 4 KiB pages per sync step */

struct sw_chunk {
	struct vfd_rb_node rb;
	uint64_t first; /* first page, a multiple of 64 */
	uint64_t bits;
};

struct vfdma_dirty {
	struct vfdma_domain *dom;
	uint64_t granule;
	unsigned int sources;
	bool split;
	unsigned int shift; /* log2 of the domain's granule */

	pthread_mutex_t lock; /* the software log */
	struct vfd_rb_root sw;

	uint64_t syncs;	   /* atomic */
	uint64_t reported; /* atomic */
};

static struct sw_chunk *chunk_of(struct vfd_rb_node *n)
{
	return n ? vfd_container_of(n, struct sw_chunk, rb) : NULL;
}

/* The chunk holding @first (a multiple of 64), made if @make. */
static struct sw_chunk *sw_chunk(struct vfdma_dirty *log, uint64_t first, bool make)
{
	struct vfd_rb_node **link = &log->sw.node, *parent = NULL;
	while (*link) {
		parent = *link;
		struct sw_chunk *c = chunk_of(parent);
		if (first == c->first)
			return c;
		link = first < c->first ? &parent->left : &parent->right;
	}
	if (!make)
		return NULL;
	struct sw_chunk *c = vfd_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->first = first;
	vfd_rb_link(&c->rb, parent, link);
	vfd_rb_insert(&log->sw, &c->rb);
	return c;
}

/* Set pages [first, last] in the software log (log->lock held). */
static int sw_set(struct vfdma_dirty *log, uint64_t first, uint64_t last)
{
	for (uint64_t p = first; p <= last;) {
		struct sw_chunk *c = sw_chunk(log, p & ~63ull, true);
		if (!c)
			return -ENOMEM;
		uint64_t hi = (p | 63) < last ? (p | 63) : last;
		uint64_t n = hi - p + 1;
		c->bits |= (n == 64 ? ~0ull : ((1ull << n) - 1)) << (p & 63);
		p = hi + 1;
		if (!p)
			break;
	}
	return 0;
}

/*
 * OR the software log's pages of [first, first + n) into @bits (bit 0 =
 * page first), taking them out of the log with @clear (log->lock held).
 */
static void sw_take(struct vfdma_dirty *log, uint64_t first, uint64_t n, uint64_t *bits,
		    bool clear)
{
	/* The first chunk at or after first & ~63. */
	struct vfd_rb_node *x = log->sw.node, *best = NULL;
	while (x) {
		if (chunk_of(x)->first >= (first & ~63ull)) {
			best = x;
			x = x->left;
		} else {
			x = x->right;
		}
	}
	while (best) {
		struct sw_chunk *c = chunk_of(best);
		best = vfd_rb_next(best);
		if (c->first >= first + n)
			break;
		for (unsigned b = 0; b < 64; b++) {
			uint64_t p = c->first + b;
			if (!(c->bits & (1ull << b)) || p < first || p >= first + n)
				continue;
			bits[(p - first) / 64] |= 1ull << ((p - first) % 64);
			if (clear)
				c->bits &= ~(1ull << b);
		}
		if (!c->bits) {
			vfd_rb_erase(&log->sw, &c->rb);
			vfd_free(c);
		}
	}
}

static void sw_free_all(struct vfdma_dirty *log)
{
	struct vfd_rb_node *n;
	while ((n = vfd_rb_first(&log->sw))) {
		vfd_rb_erase(&log->sw, n);
		vfd_free(chunk_of(n));
	}
}

static bool hw_source(const struct vfdma_dirty *log)
{
	return log->sources & (VFDMA_DIRTY_SRC_HW | VFDMA_DIRTY_SRC_TYPE1);
}

struct vfdma_dirty *vfdma_dirty_start(struct vfdma_domain *dom,
				      const struct vfdma_dirty_opts *opts)
{
	struct vfdma_dirty_opts o = opts ? *opts : (struct vfdma_dirty_opts){0};
	const unsigned all = VFDMA_DIRTY_SRC_HW | VFDMA_DIRTY_SRC_TYPE1 | VFDMA_DIRTY_SRC_MARK;
	if (!dom || (o.sources & ~all) || (o.flags & ~VFDMA_DIRTY_NO_SPLIT)) {
		errno = EINVAL;
		return NULL;
	}
	if (!o.granule)
		o.granule = 4096;
	if ((o.granule & (o.granule - 1)) || o.granule < dom->granule) {
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&dom->lock);
	unsigned caps = dom->ops->dirty_start ? vfd_dirty_caps_locked(dom) : 0;
	pthread_mutex_unlock(&dom->lock);
	unsigned have = VFDMA_DIRTY_SRC_MARK | (caps & VFDMA_DIRTY_CAP_HW ? VFDMA_DIRTY_SRC_HW : 0) |
			(caps & VFDMA_DIRTY_CAP_TYPE1 ? VFDMA_DIRTY_SRC_TYPE1 : 0);
	if (!o.sources) {
		o.sources = VFDMA_DIRTY_SRC_MARK;
		if (have & VFDMA_DIRTY_SRC_HW)
			o.sources |= VFDMA_DIRTY_SRC_HW;
		else if (have & VFDMA_DIRTY_SRC_TYPE1)
			o.sources |= VFDMA_DIRTY_SRC_TYPE1;
	}
	if (o.sources & ~have) {
		errno = ENOTSUP;
		return NULL;
	}
	struct vfdma_dirty *log = vfd_calloc(1, sizeof(*log));
	if (!log) {
		errno = ENOMEM;
		return NULL;
	}
	log->dom = dom;
	log->granule = o.granule;
	log->sources = o.sources;
	log->split = !(o.flags & VFDMA_DIRTY_NO_SPLIT) && (o.sources & VFDMA_DIRTY_SRC_HW) &&
		     (caps & VFDMA_DIRTY_CAP_SPLIT);
	log->shift = (unsigned)__builtin_ctzll(dom->granule);
	log->sw = (struct vfd_rb_root){NULL, NULL};
	pthread_mutex_init(&log->lock, NULL);

	int rc = 0;
	pthread_rwlock_wrlock(&dom->op_lock);
	if (dom->dirty)
		rc = -EBUSY;
	else if (hw_source(log))
		rc = dom->ops->dirty_start(dom, log->split);
	if (!rc)
		dom->dirty = log;
	pthread_rwlock_unlock(&dom->op_lock);
	if (rc) {
		pthread_mutex_destroy(&log->lock);
		vfd_free(log);
		errno = -rc;
		return NULL;
	}
	VFD_DBG("dirty log on domain %p: sources 0x%x, granule %llu, split %d", (void *)dom,
		log->sources, (unsigned long long)log->granule, log->split);
	return log;
}

static void log_free(struct vfdma_dirty *log)
{
	sw_free_all(log);
	pthread_mutex_destroy(&log->lock);
	vfd_free(log);
}

int vfdma_dirty_stop(struct vfdma_dirty *log)
{
	if (!log)
		return 0;
	struct vfdma_domain *dom = log->dom;
	pthread_rwlock_wrlock(&dom->op_lock);
	if (hw_source(log))
		dom->ops->dirty_stop(dom, log->split);
	dom->dirty = NULL;
	pthread_rwlock_unlock(&dom->op_lock);
	log_free(log);
	return 0;
}

void vfd_dirty_release(struct vfdma_domain *dom)
{
	struct vfdma_dirty *log = dom->dirty;
	if (!log)
		return;
	if (hw_source(log))
		dom->ops->dirty_stop(dom, log->split);
	dom->dirty = NULL;
	log_free(log);
}

/* Pages of [iova, iova + len) as [first, last]; false if len is 0. */
static bool page_span(const struct vfdma_dirty *log, uint64_t iova, uint64_t len,
		      uint64_t *first, uint64_t *last)
{
	if (!len)
		return false;
	*first = iova >> log->shift;
	*last = (iova + len - 1) >> log->shift;
	return true;
}

int vfdma_dirty_mark(struct vfdma_dirty *log, uint64_t iova, uint64_t len)
{
	if (!log || !len)
		return -EINVAL;
	if (iova + len < iova)
		return -EOVERFLOW;
	if (!(log->sources & VFDMA_DIRTY_SRC_MARK))
		return -ENOTSUP;
	uint64_t first, last;
	page_span(log, iova, len, &first, &last);
	pthread_mutex_lock(&log->lock);
	int rc = sw_set(log, first, last);
	pthread_mutex_unlock(&log->lock);
	return rc;
}

/* Keep the backend's bits of a range about to be unmapped (op_lock held). */
void vfd_dirty_harvest(struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	struct vfdma_dirty *log = dom->dirty;
	if (!hw_source(log) || dom->ops->dirty_unmap_keeps)
		return;
	uint64_t words = WINDOW_PAGES / 64;
	uint64_t *bits = vfd_calloc(words, sizeof(*bits));
	uint64_t pages = len >> log->shift;
	for (uint64_t off = 0; off < pages; off += WINDOW_PAGES) {
		uint64_t n = pages - off < WINDOW_PAGES ? pages - off : WINDOW_PAGES;
		uint64_t base = iova + (off << log->shift);
		if (!bits) {
			/* No scratch memory: report the whole window dirty. */
			pthread_mutex_lock(&log->lock);
			int rc = sw_set(log, base >> log->shift, (base >> log->shift) + n - 1);
			pthread_mutex_unlock(&log->lock);
			if (rc)
				VFD_LOG_ONCE(VFDMA_LOG_ERROR, "dirty log: no memory to keep the "
							      "dirty state of an unmapped range");
			continue;
		}
		memset(bits, 0, ((n + 63) / 64) * sizeof(*bits));
		if (dom->ops->dirty_read(dom, base, n << log->shift, bits, true) < 0)
			memset(bits, 0xff, ((n + 63) / 64) * sizeof(*bits)); /* be safe: all */
		pthread_mutex_lock(&log->lock);
		for (uint64_t p = 0; p < n; p++)
			if (bits[p / 64] & (1ull << (p % 64)))
				sw_set(log, (base >> log->shift) + p, (base >> log->shift) + p);
		pthread_mutex_unlock(&log->lock);
	}
	vfd_free(bits);
}

void vfd_dirty_keep(struct vfdma_domain *dom, uint64_t iova, uint64_t npages,
		    const uint64_t *bits)
{
	struct vfdma_dirty *log = dom->dirty;
	if (!log || !npages)
		return;
	uint64_t base = iova >> log->shift;
	int rc = 0;
	pthread_mutex_lock(&log->lock);
	if (!bits)
		rc = sw_set(log, base, base + npages - 1);
	/* One sw_set per run of set bits. */
	for (uint64_t p = 0; bits && p < npages && !rc;) {
		uint64_t w = bits[p / 64] >> (p % 64);
		if (!w) {
			p = (p | 63) + 1;
			continue;
		}
		p += (uint64_t)__builtin_ctzll(w);
		if (p >= npages)
			break;
		uint64_t q = p + 1;
		while (q < npages && (bits[q / 64] & (1ull << (q % 64))))
			q++;
		rc = sw_set(log, base + p, base + q - 1);
		p = q;
	}
	pthread_mutex_unlock(&log->lock);
	if (rc)
		VFD_LOG_ONCE(VFDMA_LOG_ERROR, "dirty log: no memory to keep dirty pages the "
					      "kernel reported; they may go unreported");
}

/*
 * OR the first @n bits of @bits into @dst; returns how many were set.  Most
 * words are zero in a sync: test eight at a time.
 */
static int64_t fold_words(uint64_t *dst, uint64_t *bits, uint64_t n)
{
	int64_t set = 0;
	if (n % 64)
		bits[n / 64] &= (1ull << (n % 64)) - 1;
	uint64_t words = (n + 63) / 64;
	for (uint64_t w = 0; w < words; w += 8) {
		uint64_t end = w + 8 < words ? w + 8 : words, any = 0;
		for (uint64_t k = w; k < end; k++)
			any |= bits[k];
		if (!any)
			continue;
		for (uint64_t k = w; k < end; k++) {
			if (!bits[k])
				continue;
			dst[k] |= bits[k];
			set += vfd_popcount64(bits[k]);
		}
	}
	return set;
}

int64_t vfdma_dirty_sync(struct vfdma_dirty *log, uint64_t iova, uint64_t len,
			 uint64_t *bitmap, unsigned int flags)
{
	if (!log || !bitmap || !len || (flags & ~VFDMA_DIRTY_SYNC_PEEK) ||
	    ((iova | len) & (log->granule - 1)))
		return -EINVAL;
	if (iova + len < iova)
		return -EOVERFLOW;
	struct vfdma_domain *dom = log->dom;
	bool clear = !(flags & VFDMA_DIRTY_SYNC_PEEK);
	uint64_t per = log->granule >> log->shift; /* pages per caller granule */
	uint64_t window = WINDOW_PAGES > per ? WINDOW_PAGES : per;
	uint64_t *bits = vfd_calloc(window / 64 ? window / 64 : 1, sizeof(*bits));
	if (!bits)
		return -ENOMEM;
	uint64_t pages = len >> log->shift;
	int64_t reported = 0;
	int rc = 0;
	pthread_rwlock_rdlock(&dom->op_lock);
	for (uint64_t off = 0; off < pages && !rc; off += window) {
		uint64_t n = pages - off < window ? pages - off : window;
		uint64_t base = iova + (off << log->shift);
		memset(bits, 0, ((n + 63) / 64) * sizeof(*bits));
		if (hw_source(log)) {
			int64_t got = dom->ops->dirty_read(dom, base, n << log->shift, bits, clear);
			if (got < 0) {
				rc = (int)got;
				break;
			}
		}
		pthread_mutex_lock(&log->lock);
		sw_take(log, base >> log->shift, n, bits, clear);
		pthread_mutex_unlock(&log->lock);
		/*
		 * Fold pages into caller granules: bit g covers pages g*per ..
		 * At the domain's own granule a window is whole bitmap words
		 * (window and offset are multiples of 64 pages): OR them.
		 */
		if (per == 1 && !(off % 64)) {
			reported += fold_words(bitmap + off / 64, bits, n);
			continue;
		}
		for (uint64_t g = 0; g < n / per; g++) {
			bool any = false;
			for (uint64_t p = g * per; p < (g + 1) * per && !any; p++)
				any = bits[p / 64] & (1ull << (p % 64));
			if (!any)
				continue;
			uint64_t bit = (off / per) + g;
			bitmap[bit / 64] |= 1ull << (bit % 64);
			reported++;
		}
	}
	pthread_rwlock_unlock(&dom->op_lock);
	vfd_free(bits);
	if (rc)
		return rc;
	__atomic_add_fetch(&log->syncs, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&log->reported, (uint64_t)reported, __ATOMIC_RELAXED);
	return reported;
}

int vfdma_dirty_get_info(struct vfdma_dirty *log, struct vfdma_dirty_info *info)
{
	if (!log || !info)
		return -EINVAL;
	*info = (struct vfdma_dirty_info){
		.sources = log->sources,
		.granule = log->granule,
		.split = log->split,
		.syncs = __atomic_load_n(&log->syncs, __ATOMIC_RELAXED),
		.reported = __atomic_load_n(&log->reported, __ATOMIC_RELAXED),
	};
	return 0;
}
