/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The type1 backend: a VFIO container (/dev/vfio/vfio) per domain with the
 * devices' IOMMU groups in it, VFIO_TYPE1v2_IOMMU.
 *
 * The IOMMU exists only while a group is in the container, so the backend
 * is not ready before the first device: the core records maps meanwhile and
 * replays them when the first attach sets be_ready.  When the last group
 * leaves, the kernel drops the IOMMU with every mapping; be_ready goes back
 * to false and the core's table survives for the next attach.
 *
 * The kernel limits the number of mappings (vfio_dma entries) per container
 * (module parameter vfio_iommu_type1.dma_entry_limit, 65535 by default;
 * the DMA_AVAIL capability says how many are left).  The core coalesces
 * batches into as few runs as it can; past the limit MAP_DMA fails with
 * -ENOSPC, which we pass on (the core rolls the call back), with one log
 * line naming the limit.
 *
 * type1 cannot list its mappings, so probe tries to map one page at each
 * end of the range: EEXIST means something is mapped there (which vaddr
 * and permissions it has, type1 cannot tell).  A probe map that succeeds
 * is unmapped at once; it only ever targets IOVAs the core's table says
 * are mapped to that very memory, so it exposes nothing new.
 *
 * Dirty tracking is VFIO_IOMMU_DIRTY_PAGES, offered when GET_INFO carries
 * the migration capability (see the section below).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/vfio.h>

#include "iommu/domain.h"
#include "iommu/maptab.h"
#include "iommu/vfio.h"
#include "util/log.h"
#include "util/sys.h"

struct type1_be {
	struct vfd_container c;
	uint32_t dma_avail; /* from the last GET_INFO; UINT32_MAX if not reported */
	/* The migration capability of the last GET_INFO: dirty page size, 0 if none. */
	uint64_t dirty_pgsize;
	uint64_t dirty_max_bitmap; /* bytes of bitmap one call may ask for */
	bool tracking;		   /* a dirty log runs (START issued; op_lock exclusive) */
};

static int dirty_ctl(struct type1_be *t, uint32_t flags);

static struct type1_be *type1_of(struct vfdma_domain *dom)
{
	return dom->be;
}

/*
 * Before the first group the kernel cannot tell the ranges, and the core
 * only ever narrows them (an attach intersects), while the allocator hands
 * out IOVAs from the top.  So start with the narrowest aperture in common
 * use, 39 bits (VT-d with 3-level tables, QEMU's emulated VT-d), less the
 * x86 MSI window: maps made before the first attach then stay inside any
 * real aperture.  Same choice as the iommufd backend.
 */
#define NODEV_IOVA_BITS 39
static const struct vfdma_iova_range initial_ranges[] = {
#if defined(__x86_64__) || defined(__i386__)
	{0, 0xfedfffffull},
	{0xfef00000ull, (1ull << NODEV_IOVA_BITS) - 1},
#else
	{0, (1ull << NODEV_IOVA_BITS) - 1},
#endif
};

static int type1_open(struct vfdma_domain *dom)
{
	dom->dirty_caps = 0; /* until an attach's GET_INFO offers it */
	struct type1_be *t = vfd_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	int rc = vfd_container_open(&t->c, VFIO_TYPE1v2_IOMMU, "");
	if (!rc)
		rc = vfd_domain_set_ranges(dom, initial_ranges,
					   sizeof(initial_ranges) / sizeof(initial_ranges[0]));
	if (rc) {
		vfd_container_close(&t->c);
		vfd_free(t);
		return rc;
	}
	t->dma_avail = UINT32_MAX;
	dom->be = t;
	/* Every size from 4 KiB up, until the kernel says which. */
	dom->pgsizes = ~0xfffull;
	dom->be_ready = false;
	return 0;
}

static void type1_close(struct vfdma_domain *dom)
{
	struct type1_be *t = type1_of(dom);
	vfd_container_close(&t->c);
	vfd_free(t);
	dom->be = NULL;
}

