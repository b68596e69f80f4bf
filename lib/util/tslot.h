/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Thread slots: a small integer per live thread, the lowest one free when the
 * thread first asks, given back when the thread exits, so that per-slot data
 * (e.g. the IOVA allocator's per-thread caches) is reused by later threads
 * instead of leaking.  Internal.
 */
#ifndef VFDMA_UTIL_TSLOT_H
#define VFDMA_UTIL_TSLOT_H

/* More threads than this share slots (the caller's per-slot data is locked). */
#define VFD_TSLOT_MAX 4096

extern __thread int vfd_tslot_id __attribute__((tls_model("initial-exec")));

int vfd_tslot_slow(void);

/* This thread's slot, in [0, VFD_TSLOT_MAX). */
static inline int vfd_tslot(void)
{
	int s = vfd_tslot_id;
	return __builtin_expect(s >= 0, 1) ? s : vfd_tslot_slow();
}

#endif
