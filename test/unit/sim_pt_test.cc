// SPDX-License-Identifier: BSD-3-Clause
// The sim backend's software IOMMU: page sizes, rollback, VT-d unmap
// semantics, IOTLB that honours invalidation, faults, dirty bits, split and
// merge, and no missed write under concurrent DMA.
#include "vfdma_test.h"

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

extern "C" {
#include "iommu/sim_pt.h"
}

namespace
{
constexpr uint64_t K4 = VFD_SIM_PG_4K, M2 = VFD_SIM_PG_2M, G1 = VFD_SIM_PG_1G;
constexpr uint64_t ALL = K4 | M2 | G1;
constexpr unsigned RW = VFD_SIM_READ | VFD_SIM_WRITE;

// A fake host address: the table never touches host memory except in DMA.
void *fake(uint64_t a)
{
	return reinterpret_cast<void *>(a);
}

struct vfd_simpt_stats stats(vfd_simpt *pt)
{
	struct vfd_simpt_stats st;
	vfd_simpt_get_stats(pt, &st);
	return st;
}

bool same(const struct vfd_simpt_stats &a, const struct vfd_simpt_stats &b)
{
	return a.leaves_4k == b.leaves_4k && a.leaves_2m == b.leaves_2m &&
	       a.leaves_1g == b.leaves_1g && a.tables == b.tables;
}

using HostMem = VfdmaTestBuf;
} // namespace

TEST(SimPt, CreateRejectsBadArguments)
{
	EXPECT_EQ(vfd_simpt_create(M2, 48), nullptr); // 4K is required
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfd_simpt_create(K4 | (1ull << 16), 48), nullptr);
	EXPECT_EQ(vfd_simpt_create(K4, 40), nullptr);
	vfd_simpt *pt = vfd_simpt_create(K4, 39);
	ASSERT_NE(pt, nullptr);
	vfd_simpt_destroy(pt);
}

TEST(SimPt, MapsWithLargestAllowedPages)
{
	vfd_simpt *pt = vfd_simpt_create(ALL, 48);
	ASSERT_NE(pt, nullptr);
	// 1 GiB + 2 MiB + 4 KiB, all aligned: one leaf of each size.
	uint64_t size = G1 + M2 + K4;
	ASSERT_EQ(vfd_simpt_map(pt, G1, fake(4 * G1), size, RW), 0);
	auto st = stats(pt);
	EXPECT_EQ(st.leaves_1g, 1u);
	EXPECT_EQ(st.leaves_2m, 1u);
	EXPECT_EQ(st.leaves_4k, 1u);

	uint64_t leaf = 0;
	unsigned prot = 0;
	EXPECT_EQ(vfd_simpt_lookup(pt, G1 + 12345, &leaf, &prot), fake(4 * G1 + 12345));
	EXPECT_EQ(leaf, G1);
	EXPECT_EQ(prot, RW);
	EXPECT_EQ(vfd_simpt_lookup(pt, 2 * G1 + M2 + 5, &leaf, nullptr), fake(5 * G1 + M2 + 5));
	EXPECT_EQ(leaf, K4);
	EXPECT_EQ(vfd_simpt_lookup(pt, 2 * G1 + M2 + K4, nullptr, nullptr), nullptr);

	// Host misaligned for large pages: only 4 KiB leaves.
	ASSERT_EQ(vfd_simpt_map(pt, 8 * G1, fake(0x7000), M2, VFD_SIM_READ), 0);
	EXPECT_EQ(stats(pt).leaves_4k, 1u + 512u);

	// A table allowed only 4K never makes blocks.
	vfd_simpt *small = vfd_simpt_create(K4, 39);
	ASSERT_EQ(vfd_simpt_map(small, 0, fake(0), 2 * M2, RW), 0);
	EXPECT_EQ(stats(small).leaves_4k, 1024u);
	EXPECT_EQ(stats(small).leaves_2m, 0u);
	vfd_simpt_destroy(small);
	vfd_simpt_destroy(pt);
}

