// SPDX-License-Identifier: BSD-3-Clause
// The DMA pool on a sim domain: software devices DMA into pool buffers
// (so every IOVA the pool hands out is checked by what a device reaches),
// size classes and page runs, alignment, growth, limits, idle return, bad
// input, the no-system-call hot path, threads with an ownership check, and a
// fault-injection sweep of growth.
#include "vfdma_test.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

namespace
{
constexpr uint64_t K4 = 4096, M1 = 1ull << 20, M2 = 2ull << 20;

vfdma_pool_stats stats(vfdma_pool *p)
{
	vfdma_pool_stats st = {};
	EXPECT_EQ(vfdma_pool_get_stats(p, &st), 0);
	return st;
}

// Arenas of small pages only, so tests do not depend on the host's huge pages.
const vfdma_arena_opts small_pages = {0, VFDMA_PGSIZE_4K, nullptr};

struct Fixture {
	vfdma_domain *dom = nullptr;
	vfdma_pool *pool = nullptr;
	explicit Fixture(uint64_t arena_size = 0, unsigned flags = 0, uint64_t max_bytes = 0,
			 uint64_t idle_keep = 0)
	{
		dom = vfdma_test_open_sim();
		vfdma_pool_opts o = {};
		o.arena_size = arena_size;
		o.flags = flags;
		o.max_bytes = max_bytes;
		o.idle_keep = idle_keep;
		o.arena = &small_pages;
		pool = vfdma_pool_create(dom, VFDMA_NUMA_ANY, &o);
		EXPECT_NE(pool, nullptr);
	}
	~Fixture()
	{
		EXPECT_EQ(vfdma_pool_destroy(pool), 0);
		EXPECT_EQ(vfdma_test_domain_info(dom).mappings, 0u) << "the pool unmapped everything";
		EXPECT_EQ(vfdma_domain_check(dom), 0);
		vfdma_domain_close(dom);
	}
};

// A device writes a pattern at @iova and reads it back; the CPU sees it at @v.
void device_round_trip(vfdma_device *dev, void *v, uint64_t iova, size_t len, uint8_t seed)
{
	std::vector<uint8_t> out(len), in(len);
	for (size_t i = 0; i < len; i++)
		out[i] = (uint8_t)(seed + i * 7 + (i >> 12));
	ASSERT_EQ(vfdma_sim_dma_write(dev, iova, out.data(), len), 0);
	ASSERT_EQ(memcmp(v, out.data(), len), 0) << "device bytes not at the vaddr";
	memset(v, seed ^ 0x5a, len);
	ASSERT_EQ(vfdma_sim_dma_read(dev, iova, in.data(), len), 0);
	ASSERT_EQ(in, std::vector<uint8_t>(len, (uint8_t)(seed ^ 0x5a)));
}
} // namespace

