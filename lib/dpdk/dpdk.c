/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DPDK memory in vfdma domains.
 *
 * An attachment keeps its own record of what it mapped (sorted by vaddr),
 * because the same memory may also be mapped by the caller and the domain's
 * translation would not tell the two apart.  The record is the truth for
 * both the initial walk and the events: the event callback is registered
 * before the walk, so memory the EAL allocates in between is seen by both,
 * and the second sight finds it in the record and does nothing.  Memory
 * events run with DPDK's hotplug lock held for writing and walks take it for
 * reading, so a walk and an event never interleave.
 *
 * Hugepage memory is mapped one page per mapping: DPDK frees single pages,
 * and a vfdma mapping is unmapped whole.  Memory whose list has small pages
 * (--no-huge) is static and is mapped one mapping per contiguous chunk.
 * In IOVA-as-VA mode the mappings use DPDK's own IOVAs, so that mbuf and
 * rte_malloc IOVA fields are right for the domain's devices.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memory.h>

#include "vfdma/dma.h"
#include "vfdma/dpdk.h"
#include "vfdma/log.h"

/*
 * This library links libvfdma's public API only: it logs through
 * vfdma_log() and allocates its small records with libc (libvfdma's
 * syscall shim is internal to libvfdma).
 */
#define VFD_ERR(...) vfdma_log(VFDMA_LOG_ERROR, __VA_ARGS__)
#define VFD_INFO(...) vfdma_log(VFDMA_LOG_INFO, __VA_ARGS__)

/* Memory of smaller pages than this is static: map it by chunks. */
#define HUGE_MIN (2ull << 20)

struct rec {
	uintptr_t va;
	uint64_t len;
	uint64_t iova;
};

struct att {
	struct vfdma_domain *dom;
	pthread_mutex_t lock;
	struct rec *recs; /* sorted by va, disjoint */
	size_t n, cap;
	uint64_t bytes;
	int fixed; /* map at DPDK's IOVAs (IOVA as VA) */
	int err;   /* first error of the initial walk */
	char name[RTE_MEM_EVENT_CALLBACK_NAME_LEN];
	struct att *next;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct att *g_atts;

static struct att *find_att(struct vfdma_domain *dom)
{
	for (struct att *a = g_atts; a; a = a->next)
		if (a->dom == dom)
			return a;
	return NULL;
}

/* Index of the first record that ends after @p va. */
static size_t rec_index(const struct att *a, uintptr_t va)
{
	size_t lo = 0, hi = a->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a->recs[mid].va + a->recs[mid].len <= va)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int rec_insert(struct att *a, size_t at, const struct rec *r)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		struct rec *p = realloc(a->recs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		a->recs = p;
		a->cap = cap;
	}
	memmove(&a->recs[at + 1], &a->recs[at], (a->n - at) * sizeof(*r));
	a->recs[at] = *r;
	a->n++;
	a->bytes += r->len;
	return 0;
}

static void rec_remove(struct att *a, size_t at)
{
	a->bytes -= a->recs[at].len;
	memmove(&a->recs[at], &a->recs[at + 1], (a->n - at - 1) * sizeof(a->recs[0]));
	a->n--;
}

/*
 * Map [va, va + len) as one mapping unless the record already covers it.
 * Part of it already recorded and part not cannot happen (pages are
 * recorded whole, chunks are static); it is refused with -EEXIST.
 */
