/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Hardware dirty tracking on iommufd: dirty-tracking HWPTs and block split.
 *
 * Start: every attached device's IOMMU must track dirty pages (else
 * -ENOTSUP).  Each device gets a HWPT allocated with
 * IOMMU_HWPT_ALLOC_DIRTY_TRACKING, tracking switched on, and the device is
 * then moved onto it with an attach-replace (atomic: its DMA never sees a
 * hole), so every write after the replace is recorded.
 *
 * Split: iommufd maps with the largest page the IOMMU has, and a block
 * (2 MiB, 1 GiB) has one dirty bit.  Splitting the live page table is not
 * something iommufd offers, so the HWPTs are made on a second IOAS instead:
 * huge pages switched off (IOMMU_OPTION_HUGE_PAGES = 0, before anything is
 * in it), the domain's fence, and every mapping copied in with IOAS_COPY
 * at the same IOVA (the pinned pages are shared, not pinned again).  Until
 * stop, map and unmap go to both IOASes (be_iommufd.c), so stopping is a
 * replace back to the domain's IOAS, whose page table still has its
 * blocks, and the split IOAS is destroyed.  op_lock exclusive around start
 * and stop serialises all of this against map and unmap.
 *
 * Teardown is idempotent and ordered (devices back first, then HWPTs, then
 * the split IOAS), so a failure at any step of start or stop leaves a
 * consistent domain: a device that could not be moved back keeps using
 * its HWPT and the split IOAS, which stay mirrored, and the next start,
 * attach or close tries again.
 */
#include <errno.h>
#include <string.h>

#include "iommu/iommufd_be.h"
#include "iommu/maptab.h"
#include "iommu/uapi_iommufd.h"
#include "util/log.h"
#include "util/sys.h"
#include "vfdma/dirty.h"

static struct iommufd_be *be_of(struct vfdma_domain *dom)
{
	return dom->be;
}

unsigned int vfd_iommufd_dirty_caps(struct vfdma_domain *dom)
{
	if (!dom->be || !dom->devices)
		return 0;
	for (struct vfdma_device *dev = dom->devices; dev; dev = dev->next) {
		const struct iommufd_dev *d = dev->be;
		if (!d || !d->hw_dirty)
			return 0;
	}
	return VFDMA_DIRTY_CAP_HW | VFDMA_DIRTY_CAP_SPLIT;
}

/* The domain's devices (op_lock held: the list cannot change). */
static int snapshot_devices(struct vfdma_domain *dom, struct vfdma_device ***out, unsigned *n)
{
	pthread_mutex_lock(&dom->lock);
	unsigned k = dom->nr_devices;
	struct vfdma_device **v = vfd_calloc(k ? k : 1, sizeof(*v));
	if (v) {
		k = 0;
		for (struct vfdma_device *dev = dom->devices; dev; dev = dev->next)
			v[k++] = dev;
	}
	pthread_mutex_unlock(&dom->lock);
	if (!v)
		return -ENOMEM;
	*out = v;
	*n = k;
	return 0;
}

static int set_tracking(struct iommufd_be *b, uint32_t hwpt, bool on)
{
	struct iommu_hwpt_set_dirty_tracking cmd = {
		.size = sizeof(cmd),
		.flags = on ? VFD_IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0,
		.hwpt_id = hwpt,
	};
	return vfd_ioctl(b->fd, IOMMU_HWPT_SET_DIRTY_TRACKING, &cmd);
}

int vfd_iommufd_dirty_teardown(struct vfdma_domain *dom)
{
	struct iommufd_be *b = be_of(dom);
	if (!b || (!b->nr_hwpts && !b->split_id && !b->dead_split))
		return 0;
	b->tracking = false;
	/* Tracking off first (best effort: destroying the HWPT stops it too). */
	for (unsigned i = 0; i < b->nr_hwpts; i++)
		set_tracking(b, b->hwpts[i], false);
	struct vfdma_device **devs;
	unsigned n;
	int rc = snapshot_devices(dom, &devs, &n);
	if (rc)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		struct iommufd_dev *d = devs[i]->be;
		if (d && d->pt_id != b->ioas_id) {
			int r = vfd_iommufd_replace(b, devs[i], b->ioas_id);
			if (r && !rc)
				rc = r;
		}
	}
	vfd_free(devs);
	if (rc)
		return rc; /* a device still uses them: keep everything mirrored */
	/* No device uses the HWPTs or the split IOAS any more. */
	if (b->split_id) {
		b->dead_split = b->split_id;
		b->split_id = 0; /* map and unmap stop mirroring */
	}
	unsigned keep = 0;
	for (unsigned i = 0; i < b->nr_hwpts; i++) {
		int r = vfd_iommufd_destroy(b, b->hwpts[i]);
		if (r) {
			b->hwpts[keep++] = b->hwpts[i];
			if (!rc)
				rc = r;
		}
	}
	b->nr_hwpts = keep;
	if (!keep) {
		vfd_free(b->hwpts);
		b->hwpts = NULL;
		if (b->dead_split) {
			int r = vfd_iommufd_destroy(b, b->dead_split);
			if (!r)
				b->dead_split = 0;
			else if (!rc)
				rc = r;
		}
	}
	return rc;
}