static int type1_attach(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	struct type1_be *t = type1_of(dom);
	int rc = vfd_container_attach(&t->c, dev);
	if (!rc && t->tracking && !dom->be_ready) {
		/* A fresh IOMMU under a running log (all devices had left): track again. */
		rc = dirty_ctl(t, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
		if (rc)
			vfd_container_detach(&t->c, dev);
	}
	if (!rc)
		dom->be_ready = true;
	return rc;
}

static void type1_detach(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	if (!vfd_container_detach(&type1_of(dom)->c, dev)) {
		dom->be_ready = false;
		__atomic_store_n(&dom->dirty_caps, 0u, __ATOMIC_RELAXED); /* no IOMMU, no log */
	}
}

/* VFIO_IOMMU_GET_INFO with its capability chain, in a buffer of ours. */
static int get_info(struct type1_be *t, struct vfio_iommu_type1_info **out)
{
	uint32_t argsz = sizeof(struct vfio_iommu_type1_info);
	for (int tries = 0; tries < 4; tries++) {
		struct vfio_iommu_type1_info *info = vfd_calloc(1, argsz);
		if (!info)
			return -ENOMEM;
		info->argsz = argsz;
		int rc = vfd_ioctl(t->c.fd, VFIO_IOMMU_GET_INFO, info);
		if (rc) {
			vfd_free(info);
			return rc;
		}
		if (info->argsz <= argsz) {
			*out = info;
			return 0;
		}
		argsz = info->argsz; /* the capabilities need more room */
		vfd_free(info);
	}
	return -EIO;
}

static int type1_query(struct vfdma_domain *dom, struct vfdma_iova_range **ranges, size_t *n,
		       uint64_t *pgsizes)
{
	struct type1_be *t = type1_of(dom);
	struct vfio_iommu_type1_info *info;
	int rc = get_info(t, &info);
	if (rc)
		return rc;
	*pgsizes = info->flags & VFIO_IOMMU_INFO_PGSIZES ? info->iova_pgsizes : ~0xfffull;
	const struct vfio_iova_range *kr = NULL;
	uint32_t nk = 0;
	t->dma_avail = UINT32_MAX;
	t->dirty_pgsize = 0;
	if (info->flags & VFIO_IOMMU_INFO_CAPS) {
		uint32_t off = info->cap_offset;
		/* Each header's next is an offset from the start of info. */
		for (int guard = 0; off && off + sizeof(struct vfio_info_cap_header) <= info->argsz &&
				    guard < 64;
		     guard++) {
			struct vfio_info_cap_header *h = (void *)((char *)info + off);
			if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
				struct vfio_iommu_type1_info_cap_iova_range *r = (void *)h;
				if (off + sizeof(*r) + (uint64_t)r->nr_iovas * sizeof(r->iova_ranges[0]) <=
				    info->argsz) {
					kr = r->iova_ranges;
					nk = r->nr_iovas;
				}
			} else if (h->id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
				t->dma_avail = ((struct vfio_iommu_type1_info_dma_avail *)h)->avail;
			} else if (h->id == VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION &&
				   off + sizeof(struct vfio_iommu_type1_info_cap_migration) <=
					   info->argsz) {
				struct vfio_iommu_type1_info_cap_migration *mg = (void *)h;
				/* The kernel logs at its smallest page only. */
				t->dirty_pgsize = mg->pgsize_bitmap & -mg->pgsize_bitmap;
				t->dirty_max_bitmap = mg->max_dirty_bitmap_size;
			}
			off = h->next;
		}
	}
	size_t cnt = kr ? nk : 1;
	struct vfdma_iova_range *r = vfd_calloc(cnt ? cnt : 1, sizeof(*r));
	if (!r) {
		vfd_free(info);
		return -ENOMEM;
	}
	if (kr) {
		for (uint32_t i = 0; i < nk; i++)
			r[i] = (struct vfdma_iova_range){kr[i].start, kr[i].end};
	} else {
		r[0] = (struct vfdma_iova_range){0, UINT64_MAX}; /* kernels before 5.4 */
	}
	/* Dirty bits must be one per domain page: the sync code counts in those. */
	bool dirty = t->dirty_pgsize && t->dirty_pgsize == dom->granule && t->dirty_max_bitmap;
	__atomic_store_n(&dom->dirty_caps, dirty ? VFDMA_DIRTY_CAP_TYPE1 : 0u, __ATOMIC_RELAXED);
	VFD_DBG("type1: %zu usable ranges, page sizes 0x%llx, %u mappings left, dirty pages %llu",
		cnt, (unsigned long long)*pgsizes, t->dma_avail,
		(unsigned long long)t->dirty_pgsize);
	vfd_free(info);
	*ranges = r;
	*n = cnt;
	return 0;
}

