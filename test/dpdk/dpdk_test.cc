// SPDX-License-Identifier: BSD-3-Clause
// DPDK's memory in a vfdma domain: the EAL is initialised in this process
// (arguments from VFDMA_DPDK_EAL, set by run.sh: --no-huge in VA mode, or
// hugepages reserved by the harness), its memory attached to sim domains,
// and a sim device does real DMA into rte_malloc() buffers and mbufs at the
// IOVAs DPDK itself reports.
#include "vfdma_test.h"

#include <sstream>
#include <string>
#include <vector>

// DPDK's headers declare functions named like their structs (rte_mp_reply).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memory.h>
#pragma GCC diagnostic pop

extern "C" {
#include "vfdma/dpdk.h"
}

namespace
{
bool g_eal_up;
std::string g_eal_error;

class EalEnv : public ::testing::Environment
{
      public:
	void SetUp() override
	{
		const char *env = getenv("VFDMA_DPDK_EAL");
		std::istringstream in(env ? env : "--no-huge -m 64 --iova-mode=va");
		std::vector<std::string> words{"vfdma_dpdk_test"};
		for (std::string w; in >> w;)
			words.push_back(w);
		for (const char *w : {"--no-pci", "--no-shconf", "--no-telemetry", "-l", "0"})
			words.push_back(w);
		std::vector<char *> argv;
		for (auto &w : words)
			argv.push_back(w.data());
		argv.push_back(nullptr);
		if (rte_eal_init((int)words.size(), argv.data()) < 0)
			g_eal_error = std::string("rte_eal_init failed: ") + rte_strerror(rte_errno);
		else
			g_eal_up = true;
	}
	void TearDown() override
	{
		if (g_eal_up)
			rte_eal_cleanup();
	}
};
[[maybe_unused]] auto *g_env = ::testing::AddGlobalTestEnvironment(new EalEnv);

bool hugepages()
{
	return rte_eal_has_hugepages();
}

struct Totals {
	uint64_t bytes = 0;
	std::vector<std::pair<void *, size_t>> chunks;
};

int add_chunk(const rte_memseg_list *, const rte_memseg *ms, size_t len, void *arg)
{
	auto *t = static_cast<Totals *>(arg);
	t->bytes += len;
	t->chunks.emplace_back(ms->addr, len);
	return 0;
}

Totals dpdk_memory()
{
	Totals t;
	rte_memseg_contig_walk(add_chunk, &t);
	return t;
}

uint64_t mappings(vfdma_domain *d)
{
	vfdma_domain_info i;
	EXPECT_EQ(vfdma_domain_get_info(d, &i), 0);
	return i.mappings;
}

// A sim device writes @p n bytes of pattern @p seed at @p iova; the CPU
// must see them at @p va.
void dma_check(vfdma_device *dev, uint64_t iova, void *va, size_t n, uint8_t seed)
{
	std::vector<uint8_t> pat(n);
	for (size_t i = 0; i < n; i++)
		pat[i] = (uint8_t)(seed + i * 7);
	ASSERT_EQ(vfdma_sim_dma_write(dev, iova, pat.data(), n), 0) << "iova " << iova;
	ASSERT_EQ(memcmp(va, pat.data(), n), 0);
	std::vector<uint8_t> back(n);
	ASSERT_EQ(vfdma_sim_dma_read(dev, iova, back.data(), n), 0);
	ASSERT_EQ(back, pat);
}

class Dpdk : public ::testing::Test
{
      protected:
	vfdma_domain *dom = nullptr;
	vfdma_device *dev = nullptr;
	void SetUp() override
	{
		ASSERT_TRUE(g_eal_up) << g_eal_error;
		dom = vfdma_test_open_sim();
		ASSERT_NE(dom, nullptr);
		dev = vfdma_sim_device_create(dom);
		ASSERT_NE(dev, nullptr);
	}
	void TearDown() override
	{
		if (dev) {
			EXPECT_EQ(vfdma_device_close(dev), 0);
		}
		if (dom) {
			EXPECT_EQ(vfdma_domain_close(dom), 0);
		}
	}
};
} // namespace

TEST_F(Dpdk, BadArguments)
{
	EXPECT_EQ(vfdma_dpdk_attach(nullptr), -EINVAL);
	EXPECT_EQ(vfdma_dpdk_detach(nullptr), -EINVAL);
	EXPECT_EQ(vfdma_dpdk_detach(dom), -ENOENT);
	EXPECT_EQ(vfdma_dpdk_get_stats(dom, nullptr, nullptr), -ENOENT);
	EXPECT_EQ(vfdma_dpdk_attach(dom), 0);
	uint64_t n0 = mappings(dom);
	EXPECT_EQ(vfdma_dpdk_attach(dom), -EALREADY);
	EXPECT_EQ(mappings(dom), n0);
	EXPECT_EQ(vfdma_dpdk_detach(dom), 0);
	EXPECT_EQ(vfdma_dpdk_detach(dom), -ENOENT);
}

