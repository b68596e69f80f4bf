/* SPDX-License-Identifier: BSD-3-Clause */
/* Thread slots (see tslot.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/tslot.h"

__thread int vfd_tslot_id __attribute__((tls_model("initial-exec"))) = -1;

static pthread_mutex_t tslot_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t tslot_once = PTHREAD_ONCE_INIT;
static pthread_key_t tslot_key;
static bool tslot_key_ok;
static uint64_t tslot_used[VFD_TSLOT_MAX / 64];
static unsigned tslot_overflow;

static void tslot_release(void *arg)
{
	int s = (int)((uintptr_t)arg - 1);

	pthread_mutex_lock(&tslot_lock);
	tslot_used[s / 64] &= ~(UINT64_C(1) << (s % 64));
	pthread_mutex_unlock(&tslot_lock);
	vfd_tslot_id = -1;
}

static void tslot_init(void)
{
	tslot_key_ok = pthread_key_create(&tslot_key, tslot_release) == 0;
}

int vfd_tslot_slow(void)
{
	int s = -1;

	pthread_once(&tslot_once, tslot_init);
	pthread_mutex_lock(&tslot_lock);
	for (unsigned w = 0; w < VFD_TSLOT_MAX / 64 && s < 0; w++) {
		if (~tslot_used[w]) {
			unsigned b = (unsigned)__builtin_ctzll(~tslot_used[w]);
			tslot_used[w] |= UINT64_C(1) << b;
			s = (int)(w * 64 + b);
		}
	}
	if (s < 0) {
		/* Every slot is taken: share one, without registering. */
		s = (int)(tslot_overflow++ % VFD_TSLOT_MAX);
		pthread_mutex_unlock(&tslot_lock);
		vfd_tslot_id = s;
		return s;
	}
	pthread_mutex_unlock(&tslot_lock);
	/* Without a key the slot is simply never given back. */
	if (tslot_key_ok)
		pthread_setspecific(tslot_key, (void *)(uintptr_t)(s + 1));
	vfd_tslot_id = s;
	return s;
}
