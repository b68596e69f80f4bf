// SPDX-License-Identifier: BSD-3-Clause
// The IOVA tree (fat-node augmented red-black tree) driven directly, against
// a sorted map of busy blocks: trees of thousands of nodes, so that every
// split, spill to a neighbour, merge (both shapes) and rebalancing case runs
// many times.  After every operation (or every few, in the large runs) the
// invariant checker must pass; the walk, lookups, range checks, the largest
// gap and searches under random limits and alignments must match the model.
#include "vfdma_test.h"

#include <map>
#include <vector>

extern "C" {
#include "dma/iova_tree.h"
}

namespace
{

struct Blk {
	uint64_t n;
	int kind;
};

struct TreeModel {
	uint64_t end; // the anchor's start
	std::map<uint64_t, Blk> m; // the anchor included

	// Is [pfn, pfn + n) free (and below the anchor)?
	bool free_range(uint64_t pfn, uint64_t n) const
	{
		if (pfn + n > end)
			return false;
		auto it = m.lower_bound(pfn);
		if (it != m.end() && it->first < pfn + n)
			return false;
		if (it != m.begin()) {
			--it;
			if (it->first + it->second.n > pfn)
				return false;
		}
		return true;
	}

	uint64_t largest() const
	{
		uint64_t lo = 0, best = 0;
		for (auto &x : m) {
			best = std::max(best, x.first - lo);
			lo = x.first + x.second.n;
		}
		return best;
	}

	// The placement rule of vfdma/iova.h over the gaps, highest first.
	bool find(uint64_t s, uint64_t a, uint64_t last, uint64_t *pfn) const
	{
		for (int phase = 0; phase < 2; phase++) {
			if (phase == 1 && a == 1)
				return false;
			for (auto it = m.rbegin(); it != m.rend(); ++it) {
				auto nx = std::next(it);
				uint64_t lo = nx == m.rend() ? 0 : nx->first + nx->second.n;
				uint64_t hi = std::min(it->first, last + 1);
				if (hi <= lo || hi - lo < s)
					continue;
				uint64_t at = (hi - s) & ~(a - 1);
				if (phase == 0 ? hi - lo >= s + a - 1 : at >= lo) {
					*pfn = at;
					return true;
				}
			}
		}
		return false;
	}
};

struct WalkState {
	const TreeModel *m;
	std::map<uint64_t, Blk>::const_iterator it;
	bool bad = false;
};

int walk_fn(void *ctx, uint64_t start, uint64_t n, vfd_ikind kind)
{
	auto *w = static_cast<WalkState *>(ctx);
	if (w->it == w->m->m.end() || w->it->first != start || w->it->second.n != n ||
	    w->it->second.kind != kind) {
		w->bad = true;
		return 1;
	}
	++w->it;
	return 0;
}

class Tree
{
public:
	vfd_itree t;
	TreeModel model;

	explicit Tree(uint64_t end)
	{
		EXPECT_EQ(vfd_itree_init(&t), 0);
		model.end = end;
		insert(end, 0, VFD_IK_RESV);
	}
	~Tree()
	{
		vfd_itree_fini(&t);
	}
	Tree(const Tree &) = delete;
	Tree &operator=(const Tree &) = delete;

	void insert(uint64_t pfn, uint64_t n, vfd_ikind kind)
	{
		bool grew;
		ASSERT_EQ(vfd_itree_prepare(&t, &grew), 0);
		vfd_itree_insert(&t, pfn, n, kind);
		model.m[pfn] = { n, kind };
	}

