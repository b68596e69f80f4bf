// SPDX-License-Identifier: BSD-3-Clause
// The lock-free translation table (lib/dma/xlate.h) on its own: random runs
// against a model (lowest target wins where runs overlap), saturation of
// long runs, CONST tables, failed preparation, and readers racing a writer.
#include "vfdma_test.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

extern "C" {
#include "dma/xlate.h"
}

namespace
{
constexpr uint64_t K4 = 4096, M2 = 2ull << 20, G1 = 1ull << 30;

struct XRun {
	uint64_t key, len, target;
};

// The model: live runs; a page translates through the lowest target.
struct Model {
	std::vector<XRun> runs;
	const XRun *best(uint64_t key, const XRun *skip = nullptr) const
	{
		const XRun *b = nullptr;
		for (const XRun &r : runs)
			if (&r != skip && key - r.key < r.len && (!b || r.target < b->target))
				b = &r;
		return b;
	}
};

bool model_best(void *ctx, uint64_t key, uint64_t *k0, uint64_t *t0, uint64_t *l0)
{
	const XRun *r = static_cast<Model *>(ctx)->best(key);
	if (!r)
		return false;
	*k0 = r->key;
	*t0 = r->target;
	*l0 = r->len;
	return true;
}

void expect_page(const vfd_xlate *t, const Model &m, uint64_t key)
{
	uint64_t tg = 0, len = 0;
	int rc = vfd_xlate_lookup(t, key, &tg, &len);
	const XRun *r = m.best(key);
	if (!r) {
		ASSERT_EQ(rc, -ENOENT) << std::hex << "key 0x" << key;
		return;
	}
	ASSERT_EQ(rc, 0) << std::hex << "key 0x" << key;
	ASSERT_EQ(tg, r->target + (key - r->key)) << std::hex << "key 0x" << key;
	ASSERT_EQ(len, r->key + r->len - key) << std::hex << "key 0x" << key;
}
} // namespace

TEST(Xlate, RandomRunsAgainstModel)
{
	std::mt19937_64 rng(vfdma_test_seed("Xlate.RandomRunsAgainstModel"));
	vfd_xlate t;
	vfd_xlate_init(&t, VFD_XLATE_LINEAR);
	Model m;
	// Keys around a 1 GiB boundary so runs cross l2 tables too.
	const uint64_t base = G1 - 64 * M2, span = 128 * M2;
	// Targets unique, as IOVAs are: half above every other (they lose where
	// runs overlap), half below (they win).
	uint64_t up = 1ull << 40, down = 1ull << 39;
	const int ops = (int)(12000 * vfdma_test_scale());
	for (int op = 0; op < ops; op++) {
		bool add = m.runs.size() < 4 || (m.runs.size() < 40 && rng() % 2);
		uint64_t lo, hi;
		if (add) {
			uint64_t pages = rng() % 4 ? 1 + rng() % 700 : 512 * (1 + rng() % 4);
			uint64_t key = base + (rng() % (span / K4 - pages)) * K4;
			if (rng() % 4 == 0)
				key &= ~(M2 - 1); // chunk-aligned: uniform entries
			XRun r = {key, pages * K4, 0};
			if (rng() % 2) {
				r.target = up;
				up += r.len + K4;
			} else {
				down -= r.len + K4;
				r.target = down;
			}
			ASSERT_EQ(vfd_xlate_prepare(&t, r.key, r.len), 0);
			vfd_xlate_set(&t, r.key, r.len, r.target, true);
			m.runs.push_back(r);
			lo = r.key;
			hi = r.key + r.len;
		} else {
			size_t i = rng() % m.runs.size();
			XRun r = m.runs[i];
			m.runs.erase(m.runs.begin() + (long)i);
			vfd_xlate_remove(&t, r.key, r.len, r.target, model_best, &m);
			lo = r.key;
			hi = r.key + r.len;
		}
		for (uint64_t k = (lo & ~(M2 - 1)) - K4; k < ((hi + M2 - 1) & ~(M2 - 1)) + K4; k += K4)
			ASSERT_NO_FATAL_FAILURE(expect_page(&t, m, k));
		for (int i = 0; i < 16; i++)
			ASSERT_NO_FATAL_FAILURE(expect_page(&t, m, base + (rng() % (span / K4)) * K4 +
								      rng() % K4));
	}
	while (!m.runs.empty()) {
		XRun r = m.runs.back();
		m.runs.pop_back();
		vfd_xlate_remove(&t, r.key, r.len, r.target, model_best, &m);
	}
	for (uint64_t k = base; k < base + span; k += K4 * 7)
		ASSERT_NO_FATAL_FAILURE(expect_page(&t, m, k));
	EXPECT_GT(t.table_bytes, 0u);
	vfd_xlate_fini(&t);
	EXPECT_EQ(t.table_bytes, 0u);
}

