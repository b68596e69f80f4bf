// SPDX-License-Identifier: BSD-3-Clause
// The mapping table (lib/iommu/maptab.c): records in a slab indexed by the
// translation tables, with exception trees for duplicates and mappings
// beyond 48 bits.  The sim backend never touches the memory it maps unless
// a device does DMA, so these tests map made-up addresses (above 2^48 too)
// and check every translation against a model.
#include "vfdma_test.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>
#include <vector>

extern "C" {
#include "iommu/domain.h"
}

namespace
{
constexpr uint64_t K4 = 4096, M2 = 2ull << 20, G1 = 1ull << 30;
constexpr uint64_t TOP = 1ull << 48;

struct MRec {
	uint64_t va, len, iova;
	bool hidden;
	uint64_t count; // folded registration count
};

bool overlaps(const MRec &a, const MRec &b)
{
	return a.va < b.va + b.len && b.va < a.va + a.len;
}

bool tabled(const MRec &m)
{
	return m.va + m.len <= TOP && m.iova + m.len <= TOP;
}

struct Model {
	std::vector<MRec> maps;

	const MRec *lowest(uint64_t va) const
	{
		const MRec *b = nullptr;
		for (const MRec &m : maps)
			if (!m.hidden && va - m.va < m.len && (!b || m.iova < b->iova))
				b = &m;
		return b;
	}
	// The exception nodes the table must hold: every untabled mapping, and
	// every visible tabled one that overlaps another visible tabled one.
	uint64_t exceptions() const
	{
		uint64_t n = 0;
		for (const MRec &m : maps) {
			if (!tabled(m)) {
				n++;
				continue;
			}
			if (m.hidden)
				continue;
			for (const MRec &o : maps)
				if (&o != &m && !o.hidden && tabled(o) && overlaps(m, o)) {
					n++;
					break;
				}
		}
		return n;
	}
};

uint64_t nr_exc(vfdma_domain *d)
{
	pthread_mutex_lock(&d->lock);
	uint64_t n = d->nr_exc;
	pthread_mutex_unlock(&d->lock);
	return n;
}

// Every page of the windows and of every mapping translates as the model says.
void expect_model(vfdma_domain *d, const Model &m, const std::vector<uint64_t> &windows,
		  uint64_t pages)
{
	for (uint64_t w : windows) {
		for (uint64_t p = 0; p < pages; p++) {
			uint64_t va = w + p * K4, iova = 0, len = 0;
			const MRec *r = m.lowest(va);
			int rc = vfdma_vaddr_to_iova(d, (void *)va, &iova, &len);
			if (!r) {
				ASSERT_EQ(rc, -ENOENT) << std::hex << va;
				continue;
			}
			ASSERT_EQ(rc, 0) << std::hex << va;
			ASSERT_EQ(iova, r->iova + (va - r->va)) << std::hex << va;
			ASSERT_EQ(len, r->len - (va - r->va)) << std::hex << va;
		}
	}
	for (const MRec &r : m.maps) {
		for (uint64_t off = 0; off < r.len; off += K4) {
			void *va = nullptr;
			uint64_t len = 0;
			ASSERT_EQ(vfdma_iova_to_vaddr(d, r.iova + off, &va, &len), 0);
			ASSERT_EQ((uint64_t)(uintptr_t)va, r.va + off);
			ASSERT_EQ(len, r.len - off);
		}
	}
	ASSERT_EQ(nr_exc(d), m.exceptions());
	ASSERT_EQ(vfdma_test_domain_info(d).mappings, m.maps.size());
}

// Random maps (some hidden, some beyond 48 bits, many overlapping), unmaps,
// folds and unfolds, each checked against the model: translation both
// ways, the exception nodes, the folded counts, and the domain check.
TEST(SimMapTable, RandomMappingsAgainstModel)
{
	vfdma_domain *d = vfdma_test_open_sim();
	ASSERT_NE(d, nullptr);
	std::mt19937_64 rng(vfdma_test_seed("SimMapTable.RandomMappingsAgainstModel"));
	constexpr uint64_t PAGES = 48;
	// One window well inside the tables, one straddling 2^48.
	const std::vector<uint64_t> windows = {0x7e0000000000ull, TOP - PAGES / 2 * K4};
	Model m;
	const int ops = (int)(3000 * vfdma_test_scale());
	for (int op = 0; op < ops; op++) {
		unsigned what = rng() % 10;
		if (what < 5 || m.maps.empty()) {
			uint64_t w = windows[rng() % 2];
			uint64_t first = rng() % PAGES, n = 1 + rng() % std::min<uint64_t>(8, PAGES - first);
			MRec r = {w + first * K4, n * K4, 0, rng() % 8 == 0, 0};
			int rc = r.hidden ? vfd_map_hidden(d, (void *)r.va, r.len, VFDMA_PROT_RW, &r.iova)
					  : vfdma_map(d, (void *)r.va, r.len, VFDMA_PROT_RW, 0, &r.iova);
			ASSERT_EQ(rc, 0);
			m.maps.push_back(r);
		} else if (what < 8) {
			size_t i = rng() % m.maps.size();
			ASSERT_EQ(vfdma_unmap(d, m.maps[i].iova, m.maps[i].len), 0);
			m.maps.erase(m.maps.begin() + (long)i);
		} else if (what == 8) {
			size_t i = rng() % m.maps.size();
			MRec &r = m.maps[i];
			uint64_t c = 1 + rng() % VFD_MAP_REG_COUNT_MAX;
			vfdma_map_run run = {(void *)r.va, r.len, r.iova};
			if (r.hidden)
				continue; // the cache's mappings are never registrations
			ASSERT_EQ(vfd_map_reg_fold(d, &run, c), 0);
			r.count = c;
			// A run that is not exactly a mapping is refused.
			run.len += K4;
			EXPECT_EQ(vfd_map_reg_fold(d, &run, c), -ENOENT);
		} else {
			uint64_t w = windows[rng() % 2];
			uint64_t a = w + (rng() % PAGES) * K4, b = a + (1 + rng() % 16) * K4;
			size_t want = 0;
			for (const MRec &r : m.maps)
				want += r.count && r.va < b && a < r.va + r.len;
			ASSERT_EQ(vfd_map_reg_unfold(d, a, b, nullptr, nullptr, 0), want);
			std::vector<vfdma_map_run> out(want + 1);
			std::vector<uint64_t> counts(want + 1);
			ASSERT_EQ(vfd_map_reg_unfold(d, a, b, out.data(), counts.data(), want + 1), want);
			for (size_t k = 0; k < want; k++) {
				auto it = std::find_if(m.maps.begin(), m.maps.end(), [&](const MRec &r) {
					return r.iova == out[k].iova;
				});
				ASSERT_NE(it, m.maps.end());
				EXPECT_EQ(it->va, (uint64_t)(uintptr_t)out[k].vaddr);
				EXPECT_EQ(it->count, counts[k]);
				it->count = 0;
			}
			for (const MRec &r : m.maps) {
				ASSERT_FALSE(r.count && r.va < b && a < r.va + r.len);
			}
		}
		ASSERT_NO_FATAL_FAILURE(expect_model(d, m, windows, PAGES));
		if (op % 32 == 0) {
			ASSERT_EQ(vfdma_domain_check(d), 0);
		}
	}
	ASSERT_EQ(vfdma_domain_check(d), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}

// The exception tree holds exactly the mappings that overlap another,
// in both directions of every transition; the translation of a page
// follows the lowest IOVA as duplicates come and go.
TEST(SimMapTable, DuplicatesMoveInAndOutOfTheExceptionTree)
{
	vfdma_domain *d = vfdma_test_open_sim();
	const uint64_t X = 0x7d0000000000ull;
	uint64_t a = 0, b = 0, c = 0, b2 = 0, iova = 0, len = 0;
	ASSERT_EQ(vfdma_map(d, (void *)X, 4 * K4, VFDMA_PROT_RW, 0, &a), 0);
	EXPECT_EQ(nr_exc(d), 0u);
	ASSERT_EQ(vfdma_map(d, (void *)(X + 2 * K4), 4 * K4, VFDMA_PROT_RW, 0, &b), 0);
	EXPECT_EQ(nr_exc(d), 2u); // both
	ASSERT_EQ(vfdma_map(d, (void *)(X + 10 * K4), 2 * K4, VFDMA_PROT_RW, 0, &c), 0);
	EXPECT_EQ(nr_exc(d), 2u); // alone: clean
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(X + 3 * K4), &iova, &len), 0);
	EXPECT_EQ(iova, std::min(a + 3 * K4, b + K4));
	ASSERT_EQ(vfdma_unmap(d, b, 4 * K4), 0);
	EXPECT_EQ(nr_exc(d), 0u); // a is alone again
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(X + 3 * K4), &iova, &len), 0);
	EXPECT_EQ(iova, a + 3 * K4);
	EXPECT_EQ(len, K4);
	EXPECT_EQ(vfdma_vaddr_to_iova(d, (void *)(X + 4 * K4), &iova, &len), -ENOENT);

	// An exact duplicate: the lower IOVA translates; when it goes, the other.
	ASSERT_EQ(vfdma_map(d, (void *)X, 4 * K4, VFDMA_PROT_RW, 0, &b2), 0);
	EXPECT_EQ(nr_exc(d), 2u);
	uint64_t lo = std::min(a, b2), hi = std::max(a, b2);
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(X + K4), &iova, &len), 0);
	EXPECT_EQ(iova, lo + K4);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	ASSERT_EQ(vfdma_unmap(d, lo, 4 * K4), 0);
	EXPECT_EQ(nr_exc(d), 0u);
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(X + K4), &iova, &len), 0);
	EXPECT_EQ(iova, hi + K4);
	EXPECT_EQ(len, 3 * K4);

	// One mapping spanning two that overlap nothing else makes all three
	// exceptions; removing it makes both clean again.
	uint64_t big = 0;
	ASSERT_EQ(vfdma_map(d, (void *)(X + K4), 12 * K4, VFDMA_PROT_RW, 0, &big), 0);
	EXPECT_EQ(nr_exc(d), 3u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	ASSERT_EQ(vfdma_unmap(d, big, 12 * K4), 0);
	EXPECT_EQ(nr_exc(d), 0u);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}

