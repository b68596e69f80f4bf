/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * Live migration of a userspace driver's DMA memory and device state.
 *
 * Source side: a driver creates a migration over its domain with
 * vfdma_migrate_create(), giving its callbacks (struct vfdma_migrate_ops),
 * and runs vfdma_migrate_save() (records to a callback sink) or
 * vfdma_migrate_save_fd() (a byte stream to a pipe, socket or file).
 * The pre-copy helper:
 *
 * 1. starts a dirty log on the domain (vfdma/dirty.h);
 * 2. round 0: announces every mapping (IOVA, length, protection) and sends
 *    all of its memory;
 * 3. rounds 1..: syncs the log and sends the pages written since the last
 *    round (mappings made or removed meanwhile are announced, new ones sent
 *    whole), until a round's dirty bytes fall below the threshold or the
 *    round limit is reached;
 * 4. calls quiesce() (the device stops issuing DMA and its in-flight DMA
 *    completes), syncs a last time and sends what is dirty (or everything,
 *    with VFDMA_MIGRATE_FINAL_ALL), calls save() for the device state, and
 *    ends the stream.
 *
 * If anything fails after quiesce(), resume() is called on the source so
 * that it keeps running; the source's mappings are never changed.
 *
 * What the dirty log cannot see: CPU stores into mapped memory.  A driver
 * whose CPU writes DMA memory that must migrate (queue entries, for
 * instance) reports them with vfdma_dirty_mark() on vfdma_migrate_log(), or
 * asks for VFDMA_MIGRATE_FINAL_ALL.
 *
 * Destination side: vfdma_migrate_dst_create() over a new domain, then
 * vfdma_migrate_restore_fd() reads a stream, or vfdma_migrate_dst_sink()
 * gives a sink that a source in the same process can write into.  Each
 * mapping is recreated at the same IOVA with the same protection
 * (VFDMA_MAP_FIXED) in memory the destination allocates (or the caller's
 * allocator provides), filled, and at the end restore() gets the device
 * state and resume() restarts the device.  A destination that fails undoes
 * everything it mapped: the domain is as before.  Memory mapped twice on
 * the source (two IOVAs, one vaddr) becomes two copies on the destination.
 *
 * Stream format (vfdma_migrate_save_fd(), little-endian): a 16-byte header
 * { "VFDMAMIG", u32 version = 1, u32 page size }, then records, each a
 * 24-byte head { u32 type, u32 prot, u64 iova, u64 len } followed by len
 * bytes of payload for DATA and STATE records:
 *
 * | type | meaning | payload |
 * |------|---------|---------|
 * | 1 MAP   | a mapping [iova, iova + len) with prot (VFDMA_PROT_*) | none |
 * | 2 UNMAP | the mapping at iova of len bytes is gone | none |
 * | 3 DATA  | memory at [iova, iova + len), inside one mapping | len bytes |
 * | 4 STATE | a piece of device state (pieces concatenate; iova 0) | len bytes |
 * | 5 END   | the end; iova holds the number of records before it | none |
 */
#ifndef VFDMA_MIGRATE_H
#define VFDMA_MIGRATE_H

#include <stddef.h>
#include <stdint.h>

#include "vfdma/dirty.h"
#include "vfdma/iommu.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A migration source (opaque). */
struct vfdma_migrate;
/** A migration destination (opaque). */
struct vfdma_migrate_dst;

/** Stream record types (see the file comment). */
enum vfdma_migrate_rec {
	VFDMA_MIGRATE_REC_MAP = 1,
	VFDMA_MIGRATE_REC_UNMAP = 2,
	VFDMA_MIGRATE_REC_DATA = 3,
	VFDMA_MIGRATE_REC_STATE = 4,
	VFDMA_MIGRATE_REC_END = 5,
};

/** Stream format version written and accepted. */
#define VFDMA_MIGRATE_VERSION 1u

/**
 * A driver's migration callbacks.  Each returns 0 or a negative errno
 * (which the caller of the migration gets back).  A NULL callback is
 * skipped.  The source uses quiesce, save and resume (on failure); the
 * destination restore and resume.
 */