TEST(SimPool, DeviceDmaIntoBuffersOfEverySize)
{
	Fixture f;
	vfdma_device *dev = vfdma_sim_device_create(f.dom);
	ASSERT_NE(dev, nullptr);
	struct Case {
		uint64_t size, align;
	} cases[] = {{1, 0},      {64, 0},     {100, 0},    {4095, 0},     {4096, 0},
		     {5000, 0},   {16384, 0},  {65536, 0},  {300000, 0},   {M1, 0},
		     {M1 + 1, 0}, {3 * M1, 0}, {7 * K4, M2}, {64, K4},      {200, 8192},
		     {K4, M1},    {10 * M1, 0}};
	std::vector<std::pair<void *, uint64_t>> live;
	uint8_t seed = 1;
	for (auto c : cases) {
		uint64_t iova = 0;
		void *v = vfdma_dma_alloc(f.pool, c.size, c.align, VFDMA_NUMA_ANY, &iova);
		ASSERT_NE(v, nullptr) << c.size << ": " << strerror(errno);
		uint64_t want = c.align ? c.align : 64;
		EXPECT_EQ((uintptr_t)v % want, 0u) << c.size;
		EXPECT_EQ(iova % want, 0u) << c.size;
		EXPECT_EQ((uintptr_t)v % K4, iova % K4) << "same offset in the page";
		uint64_t t = 0, len = 0;
		ASSERT_EQ(vfdma_vaddr_to_iova(f.dom, v, &t, &len), 0);
		EXPECT_EQ(t, iova) << "the domain agrees";
		EXPECT_GE(len, c.size) << "contiguous in IOVA space";
		device_round_trip(dev, v, iova, c.size, seed++);
		live.push_back({v, c.size});
	}
	// Small sizes are naturally aligned to their class.
	for (uint64_t sz = 64; sz <= M1; sz <<= 1) {
		uint64_t iova;
		void *v = vfdma_dma_alloc(f.pool, sz, 0, VFDMA_NUMA_ANY, &iova);
		ASSERT_NE(v, nullptr);
		EXPECT_EQ((uintptr_t)v % sz, 0u);
		EXPECT_EQ(iova % sz, 0u);
		live.push_back({v, sz});
	}
	// No two buffers overlap.
	std::sort(live.begin(), live.end());
	for (size_t i = 1; i < live.size(); i++)
		EXPECT_LE((uintptr_t)live[i - 1].first + live[i - 1].second,
			  (uintptr_t)live[i].first);
	auto st = stats(f.pool);
	EXPECT_EQ(st.buffers, live.size());
	EXPECT_GE(st.arena_bytes, st.buffer_bytes);
	EXPECT_EQ(st.arenas, st.arenas_4k);
	EXPECT_EQ(vfdma_test_domain_info(f.dom).mappings, st.arenas) << "each arena mapped once";
	for (auto &b : live)
		EXPECT_EQ(vfdma_dma_free(f.pool, b.first), 0);
	EXPECT_EQ(stats(f.pool).buffers, 0u);
	vfdma_device_close(dev);
}

TEST(SimPool, RejectsBadInput)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_pool_opts o = {};
	errno = 0;
	EXPECT_EQ(vfdma_pool_create(nullptr, VFDMA_NUMA_ANY, nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	o.flags = VFDMA_POOL_KEEP_IDLE | VFDMA_POOL_RELEASE_IDLE;
	EXPECT_EQ(vfdma_pool_create(d, VFDMA_NUMA_ANY, &o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	o.flags = 1u << 9;
	EXPECT_EQ(vfdma_pool_create(d, VFDMA_NUMA_ANY, &o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	o = {};
	o.arena_size = 1ull << 50;
	EXPECT_EQ(vfdma_pool_create(d, VFDMA_NUMA_ANY, &o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	vfdma_arena_opts ao = {};
	ao.pgsizes = 1ull << 13;
	o = {};
	o.arena = &ao;
	EXPECT_EQ(vfdma_pool_create(d, VFDMA_NUMA_ANY, &o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_pool_create(d, -3, nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_pool_create(d, 63, nullptr), nullptr);
	EXPECT_EQ(errno, ENODEV);
	vfdma_domain_close(d);

	Fixture f;
	uint64_t iova = 77;
	errno = 0;
	EXPECT_EQ(vfdma_dma_alloc(nullptr, 64, 0, VFDMA_NUMA_ANY, &iova), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_dma_alloc(f.pool, 0, 0, VFDMA_NUMA_ANY, &iova), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_dma_alloc(f.pool, 64, 3, VFDMA_NUMA_ANY, &iova), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_dma_alloc(f.pool, 64, 2 * M2, VFDMA_NUMA_ANY, &iova), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_dma_alloc(f.pool, 1ull << 50, 0, VFDMA_NUMA_ANY, &iova), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_dma_alloc(f.pool, 64, 0, -2, &iova), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_dma_alloc(f.pool, 64, 0, 64, &iova), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_dma_alloc(f.pool, 64, 0, 37, &iova), nullptr);
	EXPECT_EQ(errno, ENODEV);
	EXPECT_EQ(iova, 77u);
	EXPECT_EQ(stats(f.pool).arenas, 0u) << "nothing was taken";

	// Frees of what the pool never handed out, or handed out and took back.
	int on_stack;
	EXPECT_EQ(vfdma_dma_free(nullptr, &on_stack), -EINVAL);
	EXPECT_EQ(vfdma_dma_free(f.pool, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_dma_free(f.pool, &on_stack), -EINVAL);
	char *s = (char *)vfdma_dma_alloc(f.pool, 256, 0, VFDMA_NUMA_ANY, nullptr);
	char *l = (char *)vfdma_dma_alloc(f.pool, 3 * M1, 0, VFDMA_NUMA_ANY, nullptr);
	ASSERT_TRUE(s && l);
	EXPECT_EQ(vfdma_dma_free(f.pool, s + 64), -EINVAL) << "inside a buffer";
	EXPECT_EQ(vfdma_dma_free(f.pool, s + 256), -EINVAL) << "a free neighbour";
	EXPECT_EQ(vfdma_dma_free(f.pool, l + K4), -EINVAL) << "inside a run";
	EXPECT_EQ(vfdma_dma_free(f.pool, l + 1), -EINVAL);
	EXPECT_EQ(vfdma_dma_free(f.pool, l + 3 * M1), -EINVAL) << "free pages after a run";
	EXPECT_EQ(stats(f.pool).buffers, 2u) << "bad frees change nothing";
	EXPECT_EQ(vfdma_dma_free(f.pool, s), 0);
	EXPECT_EQ(vfdma_dma_free(f.pool, s), -EINVAL) << "double free (cached)";
	EXPECT_EQ(vfdma_dma_free(f.pool, l), 0);
	EXPECT_EQ(vfdma_dma_free(f.pool, l), -EINVAL) << "double free (run)";
	ASSERT_EQ(vfdma_pool_trim(f.pool, 0, nullptr), 0);
	EXPECT_EQ(vfdma_dma_free(f.pool, s), -EINVAL) << "after its arena is gone";

	vfdma_pool_stats st;
	EXPECT_EQ(vfdma_pool_get_stats(nullptr, &st), -EINVAL);
	EXPECT_EQ(vfdma_pool_get_stats(f.pool, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_pool_trim(nullptr, 0, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_pool_destroy(nullptr), 0);
}

// After a buffer of a class has been freed once, allocating and freeing it
// again makes no system call and no allocation: with every one of them
// armed to fail, the cached path still works.
TEST(SimPool, HotPathMakesNoSystemCall)
{
	Fixture f;
	std::vector<void *> warm;
	for (uint64_t sz = 64; sz <= M1; sz <<= 1)
		warm.push_back(vfdma_dma_alloc(f.pool, sz, 0, VFDMA_NUMA_ANY, nullptr));
	for (void *v : warm)
		ASSERT_EQ(vfdma_dma_free(f.pool, v), 0);
	vfd_fault_arm(VFD_SYS_ANY, 1, EIO, true);
	for (int round = 0; round < 3; round++) {
		std::vector<void *> got;
		for (uint64_t sz = 64; sz <= M1; sz <<= 1) {
			uint64_t iova = 0;
			void *v = vfdma_dma_alloc(f.pool, sz, 0, VFDMA_NUMA_ANY, &iova);
			EXPECT_NE(v, nullptr) << sz;
			got.push_back(v);
		}
		for (void *v : got)
			EXPECT_EQ(vfdma_dma_free(f.pool, v), 0);
	}
	EXPECT_EQ(vfd_fault_calls(VFD_SYS_ANY), 0u);
	EXPECT_EQ(vfd_fault_disarm(), 0u);
}

TEST(SimPool, GrowsByWholeArenasUpToTheLimit)
{
	Fixture f(M2, VFDMA_POOL_KEEP_IDLE, 4 * M2);
	std::vector<void *> v;
	for (;;) {
		void *p = vfdma_dma_alloc(f.pool, 512 * 1024, 0, VFDMA_NUMA_ANY, nullptr);
		if (!p) {
			EXPECT_EQ(errno, ENOMEM);
			break;
		}
		v.push_back(p);
		ASSERT_LT(v.size(), 100u);
	}
	auto st = stats(f.pool);
	EXPECT_EQ(st.arenas, 4u);
	EXPECT_EQ(st.arena_bytes, 4 * M2);
	EXPECT_EQ(st.grows, 4u);
	EXPECT_EQ(v.size(), 16u) << "every byte of the limit is used";
	EXPECT_EQ(vfdma_test_domain_info(f.dom).mapped_bytes, 4 * M2);
	// A buffer larger than an arena needs its own, which the limit refuses.
	EXPECT_EQ(vfdma_dma_alloc(f.pool, 5 * M1, 0, VFDMA_NUMA_ANY, nullptr), nullptr);
	EXPECT_EQ(errno, ENOMEM);
	ASSERT_EQ(vfdma_dma_free(f.pool, v.back()), 0);
	v.pop_back();
	EXPECT_NE(v.emplace_back(vfdma_dma_alloc(f.pool, 512 * 1024, 0, VFDMA_NUMA_ANY, nullptr)),
		  nullptr) << "room again after a free";
	for (void *p : v)
		EXPECT_EQ(vfdma_dma_free(f.pool, p), 0);
}

TEST(SimPool, BufferLargerThanAnArenaGetsItsOwn)
{
	Fixture f(M2);
	vfdma_device *dev = vfdma_sim_device_create(f.dom);
	uint64_t iova = 0;
	void *v = vfdma_dma_alloc(f.pool, 5 * M1 + 3, 0, VFDMA_NUMA_ANY, &iova);
	ASSERT_NE(v, nullptr);
	auto st = stats(f.pool);
	EXPECT_EQ(st.arenas, 1u);
	EXPECT_EQ(st.arena_bytes, 3 * M2) << "a multiple of the arena size";
	EXPECT_EQ(st.buffer_bytes, 5 * M1 + K4);
	device_round_trip(dev, v, iova, 5 * M1 + 3, 9);
	EXPECT_EQ(vfdma_dma_free(f.pool, v), 0);
	vfdma_device_close(dev);
}

// Idle arenas: returned at once, kept up to a budget, or kept until trim.
TEST(SimPool, IdleArenasFollowThePolicy)
{
	{
		Fixture f(M2, VFDMA_POOL_RELEASE_IDLE);
		void *a = vfdma_dma_alloc(f.pool, 3 * M1, 0, VFDMA_NUMA_ANY, nullptr);
		ASSERT_NE(a, nullptr);
		EXPECT_EQ(vfdma_test_domain_info(f.dom).mappings, 1u);
		ASSERT_EQ(vfdma_dma_free(f.pool, a), 0);
		auto st = stats(f.pool);
		EXPECT_EQ(st.arenas, 0u);
		EXPECT_EQ(st.releases, 1u);
		EXPECT_EQ(vfdma_test_domain_info(f.dom).mappings, 0u) << "unmapped from the domain";
	}
	{
		Fixture f(M2); // default: keep one arena's worth
		void *a = vfdma_dma_alloc(f.pool, 2 * M1, 0, VFDMA_NUMA_ANY, nullptr);
		void *b = vfdma_dma_alloc(f.pool, 2 * M1, 0, VFDMA_NUMA_ANY, nullptr);
		void *c = vfdma_dma_alloc(f.pool, 2 * M1, 0, VFDMA_NUMA_ANY, nullptr);
		ASSERT_TRUE(a && b && c);
		EXPECT_EQ(stats(f.pool).arenas, 3u);
		vfdma_dma_free(f.pool, a);
		vfdma_dma_free(f.pool, b);
		vfdma_dma_free(f.pool, c);
		auto st = stats(f.pool);
		EXPECT_EQ(st.arenas, 1u);
		EXPECT_EQ(st.idle_arenas, 1u);
		EXPECT_EQ(st.releases, 2u);
		// The kept one is reused: no growth.
		void *d = vfdma_dma_alloc(f.pool, 2 * M1, 0, VFDMA_NUMA_ANY, nullptr);
		EXPECT_NE(d, nullptr);
		EXPECT_EQ(stats(f.pool).grows, 3u);
		vfdma_dma_free(f.pool, d);
	}
	{
		Fixture f(M2, VFDMA_POOL_KEEP_IDLE);
		std::vector<void *> v;
		for (int i = 0; i < 3; i++)
			v.push_back(vfdma_dma_alloc(f.pool, 2 * M1, 0, VFDMA_NUMA_ANY, nullptr));
		for (int i = 0; i < 2000; i++) // small buffers: slabs and caches
			v.push_back(vfdma_dma_alloc(f.pool, 1000, 0, VFDMA_NUMA_ANY, nullptr));
		for (void *p : v)
			ASSERT_EQ(vfdma_dma_free(f.pool, p), 0);
		auto st = stats(f.pool);
		EXPECT_GE(st.arenas, 4u);
		EXPECT_EQ(st.releases, 0u);
		EXPECT_GT(st.cached_bytes, 0u) << "freed small buffers wait in caches";
		EXPECT_EQ(st.buffers, 0u);
		uint64_t released = 0;
		ASSERT_EQ(vfdma_pool_trim(f.pool, M2, &released), 0);
		st = stats(f.pool);
		EXPECT_EQ(st.arenas, 1u) << "one arena's worth kept";
		EXPECT_EQ(st.cached_bytes, 0u);
		EXPECT_EQ(released + st.arena_bytes, (st.grows) * M2);
		ASSERT_EQ(vfdma_pool_trim(f.pool, 0, &released), 0);
		EXPECT_EQ(released, M2);
		EXPECT_EQ(stats(f.pool).arenas, 0u);
		EXPECT_EQ(vfdma_test_domain_info(f.dom).mappings, 0u);
	}
}

TEST(SimPool, DestroyWithLiveBuffersReleasesEverything)
{
	vfdma_domain *d = vfdma_test_open_sim();
	vfdma_pool_opts o = {};
	o.arena = &small_pages;
	o.arena_size = M2;
	vfdma_pool *p = vfdma_pool_create(d, 0, &o);
	ASSERT_NE(p, nullptr);
	for (int i = 0; i < 100; i++)
		ASSERT_NE(vfdma_dma_alloc(p, 3000 + i * 500, 0, VFDMA_NUMA_ANY, nullptr), nullptr);
	EXPECT_GT(vfdma_test_domain_info(d).mappings, 0u);
	EXPECT_EQ(vfdma_pool_destroy(p), 0);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	vfdma_domain_close(d);
}

// Buffers asked for node 0 are on node 0, by the kernel's word.
TEST(SimPool, NodeIsHonouredAndVerifiable)
{
	Fixture f;
	void *v = vfdma_dma_alloc(f.pool, 8192, 0, 0, nullptr);
	ASSERT_NE(v, nullptr);
	int node = -1;
	EXPECT_EQ(vfdma_numa_node_of(v, 8192, &node), 0);
	EXPECT_EQ(node, 0);
	void *w = vfdma_dma_alloc(f.pool, 8192, 0, VFDMA_NUMA_ANY, nullptr);
	ASSERT_NE(w, nullptr);
	EXPECT_EQ(stats(f.pool).arenas, 2u) << "node 0 and unbound memory are separate";
	vfdma_dma_free(f.pool, v);
	vfdma_dma_free(f.pool, w);
}

// Growth fails at every system call and allocation in turn: the pool and
// the domain are as before each failure.
TEST(SimPool, FaultSweepOfGrowth)
{
	for (uint64_t size : {(uint64_t)200, 3 * M1}) {
		Fixture f(M2);
		void *v = nullptr;
		unsigned points = vfdma_test_fail_each(
			VFD_SYS_ANY,
			[&]() {
				return (v = vfdma_dma_alloc(f.pool, size, 0, 0, nullptr)) != nullptr;
			},
			[&]() {
				ASSERT_EQ(vfdma_dma_free(f.pool, v), 0);
				ASSERT_EQ(vfdma_pool_trim(f.pool, 0, nullptr), 0);
			},
			[&]() {
				auto st = stats(f.pool);
				EXPECT_EQ(st.arenas, 0u);
				EXPECT_EQ(st.buffers, 0u);
				EXPECT_EQ(vfdma_test_domain_info(f.dom).mappings, 0u);
			});
		EXPECT_GE(points, 8u) << size;
	}
}

// Threads allocate, fill, check and free, and hand some buffers to other
// threads to free.  Each buffer carries its owner's tag in every word: a
// buffer handed out twice, or overlapping another, shows up as a wrong tag.
TEST(SimPool, ThreadsAllocAndFreeWithOwnershipCheck)
{
	Fixture f(4 * M2);
	const uint64_t seed = vfdma_test_seed("SimPool.Threads");
	const int nthreads = 4;
	const int iters = (int)(20000 * vfdma_test_scale() / (VFDMA_TEST_SANITIZED ? 4 : 1));
	std::mutex xm;
	std::vector<std::pair<uint64_t *, uint64_t>> exchange; // buffer, size
	std::atomic<int> errors{0};

	auto fill = [](uint64_t *p, uint64_t size, uint64_t tag) {
		for (uint64_t i = 0; i < size / 8; i++)
			p[i] = tag;
	};
	auto check = [&](uint64_t *p, uint64_t size, uint64_t tag) {
		for (uint64_t i = 0; i < size / 8; i++)
			if (p[i] != tag) {
				errors++;
				return;
			}
	};
	auto worker = [&](int id) {
		std::mt19937_64 rng(seed + id);
		std::vector<std::tuple<uint64_t *, uint64_t, uint64_t>> mine;
		for (int it = 0; it < iters; it++) {
			unsigned r = rng() % 100;
			if (r < 55 || mine.empty()) {
				uint64_t shift = 6 + rng() % 12; // 64 B .. 128 KiB
				uint64_t size = (1ull << shift) - (rng() % 2 ? 0 : 8);
				if (rng() % 50 == 0)
					size = M1 + (rng() % 4) * K4; // runs
				uint64_t iova = 0;
				auto *p = (uint64_t *)vfdma_dma_alloc(f.pool, size, 0,
								      VFDMA_NUMA_ANY, &iova);
				if (!p) {
					errors++;
					continue;
				}
				uint64_t tag = ((uint64_t)id << 56) | (uint64_t)it;
				fill(p, size, tag);
				mine.emplace_back(p, size, tag);
			} else if (r < 65) {
				auto [p, size, tag] = mine.back();
				mine.pop_back();
				check(p, size, tag);
				fill(p, size, ~0ull); // the next owner checks its own tag
				std::lock_guard<std::mutex> g(xm);
				exchange.emplace_back(p, size);
			} else if (r < 70) {
				std::pair<uint64_t *, uint64_t> b{nullptr, 0};
				{
					std::lock_guard<std::mutex> g(xm);
					if (!exchange.empty()) {
						b = exchange.back();
						exchange.pop_back();
					}
				}
				if (b.first) {
					check(b.first, b.second, ~0ull);
					if (vfdma_dma_free(f.pool, b.first) != 0)
						errors++;
				}
			} else {
				size_t i = rng() % mine.size();
				auto [p, size, tag] = mine[i];
				mine[i] = mine.back();
				mine.pop_back();
				check(p, size, tag);
				if (vfdma_dma_free(f.pool, p) != 0)
					errors++;
				// A double free is refused.  (Only for cached sizes: a
				// run's pages may be another thread's buffer by now.)
				if (size <= M1 && rng() % 8 == 0 &&
				    vfdma_dma_free(f.pool, p) != -EINVAL)
					errors++;
			}
		}
		for (auto &[p, size, tag] : mine) {
			check(p, size, tag);
			if (vfdma_dma_free(f.pool, p) != 0)
				errors++;
		}
	};
	std::vector<std::thread> th;
	for (int i = 0; i < nthreads; i++)
		th.emplace_back(worker, i);
	for (auto &t : th)
		t.join();
	for (auto &b : exchange)
		EXPECT_EQ(vfdma_dma_free(f.pool, b.first), 0);
	EXPECT_EQ(errors.load(), 0);
	auto st = stats(f.pool);
	EXPECT_EQ(st.buffers, 0u);
	EXPECT_EQ(st.buffer_bytes, 0u);
	ASSERT_EQ(vfdma_pool_trim(f.pool, 0, nullptr), 0);
	st = stats(f.pool);
	EXPECT_EQ(st.arenas, 0u) << "every arena idle and returned";
	EXPECT_EQ(st.cached_bytes, 0u);
	EXPECT_EQ(vfdma_test_domain_info(f.dom).mappings, 0u);
}

// Threads hammering one size class while another thread trims.
TEST(SimPool, TrimRacesWithAllocation)
{
	Fixture f(M2);
	const int iters = (int)(20000 * vfdma_test_scale() / (VFDMA_TEST_SANITIZED ? 4 : 1));
	std::atomic<bool> stop{false};
	std::atomic<int> errors{0};
	std::thread trimmer([&]() {
		while (!stop.load())
			if (vfdma_pool_trim(f.pool, 0, nullptr) != 0)
				errors++;
	});
	std::vector<std::thread> th;
	for (int t = 0; t < 3; t++)
		th.emplace_back([&, t]() {
			std::vector<void *> v;
			for (int i = 0; i < iters; i++) {
				void *p = vfdma_dma_alloc(f.pool, 64u << (t * 4), 0,
							  VFDMA_NUMA_ANY, nullptr);
				if (!p) {
					errors++;
					continue;
				}
				memset(p, t, 64u << (t * 4));
				v.push_back(p);
				if (v.size() > 32 || i % 3 == 0) {
					if (vfdma_dma_free(f.pool, v.front()) != 0)
						errors++;
					v.erase(v.begin());
				}
			}
			for (void *p : v)
				if (vfdma_dma_free(f.pool, p) != 0)
					errors++;
		});
	for (auto &t : th)
		t.join();
	stop = true;
	trimmer.join();
	EXPECT_EQ(errors.load(), 0);
	EXPECT_EQ(stats(f.pool).buffers, 0u);
}

namespace
{
// A memory source of plain 2 MiB-aligned heap memory, counting its calls.
struct HeapSource {
	int gets = 0, puts = 0, fail = 0;
	uint64_t out = 0;
	static void *get(void *ctx, uint64_t size, int, uint64_t *pgsize)
	{
		auto *s = static_cast<HeapSource *>(ctx);
		if (s->fail)
			return nullptr;
		void *p = aligned_alloc(M2, size);
		if (p) {
			memset(p, 0, size);
			s->gets++;
			s->out += size;
			*pgsize = K4;
		}
		return p;
	}
	static void put(void *ctx, void *addr, uint64_t size)
	{
		auto *s = static_cast<HeapSource *>(ctx);
		s->puts++;
		s->out -= size;
		free(addr);
	}
};
} // namespace

// A pool over memory from a caller's source: the pool maps it (premapped
// 0), devices reach its buffers, and every piece goes back to the source.
TEST(SimPool, ArenasFromACallersSource)
{
	vfdma_domain *d = vfdma_test_open_sim();
	ASSERT_NE(d, nullptr);
	vfdma_device *dev = vfdma_sim_device_create(d);
	ASSERT_NE(dev, nullptr);
	HeapSource hs;
	vfdma_pool_source src = {HeapSource::get, HeapSource::put, &hs, 0};
	vfdma_pool_source half = {HeapSource::get, nullptr, &hs, 0};
	vfdma_pool_opts o = {};
	o.arena_size = 4 * M2;
	o.source = &half;
	errno = 0;
	EXPECT_EQ(vfdma_pool_create(d, VFDMA_NUMA_ANY, &o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	o.source = &src;
	vfdma_pool *p = vfdma_pool_create(d, VFDMA_NUMA_ANY, &o);
	ASSERT_NE(p, nullptr);
	uint64_t iova = 0;
	void *b = vfdma_dma_alloc(p, 5 * K4, 0, VFDMA_NUMA_ANY, &iova);
	ASSERT_NE(b, nullptr);
	EXPECT_EQ(hs.gets, 1);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 1u);
	device_round_trip(dev, b, iova, 5 * K4, 3);
	// a source with nothing left: growth fails cleanly
	hs.fail = 1;
	errno = 0;
	EXPECT_EQ(vfdma_dma_alloc(p, 8 * M2, 0, VFDMA_NUMA_ANY, nullptr), nullptr);
	EXPECT_EQ(errno, ENOMEM);
	EXPECT_EQ(vfdma_dma_free(p, b), 0);
	EXPECT_EQ(vfdma_pool_destroy(p), 0);
	EXPECT_EQ(hs.puts, hs.gets);
	EXPECT_EQ(hs.out, 0u);
	EXPECT_EQ(vfdma_test_domain_info(d).mappings, 0u);
	EXPECT_EQ(vfdma_device_close(dev), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}
