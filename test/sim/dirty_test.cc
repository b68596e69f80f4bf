// SPDX-License-Identifier: BSD-3-Clause
// Dirty logs on the sim backend: software devices write through the
// software IOMMU, and a sync must report exactly (with split) or at block
// precision (without) what they wrote, never missing a write, also while
// mappings come and go and tracking starts and stops under running DMA.
#include "vfdma_test.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace
{
constexpr uint64_t K4 = 4096, M2 = 2ull << 20;

using Buf = VfdmaTestBuf;

unsigned popcount(const std::vector<uint64_t> &bm)
{
	unsigned n = 0;
	for (uint64_t w : bm)
		n += __builtin_popcountll(w);
	return n;
}

bool bit(const std::vector<uint64_t> &bm, uint64_t i)
{
	return bm[i / 64] & (1ull << (i % 64));
}

struct Rig {
	vfdma_domain *d;
	vfdma_device *dev;
	Buf buf;
	uint64_t iova = 0;
	explicit Rig(size_t size) : buf(size)
	{
		d = vfdma_test_open_sim();
		dev = vfdma_sim_device_create(d);
		EXPECT_EQ(vfdma_map(d, buf.p, size, VFDMA_PROT_RW, 0, &iova), 0);
	}
	~Rig()
	{
		vfdma_domain_close(d);
	}
	void write(uint64_t off)
	{
		uint8_t v = 0xab;
		ASSERT_EQ(vfdma_sim_dma_write(dev, iova + off, &v, 1), 0);
	}
};
} // namespace

TEST(SimDirty, SplitReportsExactlyThePagesWritten)
{
	Rig s(2 * M2);
	vfdma_sim_stats st;
	ASSERT_EQ(vfdma_sim_get_stats(s.d, &st), 0);
	ASSERT_EQ(st.leaves_2m, 2u);
	s.write(K4); // before tracking: not reported
	vfdma_dirty *log = vfdma_dirty_start(s.d, nullptr);
	ASSERT_NE(log, nullptr);
	vfdma_dirty_info info;
	ASSERT_EQ(vfdma_dirty_get_info(log, &info), 0);
	EXPECT_EQ(info.sources, VFDMA_DIRTY_SRC_HW | VFDMA_DIRTY_SRC_MARK);
	EXPECT_EQ(info.split, 1);
	ASSERT_EQ(vfdma_sim_get_stats(s.d, &st), 0);
	EXPECT_EQ(st.leaves_2m, 0u);
	EXPECT_EQ(st.leaves_4k, 1024u);

	s.write(77 * K4 + 5);
	s.write(M2 + 99 * K4 + 4095); // the last byte of page 512 + 99
	std::vector<uint64_t> bm(1024 / 64);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, 2 * M2, bm.data(), VFDMA_DIRTY_SYNC_PEEK), 2);
	EXPECT_EQ(popcount(bm), 2u);
	EXPECT_TRUE(bit(bm, 77));
	EXPECT_TRUE(bit(bm, 512 + 99));
	std::fill(bm.begin(), bm.end(), 0);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, 2 * M2, bm.data(), 0), 2); // peek kept them
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, 2 * M2, bm.data(), 0), 0); // cleared

	// A sub-range reports relative to its own start.
	s.write(M2 + 3 * K4);
	std::vector<uint64_t> half(512 / 64);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova + M2, M2, half.data(), 0), 1);
	EXPECT_TRUE(bit(half, 3));

	ASSERT_EQ(vfdma_dirty_stop(log), 0);
	ASSERT_EQ(vfdma_sim_get_stats(s.d, &st), 0);
	EXPECT_EQ(st.leaves_2m, 2u) << "stop merges the blocks back";
	EXPECT_EQ(st.leaves_4k, 0u);
}