struct vfdma_migrate_ops {
	/** Stop issuing DMA and wait until in-flight DMA completed. */
	int (*quiesce)(void *ctx);
	/**
	 * Save the device state: call vfdma_migrate_put_state() on @p mig
	 * (any number of times; the pieces concatenate).
	 */
	int (*save)(void *ctx, struct vfdma_migrate *mig);
	/** Load the device state saved on the source (@p len may be 0). */
	int (*restore)(void *ctx, const void *state, size_t len);
	/** Restart DMA (destination after restore; source after a failure). */
	int (*resume)(void *ctx);
};

/**
 * Where a source's records go (vfdma_migrate_save()).  Every callback
 * returns 0 or a negative errno, which stops the migration.  Records come
 * in stream order: map before any data of it, unmap after its data.
 */
struct vfdma_migrate_sink {
	/** A mapping [iova, iova + len) with VFDMA_PROT_* @p prot. */
	int (*map)(void *ctx, uint64_t iova, uint64_t len, unsigned int prot);
	/** The mapping at @p iova of @p len bytes is gone. */
	int (*unmap)(void *ctx, uint64_t iova, uint64_t len);
	/**
	 * Memory of [iova, iova + len), inside one mapping: @p data is a copy
	 * made for this call (valid until it returns).
	 */
	int (*data)(void *ctx, uint64_t iova, const void *data, uint64_t len);
	/** A piece of device state (from vfdma_migrate_put_state()). */
	int (*state)(void *ctx, const void *buf, size_t len);
	/** The end of the migration (may be NULL). */
	int (*end)(void *ctx);
	void *ctx; /**< passed to every callback */
};

/** Save flag: after quiesce, send all mapped memory, not only dirty pages. */
#define VFDMA_MIGRATE_FINAL_ALL (1u << 0)

/** Most pre-copy rounds (round 0, the initial copy, included). */
#define VFDMA_MIGRATE_MAX_ROUNDS 64u

/** Options for vfdma_migrate_save(); zero fields mean "default". */
struct vfdma_migrate_opts {
	/**
	 * Pre-copy rounds, round 0 (the full copy) included, 1 ..
	 * VFDMA_MIGRATE_MAX_ROUNDS; default 16.
	 */
	unsigned int max_rounds;
	/**
	 * Stop pre-copy once a dirty round sent fewer bytes than this;
	 * default 64 pages.
	 */
	uint64_t threshold;
	/** The dirty log's granule (default 4096); see vfdma_dirty_opts. */
	uint64_t granule;
	/** Flags of the dirty log (VFDMA_DIRTY_NO_SPLIT). */
	unsigned int dirty_flags;
	/** VFDMA_MIGRATE_FINAL_ALL */
	unsigned int flags;
};

/** What a save did (vfdma_migrate_save()). */
struct vfdma_migrate_stats {
	unsigned int rounds;   /**< pre-copy rounds run, round 0 included */
	uint64_t round_bytes[VFDMA_MIGRATE_MAX_ROUNDS]; /**< memory bytes sent per round */
	uint64_t final_bytes;  /**< memory bytes sent after quiesce */
	uint64_t state_bytes;  /**< device-state bytes */
	uint64_t total_bytes;  /**< all memory bytes sent */
	uint64_t maps;         /**< MAP records */
	uint64_t unmaps;       /**< UNMAP records */
	uint64_t records;      /**< records of every kind before END */
	uint64_t downtime_ns;  /**< from quiesce() to the end */
};

/**
 * Create a migration source over @p dom with the driver's callbacks.
 * Nothing starts until vfdma_migrate_save().
 * @param ops  copied; NULL for no callbacks
 * @return the migration, or NULL with errno EINVAL (NULL domain) or ENOMEM.
 */
struct vfdma_migrate *vfdma_migrate_create(struct vfdma_domain *dom,
					   const struct vfdma_migrate_ops *ops, void *ctx);

/**
 * Free a migration source (not while a save runs).  NULL is ignored.
 */
void vfdma_migrate_destroy(struct vfdma_migrate *mig);

/**
 * Run pre-copy, quiesce, the final copy and the device-state save into
 * @p sink (the file comment says how).  On success the device stays
 * quiesced (the destination takes over); on failure the source is resumed
 * if it was quiesced, and the dirty log is stopped either way.
 * @param opts  NULL for the defaults
 * @param[out] stats  may be NULL
 * @return 0; -EINVAL (NULL migration or sink, a sink callback missing
 *         other than end, bad option), -EBUSY (the domain has a dirty log
 *         already, or a save runs), an error of vfdma_dirty_start() or
 *         vfdma_dirty_sync(), -ENOMEM, or the error a callback returned.
 */