// Beyond 48 bits: no table entry, the trees answer both directions, and
// the fast path still serves the tabled mappings meanwhile.
TEST(SimMapTable, UntabledMappingsUseTheTrees)
{
	vfdma_domain *d = vfdma_test_open_sim();
	uint64_t hi = 0, lo = 0, iova = 0, len = 0;
	const uint64_t HV = TOP + 5 * M2; // made-up memory above 2^48
	ASSERT_EQ(vfdma_map(d, (void *)HV, M2, VFDMA_PROT_RW, 0, &hi), 0);
	ASSERT_EQ(vfdma_map(d, (void *)(TOP - 2 * M2), M2, VFDMA_PROT_RW, 0, &lo), 0);
	EXPECT_EQ(nr_exc(d), 1u);
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(HV + 3 * K4), &iova, &len), 0);
	EXPECT_EQ(iova, hi + 3 * K4);
	EXPECT_EQ(len, M2 - 3 * K4);
	void *va = nullptr;
	ASSERT_EQ(vfdma_iova_to_vaddr(d, hi + M2 - K4, &va, &len), 0);
	EXPECT_EQ((uint64_t)(uintptr_t)va, HV + M2 - K4);
	EXPECT_EQ(len, K4);
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(TOP - 2 * M2 + K4), &iova, &len), 0);
	EXPECT_EQ(iova, lo + K4);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	// Walks in IOVA order see it: unmapping a range that holds it works.
	ASSERT_EQ(vfdma_unmap(d, hi, M2), 0);
	EXPECT_EQ(nr_exc(d), 0u);
	EXPECT_EQ(vfdma_vaddr_to_iova(d, (void *)HV, &iova, &len), -ENOENT);
	EXPECT_EQ(vfdma_iova_to_vaddr(d, hi, &va, &len), -ENOENT);
	// Closing with one still mapped releases it.
	ASSERT_EQ(vfdma_map(d, (void *)HV, M2, VFDMA_PROT_RW, 0, &hi), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}

