/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The C shim for the C++ unit tests: the public API and the internal headers
 * the tests reach into, made includable from C++, and helpers shared by tests.
 */
#ifndef VFDMA_TEST_H
#define VFDMA_TEST_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include <gtest/gtest.h>

extern "C" {
#include "vfdma/vfdma.h"
#include "util/log.h"
#include "util/sys.h"
}

/*
 * The seed of a randomised test: VFDMA_TEST_SEED if set, else a fresh one.
 * Printed, so that a failure can be replayed with VFDMA_TEST_SEED=<seed>.
 */
static inline uint64_t vfdma_test_seed(const char *what)
{
	const char *env = getenv("VFDMA_TEST_SEED");
	uint64_t seed = env ? strtoull(env, nullptr, 0) : std::random_device{}();
	fprintf(stderr, "[  SEED    ] %s: VFDMA_TEST_SEED=%llu\n", what,
		(unsigned long long)seed);
	return seed;
}

/* Multiplier for the size of randomised and stress tests (VFDMA_TEST_SCALE). */
static inline double vfdma_test_scale(void)
{
	const char *env = getenv("VFDMA_TEST_SCALE");
	double s = env ? atof(env) : 1.0;
	return s > 0 ? s : 1.0;
}

/* A domain on the sim backend (NULL with errno on failure). */
static inline struct vfdma_domain *vfdma_test_open_sim(unsigned int flags = 0)
{
	vfdma_domain_opts o = {};
	o.backend = VFDMA_BACKEND_SIM;
	o.flags = flags;
	return vfdma_domain_open(&o);
}

/* A domain's counters (a failed read is a test failure, zeros returned). */
static inline vfdma_domain_info vfdma_test_domain_info(struct vfdma_domain *d)
{
	vfdma_domain_info i = {};
	EXPECT_EQ(vfdma_domain_get_info(d, &i), 0);
	return i;
}

/* A zeroed buffer aligned to 2 MiB (so mappings of it can use large pages). */
struct VfdmaTestBuf {
	size_t size;
	uint8_t *p;
	explicit VfdmaTestBuf(size_t s) : size(s)
	{
		p = static_cast<uint8_t *>(aligned_alloc(2u << 20, s));
		memset(p, 0, s);
	}
	~VfdmaTestBuf()
	{
		free(p);
	}
	VfdmaTestBuf(const VfdmaTestBuf &) = delete;
	VfdmaTestBuf &operator=(const VfdmaTestBuf &) = delete;
};

/* True in sanitizer builds, where tests may choose smaller default sizes. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VFDMA_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define VFDMA_TEST_SANITIZED 1
#endif
#endif
#ifndef VFDMA_TEST_SANITIZED
#define VFDMA_TEST_SANITIZED 0
#endif

/*
 * Fault injection over one operation: runs @op with the nth allocation (or
 * system call of class @sysno) failing, for n = 1, 2, ... until @op runs
 * without reaching an injected failure.  @op returns true on success; after
 * a success (a path that recovered from the failure, or the final clean run)
 * @undo puts the state back; after a failure @check_unchanged must find the
 * state as it was before.  Returns the number of injection points reached.
 */
template <typename Op, typename Undo, typename Check>
static unsigned vfdma_test_fail_each(enum vfd_sysno sysno, Op op, Undo undo,
				     Check check_unchanged)
{
	for (unsigned n = 1; n <= 100000; n++) {
		vfd_fault_arm(sysno, n, ENOMEM, false);
		bool ok = op();
		unsigned long injected = vfd_fault_disarm();
		if (ok)
			undo();
		else
			check_unchanged();
		if (!injected) {
			EXPECT_TRUE(ok) << "operation failed without an injected fault";
			return n - 1;
		}
	}
	ADD_FAILURE() << "more than 100000 injection points";
	return 100000;
}

#endif
