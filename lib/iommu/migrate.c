/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Migration, source side (include/vfdma/migrate.h): the pre-copy helper
 * and the stream writer.
 *
 * A round is: snapshot the domain's mappings and compare them with what
 * the destination was told (UNMAP for the ones gone, MAP for the new);
 * then sync the dirty log over every mapping and send the dirty pages of
 * the old mappings and all of each new one.  The sync comes before any
 * memory is read, so a page written after it is in the next round's sync.
 *
 * Memory is read a chunk at a time under dom->lock, after checking that
 * the mapping is still the one in the snapshot: an unmap takes the record
 * out of the table under that lock before the caller may free the memory,
 * so a chunk is never read from memory the driver already gave back.  The
 * copy uses relaxed atomic loads, because devices write the memory while
 * it is read (that is what pre-copy is), and goes through a bounce buffer,
 * so the sink sees a stable copy.
 */
#include <errno.h>
#include <string.h>

#include "iommu/domain.h"
#include "iommu/maptab.h"
#include "iommu/migrate_stream.h"
#include "util/log.h"
#include "util/sys.h"
#include "vfdma/migrate.h"

#define CHUNK (256u << 10)	 /* bytes copied per hold of dom->lock */
#define WIN_GRANULES (1u << 18) /* granules per dirty sync window */

struct mrun {
	uint64_t iova, len;
	uintptr_t va;
	unsigned prot;
	/*
	 * The record and its generation: a mapping unmapped and made again
	 * with the same IOVA, length and vaddr (the allocator and malloc both
	 * like to hand back what was just freed) is a new mapping, whose
	 * memory the CPU may have rewritten unseen by the dirty log.
	 */
	const struct vfd_map *rec;
	uint64_t gen;
	bool fresh; /* announced this round: sent whole */
};

struct vfdma_migrate {
	struct vfdma_domain *dom;
	struct vfdma_migrate_ops ops;
	void *ctx;
	int running; /* atomic: a save runs */

	/* During a save. */
	const struct vfdma_migrate_sink *sink;
	struct vfdma_dirty *log;
	struct vfdma_migrate_stats st;
	uint64_t granule;
	uint64_t *bounce;
	uint64_t *bits;
	struct mrun *sent; /* what the destination holds, by IOVA */
	size_t nr_sent;
	uint64_t *acct; /* the round's byte counter in st */
};

struct vfdma_migrate *vfdma_migrate_create(struct vfdma_domain *dom,
					   const struct vfdma_migrate_ops *ops, void *ctx)
{
	if (!dom) {
		errno = EINVAL;
		return NULL;
	}
	struct vfdma_migrate *mig = vfd_calloc(1, sizeof(*mig));
	if (!mig) {
		errno = ENOMEM;
		return NULL;
	}
	mig->dom = dom;
	if (ops)
		mig->ops = *ops;
	mig->ctx = ctx;
	return mig;
}

void vfdma_migrate_destroy(struct vfdma_migrate *mig)
{
	vfd_free(mig);
}

struct vfdma_dirty *vfdma_migrate_log(struct vfdma_migrate *mig)
{
	return mig ? __atomic_load_n(&mig->log, __ATOMIC_ACQUIRE) : NULL;
}

/* The domain's mappings now, in IOVA order (vfd_malloc'd array). */
static int snapshot(struct vfdma_domain *dom, struct mrun **out, size_t *n)
{
	for (;;) {
		pthread_mutex_lock(&dom->lock);
		size_t cap = dom->nr_maps + 1;
		pthread_mutex_unlock(&dom->lock);
		struct mrun *a = vfd_calloc(cap, sizeof(*a));
		if (!a)
			return -ENOMEM;
		size_t k = 0;
		bool fits = true;
		pthread_mutex_lock(&dom->lock);
		for (struct vfd_map *m = vfd_maptab_from(dom, 0); m; m = vfd_maptab_next(dom, m)) {
			if (k == cap) {
				fits = false;
				break;
			}
			uint64_t w = __atomic_load_n(&m->word, __ATOMIC_RELAXED);
			a[k++] = (struct mrun){
				.iova = m->iova,
				.len = m->len,
				.va = m->va,
				.prot = (unsigned)(w & VFD_MAPW_PROT),
				.rec = m,
				.gen = w >> VFD_MAPW_GEN_SHIFT,
			};
		}
		pthread_mutex_unlock(&dom->lock);
		if (fits) {
			*out = a;
			*n = k;
			return 0;
		}
		vfd_free(a); /* mappings were added meanwhile: again */
	}
}

