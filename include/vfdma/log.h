/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file
 * Logging.  libvfdma prints nothing unless logging is enabled, either with
 * vfdma_log_set_level() or with the environment variable VFDMA_LOG
 * (error, warn, info or debug), read once at the first log call.
 */
#ifndef VFDMA_LOG_H
#define VFDMA_LOG_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Log levels, most severe first. */
enum vfdma_log_level {
	VFDMA_LOG_OFF = 0, /**< nothing (the default) */
	VFDMA_LOG_ERROR,
	VFDMA_LOG_WARN,
	VFDMA_LOG_INFO,
	VFDMA_LOG_DEBUG,
};

/**
 * A log sink: receives every message at or above the current level.
 * @param ctx  the pointer given to vfdma_log_set_fn()
 * @param level  severity of the message
 * @param msg  the message, without a trailing newline
 */
typedef void (*vfdma_log_fn)(void *ctx, enum vfdma_log_level level, const char *msg);

/**
 * Set the log level; messages less severe than @p level are dropped.
 * Overrides VFDMA_LOG.
 * @return 0, or -EINVAL if @p level is not a vfdma_log_level.
 */
int vfdma_log_set_level(enum vfdma_log_level level);

/** The current log level. */
enum vfdma_log_level vfdma_log_get_level(void);

/**
 * Send messages to @p fn instead of stderr; NULL restores stderr.
 * @return 0 (always succeeds).
 */
int vfdma_log_set_fn(vfdma_log_fn fn, void *ctx);

/**
 * Log a printf-style message at @p level through vfdma's level and sink,
 * as the library's own messages are (for libraries built on vfdma, such as
 * libvfdma_dpdk, and for applications that want one log).  Messages longer
 * than 511 bytes are cut.  Keeps errno.
 */
void vfdma_log(enum vfdma_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif
