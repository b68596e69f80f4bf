/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Inside the software IOMMU (see sim_pt.h): the table format and the state
 * shared by the page table (sim_pt.c) and the DMA engines (sim_dma.c).
 * Private to those two files.
 *
 * Entry format (64 bits): P present, R, W, A accessed, LEAF (a leaf at any
 * level; at level 0 every present entry is a leaf), and bits 12..51 the
 * host address of the page or of the next table.
 *
 * Dirty bits are kept out of line: each table page ends in a 512-bit dirty
 * vector, bit i for the leaf in entry i (x86 keeps D in the entry itself).
 * A sync then reads and clears 64 leaves with one atomic exchange and reads
 * 64 bytes per table instead of 4 KiB: at a 4 KiB granule, 32 KiB per GiB
 * tracked rather than 2 MiB of entries and a locked operation per dirty
 * page (measured before this layout: ~210 us per GiB clean and ~740 us at
 * one page in four dirty, bound by memory bandwidth; docs/PERFORMANCE.md).
 * Bits of slots that hold no leaf mean nothing and are ignored.
 *
 * The dirty protocol is what makes "no write is ever missed" hold while
 * dirty bits are read and cleared, and blocks are split, under running DMA:
 * an engine first copies the data, then walks the table again to the leaf
 * that maps the page *now*, sets that leaf's dirty bit (all atomics here
 * are sequentially consistent), and checks that the slot still holds the
 * same leaf; if it does not (a split replaced the block meanwhile), it walks
 * again and sets the bit where the page is mapped now.  A clear that comes
 * before the bit is set leaves it set for the next read; a split carries
 * the block's bit to every small leaf after the swap, so a bit set before
 * the swap is carried and one set after it is set again in the new table.
 * Engines never trust a cached dirty state.
 */
#ifndef VFDMA_IOMMU_SIM_PT_IMPL_H
#define VFDMA_IOMMU_SIM_PT_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "iommu/sim_pt.h"

#define PTE_P	 (1ull << 0)
#define PTE_R	 (1ull << 1)
#define PTE_W	 (1ull << 2)
#define PTE_A	 (1ull << 5)
#define PTE_LEAF (1ull << 7)
#define PTE_ADDR 0x000ffffffffff000ull

#define ENTRIES	   512
#define MAX_ENGINES 64
#define FAULT_LOG  64

struct table {
	_Atomic uint64_t e[ENTRIES];
	_Atomic uint64_t d[ENTRIES / 64]; /* dirty vector: bit i for e[i] */
};

struct vfd_simpt {
	struct table *root;
	unsigned top;	  /* level of the root: 2 (39 bits) or 3 (48 bits) */
	unsigned va_bits;
	uint64_t pgsizes;

	/* Engines, for the grace period before a table page is freed. */
	pthread_mutex_t lock;
	struct vfd_simdma *engines[MAX_ENGINES];
	_Atomic uint64_t epoch;

	/* Tables unlinked by the current operation, freed at its end. */
	struct table **retired;
	size_t nretired, cap_retired;
};

/*
 * One cached translation of a 4 KiB page.  The engine fills it; the control
 * path may invalidate it from another thread, so both words are atomic and
 * a reader checks the tag again after reading the data.
 */
struct iotlb_entry {
	_Atomic uint64_t tag;  /* (iova >> 12) + 1; 0 = empty */
	_Atomic uint64_t data; /* host page address | prot */
};

struct vfd_simdma {
	struct vfd_simpt *pt;
	_Atomic uint64_t active; /* epoch this engine's access started in; 0 idle */
	struct iotlb_entry *tlb;
	unsigned tlb_mask;
	int slot;

	pthread_mutex_t fault_lock;
	struct vfd_sim_fault faults[FAULT_LOG];
	unsigned fault_head, fault_count;
	uint64_t faults_lost;
};

static inline uint64_t level_size(unsigned level)
{
	return 1ull << (12 + 9 * level);
}

static inline unsigned level_index(uint64_t iova, unsigned level)
{
	return (iova >> (12 + 9 * level)) & (ENTRIES - 1);
}

static inline struct table *entry_table(uint64_t v)
{
	return (struct table *)(uintptr_t)(v & PTE_ADDR);
}

static inline bool entry_is_leaf(uint64_t v, unsigned level)
{
	return (v & PTE_P) && (level == 0 || (v & PTE_LEAF));
}

/* The table an entry pointer is in (tables are 4 KiB aligned), its index. */
static inline struct table *table_of(_Atomic uint64_t *slot)
{
	return (struct table *)((uintptr_t)slot & ~(uintptr_t)(VFD_SIM_PG_4K - 1));
}

static inline unsigned slot_index(_Atomic uint64_t *slot)
{
	return (unsigned)(slot - table_of(slot)->e);
}

static inline _Atomic uint64_t *dirty_word(struct table *t, unsigned i)
{
	return &t->d[i / 64];
}

static inline uint64_t dirty_mask(unsigned i)
{
	return 1ull << (i % 64);
}

/* Test and clear the dirty bit of entry @i. */
static inline bool dirty_take(struct table *t, unsigned i)
{
	return atomic_fetch_and(dirty_word(t, i), ~dirty_mask(i)) & dirty_mask(i);
}

static inline unsigned entry_prot(uint64_t v)
{
	return (v & PTE_R ? VFD_SIM_READ : 0) | (v & PTE_W ? VFD_SIM_WRITE : 0);
}

/* Walk to the leaf mapping @iova: its slot, value and level; NULL if none. */
static inline _Atomic uint64_t *walk(struct vfd_simpt *pt, uint64_t iova, uint64_t *val,
				     unsigned *level)
{
	struct table *t = pt->root;
	for (unsigned l = pt->top;; l--) {
		_Atomic uint64_t *slot = &t->e[level_index(iova, l)];
		uint64_t v = atomic_load_explicit(slot, memory_order_acquire);
		if (!(v & PTE_P))
			return NULL;
		if (entry_is_leaf(v, l)) {
			*val = v;
			*level = l;
			return slot;
		}
		t = entry_table(v);
	}
}

#endif
