// SPDX-License-Identifier: BSD-3-Clause
// vfd_dirty_keep(): the way a backend hands the log dirty bits that the
// kernel then forgets (type1: the bitmap of an unmap, or bits a clearing
// read returned outside the range asked for).  A log with only the MARK
// source reports nothing but its software bits, so a sync must return
// exactly the pages kept: runs across 64-page chunk boundaries, a range
// not starting on a chunk, stray bits past the end ignored, NULL = all.
#include "vfdma_test.h"

#include <random>
#include <set>
#include <vector>

extern "C" {
#include "iommu/domain.h"
}

namespace
{
constexpr uint64_t K4 = 4096;
constexpr uint64_t BASE = 1ull << 30; // an IOVA; nothing needs to be mapped there

struct Log {
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_dirty *log = nullptr;
	Log()
	{
		vfdma_dirty_opts o = {};
		o.sources = VFDMA_DIRTY_SRC_MARK;
		log = vfdma_dirty_start(d, &o);
	}
	~Log()
	{
		vfdma_dirty_stop(log);
		vfdma_domain_close(d);
	}
	void keep(uint64_t iova, uint64_t npages, const uint64_t *bits)
	{
		pthread_rwlock_rdlock(&d->op_lock); // the contract: op_lock held
		vfd_dirty_keep(d, iova, npages, bits);
		pthread_rwlock_unlock(&d->op_lock);
	}
	// The pages (from BASE) a clearing sync of @pages reports.
	std::set<uint64_t> sync(uint64_t pages)
	{
		std::vector<uint64_t> bm((pages + 63) / 64);
		int64_t n = vfdma_dirty_sync(log, BASE, pages * K4, bm.data(), 0);
		std::set<uint64_t> got;
		for (uint64_t i = 0; i < pages; i++)
			if (bm[i / 64] & (1ull << (i % 64)))
				got.insert(i);
		EXPECT_EQ(n, (int64_t)got.size());
		return got;
	}
};
} // namespace

TEST(SimDirtyKeep, RunsAcrossChunksAndStrayBits)
{
	Log l;
	ASSERT_NE(l.log, nullptr);
	// 250 pages kept from page 37 of BASE: runs crossing 64-page chunks, a
	// lone page, a full word, and bits 250..255 set but past npages.
	std::vector<uint64_t> bits(4, 0);
	std::set<uint64_t> want;
	auto set = [&](uint64_t p) {
		bits[p / 64] |= 1ull << (p % 64);
		if (p < 250)
			want.insert(37 + p);
	};
	for (uint64_t p : {0ull, 1ull, 2ull, 26ull, 27ull, 63ull, 64ull, 65ull, 100ull})
		set(p);
	for (uint64_t p = 128; p < 192; p++)
		set(p);
	for (uint64_t p = 240; p < 256; p++)
		set(p);
	l.keep(BASE + 37 * K4, 250, bits.data());
	EXPECT_EQ(l.sync(512), want);
	EXPECT_TRUE(l.sync(512).empty()) << "a clearing sync took them";
}

TEST(SimDirtyKeep, NullMeansEveryPageAndNoLogIsNothing)
{
	Log l;
	ASSERT_NE(l.log, nullptr);
	l.keep(BASE + 5 * K4, 130, nullptr);
	std::set<uint64_t> got = l.sync(256);
	ASSERT_EQ(got.size(), 130u);
	EXPECT_EQ(*got.begin(), 5u);
	EXPECT_EQ(*got.rbegin(), 134u);

	// Without a log it does nothing (and does not crash).
	vfdma_domain *d = vfdma_test_open_sim();
	uint64_t all = ~0ull;
	vfd_dirty_keep(d, BASE, 64, &all);
	vfdma_domain_close(d);
}

TEST(SimDirtyKeep, RandomBitmapsAgainstAModel)
{
	std::mt19937_64 rng(vfdma_test_seed("SimDirtyKeep.RandomBitmapsAgainstAModel"));
	Log l;
	ASSERT_NE(l.log, nullptr);
	const uint64_t span = 4096; // pages the syncs look at
	for (unsigned round = 0; round < 20 * vfdma_test_scale(); round++) {
		std::set<uint64_t> want;
		for (int k = 0; k < 4; k++) {
			uint64_t first = rng() % (span - 600), n = 1 + rng() % 512;
			std::vector<uint64_t> bits((n + 63) / 64);
			unsigned density = rng() % 4; // sparse .. full
			for (auto &w : bits)
				w = density == 3 ? ~0ull : rng() & (density ? rng() : rng() & rng());
			for (uint64_t p = 0; p < n; p++)
				if (bits[p / 64] & (1ull << (p % 64)))
					want.insert(first + p);
			l.keep(BASE + first * K4, n, bits.data());
		}
		ASSERT_EQ(l.sync(span), want) << "round " << round;
	}
}