static int dma_map(struct type1_be *t, uint64_t iova, void *vaddr, uint64_t len,
		   unsigned int prot)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = (prot & VFDMA_PROT_READ ? VFIO_DMA_MAP_FLAG_READ : 0) |
			 (prot & VFDMA_PROT_WRITE ? VFIO_DMA_MAP_FLAG_WRITE : 0),
		.vaddr = (uintptr_t)vaddr,
		.iova = iova,
		.size = len,
	};
	return vfd_ioctl(t->c.fd, VFIO_IOMMU_MAP_DMA, &m);
}

static int64_t dma_unmap(struct type1_be *t, uint64_t iova, uint64_t len)
{
	struct vfio_iommu_type1_dma_unmap u = {.argsz = sizeof(u), .iova = iova, .size = len};
	int rc = vfd_ioctl(t->c.fd, VFIO_IOMMU_UNMAP_DMA, &u);
	return rc ? rc : (int64_t)u.size;
}

static int type1_map(struct vfdma_domain *dom, uint64_t iova, void *vaddr, uint64_t len,
		     unsigned int prot)
{
	int rc = dma_map(type1_of(dom), iova, vaddr, len, prot);
	if (rc == -ENOSPC)
		VFD_LOG_ONCE(VFDMA_LOG_ERROR,
			     "type1: the container's mapping limit is reached "
			     "(vfio_iommu_type1.dma_entry_limit); map larger runs or raise it");
	return rc == -EEXIST ? -EBUSY : rc;
}

static int64_t unmap_keep_dirty(struct vfdma_domain *dom, uint64_t iova, uint64_t len);

static int64_t type1_unmap(struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	struct type1_be *t = type1_of(dom);
	return t->tracking ? unmap_keep_dirty(dom, iova, len) : dma_unmap(t, iova, len);
}

/* 1: something is mapped at the page @iova; 0: nothing; negative errno. */
static int probe_page(struct type1_be *t, uint64_t iova, void *vaddr, unsigned int prot)
{
	int rc = dma_map(t, iova, vaddr, 4096, prot);
	if (rc == -EEXIST)
		return 1;
	if (rc == -ENOSPC)
		return 0; /* the kernel checks overlaps first: nothing there */
	if (rc)
		return rc;
	int64_t got = dma_unmap(t, iova, 4096);
	return got == 4096 ? 0 : got < 0 ? (int)got : -EIO;
}

static int type1_probe(struct vfdma_domain *dom, uint64_t iova, uint64_t len, void *vaddr,
		       unsigned int prot)
{
	struct type1_be *t = type1_of(dom);
	int rc = probe_page(t, iova, vaddr, prot);
	if (rc == 1 && len > 4096)
		rc = probe_page(t, iova + len - 4096, (char *)vaddr + len - 4096, prot);
	return rc;
}

/*
 * ---- Dirty tracking: VFIO_IOMMU_DIRTY_PAGES ----
 *
 * START makes the kernel keep a bitmap per vfio_dma (kernel mapping) at its
 * smallest page, which must be the domain's granule; GET_BITMAP copies and
 * clears it; UNMAP_DMA with GET_DIRTY_BITMAP hands over the bits of what it
 * unmaps in the same call, which go to the log's software bits (so the
 * core's harvest before an unmap is not needed: dirty_unmap_keeps).
 *
 * GET_BITMAP only takes ranges made of whole vfio_dma entries.  Each of the
 * core's mapping records is one MAP_DMA, so a read asks for the records
 * overlapping the range (in the table, and queued for a deferred unmap:
 * still mapped in the kernel), adjacent ones joined.  Bits it read outside
 * the range, and with a PEEK read all of them (GET_BITMAP always clears),
 * are kept in the log's software bits for the next sync.
 *
 * vfio-pci pins no pages, so the kernel cannot know what the device wrote:
 * it reports every page of every mapping dirty on every read.  Correct (no
 * write is lost), but a migration copies all DMA memory every round.
 */

static int dirty_ctl(struct type1_be *t, uint32_t flags)
{
	struct vfio_iommu_type1_dirty_bitmap d = {.argsz = sizeof(d), .flags = flags};
	return vfd_ioctl(t->c.fd, VFIO_IOMMU_DIRTY_PAGES, &d);
}

