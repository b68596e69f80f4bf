/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Domains and devices: choosing a backend, opening and closing, attaching
 * devices (with the intersection of page sizes and usable ranges), counters,
 * flush and check.  Mappings themselves live in map.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iommu/domain.h"
#include "util/log.h"
#include "util/sys.h"

/* Backends built into this library, best first for VFDMA_BACKEND_AUTO. */
static const struct vfd_backend_ops *const backends[] = {
	&vfd_iommufd_ops,
	&vfd_type1_ops,
	&vfd_noiommu_ops,
	&vfd_sim_ops,
};

static const char *const backend_names[] = {
	[VFDMA_BACKEND_AUTO] = "auto",	     [VFDMA_BACKEND_IOMMUFD] = "iommufd",
	[VFDMA_BACKEND_TYPE1] = "type1",     [VFDMA_BACKEND_NOIOMMU] = "noiommu",
	[VFDMA_BACKEND_SIM] = "sim",
};

const char *vfdma_backend_name(enum vfdma_backend backend)
{
	return (unsigned)backend <= VFDMA_BACKEND_SIM ? backend_names[backend] : "?";
}

static const struct vfd_backend_ops *find_backend(enum vfdma_backend kind)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (backends[i]->kind == kind)
			return backends[i];
	return NULL;
}

/* AUTO: iommufd with VFIO cdevs, else type1, else sim. */
static enum vfdma_backend pick_auto(void)
{
	if (vfd_access("/dev/iommu", R_OK | W_OK) == 0 &&
	    vfd_access("/dev/vfio/devices", R_OK) == 0 && find_backend(VFDMA_BACKEND_IOMMUFD))
		return VFDMA_BACKEND_IOMMUFD;
	if (vfd_access("/dev/vfio/vfio", R_OK | W_OK) == 0 && find_backend(VFDMA_BACKEND_TYPE1))
		return VFDMA_BACKEND_TYPE1;
	VFD_INFO("no VFIO here: using the sim backend (a software IOMMU)");
	return VFDMA_BACKEND_SIM;
}

static int opts_resolve(const struct vfdma_domain_opts *in, struct vfdma_domain_opts *o)
{
	*o = in ? *in : (struct vfdma_domain_opts){0};
	const char *env = getenv("VFDMA_BACKEND");
	if (env && *env) {
		int k = -1;
		for (int i = 0; i <= VFDMA_BACKEND_SIM; i++)
			if (!strcmp(env, backend_names[i]))
				k = i;
		if (k < 0) {
			VFD_ERR("VFDMA_BACKEND=%s: not a backend (auto, iommufd, type1, noiommu, sim)",
				env);
			return -EINVAL;
		}
		o->backend = (enum vfdma_backend)k;
	}
	if ((unsigned)o->backend > VFDMA_BACKEND_SIM ||
	    (o->flags & ~(VFDMA_DOMAIN_DEFER_UNMAP | VFDMA_DOMAIN_NO_IOVA_CACHE)))
		return -EINVAL;
	if (!o->defer_max_bytes)
		o->defer_max_bytes = 64ull << 20;
	if (!o->defer_max_entries)
		o->defer_max_entries = 256;
	if (!o->defer_max_us)
		o->defer_max_us = 1000;
	if (!o->sim_pgsizes)
		o->sim_pgsizes = (1ull << 12) | (1ull << 21) | (1ull << 30);
	if (!o->sim_va_bits)
		o->sim_va_bits = 48;
	if (!o->sim_iotlb_entries)
		o->sim_iotlb_entries = 64;
	if (o->backend == VFDMA_BACKEND_AUTO)
		o->backend = pick_auto();
	return 0;
}

int vfd_domain_set_ranges(struct vfdma_domain *dom, const struct vfdma_iova_range *ranges,
			  size_t n)
{
	struct vfdma_iova_range *copy = vfd_calloc(n ? n : 1, sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, ranges, n * sizeof(*copy));
	vfd_free(dom->ranges);
	dom->ranges = copy;
	dom->nr_ranges = n;
	return 0;
}