static int map_one(struct att *a, uintptr_t va, uint64_t len)
{
	size_t at = rec_index(a, va);
	if (at < a->n && a->recs[at].va < va + len) {
		const struct rec *r = &a->recs[at];
		if (r->va <= va && r->va + r->len >= va + len)
			return 0;
		VFD_ERR("dpdk: memory [%#" PRIxPTR ", +%#" PRIx64 ") is partly mapped already", va,
			len);
		return -EEXIST;
	}
	struct rec r = {.va = va, .len = len};
	unsigned int flags = 0;
	if (a->fixed) {
		rte_iova_t iova = rte_mem_virt2iova((void *)va);
		if (iova == RTE_BAD_IOVA)
			return -EFAULT;
		r.iova = iova;
		flags = VFDMA_MAP_FIXED;
	}
	int rc = vfdma_map(a->dom, (void *)va, len, VFDMA_PROT_RW, flags, &r.iova);
	if (rc) {
		VFD_ERR("dpdk: cannot map [%#" PRIxPTR ", +%#" PRIx64 "): %s", va, len, strerror(-rc));
		return rc;
	}
	rc = rec_insert(a, at, &r);
	if (rc)
		vfdma_unmap(a->dom, r.iova, r.len);
	return rc;
}

/* Map the pages of [va, va + len), of page size @p pgsz, one by one. */
static int map_pages(struct att *a, uintptr_t va, uint64_t len, uint64_t pgsz)
{
	for (uint64_t off = 0; off < len; off += pgsz) {
		int rc = map_one(a, va + off, pgsz);
		if (rc)
			return rc;
	}
	return 0;
}

/* Unmap every recorded page inside [va, va + len). */
static int unmap_range(struct att *a, uintptr_t va, uint64_t len)
{
	int first = 0;
	size_t at = rec_index(a, va);
	while (at < a->n && a->recs[at].va < va + len) {
		struct rec *r = &a->recs[at];
		if (r->va < va || r->va + r->len > va + len) {
			/* a static chunk: DPDK does not free those */
			VFD_ERR("dpdk: free of [%#" PRIxPTR ", +%#" PRIx64
				") covers part of a mapping; kept",
				va, len);
			at++;
			continue;
		}
		int rc = vfdma_unmap(a->dom, r->iova, r->len);
		if (rc && !first)
			first = rc;
		rec_remove(a, at);
	}
	return first;
}

static void on_event(enum rte_mem_event ev, const void *addr, size_t len, void *arg)
{
	struct att *a = arg;
	const struct rte_memseg_list *msl = rte_mem_virt2memseg_list(addr);
	uint64_t pgsz = msl ? msl->page_sz : 0;
	pthread_mutex_lock(&a->lock);
	if (ev == RTE_MEM_EVENT_ALLOC) {
		int rc = pgsz >= HUGE_MIN ? map_pages(a, (uintptr_t)addr, len, pgsz)
					  : map_one(a, (uintptr_t)addr, len);
		if (rc)
			VFD_ERR("dpdk: new memory at %p (+%#zx) is not DMA-able: %s", addr, len,
				strerror(-rc));
	} else {
		unmap_range(a, (uintptr_t)addr, len);
	}
	pthread_mutex_unlock(&a->lock);
}

static int on_chunk(const struct rte_memseg_list *msl, const struct rte_memseg *ms, size_t len,
		    void *arg)
{
	struct att *a = arg;
	uintptr_t va = (uintptr_t)ms->addr;
	pthread_mutex_lock(&a->lock);
	int rc = msl->page_sz >= HUGE_MIN ? map_pages(a, va, len, msl->page_sz)
					  : map_one(a, va, len);
	pthread_mutex_unlock(&a->lock);
	if (rc) {
		a->err = rc;
		return 1; /* stop the walk */
	}
	return 0;
}

static void att_free(struct att *a)
{
	pthread_mutex_destroy(&a->lock);
	free(a->recs);
	free(a);
}