TEST(Xlate, OffsetsInsideUniformAndSmallEntries)
{
	vfd_xlate t;
	vfd_xlate_init(&t, VFD_XLATE_LINEAR);
	uint64_t tg, len;
	EXPECT_EQ(vfd_xlate_lookup(&t, 0x1000, &tg, &len), -ENOENT); // no table at all
	// 4 MiB at a 2 MiB-aligned key: uniform l2 leaves.
	ASSERT_EQ(vfd_xlate_prepare(&t, 8 * M2, 2 * M2), 0);
	uint64_t before = t.table_bytes;
	vfd_xlate_set(&t, 8 * M2, 2 * M2, 0x7000000000ull, false);
	EXPECT_EQ(t.table_bytes, before);
	ASSERT_EQ(vfd_xlate_lookup(&t, 9 * M2 + 12345, &tg, &len), 0);
	EXPECT_EQ(tg, 0x7000000000ull + M2 + 12345);
	EXPECT_EQ(len, M2 - 12345);
	// A small run in the next chunk gets an l3 table.
	ASSERT_EQ(vfd_xlate_prepare(&t, 10 * M2 + K4, 3 * K4), 0);
	EXPECT_EQ(t.table_bytes, before + 512 * 8);
	vfd_xlate_set(&t, 10 * M2 + K4, 3 * K4, 0x5000, false);
	ASSERT_EQ(vfd_xlate_lookup(&t, 10 * M2 + 2 * K4 + 7, &tg, &len), 0);
	EXPECT_EQ(tg, 0x5000 + K4 + 7);
	EXPECT_EQ(len, 2 * K4 - 7);
	EXPECT_EQ(vfd_xlate_lookup(&t, 10 * M2, &tg, &len), -ENOENT);
	EXPECT_EQ(vfd_xlate_lookup(&t, 10 * M2 + 4 * K4, &tg, &len), -ENOENT);
	// Beyond 48 bits: never held.
	EXPECT_FALSE(vfd_xlate_fits(1ull << 48, K4));
	EXPECT_FALSE(vfd_xlate_fits(UINT64_MAX - K4 + 1, 2 * K4));
	EXPECT_TRUE(vfd_xlate_fits((1ull << 48) - K4, K4));
	EXPECT_EQ(vfd_xlate_lookup(&t, (1ull << 48) + 8 * M2, &tg, &len), -ENOENT);
	vfd_xlate_fini(&t);
}

TEST(Xlate, LongRunsSaturateTheLength)
{
	vfd_xlate t;
	vfd_xlate_init(&t, VFD_XLATE_LINEAR);
	const uint64_t key = 4 * G1, len = 600 * G1; // more than 2^27 pages
	ASSERT_EQ(vfd_xlate_prepare(&t, key, len), 0);
	vfd_xlate_set(&t, key, len, 2 * G1, false);
	uint64_t tg = 0, l = 0;
	EXPECT_EQ(vfd_xlate_lookup(&t, key + 5, &tg, &l), 1) << "length unknown: ask the tree";
	EXPECT_EQ(tg, 2 * G1 + 5);
	uint64_t near_end = key + len - 3 * M2 + 100;
	ASSERT_EQ(vfd_xlate_lookup(&t, near_end, &tg, &l), 0);
	EXPECT_EQ(tg, 2 * G1 + (near_end - key));
	EXPECT_EQ(l, 3 * M2 - 100);
	vfd_xlate_remove(&t, key, len, 2 * G1, nullptr, nullptr);
	EXPECT_EQ(vfd_xlate_lookup(&t, near_end, &tg, &l), -ENOENT);
	vfd_xlate_fini(&t);
}

TEST(Xlate, ConstTablesHoldOneValuePerRun)
{
	vfd_xlate t;
	vfd_xlate_init(&t, VFD_XLATE_CONST);
	static uint64_t a[2], b[2]; // two "entries"
	uint64_t va = (uint64_t)(uintptr_t)a, vb = (uint64_t)(uintptr_t)b;
	ASSERT_EQ(vfd_xlate_prepare(&t, M2 - 2 * K4, 4 * M2), 0);
	vfd_xlate_set(&t, M2 - 2 * K4, 4 * M2, va, false);
	ASSERT_EQ(vfd_xlate_prepare(&t, 2 * M2, K4), 0);
	vfd_xlate_set(&t, 2 * M2, K4, vb, false); // overwrites one page
	EXPECT_EQ(vfd_xlate_get(&t, M2 - K4), va);
	EXPECT_EQ(vfd_xlate_get(&t, 2 * M2 + 77), vb);
	EXPECT_EQ(vfd_xlate_get(&t, 2 * M2 + K4), va);
	EXPECT_EQ(vfd_xlate_get(&t, 5 * M2 - 2 * K4), 0u);
	vfd_xlate_remove(&t, M2 - 2 * K4, 4 * M2, va, nullptr, nullptr);
	EXPECT_EQ(vfd_xlate_get(&t, M2 - K4), 0u);
	EXPECT_EQ(vfd_xlate_get(&t, 2 * M2), vb) << "only the run's own pages go";
	vfd_xlate_fini(&t);
}