TEST(SimDirty, WithoutSplitWholeBlocksAreReported)
{
	Rig s(2 * M2);
	vfdma_dirty_opts o = {};
	o.flags = VFDMA_DIRTY_NO_SPLIT;
	vfdma_dirty *log = vfdma_dirty_start(s.d, &o);
	ASSERT_NE(log, nullptr);
	s.write(5);
	std::vector<uint64_t> bm(1024 / 64);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, 2 * M2, bm.data(), 0), 512);
	EXPECT_TRUE(bit(bm, 0) && bit(bm, 511) && !bit(bm, 512));
	vfdma_dirty_stop(log);
}

TEST(SimDirty, CoarserGranule)
{
	Rig s(M2);
	vfdma_dirty_opts o = {};
	o.granule = 64 * 1024;
	vfdma_dirty *log = vfdma_dirty_start(s.d, &o);
	ASSERT_NE(log, nullptr);
	s.write(17 * K4);
	s.write(18 * K4);
	s.write(31 * K4);
	std::vector<uint64_t> bm(1);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, M2, bm.data(), 0), 1);
	EXPECT_EQ(bm[0], 1ull << 1); // 64 KiB granule 1 holds pages 16-31
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova + K4, M2, bm.data(), 0), -EINVAL);
	vfdma_dirty_stop(log);
}

TEST(SimDirty, MappingsMadeAndRemovedWhileTracking)
{
	Rig s(M2);
	vfdma_dirty *log = vfdma_dirty_start(s.d, nullptr);
	ASSERT_NE(log, nullptr);
	// A new 2 MiB mapping while tracking is created split.
	Buf more(M2);
	uint64_t iova2 = 0;
	ASSERT_EQ(vfdma_map(s.d, more.p, M2, VFDMA_PROT_RW, 0, &iova2), 0);
	vfdma_sim_stats st;
	ASSERT_EQ(vfdma_sim_get_stats(s.d, &st), 0);
	EXPECT_EQ(st.leaves_2m, 0u);
	uint8_t v = 1;
	ASSERT_EQ(vfdma_sim_dma_write(s.dev, iova2 + 9 * K4, &v, 1), 0);
	// Written, then unmapped before the sync: still reported.
	ASSERT_EQ(vfdma_unmap(s.d, iova2, M2), 0);
	std::vector<uint64_t> bm(512 / 64);
	EXPECT_EQ(vfdma_dirty_sync(log, iova2, M2, bm.data(), 0), 1);
	EXPECT_TRUE(bit(bm, 9));
	EXPECT_EQ(vfdma_dirty_sync(log, iova2, M2, bm.data(), 0), 0);
	vfdma_dirty_stop(log);
	EXPECT_EQ(vfdma_domain_check(s.d), 0);
}

TEST(SimDirty, DriverMarks)
{
	Rig s(M2);
	vfdma_dirty *log = vfdma_dirty_start(s.d, nullptr);
	ASSERT_NE(log, nullptr);
	ASSERT_EQ(vfdma_dirty_mark(log, s.iova + 10 * K4 + 100, 2 * K4), 0); // touches 3 pages
	std::vector<uint64_t> bm(512 / 64);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, M2, bm.data(), 0), 3);
	EXPECT_TRUE(bit(bm, 10) && bit(bm, 11) && bit(bm, 12));
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, M2, bm.data(), 0), 0);
	vfdma_dirty_stop(log);

	vfdma_dirty_opts o = {};
	o.sources = VFDMA_DIRTY_SRC_HW;
	log = vfdma_dirty_start(s.d, &o);
	ASSERT_NE(log, nullptr);
	EXPECT_EQ(vfdma_dirty_mark(log, s.iova, K4), -ENOTSUP);
	vfdma_dirty_stop(log);
}

