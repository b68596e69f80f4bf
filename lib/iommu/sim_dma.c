/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Software IOMMU DMA engines: translation through the page table with an
 * IOTLB, faults, and the dirty marking of device writes (the protocol:
 * sim_pt_impl.h).
 */
#include "iommu/sim_pt_impl.h"

#include <errno.h>
#include <string.h>

#include "util/sys.h"

struct vfd_simdma *vfd_simdma_create(struct vfd_simpt *pt, unsigned iotlb_entries)
{
	if (!pt || (iotlb_entries & (iotlb_entries - 1))) {
		errno = EINVAL;
		return NULL;
	}
	struct vfd_simdma *e = vfd_calloc(1, sizeof(*e));
	if (!e) {
		errno = ENOMEM;
		return NULL;
	}
	if (iotlb_entries) {
		e->tlb = vfd_calloc(iotlb_entries, sizeof(*e->tlb));
		if (!e->tlb) {
			vfd_free(e);
			errno = ENOMEM;
			return NULL;
		}
		e->tlb_mask = iotlb_entries - 1;
	}
	e->pt = pt;
	pthread_mutex_init(&e->fault_lock, NULL);
	pthread_mutex_lock(&pt->lock);
	e->slot = -1;
	for (int i = 0; i < MAX_ENGINES; i++) {
		if (!pt->engines[i]) {
			pt->engines[i] = e;
			e->slot = i;
			break;
		}
	}
	pthread_mutex_unlock(&pt->lock);
	if (e->slot < 0) {
		pthread_mutex_destroy(&e->fault_lock);
		vfd_free(e->tlb);
		vfd_free(e);
		errno = ENOSPC;
		return NULL;
	}
	return e;
}

void vfd_simdma_destroy(struct vfd_simdma *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->pt->lock);
	e->pt->engines[e->slot] = NULL;
	pthread_mutex_unlock(&e->pt->lock);
	pthread_mutex_destroy(&e->fault_lock);
	vfd_free(e->tlb);
	vfd_free(e);
}

static void log_fault(struct vfd_simdma *e, uint64_t iova, unsigned access, unsigned reason)
{
	pthread_mutex_lock(&e->fault_lock);
	unsigned idx = (e->fault_head + e->fault_count) % FAULT_LOG;
	if (e->fault_count == FAULT_LOG) {
		e->fault_head = (e->fault_head + 1) % FAULT_LOG;
		e->faults_lost++;
	} else {
		e->fault_count++;
	}
	e->faults[idx] = (struct vfd_sim_fault){.iova = iova, .access = access, .reason = reason};
	pthread_mutex_unlock(&e->fault_lock);
}

unsigned vfd_simdma_faults(struct vfd_simdma *e, struct vfd_sim_fault *out, unsigned max,
			   uint64_t *lost)
{
	pthread_mutex_lock(&e->fault_lock);
	unsigned n = 0;
	while (n < max && e->fault_count) {
		out[n++] = e->faults[e->fault_head];
		e->fault_head = (e->fault_head + 1) % FAULT_LOG;
		e->fault_count--;
	}
	if (lost)
		*lost = e->faults_lost;
	e->faults_lost = 0;
	pthread_mutex_unlock(&e->fault_lock);
	return n;
}

/*
 * Translate one 4 KiB page for @access: host address of the page, through
 * the IOTLB (a hit keeps using a translation until it is invalidated, as
 * hardware does) or a walk, which sets A.  Returns 0 or a fault reason.
 */
static unsigned translate(struct vfd_simdma *e, uint64_t page, unsigned access, uintptr_t *host)
{
	uint64_t tag = (page >> 12) + 1;
	struct iotlb_entry *te = e->tlb ? &e->tlb[(page >> 12) & e->tlb_mask] : NULL;
	if (te && atomic_load_explicit(&te->tag, memory_order_acquire) == tag) {
		uint64_t d = atomic_load_explicit(&te->data, memory_order_acquire);
		if (atomic_load_explicit(&te->tag, memory_order_acquire) == tag) {
			if (((unsigned)d & access) != access)
				return VFD_SIM_FAULT_PERM;
			*host = d & PTE_ADDR;
			return 0;
		}
	}
	uint64_t v;
	unsigned level;
	for (;;) {
		_Atomic uint64_t *slot = walk(e->pt, page, &v, &level);
		if (!slot)
			return VFD_SIM_FAULT_NOT_PRESENT;
		if ((entry_prot(v) & access) != access)
			return VFD_SIM_FAULT_PERM;
		if ((v & PTE_A) || atomic_compare_exchange_strong(slot, &v, v | PTE_A))
			break;
		/* Changed under us (D set, split, unmapped): walk again. */
	}
	*host = (v & PTE_ADDR) + (page & (level_size(level) - 1));
	if (te) {
		atomic_store_explicit(&te->tag, 0, memory_order_relaxed);
		atomic_store_explicit(&te->data, *host | entry_prot(v), memory_order_release);
		atomic_store_explicit(&te->tag, tag, memory_order_release);
	}
	return 0;
}