TEST(SimPt, MapRejectsBadInputAndOverlapWithoutChange)
{
	vfd_simpt *pt = vfd_simpt_create(ALL, 39);
	ASSERT_EQ(vfd_simpt_map(pt, 4 * M2, fake(4 * M2), M2, RW), 0);
	auto before = stats(pt);
	EXPECT_EQ(vfd_simpt_map(pt, 0x1001, fake(0), K4, RW), -EINVAL);
	EXPECT_EQ(vfd_simpt_map(pt, 0, fake(0x10), K4, RW), -EINVAL);
	EXPECT_EQ(vfd_simpt_map(pt, 0, fake(0), 0, RW), -EINVAL);
	EXPECT_EQ(vfd_simpt_map(pt, 0, fake(0), K4, 0), -EINVAL);
	EXPECT_EQ(vfd_simpt_map(pt, (1ull << 39) - K4, fake(0), 2 * K4, RW), -EINVAL);
	// Overlaps the mapping at its end: maps [0, 4M) first, then undoes it.
	EXPECT_EQ(vfd_simpt_map(pt, 0, fake(0), 5 * M2, RW), -EEXIST);
	// Overlap in 4K leaves inside a 2M block.
	EXPECT_EQ(vfd_simpt_map(pt, 4 * M2 + K4, fake(0), K4, RW), -EEXIST);
	EXPECT_TRUE(same(stats(pt), before));
	vfd_simpt_destroy(pt);
}

TEST(SimPt, MapFailureInjectionLeavesTableUnchanged)
{
	vfd_simpt *pt = vfd_simpt_create(K4 | M2, 48);
	ASSERT_EQ(vfd_simpt_map(pt, G1, fake(G1), M2, RW), 0);
	auto before = stats(pt);
	// A map that needs several new tables: 4K leaves far from the first.
	unsigned points = vfdma_test_fail_each(
		VFD_SYS_ALLOC,
		[&]() { return vfd_simpt_map(pt, 1ull << 40, fake(0x5000), M2 + 3 * K4, RW) == 0; },
		[&]() { ASSERT_EQ(vfd_simpt_unmap(pt, 1ull << 40, M2 + 3 * K4), (int64_t)(M2 + 3 * K4)); },
		[&]() { EXPECT_TRUE(same(stats(pt), before)); });
	EXPECT_GE(points, 3u);
	EXPECT_TRUE(same(stats(pt), before));
	vfd_simpt_destroy(pt);
}

TEST(SimPt, UnmapOfPartOfABlockUnmapsTheWholeBlock)
{
	vfd_simpt *pt = vfd_simpt_create(ALL, 48);
	ASSERT_EQ(vfd_simpt_map(pt, 0, fake(0), 2 * M2, RW), 0);
	// VT-d semantics: the caller asked for 4K and gets 2M back.
	EXPECT_EQ(vfd_simpt_unmap(pt, K4, K4), (int64_t)M2);
	EXPECT_EQ(vfd_simpt_lookup(pt, 0, nullptr, nullptr), nullptr);
	EXPECT_NE(vfd_simpt_lookup(pt, M2, nullptr, nullptr), nullptr);
	EXPECT_EQ(vfd_simpt_unmap(pt, 0, 4 * M2), (int64_t)M2);
	EXPECT_EQ(vfd_simpt_unmap(pt, 0, 4 * M2), 0);
	// Empty tables are freed: only the root is left.
	EXPECT_EQ(stats(pt).tables, 1u);
	vfd_simpt_destroy(pt);
}

TEST(SimDma, ReadsWritesFaultsAndPermissions)
{
	HostMem mem(2 * M2);
	vfd_simpt *pt = vfd_simpt_create(ALL, 48);
	vfd_simdma *e = vfd_simdma_create(pt, 64);
	ASSERT_NE(e, nullptr);
	const uint64_t base = 1ull << 32;
	ASSERT_EQ(vfd_simpt_map(pt, base, mem.p, M2, RW), 0);
	ASSERT_EQ(vfd_simpt_map(pt, base + M2, mem.p + M2, M2, VFD_SIM_READ), 0);

	// A write across a page boundary lands in host memory.
	const char msg[] = "through the sim iommu";
	ASSERT_EQ(vfd_simdma_rw(e, base + K4 - 5, (void *)msg, sizeof(msg), VFD_SIM_WRITE), 0);
	EXPECT_EQ(memcmp(mem.p + K4 - 5, msg, sizeof(msg)), 0);
	char back[sizeof(msg)] = {};
	ASSERT_EQ(vfd_simdma_rw(e, base + K4 - 5, back, sizeof(back), VFD_SIM_READ), 0);
	EXPECT_STREQ(back, msg);

	// Write to a read-only mapping, read of an unmapped address.
	EXPECT_EQ(vfd_simdma_rw(e, base + M2 + 8, back, 4, VFD_SIM_WRITE), -EFAULT);
	EXPECT_EQ(vfd_simdma_rw(e, base + 2 * M2, back, 4, VFD_SIM_READ), -EFAULT);
	EXPECT_EQ(vfd_simdma_rw(e, 1ull << 48, back, 4, VFD_SIM_READ), -EFAULT);
	vfd_sim_fault f[8];
	uint64_t lost = 1;
	ASSERT_EQ(vfd_simdma_faults(e, f, 8, &lost), 3u);
	EXPECT_EQ(lost, 0u);
	EXPECT_EQ(f[0].iova, base + M2 + 8);
	EXPECT_EQ(f[0].reason, (unsigned)VFD_SIM_FAULT_PERM);
	EXPECT_EQ(f[0].access, VFD_SIM_WRITE);
	EXPECT_EQ(f[1].reason, (unsigned)VFD_SIM_FAULT_NOT_PRESENT);
	EXPECT_EQ(f[2].reason, (unsigned)VFD_SIM_FAULT_RANGE);
	EXPECT_EQ(vfd_simdma_faults(e, f, 8, nullptr), 0u);
	EXPECT_EQ(memcmp(mem.p + M2 + 8, "\0\0\0\0", 4), 0);

	vfd_simdma_destroy(e);
	vfd_simpt_destroy(pt);
}