// Every byte of DPDK's memory is mapped at DPDK's own IOVA (VA mode), and
// detach leaves the domain empty.
TEST_F(Dpdk, AttachMapsAllMemoryAtDpdkIovas)
{
	ASSERT_EQ(rte_eal_iova_mode(), RTE_IOVA_VA);
	ASSERT_EQ(mappings(dom), 0u);
	ASSERT_EQ(vfdma_dpdk_attach(dom), 0);
	Totals t = dpdk_memory();
	ASSERT_GT(t.bytes, 0u);
	uint64_t n = 0, bytes = 0;
	ASSERT_EQ(vfdma_dpdk_get_stats(dom, &n, &bytes), 0);
	EXPECT_EQ(bytes, t.bytes);
	EXPECT_EQ(mappings(dom), n);
	for (auto &c : t.chunks) {
		for (size_t off = 0; off < c.second; off += c.second / 8 + 4096) {
			void *va = (char *)c.first + off;
			uint64_t iova = 0, len = 0;
			ASSERT_EQ(vfdma_vaddr_to_iova(dom, va, &iova, &len), 0);
			EXPECT_EQ(iova, rte_mem_virt2iova(va));
			EXPECT_GT(len, 0u);
		}
	}
	EXPECT_EQ(vfdma_domain_check(dom), 0);
	ASSERT_EQ(vfdma_dpdk_detach(dom), 0);
	EXPECT_EQ(mappings(dom), 0u);
	EXPECT_EQ(vfdma_domain_check(dom), 0);
}

