/* SPDX-License-Identifier: BSD-3-Clause */
/* The live map of small allocations (see iova_live.h). */
#include <string.h>

#include "dma/iova_live.h"
#include "util/sys.h"

#define INT_N (1u << VFD_LIVE_INT_BITS)
#define LEAF_N (1u << VFD_LIVE_LEAF_BITS)

void vfd_livemap_init(struct vfd_livemap *m, uint64_t max_index)
{
	unsigned bits = max_index ? 64 - (unsigned)__builtin_clzll(max_index) : 1;

	memset(m, 0, sizeof(*m));
	atomic_init(&m->root, NULL);
	while (VFD_LIVE_LEAF_BITS + m->levels * VFD_LIVE_INT_BITS < bits)
		m->levels++;
	m->idx_bits = VFD_LIVE_LEAF_BITS + m->levels * VFD_LIVE_INT_BITS;
	if (m->idx_bits > 63)
		m->idx_bits = 63;
}

static void free_rec(void *p, unsigned level)
{
	if (!p)
		return;
	if (level) {
		_Atomic(void *) *v = p;
		for (unsigned i = 0; i < INT_N; i++)
			free_rec(atomic_load_explicit(&v[i], memory_order_relaxed), level - 1);
	}
	vfd_free(p);
}

void vfd_livemap_fini(struct vfd_livemap *m)
{
	free_rec(atomic_load_explicit(&m->root, memory_order_relaxed), m->levels);
	atomic_store_explicit(&m->root, NULL, memory_order_relaxed);
	m->bytes = 0;
}

_Atomic uint8_t *vfd_livemap_make(struct vfd_livemap *m, uint64_t idx)
{
	_Atomic uint8_t *b = vfd_livemap_find(m, idx);
	if (b || (idx >> m->idx_bits))
		return b;

	/* Find the deepest existing node on the path. */
	_Atomic(void *) *link = &m->root;
	unsigned missing = m->levels + 1; /* nodes to create, leaf included */
	void *p = atomic_load_explicit(link, memory_order_relaxed);
	while (p) {
		unsigned sh = VFD_LIVE_LEAF_BITS + (missing - 2) * VFD_LIVE_INT_BITS;
		link = &((_Atomic(void *) *)p)[(idx >> sh) & (INT_N - 1)];
		missing--;
		p = atomic_load_explicit(link, memory_order_relaxed);
	}

	/* Allocate them all before linking anything. */
	void *nodes[64];
	size_t bytes = 0;
	for (unsigned i = 0; i < missing; i++) {
		bool leaf = i == missing - 1;
		size_t sz = leaf ? LEAF_N : INT_N * sizeof(void *);
		nodes[i] = vfd_calloc(1, sz);
		if (!nodes[i]) {
			while (i--)
				vfd_free(nodes[i]);
			return NULL;
		}
		bytes += sz;
	}
	/* Link the new chain below its first node, then publish that one. */
	for (unsigned i = 0; i + 1 < missing; i++) {
		unsigned level = missing - 1 - i; /* interior level of nodes[i] */
		unsigned sh = VFD_LIVE_LEAF_BITS + (level - 1) * VFD_LIVE_INT_BITS;
		_Atomic(void *) *v = nodes[i];
		atomic_store_explicit(&v[(idx >> sh) & (INT_N - 1)], nodes[i + 1],
				      memory_order_relaxed);
	}
	atomic_store_explicit(link, nodes[0], memory_order_release);
	m->bytes += bytes;
	return vfd_livemap_find(m, idx);
}