// A run longer than a table entry can tell (2^27 pages): the length comes
// from the record, exact in both directions, also after a duplicate inside
// it came and went.
TEST(SimMapTable, RunsTooLongForAnEntry)
{
	vfdma_domain *d = vfdma_test_open_sim();
	const uint64_t V = 1ull << 41, L = (1ull << 40) + G1; // 1 TiB + 1 GiB, made up
	uint64_t big = 0, small = 0, iova = 0, len = 0;
	ASSERT_EQ(vfdma_map(d, (void *)V, L, VFDMA_PROT_RW, 0, &big), 0);
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(V + 5 * G1 + K4), &iova, &len), 0);
	EXPECT_EQ(iova, big + 5 * G1 + K4);
	EXPECT_EQ(len, L - 5 * G1 - K4);
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(V + L - M2), &iova, &len), 0);
	EXPECT_EQ(len, M2);
	void *va = nullptr;
	ASSERT_EQ(vfdma_iova_to_vaddr(d, big + K4, &va, &len), 0);
	EXPECT_EQ((uint64_t)(uintptr_t)va, V + K4);
	EXPECT_EQ(len, L - K4);
	ASSERT_EQ(vfdma_map(d, (void *)(V + 7 * G1), M2, VFDMA_PROT_RW, 0, &small), 0);
	EXPECT_EQ(nr_exc(d), 2u);
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(V + 7 * G1), &iova, &len), 0);
	EXPECT_EQ(iova, std::min(small, big + 7 * G1));
	EXPECT_EQ(vfdma_domain_check(d), 0);
	ASSERT_EQ(vfdma_unmap(d, small, M2), 0);
	EXPECT_EQ(nr_exc(d), 0u);
	ASSERT_EQ(vfdma_vaddr_to_iova(d, (void *)(V + 7 * G1), &iova, &len), 0);
	EXPECT_EQ(iova, big + 7 * G1);
	EXPECT_EQ(len, L - 7 * G1);
	EXPECT_EQ(vfdma_domain_check(d), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}

