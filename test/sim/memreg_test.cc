// SPDX-License-Identifier: BSD-3-Clause
// Registrations, the mapping cache and scatter-gather on the sim backend: a
// software device does the DMA, so every IOVA handed out is proven to reach
// the right bytes.
#include "vfdma_test.h"

#include <atomic>
#include <thread>
#include <vector>

extern "C" {
#include "iommu/domain.h"
}

namespace
{
constexpr uint64_t K4 = 4096, M2 = 2ull << 20;
using Buf = VfdmaTestBuf;

vfdma_mem_stats mstats(vfdma_domain *d)
{
	vfdma_mem_stats s;
	EXPECT_EQ(vfdma_mem_get_stats(d, &s), 0);
	return s;
}

// The device reads what @p translates to and finds the CPU's bytes there.
void expect_dma_sees(vfdma_device *dev, vfdma_domain *d, uint8_t *p, size_t n)
{
	uint64_t iova = 0, len = 0;
	ASSERT_EQ(vfdma_vaddr_to_iova(d, p, &iova, &len), 0);
	ASSERT_GE(len, n);
	void *back = nullptr;
	ASSERT_EQ(vfdma_iova_to_vaddr(d, iova, &back, nullptr), 0);
	EXPECT_EQ(back, p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + (uintptr_t)p);
	std::vector<uint8_t> got(n);
	ASSERT_EQ(vfdma_sim_dma_read(dev, iova, got.data(), n), 0);
	EXPECT_EQ(memcmp(got.data(), p, n), 0);
}
} // namespace

TEST(SimMem, RegistrationsCountPagesAndUnmapWithTheLast)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	Buf buf(2 * M2);
	uint8_t *p = buf.p;
	ASSERT_EQ(vfdma_mem_register(d, p, 8 * K4), 0);
	ASSERT_EQ(vfdma_mem_register(d, p + 4 * K4, 8 * K4), 0); // maps only the 4 new pages
	auto s = mstats(d);
	EXPECT_EQ(s.registered_bytes, 12 * K4);
	EXPECT_EQ(s.reg_mappings, 2u);
	EXPECT_EQ(s.reg_mapped_bytes, 12 * K4);
	EXPECT_EQ(vfdma_test_domain_info(d).kernel_map_calls, 2u);
	for (int i = 0; i < 12; i++)
		ASSERT_NO_FATAL_FAILURE(expect_dma_sees(dev, d, p + i * K4 + 5, 100));

	// Pages 0-3 lose their only registration; their mapping still holds 4-7.
	ASSERT_EQ(vfdma_mem_unregister(d, p, 8 * K4), 0);
	s = mstats(d);
	EXPECT_EQ(s.registered_bytes, 8 * K4);
	EXPECT_EQ(s.reg_mappings, 2u);
	ASSERT_NO_FATAL_FAILURE(expect_dma_sees(dev, d, p + 6 * K4, 64));
	EXPECT_EQ(vfdma_mem_unregister(d, p, K4), -ENOENT) << "not registered any more";
	EXPECT_EQ(mstats(d).registered_bytes, 8 * K4) << "a refused call changes nothing";

	ASSERT_EQ(vfdma_mem_unregister(d, p + 4 * K4, 8 * K4), 0);
	s = mstats(d);
	EXPECT_EQ(s.registered_bytes, 0u);
	EXPECT_EQ(s.reg_mappings, 0u);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	uint64_t iova;
	EXPECT_EQ(vfdma_vaddr_to_iova(d, p + 6 * K4, &iova, nullptr), -ENOENT);
	EXPECT_EQ(vfdma_mem_unregister(d, p + 4 * K4, 8 * K4), -ENOENT);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

TEST(SimMem, RoundingErrorsAndNestedCounts)
{
	vfdma_domain *d = vfdma_test_open_sim();
	Buf buf(M2);
	uint8_t *p = buf.p;
	EXPECT_EQ(vfdma_mem_register(nullptr, p, K4), -EINVAL);
	EXPECT_EQ(vfdma_mem_register(d, nullptr, K4), -EINVAL);
	EXPECT_EQ(vfdma_mem_register(d, p, 0), -EINVAL);
	EXPECT_EQ(vfdma_mem_register(d, (void *)(UINTPTR_MAX - 100), 200), -EOVERFLOW);
	EXPECT_EQ(vfdma_mem_register_batch(d, nullptr, 1), -EINVAL);
	EXPECT_EQ(vfdma_mem_unregister(d, p, K4), -ENOENT);
	EXPECT_EQ(vfdma_mem_unregister(d, p, 0), -EINVAL);

	ASSERT_EQ(vfdma_mem_register(d, p + 100, 10), 0); // one page
	uint64_t iova = 0, len = 0;
	ASSERT_EQ(vfdma_vaddr_to_iova(d, p + 100, &iova, &len), 0);
	EXPECT_EQ(len, K4 - 100);
	EXPECT_EQ(mstats(d).registered_bytes, K4);
	ASSERT_EQ(vfdma_mem_register(d, p, 3 * K4), 0);
	ASSERT_EQ(vfdma_mem_register(d, p + K4, K4), 0);
	// Counts now 2, 2, 1: unregistering [0, 3 pages) leaves 1, 1, 0.
	ASSERT_EQ(vfdma_mem_unregister(d, p + 10, 3 * K4 - 20), 0);
	EXPECT_EQ(mstats(d).registered_bytes, 2 * K4);
	// A range with an unregistered page is refused whole.
	EXPECT_EQ(vfdma_mem_unregister(d, p, 3 * K4), -ENOENT);
	EXPECT_EQ(mstats(d).registered_bytes, 2 * K4);
	ASSERT_EQ(vfdma_mem_unregister(d, p, 2 * K4), 0);
	auto s = mstats(d);
	EXPECT_EQ(s.registered_bytes, 0u);
	EXPECT_EQ(s.reg_mappings, 0u);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	vfdma_domain_close(d);
}

