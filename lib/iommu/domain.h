/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Domains, devices and the backend ops table (internal).
 *
 * The core (domain.c, map.c) owns everything that is the same for every
 * backend: the IOVA allocator, the mapping table, batching and rollback,
 * gathered and deferred unmap, the consistency check, range intersection
 * on attach.  A backend only talks to its kernel interface (or, for sim, to
 * the software IOMMU) through the ops below; the core never asks which
 * backend it has.
 *
 * Locking.  dom->op_lock is a read-write lock: map, unmap, translate and
 * flush hold it shared (so kernel calls of concurrent mappers run in
 * parallel); device attach/detach, check and close hold it exclusive, so
 * the backend and the table never change under them.  dom->lock (a mutex)
 * protects the mapping table, the deferred queue and the device list, and
 * is never held across a kernel call.  Backends whose own state is not
 * thread-safe (sim's page table) serialise inside their ops.
 */
#ifndef VFDMA_IOMMU_DOMAIN_H
#define VFDMA_IOMMU_DOMAIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vfdma/dma.h"
#include "vfdma/iommu.h"
#include "vfdma/pci.h"
#include "dma/xlate.h"
#include "util/rbtree.h"

struct vfdma_domain;
struct vfdma_device;
struct vfd_exc;

struct vfd_backend_ops {
	const char *name;
	enum vfdma_backend kind;
	/*
	 * VFDMA_DIRTY_CAP_* the backend can offer; dom->dirty_caps says what
	 * it offers now (type1: what the kernel reported after an attach).
	 */
	unsigned int dirty_caps;
	/*
	 * The backend's unmap keeps the dirty bits of what it unmaps while a
	 * log runs (type1: UNMAP_DMA with GET_DIRTY_BITMAP, handed to
	 * vfd_dirty_keep()), so vfd_dirty_harvest() need not read them first.
	 */
	bool dirty_unmap_keeps;
	/*
	 * Optional: the capabilities this domain has now, when they depend
	 * on its devices (iommufd: each device's IOMMU).  dom->lock held.
	 * Without it, dom->dirty_caps.
	 */
	unsigned int (*dirty_caps_get)(struct vfdma_domain *dom);

	/*
	 * Set up dom->be; report the first usable ranges and page sizes
	 * through vfd_domain_set_ranges() and dom->pgsizes, and set
	 * dom->be_ready if maps can be issued before any device is attached.
	 */
	int (*open)(struct vfdma_domain *dom);
	void (*close)(struct vfdma_domain *dom);

	/*
	 * Open the VFIO device dev->bdf and attach it: on success dev->fd is
	 * its VFIO device fd and dom->be_ready is set.  NULL: the backend
	 * has no PCI devices (sim).  Called with op_lock held exclusive.
	 */
	int (*device_attach)(struct vfdma_domain *dom, struct vfdma_device *dev);
	void (*device_detach)(struct vfdma_domain *dom, struct vfdma_device *dev);

	/*
	 * The usable ranges and page sizes as the kernel reports them now
	 * (after attaches): a vfd_malloc'd array in *ranges.
	 */
	int (*query)(struct vfdma_domain *dom, struct vfdma_iova_range **ranges, size_t *n,
		     uint64_t *pgsizes);

	/* Map one contiguous run; all or nothing. */
	int (*map)(struct vfdma_domain *dom, uint64_t iova, void *vaddr, uint64_t len,
		   unsigned int prot);
	/*
	 * Unmap [iova, iova + len), which covers whole mappings, and make the
	 * IOTLB forget them.  Returns the bytes the kernel says it unmapped
	 * (the core treats any other figure than len as an inconsistency).
	 */
	int64_t (*unmap)(struct vfdma_domain *dom, uint64_t iova, uint64_t len);
	/*
	 * Optional: the backend decides the IOVA of [vaddr, vaddr + len)
	 * (noiommu: the physical address, -EINVAL if not contiguous).  The
	 * core then takes that IOVA from the allocator as a fixed one.
	 */
	int (*choose_iova)(struct vfdma_domain *dom, void *vaddr, uint64_t len, uint64_t *iova);
	/*
	 * Dirty tracking (NULL: the backend has none).  start and stop are
	 * called with op_lock exclusive: @split asks that block mappings be
	 * split to the smallest page (and that new mappings be created so)
	 * until stop merges them back; start clears the dirty state.
	 * dirty_read ORs the dirty bits of [iova, iova + len) into @bitmap,
	 * one bit per dom->granule from iova, clearing them with @clear;
	 * it returns the dirty entries seen or a negative errno.
	 */
	int (*dirty_start)(struct vfdma_domain *dom, bool split);
	void (*dirty_stop)(struct vfdma_domain *dom, bool split);
	int64_t (*dirty_read)(struct vfdma_domain *dom, uint64_t iova, uint64_t len,
			      uint64_t *bitmap, bool clear);
	/*
	 * Is [iova, iova + len) mapped, to vaddr with prot?  1 yes, 0 no (or
	 * not entirely), negative errno.  Called with op_lock exclusive.
	 */
	int (*probe)(struct vfdma_domain *dom, uint64_t iova, uint64_t len, void *vaddr,
		     unsigned int prot);
};

/*
 * One mapping: a run of the process's memory at a run of IOVA, 32 bytes
 * in a type-stable slab (lib/iommu/maptab.c): records are recycled, never
 * freed before the domain closes, so a lock-free reader that loaded a
 * record pointer from the IOVA table always reads live memory.  Every
 * field is written with atomic stores (readers load them without the
 * lock) and read back through a generation in @word: even while the
 * record is entered, odd from the moment it left the tables, so a reader
 * that raced a removal or a reuse notices and asks again under the lock.
 */
#define VFD_MAP_REG_COUNT_MAX 127u

struct vfd_map {
	uint64_t iova;
	uint64_t len;
	union {
		uintptr_t va;	      /* entered */
		struct vfd_map *next; /* out of the tables: unmap chain, deferred queue, slab */
	};
	uint64_t word; /* VFD_MAPW_*: flags, registration count, generation */
};

#define VFD_MAPW_PROT 3ull	     /* VFDMA_PROT_* */
#define VFD_MAPW_FIXED (1ull << 2)    /* IOVA given by the caller (alloc_fixed) */
#define VFD_MAPW_UNTABLED (1ull << 3) /* beyond the tables' 48 bits: exception trees */
#define VFD_MAPW_HIDDEN (1ull << 4)   /* a mapping-cache entry's: no vaddr -> IOVA */
#define VFD_MAPW_EXC (1ull << 5)      /* in the exception tree by vaddr */
/*
 * A registration folded into this mapping (memreg.c): every page of it is
 * registered this many times (1..VFD_MAP_REG_COUNT_MAX), with no span or
 * region record.  0 otherwise.  Under dom->lock.
 */
#define VFD_MAPW_REG_SHIFT 6
#define VFD_MAPW_REG (127ull << VFD_MAPW_REG_SHIFT)
#define VFD_MAPW_GEN_SHIFT 13
#define VFD_MAPW_GEN1 (1ull << VFD_MAPW_GEN_SHIFT)

struct vfdma_domain {
	const struct vfd_backend_ops *ops;
	void *be; /* backend state */
	struct vfdma_domain_opts opts;

	pthread_rwlock_t op_lock;
	pthread_mutex_t lock;

	struct vfdma_iova_space *iova;
	uint64_t granule;
	uint64_t pgsizes;
	uint64_t dma_limit;
	struct vfdma_iova_range *ranges;
	size_t nr_ranges;
	bool be_ready; /* the backend can take maps now */

	/*
	 * Mapping table (lib/iommu/maptab.c; under lock).  The two lock-free
	 * translation tables (lib/dma/xlate.h) are the index: xl_iova (CONST)
	 * maps each IOVA page to its record, xl_va (LINEAR) each vaddr page to
	 * the lowest IOVA mapping it.  What they cannot describe is in the
	 * exception trees (side nodes pointing to records): exc_va, an
	 * interval tree of the mappings whose vaddr range overlaps another's
	 * and of those beyond 48 bits; exc_iova, the latter by IOVA.
	 * xl_untabled (atomic) counts the latter: translation then asks the
	 * trees too.
	 */
	struct vfd_xlate xl_va;
	struct vfd_xlate xl_iova;
	uint64_t xl_untabled;
	struct vfd_rb_root exc_va;
	struct vfd_rb_root exc_iova;
	struct vfd_exc *exc_spare; /* nodes reserved for the next inserts */
	uint64_t nr_exc;	   /* nodes in use */
	struct vfd_map *slab_free;
	void **slab_chunks;
	uint64_t nr_chunks, cap_chunks;
	uint64_t nr_maps;
	uint64_t mapped_bytes;

	/* Registrations and the mapping cache (lib/dma/memreg.c); atomic, lazily made. */
	struct vfd_memreg *mem;

	/* Deferred unmaps (under lock). */
	struct vfd_map *defer_head;
	uint64_t defer_bytes;
	uint32_t defer_entries;
	uint64_t defer_oldest_ns;

	/* Devices (under lock). */
	struct vfdma_device *devices;
	unsigned int nr_devices;

	/* The running dirty log, if any (set and cleared under op_lock exclusive). */
	struct vfdma_dirty *dirty;
	/*
	 * VFDMA_DIRTY_CAP_* offered now (atomic): ops->dirty_caps when the
	 * domain opens; a backend whose kernel decides changes it in open,
	 * attach or query.
	 */
	unsigned int dirty_caps;

	uint64_t kernel_map_calls;   /* atomic */
	uint64_t kernel_unmap_calls; /* atomic */
	int broken;		     /* atomic: 1 once inconsistent */
};

/* A BAR mapped into the process. */
struct vfd_bar_map {
	void *addr;
	uint64_t len;
};

struct vfdma_device {
	struct vfdma_domain *dom;
	struct vfdma_device *next;
	char bdf[16];
	int fd;	  /* VFIO device fd; -1 for sim devices */
	void *be; /* backend state of the device */
	struct vfd_simdma *sim; /* sim devices: the DMA engine */

	/* PCI access state (vfio_pci.c). */
	struct vfd_bar_map bars[6];
	int *irq_fds;
	unsigned int nr_irq_fds;
	int irq_type;
	struct vfd_pci *pci; /* vfio_pci.c: cached region info (NULL until used) */
};

/*
 * vfio_pci.c: disable the device's interrupts in the kernel (the core then
 * closes the eventfds) and free dev->pci.  Called first when a device is
 * released, while dev->fd is still open.
 */
void vfd_pci_release(struct vfdma_device *dev);

/* The backends. */
extern const struct vfd_backend_ops vfd_sim_ops;
extern const struct vfd_backend_ops vfd_type1_ops;
extern const struct vfd_backend_ops vfd_iommufd_ops;
extern const struct vfd_backend_ops vfd_noiommu_ops;

/* Replace the domain's usable ranges (copied).  For backend open. */
int vfd_domain_set_ranges(struct vfdma_domain *dom, const struct vfdma_iova_range *ranges,
			  size_t n);

/* The domain's dirty capabilities now (dom->lock held). */
static inline unsigned int vfd_dirty_caps_locked(struct vfdma_domain *dom)
{
	return dom->ops->dirty_caps_get ? dom->ops->dirty_caps_get(dom)
					 : __atomic_load_n(&dom->dirty_caps, __ATOMIC_RELAXED);
}

/*
 * The end of every device attach (domain.c; PCI devices, the iommufd test
 * mock), with op_lock held exclusive and @rc the backend attach's result:
 * narrow the domain to the kernel's ranges and page sizes now (-EBUSY if a
 * mapping is in the way), issue the table's mappings if this attach made
 * the backend ready (@was_ready: it was before), detach again if either
 * failed, list the device; then unlock.  Returns @dev, or frees it and
 * returns NULL with errno.
 */
struct vfdma_device *vfd_domain_attach_end(struct vfdma_domain *dom, struct vfdma_device *dev,
					   bool was_ready, int rc);

/* A new, unlisted device of @dom (no fd yet); NULL and errno ENOMEM. */
struct vfdma_device *vfd_device_new(struct vfdma_domain *dom);
/* Add an attached device to the domain's list (op_lock held exclusive). */
void vfd_domain_list_device(struct vfdma_domain *dom, struct vfdma_device *dev);

/* Mark the domain broken, logging @what with addresses once. */
void vfd_domain_mark_broken(struct vfdma_domain *dom, const char *what, uint64_t iova,
			    uint64_t len, int64_t got);

/* Map-layer helpers used by domain.c (map.c). */
int vfd_map_replay(struct vfdma_domain *dom);
int vfd_map_flush_locked_out(struct vfdma_domain *dom);
void vfd_map_destroy_all(struct vfdma_domain *dom, int *first_err);
int vfd_map_check(struct vfdma_domain *dom);
bool vfd_map_overlaps(struct vfdma_domain *dom, uint64_t first, uint64_t last);
void vfd_map_table_init(struct vfdma_domain *dom);
/* Free the record slab, the exception nodes and the tables (close: no reader left). */
void vfd_map_table_fini(struct vfdma_domain *dom);
/* Bytes really allocated for the mapping table: slab, nodes, tables.  dom->lock held. */
uint64_t vfd_map_table_bytes(const struct vfdma_domain *dom);

/*
 * dirty.c: before the kernel unmaps [iova, iova + len), keep its dirty bits
 * in the running log so the next sync still reports them.  op_lock held.
 */
void vfd_dirty_harvest(struct vfdma_domain *dom, uint64_t iova, uint64_t len);
/*
 * dirty.c: keep pages of [iova, iova + npages * dom->granule) in the running
 * log (bit i of @bits: page i; @bits NULL: all of them), so the next sync
 * reports them.  For backends that read dirty bits the kernel then forgets
 * (an unmap, a clearing read of more than was asked).  No log: nothing.
 * op_lock held.
 */
void vfd_dirty_keep(struct vfdma_domain *dom, uint64_t iova, uint64_t npages,
		    const uint64_t *bits);
/* dirty.c: domain close with a log still running: stop and free it. */
void vfd_dirty_release(struct vfdma_domain *dom);

/*
 * vfdma_map() for the mapping cache: the mapping gets no vaddr -> IOVA
 * translation (vfdma_vaddr_to_iova() never returns it, so memory it returns
 * is always owned by someone else than the cache); IOVA -> vaddr works.
 */
int vfd_map_hidden(struct vfdma_domain *dom, void *vaddr, uint64_t len, unsigned int prot,
		   uint64_t *iova);

/*
 * memreg.c: translate @va through the mapping cache (entries hidden from
 * the domain's vaddr table): 0 with the IOVA and the bytes to the end of
 * the entry, or -ENOENT.  Lock-free.
 */
int vfd_mem_cache_xlate(struct vfdma_domain *dom, uint64_t va, uint64_t *iova, uint64_t *len);

/*
 * For memreg.c (each takes dom->lock).  vfd_map_reg_unfold: the mappings
 * with a folded registration count that overlap [a, b) of vaddr; with
 * @out, up to @max of them are stored (vaddr, len, IOVA; the count in
 * @counts) and their count cleared.  Returns how many there are.
 * vfd_map_reg_fold: give the mapping that is exactly @run the count;
 * -ENOENT if there is none, -ERANGE if the count is above
 * VFD_MAP_REG_COUNT_MAX (the registration keeps its records).
 */
size_t vfd_map_reg_unfold(struct vfdma_domain *dom, uint64_t a, uint64_t b,
			  struct vfdma_map_run *out, uint64_t *counts, size_t max);
int vfd_map_reg_fold(struct vfdma_domain *dom, const struct vfdma_map_run *run, uint64_t count);

/* memreg.c: free the registry and cache of a closing domain (op_lock exclusive). */
void vfd_mem_destroy(struct vfdma_domain *dom);

/* For tests: the page table of a sim domain (NULL for other backends). */
struct vfd_simpt *vfd_sim_domain_pt(struct vfdma_domain *dom);

/* Monotonic clock in nanoseconds. */
uint64_t vfd_now_ns(void);

#endif