void vfd_domain_mark_broken(struct vfdma_domain *dom, const char *what, uint64_t iova,
			    uint64_t len, int64_t got)
{
	if (__atomic_exchange_n(&dom->broken, 1, __ATOMIC_ACQ_REL))
		return;
	VFD_ERR("domain %p is broken: %s (iova 0x%llx, length 0x%llx, got %lld); maps now "
		"fail with -EIO",
		(void *)dom, what, (unsigned long long)iova, (unsigned long long)len,
		(long long)got);
}

/* IOVA 0 is never handed out: many drivers use 0 as "no address". */
static int create_allocator(struct vfdma_domain *dom)
{
	struct vfdma_iova_range *r = dom->ranges;
	size_t n = dom->nr_ranges;
	while (n && r->last < dom->granule) {
		r++;
		n--;
	}
	if (!n)
		return -EINVAL;
	struct vfdma_iova_range first = r[0];
	if (first.first < dom->granule)
		first.first = dom->granule;
	struct vfdma_iova_range *copy = vfd_calloc(n, sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, r, n * sizeof(*copy));
	copy[0] = first;
	unsigned flags = dom->opts.flags & VFDMA_DOMAIN_NO_IOVA_CACHE ? VFDMA_IOVA_NOCACHE : 0;
	dom->iova = vfdma_iova_space_create(dom->granule, copy, n, flags);
	int rc = dom->iova ? 0 : -errno;
	if (!rc) {
		vfd_free(dom->ranges);
		dom->ranges = copy;
		dom->nr_ranges = n;
	} else {
		vfd_free(copy);
	}
	return rc;
}

struct vfdma_domain *vfdma_domain_open(const struct vfdma_domain_opts *opts)
{
	struct vfdma_domain_opts o;
	int rc = opts_resolve(opts, &o);
	const struct vfd_backend_ops *ops = rc ? NULL : find_backend(o.backend);
	if (rc || !ops) {
		if (!rc)
			VFD_ERR("backend %s is not built into this library",
				vfdma_backend_name(o.backend));
		errno = rc ? -rc : ENODEV;
		return NULL;
	}
	struct vfdma_domain *dom = vfd_calloc(1, sizeof(*dom));
	if (!dom) {
		errno = ENOMEM;
		return NULL;
	}
	dom->ops = ops;
	dom->dirty_caps = ops->dirty_caps;
	dom->opts = o;
	dom->dma_limit = UINT64_MAX;
	vfd_map_table_init(dom);
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&dom->op_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&dom->lock, NULL);

	rc = ops->open(dom);
	if (rc)
		goto fail;
	dom->granule = dom->pgsizes & -dom->pgsizes;
	if (dom->granule < 4096) {
		rc = -EINVAL;
		goto fail_be;
	}
	rc = create_allocator(dom);
	if (rc)
		goto fail_be;
	VFD_DBG("domain %p: backend %s, page sizes 0x%llx", (void *)dom, ops->name,
		(unsigned long long)dom->pgsizes);
	return dom;

fail_be:
	ops->close(dom);
fail:
	pthread_rwlock_destroy(&dom->op_lock);
	pthread_mutex_destroy(&dom->lock);
	vfd_free(dom->ranges);
	vfd_free(dom);
	errno = -rc;
	return NULL;
}

static void device_release(struct vfdma_device *dev, int *err);