// A registration that one mapping serves exactly keeps its count in the
// mapping record (memreg.c: folding), with no record of its own; a partial
// registration over it brings the records back, and they go again once
// the counts are even.  Counts survive all of it.
TEST(SimMem, FoldedRegistrationsKeepTheirCounts)
{
	vfdma_domain *d = vfdma_test_open_sim();
	Buf buf(M2);
	uint8_t *p = buf.p;
	ASSERT_EQ(vfdma_mem_register(d, p, 4 * K4), 0);
	ASSERT_EQ(vfdma_mem_register(d, p + 8 * K4, K4), 0);
	uint64_t m0 = mstats(d).metadata_bytes;
	ASSERT_EQ(vfdma_mem_register(d, p, 4 * K4), 0); // count 2, nothing new
	EXPECT_EQ(mstats(d).metadata_bytes, m0);
	ASSERT_EQ(vfdma_mem_register(d, p + K4, K4), 0); // counts 2, 3, 2, 2
	EXPECT_GT(mstats(d).metadata_bytes, m0);
	ASSERT_EQ(vfdma_mem_unregister(d, p + K4, K4), 0);
	EXPECT_EQ(mstats(d).metadata_bytes, m0);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 2u);
	EXPECT_EQ(mstats(d).reg_mappings, 2u);
	// A range with an unregistered page is refused, the counts kept.
	EXPECT_EQ(vfdma_mem_unregister(d, p, 6 * K4), -ENOENT);
	EXPECT_EQ(mstats(d).metadata_bytes, m0);

	uint64_t iova = 0;
	ASSERT_EQ(vfdma_mem_unregister(d, p, 4 * K4), 0);
	EXPECT_EQ(vfdma_vaddr_to_iova(d, p + 3 * K4, &iova, nullptr), 0);
	EXPECT_EQ(mstats(d).registered_bytes, 5 * K4);
	ASSERT_EQ(vfdma_mem_unregister(d, p, 4 * K4), 0);
	EXPECT_EQ(vfdma_vaddr_to_iova(d, p + 3 * K4, &iova, nullptr), -ENOENT);
	EXPECT_EQ(vfdma_mem_unregister(d, p, K4), -ENOENT);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 1u);

	// Counts above what a mapping record holds keep their records.
	uint64_t folded = mstats(d).metadata_bytes;
	for (unsigned i = 0; i < VFD_MAP_REG_COUNT_MAX + 2; i++)
		ASSERT_EQ(vfdma_mem_register(d, p + 8 * K4, K4), 0);
	EXPECT_GT(mstats(d).metadata_bytes, folded);
	for (unsigned i = 0; i < VFD_MAP_REG_COUNT_MAX + 2; i++) {
		ASSERT_EQ(vfdma_mem_unregister(d, p + 8 * K4, K4), 0);
		ASSERT_EQ(vfdma_vaddr_to_iova(d, p + 8 * K4, &iova, nullptr), 0);
	}
	EXPECT_EQ(mstats(d).metadata_bytes, folded); // count 1: folded again
	EXPECT_EQ(mstats(d).registered_bytes, K4);

	// One more page: its record comes from the slab's free ones (records
	// are counted by the slab chunk), tables come in 4 KiB units.
	uint64_t m1 = mstats(d).metadata_bytes;
	ASSERT_EQ(vfdma_mem_register(d, p + 10 * K4, K4), 0);
	EXPECT_EQ((mstats(d).metadata_bytes - m1) % 4096, 0u);
	ASSERT_EQ(vfdma_mem_unregister(d, p + 10 * K4, K4), 0);
	ASSERT_EQ(vfdma_mem_unregister(d, p + 8 * K4, K4), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

TEST(SimMem, AdjacentRangesCoalesceIntoOneKernelMapping)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	Buf buf(8 * M2);
	uint8_t *p = buf.p;
	iovec v[4] = {{p + 3 * K4, 5 * K4}, {p, 3 * K4}, {p + 8 * K4, M2}, {p + 2 * K4, 2 * K4}};
	ASSERT_EQ(vfdma_mem_register_batch(d, v, 4), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).kernel_map_calls, 1u);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 1u);
	uint64_t iova = 0, len = 0;
	ASSERT_EQ(vfdma_vaddr_to_iova(d, p, &iova, &len), 0);
	EXPECT_EQ(len, M2 + 8 * K4) << "one mapping: contiguous to its end";
	ASSERT_NO_FATAL_FAILURE(expect_dma_sees(dev, d, p + K4 - 8, 2 * K4));

	// A range over registered and new memory maps only the holes.
	ASSERT_EQ(vfdma_mem_register(d, p + 2 * M2, K4), 0);
	uint64_t calls = vfdma_test_domain_info(d).kernel_map_calls;
	ASSERT_EQ(vfdma_mem_register(d, p, 4 * M2), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).kernel_map_calls, calls + 2);
	EXPECT_EQ(mstats(d).registered_bytes, 4 * M2);
	// Each range of the batch counts once: page 2 and 3 were in two.
	ASSERT_EQ(vfdma_mem_unregister(d, p, 4 * M2), 0);
	EXPECT_EQ(mstats(d).registered_bytes, M2 + 8 * K4 + K4);
	for (int i = 0; i < 4; i++)
		if (i != 3) {
			ASSERT_EQ(vfdma_mem_unregister(d, v[i].iov_base, v[i].iov_len), 0);
		}
	EXPECT_EQ(mstats(d).registered_bytes, 3 * K4) << "pages 2 and 3 and the one at 4 MiB";
	ASSERT_EQ(vfdma_mem_unregister(d, v[3].iov_base, v[3].iov_len), 0);
	ASSERT_EQ(vfdma_mem_unregister(d, p + 2 * M2, K4), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

// Random registrations over a buffer: every registered page translates, in
// both directions, and a device reads the CPU's bytes through it.
TEST(SimMem, TranslationOverRandomRegistrations)
{
	std::mt19937_64 rng(vfdma_test_seed("SimMem.TranslationOverRandomRegistrations"));
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	const uint64_t pages = 2048;
	Buf buf(pages * K4);
	std::vector<int> count(pages);
	std::vector<std::pair<uint64_t, uint64_t>> regs;
	const int ops = (int)(3000 * vfdma_test_scale());
	for (int op = 0; op < ops; op++) {
		if (regs.size() < 3 || (regs.size() < 60 && rng() % 2)) {
			uint64_t n = 1 + (rng() % 4 ? rng() % 40 : rng() % 700);
			uint64_t a = rng() % (pages - n);
			ASSERT_EQ(vfdma_mem_register(d, buf.p + a * K4, n * K4), 0);
			for (uint64_t i = a; i < a + n; i++)
				count[i]++;
			regs.push_back({a, n});
		} else {
			size_t k = rng() % regs.size();
			auto [a, n] = regs[k];
			regs.erase(regs.begin() + (long)k);
			ASSERT_EQ(vfdma_mem_unregister(d, buf.p + a * K4, n * K4), 0);
			for (uint64_t i = a; i < a + n; i++)
				count[i]--;
		}
		for (int c = 0; c < 8; c++) {
			uint64_t pg = rng() % pages;
			if (count[pg]) {
				ASSERT_NO_FATAL_FAILURE(
					expect_dma_sees(dev, d, buf.p + pg * K4 + rng() % 4000, 64));
			}
		}
		uint64_t reg = 0;
		for (int c : count)
			reg += c ? K4 : 0;
		ASSERT_EQ(mstats(d).registered_bytes, reg);
	}
	for (auto [a, n] : regs)
		ASSERT_EQ(vfdma_mem_unregister(d, buf.p + a * K4, n * K4), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

TEST(SimMem, CacheHitsMissesAndPassthrough)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	Buf buf(4 * M2);
	uint8_t *p = buf.p;
	uint64_t iova = 0, again = 0;
	EXPECT_EQ(vfdma_mem_acquire(d, p, 0, VFDMA_PROT_RW, &iova), -EINVAL);
	EXPECT_EQ(vfdma_mem_acquire(d, p, K4, 0, &iova), -EINVAL);
	EXPECT_EQ(vfdma_mem_acquire(d, p, K4, 8, &iova), -EINVAL);
	EXPECT_EQ(vfdma_mem_acquire(d, p, K4, VFDMA_PROT_RW, nullptr), -EINVAL);

	ASSERT_EQ(vfdma_mem_acquire(d, p + 100, 3 * K4, VFDMA_PROT_WRITE, &iova), 0);
	uint64_t calls = vfdma_test_domain_info(d).kernel_map_calls;
	ASSERT_EQ(vfdma_mem_acquire(d, p + 200, 2 * K4, VFDMA_PROT_WRITE, &again), 0);
	EXPECT_EQ(again, iova + 100);
	EXPECT_EQ(vfdma_test_domain_info(d).kernel_map_calls, calls) << "a hit makes no kernel call";
	auto s = mstats(d);
	EXPECT_EQ(s.misses, 1u);
	EXPECT_EQ(s.hits, 1u);
	EXPECT_EQ(s.cache_entries, 1u);
	EXPECT_EQ(s.cache_bytes, 4 * K4);
	EXPECT_EQ(s.cache_in_use, 1u);
	EXPECT_LE(s.entry_bytes, 64u);
	const char msg[] = "through the cache";
	ASSERT_EQ(vfdma_sim_dma_write(dev, iova, msg, sizeof(msg)), 0);
	EXPECT_EQ(memcmp(p + 100, msg, sizeof(msg)), 0);
	// Cached memory is not in the vaddr translation (its owner is the cache)...
	uint64_t t;
	EXPECT_EQ(vfdma_vaddr_to_iova(d, p + 100, &t, nullptr), -ENOENT);
	// ...but scatter-gather finds it.
	iovec v = {p + 100, 100};
	vfdma_sg_seg seg;
	size_t n = 0;
	ASSERT_EQ(vfdma_sg_map(d, &v, 1, nullptr, &seg, 1, &n), 0);
	EXPECT_EQ(seg.iova, iova);

	EXPECT_EQ(vfdma_mem_release(d, p + 100, iova + 1), -ENOENT);
	ASSERT_EQ(vfdma_mem_release(d, p + 100, iova), 0);
	ASSERT_EQ(vfdma_mem_release(d, p + 200, again), 0);
	EXPECT_EQ(vfdma_mem_release(d, p + 200, again), -EINVAL) << "no reference left";
	EXPECT_EQ(mstats(d).cache_in_use, 0u);
	EXPECT_EQ(mstats(d).cache_entries, 1u) << "idle entries stay cached";

	// Reading is not writing: a READ-only entry does not serve a write.
	ASSERT_EQ(vfdma_mem_acquire(d, p + M2, K4, VFDMA_PROT_READ, &iova), 0);
	ASSERT_EQ(vfdma_mem_acquire(d, p + M2, K4, VFDMA_PROT_WRITE, &again), 0);
	EXPECT_NE(again, iova);
	EXPECT_EQ(vfdma_mem_release(d, p + M2, iova), 0);
	EXPECT_EQ(vfdma_mem_release(d, p + M2, again), 0);

	// Registered memory is returned as it is, with no entry.
	ASSERT_EQ(vfdma_mem_register(d, p + 2 * M2, M2), 0);
	uint64_t before = mstats(d).cache_entries;
	ASSERT_EQ(vfdma_mem_acquire(d, p + 2 * M2 + 5, 4000, VFDMA_PROT_RW, &iova), 0);
	ASSERT_EQ(vfdma_vaddr_to_iova(d, p + 2 * M2 + 5, &t, nullptr), 0);
	EXPECT_EQ(iova, t);
	EXPECT_EQ(mstats(d).cache_entries, before);
	EXPECT_EQ(mstats(d).passthrough, 1u);
	EXPECT_EQ(vfdma_mem_release(d, p + 2 * M2 + 5, iova), 0);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

TEST(SimMem, ClockEvictsTheLeastRecentlyUsedIdleEntry)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	Buf buf(4 * M2);
	auto buf_of = [&](int i) { return buf.p + i * 16 * K4; };
	ASSERT_EQ(vfdma_mem_set_budget(d, 3 * 2 * K4), 0);
	uint64_t io[8];
	for (int i = 0; i < 3; i++) { // A, B, C
		ASSERT_EQ(vfdma_mem_acquire(d, buf_of(i), 2 * K4, VFDMA_PROT_RW, &io[i]), 0);
		ASSERT_EQ(vfdma_mem_release(d, buf_of(i), io[i]), 0);
	}
	uint64_t x;
	ASSERT_EQ(vfdma_mem_acquire(d, buf_of(0), K4, VFDMA_PROT_RW, &x), 0); // A used again
	ASSERT_EQ(vfdma_mem_release(d, buf_of(0), x), 0);
	ASSERT_EQ(vfdma_mem_acquire(d, buf_of(3), 2 * K4, VFDMA_PROT_RW, &io[3]), 0); // D
	auto s = mstats(d);
	EXPECT_EQ(s.evictions, 1u);
	EXPECT_EQ(s.cache_bytes, 3 * 2 * K4);
	// B went: its IOVA faults for a device now; A is still a hit.
	uint8_t byte;
	EXPECT_EQ(vfdma_sim_dma_read(dev, io[1], &byte, 1), -EFAULT);
	uint64_t misses = s.misses;
	ASSERT_EQ(vfdma_mem_acquire(d, buf_of(0), K4, VFDMA_PROT_RW, &x), 0);
	EXPECT_EQ(mstats(d).misses, misses);
	ASSERT_EQ(vfdma_mem_release(d, buf_of(0), x), 0);

	// Entries in use are never evicted, whatever the budget.
	ASSERT_EQ(vfdma_mem_set_budget(d, 0), 0);
	s = mstats(d);
	EXPECT_EQ(s.cache_entries, 1u) << "only D, held";
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 1u);
	for (int i = 4; i < 8; i++)
		ASSERT_EQ(vfdma_mem_acquire(d, buf_of(i), 2 * K4, VFDMA_PROT_RW, &io[i]), 0);
	s = mstats(d);
	EXPECT_EQ(s.cache_entries, 5u);
	EXPECT_EQ(s.cache_in_use, 5u);
	EXPECT_GT(s.cache_bytes, s.budget);
	for (int i = 3; i < 8; i++) {
		ASSERT_EQ(vfdma_sim_dma_read(dev, io[i], &byte, 1), 0);
		ASSERT_EQ(vfdma_mem_release(d, buf_of(i), io[i]), 0);
	}
	ASSERT_EQ(vfdma_mem_set_budget(d, 0), 0);
	s = mstats(d);
	EXPECT_EQ(s.cache_entries, 0u);
	EXPECT_EQ(s.cache_bytes, 0u);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

// A miss over idle entries it overlaps folds them into one new mapping.
TEST(SimMem, OverlappingMissFoldsIdleEntries)
{
	vfdma_domain *d = vfdma_test_open_sim();
	Buf buf(M2);
	uint64_t a, b, c;
	ASSERT_EQ(vfdma_mem_acquire(d, buf.p, 2 * K4, VFDMA_PROT_RW, &a), 0);
	ASSERT_EQ(vfdma_mem_acquire(d, buf.p + 4 * K4, 2 * K4, VFDMA_PROT_RW, &b), 0);
	ASSERT_EQ(vfdma_mem_release(d, buf.p, a), 0);
	ASSERT_EQ(vfdma_mem_release(d, buf.p + 4 * K4, b), 0);
	ASSERT_EQ(vfdma_mem_acquire(d, buf.p + K4, 4 * K4, VFDMA_PROT_RW, &c), 0);
	auto s = mstats(d);
	EXPECT_EQ(s.cache_entries, 1u);
	EXPECT_EQ(s.cache_bytes, 6 * K4);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 1u);
	uint64_t x;
	ASSERT_EQ(vfdma_mem_acquire(d, buf.p, 6 * K4, VFDMA_PROT_RW, &x), 0);
	EXPECT_EQ(x + K4, c);
	EXPECT_EQ(mstats(d).hits, 1u);
	ASSERT_EQ(vfdma_mem_release(d, buf.p, x), 0);
	// An entry in use is not folded: the new one overlaps it, and both
	// are released correctly by their IOVAs.
	ASSERT_EQ(vfdma_mem_acquire(d, buf.p + 5 * K4, 4 * K4, VFDMA_PROT_RW, &a), 0);
	EXPECT_EQ(mstats(d).cache_entries, 2u);
	ASSERT_EQ(vfdma_mem_release(d, buf.p + K4, c), 0);
	ASSERT_EQ(vfdma_mem_release(d, buf.p + 5 * K4, a), 0);
	EXPECT_EQ(mstats(d).cache_in_use, 0u);
	ASSERT_EQ(vfdma_mem_set_budget(d, 0), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	vfdma_domain_close(d);
}

// Every allocation or system call of register, unregister and a cache miss
// failing in turn: the call fails and the domain is as before.
TEST(SimMem, FaultInjectionLeavesTheDomainUnchanged)
{
	vfdma_domain *d = vfdma_test_open_sim(VFDMA_DOMAIN_NO_IOVA_CACHE);
	Buf buf(8 * M2);
	uint8_t *p = buf.p;
	ASSERT_EQ(vfdma_mem_register(d, p + 3 * M2, 2 * K4), 0);
	struct State {
		uint64_t maps, bytes, kmap, kunmap, reg, regmaps, entries, cbytes;
		bool operator==(const State &o) const
		{
			return maps == o.maps && bytes == o.bytes && kmap == o.kmap &&
			       kunmap == o.kunmap && reg == o.reg && regmaps == o.regmaps &&
			       entries == o.entries && cbytes == o.cbytes;
		}
	};
	auto state = [&] {
		auto i = vfdma_test_domain_info(d);
		auto s = mstats(d);
		return State{i.mappings,	  i.mapped_bytes,  i.kernel_map_calls,
			     i.kernel_unmap_calls, s.registered_bytes, s.reg_mappings,
			     s.cache_entries,	  s.cache_bytes};
	};
	State before = state();
	auto unchanged = [&] {
		EXPECT_EQ(vfdma_domain_check(d), 0);
		State now = state();
		now.kmap = before.kmap; // a rolled-back map counts its kernel call
		now.kunmap = before.kunmap;
		EXPECT_TRUE(now == before);
		uint64_t t;
		EXPECT_EQ(vfdma_vaddr_to_iova(d, p + M2, &t, nullptr), -ENOENT);
		EXPECT_EQ(vfdma_vaddr_to_iova(d, p + 3 * M2 + K4, &t, nullptr), 0);
	};
	iovec v[3] = {{p + M2 - K4, M2 + 2 * K4}, {p + 3 * M2 - K4, 4 * K4}, {p + 6 * M2, K4}};
	unsigned points = vfdma_test_fail_each(
		VFD_SYS_ANY, [&] { return vfdma_mem_register_batch(d, v, 3) == 0; },
		[&] {
			for (auto &x : v)
				ASSERT_EQ(vfdma_mem_unregister(d, x.iov_base, x.iov_len), 0);
			before = state();
		},
		unchanged);
	EXPECT_GT(points, 5u);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 1u);

	// Unregistering half of a registration needs a split: memory for it.
	ASSERT_EQ(vfdma_mem_register(d, p, 8 * K4), 0);
	before = state();
	points = vfdma_test_fail_each(
		VFD_SYS_ANY, [&] { return vfdma_mem_unregister(d, p + 2 * K4, 2 * K4) == 0; },
		[&] {
			ASSERT_EQ(vfdma_mem_register(d, p + 2 * K4, 2 * K4), 0);
			before = state();
		},
		[&] { EXPECT_EQ(mstats(d).registered_bytes, 10 * K4); });
	EXPECT_GT(points, 1u);

	uint64_t iova = 0;
	before = state();
	auto unchanged_cache = [&] {
		EXPECT_EQ(vfdma_domain_check(d), 0);
		State now = state();
		now.kmap = before.kmap;
		now.kunmap = before.kunmap;
		EXPECT_TRUE(now == before);
	};
	points = vfdma_test_fail_each(
		VFD_SYS_ANY,
		[&] { return vfdma_mem_acquire(d, p + 4 * M2 + 5, 3 * M2, VFDMA_PROT_RW, &iova) == 0; },
		[&] {
			ASSERT_EQ(vfdma_mem_release(d, p + 4 * M2 + 5, iova), 0);
			ASSERT_EQ(vfdma_mem_set_budget(d, 0), 0);
			before = state();
		},
		unchanged_cache);
	EXPECT_GE(points, 3u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

// Readers translate registered memory without a lock while writers
// register and unregister other ranges, and map and unmap the readers'
// memory a second time: a reader always gets a translation, never a miss:
// the stable one, or a duplicate's lower IOVA (the lowest wins).
TEST(SimMem, ReadersTranslateWhileWritersRegister)
{
	vfdma_domain *d = vfdma_test_open_sim();
	const uint64_t stable = 4 * M2;
	Buf buf(16 * M2);
	ASSERT_EQ(vfdma_mem_register(d, buf.p, stable), 0);
	uint64_t base = 0;
	ASSERT_EQ(vfdma_vaddr_to_iova(d, buf.p, &base, nullptr), 0);
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> bad{0}, reads{0};
	std::vector<std::thread> th;
	for (int r = 0; r < 2; r++)
		th.emplace_back([&, r] {
			std::mt19937_64 rr(r);
			while (!stop.load(std::memory_order_relaxed)) {
				uint64_t off = rr() % stable, iova, len;
				void *back;
				// A duplicate's IOVA can be gone again before a second
				// lookup; the stable one must lead back.
				if (vfdma_vaddr_to_iova(d, buf.p + off, &iova, &len) ||
				    (iova == base + off &&
				     (len != stable - off || vfdma_iova_to_vaddr(d, iova, &back, nullptr) ||
				      back != buf.p + off)) ||
				    (iova != base + off && iova > base + off))
					bad++;
				reads++;
			}
		});
	std::mt19937_64 rng(vfdma_test_seed("SimMem.ReadersTranslateWhileWritersRegister"));
	std::atomic<int> failures{0};
	for (int w = 0; w < 2; w++)
		th.emplace_back([&, w, wseed = rng()] {
			std::mt19937_64 wr(wseed + w);
			const int rounds = (int)(800 * vfdma_test_scale());
			for (int i = 0; i < rounds; i++) {
				uint8_t *q = buf.p + stable + (uint64_t)w * 6 * M2 + (wr() % 1024) * K4;
				uint64_t n = (1 + wr() % 300) * K4;
				if (vfdma_mem_register(d, q, n) || vfdma_mem_unregister(d, q, n))
					failures++;
				uint64_t dup;
				if (vfdma_map(d, buf.p + (wr() % 512) * K4, 64 * K4, VFDMA_PROT_RW, 0, &dup) ||
				    vfdma_unmap(d, dup, 64 * K4))
					failures++;
			}
		});
	th[2].join();
	th[3].join();
	while (reads.load() < 1000)
		std::this_thread::yield();
	stop = true;
	th[0].join();
	th[1].join();
	EXPECT_EQ(failures.load(), 0);
	EXPECT_EQ(bad.load(), 0u) << "of " << reads.load();
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 1u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

// Hits race evictions: while a buffer is held its IOVA stays mapped to it.
TEST(SimMem, HitsRaceEvictions)
{
	vfdma_domain *d = vfdma_test_open_sim();
	Buf buf(M2);
	ASSERT_EQ(vfdma_mem_set_budget(d, 8 * 4 * K4), 0);
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> bad{0}, ops{0};
	std::vector<std::thread> th;
	for (int t = 0; t < 2; t++)
		th.emplace_back([&, t] {
			vfdma_device *dev = vfdma_sim_device_create(d); // one per thread
			std::mt19937_64 r(t);
			const int n = (int)(20000 * vfdma_test_scale());
			for (int i = 0; i < n; i++) {
				uint8_t *q = buf.p + (r() % 64) * 4 * K4 + r() % 100;
				uint64_t iova;
				if (vfdma_mem_acquire(d, q, 2 * K4, VFDMA_PROT_READ, &iova)) {
					bad++;
					continue;
				}
				void *back;
				uint8_t b;
				if (vfdma_iova_to_vaddr(d, iova, &back, nullptr) || back != q ||
				    vfdma_sim_dma_read(dev, iova + K4, &b, 1))
					bad++;
				if (vfdma_mem_release(d, q, iova))
					bad++;
				ops++;
			}
			vfdma_device_close(dev);
		});
	th.emplace_back([&] {
		while (!stop.load(std::memory_order_relaxed)) {
			vfdma_mem_set_budget(d, 0);
			vfdma_mem_set_budget(d, 8 * 4 * K4);
		}
	});
	th[0].join();
	th[1].join();
	stop = true;
	th[2].join();
	EXPECT_EQ(bad.load(), 0u) << "of " << ops.load();
	auto s = mstats(d);
	EXPECT_EQ(s.cache_in_use, 0u);
	EXPECT_GT(s.evictions, 0u);
	EXPECT_EQ(s.hits + s.misses, ops.load());
	fprintf(stderr, "[  CACHE   ] %llu hits, %llu misses, %llu evictions\n",
		(unsigned long long)s.hits, (unsigned long long)s.misses,
		(unsigned long long)s.evictions);
	ASSERT_EQ(vfdma_mem_set_budget(d, 0), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

// Scatter-gather against its rules, over memory registered in random
// pieces (so buffers cross mappings whose IOVAs may or may not continue):
// the segments carry exactly the buffers' IOVAs in order, none is longer
// than the limit or crosses a boundary, two contiguous segments are split
// only where a rule forced it, and a device writing through them fills the
// buffers.
TEST(SimMem, ScatterGatherRules)
{
	std::mt19937_64 rng(vfdma_test_seed("SimMem.ScatterGatherRules"));
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	const uint64_t size = 8 * M2;
	Buf buf(size + M2);
	for (uint64_t pos = 0; pos < size;) {
		uint64_t n = std::min<uint64_t>((1 + (rng() % 3 ? rng() % 4 : rng() % 600)) * K4, size - pos);
		if (rng() % 3) {
			ASSERT_EQ(vfdma_mem_register(d, buf.p + pos, n), 0);
		} else { // two halves in one batch: one mapping
			iovec h[2] = {{buf.p + pos, n / 2}, {buf.p + pos + n / 2, n - n / 2}};
			ASSERT_EQ(vfdma_mem_register_batch(d, h, 2), 0);
		}
		pos += n;
	}
	std::vector<vfdma_sg_seg> segs(100000);
	const int iters = (int)(1500 * vfdma_test_scale());
	for (int it = 0; it < iters; it++) {
		int cnt = 1 + (int)(rng() % 8);
		std::vector<iovec> iov(cnt);
		for (auto &v : iov) {
			uint64_t len = rng() % 5 == 0 ? 0 : 1 + rng() % (rng() % 4 ? 3 * K4 : 200 * K4);
			v.iov_base = buf.p + rng() % (size - len);
			v.iov_len = len;
		}
		if (rng() % 4 == 0 && cnt > 1) { // the next buffer continues this one
			uint8_t *e = (uint8_t *)iov[0].iov_base + iov[0].iov_len;
			iov[1].iov_base = e;
			iov[1].iov_len = std::min<uint64_t>(iov[1].iov_len, buf.p + size - e);
		}
		vfdma_sg_limits lim = {0, 0};
		static const uint64_t sizes[] = {0, 512, 4096, 65536, 3 * K4 + 5};
		lim.max_seg_size = rng() % 2 ? sizes[rng() % 5] : 256 + rng() % (64 * K4);
		lim.seg_boundary_mask = rng() % 3 ? (1ull << (9 + rng() % 14)) - 1 : 0;
		size_t n = 0;
		ASSERT_EQ(vfdma_sg_map(d, iov.data(), cnt, &lim, segs.data(), segs.size(), &n), 0);

		// The IOVA pieces the buffers consist of, from the translation.
		std::vector<vfdma_sg_seg> want;
		for (auto &v : iov) {
			for (uint64_t off = 0; off < v.iov_len;) {
				uint64_t iova, len;
				ASSERT_EQ(vfdma_vaddr_to_iova(d, (uint8_t *)v.iov_base + off, &iova, &len), 0);
				len = std::min(len, v.iov_len - off);
				if (!want.empty() && want.back().iova + want.back().len == iova)
					want.back().len += len;
				else
					want.push_back({iova, len});
				off += len;
			}
		}
		uint64_t mx = lim.max_seg_size ? lim.max_seg_size : UINT64_MAX;
		uint64_t mask = lim.seg_boundary_mask;
		std::vector<vfdma_sg_seg> got;
		for (size_t i = 0; i < n; i++) {
			const auto &s = segs[i];
			ASSERT_GT(s.len, 0u);
			ASSERT_LE(s.len, mx);
			if (mask) {
				ASSERT_EQ(s.iova & ~mask, (s.iova + s.len - 1) & ~mask) << "crosses a boundary";
			}
			if (i && segs[i - 1].iova + segs[i - 1].len == s.iova) {
				const auto &p = segs[i - 1];
				bool forced = p.len == mx || (mask && !((p.iova + p.len) & mask));
				ASSERT_TRUE(forced) << "split without a reason at segment " << i;
			}
			if (!got.empty() && got.back().iova + got.back().len == s.iova)
				got.back().len += s.len;
			else
				got.push_back(s);
		}
		ASSERT_EQ(got.size(), want.size());
		for (size_t i = 0; i < got.size(); i++) {
			ASSERT_EQ(got[i].iova, want[i].iova);
			ASSERT_EQ(got[i].len, want[i].len);
		}
		if (n) {
			size_t m = 0;
			EXPECT_EQ(vfdma_sg_map(d, iov.data(), cnt, &lim, segs.data(), n - 1, &m), -ENOSPC);
		}
		if (it % 16 == 0) { // the device fills the buffers through the segments
			uint64_t total = 0;
			for (size_t i = 0; i < n; i++)
				total += segs[i].len;
			std::vector<uint8_t> src(total);
			for (auto &b : src)
				b = (uint8_t)rng();
			uint64_t at = 0;
			for (size_t i = 0; i < n; i++) {
				ASSERT_EQ(vfdma_sim_dma_write(dev, segs[i].iova, src.data() + at, segs[i].len), 0);
				at += segs[i].len;
			}
			at = 0;
			bool overlap = false; // buffers may overlap: check only if they don't
			for (int a = 0; a < cnt; a++)
				for (int b = a + 1; b < cnt; b++)
					overlap |= (uint8_t *)iov[a].iov_base < (uint8_t *)iov[b].iov_base + iov[b].iov_len &&
						   (uint8_t *)iov[b].iov_base < (uint8_t *)iov[a].iov_base + iov[a].iov_len;
			for (auto &v : iov) {
				if (!overlap && v.iov_len) {
					ASSERT_EQ(memcmp(v.iov_base, src.data() + at, v.iov_len), 0);
				}
				at += v.iov_len;
			}
		}
	}
	// The errors.
	iovec v = {buf.p, 100};
	size_t n = 7;
	vfdma_sg_limits bad = {0, 4094};
	EXPECT_EQ(vfdma_sg_map(d, &v, 1, &bad, segs.data(), 4, &n), -EINVAL);
	EXPECT_EQ(vfdma_sg_map(d, &v, -1, nullptr, segs.data(), 4, &n), -EINVAL);
	EXPECT_EQ(vfdma_sg_map(d, &v, 1, nullptr, segs.data(), 4, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_sg_map(nullptr, &v, 1, nullptr, segs.data(), 4, &n), -EINVAL);
	iovec off_end = {buf.p + size - 10, 20}; // runs into unregistered memory
	EXPECT_EQ(vfdma_sg_map(d, &off_end, 1, nullptr, segs.data(), 4, &n), -ENOENT);
	EXPECT_EQ(n, 7u) << "set on success only";
	EXPECT_EQ(vfdma_sg_map(d, &v, 0, nullptr, nullptr, 0, &n), 0);
	EXPECT_EQ(n, 0u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}