static int type1_dirty_start(struct vfdma_domain *dom, bool split)
{
	(void)split; /* the kernel logs at its smallest page whatever the mapping */
	struct type1_be *t = type1_of(dom);
	if (!t->dirty_pgsize || !dom->be_ready)
		return -ENOTSUP;
	int rc = dirty_ctl(t, VFIO_IOMMU_DIRTY_PAGES_FLAG_START);
	if (!rc)
		t->tracking = true;
	return rc;
}

static void type1_dirty_stop(struct vfdma_domain *dom, bool split)
{
	(void)split;
	struct type1_be *t = type1_of(dom);
	int rc = dom->be_ready ? dirty_ctl(t, VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) : 0;
	if (rc)
		VFD_WARN("type1: stopping dirty page tracking failed: %s", strerror(-rc));
	t->tracking = false;
}

static uint64_t bitmap_bytes(uint64_t pages)
{
	return (pages + 63) / 64 * 8;
}

static int64_t unmap_keep_dirty(struct vfdma_domain *dom, uint64_t iova, uint64_t len)
{
	struct type1_be *t = type1_of(dom);
	unsigned shift = (unsigned)__builtin_ctzll(dom->granule);
	uint64_t pages = len >> shift, bytes = bitmap_bytes(pages);
	uint64_t *bits = bytes <= t->dirty_max_bitmap ? vfd_calloc(bytes / 8, 8) : NULL;
	if (!bits) {
		/* No bitmap: count every page as written, which loses nothing. */
		vfd_dirty_keep(dom, iova, pages, NULL);
		return dma_unmap(t, iova, len);
	}
	struct vfio_iommu_type1_dma_unmap u = {
		.argsz = sizeof(u) + sizeof(struct vfio_bitmap),
		.flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
		.iova = iova,
		.size = len,
	};
	struct vfio_bitmap b = {.pgsize = dom->granule, .size = bytes, .data = (void *)bits};
	uint64_t req[(sizeof(u) + sizeof(b) + 7) / 8];
	memcpy(req, &u, sizeof(u));
	memcpy((char *)req + sizeof(u), &b, sizeof(b));
	int rc = vfd_ioctl(t->c.fd, VFIO_IOMMU_UNMAP_DMA, req);
	if (!rc) {
		memcpy(&u, req, sizeof(u)); /* the kernel wrote back the size it unmapped */
		vfd_dirty_keep(dom, iova, pages, bits);
	}
	vfd_free(bits);
	return rc ? rc : (int64_t)u.size;
}