static bool same(const struct mrun *a, const struct mrun *b)
{
	return a->iova == b->iova && a->len == b->len && a->va == b->va && a->prot == b->prot &&
	       a->rec == b->rec && a->gen == b->gen;
}

/* Copy @len bytes that devices may be writing meanwhile. */
static void copy_racy(void *dst, const void *src, size_t len)
{
	uint64_t *d = dst;
	const uint64_t *s = src;
	for (size_t i = 0; i < len / 8; i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/* Send [iova, iova + len) of mapping @m; skipped if @m is gone meanwhile. */
static int send_run(struct vfdma_migrate *mig, const struct mrun *m, uint64_t iova, uint64_t len)
{
	struct vfdma_domain *dom = mig->dom;
	while (len) {
		uint64_t n = len < CHUNK ? len : CHUNK;
		pthread_mutex_lock(&dom->lock);
		struct vfd_map *r = vfd_maptab_find_iova(dom, iova);
		bool alive = r == m->rec &&
			     __atomic_load_n(&r->word, __ATOMIC_RELAXED) >> VFD_MAPW_GEN_SHIFT == m->gen;
		if (alive)
			copy_racy(mig->bounce, (const void *)(m->va + (iova - m->iova)), n);
		pthread_mutex_unlock(&dom->lock);
		if (!alive)
			return 0; /* unmapped: the next round says so */
		int rc = mig->sink->data(mig->sink->ctx, iova, mig->bounce, n);
		if (rc)
			return rc;
		mig->st.records++;
		mig->st.total_bytes += n;
		*mig->acct += n;
		iova += n;
		len -= n;
	}
	return 0;
}

/* Tell the sink what changed since the last round; @cur[i].fresh marks new. */
static int announce(struct vfdma_migrate *mig, struct mrun *cur, size_t n)
{
	const struct vfdma_migrate_sink *s = mig->sink;
	size_t i = 0, j = 0;
	/* Unmaps first: a new mapping may reuse a gone one's IOVA. */
	while (j < mig->nr_sent) {
		while (i < n && cur[i].iova < mig->sent[j].iova)
			i++;
		if (i == n || !same(&cur[i], &mig->sent[j])) {
			int rc = s->unmap(s->ctx, mig->sent[j].iova, mig->sent[j].len);
			if (rc)
				return rc;
			mig->st.unmaps++;
			mig->st.records++;
		}
		j++;
	}
	for (i = 0, j = 0; i < n; i++) {
		while (j < mig->nr_sent && mig->sent[j].iova < cur[i].iova)
			j++;
		cur[i].fresh = !(j < mig->nr_sent && same(&cur[i], &mig->sent[j]));
		if (!cur[i].fresh)
			continue;
		int rc = s->map(s->ctx, cur[i].iova, cur[i].len, cur[i].prot);
		if (rc)
			return rc;
		mig->st.maps++;
		mig->st.records++;
	}
	return 0;
}

/*
 * Sync the log over the mappings cur[a..b) (their granule-rounded ranges
 * touch, so one window never clears a granule of a mapping outside them)
 * and send the dirty pages of the old ones.
 */
static int sync_cluster(struct vfdma_migrate *mig, const struct mrun *cur, size_t a, size_t b)
{
	const uint64_t g = mig->granule;
	uint64_t lo = cur[a].iova & ~(g - 1);
	uint64_t hi = ((cur[b - 1].iova + cur[b - 1].len - 1) | (g - 1)) + 1; /* 0: wrapped */
	size_t k = a;
	for (uint64_t w = lo; w != hi;) {
		uint64_t wl = hi - w < (uint64_t)WIN_GRANULES * g ? hi - w : (uint64_t)WIN_GRANULES * g;
		uint64_t ng = wl / g;
		memset(mig->bits, 0, ((ng + 63) / 64) * 8);
		int64_t got = vfdma_dirty_sync(mig->log, w, wl, mig->bits, 0);
		if (got < 0)
			return (int)got;
		for (uint64_t i = 0; got && i < ng;) {
			if (!(mig->bits[i / 64] & (1ull << (i % 64)))) {
				i++;
				continue;
			}
			uint64_t e = i;
			while (e < ng && (mig->bits[e / 64] & (1ull << (e % 64))))
				e++;
			uint64_t rs = w + i * g, re = w + e * g; /* dirty [rs, re) */
			while (k < b && cur[k].iova + cur[k].len <= rs)
				k++; /* runs come in IOVA order, and so do mappings */
			for (size_t m = k; m < b && cur[m].iova < re; m++) {
				uint64_t s = cur[m].iova > rs ? cur[m].iova : rs;
				uint64_t t = cur[m].iova + cur[m].len < re ? cur[m].iova + cur[m].len : re;
				if (s >= t || cur[m].fresh)
					continue;
				int rc = send_run(mig, &cur[m], s, t - s);
				if (rc)
					return rc;
			}
			i = e;
		}
		w += wl;
	}
	return 0;
}

/* One round; @all: send every mapping whole (round 0, FINAL_ALL). */
static int round_run(struct vfdma_migrate *mig, bool all)
{
	struct mrun *cur;
	size_t n;
	int rc = snapshot(mig->dom, &cur, &n);
	if (rc)
		return rc;
	rc = announce(mig, cur, n);
	for (size_t i = 0; all && i < n; i++)
		cur[i].fresh = true; /* sent whole below; no sync needed */
	const uint64_t g = mig->granule;
	for (size_t a = 0; a < n && !rc && !all;) {
		size_t b = a + 1;
		uint64_t end = ((cur[a].iova + cur[a].len - 1) | (g - 1));
		while (b < n && (cur[b].iova & ~(g - 1)) <= end + 1 && end + 1) {
			end = (cur[b].iova + cur[b].len - 1) | (g - 1);
			b++;
		}
		rc = sync_cluster(mig, cur, a, b);
		a = b;
	}
	for (size_t i = 0; i < n && !rc; i++)
		if (cur[i].fresh || all)
			rc = send_run(mig, &cur[i], cur[i].iova, cur[i].len);
	if (rc) {
		vfd_free(cur);
		return rc;
	}
	vfd_free(mig->sent);
	mig->sent = cur;
	mig->nr_sent = n;
	return 0;
}

static int check_opts(const struct vfdma_migrate_opts *o)
{
	if (o->max_rounds > VFDMA_MIGRATE_MAX_ROUNDS || (o->flags & ~VFDMA_MIGRATE_FINAL_ALL) ||
	    (o->dirty_flags & ~VFDMA_DIRTY_NO_SPLIT) ||
	    (o->granule && (o->granule & (o->granule - 1))))
		return -EINVAL;
	return 0;
}

static int save_locked(struct vfdma_migrate *mig, const struct vfdma_migrate_opts *o)
{
	struct vfdma_dirty_opts dopts = {.granule = mig->granule, .flags = o->dirty_flags};
	struct vfdma_dirty *log = vfdma_dirty_start(mig->dom, &dopts);
	if (!log)
		return -errno;
	__atomic_store_n(&mig->log, log, __ATOMIC_RELEASE); /* for vfdma_migrate_log() */
	int rc = 0;
	bool quiesced = false;
	uint64_t t0 = 0;
	mig->bounce = vfd_malloc(CHUNK);
	mig->bits = vfd_malloc(WIN_GRANULES / 8);
	if (!mig->bounce || !mig->bits)
		rc = -ENOMEM;
	/* Pre-copy: round 0 sends everything, then dirty rounds. */
	while (!rc && mig->st.rounds < o->max_rounds) {
		mig->acct = &mig->st.round_bytes[mig->st.rounds];
		rc = round_run(mig, false);
		if (rc)
			break;
		uint64_t sent = mig->st.round_bytes[mig->st.rounds++];
		if (mig->st.rounds > 1 && sent < o->threshold)
			break;
	}
	/* Stop and copy. */
	if (!rc) {
		t0 = vfd_now_ns();
		rc = mig->ops.quiesce ? mig->ops.quiesce(mig->ctx) : 0;
		quiesced = !rc;
	}
	if (!rc) {
		mig->acct = &mig->st.final_bytes;
		rc = round_run(mig, o->flags & VFDMA_MIGRATE_FINAL_ALL);
	}
	if (!rc && mig->ops.save) {
		__atomic_store_n(&mig->running, 2, __ATOMIC_RELEASE); /* put_state allowed */
		rc = mig->ops.save(mig->ctx, mig);
		__atomic_store_n(&mig->running, 1, __ATOMIC_RELEASE);
	}
	if (!rc && mig->sink->end)
		rc = mig->sink->end(mig->sink->ctx);
	if (!rc)
		mig->st.downtime_ns = vfd_now_ns() - t0;
	if (rc && quiesced && mig->ops.resume) {
		int r2 = mig->ops.resume(mig->ctx);
		if (r2)
			VFD_ERR("migration failed (%d) and the source did not resume (%d)", rc, r2);
	}
	__atomic_store_n(&mig->log, NULL, __ATOMIC_RELEASE);
	vfdma_dirty_stop(log);
	vfd_free(mig->bounce);
	vfd_free(mig->bits);
	vfd_free(mig->sent);
	mig->bounce = mig->bits = NULL;
	mig->sent = NULL;
	mig->nr_sent = 0;
	return rc;
}

int vfdma_migrate_save(struct vfdma_migrate *mig, const struct vfdma_migrate_sink *sink,
		       const struct vfdma_migrate_opts *opts, struct vfdma_migrate_stats *stats)
{
	struct vfdma_migrate_opts o = opts ? *opts : (struct vfdma_migrate_opts){0};
	if (!mig || !sink || !sink->map || !sink->unmap || !sink->data || !sink->state ||
	    check_opts(&o))
		return -EINVAL;
	if (!o.max_rounds)
		o.max_rounds = 16;
	if (!o.granule)
		o.granule = 4096;
	if (!o.threshold)
		o.threshold = 64 * o.granule;
	int idle = 0;
	if (!__atomic_compare_exchange_n(&mig->running, &idle, 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return -EBUSY;
	mig->sink = sink;
	mig->granule = o.granule;
	memset(&mig->st, 0, sizeof(mig->st));
	int rc = save_locked(mig, &o);
	if (stats)
		*stats = mig->st;
	mig->sink = NULL;
	__atomic_store_n(&mig->running, 0, __ATOMIC_RELEASE);
	return rc;
}

int vfdma_migrate_put_state(struct vfdma_migrate *mig, const void *buf, size_t len)
{
	if (!mig || (!buf && len) || __atomic_load_n(&mig->running, __ATOMIC_ACQUIRE) != 2)
		return -EINVAL;
	if (!len)
		return 0;
	int rc = mig->sink->state(mig->sink->ctx, buf, len);
	if (!rc) {
		mig->st.state_bytes += len;
		mig->st.records++;
	}
	return rc;
}

/* ---- The stream writer: a sink over an fd ---- */

struct fd_sink {
	int fd;
	uint64_t records;
};

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = vfd_write(fd, p, len);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int put_rec(struct fd_sink *f, uint32_t type, uint32_t prot, uint64_t iova, uint64_t len,
		   const void *payload)
{
	struct vfd_mig_rec r = {htole32(type), htole32(prot), htole64(iova), htole64(len)};
	int rc = write_all(f->fd, &r, sizeof(r));
	if (!rc && payload)
		rc = write_all(f->fd, payload, len);
	if (!rc)
		f->records++;
	return rc;
}

static int fd_map(void *ctx, uint64_t iova, uint64_t len, unsigned prot)
{
	return put_rec(ctx, VFDMA_MIGRATE_REC_MAP, prot, iova, len, NULL);
}

static int fd_unmap(void *ctx, uint64_t iova, uint64_t len)
{
	return put_rec(ctx, VFDMA_MIGRATE_REC_UNMAP, 0, iova, len, NULL);
}

static int fd_data(void *ctx, uint64_t iova, const void *data, uint64_t len)
{
	return put_rec(ctx, VFDMA_MIGRATE_REC_DATA, 0, iova, len, data);
}

static int fd_state(void *ctx, const void *buf, size_t len)
{
	return put_rec(ctx, VFDMA_MIGRATE_REC_STATE, 0, 0, len, buf);
}

static int fd_end(void *ctx)
{
	struct fd_sink *f = ctx;
	return put_rec(f, VFDMA_MIGRATE_REC_END, 0, f->records, 0, NULL);
}

int vfdma_migrate_save_fd(struct vfdma_migrate *mig, int fd,
			  const struct vfdma_migrate_opts *opts, struct vfdma_migrate_stats *stats)
{
	if (!mig || (opts && check_opts(opts)))
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	struct fd_sink f = {.fd = fd};
	struct vfdma_migrate_sink s = {fd_map, fd_unmap, fd_data, fd_state, fd_end, &f};
	struct vfd_mig_hdr h = {.version = htole32(VFDMA_MIGRATE_VERSION),
				.page_size = htole32((uint32_t)mig->dom->granule)};
	memcpy(h.magic, VFD_MIG_MAGIC, sizeof(h.magic));
	if (__atomic_load_n(&mig->running, __ATOMIC_ACQUIRE))
		return -EBUSY;
	int rc = write_all(fd, &h, sizeof(h));
	return rc ? rc : vfdma_migrate_save(mig, &s, opts, stats);
}
