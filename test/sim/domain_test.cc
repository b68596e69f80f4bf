// SPDX-License-Identifier: BSD-3-Clause
// Domains and mappings through the public API on the sim backend: software
// devices do real DMA through the software IOMMU, so every mapping, every
// permission and every unmap is checked by what a device can and cannot
// reach.
#include "vfdma_test.h"

#include <atomic>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

extern "C" {
#include "iommu/domain.h"
#include "iommu/sim_pt.h"
}

namespace
{
constexpr uint64_t K4 = 4096, M2 = 2ull << 20;

using Buf = VfdmaTestBuf;

vfdma_iova_stats iova_stats(vfdma_domain *d)
{
	vfdma_iova_stats st;
	EXPECT_EQ(vfdma_iova_get_stats(d->iova, &st), 0);
	return st;
}

vfdma_sim_stats sim_stats(vfdma_domain *d)
{
	vfdma_sim_stats st;
	EXPECT_EQ(vfdma_sim_get_stats(d, &st), 0);
	return st;
}

// Everything observable about a domain's state, for "unchanged" checks.
struct Snapshot {
	uint64_t mappings, bytes, allocs, free_bytes, cached, leaves, tables;
	explicit Snapshot(vfdma_domain *d)
	{
		vfdma_iova_flush(d->iova);
		auto i = vfdma_test_domain_info(d);
		auto a = iova_stats(d);
		auto s = sim_stats(d);
		mappings = i.mappings;
		bytes = i.mapped_bytes;
		allocs = a.allocs;
		free_bytes = a.free_bytes;
		cached = a.cached;
		leaves = s.leaves_4k + s.leaves_2m + s.leaves_1g;
		tables = s.tables;
	}
	bool operator==(const Snapshot &o) const
	{
		return mappings == o.mappings && bytes == o.bytes && allocs == o.allocs &&
		       free_bytes == o.free_bytes && leaves == o.leaves && tables == o.tables;
	}
};
} // namespace

TEST(SimDomain, OpensWithSimBackendAndReportsItself)
{
	vfdma_domain *d = vfdma_test_open_sim();
	ASSERT_NE(d, nullptr);
	EXPECT_EQ(vfdma_domain_backend(d), VFDMA_BACKEND_SIM);
	EXPECT_STREQ(vfdma_backend_name(VFDMA_BACKEND_SIM), "sim");
	uint64_t pg = 0;
	ASSERT_EQ(vfdma_domain_pgsizes(d, &pg), 0);
	EXPECT_EQ(pg, (1ull << 12) | (1ull << 21) | (1ull << 30));
	vfdma_iova_range r[4];
	ASSERT_EQ(vfdma_domain_ranges(d, r, 4), 2);
	EXPECT_EQ(r[0].first, K4); // IOVA 0 is never handed out
	EXPECT_EQ(r[0].last, 0xfedfffffull);
	EXPECT_EQ(r[1].first, 0xfef00000ull); // the MSI window is not usable
	EXPECT_EQ(vfdma_domain_ranges(d, nullptr, 0), 2);
	auto i = vfdma_test_domain_info(d);
	EXPECT_EQ(i.backend, VFDMA_BACKEND_SIM);
	EXPECT_TRUE(i.dirty_caps & VFDMA_DIRTY_CAP_HW);
	EXPECT_EQ(vfdma_domain_close(d), 0);
	EXPECT_EQ(vfdma_domain_close(nullptr), 0);
}

