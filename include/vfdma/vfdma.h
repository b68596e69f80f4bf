/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * vfdma umbrella header: includes the whole public API.
 *
 * Conventions for every function in it: a return of 0 (or a non-negative
 * value) means success, a negative errno means failure, and a failed call
 * leaves all state as it was.  Functions that create an object return it, or
 * NULL with errno set.  The library never exits, aborts or prints (unless
 * logging is enabled, see vfdma/log.h).
 */
#ifndef VFDMA_VFDMA_H
#define VFDMA_VFDMA_H

#include "vfdma/version.h"
#include "vfdma/log.h"
#include "vfdma/iova.h"
#include "vfdma/iommu.h"
#include "vfdma/dma.h"
#include "vfdma/arena.h"
#include "vfdma/mem.h"
#include "vfdma/pci.h"
#include "vfdma/sim.h"
#include "vfdma/dirty.h"
#include "vfdma/migrate.h"

#endif