// A device writes into rte_malloc() memory and into an mbuf's data room at
// the IOVAs DPDK hands out.
TEST_F(Dpdk, DeviceDmaIntoRteMallocAndMbufs)
{
	ASSERT_EQ(vfdma_dpdk_attach(dom), 0);
	void *buf = rte_malloc("vfdma-test", 256 * 1024, 4096);
	ASSERT_NE(buf, nullptr);
	dma_check(dev, rte_malloc_virt2iova(buf), buf, 256 * 1024, 0x11);
	uint64_t iova = 0;
	ASSERT_EQ(vfdma_vaddr_to_iova(dom, buf, &iova, nullptr), 0);
	EXPECT_EQ(iova, rte_malloc_virt2iova(buf));
	rte_free(buf);

	rte_mempool *mp = rte_pktmbuf_pool_create("vfdma-mbufs", 255, 0, 0,
						  RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	ASSERT_NE(mp, nullptr) << rte_strerror(rte_errno);
	rte_mbuf *m = rte_pktmbuf_alloc(mp);
	ASSERT_NE(m, nullptr);
	dma_check(dev, rte_pktmbuf_iova(m), rte_pktmbuf_mtod(m, void *), 1500, 0x5a);
	rte_pktmbuf_free(m);
	rte_mempool_free(mp);
	EXPECT_EQ(vfdma_dpdk_detach(dom), 0);
}

// Memory the EAL allocates after attach is mapped before rte_malloc()
// returns it; memory it frees is unmapped.  Needs dynamic hugepage memory.
TEST_F(Dpdk, FollowsMemoryEvents)
{
	if (!hugepages())
		GTEST_SKIP() << "SKIP: the EAL runs without hugepages (--no-huge): no memory events";
	ASSERT_EQ(vfdma_dpdk_attach(dom), 0);
	uint64_t n0 = 0, b0 = 0;
	ASSERT_EQ(vfdma_dpdk_get_stats(dom, &n0, &b0), 0);
	const size_t big = 64u << 20;
	void *buf = rte_malloc("vfdma-big", big, 2u << 20);
	ASSERT_NE(buf, nullptr) << "reserve more hugepages";
	uint64_t n1 = 0, b1 = 0;
	ASSERT_EQ(vfdma_dpdk_get_stats(dom, &n1, &b1), 0);
	EXPECT_GE(b1, b0 + big);
	EXPECT_EQ(b1, dpdk_memory().bytes);
	dma_check(dev, rte_malloc_virt2iova(buf), buf, 4096, 1);
	dma_check(dev, rte_malloc_virt2iova(buf) + big - 4096, (char *)buf + big - 4096, 4096, 2);
	rte_free(buf);
	uint64_t n2 = 0, b2 = 0;
	ASSERT_EQ(vfdma_dpdk_get_stats(dom, &n2, &b2), 0);
	EXPECT_LT(b2, b1) << "the EAL kept the pages: nothing was freed";
	EXPECT_EQ(b2, dpdk_memory().bytes);
	uint64_t iova;
	EXPECT_EQ(vfdma_vaddr_to_iova(dom, (char *)buf + big - 4096, &iova, nullptr), -ENOENT);
	EXPECT_EQ(mappings(dom), n2);
	EXPECT_EQ(vfdma_domain_check(dom), 0);
	EXPECT_EQ(vfdma_dpdk_detach(dom), 0);
	EXPECT_EQ(mappings(dom), 0u);
}

// Two domains follow the same memory; detaching one leaves the other whole.
TEST_F(Dpdk, TwoDomains)
{
	vfdma_domain *dom2 = vfdma_test_open_sim();
	ASSERT_NE(dom2, nullptr);
	ASSERT_EQ(vfdma_dpdk_attach(dom), 0);
	ASSERT_EQ(vfdma_dpdk_attach(dom2), 0);
	EXPECT_EQ(mappings(dom), mappings(dom2));
	void *buf = rte_malloc(nullptr, 8192, 4096);
	ASSERT_NE(buf, nullptr);
	ASSERT_EQ(vfdma_dpdk_detach(dom), 0);
	EXPECT_EQ(mappings(dom), 0u);
	uint64_t iova = 0;
	EXPECT_EQ(vfdma_vaddr_to_iova(dom2, buf, &iova, nullptr), 0);
	EXPECT_EQ(iova, rte_malloc_virt2iova(buf));
	rte_free(buf);
	EXPECT_EQ(vfdma_dpdk_detach(dom2), 0);
	EXPECT_EQ(vfdma_domain_close(dom2), 0);
}

// A DMA pool whose arenas are DPDK memory: its buffers' IOVAs are DPDK's,
// a device writes into them, nothing is mapped twice.
TEST_F(Dpdk, PoolOfDpdkMemory)
{
	errno = 0;
	EXPECT_EQ(vfdma_dpdk_pool_create(dom, VFDMA_NUMA_ANY, nullptr), nullptr);
	EXPECT_EQ(errno, ENOENT);
	ASSERT_EQ(vfdma_dpdk_attach(dom), 0);
	vfdma_pool_source bogus = {};
	vfdma_pool_opts bad = {};
	bad.source = &bogus;
	errno = 0;
	EXPECT_EQ(vfdma_dpdk_pool_create(dom, VFDMA_NUMA_ANY, &bad), nullptr);
	EXPECT_EQ(errno, EINVAL);
	vfdma_pool_opts po = {};
	po.arena_size = 8u << 20;
	vfdma_pool *pool = vfdma_dpdk_pool_create(dom, VFDMA_NUMA_ANY, &po);
	ASSERT_NE(pool, nullptr) << strerror(errno);
	uint64_t before = mappings(dom);
	std::vector<std::pair<void *, uint64_t>> bufs;
	for (uint64_t size : {64u, 4096u, 65536u, 3u << 20}) {
		uint64_t iova = 0;
		void *b = vfdma_dma_alloc(pool, size, 0, VFDMA_NUMA_ANY, &iova);
		ASSERT_NE(b, nullptr) << size;
		EXPECT_EQ(iova, rte_mem_virt2iova(b));
		dma_check(dev, iova, b, size < 8192 ? size : 8192, (uint8_t)size);
		bufs.emplace_back(b, iova);
	}
	vfdma_pool_stats st;
	ASSERT_EQ(vfdma_pool_get_stats(pool, &st), 0);
	EXPECT_GE(st.arenas, 1u);
	// the pool mapped nothing itself (only DPDK memory events may add)
	uint64_t n = 0;
	ASSERT_EQ(vfdma_dpdk_get_stats(dom, &n, nullptr), 0);
	EXPECT_EQ(mappings(dom), n);
	EXPECT_GE(mappings(dom), before);
	for (auto &b : bufs)
		EXPECT_EQ(vfdma_dma_free(pool, b.first), 0);
	EXPECT_EQ(vfdma_pool_destroy(pool), 0);
	EXPECT_EQ(vfdma_domain_check(dom), 0);
	EXPECT_EQ(vfdma_dpdk_detach(dom), 0);
	EXPECT_EQ(mappings(dom), 0u);
}