int vfdma_migrate_save(struct vfdma_migrate *mig, const struct vfdma_migrate_sink *sink,
		       const struct vfdma_migrate_opts *opts, struct vfdma_migrate_stats *stats);

/**
 * vfdma_migrate_save() into the stream format, written to @p fd (blocking
 * writes; partial writes and EINTR are retried).
 * @return as vfdma_migrate_save(); -EBADF for a negative fd, or the
 *         write's errno (-EPIPE ...).
 */
int vfdma_migrate_save_fd(struct vfdma_migrate *mig, int fd,
			  const struct vfdma_migrate_opts *opts, struct vfdma_migrate_stats *stats);

/**
 * From a save() callback: send @p len bytes of device state.
 * @return 0; -EINVAL (NULL, or no save() running on @p mig), or the
 *         sink's error.
 */
int vfdma_migrate_put_state(struct vfdma_migrate *mig, const void *buf, size_t len);

/**
 * The dirty log of the save that runs on @p mig (for vfdma_dirty_mark() of
 * CPU stores or device writes the IOMMU cannot see), or NULL when none
 * runs.  Valid until the save returns.
 */
struct vfdma_dirty *vfdma_migrate_log(struct vfdma_migrate *mig);

/** Memory for the destination's mappings, from the caller. */
struct vfdma_migrate_mem {
	/**
	 * Return writable memory of @p len bytes (a multiple of the page
	 * size, page-aligned) for the mapping at @p iova, or NULL.
	 */
	void *(*alloc)(void *ctx, uint64_t iova, uint64_t len, unsigned int prot);
	/** Take back memory alloc() returned. */
	void (*free)(void *ctx, void *vaddr, uint64_t len);
	void *ctx; /**< passed to alloc() and free() */
};

/**
 * Create a migration destination that recreates mappings in @p dom (which
 * should have none at the source's IOVAs).
 * @param ops  restore and resume are used; copied; may be NULL
 * @param mem  copied; NULL: the destination maps anonymous memory itself
 *             (aligned like the IOVA, up to 2 MiB, so large IOMMU pages fit)
 * @return the destination, or NULL with errno EINVAL (NULL domain, or
 *         @p mem without alloc or free) or ENOMEM.
 */
struct vfdma_migrate_dst *vfdma_migrate_dst_create(struct vfdma_domain *dom,
						   const struct vfdma_migrate_ops *ops,
						   void *ctx,
						   const struct vfdma_migrate_mem *mem);

/**
 * A sink whose records go straight into @p dst (a source and a
 * destination in one process).  Its end callback runs restore() and
 * resume().
 * @return 0, or -EINVAL.
 */
int vfdma_migrate_dst_sink(struct vfdma_migrate_dst *dst, struct vfdma_migrate_sink *sink);

/**
 * Read a stream from @p fd up to its END record into @p dst, then call
 * restore() and resume().
 * @return 0; -EINVAL (NULL, or @p dst already used), -EBADF, -EBADMSG (not
 *         a stream of this version, a record out of order or out of range,
 *         or the stream ended early), an error of vfdma_map(), -ENOMEM, a
 *         callback's error, or the read's errno.  On error everything
 *         @p dst mapped is unmapped again.
 */
int vfdma_migrate_restore_fd(struct vfdma_migrate_dst *dst, int fd);

/** What a destination holds (vfdma_migrate_dst_get_info()). */
struct vfdma_migrate_dst_info {
	uint64_t mappings;    /**< mappings it made, alive now */
	uint64_t bytes;       /**< their bytes */
	uint64_t data_bytes;  /**< memory bytes received */
	uint64_t state_bytes; /**< device-state bytes received */
	int done;             /**< 1 once resumed */
	int error;            /**< 0, or the negative errno it failed with */
};

/**
 * Read what a destination holds.
 * @return 0, or -EINVAL.
 */
int vfdma_migrate_dst_get_info(struct vfdma_migrate_dst *dst,
			       struct vfdma_migrate_dst_info *info);

/**
 * Free a destination: unmap every mapping it made from its domain and
 * free their memory (close or quiesce the devices using them first).  NULL
 * is ignored.
 * @return 0, or the first unmap error (everything is released regardless).
 */
int vfdma_migrate_dst_destroy(struct vfdma_migrate_dst *dst);

#ifdef __cplusplus
}
#endif

#endif
