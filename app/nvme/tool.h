/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Small helpers shared by the NVMe tools (identify.c, perf*.c): option
 * values, the domain, JSON strings.  Not part of the driver.
 */
#ifndef VFDMA_APP_NVME_TOOL_H
#define VFDMA_APP_NVME_TOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vfdma/vfdma.h"

/*
 * Open a domain with backend @name ("auto", "iommufd", "type1", "noiommu",
 * "sim"; NULL: the library's default, which honours $VFDMA_BACKEND).  A
 * backend named on the command line wins over the environment.  Prints
 * why on failure and returns NULL.
 */
struct vfdma_domain *tool_domain(const char *prog, const char *name);

/* "4096", "4k", "128K", "1m", "2G" -> bytes; false if not a size. */
bool tool_size(const char *s, uint64_t *out);

/* A decimal or 0x number; false if not one. */
bool tool_u64(const char *s, uint64_t *out);

/* @s as a JSON string, quoted and escaped. */
void tool_json_str(FILE *f, const char *s);

#endif