struct span {
	uint64_t iova, len;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

/* The kernel mappings overlapping [iova, iova + len), by IOVA. */
static int spans_collect(struct vfdma_domain *dom, uint64_t iova, uint64_t len,
			 struct span **out, size_t *n)
{
	size_t cap = 16, cnt = 0;
	struct span *v = vfd_calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	uint64_t last = iova + len - 1;
	int rc = 0;
	pthread_mutex_lock(&dom->lock);
	struct vfd_map *m = vfd_maptab_from(dom, iova), *q = dom->defer_head;
	while (!rc) {
		const struct vfd_map *x;
		if (m && m->iova <= last) {
			x = m;
			m = vfd_maptab_next(dom, m);
		} else if (q) {
			x = q;
			q = q->next;
			if (x->iova > last || x->iova + x->len - 1 < iova)
				continue;
		} else {
			break;
		}
		if (cnt == cap) {
			struct span *w = vfd_realloc(v, 2 * cap * sizeof(*v));
			if (!w) {
				rc = -ENOMEM;
				break;
			}
			v = w;
			cap *= 2;
		}
		v[cnt++] = (struct span){x->iova, x->len};
	}
	pthread_mutex_unlock(&dom->lock);
	if (rc) {
		vfd_free(v);
		return rc;
	}
	qsort(v, cnt, sizeof(*v), cmp_span);
	*out = v;
	*n = cnt;
	return 0;
}

/*
 * GET_BITMAP of the whole kernel mappings [base, base + glen); OR the pages
 * inside [iova, iova + len) into @bitmap (bit 0: iova) and keep the others
 * (all of them unless @clear).  Returns the pages reported.
 */
static int64_t read_group(struct vfdma_domain *dom, uint64_t base, uint64_t glen, uint64_t iova,
			  uint64_t len, uint64_t *bitmap, bool clear)
{
	struct type1_be *t = type1_of(dom);
	unsigned shift = (unsigned)__builtin_ctzll(dom->granule);
	uint64_t pages = glen >> shift, bytes = bitmap_bytes(pages);
	uint64_t lo = base > iova ? base : iova;
	uint64_t hi = base + glen < iova + len ? base + glen : iova + len;
	if (bytes > t->dirty_max_bitmap) {
		/* One mapping larger than the kernel reads at once: all dirty, loses nothing. */
		for (uint64_t a = lo; a < hi; a += dom->granule) {
			uint64_t i = (a - iova) >> shift;
			bitmap[i / 64] |= 1ull << (i % 64);
		}
		return (int64_t)((hi - lo) >> shift);
	}
	uint64_t *bits = vfd_calloc(bytes / 8, 8);
	if (!bits)
		return -ENOMEM;
	struct vfio_iommu_type1_dirty_bitmap d = {
		.argsz = sizeof(d) + sizeof(struct vfio_iommu_type1_dirty_bitmap_get),
		.flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
	};
	struct vfio_iommu_type1_dirty_bitmap_get g = {
		.iova = base,
		.size = glen,
		.bitmap = {.pgsize = dom->granule, .size = bytes, .data = (void *)bits},
	};
	uint64_t req[(sizeof(d) + sizeof(g) + 7) / 8];
	memcpy(req, &d, sizeof(d));
	memcpy((char *)req + sizeof(d), &g, sizeof(g));
	int rc = vfd_ioctl(t->c.fd, VFIO_IOMMU_DIRTY_PAGES, req);
	if (rc) {
		vfd_free(bits);
		return rc;
	}
	int64_t seen = 0;
	bool left = false;
	for (uint64_t w = 0; w < bytes / 8; w++) {
		for (uint64_t word = bits[w]; word; word &= word - 1) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(word);
			uint64_t a = base + (p << shift);
			if (p >= pages)
				break;
			if (a < lo || a >= hi) {
				left = true;
				continue;
			}
			uint64_t i = (a - iova) >> shift;
			bitmap[i / 64] |= 1ull << (i % 64);
			seen++;
			if (clear)
				bits[w] &= ~(1ull << (p % 64));
			else
				left = true;
		}
	}
	if (left)
		vfd_dirty_keep(dom, base, pages, bits);
	vfd_free(bits);
	return seen;
}

static int64_t type1_dirty_read(struct vfdma_domain *dom, uint64_t iova, uint64_t len,
				uint64_t *bitmap, bool clear)
{
	struct type1_be *t = type1_of(dom);
	if (!dom->be_ready)
		return 0; /* no IOMMU: nothing is mapped in the kernel */
	unsigned shift = (unsigned)__builtin_ctzll(dom->granule);
	for (int tries = 0;; tries++) {
		struct span *v;
		size_t n;
		int rc = spans_collect(dom, iova, len, &v, &n);
		if (rc)
			return rc;
		int64_t seen = 0;
		for (size_t i = 0; i < n && !rc;) {
			/* Join adjacent mappings while the bitmap stays within the kernel's limit. */
			size_t j = i + 1;
			uint64_t end = v[i].iova + v[i].len;
			while (j < n && v[j].iova == end &&
			       bitmap_bytes((end + v[j].len - v[i].iova) >> shift) <= t->dirty_max_bitmap)
				end += v[j++].len;
			int64_t got = read_group(dom, v[i].iova, end - v[i].iova, iova, len, bitmap, clear);
			if (got < 0)
				rc = (int)got;
			else
				seen += got;
			i = j;
		}
		vfd_free(v);
		/*
		 * -EINVAL: a mapping of the list was unmapped meanwhile (its bits
		 * went to the log with the unmap) and another now cuts the range:
		 * ask the table again.
		 */
		if (rc != -EINVAL || tries == 3)
			return rc ? rc : seen;
	}
}

const struct vfd_backend_ops vfd_type1_ops = {
	.name = "type1",
	.kind = VFDMA_BACKEND_TYPE1,
	.dirty_caps = VFDMA_DIRTY_CAP_TYPE1, /* when GET_INFO has the migration capability */
	.dirty_unmap_keeps = true,
	.open = type1_open,
	.close = type1_close,
	.device_attach = type1_attach,
	.device_detach = type1_detach,
	.query = type1_query,
	.map = type1_map,
	.unmap = type1_unmap,
	.probe = type1_probe,
	.dirty_start = type1_dirty_start,
	.dirty_stop = type1_dirty_stop,
	.dirty_read = type1_dirty_read,
};