TEST(SimDma, IotlbKeepsStaleTranslationUntilInvalidated)
{
	HostMem mem(M2);
	vfd_simpt *pt = vfd_simpt_create(ALL, 48);
	vfd_simdma *e = vfd_simdma_create(pt, 16);
	ASSERT_EQ(vfd_simpt_map(pt, 0, mem.p, 4 * K4, RW), 0);
	uint32_t v = 0;
	ASSERT_EQ(vfd_simdma_rw(e, K4, &v, 4, VFD_SIM_READ), 0);
	ASSERT_EQ(vfd_simpt_unmap(pt, 0, 4 * K4), (int64_t)(4 * K4));
	// Like hardware: the cached translation is still used ...
	EXPECT_EQ(vfd_simdma_rw(e, K4, &v, 4, VFD_SIM_READ), 0);
	// ... until the IOTLB is invalidated.
	vfd_simdma_invalidate(e, 0, 4 * K4);
	EXPECT_EQ(vfd_simdma_rw(e, K4, &v, 4, VFD_SIM_READ), -EFAULT);
	vfd_simdma_destroy(e);
	vfd_simpt_destroy(pt);
}

TEST(SimDma, DirtyBitsBlockPrecisionSplitAndMerge)
{
	HostMem mem(2 * M2);
	vfd_simpt *pt = vfd_simpt_create(ALL, 48);
	vfd_simdma *e = vfd_simdma_create(pt, 64);
	ASSERT_EQ(vfd_simpt_map(pt, 0, mem.p, 2 * M2, RW), 0);
	ASSERT_EQ(stats(pt).leaves_2m, 2u);
	std::vector<uint64_t> bm(2 * 512 / 64);
	auto count = [&]() {
		unsigned n = 0;
		for (uint64_t w : bm)
			n += __builtin_popcountll(w);
		return n;
	};

	uint8_t one = 1;
	ASSERT_EQ(vfd_simdma_rw(e, 77 * K4 + 3, &one, 1, VFD_SIM_WRITE), 0);
	// Without split: one byte dirties the whole 2 MiB block.
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, bm.data(), true), 1);
	EXPECT_EQ(count(), 512u);
	std::fill(bm.begin(), bm.end(), 0);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, bm.data(), true), 0);

	// Split carries the block's dirty bit to every small leaf.
	ASSERT_EQ(vfd_simdma_rw(e, M2 + 5, &one, 1, VFD_SIM_WRITE), 0);
	ASSERT_EQ(vfd_simpt_split(pt, 0, 2 * M2), 2);
	EXPECT_EQ(stats(pt).leaves_4k, 1024u);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, bm.data(), true), 512);
	std::fill(bm.begin(), bm.end(), 0);

	// After split: exactly the pages written.
	ASSERT_EQ(vfd_simdma_rw(e, 9 * K4, &one, 1, VFD_SIM_WRITE), 0);
	ASSERT_EQ(vfd_simdma_rw(e, M2 + 300 * K4 + 4095, &one, 1, VFD_SIM_WRITE), 0);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, bm.data(), false), 2);
	EXPECT_EQ(count(), 2u);
	EXPECT_TRUE(bm[0] & (1ull << 9));
	EXPECT_TRUE(bm[(512 + 300) / 64] & (1ull << ((512 + 300) % 64)));
	// Read-only read keeps them; read-and-clear empties.
	std::fill(bm.begin(), bm.end(), 0);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, bm.data(), true), 2);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, bm.data(), true), 0);

	// Merge restores the blocks, and the translation is unchanged.
	ASSERT_EQ(vfd_simpt_merge(pt, 0, 2 * M2), 2);
	auto st = stats(pt);
	EXPECT_EQ(st.leaves_2m, 2u);
	EXPECT_EQ(st.leaves_4k, 0u);
	EXPECT_EQ(vfd_simpt_lookup(pt, M2 + 300 * K4 + 1, nullptr, nullptr),
		  mem.p + M2 + 300 * K4 + 1);
	vfd_simdma_destroy(e);
	vfd_simpt_destroy(pt);
}

