/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma-guest.h - helpers shared by the guest programs that use libvfdma
 * (dma-nvme, two-nvme, fault-sweep, type1-limits).  Header-only, like
 * vmtest.h.
 */
#ifndef VFDMA_GUEST_H
#define VFDMA_GUEST_H

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vfdma/vfdma.h"
#include "vmtest.h"

/* The @i-th PCI address in $VFDMA_VFIO_BDFS (into @out), or NULL. */
static inline const char *vg_bdf(unsigned int i, char out[32])
{
	const char *list = getenv("VFDMA_VFIO_BDFS");
	if (!list)
		return NULL;
	for (;;) {
		list += strspn(list, " ");
		size_t n = strcspn(list, " ");
		if (!n)
			return NULL;
		if (!i--) {
			if (n >= 32)
				return NULL;
			memcpy(out, list, n);
			out[n] = '\0';
			return out;
		}
		list += n;
	}
}

/* Open file descriptors of this process. */
static inline int vg_nr_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* A page-aligned buffer of @len bytes filled with @fill. */
static inline void *vg_buf(size_t len, int fill)
{
	void *p = NULL;
	if (posix_memalign(&p, 4096, len))
		return NULL;
	memset(p, fill, len);
	return p;
}

/* True if all @len bytes at @p equal @fill. */
static inline bool vg_all(const void *p, size_t len, int fill)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < len; i++)
		if (c[i] != (unsigned char)fill)
			return false;
	return true;
}

/* The domain with the backend the harness asks for ($VFDMA_BACKEND). */
static inline struct vfdma_domain *vg_domain(void)
{
	struct vfdma_domain *d = vfdma_domain_open(NULL);
	if (!d) {
		vt_fail("domain_open", "backend %s: %s", getenv("VFDMA_BACKEND"), strerror(errno));
		return NULL;
	}
	const char *want = getenv("VFDMA_BACKEND");
	const char *got = vfdma_backend_name((enum vfdma_backend)vfdma_domain_backend(d));
	if (want && strcmp(want, got)) {
		vt_fail("domain_open", "asked for %s, got %s", want, got);
		vfdma_domain_close(d);
		return NULL;
	}
	vt_pass("domain_open");
	return d;
}

#endif