struct run {
	uint64_t iova, len;
	unsigned int prot;
};

/* Every mapping the kernel holds: the table and the deferred queue. */
static int snapshot_maps(struct vfdma_domain *dom, struct run **out, size_t *n)
{
	pthread_mutex_lock(&dom->lock);
	size_t cap = dom->nr_maps, k = 0;
	for (struct vfd_map *m = dom->defer_head; m; m = m->next)
		cap++;
	struct run *v = vfd_calloc(cap ? cap : 1, sizeof(*v));
	if (v) {
		for (struct vfd_map *m = vfd_maptab_from(dom, 0); m && k < cap;
		     m = vfd_maptab_next(dom, m))
			v[k++] = (struct run){m->iova, m->len, (unsigned)(m->word & VFD_MAPW_PROT)};
		for (struct vfd_map *m = dom->defer_head; m && k < cap; m = m->next)
			v[k++] = (struct run){m->iova, m->len, (unsigned)(m->word & VFD_MAPW_PROT)};
	}
	pthread_mutex_unlock(&dom->lock);
	if (!v)
		return -ENOMEM;
	*out = v;
	*n = k;
	return 0;
}

/* The split IOAS: huge pages off, the domain's fence, every mapping copied. */
static int split_make(struct vfdma_domain *dom, struct iommufd_be *b)
{
	uint32_t id;
	int rc = vfd_iommufd_ioas_alloc(b, &id);
	if (rc)
		return rc;
	b->split_id = id; /* teardown destroys it from here on */
	struct iommu_option opt = {
		.size = sizeof(opt),
		.option_id = VFD_IOMMU_OPTION_HUGE_PAGES,
		.op = VFD_IOMMU_OPTION_OP_SET,
		.object_id = id,
		.val64 = 0,
	};
	rc = vfd_ioctl(b->fd, IOMMU_OPTION, &opt);
	if (rc) {
		VFD_ERR("iommufd: IOMMU_OPTION_HUGE_PAGES off: %s", strerror(-rc));
		return rc;
	}
	rc = vfd_iommufd_set_allowed(b, id, dom->ranges, dom->nr_ranges);
	if (rc)
		return rc;
	struct run *runs;
	size_t n;
	rc = snapshot_maps(dom, &runs, &n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n && !rc; i++) {
		struct iommu_ioas_copy cp = {
			.size = sizeof(cp),
			.flags = vfd_iommufd_map_flags(runs[i].prot),
			.dst_ioas_id = id,
			.src_ioas_id = b->ioas_id,
			.length = runs[i].len,
			.dst_iova = runs[i].iova,
			.src_iova = runs[i].iova,
		};
		rc = vfd_ioctl(b->fd, IOMMU_IOAS_COPY, &cp);
		if (rc)
			VFD_ERR("iommufd: copying 0x%llx+0x%llx to the split IOAS: %s",
				(unsigned long long)runs[i].iova, (unsigned long long)runs[i].len,
				strerror(-rc));
	}
	vfd_free(runs);
	return rc;
}

/* A tracking HWPT on @pt for @dev, and @dev moved onto it. */
static int track_device(struct iommufd_be *b, struct vfdma_device *dev, uint32_t pt)
{
	struct iommufd_dev *d = dev->be;
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd),
		.flags = VFD_IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
		.dev_id = d->dev_id,
		.pt_id = pt,
	};
	int rc = vfd_ioctl(b->fd, IOMMU_HWPT_ALLOC, &cmd);
	if (rc) {
		VFD_ERR("iommufd: dirty-tracking HWPT for %s: %s", dev->bdf, strerror(-rc));
		return rc == -EOPNOTSUPP ? -ENOTSUP : rc;
	}
	b->hwpts[b->nr_hwpts++] = cmd.out_hwpt_id;
	/* On before the replace: no write after it goes unrecorded. */
	rc = set_tracking(b, cmd.out_hwpt_id, true);
	if (rc) {
		VFD_ERR("iommufd: IOMMU_HWPT_SET_DIRTY_TRACKING: %s", strerror(-rc));
		return rc;
	}
	return vfd_iommufd_replace(b, dev, cmd.out_hwpt_id);
}