TEST(SimDomain, BackendFromEnvironmentAndBadOptions)
{
	setenv("VFDMA_BACKEND", "sim", 1);
	vfdma_domain *d = vfdma_domain_open(nullptr);
	ASSERT_NE(d, nullptr);
	EXPECT_EQ(vfdma_domain_backend(d), VFDMA_BACKEND_SIM);
	vfdma_domain_close(d);
	setenv("VFDMA_BACKEND", "nonsense", 1);
	errno = 0;
	EXPECT_EQ(vfdma_domain_open(nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	unsetenv("VFDMA_BACKEND");

	vfdma_domain_opts o = {};
	o.backend = (vfdma_backend)42;
	EXPECT_EQ(vfdma_domain_open(&o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	o = {};
	o.backend = VFDMA_BACKEND_SIM;
	o.flags = 1u << 20;
	EXPECT_EQ(vfdma_domain_open(&o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	o.flags = 0;
	o.sim_va_bits = 40;
	EXPECT_EQ(vfdma_domain_open(&o), nullptr);
	EXPECT_EQ(errno, EINVAL);
}

TEST(SimDomain, DeviceDmaReachesExactlyWhatIsMapped)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	ASSERT_NE(dev, nullptr);
	Buf buf(4 * M2);
	uint64_t iova = 0;
	ASSERT_EQ(vfdma_map(d, buf.p, 4 * M2, VFDMA_PROT_RW, 0, &iova), 0);
	EXPECT_EQ(iova % M2, 0u) << "a 2 MiB buffer gets a 2 MiB-aligned IOVA";
	EXPECT_EQ(sim_stats(d).leaves_2m, 4u);

	const char msg[] = "written by a device";
	ASSERT_EQ(vfdma_sim_dma_write(dev, iova + M2 + 100, msg, sizeof(msg)), 0);
	EXPECT_EQ(memcmp(buf.p + M2 + 100, msg, sizeof(msg)), 0);

	uint64_t t = 0, len = 0;
	ASSERT_EQ(vfdma_vaddr_to_iova(d, buf.p + 5000, &t, &len), 0);
	EXPECT_EQ(t, iova + 5000);
	EXPECT_EQ(len, 4 * M2 - 5000);
	void *va = nullptr;
	ASSERT_EQ(vfdma_iova_to_vaddr(d, iova + 3 * M2, &va, &len), 0);
	EXPECT_EQ(va, buf.p + 3 * M2);
	EXPECT_EQ(len, M2);
	EXPECT_EQ(vfdma_vaddr_to_iova(d, buf.p + 4 * M2, &t, nullptr), -ENOENT);
	EXPECT_EQ(vfdma_iova_to_vaddr(d, iova + 4 * M2, &va, nullptr), -ENOENT);

	ASSERT_EQ(vfdma_unmap(d, iova, 4 * M2), 0);
	// Unmapped: the device faults and memory is untouched.
	char x = 'X';
	EXPECT_EQ(vfdma_sim_dma_write(dev, iova + 7, &x, 1), -EFAULT);
	EXPECT_EQ(buf.p[7], 0);
	vfdma_sim_fault f[4];
	ASSERT_EQ(vfdma_sim_faults(dev, f, 4, nullptr), 1);
	EXPECT_EQ(f[0].iova, iova + 7);
	EXPECT_EQ(f[0].write, 1u);
	EXPECT_EQ(f[0].reason, (unsigned)VFDMA_SIM_FAULT_NOT_PRESENT);
	EXPECT_EQ(vfdma_vaddr_to_iova(d, buf.p, &t, nullptr), -ENOENT);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	EXPECT_EQ(vfdma_device_close(dev), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}

TEST(SimDomain, ProtectionIsEnforced)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	Buf buf(M2);
	memset(buf.p, 0x5a, K4);
	uint64_t ro = 0, wo = 0;
	ASSERT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_READ, 0, &ro), 0);
	ASSERT_EQ(vfdma_map(d, buf.p + K4, K4, VFDMA_PROT_WRITE, 0, &wo), 0);
	uint8_t b[16];
	EXPECT_EQ(vfdma_sim_dma_read(dev, ro, b, sizeof(b)), 0);
	EXPECT_EQ(b[3], 0x5a);
	EXPECT_EQ(vfdma_sim_dma_write(dev, ro, b, 1), -EFAULT); // device may not write
	EXPECT_EQ(buf.p[0], 0x5a);
	EXPECT_EQ(vfdma_sim_dma_read(dev, wo, b, 1), -EFAULT); // device may not read
	EXPECT_EQ(vfdma_sim_dma_write(dev, wo, b, 4), 0);
	EXPECT_EQ(buf.p[K4 + 2], 0x5a);
	vfdma_sim_fault f[4];
	ASSERT_EQ(vfdma_sim_faults(dev, f, 4, nullptr), 2);
	EXPECT_EQ(f[0].reason, (unsigned)VFDMA_SIM_FAULT_PERM);
	vfdma_domain_close(d); // closes the device too
}

TEST(SimDomain, BadInputChangesNothing)
{
	vfdma_domain *d = vfdma_test_open_sim();
	Buf buf(2 * M2);
	uint64_t iova = 0, fixed = 1ull << 32;
	ASSERT_EQ(vfdma_map(d, buf.p, M2, VFDMA_PROT_RW, 0, &iova), 0);
	Snapshot before(d);
	uint64_t out = 0;
	EXPECT_EQ(vfdma_map(nullptr, buf.p, K4, VFDMA_PROT_RW, 0, &out), -EINVAL);
	EXPECT_EQ(vfdma_map(d, nullptr, K4, VFDMA_PROT_RW, 0, &out), -EINVAL);
	EXPECT_EQ(vfdma_map(d, buf.p + 1, K4, VFDMA_PROT_RW, 0, &out), -EINVAL);
	EXPECT_EQ(vfdma_map(d, buf.p, K4 + 1, VFDMA_PROT_RW, 0, &out), -EINVAL);
	EXPECT_EQ(vfdma_map(d, buf.p, 0, VFDMA_PROT_RW, 0, &out), -EINVAL);
	EXPECT_EQ(vfdma_map(d, buf.p, K4, 0, 0, &out), -EINVAL);
	EXPECT_EQ(vfdma_map(d, buf.p, K4, 8, 0, &out), -EINVAL);
	EXPECT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, 1u << 9, &out), -EINVAL);
	EXPECT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, 0, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_map(d, (void *)(UINTPTR_MAX - K4 + 1), 2 * K4, VFDMA_PROT_RW, 0, &out),
		  -EOVERFLOW);
	// Fixed IOVAs: unaligned, overlapping, outside the ranges, wrapping.
	fixed = 0x12345;
	EXPECT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &fixed), -EINVAL);
	fixed = iova + K4;
	EXPECT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &fixed), -EBUSY);
	fixed = 0xfee00000;
	EXPECT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &fixed), -ERANGE);
	fixed = 0;
	EXPECT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &fixed), -ERANGE);
	fixed = 1ull << 48;
	EXPECT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &fixed), -ERANGE);
	// Unmap: nothing there, part of a mapping, unaligned, zero.
	EXPECT_EQ(vfdma_unmap(d, iova + M2, K4), -ENOENT);
	EXPECT_EQ(vfdma_unmap(d, iova, K4), -EINVAL);
	EXPECT_EQ(vfdma_unmap(d, iova + K4, K4), -EINVAL);
	EXPECT_EQ(vfdma_unmap(d, iova, 2 * M2), -EINVAL);
	EXPECT_EQ(vfdma_unmap(d, iova + 1, M2), -EINVAL);
	EXPECT_EQ(vfdma_unmap(d, iova, 0), -EINVAL);
	EXPECT_EQ(vfdma_unmap(nullptr, iova, M2), -EINVAL);
	EXPECT_EQ(vfdma_vaddr_to_iova(d, buf.p, nullptr, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_iova_to_vaddr(d, iova, nullptr, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_domain_set_dma_limit(d, 100), -ERANGE);
	EXPECT_EQ(vfdma_domain_get_info(d, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_domain_pgsizes(d, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_domain_ranges(d, nullptr, 3), -EINVAL);
	EXPECT_EQ(vfdma_device_open(d, "0000:00:03.0", 0), nullptr);
	EXPECT_EQ(errno, ENOTSUP); // sim domains have sim devices
	EXPECT_EQ(vfdma_device_open(d, "bogus", 0), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_TRUE(Snapshot(d) == before);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

TEST(SimDomain, FixedIovaAndDmaLimit)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	Buf buf(M2);
	uint64_t iova = 0x40000000;
	ASSERT_EQ(vfdma_map(d, buf.p, 8 * K4, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &iova), 0);
	EXPECT_EQ(iova, 0x40000000u);
	uint32_t v = 0xfeedf00d;
	ASSERT_EQ(vfdma_sim_dma_write(dev, 0x40000000 + 3 * K4, &v, 4), 0);
	EXPECT_EQ(memcmp(buf.p + 3 * K4, &v, 4), 0);
	ASSERT_EQ(vfdma_unmap(d, 0x40000000, 8 * K4), 0);

	// A 32-bit device: every IOVA below 4 GiB.
	ASSERT_EQ(vfdma_domain_set_dma_limit(d, UINT32_MAX), 0);
	for (int i = 0; i < 64; i++) {
		uint64_t x = 0;
		ASSERT_EQ(vfdma_map(d, buf.p, M2, VFDMA_PROT_RW, 0, &x), 0);
		EXPECT_LE(x + M2 - 1, (uint64_t)UINT32_MAX);
	}
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 64u);
	vfdma_domain_close(d);
}

TEST(SimDomain, BatchCoalescesContiguousRuns)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_device *dev = vfdma_sim_device_create(d);
	Buf buf(8 * M2);
	// Runs 0-2 contiguous in memory, run 3 elsewhere, runs 4-5 contiguous.
	vfdma_map_run runs[6] = {
		{buf.p, K4, 0},		     {buf.p + K4, 2 * K4, 0},
		{buf.p + 3 * K4, K4, 0},     {buf.p + M2, M2, 0},
		{buf.p + 4 * M2, M2, 0},     {buf.p + 5 * M2, M2, 0},
	};
	auto before = vfdma_test_domain_info(d);
	ASSERT_EQ(vfdma_map_batch(d, runs, 6, VFDMA_PROT_RW, 0), 0);
	auto after = vfdma_test_domain_info(d);
	EXPECT_EQ(after.kernel_map_calls - before.kernel_map_calls, 3u);
	EXPECT_EQ(after.mappings, 3u);
	// Coalesced runs sit at contiguous IOVAs.
	EXPECT_EQ(runs[1].iova, runs[0].iova + K4);
	EXPECT_EQ(runs[2].iova, runs[1].iova + 2 * K4);
	EXPECT_EQ(runs[5].iova, runs[4].iova + M2);
	for (auto &r : runs) {
		uint8_t tag = (uint8_t)(&r - runs + 1);
		ASSERT_EQ(vfdma_sim_dma_write(dev, r.iova + r.len - 1, &tag, 1), 0);
		EXPECT_EQ(((uint8_t *)r.vaddr)[r.len - 1], tag);
	}
	// A coalesced mapping is unmapped whole: one run of it is part of a mapping.
	EXPECT_EQ(vfdma_unmap(d, runs[1].iova, runs[1].len), -EINVAL);
	// Gathered: all three mappings, adjacent or not, in one batch.
	vfdma_map_run un[3] = {{nullptr, 4 * K4, runs[0].iova},
			       {nullptr, M2, runs[3].iova},
			       {nullptr, 2 * M2, runs[4].iova}};
	ASSERT_EQ(vfdma_unmap_batch(d, un, 3), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);

	// NOCOALESCE keeps every run its own mapping.
	ASSERT_EQ(vfdma_map_batch(d, runs, 3, VFDMA_PROT_RW, VFDMA_MAP_NOCOALESCE), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 3u);
	ASSERT_EQ(vfdma_unmap(d, runs[1].iova, runs[1].len), 0);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

TEST(SimDomain, BatchFailureRollsBackEverything)
{
	vfdma_domain *d = vfdma_test_open_sim(VFDMA_DOMAIN_NO_IOVA_CACHE);
	Buf buf(8 * M2);
	uint64_t keep = 0;
	ASSERT_EQ(vfdma_map(d, buf.p, M2, VFDMA_PROT_RW, 0, &keep), 0);
	Snapshot before(d);
	// The third run's fixed IOVA collides with an existing mapping.
	vfdma_map_run runs[3] = {{buf.p + M2, M2, 1ull << 33},
				 {buf.p + 3 * M2, K4, 1ull << 34},
				 {buf.p + 5 * M2, K4, keep}};
	EXPECT_EQ(vfdma_map_batch(d, runs, 3, VFDMA_PROT_RW, VFDMA_MAP_FIXED), -EBUSY);
	EXPECT_TRUE(Snapshot(d) == before);
	// A bad run anywhere is refused before anything is mapped.
	vfdma_map_run bad[2] = {{buf.p, K4, 0}, {buf.p + 1, K4, 0}};
	EXPECT_EQ(vfdma_map_batch(d, bad, 2, VFDMA_PROT_RW, 0), -EINVAL);
	// Unmap batches validate every run first.
	vfdma_map_run un[2] = {{nullptr, M2, keep}, {nullptr, K4, 1ull << 40}};
	EXPECT_EQ(vfdma_unmap_batch(d, un, 2), -ENOENT);
	EXPECT_TRUE(Snapshot(d) == before);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

TEST(SimDomain, DeferredUnmapIsGatheredAndNeverReusesEarly)
{
	vfdma_domain_opts o = {};
	o.backend = VFDMA_BACKEND_SIM;
	o.flags = VFDMA_DOMAIN_DEFER_UNMAP | VFDMA_DOMAIN_NO_IOVA_CACHE;
	o.defer_max_entries = 1000;
	o.defer_max_us = 1000000000u; // only explicit flushes in this test
	vfdma_domain *d = vfdma_domain_open(&o);
	vfdma_device *dev = vfdma_sim_device_create(d);
	Buf buf(M2);
	uint64_t iova[8];
	vfdma_map_run runs[8];
	for (int i = 0; i < 8; i++)
		runs[i] = {buf.p + i * K4, K4, 0};
	ASSERT_EQ(vfdma_map_batch(d, runs, 8, VFDMA_PROT_RW, VFDMA_MAP_NOCOALESCE), 0);
	for (int i = 0; i < 8; i++)
		iova[i] = runs[i].iova;
	auto before = vfdma_test_domain_info(d);
	for (int i = 0; i < 8; i++)
		ASSERT_EQ(vfdma_unmap(d, iova[i], K4), 0);
	auto queued = vfdma_test_domain_info(d);
	EXPECT_EQ(queued.mappings, 0u);
	EXPECT_EQ(queued.deferred_bytes, 8 * K4);
	EXPECT_EQ(queued.kernel_unmap_calls, before.kernel_unmap_calls);
	// The translation is gone at once, ...
	uint64_t t;
	EXPECT_EQ(vfdma_vaddr_to_iova(d, buf.p, &t, nullptr), -ENOENT);
	// ... the IOMMU still maps it until the flush (that is what deferral is) ...
	uint8_t x = 1;
	EXPECT_EQ(vfdma_sim_dma_write(dev, iova[0], &x, 1), 0);
	// ... and a new mapping never gets a queued IOVA.
	uint64_t fresh = 0;
	ASSERT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, 0, &fresh), 0);
	for (uint64_t q : iova)
		EXPECT_NE(fresh, q);
	ASSERT_EQ(vfdma_domain_flush(d), 0);
	auto flushed = vfdma_test_domain_info(d);
	// The 8 adjacent 4 KiB IOVAs went out in one kernel call.
	EXPECT_EQ(flushed.kernel_unmap_calls - before.kernel_unmap_calls, 1u);
	EXPECT_EQ(flushed.deferred_bytes, 0u);
	EXPECT_EQ(vfdma_sim_dma_write(dev, iova[0], &x, 1), -EFAULT);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

TEST(SimDomain, DeferredUnmapFlushesOnThresholdAndExhaustion)
{
	vfdma_domain_opts o = {};
	o.backend = VFDMA_BACKEND_SIM;
	o.flags = VFDMA_DOMAIN_DEFER_UNMAP;
	o.defer_max_entries = 4;
	o.defer_max_us = 1000000000u;
	vfdma_domain *d = vfdma_domain_open(&o);
	Buf buf(M2);
	for (int i = 0; i < 3; i++) {
		uint64_t x;
		ASSERT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, 0, &x), 0);
		ASSERT_EQ(vfdma_unmap(d, x, K4), 0);
	}
	EXPECT_EQ(vfdma_test_domain_info(d).deferred_bytes, 3 * K4);
	uint64_t x;
	ASSERT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, 0, &x), 0);
	ASSERT_EQ(vfdma_unmap(d, x, K4), 0); // the 4th entry reaches the threshold
	EXPECT_EQ(vfdma_test_domain_info(d).deferred_bytes, 0u);
	vfdma_domain_close(d);

	// A small space (a 32-bit DMA limit, 128 MiB maps): queued IOVAs are
	// released before an allocation reports -ENOSPC.
	o.defer_max_entries = 1000;
	o.defer_max_bytes = 1ull << 40;
	d = vfdma_domain_open(&o);
	ASSERT_EQ(vfdma_domain_set_dma_limit(d, UINT32_MAX), 0);
	Buf big(64 * M2);
	std::vector<uint64_t> held;
	for (;;) {
		uint64_t y;
		int rc = vfdma_map(d, big.p, 64 * M2, VFDMA_PROT_RW, 0, &y);
		if (rc == -ENOSPC)
			break;
		ASSERT_EQ(rc, 0);
		held.push_back(y);
	}
	ASSERT_GT(held.size(), 10u);
	for (uint64_t y : held)
		ASSERT_EQ(vfdma_unmap(d, y, 64 * M2), 0);
	EXPECT_GT(vfdma_test_domain_info(d).deferred_bytes, 0u);
	for (size_t i = 0; i < held.size(); i++) {
		uint64_t y;
		ASSERT_EQ(vfdma_map(d, big.p, 64 * M2, VFDMA_PROT_RW, 0, &y), 0) << i;
	}
	vfdma_domain_close(d);
}