	// Insert where a search under a random limit and alignment puts a block
	// (the insertion then follows the search's recorded path); false if
	// the search finds no room, which the model must agree with.
	bool insert_found(std::mt19937_64 &rng)
	{
		uint64_t s = 1 + rng() % 64, a = 1ull << (rng() % 7);
		uint64_t last = rng() % 2 ? model.end - 1 : rng() % model.end;
		vfd_ifit q = { s, a, last };
		uint64_t at = 0, want = 0;
		int rc = vfd_itree_find_fit(&t, &q, &at);
		bool ok = model.find(s, a, last, &want);
		EXPECT_EQ(rc == 0, ok);
		if (rc || !ok)
			return false;
		EXPECT_EQ(at, want);
		bool grew;
		EXPECT_EQ(vfd_itree_prepare(&t, &grew), 0);
		vfd_itree_insert(&t, at, s, rand_kind(rng));
		model.m[at] = { s, VFD_IK_UNUSED };
		vfd_ikind kind;
		uint64_t n;
		EXPECT_TRUE(vfd_itree_lookup(&t, at, &kind, &n));
		model.m[at].kind = kind;
		return true;
	}

	static vfd_ikind rand_kind(std::mt19937_64 &rng)
	{
		static const vfd_ikind k[] = { VFD_IK_ALLOC, VFD_IK_FAST, VFD_IK_RESV };
		return k[rng() % 3];
	}

	void remove(uint64_t pfn)
	{
		vfd_itree_remove(&t, pfn);
		model.m.erase(pfn);
	}

	// Everything observable, against the model; false on the first difference.
	bool same(std::mt19937_64 &rng, const char **what)
	{
		if (vfd_itree_check(&t, what))
			return false;
		WalkState w{ &model, model.m.begin() };
		vfd_itree_walk(&t, walk_fn, &w);
		*what = "walk differs";
		if (w.bad || w.it != model.m.end())
			return false;
		*what = "largest gap differs";
		if (vfd_itree_max_gap(&t) != model.largest())
			return false;
		for (int k = 0; k < 4; k++) {
			// a busy start, a free page, anything
			uint64_t pfn = rng() % (model.end + 2), n = 1 + rng() % 80;
			if (k < 3) {
				auto it = model.m.lower_bound(rng() % model.end);
				if (it != model.m.end())
					pfn = it->first;
			}
			vfd_ikind kind;
			uint64_t got;
			auto it = model.m.find(pfn);
			bool found = vfd_itree_lookup(&t, pfn, &kind, &got);
			*what = "lookup differs";
			if (found != (it != model.m.end()) ||
			    (found && (kind != it->second.kind || got != it->second.n)))
				return false;
			*what = "range check differs";
			if (vfd_itree_range_free(&t, pfn, n, &kind) != model.free_range(pfn, n))
				return false;
			uint64_t s = 1 + rng() % 64, a = 1ull << (rng() % 7);
			uint64_t last = rng() % 4 ? model.end - 1 : rng() % model.end;
			vfd_ifit q = { s, a, last };
			uint64_t at = 0, want = 0;
			int rc = vfd_itree_find_fit(&t, &q, &at);
			bool ok = model.find(s, a, last, &want);
			*what = "search differs";
			if ((rc == 0) != ok || (ok && at != want))
				return false;
		}
		return true;
	}
};

vfd_ikind rand_kind(std::mt19937_64 &rng)
{
	return Tree::rand_kind(rng);
}

// A random busy block that is not the anchor.
uint64_t pick(const TreeModel &m, std::mt19937_64 &rng)
{
	auto it = m.m.lower_bound(rng() % m.end);
	if (it == m.m.end() || it->first == m.end)
		it = m.m.begin();
	return it->first;
}

// A free block of up to 64 pages, near a random place; false if none found.
bool free_spot(const TreeModel &m, std::mt19937_64 &rng, uint64_t *pfn, uint64_t *n)
{
	for (int tries = 0; tries < 64; tries++) {
		uint64_t p = rng() % m.end, len = 1 + rng() % 64;
		if (m.free_range(p, len)) {
			*pfn = p;
			*n = len;
			return true;
		}
		if (m.free_range(p, 1)) {
			*pfn = p;
			*n = 1;
			return true;
		}
	}
	return false;
}

uint64_t scaled(uint64_t n)
{
	return (uint64_t)((double)n * vfdma_test_scale() * (VFDMA_TEST_SANITIZED ? 0.25 : 1.0));
}

} // namespace

// Random inserts and removes that keep the tree between 0 and a few thousand
// blocks, checked after every operation.
TEST(IovaTree, RandomAgainstModelEveryStep)
{
	uint64_t seed = vfdma_test_seed("IovaTree.RandomAgainstModelEveryStep");
	std::mt19937_64 rng(seed);
	// dense enough that searches often need their second phase or fail
	Tree tr(1ull << 16);
	const uint64_t ops = scaled(16000);
	uint64_t ins = 0, rem = 0, found = 0;

	for (uint64_t op = 0; op < ops; op++) {
		// phases that grow and shrink the tree: splits, spills, then merges
		bool grow = (op / 4000) % 2 == 0;
		uint64_t pfn, n;
		if (rng() % 100 < (grow ? 75u : 25u) || tr.model.m.size() < 2) {
			if (rng() % 2 && tr.insert_found(rng)) {
				found++;
			} else if (free_spot(tr.model, rng, &pfn, &n)) {
				tr.insert(pfn, n, rand_kind(rng));
				ins++;
			}
		} else if (tr.model.m.size() > 1) {
			tr.remove(pick(tr.model, rng));
			rem++;
		}
		const char *what = "ok";
		if (!tr.same(rng, &what))
			FAIL() << "op " << op << ": " << what;
	}
	fprintf(stderr, "[  TREE    ] %llu inserts, %llu where a search put them, %llu removes, "
			"%u nodes at the end\n",
		(unsigned long long)ins, (unsigned long long)found, (unsigned long long)rem,
		tr.t.nodes_live);
}

// Runs in one direction (what the placement rule produces), then frees in
// ascending, descending and random order, down to the anchor alone.
TEST(IovaTree, SequentialRunsAndTeardown)
{
	uint64_t seed = vfdma_test_seed("IovaTree.SequentialRunsAndTeardown");
	std::mt19937_64 rng(seed);
	for (int order = 0; order < 3; order++) {
		Tree tr(1ull << 24);
		const uint64_t n = scaled(4000);
		std::vector<uint64_t> at;
		// descending from the top, ascending from the bottom, and holes
		// filled afterwards at random
		for (uint64_t i = 0; i < n; i++) {
			uint64_t top = (1ull << 24) - 8 * (i + 1), bottom = (1ull << 23) + 8 * i;
			tr.insert(top, 4, VFD_IK_ALLOC);
			tr.insert(bottom, 4, VFD_IK_FAST);
			at.push_back(top);
			at.push_back(bottom);
		}
		for (uint64_t i = 0; i < n; i++) {
			uint64_t p = (1ull << 24) - 8 * (1 + rng() % n) + 4 + rng() % 4;
			if (tr.model.free_range(p, 1)) {
				tr.insert(p, 1, VFD_IK_RESV);
				at.push_back(p);
			}
		}
		const char *what = "ok";
		ASSERT_TRUE(tr.same(rng, &what)) << what;
		if (order == 0)
			std::sort(at.begin(), at.end());
		else if (order == 1)
			std::sort(at.rbegin(), at.rend());
		else
			std::shuffle(at.begin(), at.end(), rng);
		for (size_t i = 0; i < at.size(); i++) {
			tr.remove(at[i]);
			if (i % 97 == 0 && !tr.same(rng, &what))
				FAIL() << "order " << order << " remove " << i << ": " << what;
		}
		ASSERT_TRUE(tr.same(rng, &what)) << what;
		EXPECT_EQ(tr.t.nodes_live, 1u);
		EXPECT_EQ(tr.t.entries, 1u);
	}
}

// A large fragmented tree (2N blocks, a random half removed, then churn),
// checked every few hundred operations.
TEST(IovaTree, LargeFragmentedChurn)
{
	uint64_t seed = vfdma_test_seed("IovaTree.LargeFragmentedChurn");
	std::mt19937_64 rng(seed);
	Tree tr(1ull << 30);
	const uint64_t n = scaled(12000);
	std::vector<uint64_t> at;
	uint64_t top = 1ull << 30;

	for (uint64_t i = 0; i < 2 * n; i++) {
		uint64_t len = 1 + rng() % 64;
		top -= len;
		tr.insert(top, len, rand_kind(rng));
		at.push_back(top);
	}
	std::shuffle(at.begin(), at.end(), rng);
	for (uint64_t i = n; i < 2 * n; i++)
		tr.remove(at[i]);
	const char *what = "ok";
	ASSERT_TRUE(tr.same(rng, &what)) << what;
	for (uint64_t op = 0; op < 3 * n; op++) {
		uint64_t pfn, len;
		if (rng() % 32 == 0) // the model's search is linear: not too often
			tr.insert_found(rng);
		else if (rng() % 3 && free_spot(tr.model, rng, &pfn, &len))
			tr.insert(pfn, len, rand_kind(rng));
		else if (tr.model.m.size() > 1)
			tr.remove(pick(tr.model, rng));
		if (op % 503 == 0 && !tr.same(rng, &what))
			FAIL() << "op " << op << ": " << what;
	}
	ASSERT_TRUE(tr.same(rng, &what)) << what;
	fprintf(stderr, "[  TREE    ] %zu blocks in %u nodes\n", tr.model.m.size(),
		tr.t.nodes_live);
}

// What the allocator does to the tree, the highest fit for random sizes
// and frees at random, with enough blocks that every update path runs:
// passes to a neighbour, splits with the new node on either side of the
// full one, merges.  Checked every few hundred operations, and the paths
// counted, so that a change that stops exercising one shows here.
TEST(IovaTree, PlacementChurnEveryUpdatePath)
{
	uint64_t seed = vfdma_test_seed("IovaTree.PlacementChurnEveryUpdatePath");
	std::mt19937_64 rng(seed);
	Tree tr(1ull << 30);
	const uint64_t n = 3000, churn = 60000;
	std::vector<uint64_t> live;
	const char *what = "ok";

	auto alloc = [&]() {
		uint64_t s = 1 + rng() % 64, at = 0;
		vfd_ifit q = { s, 1, tr.model.end - 1 };
		ASSERT_EQ(vfd_itree_find_fit(&tr.t, &q, &at), 0);
		tr.insert(at, s, VFD_IK_ALLOC); /* follows the search's path */
		live.push_back(at);
	};
	auto release = [&]() {
		size_t j = rng() % live.size();
		tr.remove(live[j]);
		live[j] = live.back();
		live.pop_back();
	};
	for (uint64_t i = 0; i < 2 * n; i++)
		alloc();
	for (uint64_t i = 0; i < n; i++)
		release();
	ASSERT_TRUE(tr.same(rng, &what)) << what;
	for (uint64_t op = 0; op < churn; op++) {
		alloc();
		release();
		if (op % 401 == 0 && !tr.same(rng, &what))
			FAIL() << "op " << op << ": " << what;
	}
	ASSERT_TRUE(tr.same(rng, &what)) << what;
	const auto &st = tr.t.stats;
	fprintf(stderr, "[  TREE    ] %zu blocks in %u nodes; %llu passes, %llu splits after, "
			"%llu before, %llu merges\n",
		live.size(), tr.t.nodes_live, (unsigned long long)st.passes,
		(unsigned long long)st.splits, (unsigned long long)st.splits_before,
		(unsigned long long)st.merges);
	EXPECT_GT(st.passes, 0u);
	EXPECT_GT(st.splits, 0u);
	EXPECT_GT(st.splits_before, 0u);
	EXPECT_GT(st.merges, 0u);
}