TEST(SimDirty, BadInput)
{
	Rig s(M2);
	EXPECT_EQ(vfdma_dirty_start(nullptr, nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	vfdma_dirty_opts o = {};
	o.granule = 3000;
	EXPECT_EQ(vfdma_dirty_start(s.d, &o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	o = {};
	o.sources = VFDMA_DIRTY_SRC_TYPE1; // the sim backend has no type1 tracking
	EXPECT_EQ(vfdma_dirty_start(s.d, &o), nullptr);
	EXPECT_EQ(errno, ENOTSUP);
	o = {};
	o.flags = 1u << 7;
	EXPECT_EQ(vfdma_dirty_start(s.d, &o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	vfdma_dirty *log = vfdma_dirty_start(s.d, nullptr);
	ASSERT_NE(log, nullptr);
	EXPECT_EQ(vfdma_dirty_start(s.d, nullptr), nullptr);
	EXPECT_EQ(errno, EBUSY);
	uint64_t bm[8] = {};
	EXPECT_EQ(vfdma_dirty_sync(nullptr, s.iova, M2, bm, 0), -EINVAL);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, M2, nullptr, 0), -EINVAL);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, 0, bm, 0), -EINVAL);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova + 1, M2, bm, 0), -EINVAL);
	EXPECT_EQ(vfdma_dirty_sync(log, s.iova, M2, bm, 1u << 5), -EINVAL);
	EXPECT_EQ(vfdma_dirty_sync(log, UINT64_MAX - K4 + 1, 2 * K4, bm, 0), -EOVERFLOW);
	EXPECT_EQ(vfdma_dirty_mark(nullptr, 0, 1), -EINVAL);
	EXPECT_EQ(vfdma_dirty_mark(log, 0, 0), -EINVAL);
	EXPECT_EQ(vfdma_dirty_mark(log, UINT64_MAX, 2), -EOVERFLOW);
	EXPECT_EQ(vfdma_dirty_get_info(log, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_dirty_stop(nullptr), 0);
	// Closing the domain with a log running stops it.
	(void)log;
}

// The property that matters, under load: devices write random pages while
// the control thread runs tracking sessions (start with split, syncs, stop
// with merge) back to back.  A write that began after a session's start
// returned and completed before that session's last sync began must be
// reported by a sync of that session no earlier than the last sync that had
// begun when the write began.  Checked for every write; also measures the
// precision: reported granules over the pages really written per round.
TEST(SimDirty, NoWriteMissedUnderConcurrentTrackingSplitAndMerge)
{
	const uint64_t size = 16 * M2, pages = size / K4;
	const unsigned nthreads = 3;
	const uint64_t target = VFDMA_TEST_SANITIZED ? 200000 : (uint64_t)(1000000 * vfdma_test_scale());
	vfdma_domain *d = vfdma_test_open_sim();
	Buf buf(size);
	uint64_t iova = 0;
	ASSERT_EQ(vfdma_map(d, buf.p, size, VFDMA_PROT_RW, 0, &iova), 0);

	std::atomic<uint64_t> seq{1};      // global order of events
	std::atomic<uint32_t> syncs{0};    // syncs begun so far
	std::atomic<uint64_t> writes{0};
	std::atomic<uint64_t> in_session{0}; // writes begun and done while a session ran
	std::atomic<bool> session{false};
	std::atomic<bool> stop{false};
	struct Rec {
		uint32_t page, k;
		uint64_t begin, done;
	};
	std::vector<std::vector<Rec>> recs(nthreads);
	struct Session {
		uint64_t started, last_sync_seq;
		uint32_t first_sync, last_sync;
	};
	std::vector<Session> sessions;
	std::vector<std::vector<uint64_t>> reports; // per sync, bitmap of pages
	reports.emplace_back();                     // syncs are 1-based
	std::vector<uint64_t> sync_seq{0};

	uint64_t seed = vfdma_test_seed("SimDirty.NoWriteMissed");
	std::vector<std::thread> th;
	for (unsigned t = 0; t < nthreads; t++) {
		th.emplace_back([&, t]() {
			vfdma_device *dev = vfdma_sim_device_create(d);
			std::mt19937_64 rng(seed + t);
			recs[t].reserve(target / nthreads + 1000);
			while (!stop.load(std::memory_order_relaxed)) {
				uint64_t page = rng() % (rng() % 4 ? 128 : pages);
				uint64_t val = rng();
				Rec r;
				r.page = (uint32_t)page;
				bool was = session.load();
				r.k = syncs.load();
				r.begin = seq.fetch_add(1);
				if (vfdma_sim_dma_write(dev, iova + page * K4 + (val % 4088), &val, 8)) {
					ADD_FAILURE() << "write faulted";
					break;
				}
				r.done = seq.fetch_add(1);
				recs[t].push_back(r);
				writes.fetch_add(1, std::memory_order_relaxed);
				// Enough writes inside sessions, with a margin for the
				// judge's stricter rule: stop.
				if (was && session.load() &&
				    in_session.fetch_add(1) + 1 >= target + target / 8)
					stop.store(true);
			}
			vfdma_device_close(dev);
		});
	}
	std::vector<uint64_t> bm(pages / 64);
	auto sync = [&](vfdma_dirty *log) {
		uint32_t r = syncs.fetch_add(1) + 1;
		sync_seq.push_back(seq.fetch_add(1));
		std::fill(bm.begin(), bm.end(), 0);
		int64_t n = vfdma_dirty_sync(log, iova, size, bm.data(), 0);
		EXPECT_GE(n, 0);
		reports.push_back(bm);
		return r;
	};
	while (!stop.load()) {
		vfdma_dirty *log = vfdma_dirty_start(d, nullptr); // splits under running DMA
		ASSERT_NE(log, nullptr);
		Session s;
		s.started = seq.fetch_add(1);
		session.store(true);
		s.first_sync = syncs.load() + 1;
		for (int i = 0; i < 16 && !stop.load(); i++)
			sync(log);
		session.store(false);
		s.last_sync_seq = seq.load();
		s.last_sync = sync(log);
		sessions.push_back(s);
		vfdma_dirty_stop(log); // merges under running DMA
	}
	for (auto &x : th)
		x.join();

	// Judge every write.
	uint64_t missed = 0, judged = 0, written_pages_rounds = 0, reported_granules = 0;
	std::vector<std::vector<uint64_t>> written_per_sync(reports.size(),
							    std::vector<uint64_t>(pages / 64));
	for (auto &v : recs) {
		for (const Rec &r : v) {
			// The session this write belongs to: the last one started
			// before it began (sessions are in order of their start;
			// a binary search, as there are tens of millions of writes
			// and thousands of sessions).
			auto after = std::partition_point(
				sessions.begin(), sessions.end(),
				[&](const Session &x) { return x.started < r.begin; });
			if (after == sessions.begin())
				continue; // before the first session
			const Session *s = &*(after - 1);
			if (r.done >= s->last_sync_seq)
				continue; // not inside a session: nothing required
			judged++;
			uint32_t from = std::max(r.k, s->first_sync);
			bool found = false;
			for (uint32_t k = from; k <= s->last_sync && !found; k++)
				found = bit(reports[k], r.page);
			if (!found && missed++ < 5)
				ADD_FAILURE() << "write to page " << r.page << " (k " << r.k
					      << ") not reported in syncs " << from << ".." << s->last_sync;
			// For precision: the first sync that began after it was done.
			uint32_t k = from;
			while (k <= s->last_sync && sync_seq[k] < r.done)
				k++;
			if (k <= s->last_sync)
				written_per_sync[k][r.page / 64] |= 1ull << (r.page % 64);
		}
	}
	for (size_t k = 1; k < reports.size(); k++) {
		written_pages_rounds += popcount(written_per_sync[k]);
		reported_granules += popcount(reports[k]);
	}
	double ratio = written_pages_rounds ? (double)reported_granules / (double)written_pages_rounds : 0;
	fprintf(stderr,
		"[  INFO    ] %llu writes (%llu judged), %zu sessions, %u syncs, 0 expected missed: "
		"%llu missed; reported/written pages %.3f\n",
		(unsigned long long)writes.load(), (unsigned long long)judged, sessions.size(),
		syncs.load(), (unsigned long long)missed, ratio);
	EXPECT_EQ(missed, 0u);
	EXPECT_GE(judged, target);
	EXPECT_GT(sessions.size(), 3u);
	vfdma_domain_close(d);
}
