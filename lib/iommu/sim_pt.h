/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The sim backend's IOMMU: a software page table shaped like x86-64 second
 * stage tables (512 entries a level, 4 KiB leaves, 2 MiB and 1 GiB block
 * leaves), an IOTLB per DMA engine that keeps using a translation until it is
 * invalidated, accessed bits in the entries and dirty bits in a vector at
 * the end of each table page (one bit per entry, 64 to a word, so a sync
 * reads and clears 64 leaves at once) set by the DMA engine, permission
 * checks, and a fault log.  Software devices read and write memory through a DMA
 * engine (vfd_simdma_*), exactly as a device would through an IOMMU.
 *
 * "Physical" addresses are this process's virtual addresses: a leaf maps an
 * IOVA to host memory the engine can memcpy to.
 *
 * Concurrency: map, unmap, split, merge and dirty reads change the table and
 * are serialised by the caller (the domain lock); DMA engines walk the table
 * without locks, from any thread, at the same time.  Entries are updated
 * with atomic operations; an engine sets A with compare-and-swap on the
 * exact entry it translated through, and after setting a dirty bit checks
 * that the entry it was set for is still in place (else sets it again where
 * the page is mapped now), so no write's dirty bit is lost to a split.  Table pages that leave the tree are not reused
 * until every engine that might still be walking them has finished its
 * current access (a small epoch scheme).
 *
 * Internal; not part of the public API.
 */
#ifndef VFDMA_IOMMU_SIM_PT_H
#define VFDMA_IOMMU_SIM_PT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFD_SIM_PG_4K (1ull << 12)
#define VFD_SIM_PG_2M (1ull << 21)
#define VFD_SIM_PG_1G (1ull << 30)

/* Access rights of a mapping (and the kind of a DMA access). */
#define VFD_SIM_READ  (1u << 0)
#define VFD_SIM_WRITE (1u << 1)

struct vfd_simpt;
struct vfd_simdma;

/* Why a DMA access faulted. */
enum vfd_sim_fault_reason {
	VFD_SIM_FAULT_NOT_PRESENT = 1,
	VFD_SIM_FAULT_PERM,
	VFD_SIM_FAULT_RANGE, /* IOVA beyond the table's address width */
};

struct vfd_sim_fault {
	uint64_t iova;
	uint32_t access; /* VFD_SIM_READ or VFD_SIM_WRITE */
	uint32_t reason; /* enum vfd_sim_fault_reason */
};

/*
 * Create a table: @pgsizes is a bitmap of page sizes the table may use
 * (VFD_SIM_PG_4K must be in it; 2M and 1G optional), @va_bits the IOVA width
 * (39: three levels, or 48: four).  NULL and errno on failure.
 */
struct vfd_simpt *vfd_simpt_create(uint64_t pgsizes, unsigned va_bits);
/* Free the table and every page of it.  No engine may still use it. */
void vfd_simpt_destroy(struct vfd_simpt *pt);

uint64_t vfd_simpt_pgsizes(const struct vfd_simpt *pt);

/*
 * Map [iova, iova + size) to host memory at @host with @prot, using the
 * largest allowed page sizes that alignment permits.  All of iova, host
 * and size must be 4 KiB aligned.  If anything in the range is mapped
 * already: -EEXIST; out of memory: -ENOMEM.  On failure nothing stays
 * mapped (what this call mapped is undone).  Returns 0.
 */
int vfd_simpt_map(struct vfd_simpt *pt, uint64_t iova, void *host, uint64_t size,
		  unsigned prot);

/*
 * Unmap leaves in [iova, iova + size).  Like VT-d, a block leaf that the
 * range only partly covers is unmapped whole.  Returns the number of bytes
 * unmapped (which may differ from @size: the caller must check), or a
 * negative errno for bad arguments.  The caller must then invalidate the
 * engines' IOTLBs (vfd_simdma_invalidate) before reusing the IOVAs.
 */
