/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Internal logging macros over the public log API (include/vfdma/log.h).
 * Uses the __atomic builtins rather than <stdatomic.h> so that C++ tests can
 * include it.
 */
#ifndef VFDMA_UTIL_LOG_H
#define VFDMA_UTIL_LOG_H

#include <stdbool.h>

#include "vfdma/log.h"

extern int vfd_log_level; /* -1 until VFDMA_LOG was read */

void vfd_log_init(void);
void vfd_log_msg(enum vfdma_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline bool vfd_log_on(enum vfdma_log_level level)
{
	int cur = __atomic_load_n(&vfd_log_level, __ATOMIC_RELAXED);
	if (__builtin_expect(cur < 0, 0)) {
		vfd_log_init();
		cur = __atomic_load_n(&vfd_log_level, __ATOMIC_RELAXED);
	}
	return (int)level <= cur;
}

#define VFD_LOG(level, ...)                                                              \
	do {                                                                             \
		if (vfd_log_on(level))                                                   \
			vfd_log_msg(level, __VA_ARGS__);                                 \
	} while (0)

#define VFD_ERR(...) VFD_LOG(VFDMA_LOG_ERROR, __VA_ARGS__)
#define VFD_WARN(...) VFD_LOG(VFDMA_LOG_WARN, __VA_ARGS__)
#define VFD_INFO(...) VFD_LOG(VFDMA_LOG_INFO, __VA_ARGS__)
#define VFD_DBG(...) VFD_LOG(VFDMA_LOG_DEBUG, __VA_ARGS__)

/* Log once per call site (for conditions that would otherwise flood). */
#define VFD_LOG_ONCE(level, ...)                                                         \
	do {                                                                             \
		static int done_;                                                \
		if (vfd_log_on(level) && !__atomic_exchange_n(&done_, 1, __ATOMIC_RELAXED))               \
			vfd_log_msg(level, __VA_ARGS__);                                 \
	} while (0)

#endif
