// SPDX-License-Identifier: BSD-3-Clause
// IOVA allocator against a reference model: a sorted map of busy blocks
// searched linearly, implementing the placement rule of vfdma/iova.h from its
// text.  With caches off every result (address, errno, stats, the whole tree)
// must match exactly; with caches on, results must satisfy the invariants
// (aligned, under the limit, in a usable range, overlapping nothing live) and
// -ENOSPC is only allowed when the model finds no fit.  Then a multithreaded
// stress test.
#include "vfdma_test.h"

#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

extern "C" int vfd_iova_check(struct vfdma_iova_space *sp, const char **what);
extern "C" int vfd_iova_walk(struct vfdma_iova_space *sp,
			     int (*fn)(void *ctx, uint64_t start, uint64_t n, int kind),
			     void *ctx);

namespace {

constexpr uint64_t MAXU = ~0ull;
enum { K_ALLOC = 1, K_FAST = 2, K_RESV = 3 };

uint64_t pow2up(uint64_t x)
{
	uint64_t p = 1;
	while (p < x)
		p <<= 1;
	return p;
}

struct Model {
	uint64_t g, shift;
	std::vector<std::pair<uint64_t, uint64_t>> ranges; // usable pages [lo, hi)
	uint64_t end = 0, usable = 0;
	struct Blk {
		uint64_t n;
		int kind;
	};
	std::map<uint64_t, Blk> m; // busy blocks by first page, holes included
	uint64_t nalloc = 0, nresv = 0, busy = 0, resv = 0;

	Model(uint64_t granule, const std::vector<vfdma_iova_range> &r) : g(granule)
	{
		shift = __builtin_ctzll(g);
		for (auto &x : r) {
			uint64_t lo = x.first / g + (x.first % g != 0);
			uint64_t hi = x.last / g + (x.last % g == g - 1);
			if (lo < hi) {
				ranges.push_back({ lo, hi });
				usable += hi - lo;
			}
		}
		end = ranges.back().second;
		uint64_t prev = 0;
		for (auto &x : ranges) {
			if (x.first > prev)
				m[prev] = { x.first - prev, K_RESV };
			prev = x.second;
		}
	}

	bool inside(uint64_t pfn, uint64_t n) const
	{
		for (auto &x : ranges)
			if (pfn >= x.first && pfn < x.second)
				return n <= x.second - pfn;
		return false;
	}

	bool overlaps(uint64_t pfn, uint64_t n) const
	{
		auto it = m.lower_bound(pfn);
		if (it != m.end() && it->first < pfn + n)
			return true;
		if (it != m.begin()) {
			--it;
			if (it->first + it->second.n > pfn)
				return true;
		}
		return false;
	}

	// phase 1: gap >= s + a - 1; phase 2: an a-aligned block of s fits
	static bool fits(int phase, uint64_t lo, uint64_t hi, uint64_t s, uint64_t a)
	{
		if (hi <= lo || hi - lo < s)
			return false;
		if (phase == 1)
			return hi - lo >= s + a - 1;
		return ((hi - s) & ~(a - 1)) >= lo;
	}

	bool find(int phase, uint64_t s, uint64_t a, uint64_t last, uint64_t *pfn) const
	{
		auto it = m.upper_bound(last);
		uint64_t hi = it == m.end() ? end : it->first;
		for (;;) {
			uint64_t lo = 0;
			auto p = it;
			if (p != m.begin()) {
				--p;
				lo = p->first + p->second.n;
			}
			uint64_t h2 = std::min(hi, last + 1);
			if (fits(phase, lo, h2, s, a)) {
				*pfn = (h2 - s) & ~(a - 1);
				return true;
			}
			if (it == m.begin())
				return false;
			it = p;
			hi = it->first;
		}
	}

	// Validation shared by alloc: 0 or errno, with the request in pages.
	int alloc_args(uint64_t size, uint64_t align, uint64_t limit, uint64_t *s, uint64_t *a,
		       uint64_t *last, bool *fast) const
	{
		if (!size || align < g || (align & (align - 1)))
			return -EINVAL;
		if (size > MAXU - (g - 1))
			return -EOVERFLOW;
		uint64_t l = limit >> shift;
		if ((limit & (g - 1)) != g - 1) {
			if (!l)
				return -ERANGE;
			l--;
		}
		if (l < ranges[0].first)
			return -ERANGE;
		*last = std::min(l, end - 1);
		*s = (size + g - 1) >> shift;
		*a = align >> shift;
		*fast = *s <= 32;
		if (*fast) {
			*s = pow2up(*s);
			*a = std::max(*a, *s);
		}
		return 0;
	}

	int alloc(uint64_t size, uint64_t align, uint64_t limit, uint64_t *iova)
	{
		uint64_t s, a, last, pfn;
		bool fast;
		int rc = alloc_args(size, align, limit, &s, &a, &last, &fast);
		if (rc)
			return rc;
		if (!find(1, s, a, last, &pfn) && (a == 1 || !find(2, s, a, last, &pfn)))
			return -ENOSPC;
		add(pfn, s, fast ? K_FAST : K_ALLOC);
		*iova = pfn << shift;
		return 0;
	}

	void add(uint64_t pfn, uint64_t n, int kind)
	{
		m[pfn] = { n, kind };
		if (kind == K_RESV) {
			nresv++;
			resv += n;
		} else {
			nalloc++;
			busy += n;
		}
	}

	int range_args(uint64_t iova, uint64_t size, uint64_t *pfn, uint64_t *n) const
	{
		if (!size || (iova & (g - 1)))
			return -EINVAL;
		if (size > MAXU - (g - 1))
			return -EOVERFLOW;
		*n = (size + g - 1) >> shift;
		*pfn = iova >> shift;
		if (*n - 1 > (MAXU >> shift) - *pfn)
			return -EOVERFLOW;
		return 0;
	}

	int place(uint64_t iova, uint64_t size, bool is_resv)
	{
		uint64_t pfn, n;
		int rc = range_args(iova, size, &pfn, &n);
		if (rc)
			return rc;
		if (!inside(pfn, n))
			return -ERANGE;
		if (overlaps(pfn, n))
			return -EBUSY;
		add(pfn, n, is_resv ? K_RESV : K_ALLOC);
		return 0;
	}

	int free(uint64_t iova, uint64_t size)
	{
		uint64_t pfn, n;
		int rc = range_args(iova, size, &pfn, &n);
		if (rc)
			return rc;
		if (pfn >= end)
			return -ENOENT;
		auto it = m.find(pfn);
		if (it == m.end())
			return -ENOENT;
		if (it->second.kind == K_RESV)
			return -EPERM;
		uint64_t want = it->second.kind == K_FAST ? (n <= 32 ? pow2up(n) : 0) : n;
		if (want != it->second.n)
			return -EMSGSIZE;
		nalloc--;
		busy -= it->second.n;
		m.erase(it);
		return 0;
	}

	uint64_t largest() const
	{
		uint64_t prev = 0, best = 0;
		for (auto &x : m) {
			best = std::max(best, x.first - prev);
			prev = x.first + x.second.n;
		}
		return std::max(best, end - prev);
	}
};

vfdma_iova_stats get_stats(vfdma_iova_space *sp)
{
	vfdma_iova_stats st;
	EXPECT_EQ(vfdma_iova_get_stats(sp, &st), 0);
	return st;
}

struct WalkCmp {
	const Model *m;
	std::map<uint64_t, Model::Blk>::const_iterator it;
	bool anchor_seen = false;
	uint64_t bad_at = MAXU;
};

int walk_cmp(void *ctx, uint64_t start, uint64_t n, int kind)
{
	auto *w = static_cast<WalkCmp *>(ctx);
	if (w->it == w->m->m.end()) {
		if (start != w->m->end || n != 0 || kind != K_RESV || w->anchor_seen)
			w->bad_at = start;
		w->anchor_seen = true;
		return 0;
	}
	if (start != w->it->first || n != w->it->second.n || kind != w->it->second.kind) {
		w->bad_at = start;
		return 1;
	}
	++w->it;
	return 0;
}

struct Config {
	const char *name;
	uint64_t granule;
	std::vector<vfdma_iova_range> ranges;
	std::vector<uint64_t> limits;
	unsigned max_live;
};

std::vector<Config> configs()
{
	return {
		// small and fragmented, odd boundaries: exhaustion all the time
		{ "small",
		  4096,
		  { { 0x10000, 0x1fffffff }, { 0x20100000, 0x23ffefff }, { 0x23fff800, 0x24ffffff } },
		  { MAXU, 0x1fffffff, 0x20ffffff, 0x21000fff, 0x22345678, 0x24000fff, 0x10fff },
		  1500 },
		// x86 around 4 GiB: MSI hole, 32-bit limit
		{ "x86",
		  4096,
		  { { 0xfc000000, 0xfedfffff }, { 0xfef00000, 0x101ffffff } },
		  { MAXU, 0xffffffff, 0xfeefffff, 0xfe000000, 0x100fff000 },
		  1500 },
		// 64 KiB granule, many ranges
		{ "g64k",
		  65536,
		  { { 0, 0xffffff }, { 0x2000000, 0x2ffffff }, { 0x3010000, 0x3ffffff },
		    { 0x5000000, 0x5ffffff } },
		  { MAXU, 0x2ffffff, 0x37fffff, 0xffffff },
		  800 },
	};
}

struct Live {
	uint64_t iova, size;
};

// One randomised run; returns the number of operations done.
void run_diff(const Config &cfg, uint64_t seed, uint64_t ops, bool cache, bool bytemap = false)
{
	std::mt19937_64 rng(seed);
	auto rnd = [&](uint64_t n) { return n ? rng() % n : 0; };
	Model model(cfg.granule, cfg.ranges);
	vfdma_iova_space *sp = vfdma_iova_space_create(
		cfg.granule, cfg.ranges.data(), cfg.ranges.size(),
		(cache ? 0 : VFDMA_IOVA_NOCACHE) | (bytemap ? VFDMA_IOVA_BYTEMAP : 0));
	ASSERT_NE(sp, nullptr);
	const uint64_t g = cfg.granule;
	std::vector<Live> live;
	std::vector<Live> freed; // for double frees
	uint64_t diffs = 0, nospc = 0, oks = 0;

	auto fail = [&](uint64_t op, const char *what) {
		ADD_FAILURE() << cfg.name << (cache ? " cache" : " nocache") << " op " << op
			      << ": " << what;
		diffs++;
	};
	auto rand_size = [&]() -> uint64_t {
		unsigned r = rnd(100);
		uint64_t pages = r < 70 ? 1 + rnd(32) : r < 95 ? 33 + rnd(300) : 1 + rnd(3000);
		return pages * g - (rnd(4) ? 0 : rnd(g));
	};

	for (uint64_t op = 0; op < ops && diffs < 10; op++) {
		unsigned r = rnd(100);
		bool want_free = live.size() > cfg.max_live;
		if (r < 45 && !want_free) {
			uint64_t size = rand_size();
			uint64_t align = rnd(4) ? g : g << rnd(8);
			uint64_t limit = cfg.limits[rnd(cfg.limits.size())];
			if (!rnd(20))
				limit = (model.end << model.shift) - 1 - rnd(model.end) * g;
			uint64_t a = 0, b = 0;
			int rl = vfdma_iova_alloc(sp, size, align, limit, &a);
			if (!cache) {
				int rm = model.alloc(size, align, limit, &b);
				if (rl != rm || (!rl && a != b)) {
					fail(op, "alloc differs");
					fprintf(stderr, "alloc(%#llx, %#llx, %#llx): lib %d %#llx, model %d %#llx\n",
						(unsigned long long)size, (unsigned long long)align,
						(unsigned long long)limit, rl, (unsigned long long)a, rm,
						(unsigned long long)b);
				}
			} else {
				uint64_t s, al, last, pfn;
				bool fast;
				int rm = model.alloc_args(size, align, limit, &s, &al, &last, &fast);
				if (rl == -ENOSPC && !rm) {
					if (model.find(2, s, al, last, &pfn))
						fail(op, "ENOSPC although a block fits");
				} else if (rl != rm) {
					fail(op, "alloc errno differs");
				} else if (!rl) {
					pfn = a >> model.shift;
					if (a % g || pfn % al || pfn + s - 1 > last || !model.inside(pfn, s) ||
					    model.overlaps(pfn, s))
						fail(op, "bad block from alloc");
					else
						model.add(pfn, s, fast ? K_FAST : K_ALLOC);
				}
			}
			if (!rl) {
				live.push_back({ a, size });
				oks++;
			} else if (rl == -ENOSPC) {
				nospc++;
			}
		} else if (r < 87 || want_free) {
			unsigned v = rnd(100);
			if (live.empty() || v >= 90) {
				// a bogus free: double free, never allocated, in a hole
				Live x = !freed.empty() && v < 97 ? freed[rnd(freed.size())]
								   : Live{ rnd(model.end + 8) * g, 1 + rnd(40 * g) };
				int rl = vfdma_iova_free(sp, x.iova, x.size);
				int rm = model.free(x.iova, x.size);
				if (rl != rm && !(cache && rm == -ENOENT && rl == -EMSGSIZE))
					fail(op, "bogus free differs");
				if (!rl) {
					for (size_t i = 0; i < live.size(); i++)
						if (live[i].iova == x.iova) {
							live[i] = live.back();
							live.pop_back();
							break;
						}
				}
				continue;
			}
			size_t i = rnd(live.size());
			Live x = live[i];
			uint64_t size = x.size;
			if (v < 5)
				size = x.size + g * (1 + rnd(40)); // partial/over free
			else if (v < 8)
				size = x.size > g ? x.size - g : x.size + g;
			uint64_t at = v >= 8 && v < 10 ? x.iova + g : x.iova;
			int rl = vfdma_iova_free(sp, at, size);
			int rm = model.free(at, size);
			// with caches, a cached block may start there: the size is checked first
			if (rl != rm && !(cache && rm == -ENOENT && rl == -EMSGSIZE)) {
				fail(op, "free differs");
				fprintf(stderr, "free(%#llx, %#llx): lib %d model %d\n",
					(unsigned long long)at, (unsigned long long)size, rl, rm);
			}
			if (!rl) {
				for (size_t j = 0; j < live.size(); j++)
					if (live[j].iova == at) {
						freed.push_back(live[j]);
						live[j] = live.back();
						live.pop_back();
						break;
					}
				if (freed.size() > 64)
					freed.erase(freed.begin());
			}
		} else if (r < 97) {
			uint64_t at = rnd(model.end + 4) * g + (rnd(50) ? 0 : rnd(g));
			uint64_t size = (1 + rnd(rnd(4) ? 40 : 400)) * g - (rnd(4) ? 0 : rnd(g));
			int rl = vfdma_iova_alloc_fixed(sp, at, size);
			int rm = model.place(at, size, false);
			if (rl != rm)
				fail(op, "fixed alloc differs");
			if (!rl)
				live.push_back({ at, size });
		} else if (r < 98 && model.nresv < 200) {
			uint64_t at = rnd(model.end + 4) * g;
			uint64_t size = (1 + rnd(4)) * g;
			int rl = vfdma_iova_reserve(sp, at, size);
			int rm = model.place(at, size, true);
			if (rl != rm)
				fail(op, "reserve differs");
		} else {
			// bad arguments
			uint64_t iova;
			struct {
				int lib, model;
			} res[] = {
				{ vfdma_iova_alloc(sp, 0, g, MAXU, &iova), model.alloc(0, g, MAXU, &iova) },
				{ vfdma_iova_alloc(sp, g, 3 * g, MAXU, &iova), model.alloc(g, 3 * g, MAXU, &iova) },
				{ vfdma_iova_alloc(sp, g, g / 2, MAXU, &iova), model.alloc(g, g / 2, MAXU, &iova) },
				{ vfdma_iova_alloc(sp, MAXU - rnd(g - 1), g, MAXU, &iova), -EOVERFLOW },
				{ vfdma_iova_alloc(sp, g, g, rnd(model.ranges[0].first << model.shift), &iova),
				  -ERANGE },
				{ vfdma_iova_alloc_fixed(sp, g + 1 + rnd(g - 1), g), -EINVAL },
				{ vfdma_iova_free(sp, 1 + rnd(g - 1), g), -EINVAL },
				{ vfdma_iova_free(sp, g, 0), -EINVAL },
			};
			for (size_t j = 0; j < sizeof(res) / sizeof(res[0]); j++)
				if (res[j].lib != res[j].model) {
					fail(op, "bad argument result differs");
					fprintf(stderr, "case %zu: lib %d model %d\n", j, res[j].lib,
						res[j].model);
				}
		}

		if (op % 4096 == 0 || op + 1 == ops) {
			const char *what;
			if (vfd_iova_check(sp, &what))
				fail(op, what);
			vfdma_iova_stats st = get_stats(sp);
			if (st.allocs != model.nalloc || st.reservations != model.nresv ||
			    st.free_bytes != (model.usable - model.busy - model.resv) * g)
				fail(op, "stats differ");
			if (!cache) {
				if (st.largest_free != model.largest() * g)
					fail(op, "largest free block differs");
				WalkCmp w{ &model, model.m.begin() };
				vfd_iova_walk(sp, walk_cmp, &w);
				if (w.bad_at != MAXU || !w.anchor_seen || w.it != model.m.end())
					fail(op, "tree differs from the model");
			} else if (st.largest_free > model.largest() * g) {
				fail(op, "largest free block too large");
			}
		}
	}
	// Free everything: the space must be as it started.
	for (auto &x : live)
		EXPECT_EQ(vfdma_iova_free(sp, x.iova, x.size), 0);
	EXPECT_EQ(vfdma_iova_flush(sp), 0);
	vfdma_iova_stats st = get_stats(sp);
	EXPECT_EQ(st.allocs, 0u);
	EXPECT_EQ(st.cached, 0u);
	EXPECT_EQ(st.free_bytes, (model.usable - model.resv) * g);
	const char *what;
	EXPECT_EQ(vfd_iova_check(sp, &what), 0) << what;
	EXPECT_EQ(diffs, 0u);
	fprintf(stderr, "[  DIFF    ] %s %s%s: %llu ops, %llu allocs ok, %llu ENOSPC\n", cfg.name,
		cache ? "cache" : "nocache", bytemap ? " bytemap" : "", (unsigned long long)ops,
		(unsigned long long)oks, (unsigned long long)nospc);
	vfdma_iova_space_destroy(sp);
}

// ASan runs the full size in seconds; TSan is ~10x slower, so by default it
// runs a tenth (VFDMA_TEST_SCALE=1 gives the full size there too).
#if defined(__SANITIZE_THREAD__)
#define IOVA_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IOVA_TEST_TSAN 1
#endif
#endif
#ifndef IOVA_TEST_TSAN
#define IOVA_TEST_TSAN 0
#endif

uint64_t scaled(uint64_t n)
{
	double s = vfdma_test_scale();
	if (IOVA_TEST_TSAN && !getenv("VFDMA_TEST_SCALE"))
		s = 0.1;
	return (uint64_t)(n * s);
}

} // namespace