// Records are recycled: unmapping everything and mapping as many again
// takes no new slab memory, and the old IOVAs no longer translate.
TEST(SimMapTable, SlabRecordsAreReused)
{
	vfdma_domain *d = vfdma_test_open_sim();
	const uint64_t X = 0x7c0000000000ull, N = 4096; // two slab chunks
	std::vector<uint64_t> iovas(N);
	for (uint64_t i = 0; i < N; i++)
		ASSERT_EQ(vfdma_map(d, (void *)(X + 2 * i * K4), K4, VFDMA_PROT_RW, 0, &iovas[i]), 0);
	pthread_mutex_lock(&d->lock);
	uint64_t chunks = d->nr_chunks, bytes = vfd_map_table_bytes(d);
	pthread_mutex_unlock(&d->lock);
	EXPECT_EQ(chunks, 2u); // 2048 records a chunk
	// 32 bytes a record, a 4 KiB entry table per 256 pages 8 KiB apart
	// and per 512 IOVA pages: well under 64 bytes a mapping.
	EXPECT_LT(bytes, N * 64);
	for (uint64_t i = 0; i < N; i++)
		ASSERT_EQ(vfdma_unmap(d, iovas[i], K4), 0);
	void *va = nullptr;
	uint64_t len;
	EXPECT_EQ(vfdma_iova_to_vaddr(d, iovas[N - 1], &va, &len), -ENOENT);
	for (uint64_t i = 0; i < N; i++)
		ASSERT_EQ(vfdma_map(d, (void *)(X + (2 * i + 1) * K4), K4, VFDMA_PROT_RW, 0, &iovas[i]),
			  0);
	pthread_mutex_lock(&d->lock);
	EXPECT_EQ(d->nr_chunks, chunks);
	pthread_mutex_unlock(&d->lock);
	for (uint64_t i = 0; i < N; i += 97) {
		ASSERT_EQ(vfdma_iova_to_vaddr(d, iovas[i], &va, &len), 0);
		EXPECT_EQ((uint64_t)(uintptr_t)va, X + (2 * i + 1) * K4);
	}
	EXPECT_EQ(vfdma_domain_check(d), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}

// Lock-free IOVA -> vaddr readers race a writer that maps and unmaps at
// fixed IOVAs, so records are recycled under the readers all the time.
// Every mapping of IOVA page p is to vaddr tag * 1 GiB + p pages, and ends
// on a 16-page boundary: an answer mixing two records' fields shows.
TEST(SimMapTable, ReadersNeverSeeARecycledRecordTorn)
{
	vfdma_domain *d = vfdma_test_open_sim();
	const uint64_t B = 0x40000000, V = 0x100000000000ull, PAGES = 64;
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> hits{0}, bad{0};
	auto reader = [&](uint64_t seed) {
		std::mt19937_64 r(seed);
		while (!stop.load(std::memory_order_relaxed)) {
			uint64_t p = r() % PAGES;
			void *va = nullptr;
			uint64_t len = 0;
			if (vfdma_iova_to_vaddr(d, B + p * K4, &va, &len))
				continue;
			uint64_t v = (uint64_t)(uintptr_t)va - V - p * K4;
			uint64_t endp = p + len / K4;
			if (v % G1 || v / G1 >= 16 || len % K4 || !len || endp > PAGES || endp % 16)
				bad++;
			hits++;
		}
	};
	std::thread r1(reader, 1), r2(reader, 2);
	std::mt19937_64 rng(vfdma_test_seed("SimMapTable.ReadersNeverSeeARecycledRecordTorn"));
	std::vector<uint64_t> mapped(PAGES / 16, 0); // per 16-page block: pages mapped at its end
	const int ops = (int)(20000 * vfdma_test_scale());
	for (int op = 0; op < ops || hits.load() < 1000; op++) {
		uint64_t blk = rng() % mapped.size();
		uint64_t n = mapped[blk];
		if (n) {
			ASSERT_EQ(vfdma_unmap(d, B + (blk * 16 + 16 - n) * K4, n * K4), 0);
			mapped[blk] = 0;
			continue;
		}
		// Map the last n pages of the block: the mapping ends on its boundary.
		n = 1 + rng() % 16;
		uint64_t first = blk * 16 + 16 - n, tag = rng() % 16, at = B + first * K4;
		void *va = (void *)(V + tag * G1 + first * K4);
		ASSERT_EQ(vfdma_map(d, va, n * K4, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &at), 0);
		mapped[blk] = n;
	}
	stop = true;
	r1.join();
	r2.join();
	EXPECT_EQ(bad.load(), 0u) << "of " << hits.load();
	EXPECT_EQ(vfdma_domain_check(d), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}

} // namespace