TEST(Xlate, FailedPrepareChangesNoTranslation)
{
	vfd_xlate t;
	vfd_xlate_init(&t, VFD_XLATE_LINEAR);
	ASSERT_EQ(vfd_xlate_prepare(&t, G1 - M2, 2 * M2), 0);
	vfd_xlate_set(&t, G1 - M2, 2 * M2, 0x40000000, false);
	auto check = [&] {
		uint64_t tg, len;
		ASSERT_EQ(vfd_xlate_lookup(&t, G1 - M2 + 5 * K4, &tg, &len), 0);
		EXPECT_EQ(tg, 0x40000000 + 5 * K4);
		EXPECT_EQ(len, 2 * M2 - 5 * K4);
		EXPECT_EQ(vfd_xlate_lookup(&t, 3 * G1 + K4, &tg, &len), -ENOENT);
	};
	// A run over both chunks' middles, across a 1 GiB boundary to a new l2.
	unsigned points = vfdma_test_fail_each(
		VFD_SYS_ANY, [&] { return vfd_xlate_prepare(&t, G1 - K4, 2 * G1) == 0; }, [] {},
		check);
	EXPECT_GE(points, 2u);
	check();
	vfd_xlate_fini(&t);
}

// Readers translate a stable run without a lock while a writer enters and
// removes runs around it and over it (lower and higher targets): a reader
// sees the stable translation or the lower overlapping one, never a miss.
TEST(Xlate, ReadersNeverMissWhileAWriterChangesOtherRuns)
{
	vfd_xlate t;
	vfd_xlate_init(&t, VFD_XLATE_LINEAR);
	const uint64_t key = 64 * M2, len = 16 * M2, target = 1ull << 40, low = 1ull << 36;
	ASSERT_EQ(vfd_xlate_prepare(&t, key, len), 0);
	vfd_xlate_set(&t, key, len, target, true);
	Model m;
	m.runs.push_back({key, len, target});
	std::atomic<bool> stop{false};
	std::atomic<uint64_t> bad{0}, seen_low{0}, reads{0};
	std::vector<std::thread> readers;
	for (int r = 0; r < 2; r++) {
		readers.emplace_back([&, r] {
			std::mt19937_64 rr(r);
			while (!stop.load(std::memory_order_relaxed)) {
				uint64_t k = key + rr() % len, tg, l;
				int rc = vfd_xlate_lookup(&t, k, &tg, &l);
				bool hi = rc == 0 && tg == target + (k - key) && l == key + len - k;
				bool lo = rc == 0 && tg == low + (k - key - M2 / 2);
				if (!hi && !lo)
					bad++;
				if (lo)
					seen_low++;
				reads++;
			}
		});
	}
	std::mt19937_64 rng(vfdma_test_seed("Xlate.ReadersNeverMiss"));
	const int rounds = (int)(3000 * vfdma_test_scale());
	for (int i = 0; i < rounds; i++) {
		// A lower duplicate over part of the run (from key + 1 MiB), and a
		// higher one, and an unrelated run nearby.
		uint64_t dl = (1 + rng() % 2048) * K4;
		XRun d1 = {key + M2 / 2, dl, low}, d2 = {key + (rng() % 1024) * K4, dl, 1ull << 44};
		XRun o = {key + len + (rng() % 512) * K4, dl, 1ull << 42};
		for (const XRun &r : {d1, d2, o}) {
			ASSERT_EQ(vfd_xlate_prepare(&t, r.key, r.len), 0);
			vfd_xlate_set(&t, r.key, r.len, r.target, true);
			m.runs.push_back(r);
		}
		while (m.runs.size() > 1) {
			XRun r = m.runs.back();
			m.runs.pop_back();
			vfd_xlate_remove(&t, r.key, r.len, r.target, model_best, &m);
		}
	}
	while (reads.load() < 1000)
		std::this_thread::yield();
	stop = true;
	for (auto &th : readers)
		th.join();
	EXPECT_EQ(bad.load(), 0u) << "of " << reads.load() << " reads";
	fprintf(stderr, "[  XLATE   ] %llu lock-free reads, %llu saw the lower duplicate\n",
		(unsigned long long)reads.load(), (unsigned long long)seen_low.load());
	vfd_xlate_fini(&t);
}

