/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The migration stream's layout (include/vfdma/migrate.h documents it),
 * shared by the writer (migrate.c) and the reader (migrate_dst.c).
 * Internal.  Fields are little-endian on the wire.
 */
#ifndef VFDMA_IOMMU_MIGRATE_STREAM_H
#define VFDMA_IOMMU_MIGRATE_STREAM_H

#include <endian.h>
#include <stdint.h>

#define VFD_MIG_MAGIC "VFDMAMIG"

struct vfd_mig_hdr {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
};

struct vfd_mig_rec {
	uint32_t type;
	uint32_t prot;
	uint64_t iova;
	uint64_t len;
};

_Static_assert(sizeof(struct vfd_mig_hdr) == 16, "stream header is 16 bytes");
_Static_assert(sizeof(struct vfd_mig_rec) == 24, "record head is 24 bytes");

/* Device state a stream may carry at most (a reader's sanity bound). */
#define VFD_MIG_STATE_MAX (256ull << 20)

#endif