TEST(SimDomain, InconsistencyMarksTheDomainBroken)
{
	vfdma_domain *d = vfdma_test_open_sim();
	Buf buf(M2);
	uint64_t a = 0, b = 0;
	ASSERT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, 0, &a), 0);
	ASSERT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, 0, &b), 0);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	// Someone unmaps behind the domain's back: check finds it.
	ASSERT_EQ(vfd_simpt_unmap(vfd_sim_domain_pt(d), a, K4), (int64_t)K4);
	EXPECT_EQ(vfdma_domain_check(d), -EIO);
	EXPECT_EQ(vfdma_test_domain_info(d).broken, 1);
	uint64_t c;
	EXPECT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, 0, &c), -EIO);
	// Close still releases everything, and reports the missing mapping.
	EXPECT_EQ(vfdma_domain_close(d), -EIO);

	// The kernel unmapping a different size than asked is never success.
	d = vfdma_test_open_sim();
	ASSERT_EQ(vfdma_map(d, buf.p, K4, VFDMA_PROT_RW, 0, &a), 0);
	ASSERT_EQ(vfd_simpt_unmap(vfd_sim_domain_pt(d), a, K4), (int64_t)K4);
	EXPECT_EQ(vfdma_unmap(d, a, K4), -EIO);
	EXPECT_EQ(vfdma_test_domain_info(d).broken, 1);
	vfdma_domain_close(d);
}