// The writer's walk (vfd_xlate_next): the first leaf at or after a key,
// for that very page, crossing only populated 1 GiB slots, which are kept
// in order and freed with the table.
TEST(Xlate, NextFindsTheFirstLeafThroughPopulatedSlots)
{
	vfd_xlate t;
	vfd_xlate_init(&t, VFD_XLATE_LINEAR);
	uint64_t at = 0;
	EXPECT_EQ(vfd_xlate_next(&t, 0, UINT64_MAX, &at), 0u); // no table yet
	const XRun runs[] = {
		{300 * G1, 2 * K4, 0x7000000},	 // last slot, entered first
		{K4, 2 * K4, 0x1000000},	 // 4 KiB entries
		{5 * G1 + M2, M2, 0x40000000}, // one whole-chunk entry
	};
	for (const XRun &r : runs) {
		ASSERT_EQ(vfd_xlate_prepare(&t, r.key, r.len), 0);
		vfd_xlate_set(&t, r.key, r.len, r.target, false);
	}
	ASSERT_EQ(t.nr_slots, 3u);
	EXPECT_TRUE(t.slots[0] == 0 && t.slots[1] == 5 && t.slots[2] == 300);
	EXPECT_GT(vfd_xlate_slot_bytes(&t), 0u);

	uint64_t e = vfd_xlate_next(&t, 0, UINT64_MAX, &at);
	EXPECT_EQ(at, K4);
	EXPECT_EQ((e >> 28) << 12, 0x1000000u);
	e = vfd_xlate_next(&t, 2 * K4, UINT64_MAX, &at);
	EXPECT_EQ(at, 2 * K4);
	EXPECT_EQ((e >> 28) << 12, 0x1001000u);
	EXPECT_EQ((e >> 1) & VFD_XLATE_REM_SAT, 1u); // one page left of that run
	// Inside a whole-chunk entry: the leaf of the page asked for.
	e = vfd_xlate_next(&t, 3 * K4, UINT64_MAX, &at);
	EXPECT_EQ(at, 5 * G1 + M2);
	e = vfd_xlate_next(&t, 5 * G1 + M2 + 3 * K4, UINT64_MAX, &at);
	EXPECT_EQ(at, 5 * G1 + M2 + 3 * K4);
	EXPECT_EQ((e >> 28) << 12, 0x40003000u);
	EXPECT_EQ((e >> 1) & VFD_XLATE_REM_SAT, 512u - 3);
	e = vfd_xlate_next(&t, 5 * G1 + 2 * M2, UINT64_MAX, &at);
	EXPECT_EQ(at, 300 * G1);
	// The end bound is exclusive; nothing after the last run.
	EXPECT_EQ(vfd_xlate_next(&t, 5 * G1 + 2 * M2, 300 * G1, &at), 0u);
	EXPECT_EQ(vfd_xlate_next(&t, 300 * G1 + 2 * K4, UINT64_MAX, &at), 0u);
	EXPECT_EQ(vfd_xlate_next(&t, 1ull << 48, UINT64_MAX, &at), 0u);

	// A removed run is not found; its tables (and slot) stay.
	vfd_xlate_remove(&t, K4, 2 * K4, 0x1000000, nullptr, nullptr);
	vfd_xlate_next(&t, 0, UINT64_MAX, &at);
	EXPECT_EQ(at, 5 * G1 + M2);
	EXPECT_EQ(t.nr_slots, 3u);

	// CONST: the value itself (bit 0 set in the leaf).
	vfd_xlate c;
	vfd_xlate_init(&c, VFD_XLATE_CONST);
	ASSERT_EQ(vfd_xlate_prepare(&c, 7 * G1 + K4, 3 * K4), 0);
	vfd_xlate_set(&c, 7 * G1 + K4, 3 * K4, 0xabc0, false);
	e = vfd_xlate_next(&c, 7 * G1 + 2 * K4, UINT64_MAX, &at);
	EXPECT_EQ(at, 7 * G1 + 2 * K4);
	EXPECT_EQ(e & ~1ull, 0xabc0u);
	vfd_xlate_fini(&c);
	vfd_xlate_fini(&t);
	EXPECT_EQ(t.nr_slots, 0u);
	EXPECT_EQ(t.slots, nullptr);
}
