/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * Library version.
 */
#ifndef VFDMA_VERSION_H
#define VFDMA_VERSION_H

#ifdef __cplusplus
extern "C" {
#endif

/** Major version: changes when the ABI breaks (the shared library's soname). */
#define VFDMA_VERSION_MAJOR 0
/** Minor version: additions that keep the ABI. */
#define VFDMA_VERSION_MINOR 1

/** The version of the library actually linked, as "major.minor.patch". */
const char *vfdma_version(void);

#ifdef __cplusplus
}
#endif

#endif