int vfdma_domain_close(struct vfdma_domain *dom)
{
	if (!dom)
		return 0;
	int err = 0;
	pthread_rwlock_wrlock(&dom->op_lock);
	vfd_dirty_release(dom);
	vfd_mem_destroy(dom);
	pthread_mutex_lock(&dom->lock);
	vfd_map_destroy_all(dom, &err);
	pthread_mutex_unlock(&dom->lock);
	for (;;) {
		pthread_mutex_lock(&dom->lock);
		struct vfdma_device *dev = dom->devices;
		if (dev) {
			dom->devices = dev->next;
			dom->nr_devices--;
		}
		pthread_mutex_unlock(&dom->lock);
		if (!dev)
			break;
		device_release(dev, &err);
	}
	dom->ops->close(dom);
	pthread_rwlock_unlock(&dom->op_lock);
	vfdma_iova_space_destroy(dom->iova);
	vfd_map_table_fini(dom);
	pthread_rwlock_destroy(&dom->op_lock);
	pthread_mutex_destroy(&dom->lock);
	vfd_free(dom->ranges);
	vfd_free(dom);
	return err;
}

int vfdma_domain_backend(const struct vfdma_domain *dom)
{
	return dom ? (int)dom->ops->kind : -EINVAL;
}

int vfdma_domain_pgsizes(const struct vfdma_domain *dom, uint64_t *pgsizes)
{
	if (!dom || !pgsizes)
		return -EINVAL;
	*pgsizes = __atomic_load_n(&dom->pgsizes, __ATOMIC_RELAXED);
	return 0;
}

int vfdma_domain_ranges(const struct vfdma_domain *dom, struct vfdma_iova_range *ranges,
			size_t max)
{
	if (!dom || (!ranges && max))
		return -EINVAL;
	struct vfdma_domain *d = (struct vfdma_domain *)dom;
	pthread_rwlock_rdlock(&d->op_lock);
	size_t n = d->nr_ranges;
	if (max)
		memcpy(ranges, d->ranges, (n < max ? n : max) * sizeof(*ranges));
	pthread_rwlock_unlock(&d->op_lock);
	return (int)n;
}

int vfdma_domain_set_dma_limit(struct vfdma_domain *dom, uint64_t limit)
{
	if (!dom)
		return -EINVAL;
	pthread_rwlock_wrlock(&dom->op_lock);
	int rc = dom->nr_ranges && dom->ranges[0].first <= limit ? 0 : -ERANGE;
	if (!rc)
		dom->dma_limit = limit;
	pthread_rwlock_unlock(&dom->op_lock);
	return rc;
}

int vfdma_domain_get_info(struct vfdma_domain *dom, struct vfdma_domain_info *info)
{
	if (!dom || !info)
		return -EINVAL;
	pthread_mutex_lock(&dom->lock);
	*info = (struct vfdma_domain_info){
		.backend = dom->ops->kind,
		.pgsizes = dom->pgsizes,
		.nr_devices = dom->nr_devices,
		.dirty_caps = vfd_dirty_caps_locked(dom) | VFDMA_DIRTY_CAP_MARK,
		.mappings = dom->nr_maps,
		.mapped_bytes = dom->mapped_bytes,
		.kernel_map_calls = __atomic_load_n(&dom->kernel_map_calls, __ATOMIC_RELAXED),
		.kernel_unmap_calls = __atomic_load_n(&dom->kernel_unmap_calls, __ATOMIC_RELAXED),
		.deferred_bytes = dom->defer_bytes,
		.broken = __atomic_load_n(&dom->broken, __ATOMIC_RELAXED),
	};
	pthread_mutex_unlock(&dom->lock);
	return 0;
}

int vfdma_domain_flush(struct vfdma_domain *dom)
{
	if (!dom)
		return -EINVAL;
	pthread_rwlock_rdlock(&dom->op_lock);
	int rc = vfd_map_flush_locked_out(dom);
	pthread_rwlock_unlock(&dom->op_lock);
	return rc;
}

int vfdma_domain_check(struct vfdma_domain *dom)
{
	if (!dom)
		return -EINVAL;
	pthread_rwlock_wrlock(&dom->op_lock);
	int rc = vfd_map_check(dom);
	pthread_rwlock_unlock(&dom->op_lock);
	return rc;
}