int vfdma_dpdk_attach(struct vfdma_domain *dom)
{
	if (!dom)
		return -EINVAL;
	if (rte_lcore_count() == 0)
		return -ENODEV; /* rte_eal_init() has not run */
	pthread_mutex_lock(&g_lock);
	int rc = 0;
	if (find_att(dom)) {
		rc = -EALREADY;
		goto out;
	}
	struct att *a = calloc(1, sizeof(*a));
	if (!a) {
		rc = -ENOMEM;
		goto out;
	}
	a->dom = dom;
	a->fixed = rte_eal_iova_mode() == RTE_IOVA_VA;
	pthread_mutex_init(&a->lock, NULL);
	snprintf(a->name, sizeof(a->name), "vfdma-%p", (void *)a);
	int events = 1;
	if (rte_mem_event_callback_register(a->name, on_event, a) != 0) {
		if (rte_errno != ENOTSUP) {
			rc = -(rte_errno ? rte_errno : EIO);
			att_free(a);
			goto out;
		}
		events = 0; /* static memory (--no-huge, --legacy-mem) */
	}
	if (rte_memseg_contig_walk(on_chunk, a) < 0 && !a->err)
		a->err = -EIO;
	if (a->err) {
		rc = a->err;
		if (events)
			rte_mem_event_callback_unregister(a->name, a);
		unmap_range(a, 0, UINTPTR_MAX);
		att_free(a);
		goto out;
	}
	VFD_INFO("dpdk: %zu mappings, %" PRIu64 " bytes, %s IOVAs%s", a->n, a->bytes,
		 a->fixed ? "DPDK's" : "vfdma's", events ? ", following memory events" : "");
	a->next = g_atts;
	g_atts = a;
out:
	pthread_mutex_unlock(&g_lock);
	return rc;
}

int vfdma_dpdk_detach(struct vfdma_domain *dom)
{
	if (!dom)
		return -EINVAL;
	pthread_mutex_lock(&g_lock);
	struct att **pp = &g_atts;
	while (*pp && (*pp)->dom != dom)
		pp = &(*pp)->next;
	struct att *a = *pp;
	if (!a) {
		pthread_mutex_unlock(&g_lock);
		return -ENOENT;
	}
	*pp = a->next;
	pthread_mutex_unlock(&g_lock);
	/* waits for a callback in progress; ENOENT if events were never on */
	rte_mem_event_callback_unregister(a->name, a);
	pthread_mutex_lock(&a->lock);
	int rc = unmap_range(a, 0, UINTPTR_MAX);
	pthread_mutex_unlock(&a->lock);
	att_free(a);
	return rc;
}

int vfdma_dpdk_get_stats(struct vfdma_domain *dom, uint64_t *mappings, uint64_t *bytes)
{
	if (!dom)
		return -EINVAL;
	pthread_mutex_lock(&g_lock);
	struct att *a = find_att(dom);
	if (a) {
		pthread_mutex_lock(&a->lock);
		if (mappings)
			*mappings = a->n;
		if (bytes)
			*bytes = a->bytes;
		pthread_mutex_unlock(&a->lock);
	}
	pthread_mutex_unlock(&g_lock);
	return a ? 0 : -ENOENT;
}

/* ---- a DMA pool of DPDK memory ---- */

static void *pool_get(void *ctx, uint64_t size, int node, uint64_t *page_size)
{
	(void)ctx;
	void *va = rte_malloc_socket("vfdma-pool", size, 2u << 20, node);
	const struct rte_memseg_list *msl = va ? rte_mem_virt2memseg_list(va) : NULL;
	if (va && !msl) {
		rte_free(va);
		return NULL;
	}
	if (va)
		*page_size = msl->page_sz;
	return va;
}

static void pool_put(void *ctx, void *addr, uint64_t size)
{
	(void)ctx;
	(void)size;
	rte_free(addr);
}

struct vfdma_pool *vfdma_dpdk_pool_create(struct vfdma_domain *dom, int node,
					  const struct vfdma_pool_opts *opts)
{
	if (!dom || (opts && opts->source)) {
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&g_lock);
	int attached = find_att(dom) != NULL;
	pthread_mutex_unlock(&g_lock);
	if (!attached) {
		errno = ENOENT;
		return NULL;
	}
	static const struct vfdma_pool_source src = {
		.get = pool_get, .put = pool_put, .premapped = 1};
	struct vfdma_pool_opts o = opts ? *opts : (struct vfdma_pool_opts){0};
	o.source = &src;
	return vfdma_pool_create(dom, node, &o);
}
