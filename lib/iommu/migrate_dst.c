/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Migration, destination side (include/vfdma/migrate.h): records from a
 * sink or a stream become mappings at the source's IOVAs, filled with the
 * source's memory; at the end the driver restores its device state and
 * resumes.
 *
 * A destination is all or nothing: the first error undoes every mapping
 * it made and frees their memory, and it stays failed (later records get
 * the same error), so a half-migrated domain is never left behind.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "iommu/domain.h"
#include "iommu/migrate_stream.h"
#include "util/log.h"
#include "util/sys.h"
#include "vfdma/dma.h"
#include "vfdma/migrate.h"

#define M2 (2ull << 20)

struct dmap {
	uint64_t iova, len;
	void *va;
	unsigned prot;
};

struct vfdma_migrate_dst {
	struct vfdma_domain *dom;
	struct vfdma_migrate_ops ops;
	void *ctx;
	struct vfdma_migrate_mem mem;
	bool own_mem;

	struct dmap *maps; /* by IOVA */
	size_t n, cap;
	uint8_t *state;
	size_t state_len, state_cap;
	uint64_t data_bytes, state_bytes;
	bool used; /* a stream was read, or a sink handed out */
	bool done;
	int error;
};

struct vfdma_migrate_dst *vfdma_migrate_dst_create(struct vfdma_domain *dom,
						   const struct vfdma_migrate_ops *ops,
						   void *ctx,
						   const struct vfdma_migrate_mem *mem)
{
	if (!dom || (mem && (!mem->alloc || !mem->free))) {
		errno = EINVAL;
		return NULL;
	}
	struct vfdma_migrate_dst *dst = vfd_calloc(1, sizeof(*dst));
	if (!dst) {
		errno = ENOMEM;
		return NULL;
	}
	dst->dom = dom;
	if (ops)
		dst->ops = *ops;
	dst->ctx = ctx;
	dst->own_mem = !mem;
	if (mem)
		dst->mem = *mem;
	return dst;
}

/*
 * Anonymous memory for a mapping at @iova, aligned like the IOVA up to
 * 2 MiB, so the IOMMU can use large pages where the source could.
 */
static void *own_alloc(uint64_t iova, uint64_t len)
{
	uint64_t align = iova & (~iova + 1);
	if (!align || align > M2)
		align = M2;
	size_t span = len + align;
	void *p;
	if (span < len || vfd_mmap(&p, NULL, span, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0))
		return NULL;
	uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	size_t head = a - (uintptr_t)p, tail = span - head - len;
	/* A failed trim only leaves address space reserved: not an error. */
	if (head)
		vfd_munmap(p, head);
	if (tail)
		vfd_munmap((void *)(a + len), tail);
	return (void *)a;
}

static void mem_free(struct vfdma_migrate_dst *dst, struct dmap *m)
{
	if (dst->own_mem)
		vfd_munmap(m->va, m->len);
	else
		dst->mem.free(dst->mem.ctx, m->va, m->len);
}

/* Unmap and free everything; the first unmap error. */
static int release_all(struct vfdma_migrate_dst *dst)
{
	int first = 0;
	for (size_t i = dst->n; i-- > 0;) {
		int rc = vfdma_unmap(dst->dom, dst->maps[i].iova, dst->maps[i].len);
		if (rc && !first)
			first = rc;
		mem_free(dst, &dst->maps[i]);
	}
	dst->n = 0;
	vfd_free(dst->state);
	dst->state = NULL;
	dst->state_len = dst->state_cap = 0;
	return first;
}

static int fail(struct vfdma_migrate_dst *dst, int rc)
{
	if (!dst->error) {
		release_all(dst);
		dst->error = rc;
		VFD_DBG("migration destination failed: %d", rc);
	}
	return dst->error;
}

/* Can a record be taken now? */
static int open_for_records(const struct vfdma_migrate_dst *dst)
{
	return dst->error ? dst->error : dst->done ? -EBADMSG : 0;
}