/*
 * After an attach: the kernel's ranges and page sizes now.  Everything the
 * domain could use before and cannot now is reserved in the allocator; if a
 * mapping sits there, the attach fails with -EBUSY and nothing changes.
 */
static int apply_query(struct vfdma_domain *dom)
{
	struct vfdma_iova_range *nr = NULL;
	size_t nn = 0;
	uint64_t pg = 0;
	int rc = dom->ops->query(dom, &nr, &nn, &pg);
	if (rc)
		return rc;
	uint64_t newpg = dom->pgsizes & pg;
	if (!(newpg & dom->granule)) {
		VFD_ERR("device page sizes 0x%llx do not include the domain's granule 0x%llx",
			(unsigned long long)pg, (unsigned long long)dom->granule);
		vfd_free(nr);
		return -EXDEV;
	}
	/* Pieces of the current ranges that the new ones do not cover. */
	size_t cap = dom->nr_ranges + nn + 1, nx = 0, nk = 0;
	struct vfdma_iova_range *ex = vfd_calloc(cap, sizeof(*ex));
	struct vfdma_iova_range *keep = vfd_calloc(cap, sizeof(*keep));
	if (!ex || !keep) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < dom->nr_ranges; i++) {
		uint64_t pos = dom->ranges[i].first, last = dom->ranges[i].last;
		for (size_t j = 0; j < nn && pos <= last; j++) {
			if (nr[j].last < pos || nr[j].first > last)
				continue;
			if (nr[j].first > pos)
				ex[nx++] = (struct vfdma_iova_range){pos, nr[j].first - 1};
			uint64_t hi = nr[j].last < last ? nr[j].last : last;
			uint64_t lo = nr[j].first > pos ? nr[j].first : pos;
			keep[nk++] = (struct vfdma_iova_range){lo, hi};
			if (hi == last) {
				pos = last + 1;
				if (pos == 0)
					break; /* reached the top of the address space */
			} else {
				pos = hi + 1;
			}
		}
		if (pos && pos <= last)
			ex[nx++] = (struct vfdma_iova_range){pos, last};
	}
	if (!nk) {
		rc = -EBUSY;
		goto out;
	}
	if (nx)
		vfd_map_flush_locked_out(dom); /* queued IOVAs in the way go first */
	for (size_t i = 0; i < nx; i++) {
		if (vfd_map_overlaps(dom, ex[i].first, ex[i].last)) {
			VFD_ERR("device reserves 0x%llx-0x%llx, which holds a mapping",
				(unsigned long long)ex[i].first, (unsigned long long)ex[i].last);
			rc = -EBUSY;
			goto out;
		}
	}
	for (size_t i = 0; i < nx; i++) {
		uint64_t a = (ex[i].first + dom->granule - 1) & ~(dom->granule - 1);
		uint64_t b = (ex[i].last | (dom->granule - 1));
		if (a > b || b < dom->granule)
			continue;
		if (a < dom->granule)
			a = dom->granule;
		rc = vfdma_iova_reserve(dom->iova, a, b - a + 1);
		if (rc == -ERANGE)
			rc = 0; /* already outside what the allocator may use */
		if (rc)
			goto out;
	}
	vfd_free(dom->ranges);
	dom->ranges = keep;
	dom->nr_ranges = nk;
	keep = NULL;
	__atomic_store_n(&dom->pgsizes, newpg, __ATOMIC_RELAXED);
out:
	vfd_free(ex);
	vfd_free(keep);
	vfd_free(nr);
	return rc;
}