/*
 * Device access to memory: relaxed atomic loads and stores (8 bytes at a
 * time where aligned), so that two engines writing the same bytes are two
 * devices racing, not undefined behaviour, while a CPU thread that touches
 * a buffer during DMA is still reported by ThreadSanitizer.
 */
static void dma_copy(void *dst, const void *src, size_t n)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	if (!(((uintptr_t)d | (uintptr_t)s) & 7)) {
		for (; n >= 8; n -= 8, d += 8, s += 8)
			__atomic_store_n((uint64_t *)d, __atomic_load_n((const uint64_t *)s,
									__ATOMIC_RELAXED),
					 __ATOMIC_RELAXED);
	}
	for (; n; n--, d++, s++)
		__atomic_store_n(d, __atomic_load_n(s, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}

/*
 * After a write landed in @page: set the dirty bit of whatever leaf maps it
 * now, and make sure that leaf was still in place once the bit was set
 * (see the protocol at the top).  A bit already set needs the same check:
 * it may be a block's bit that a split has just carried, or not.
 */
static void mark_dirty(struct vfd_simdma *e, uint64_t page)
{
	for (;;) {
		uint64_t v;
		unsigned level;
		_Atomic uint64_t *slot = walk(e->pt, page, &v, &level);
		if (!slot)
			return;
		struct table *t = table_of(slot);
		unsigned i = slot_index(slot);
		if (!(atomic_load(dirty_word(t, i)) & dirty_mask(i)))
			atomic_fetch_or(dirty_word(t, i), dirty_mask(i));
		/* Only A may change in a leaf that stays. */
		if (!((atomic_load(slot) ^ v) & ~PTE_A))
			return;
	}
}

int vfd_simdma_rw(struct vfd_simdma *e, uint64_t iova, void *buf, size_t len,
		  unsigned access)
{
	if (!e || (!buf && len) || (access != VFD_SIM_READ && access != VFD_SIM_WRITE))
		return -EINVAL;
	if (iova + len < iova || (len && (iova + len - 1) >> e->pt->va_bits)) {
		log_fault(e, iova, access, VFD_SIM_FAULT_RANGE);
		return -EFAULT;
	}
	/* Publish that we walk from this epoch on; pairs with grace_wait(). */
	atomic_store(&e->active, atomic_load(&e->pt->epoch));
	atomic_thread_fence(memory_order_seq_cst);

	int rc = 0;
	uint8_t *b = buf;
	while (len) {
		uint64_t page = iova & ~(VFD_SIM_PG_4K - 1);
		size_t chunk = VFD_SIM_PG_4K - (iova - page);
		if (chunk > len)
			chunk = len;
		uintptr_t host;
		unsigned reason = translate(e, page, access, &host);
		if (reason) {
			log_fault(e, iova, access, reason);
			rc = -EFAULT;
			break;
		}
		void *p = (void *)(host + (iova - page));
		if (access == VFD_SIM_WRITE) {
			dma_copy(p, b, chunk);
			atomic_thread_fence(memory_order_release);
			mark_dirty(e, page);
		} else {
			dma_copy(b, p, chunk);
		}
		iova += chunk;
		b += chunk;
		len -= chunk;
	}
	atomic_store_explicit(&e->active, 0, memory_order_release);
	return rc;
}

void vfd_simdma_invalidate(struct vfd_simdma *e, uint64_t iova, uint64_t size)
{
	if (!e->tlb || !size)
		return;
	uint64_t first = iova >> 12, last = (iova + size - 1) >> 12;
	if (last - first > e->tlb_mask) {
		vfd_simdma_invalidate_all(e);
		return;
	}
	for (uint64_t p = first; p <= last; p++) {
		uint64_t want = p + 1;
		atomic_compare_exchange_strong(&e->tlb[p & e->tlb_mask].tag, &want, 0);
	}
}

void vfd_simdma_invalidate_all(struct vfd_simdma *e)
{
	for (unsigned i = 0; e->tlb && i <= e->tlb_mask; i++)
		atomic_store(&e->tlb[i].tag, 0);
}
