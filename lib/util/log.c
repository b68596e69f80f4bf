/* SPDX-License-Identifier: BSD-3-Clause */
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfdma/version.h"

/* -1: not initialised yet (VFDMA_LOG not read). */
int vfd_log_level = -1;

static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static vfdma_log_fn sink_fn;
static void *sink_ctx;

static const char *const level_names[] = {"off", "error", "warn", "info", "debug"};

void vfd_log_init(void)
{
	int level = VFDMA_LOG_OFF;
	const char *env = getenv("VFDMA_LOG");
	if (env) {
		for (int i = 0; i <= VFDMA_LOG_DEBUG; i++)
			if (!strcasecmp(env, level_names[i]))
				level = i;
	}
	int expect = -1;
	__atomic_compare_exchange_n(&vfd_log_level, &expect, level, false, __ATOMIC_RELAXED,
				    __ATOMIC_RELAXED);
}

int vfdma_log_set_level(enum vfdma_log_level level)
{
	if ((int)level < VFDMA_LOG_OFF || level > VFDMA_LOG_DEBUG)
		return -EINVAL;
	__atomic_store_n(&vfd_log_level, (int)level, __ATOMIC_RELAXED);
	return 0;
}

enum vfdma_log_level vfdma_log_get_level(void)
{
	if (__atomic_load_n(&vfd_log_level, __ATOMIC_RELAXED) < 0)
		vfd_log_init();
	return (enum vfdma_log_level)__atomic_load_n(&vfd_log_level, __ATOMIC_RELAXED);
}

int vfdma_log_set_fn(vfdma_log_fn fn, void *ctx)
{
	pthread_mutex_lock(&sink_lock);
	sink_fn = fn;
	sink_ctx = ctx;
	pthread_mutex_unlock(&sink_lock);
	return 0;
}

__attribute__((format(printf, 2, 0))) static void log_vmsg(enum vfdma_log_level level,
							      const char *fmt, va_list ap)
{
	char buf[512];
	int saved = errno;

	vsnprintf(buf, sizeof(buf), fmt, ap);

	pthread_mutex_lock(&sink_lock);
	if (sink_fn)
		sink_fn(sink_ctx, level, buf);
	else
		fprintf(stderr, "vfdma %s: %s\n", level_names[level], buf);
	pthread_mutex_unlock(&sink_lock);
	errno = saved;
}

void vfd_log_msg(enum vfdma_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void vfdma_log(enum vfdma_log_level level, const char *fmt, ...)
{
	if (level == VFDMA_LOG_OFF || (unsigned int)level > VFDMA_LOG_DEBUG || !vfd_log_on(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

const char *vfdma_version(void)
{
	return VFDMA_VERSION_STRING;
}