/* "0000:00:03.0" or "00:03.0" into the canonical form. */
static int parse_bdf(const char *s, char out[16])
{
	unsigned dom = 0, bus, dev, fn;
	char tail;
	if (!s)
		return -EINVAL;
	if (sscanf(s, "%4x:%2x:%2x.%1x%c", &dom, &bus, &dev, &fn, &tail) != 4) {
		dom = 0;
		if (sscanf(s, "%2x:%2x.%1x%c", &bus, &dev, &fn, &tail) != 3)
			return -EINVAL;
	}
	if (dev > 31 || fn > 7)
		return -EINVAL;
	snprintf(out, 16, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

struct vfdma_device *vfdma_device_open(struct vfdma_domain *dom, const char *bdf,
				       unsigned int flags)
{
	char name[16];
	if (!dom || flags || parse_bdf(bdf, name)) {
		errno = EINVAL;
		return NULL;
	}
	if (!dom->ops->device_attach) {
		errno = ENOTSUP;
		return NULL;
	}
	struct vfdma_device *dev = vfd_device_new(dom);
	if (!dev)
		return NULL;
	memcpy(dev->bdf, name, sizeof(name));

	int rc = 0;
	pthread_rwlock_wrlock(&dom->op_lock);
	for (struct vfdma_device *d = dom->devices; d; d = d->next)
		if (!strcmp(d->bdf, dev->bdf))
			rc = -EBUSY;
	bool was_ready = dom->be_ready;
	if (!rc)
		rc = dom->ops->device_attach(dom, dev);
	return vfd_domain_attach_end(dom, dev, was_ready, rc);
}

struct vfdma_device *vfd_domain_attach_end(struct vfdma_domain *dom, struct vfdma_device *dev,
					   bool was_ready, int rc)
{
	if (!rc) {
		rc = apply_query(dom);
		if (!rc && !was_ready && dom->be_ready)
			rc = vfd_map_replay(dom);
		if (rc)
			dom->ops->device_detach(dom, dev);
	}
	if (!rc)
		vfd_domain_list_device(dom, dev);
	pthread_rwlock_unlock(&dom->op_lock);
	if (rc) {
		vfd_free(dev);
		errno = -rc;
		return NULL;
	}
	return dev;
}

struct vfdma_device *vfd_device_new(struct vfdma_domain *dom)
{
	struct vfdma_device *dev = vfd_calloc(1, sizeof(*dev));
	if (!dev) {
		errno = ENOMEM;
		return NULL;
	}
	dev->dom = dom;
	dev->fd = -1;
	return dev;
}

void vfd_domain_list_device(struct vfdma_domain *dom, struct vfdma_device *dev)
{
	pthread_mutex_lock(&dom->lock);
	dev->next = dom->devices;
	dom->devices = dev;
	dom->nr_devices++;
	pthread_mutex_unlock(&dom->lock);
}

/* Release what a device holds; op_lock exclusive, dev already unlisted. */
static void device_release(struct vfdma_device *dev, int *err)
{
	struct vfdma_domain *dom = dev->dom;
	vfd_pci_release(dev);
	for (unsigned i = 0; i < dev->nr_irq_fds; i++)
		vfd_close(dev->irq_fds[i]);
	vfd_free(dev->irq_fds);
	for (int i = 0; i < 6; i++) {
		if (dev->bars[i].addr) {
			int rc = vfd_munmap(dev->bars[i].addr, dev->bars[i].len);
			if (rc && err && !*err)
				*err = rc;
		}
	}
	dom->ops->device_detach(dom, dev);
	vfd_free(dev);
}

int vfdma_device_close(struct vfdma_device *dev)
{
	if (!dev)
		return 0;
	struct vfdma_domain *dom = dev->dom;
	int err = 0;
	pthread_rwlock_wrlock(&dom->op_lock);
	pthread_mutex_lock(&dom->lock);
	for (struct vfdma_device **p = &dom->devices; *p; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			dom->nr_devices--;
			break;
		}
	}
	pthread_mutex_unlock(&dom->lock);
	device_release(dev, &err);
	pthread_rwlock_unlock(&dom->op_lock);
	return err;
}

struct vfdma_domain *vfdma_device_domain(const struct vfdma_device *dev)
{
	return dev ? dev->dom : NULL;
}