// Every public operation, with the nth allocation or system call failing
// for n = 1, 2, ...: an error, and the domain exactly as before.
TEST(SimDomain, FaultInjectionSweep)
{
	Buf buf(8 * M2);
	unsigned points = vfdma_test_fail_each(
		VFD_SYS_ANY,
		[&]() {
			vfdma_domain *d = vfdma_test_open_sim();
			if (!d)
				return false;
			vfdma_domain_close(d);
			return true;
		},
		[]() {}, []() {});
	EXPECT_GT(points, 2u);

	vfdma_domain *d = vfdma_test_open_sim(VFDMA_DOMAIN_NO_IOVA_CACHE);
	uint64_t keep = 0;
	ASSERT_EQ(vfdma_map(d, buf.p, M2, VFDMA_PROT_RW, 0, &keep), 0);
	Snapshot before(d);
	auto unchanged = [&]() { EXPECT_TRUE(Snapshot(d) == before); };

	uint64_t iova = 0;
	points = vfdma_test_fail_each(
		VFD_SYS_ANY,
		[&]() { return vfdma_map(d, buf.p + 2 * M2, 2 * M2 + 3 * K4, VFDMA_PROT_RW, 0, &iova) == 0; },
		[&]() { ASSERT_EQ(vfdma_unmap(d, iova, 2 * M2 + 3 * K4), 0); }, unchanged);
	EXPECT_GT(points, 2u);

	vfdma_map_run runs[4] = {{buf.p + M2, K4, 0},
				 {buf.p + M2 + K4, K4, 0},
				 {buf.p + 4 * M2, M2, 0},
				 {buf.p + 6 * M2 + K4, 5 * K4, 0}};
	points = vfdma_test_fail_each(
		VFD_SYS_ANY, [&]() { return vfdma_map_batch(d, runs, 4, VFDMA_PROT_RW, 0) == 0; },
		[&]() {
			vfdma_map_run un[3] = {{nullptr, 2 * K4, runs[0].iova},
					       {nullptr, M2, runs[2].iova},
					       {nullptr, 5 * K4, runs[3].iova}};
			ASSERT_EQ(vfdma_unmap_batch(d, un, 3), 0);
		},
		unchanged);
	EXPECT_GT(points, 3u);

	EXPECT_TRUE(Snapshot(d) == before);

	vfdma_device *dev = nullptr;
	points = vfdma_test_fail_each(
		VFD_SYS_ANY, [&]() { return (dev = vfdma_sim_device_create(d)) != nullptr; },
		[&]() { vfdma_device_close(dev); }, [&]() { EXPECT_EQ(vfdma_test_domain_info(d).nr_devices, 0u); });
	EXPECT_GT(points, 0u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

// Gathering unmaps needs one allocation; without it, unmaps go one by one
// and still succeed.
TEST(SimDomain, UnmapWithoutMemoryStillUnmaps)
{
	vfdma_domain *d = vfdma_test_open_sim();
	Buf buf(4 * M2);
	vfdma_map_run runs[3] = {{buf.p, K4, 0}, {buf.p + K4, K4, 0}, {buf.p + M2, M2, 0}};
	ASSERT_EQ(vfdma_map_batch(d, runs, 3, VFDMA_PROT_RW, VFDMA_MAP_NOCOALESCE), 0);
	auto before = vfdma_test_domain_info(d);
	vfdma_map_run un[3] = {{nullptr, K4, runs[0].iova},
			       {nullptr, K4, runs[1].iova},
			       {nullptr, M2, runs[2].iova}};
	vfd_fault_arm(VFD_SYS_ALLOC, 1, ENOMEM, true);
	EXPECT_EQ(vfdma_unmap_batch(d, un, 3), 0);
	EXPECT_GT(vfd_fault_disarm(), 0u);
	auto after = vfdma_test_domain_info(d);
	EXPECT_EQ(after.mappings, 0u);
	EXPECT_EQ(after.kernel_unmap_calls - before.kernel_unmap_calls, 3u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

// Threads map, DMA-check and unmap concurrently; afterwards the domain is
// consistent and back where it started.
TEST(SimDomain, ConcurrentMappers)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_iova_flush(d->iova);
	auto start = iova_stats(d);
	const int nthreads = 4;
	const int iters = (int)(3000 * vfdma_test_scale());
	uint64_t seed = vfdma_test_seed("SimDomain.ConcurrentMappers");
	std::atomic<int> errors{0};
	std::vector<std::thread> th;
	for (int t = 0; t < nthreads; t++) {
		th.emplace_back([&, t]() {
			std::mt19937_64 rng(seed + t);
			vfdma_device *dev = vfdma_sim_device_create(d);
			Buf buf(4 * M2);
			std::vector<std::pair<uint64_t, uint64_t>> live;
			for (int i = 0; i < iters; i++) {
				if (live.size() < 16 && (live.empty() || rng() % 2)) {
					uint64_t pages = 1 + rng() % 64, off = rng() % 64;
					uint64_t iova;
					if (vfdma_map(d, buf.p + off * K4, pages * K4, VFDMA_PROT_RW, 0,
						      &iova)) {
						errors++;
						continue;
					}
					uint64_t tag = ((uint64_t)t << 32) | (uint64_t)i;
					vfdma_sim_dma_write(dev, iova + (pages - 1) * K4, &tag, 8);
					uint64_t got;
					memcpy(&got, buf.p + (off + pages - 1) * K4, 8);
					if (got != tag)
						errors++;
					live.push_back({iova, pages * K4});
				} else {
					size_t k = rng() % live.size();
					if (vfdma_unmap(d, live[k].first, live[k].second))
						errors++;
					live[k] = live.back();
					live.pop_back();
				}
			}
			for (auto &m : live)
				if (vfdma_unmap(d, m.first, m.second))
					errors++;
			vfdma_device_close(dev);
		});
	}
	for (auto &x : th)
		x.join();
	EXPECT_EQ(errors.load(), 0);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	auto i = vfdma_test_domain_info(d);
	EXPECT_EQ(i.mappings, 0u);
	EXPECT_EQ(i.nr_devices, 0u);
	vfdma_iova_flush(d->iova);
	auto end = iova_stats(d);
	EXPECT_EQ(end.allocs, start.allocs);
	EXPECT_EQ(end.free_bytes, start.free_bytes);
	EXPECT_EQ(end.largest_free, start.largest_free);
	auto s = sim_stats(d);
	EXPECT_EQ(s.leaves_4k + s.leaves_2m + s.leaves_1g, 0u);
	vfdma_domain_close(d);
}