// Dirty bits live in a vector per table (64 leaves a word): reads of ranges
// that start and end inside words and inside tables, with a bitmap origin
// that is not word-aligned to the table; an unmapped and remapped page
// starts clean; merge carries a dirty small leaf to the block.
TEST(SimDma, DirtyVectorRangesUnmapAndMerge)
{
	HostMem mem(2 * M2);
	vfd_simpt *pt = vfd_simpt_create(ALL, 48);
	vfd_simdma *e = vfd_simdma_create(pt, 0);
	ASSERT_EQ(vfd_simpt_map(pt, 0, mem.p, 2 * M2, RW), 0);
	ASSERT_EQ(vfd_simpt_split(pt, 0, 2 * M2), 2);
	const uint64_t written[] = {0, 5, 63, 64, 200, 511, 512, 513, 700, 1023};
	uint8_t one = 1;
	auto write_all = [&]() {
		for (uint64_t p : written)
			ASSERT_EQ(vfd_simdma_rw(e, p * K4, &one, 1, VFD_SIM_WRITE), 0);
	};
	write_all();
	// Every window [a, b): exactly the written pages in it, at bit p - a.
	for (uint64_t a : {0, 3, 63, 65, 500, 512, 600}) {
		for (uint64_t b : {a + 1, a + 7, a + 64, a + 130, uint64_t{1024}}) {
			if (b <= a || b > 1024)
				continue;
			std::vector<uint64_t> bm((b - a + 63) / 64 + 1, 0);
			bm.back() = 0x5a5a; // past the end: must stay untouched
			uint64_t want = 0;
			for (uint64_t p : written)
				want += p >= a && p < b;
			ASSERT_EQ(vfd_simpt_read_dirty(pt, a * K4, (b - a) * K4, bm.data(), false),
				  (int64_t)want)
				<< a << ".." << b;
			for (uint64_t i = 0; i < b - a; i++) {
				bool set = bm[i / 64] & (1ull << (i % 64));
				bool w = false;
				for (uint64_t p : written)
					w |= p == a + i;
				ASSERT_EQ(set, w) << "window " << a << ".." << b << " page " << a + i;
			}
			if ((b - a) % 64) {
				EXPECT_EQ(bm[(b - a) / 64] >> ((b - a) % 64), 0u);
			}
			EXPECT_EQ(bm.back(), 0x5a5au);
		}
	}
	// Clearing a window leaves the pages outside it dirty.
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 60 * K4, 450 * K4, nullptr, true), 3); // 63, 64, 200
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, nullptr, false), 7);
	// A dirty page unmapped and mapped again is clean.
	ASSERT_EQ(vfd_simpt_unmap(pt, 700 * K4, K4), (int64_t)K4);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, nullptr, false), 6); // an empty slot is clean
	ASSERT_EQ(vfd_simpt_map(pt, 700 * K4, mem.p + 700 * K4, K4, RW), 0);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, nullptr, false), 6);
	// Merge: the second block has a dirty small leaf (513, 1023), the
	// first only after 511 is written again below; both blocks report.
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, M2, nullptr, true), 3);
	ASSERT_EQ(vfd_simpt_merge(pt, 0, 2 * M2), 2);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, nullptr, false), 1);
	ASSERT_EQ(vfd_simdma_rw(e, 511 * K4, &one, 1, VFD_SIM_WRITE), 0);
	std::vector<uint64_t> bm(1024 / 64);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, bm.data(), true), 2);
	for (uint64_t w : bm)
		EXPECT_EQ(w, ~0ull);
	ASSERT_EQ(vfd_simpt_read_dirty(pt, 0, 2 * M2, nullptr, true), 0);
	vfd_simdma_destroy(e);
	vfd_simpt_destroy(pt);
}