int vfd_iommufd_dirty_start(struct vfdma_domain *dom, bool split)
{
	struct iommufd_be *b = be_of(dom);
	int rc = vfd_iommufd_dirty_teardown(dom); /* what a failed stop left, if anything */
	if (rc)
		return rc;
	struct vfdma_device **devs;
	unsigned n;
	rc = snapshot_devices(dom, &devs, &n);
	if (rc)
		return rc;
	for (unsigned i = 0; i < n; i++) {
		const struct iommufd_dev *d = devs[i]->be;
		if (!d || !d->hw_dirty)
			rc = -ENOTSUP;
	}
	if (!n)
		rc = -ENOTSUP; /* a HWPT is made for a device */
	if (rc)
		goto out;
	b->hwpts = vfd_calloc(n, sizeof(*b->hwpts));
	if (!b->hwpts) {
		rc = -ENOMEM;
		goto out;
	}
	if (split)
		rc = split_make(dom, b);
	for (unsigned i = 0; i < n && !rc; i++)
		rc = track_device(b, devs[i], split ? b->split_id : b->ioas_id);
	if (rc) {
		int r = vfd_iommufd_dirty_teardown(dom);
		if (r)
			VFD_ERR("iommufd: undoing a failed dirty start: %s (retried later)",
				strerror(-r));
		if (!b->nr_hwpts) {
			vfd_free(b->hwpts);
			b->hwpts = NULL;
		}
		goto out;
	}
	b->tracking = true;
	VFD_DBG("iommufd: dirty tracking on %u HWPT(s)%s", b->nr_hwpts,
		split ? ", on the split IOAS" : "");
out:
	vfd_free(devs);
	return rc;
}

void vfd_iommufd_dirty_stop(struct vfdma_domain *dom, bool split)
{
	(void)split;
	int rc = vfd_iommufd_dirty_teardown(dom);
	if (rc)
		VFD_ERR("iommufd: stopping dirty tracking: %s (what is left is retried later)",
			strerror(-rc));
}

/* OR @n bits of @src into @dst from bit @at; returns the bits set in @src. */
static int64_t or_bits(uint64_t *dst, uint64_t at, const uint64_t *src, uint64_t n)
{
	int64_t seen = 0;
	for (uint64_t w = 0; w < (n + 63) / 64; w++) {
		for (uint64_t x = src[w]; x; x &= x - 1) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(x);
			if (p >= n)
				break;
			dst[(at + p) / 64] |= 1ull << ((at + p) % 64);
			seen++;
		}
	}
	return seen;
}

int64_t vfd_iommufd_dirty_read(struct vfdma_domain *dom, uint64_t iova, uint64_t len,
			       uint64_t *bitmap, bool clear)
{
	struct iommufd_be *b = be_of(dom);
	if (!b->tracking || !len)
		return 0;
	const uint64_t g = dom->granule, last = iova + len - 1;
	uint64_t *tmp = vfd_calloc((len / g + 63) / 64, sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	int64_t seen = 0;
	int rc = 0;
	/* Only where IOVA can be mapped: the kernel walks what it is asked. */
	for (size_t r = 0; r < dom->nr_ranges && !rc; r++) {
		uint64_t lo = dom->ranges[r].first > iova ? dom->ranges[r].first : iova;
		uint64_t hi = dom->ranges[r].last < last ? dom->ranges[r].last : last;
		lo = (lo + g - 1) & ~(g - 1);
		if (lo > hi || hi - lo + 1 < g)
			continue;
		uint64_t n = (hi - lo + 1) / g;
		for (unsigned h = 0; h < b->nr_hwpts && !rc; h++) {
			memset(tmp, 0, ((n + 63) / 64) * sizeof(*tmp));
			struct iommu_hwpt_get_dirty_bitmap cmd = {
				.size = sizeof(cmd),
				.hwpt_id = b->hwpts[h],
				.flags = clear ? 0 : VFD_IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
				.iova = lo,
				.length = n * g,
				.page_size = g,
				.data = (uintptr_t)tmp,
			};
			rc = vfd_ioctl(b->fd, IOMMU_HWPT_GET_DIRTY_BITMAP, &cmd);
			if (rc)
				VFD_ERR("iommufd: IOMMU_HWPT_GET_DIRTY_BITMAP 0x%llx+0x%llx: %s",
					(unsigned long long)lo, (unsigned long long)(n * g),
					strerror(-rc));
			else
				seen += or_bits(bitmap, (lo - iova) / g, tmp, n);
		}
	}
	vfd_free(tmp);
	return rc ? rc : seen;
}