/* The index of the first mapping that ends after @iova. */
static size_t lower(const struct vfdma_migrate_dst *dst, uint64_t iova)
{
	size_t lo = 0, hi = dst->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (dst->maps[mid].iova + dst->maps[mid].len <= iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The mapping holding all of [iova, iova + len), or NULL. */
static struct dmap *holder(struct vfdma_migrate_dst *dst, uint64_t iova, uint64_t len)
{
	size_t i = lower(dst, iova);
	if (i == dst->n || !len || iova + len < iova)
		return NULL;
	struct dmap *m = &dst->maps[i];
	return m->iova <= iova && iova + len <= m->iova + m->len ? m : NULL;
}

static int dst_map(void *ctx, uint64_t iova, uint64_t len, unsigned prot)
{
	struct vfdma_migrate_dst *dst = ctx;
	int rc = open_for_records(dst);
	if (rc)
		return rc;
	uint64_t g = dst->dom->granule;
	if (!len || ((iova | len) & (g - 1)) || iova + len < iova || !prot ||
	    (prot & ~VFDMA_PROT_RW))
		return fail(dst, -EBADMSG);
	size_t i = lower(dst, iova);
	if (i < dst->n && dst->maps[i].iova < iova + len)
		return fail(dst, -EBADMSG); /* overlaps one the stream made */
	if (dst->n == dst->cap) {
		size_t cap = dst->cap ? 2 * dst->cap : 16;
		struct dmap *a = vfd_realloc(dst->maps, cap * sizeof(*a));
		if (!a)
			return fail(dst, -ENOMEM);
		dst->maps = a;
		dst->cap = cap;
	}
	void *va = dst->own_mem ? own_alloc(iova, len)
				: dst->mem.alloc(dst->mem.ctx, iova, len, prot);
	if (!va)
		return fail(dst, -ENOMEM);
	struct dmap m = {iova, len, va, prot};
	uint64_t at = iova;
	rc = vfdma_map(dst->dom, va, len, prot, VFDMA_MAP_FIXED, &at);
	if (rc) {
		mem_free(dst, &m);
		return fail(dst, rc);
	}
	memmove(&dst->maps[i + 1], &dst->maps[i], (dst->n - i) * sizeof(m));
	dst->maps[i] = m;
	dst->n++;
	return 0;
}

static int dst_unmap(void *ctx, uint64_t iova, uint64_t len)
{
	struct vfdma_migrate_dst *dst = ctx;
	int rc = open_for_records(dst);
	if (rc)
		return rc;
	struct dmap *m = holder(dst, iova, len);
	if (!m || m->iova != iova || m->len != len)
		return fail(dst, -EBADMSG);
	rc = vfdma_unmap(dst->dom, iova, len);
	if (rc)
		return fail(dst, rc);
	mem_free(dst, m);
	size_t i = (size_t)(m - dst->maps);
	memmove(m, m + 1, (dst->n - i - 1) * sizeof(*m));
	dst->n--;
	return 0;
}

static int dst_data(void *ctx, uint64_t iova, const void *data, uint64_t len)
{
	struct vfdma_migrate_dst *dst = ctx;
	int rc = open_for_records(dst);
	if (rc)
		return rc;
	struct dmap *m = holder(dst, iova, len);
	if (!m || !data)
		return fail(dst, -EBADMSG);
	memcpy((char *)m->va + (iova - m->iova), data, len);
	dst->data_bytes += len;
	return 0;
}

/* Room for @len more bytes of device state. */
static int state_room(struct vfdma_migrate_dst *dst, uint64_t len)
{
	if (len > VFD_MIG_STATE_MAX - dst->state_len)
		return -EBADMSG;
	size_t need = dst->state_len + len;
	if (need <= dst->state_cap)
		return 0;
	size_t cap = dst->state_cap ? dst->state_cap : 4096;
	while (cap < need)
		cap *= 2;
	uint8_t *p = vfd_realloc(dst->state, cap);
	if (!p)
		return -ENOMEM;
	dst->state = p;
	dst->state_cap = cap;
	return 0;
}

static int dst_state(void *ctx, const void *buf, size_t len)
{
	struct vfdma_migrate_dst *dst = ctx;
	int rc = open_for_records(dst);
	if (rc)
		return rc;
	if (!buf && len)
		return fail(dst, -EBADMSG);
	rc = state_room(dst, len);
	if (rc)
		return fail(dst, rc);
	memcpy(dst->state + dst->state_len, buf, len);
	dst->state_len += len;
	dst->state_bytes += len;
	return 0;
}

static int dst_end(void *ctx)
{
	struct vfdma_migrate_dst *dst = ctx;
	int rc = open_for_records(dst);
	if (rc)
		return rc;
	if (dst->ops.restore) {
		rc = dst->ops.restore(dst->ctx, dst->state, dst->state_len);
		if (rc)
			return fail(dst, rc);
	}
	if (dst->ops.resume) {
		rc = dst->ops.resume(dst->ctx);
		if (rc)
			return fail(dst, rc);
	}
	vfd_free(dst->state);
	dst->state = NULL;
	dst->state_len = dst->state_cap = 0;
	dst->done = true;
	return 0;
}

int vfdma_migrate_dst_sink(struct vfdma_migrate_dst *dst, struct vfdma_migrate_sink *sink)
{
	if (!dst || !sink)
		return -EINVAL;
	*sink = (struct vfdma_migrate_sink){dst_map, dst_unmap, dst_data, dst_state, dst_end, dst};
	dst->used = true;
	return 0;
}

/* Read exactly @len bytes; the end of the stream is -EBADMSG. */
static int read_all(int fd, void *buf, uint64_t len)
{
	char *p = buf;
	while (len) {
		ssize_t n = vfd_read(fd, p, len < (1u << 30) ? len : (1u << 30));
		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EBADMSG;
		p += n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* DATA and STATE payloads are read straight into place. */
static int read_payload(struct vfdma_migrate_dst *dst, int fd, const struct vfd_mig_rec *r)
{
	int rc;
	if (r->type == VFDMA_MIGRATE_REC_DATA) {
		struct dmap *m = holder(dst, r->iova, r->len);
		if (!m)
			return -EBADMSG;
		rc = read_all(fd, (char *)m->va + (r->iova - m->iova), r->len);
		if (!rc)
			dst->data_bytes += r->len;
		return rc;
	}
	rc = state_room(dst, r->len);
	if (!rc)
		rc = read_all(fd, dst->state + dst->state_len, r->len);
	if (!rc) {
		dst->state_len += r->len;
		dst->state_bytes += r->len;
	}
	return rc;
}

static int read_stream(struct vfdma_migrate_dst *dst, int fd)
{
	struct vfd_mig_hdr h;
	int rc = read_all(fd, &h, sizeof(h));
	if (rc)
		return rc;
	if (memcmp(h.magic, VFD_MIG_MAGIC, sizeof(h.magic)) ||
	    le32toh(h.version) != VFDMA_MIGRATE_VERSION)
		return -EBADMSG;
	for (uint64_t records = 0;; records++) {
		struct vfd_mig_rec r;
		rc = read_all(fd, &r, sizeof(r));
		if (rc)
			return rc;
		r = (struct vfd_mig_rec){le32toh(r.type), le32toh(r.prot), le64toh(r.iova),
					 le64toh(r.len)};
		switch (r.type) {
		case VFDMA_MIGRATE_REC_MAP:
			rc = dst_map(dst, r.iova, r.len, r.prot);
			break;
		case VFDMA_MIGRATE_REC_UNMAP:
			rc = dst_unmap(dst, r.iova, r.len);
			break;
		case VFDMA_MIGRATE_REC_DATA:
		case VFDMA_MIGRATE_REC_STATE:
			if (!r.len || (r.type == VFDMA_MIGRATE_REC_STATE && r.iova))
				return -EBADMSG;
			rc = read_payload(dst, fd, &r);
			break;
		case VFDMA_MIGRATE_REC_END:
			if (r.iova != records || r.len)
				return -EBADMSG;
			return dst_end(dst);
		default:
			return -EBADMSG;
		}
		if (rc)
			return rc;
	}
}

int vfdma_migrate_restore_fd(struct vfdma_migrate_dst *dst, int fd)
{
	if (!dst || dst->used)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	dst->used = true;
	int rc = read_stream(dst, fd);
	return rc ? fail(dst, rc) : 0;
}

int vfdma_migrate_dst_get_info(struct vfdma_migrate_dst *dst,
			       struct vfdma_migrate_dst_info *info)
{
	if (!dst || !info)
		return -EINVAL;
	uint64_t bytes = 0;
	for (size_t i = 0; i < dst->n; i++)
		bytes += dst->maps[i].len;
	*info = (struct vfdma_migrate_dst_info){
		.mappings = dst->n,
		.bytes = bytes,
		.data_bytes = dst->data_bytes,
		.state_bytes = dst->state_bytes,
		.done = dst->done,
		.error = dst->error,
	};
	return 0;
}

int vfdma_migrate_dst_destroy(struct vfdma_migrate_dst *dst)
{
	if (!dst)
		return 0;
	int rc = release_all(dst);
	vfd_free(dst->maps);
	vfd_free(dst);
	return rc;
}