// >= 1,000,000 operations with exact comparison (caches off).
TEST(IovaDiff, ExactAgainstModel)
{
	uint64_t seed = vfdma_test_seed("IovaDiff.ExactAgainstModel");
	auto cfgs = configs();
	uint64_t per = scaled(1000000) / cfgs.size() + 1;
	for (size_t i = 0; i < cfgs.size(); i++)
		run_diff(cfgs[i], seed + i, per, false);
	// a byte per block in the live map must not change any result
	run_diff(cfgs[0], seed + 10, per / 2, false, true);
}

// Caches on: invariants instead of exact addresses.
TEST(IovaDiff, InvariantsWithCaches)
{
	uint64_t seed = vfdma_test_seed("IovaDiff.InvariantsWithCaches");
	auto cfgs = configs();
	uint64_t per = scaled(300000) / cfgs.size() + 1;
	for (size_t i = 0; i < cfgs.size(); i++)
		run_diff(cfgs[i], seed + i, per, true);
	run_diff(cfgs[1], seed + 10, per, true, true);
}

// Threads allocate and free concurrently (small cached sizes, large ones,
// limits, frees of blocks other threads allocated); a page ownership map
// catches any overlap as it happens.  Afterwards the space must be exactly as
// it started.
namespace {

void stress(uint64_t seed, unsigned flags)
{
	const uint64_t g = 4096, base = 0xfe000000;
	std::vector<vfdma_iova_range> rs = { { base, 0xfedfffff }, { 0xfef00000, 0x1007fffff } };
	vfdma_iova_space *sp = vfdma_iova_space_create(g, rs.data(), rs.size(), flags);
	ASSERT_NE(sp, nullptr);
	vfdma_iova_stats start = get_stats(sp);
	const uint64_t pages = (0x100800000 - base) / g;
	std::vector<std::atomic<uint8_t>> owner(pages);
	for (auto &o : owner)
		o.store(0);
	std::mutex xmu;
	std::vector<Live> exchange;
	std::atomic<uint64_t> errors{ 0 }, allocs{ 0 }, nospc{ 0 };
	const unsigned nthreads = 4;
	const uint64_t iters = scaled(200000);

	auto take = [&](uint64_t iova, uint64_t n) {
		for (uint64_t p = 0; p < n; p++)
			if (owner[(iova - base) / g + p].exchange(1))
				errors++;
	};
	auto give = [&](uint64_t iova, uint64_t n) {
		for (uint64_t p = 0; p < n; p++)
			owner[(iova - base) / g + p].store(0);
	};
	auto worker = [&](unsigned id) {
		std::mt19937_64 rng(seed * 31 + id);
		std::vector<Live> mine;
		for (uint64_t i = 0; i < iters; i++) {
			unsigned r = rng() % 100;
			if (r < 50 && mine.size() < 400) {
				uint64_t n = r < 40 ? 1 + rng() % 32 : 33 + rng() % 200;
				uint64_t limit = rng() % 3 ? ~0ull : 0xffffffff;
				uint64_t iova;
				int rc = vfdma_iova_alloc(sp, n * g, g, limit, &iova);
				if (rc == -ENOSPC) {
					nospc++;
					continue;
				}
				if (rc) {
					errors++;
					continue;
				}
				uint64_t rn = n <= 32 ? pow2up(n) : n;
				if (iova % (rn <= 32 ? rn * g : g) || iova + rn * g - 1 > limit ||
				    (iova <= 0xfeefffff && iova + rn * g > 0xfee00000))
					errors++;
				take(iova, rn);
				allocs++;
				if (rng() % 8 == 0) {
					std::lock_guard<std::mutex> l(xmu);
					exchange.push_back({ iova, n * g });
				} else {
					mine.push_back({ iova, n * g });
				}
			} else if (r < 95 && !mine.empty()) {
				size_t k = rng() % mine.size();
				Live x = mine[k];
				mine[k] = mine.back();
				mine.pop_back();
				uint64_t n = x.size / g;
				give(x.iova, n <= 32 ? pow2up(n) : n);
				if (vfdma_iova_free(sp, x.iova, x.size))
					errors++;
			} else {
				Live x{ 0, 0 };
				{
					std::lock_guard<std::mutex> l(xmu);
					if (!exchange.empty()) {
						x = exchange.back();
						exchange.pop_back();
					}
				}
				if (x.size) {
					uint64_t n = x.size / g;
					give(x.iova, n <= 32 ? pow2up(n) : n);
					if (vfdma_iova_free(sp, x.iova, x.size))
						errors++;
				}
			}
		}
		for (auto &x : mine) {
			uint64_t n = x.size / g;
			give(x.iova, n <= 32 ? pow2up(n) : n);
			if (vfdma_iova_free(sp, x.iova, x.size))
				errors++;
		}
	};
	std::vector<std::thread> th;
	for (unsigned i = 0; i < nthreads; i++)
		th.emplace_back(worker, i);
	for (auto &t : th)
		t.join();
	for (auto &x : exchange)
		EXPECT_EQ(vfdma_iova_free(sp, x.iova, x.size), 0);
	EXPECT_EQ(errors.load(), 0u);
	EXPECT_EQ(vfdma_iova_flush(sp), 0);
	vfdma_iova_stats end = get_stats(sp);
	EXPECT_EQ(end.allocs, 0u);
	EXPECT_EQ(end.cached, 0u);
	EXPECT_EQ(end.free_bytes, start.free_bytes);
	EXPECT_EQ(end.largest_free, start.largest_free);
	const char *what;
	EXPECT_EQ(vfd_iova_check(sp, &what), 0) << what;
	fprintf(stderr, "[  STRESS  ] %u threads%s, %llu allocs, %llu ENOSPC\n", nthreads,
		flags & VFDMA_IOVA_BYTEMAP ? " (bytemap)" : "", (unsigned long long)allocs.load(),
		(unsigned long long)nospc.load());
	vfdma_iova_space_destroy(sp);
}

} // namespace

TEST(IovaStress, ThreadsEndWhereTheyStarted)
{
	uint64_t seed = vfdma_test_seed("IovaStress.ThreadsEndWhereTheyStarted");
	stress(seed, 0);
}

// The same with a byte per block in the live map.  (In the default one,
// neighbouring blocks share live-map bytes: concurrent marks and clears of
// bits in one byte must not lose each other, which the test above covers.)
TEST(IovaStress, ByteLiveMap)
{
	uint64_t seed = vfdma_test_seed("IovaStress.ByteLiveMap");
	stress(seed, VFDMA_IOVA_BYTEMAP);
}