// Several engines write random pages while the control thread splits,
// merges and reads-and-clears dirty bits.  The property: a write that began
// when k reads had started is reported by read k or a later one.  So for
// every page, the last read that reported it is no earlier than k of its
// last write; a lost dirty bit breaks this.
// With @churn the control thread splits and merges every round (merged
// rounds report whole 2 MiB blocks, which can hide a lost bit behind a
// neighbour's write); without, the range stays split at 4 KiB, where one
// lost dirty bit shows.
static void no_write_missed(bool churn)
{
	const uint64_t size = 16 * M2, pages = size / K4;
	HostMem mem(size);
	vfd_simpt *pt = vfd_simpt_create(ALL, 48);
	ASSERT_EQ(vfd_simpt_map(pt, 0, mem.p, size, RW), 0);
	if (!churn) {
		ASSERT_EQ(vfd_simpt_split(pt, 0, size), 16);
	}

	std::vector<std::atomic<unsigned>> write_round(pages);
	std::vector<unsigned> report_round(pages);
	std::atomic<unsigned> reads_started{0};
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> writes{0};
	uint64_t seed = vfdma_test_seed(churn ? "SimDma.NoWriteMissedUnderSplitMergeChurn"
					      : "SimDma.NoWriteMissedAtPagePrecision");
	const unsigned target_rounds = (unsigned)(600 * vfdma_test_scale());

	std::vector<std::thread> threads;
	for (unsigned t = 0; t < 2; t++) {
		threads.emplace_back([&, t]() {
			vfd_simdma *e = vfd_simdma_create(pt, 32);
			std::mt19937_64 rng(seed + t);
			while (!stop.load(std::memory_order_relaxed)) {
				// Mostly a small hot set, sometimes anywhere.
				uint64_t page = rng() % (rng() % 4 ? 64 : pages);
				uint64_t val = rng();
				// Sampled before the write: reads numbered k or later
				// may not have passed this page yet when it lands.
				unsigned k = reads_started.load();
				if (vfd_simdma_rw(e, page * K4 + (val % 4088), &val, 8, VFD_SIM_WRITE)) {
					ADD_FAILURE() << "write faulted at page " << page;
					break;
				}
				unsigned cur = write_round[page].load();
				while (cur < k && !write_round[page].compare_exchange_weak(cur, k)) {
				}
				writes.fetch_add(1, std::memory_order_relaxed);
			}
			vfd_simdma_destroy(e);
		});
	}
	// The control path, serialised as the domain lock will do it: every
	// round reads and clears, and splits or merges the whole range.
	std::vector<uint64_t> bm(pages / 64);
	auto read_round = [&]() {
		unsigned r = reads_started.fetch_add(1) + 1;
		std::fill(bm.begin(), bm.end(), 0);
		vfd_simpt_read_dirty(pt, 0, size, bm.data(), true);
		for (uint64_t p = 0; p < pages; p++)
			if (bm[p / 64] & (1ull << (p % 64)))
				report_round[p] = r;
	};
	for (unsigned round = 0; round < target_rounds; round++) {
		read_round();
		if (churn) {
			if (round % 2)
				vfd_simpt_merge(pt, 0, size);
			else
				vfd_simpt_split(pt, 0, size);
		}
		if (round % 64 == 0)
			std::this_thread::yield();
	}
	stop.store(true);
	for (auto &th : threads)
		th.join();
	read_round();

	uint64_t missed = 0, nwritten = 0;
	for (uint64_t p = 0; p < pages; p++) {
		unsigned k = write_round[p].load();
		if (!k && !report_round[p])
			continue;
		nwritten++;
		if (report_round[p] < k) {
			if (missed++ < 5)
				ADD_FAILURE() << "page " << p << " last written in round " << k
					      << ", last reported in round " << report_round[p];
		}
	}
	fprintf(stderr, "[  INFO    ] %llu writes, %llu pages, %u read rounds\n",
		(unsigned long long)writes.load(), (unsigned long long)nwritten,
		reads_started.load());
	EXPECT_EQ(missed, 0u);
	EXPECT_GT(writes.load(), 0u);
	vfd_simpt_destroy(pt);
}

TEST(SimDma, NoWriteMissedUnderSplitMergeChurn)
{
	no_write_missed(true);
}

TEST(SimDma, NoWriteMissedAtPagePrecision)
{
	no_write_missed(false);
}