int64_t vfd_simpt_unmap(struct vfd_simpt *pt, uint64_t iova, uint64_t size);

/*
 * Translate: host address for @iova, the leaf size and protection in
 * *leaf_size / *prot (either may be NULL).  NULL if not mapped.
 */
void *vfd_simpt_lookup(struct vfd_simpt *pt, uint64_t iova, uint64_t *leaf_size,
		       unsigned *prot);

/*
 * Split every block leaf in [iova, iova + size) into 4 KiB leaves.  Each
 * small leaf inherits the block's output address, protection, and its
 * accessed and dirty bits as they are once the block was replaced, so no
 * dirty state is lost.  Returns the number of blocks split, or -ENOMEM
 * (blocks split before the failure stay split, which is still correct).
 */
int vfd_simpt_split(struct vfd_simpt *pt, uint64_t iova, uint64_t size);

/*
 * Merge back: where a table of 512 leaves maps one contiguous, suitably
 * aligned host range with one protection, and the block size is allowed,
 * replace it by one block leaf carrying the OR of their A/D bits.  Repeats
 * upward (512 2 MiB leaves become a 1 GiB leaf).  Returns blocks made.
 */
int vfd_simpt_merge(struct vfd_simpt *pt, uint64_t iova, uint64_t size);

/*
 * Dirty bits of the leaves in [iova, iova + size) (4 KiB aligned), reported
 * at 4 KiB granularity into @bitmap (bit i = page iova + i * 4 KiB), OR-ed
 * into what is there (@bitmap may be NULL: only count, and clear).  A block
 * leaf reports all its pages in the range.
 * With @clear, dirty bits are cleared atomically as they are read (64
 * leaves of a table per atomic exchange).  Engines
 * never cache dirty bits in their IOTLB, so a write that races with the
 * clear is reported now or in the next read, never lost.  Returns the
 * number of dirty leaves seen.
 */
int64_t vfd_simpt_read_dirty(struct vfd_simpt *pt, uint64_t iova, uint64_t size,
			     uint64_t *bitmap, bool clear);

/* Number of leaves of each size and table pages in use (for tests). */
struct vfd_simpt_stats {
	uint64_t leaves_4k, leaves_2m, leaves_1g;
	uint64_t tables;
};
void vfd_simpt_get_stats(struct vfd_simpt *pt, struct vfd_simpt_stats *st);

/*
 * A DMA engine: the view of one device through the IOMMU.  Each engine has
 * its own IOTLB of @iotlb_entries (a power of two, 0 for none) translations.
 */
struct vfd_simdma *vfd_simdma_create(struct vfd_simpt *pt, unsigned iotlb_entries);
void vfd_simdma_destroy(struct vfd_simdma *e);

/*
 * Device reads (@access VFD_SIM_READ: IOVA space -> @buf) or writes
 * (VFD_SIM_WRITE: @buf -> IOVA space) @len bytes at @iova.  Sets accessed
 * bits, and dirty bits on writes.  On a fault the access stops at the
 * faulting page, the fault is logged, and -EFAULT returns (bytes before the
 * fault were transferred, as on real hardware).
 */
int vfd_simdma_rw(struct vfd_simdma *e, uint64_t iova, void *buf, size_t len,
		  unsigned access);

/* Drop the engine's cached translations for [iova, iova + size), or all. */
void vfd_simdma_invalidate(struct vfd_simdma *e, uint64_t iova, uint64_t size);
void vfd_simdma_invalidate_all(struct vfd_simdma *e);

/*
 * Take up to @max logged faults (oldest first) into @out; returns how many.
 * The log keeps the most recent 64 faults; *lost (may be NULL) gets the
 * number that were overwritten since the last call.
 */
unsigned vfd_simdma_faults(struct vfd_simdma *e, struct vfd_sim_fault *out, unsigned max,
			   uint64_t *lost);

#endif
