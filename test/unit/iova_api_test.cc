// SPDX-License-Identifier: BSD-3-Clause
// IOVA allocator: argument checking (every bad input gets its documented
// errno and changes nothing), limit and alignment semantics, placement,
// fault injection.
#include "vfdma_test.h"

#include <cerrno>
#include <vector>

extern "C" int vfd_iova_check(struct vfdma_iova_space *sp, const char **what);
extern "C" const void *vfd_iova_live_addr(struct vfdma_iova_space *sp, uint64_t iova,
					  uint64_t size, unsigned *bit);

namespace {

constexpr uint64_t G = 4096;
constexpr uint64_t MSI_LO = 0xfee00000, MSI_HI = 0xfeefffff;

struct Space {
	vfdma_iova_space *sp = nullptr;
	Space(uint64_t granule, std::vector<vfdma_iova_range> r, unsigned flags = VFDMA_IOVA_NOCACHE)
	{
		sp = vfdma_iova_space_create(granule, r.data(), r.size(), flags);
	}
	~Space() { vfdma_iova_space_destroy(sp); }
	operator vfdma_iova_space *() const { return sp; }
};

vfdma_iova_stats stats(vfdma_iova_space *sp)
{
	vfdma_iova_stats st;
	EXPECT_EQ(vfdma_iova_get_stats(sp, &st), 0);
	return st;
}

bool operator==(const vfdma_iova_stats &a, const vfdma_iova_stats &b)
{
	return a.granule == b.granule && a.allocs == b.allocs &&
	       a.reservations == b.reservations && a.usable_bytes == b.usable_bytes &&
	       a.free_bytes == b.free_bytes && a.largest_free == b.largest_free &&
	       a.cached == b.cached && a.metadata_bytes == b.metadata_bytes;
}

void check_tree(vfdma_iova_space *sp)
{
	const char *what;
	EXPECT_EQ(vfd_iova_check(sp, &what), 0) << what;
}

// Flushes the caches and checks that nothing is allocated any more.
void expect_empty_after_flush(vfdma_iova_space *sp)
{
	EXPECT_EQ(vfdma_iova_flush(sp), 0);
	vfdma_iova_stats st = stats(sp);
	EXPECT_EQ(st.allocs, 0u);
	EXPECT_EQ(st.free_bytes, st.usable_bytes);
	check_tree(sp);
}

// Runs a failing call and checks its errno and that stats did not move.
#define EXPECT_FAILS_UNCHANGED(sp, call, err)                                          \
	do {                                                                           \
		vfdma_iova_stats before_ = stats(sp);                                  \
		EXPECT_EQ((call), -(err)) << #call;                                    \
		vfdma_iova_stats after_ = stats(sp);                                   \
		EXPECT_TRUE(before_ == after_) << #call << " changed the stats";       \
		check_tree(sp);                                                        \
	} while (0)

// A 39-bit space with the x86 MSI hole, as VFIO reports it.
std::vector<vfdma_iova_range> x86_ranges()
{
	return { { 0, MSI_LO - 1 }, { MSI_HI + 1, (1ull << 39) - 1 } };
}

} // namespace

TEST(Iova, CreateRejectsBadArguments)
{
	vfdma_iova_range r[2] = { { 0x1000, 0xffff }, { 0x20000, 0x2ffff } };
	struct {
		uint64_t granule;
		const vfdma_iova_range *ranges;
		size_t n;
		unsigned flags;
	} bad[] = {
		{ 0, r, 2, 0 },      { 2048, r, 2, 0 },    { 4096 + 1, r, 2, 0 },
		{ 12288, r, 2, 0 },  { 4096, nullptr, 2, 0 }, { 4096, r, 0, 0 },
		{ 4096, r, 2, 0x80 },
	};
	for (auto &b : bad) {
		errno = 0;
		EXPECT_EQ(vfdma_iova_space_create(b.granule, b.ranges, b.n, b.flags), nullptr);
		EXPECT_EQ(errno, EINVAL);
	}
	vfdma_iova_range unsorted[2] = { { 0x20000, 0x2ffff }, { 0x1000, 0xffff } };
	vfdma_iova_range overlap[2] = { { 0x1000, 0x20000 }, { 0x20000, 0x2ffff } };
	vfdma_iova_range inverted[1] = { { 0x2000, 0x1000 } };
	vfdma_iova_range tiny[1] = { { 0x1001, 0x1fff } }; // nothing left after clipping
	for (auto *rr : { unsorted, overlap }) {
		errno = 0;
		EXPECT_EQ(vfdma_iova_space_create(4096, rr, 2, 0), nullptr);
		EXPECT_EQ(errno, EINVAL);
	}
	for (auto *rr : { inverted, tiny }) {
		errno = 0;
		EXPECT_EQ(vfdma_iova_space_create(4096, rr, 1, 0), nullptr);
		EXPECT_EQ(errno, EINVAL);
	}
	vfdma_iova_space_destroy(nullptr);
}

TEST(Iova, CreateClipsRangesToTheGranule)
{
	Space sp(4096, { { 0x1001, 0x4fff }, { 0x10000, 0x12ffe }, { ~0ull - 0xffff, ~0ull } });
	ASSERT_NE(sp.sp, nullptr);
	vfdma_iova_stats st = stats(sp);
	// [0x2000,0x5000) + [0x10000,0x12000) + the top 16 pages
	EXPECT_EQ(st.usable_bytes, 0x3000ull + 0x2000 + 0x10000);
	EXPECT_EQ(st.free_bytes, st.usable_bytes);
	EXPECT_EQ(st.largest_free, 0x10000ull);
	EXPECT_EQ(st.allocs, 0u);
	uint64_t iova;
	EXPECT_EQ(vfdma_iova_alloc(sp, 0x10000, G, ~0ull, &iova), 0);
	EXPECT_EQ(iova, ~0ull - 0xffff);
	check_tree(sp);
}

TEST(Iova, WholeSixtyFourBitSpace)
{
	Space sp(4096, { { 0, ~0ull } });
	ASSERT_NE(sp.sp, nullptr);
	vfdma_iova_stats st = stats(sp);
	EXPECT_EQ(st.usable_bytes, ~0ull); // saturated: 2^64 bytes
	uint64_t iova;
	EXPECT_EQ(vfdma_iova_alloc(sp, G, G, ~0ull, &iova), 0);
	EXPECT_EQ(iova, ~0ull - G + 1);
	EXPECT_EQ(vfdma_iova_free(sp, iova, G), 0);
	EXPECT_EQ(vfdma_iova_alloc(sp, 1ull << 62, 1ull << 62, ~0ull, &iova), 0);
	EXPECT_EQ(iova, 3ull << 62);
	check_tree(sp);
}

TEST(Iova, AllocRejectsBadArguments)
{
	Space sp(G, x86_ranges());
	uint64_t iova = 0x1234;
	ASSERT_NE(sp.sp, nullptr);
	ASSERT_EQ(vfdma_iova_alloc(sp, 5 * G, G, ~0ull, &iova), 0); // some state
	uint64_t keep = iova;
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(nullptr, G, G, ~0ull, &iova), EINVAL);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, G, G, ~0ull, nullptr), EINVAL);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, 0, G, ~0ull, &iova), EINVAL);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, G, 0, ~0ull, &iova), EINVAL);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, G, 3 * G, ~0ull, &iova), EINVAL);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, G, G / 2, ~0ull, &iova), EINVAL);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, ~0ull, G, ~0ull, &iova), EOVERFLOW);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, ~0ull - G + 2, G, ~0ull, &iova),
			       EOVERFLOW);
	EXPECT_EQ(iova, keep); // untouched on failure
	// too big for the space: no room, not a bad argument
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, 1ull << 40, G, ~0ull, &iova), ENOSPC);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, ~0ull - G + 1, G, ~0ull, &iova),
			       ENOSPC);
	// the only 2^63-aligned address in the space is 0
	EXPECT_EQ(vfdma_iova_alloc(sp, G, 1ull << 63, ~0ull, &iova), 0);
	EXPECT_EQ(iova, 0u);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, G, 1ull << 63, ~0ull, &iova), ENOSPC);
	EXPECT_EQ(vfdma_iova_free(sp, 0, G), 0);
}

TEST(Iova, LimitBelowEveryRange)
{
	Space sp(G, { { 0x100000, 0x1fffff } });
	uint64_t iova;
	ASSERT_NE(sp.sp, nullptr);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, G, G, 0, &iova), ERANGE);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, G, G, 0xffffe, &iova), ERANGE);
	// a limit that does not cover a whole granule of the first range
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, G, G, 0x100ffe, &iova), ERANGE);
	EXPECT_EQ(vfdma_iova_alloc(sp, G, G, 0x100fff, &iova), 0);
	EXPECT_EQ(iova, 0x100000u);
	// the limit covers a granule but the request does not fit under it
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, 2 * G, G, 0x101fff, &iova), ENOSPC);
}

TEST(Iova, LimitsAndMsiHole)
{
	Space sp(G, x86_ranges());
	uint64_t iova;
	ASSERT_NE(sp.sp, nullptr);
	// 32-bit DMA mask: highest block below 4 GiB
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, 0xffffffff, &iova), 0);
	EXPECT_EQ(iova, 0xfffff000u);
	// 39-bit: the top of the space
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, (1ull << 39) - 1, &iova), 0);
	EXPECT_EQ(iova, (1ull << 39) - G);
	// no limit beyond the space is the same as its top
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, ~0ull, &iova), 0);
	EXPECT_EQ(iova, (1ull << 39) - 2 * G);
	// a limit inside the MSI window: the block goes below the hole
	ASSERT_EQ(vfdma_iova_alloc(sp, 2 * G, G, 0xfee80000, &iova), 0);
	EXPECT_EQ(iova, MSI_LO - 2 * G);
	// a limit that is not granule-aligned
	ASSERT_EQ(vfdma_iova_alloc(sp, 64 * G, G, 0xfff00800, &iova), 0);
	EXPECT_EQ(iova, 0xfff00000 - 64 * G);
	EXPECT_LE(iova + 64 * G - 1, 0xfff00800u);
	// 64 pages aligned to 1 MiB under 4 GiB lands just below the blocks above
	ASSERT_EQ(vfdma_iova_alloc(sp, 64 * G, 1 << 20, 0xffffffff, &iova), 0);
	EXPECT_EQ(iova % (1 << 20), 0u);
	EXPECT_EQ(iova, 0xffe00000u);
	// fill the space between the MSI hole and 4 GiB: nothing lands in the hole
	for (;;) {
		if (vfdma_iova_alloc(sp, 32 * G, G, 0xffffffff, &iova))
			break;
		EXPECT_TRUE(iova + 32 * G - 1 < MSI_LO || iova > MSI_HI) << std::hex << iova;
		EXPECT_LE(iova + 32 * G - 1, 0xffffffffu);
	}
	check_tree(sp);
}

TEST(Iova, SmallSizesRoundToPowerOfTwoAndAlignNaturally)
{
	Space sp(G, { { 0x100000, 0x1fffff } });
	uint64_t a, b, c;
	ASSERT_NE(sp.sp, nullptr);
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, ~0ull, &a), 0);
	EXPECT_EQ(a, 0x1ff000u);
	ASSERT_EQ(vfdma_iova_alloc(sp, 3 * G, G, ~0ull, &b), 0); // rounds to 4 pages
	EXPECT_EQ(b, 0x1fb000u & ~(4 * G - 1));
	EXPECT_EQ(b % (4 * G), 0u);
	ASSERT_EQ(vfdma_iova_alloc(sp, 33 * G, G, ~0ull, &c), 0); // not rounded
	EXPECT_EQ(c, b - 33 * G);
	vfdma_iova_stats st = stats(sp);
	EXPECT_EQ(st.allocs, 3u);
	EXPECT_EQ(st.free_bytes, st.usable_bytes - (1 + 4 + 33) * G);
	// free accepts any size that rounds the same way
	EXPECT_EQ(vfdma_iova_free(sp, b, 4 * G - 100), 0);
	EXPECT_EQ(vfdma_iova_free(sp, a, 1), 0);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, c, 34 * G), EMSGSIZE);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, c, 32 * G), EMSGSIZE);
	EXPECT_EQ(vfdma_iova_free(sp, c, 33 * G - 5), 0);
	st = stats(sp);
	EXPECT_EQ(st.allocs, 0u);
	EXPECT_EQ(st.free_bytes, st.usable_bytes);
	EXPECT_EQ(st.largest_free, st.usable_bytes);
}

TEST(Iova, FreeRejectsBadFrees)
{
	Space sp(G, x86_ranges());
	uint64_t a, big;
	ASSERT_NE(sp.sp, nullptr);
	ASSERT_EQ(vfdma_iova_alloc(sp, 4 * G, G, ~0ull, &a), 0);
	ASSERT_EQ(vfdma_iova_alloc(sp, 100 * G, G, ~0ull, &big), 0);
	ASSERT_EQ(vfdma_iova_reserve(sp, 0x10000, 2 * G), 0);
	ASSERT_EQ(vfdma_iova_alloc_fixed(sp, 0x20000, 3 * G), 0);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(nullptr, a, 4 * G), EINVAL);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a, 0), EINVAL);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a + 1, 4 * G), EINVAL);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a, ~0ull), EOVERFLOW);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, ~0ull - G + 1, 2 * G), EOVERFLOW);
	// never allocated
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, 0x40000000, 4 * G), ENOENT);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a + G, G), ENOENT);   // inside
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, big + G, G), ENOENT);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, ~0ull - G + 1, G), ENOENT); // past the end
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, MSI_LO + G, G), ENOENT);  // in the hole
	// partial frees
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a, G), EMSGSIZE);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a, 8 * G), EMSGSIZE);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, big, 99 * G), EMSGSIZE);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, big, 4 * G), EMSGSIZE);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, 0x20000, 4 * G), EMSGSIZE);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, 0x20000, 2 * G), EMSGSIZE);
	// reservations and holes are not allocations
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, 0x10000, 2 * G), EPERM);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, MSI_LO, MSI_HI - MSI_LO + 1), EPERM);
	// good frees, then double frees
	EXPECT_EQ(vfdma_iova_free(sp, a, 4 * G), 0);
	EXPECT_EQ(vfdma_iova_free(sp, big, 100 * G), 0);
	EXPECT_EQ(vfdma_iova_free(sp, 0x20000, 3 * G), 0);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a, 4 * G), ENOENT);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, big, 100 * G), ENOENT);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, 0x20000, 3 * G), ENOENT);
	vfdma_iova_stats st = stats(sp);
	EXPECT_EQ(st.allocs, 0u);
	EXPECT_EQ(st.reservations, 1u);
	EXPECT_EQ(st.free_bytes, st.usable_bytes - 2 * G);
}

TEST(Iova, DoubleFreeDetectedWithCaches)
{
	Space sp(G, x86_ranges(), 0);
	uint64_t a;
	ASSERT_NE(sp.sp, nullptr);
	ASSERT_EQ(vfdma_iova_alloc(sp, 2 * G, G, ~0ull, &a), 0);
	EXPECT_EQ(vfdma_iova_free(sp, a, 2 * G), 0);
	EXPECT_EQ(stats(sp).cached, 1u); // it went to the cache, not the tree
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a, 2 * G), ENOENT);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a, G), EMSGSIZE);
	uint64_t b;
	ASSERT_EQ(vfdma_iova_alloc(sp, 2 * G, G, ~0ull, &b), 0);
	EXPECT_EQ(b, a); // from the cache
	EXPECT_EQ(stats(sp).cached, 0u);
	EXPECT_EQ(vfdma_iova_free(sp, b, 2 * G), 0);
	EXPECT_EQ(vfdma_iova_flush(sp), 0);
	vfdma_iova_stats st = stats(sp);
	EXPECT_EQ(st.cached, 0u);
	EXPECT_EQ(st.free_bytes, st.usable_bytes);
	EXPECT_EQ(st.largest_free, (1ull << 39) - MSI_HI - 1);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a, 2 * G), ENOENT);
	EXPECT_EQ(vfdma_iova_flush(nullptr), -EINVAL);
	EXPECT_EQ(vfdma_iova_get_stats(nullptr, &st), -EINVAL);
	EXPECT_EQ(vfdma_iova_get_stats(sp, nullptr), -EINVAL);
}

// Neighbouring small blocks share live-map bytes (one bit each) unless
// VFDMA_IOVA_BYTEMAP: frees must still be validated one by one.
TEST(Iova, LiveMapValidatesNeighbours)
{
	for (unsigned flags : { 0u, (unsigned)VFDMA_IOVA_NOCACHE, (unsigned)VFDMA_IOVA_BYTEMAP,
				(unsigned)(VFDMA_IOVA_BYTEMAP | VFDMA_IOVA_NOCACHE) }) {
		Space sp(G, x86_ranges(), flags);
		uint64_t a[16];
		ASSERT_NE(sp.sp, nullptr);
		for (auto &x : a) // neighbours: they share live-map bytes
			ASSERT_EQ(vfdma_iova_alloc(sp, G, G, ~0ull, &x), 0);
		for (unsigned i = 0; i < 16; i += 2)
			EXPECT_EQ(vfdma_iova_free(sp, a[i], G), 0);
		for (unsigned i = 0; i < 16; i += 2)
			EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a[i], G), ENOENT);
		for (unsigned i = 1; i < 16; i += 2)
			EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a[i], 2 * G), EMSGSIZE);
		for (unsigned i = 1; i < 16; i += 2)
			EXPECT_EQ(vfdma_iova_free(sp, a[i], G), 0);
		expect_empty_after_flush(sp);
	}
}

// Threads on different cores usually hold neighbouring blocks: their live
// marks must not share a cache line, in either live map, or every
// alloc and free would move the line between the cores.
TEST(Iova, NeighboursLiveMarksOnDifferentLines)
{
	for (unsigned flags : { 0u, (unsigned)VFDMA_IOVA_BYTEMAP }) {
		Space sp(G, x86_ranges(), flags);
		ASSERT_NE(sp.sp, nullptr);
		for (uint64_t pages : { 1, 4, 32 }) {
			std::vector<uint64_t> a(64);
			std::vector<uintptr_t> line;
			for (auto &x : a)
				ASSERT_EQ(vfdma_iova_alloc(sp, pages * G, G, ~0ull, &x), 0);
			for (size_t i = 0; i < a.size(); i++) {
				unsigned bit = 99;
				auto p = (uintptr_t)vfd_iova_live_addr(sp, a[i], pages * G, &bit);
				ASSERT_NE(p, 0u);
				EXPECT_LT(bit, 8u);
				if (flags) {
					EXPECT_EQ(bit, 0u);
				}
				line.push_back(p / 64);
			}
			for (size_t i = 0; i + 1 < a.size(); i++) {
				// allocated one after the other: neighbours in the space
				EXPECT_EQ(a[i], a[i + 1] + pages * G) << i;
				EXPECT_NE(line[i], line[i + 1]) << pages << " pages, block " << i;
			}
			for (auto x : a)
				EXPECT_EQ(vfdma_iova_free(sp, x, pages * G), 0);
		}
		expect_empty_after_flush(sp);
	}
}

TEST(Iova, CachedBlocksHonourTheLimit)
{
	Space sp(G, x86_ranges(), 0);
	uint64_t hi, lo;
	ASSERT_NE(sp.sp, nullptr);
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, ~0ull, &hi), 0);
	ASSERT_GT(hi, 0xffffffffu);
	ASSERT_EQ(vfdma_iova_free(sp, hi, G), 0); // cached, above 4 GiB
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, 0xffffffff, &lo), 0);
	EXPECT_LE(lo, 0xffffffffu - G + 1);
	ASSERT_EQ(vfdma_iova_free(sp, lo, G), 0);
	EXPECT_EQ(stats(sp).cached, 2u);
}

// Every small size rounds up to the next power of two of granules and is
// aligned to it, with caches (fast path) and without (tree).
TEST(Iova, EverySmallSizeRoundsUp)
{
	for (unsigned flags : { 0u, (unsigned)VFDMA_IOVA_NOCACHE }) {
		Space sp(G, x86_ranges(), flags);
		ASSERT_NE(sp.sp, nullptr);
		for (uint64_t n = 1; n <= VFDMA_IOVA_CACHED_MAX; n++) {
			uint64_t blk = 1, a, b;
			while (blk < n)
				blk *= 2;
			for (uint64_t size : { n * G, n * G - G + 1 }) {
				// twice: the second one comes from the cache if there is one
				for (int rep = 0; rep < 2; rep++) {
					vfdma_iova_stats before = stats(sp);
					ASSERT_EQ(vfdma_iova_alloc(sp, size, G, ~0ull, &a), 0);
					EXPECT_EQ(a % (blk * G), 0u) << n;
					vfdma_iova_stats mid = stats(sp);
					EXPECT_EQ(mid.allocs, before.allocs + 1);
					if (blk < VFDMA_IOVA_CACHED_MAX)
						EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a, 2 * blk * G), EMSGSIZE);
					ASSERT_EQ(vfdma_iova_alloc(sp, blk * G, G, ~0ull, &b), 0);
					EXPECT_TRUE(b + blk * G <= a || a + blk * G <= b) << n; // no overlap
					EXPECT_EQ(vfdma_iova_free(sp, b, blk * G), 0);
					EXPECT_EQ(vfdma_iova_free(sp, a, blk * G), 0) << n;
				}
			}
		}
		expect_empty_after_flush(sp);
	}
}

// The cached fast path takes only what it can decide alone; each of these
// must go to the general path and get its answer there.
TEST(Iova, CachedFastPathEdges)
{
	const uint64_t top = (1ull << 39) - G;
	Space sp(G, x86_ranges(), 0);
	uint64_t a, b;
	ASSERT_NE(sp.sp, nullptr);
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, ~0ull, &a), 0);
	ASSERT_EQ(a, top);
	ASSERT_EQ(vfdma_iova_free(sp, a, G), 0); // cached: the top page
	// a limit one byte or one page short of the top bounds the cache too
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, (1ull << 39) - 2, &b), 0);
	EXPECT_LT(b, top);
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, top - 1, &a), 0);
	EXPECT_LT(a, top);
	EXPECT_NE(a, b);
	// a limit at the very top does not
	uint64_t c;
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, (1ull << 39) - 1, &c), 0);
	EXPECT_EQ(c, top);
	EXPECT_EQ(vfdma_iova_free(sp, c, G), 0);
	// an alignment above the block size is not served from the cache
	ASSERT_EQ(vfdma_iova_alloc(sp, G, 4 * G, ~0ull, &c), 0);
	EXPECT_EQ(c % (4 * G), 0u);
	EXPECT_EQ(stats(sp).cached, 1u);
	EXPECT_EQ(vfdma_iova_free(sp, c, G), 0);
	// a size of the same class frees (3 pages round to 4); a bigger one does not
	uint64_t d;
	ASSERT_EQ(vfdma_iova_alloc(sp, 3 * G, G, ~0ull, &d), 0);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, d, 5 * G), EMSGSIZE);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, d + G, 3 * G), ENOENT); // inside the block
	EXPECT_EQ(vfdma_iova_free(sp, d, 4 * G), 0);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, d, 3 * G), ENOENT);
	// two spaces used in turn by one thread: each keeps its own blocks
	Space sp2(G, x86_ranges(), 0);
	ASSERT_NE(sp2.sp, nullptr);
	uint64_t e, f;
	ASSERT_EQ(vfdma_iova_alloc(sp2, G, G, ~0ull, &e), 0);
	ASSERT_EQ(vfdma_iova_free(sp2, e, G), 0);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, e, G), ENOENT); // sp's top is cached
	ASSERT_EQ(vfdma_iova_alloc(sp, G, G, ~0ull, &f), 0);
	EXPECT_FAILS_UNCHANGED(sp2, vfdma_iova_free(sp2, e, G), ENOENT);
	EXPECT_EQ(vfdma_iova_free(sp, f, G), 0);
	EXPECT_EQ(vfdma_iova_free(sp, a, G), 0);
	EXPECT_EQ(vfdma_iova_free(sp, b, G), 0);
	expect_empty_after_flush(sp);
	// the whole 64-bit space: no limit is above its top
	Space all(G, { { 0, ~0ull } }, 0);
	ASSERT_NE(all.sp, nullptr);
	ASSERT_EQ(vfdma_iova_alloc(all, G, G, ~0ull, &a), 0);
	ASSERT_EQ(vfdma_iova_free(all, a, G), 0);
	ASSERT_EQ(vfdma_iova_alloc(all, G, G, ~0ull, &b), 0);
	EXPECT_EQ(b, a);
	EXPECT_EQ(stats(all).cached, 0u);
	EXPECT_EQ(vfdma_iova_free(all, b, G), 0);
}

TEST(Iova, FixedAndReserve)
{
	Space sp(G, x86_ranges());
	uint64_t iova;
	ASSERT_NE(sp.sp, nullptr);
	for (auto fn : { vfdma_iova_alloc_fixed, vfdma_iova_reserve }) {
		EXPECT_FAILS_UNCHANGED(sp, fn(nullptr, 0x100000, G), EINVAL);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0x100000, 0), EINVAL);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0x100800, G), EINVAL);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0x100000, ~0ull), EOVERFLOW);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, ~0ull - G + 1, 2 * G), EOVERFLOW);
		// in the hole, straddling it, or past the end of the space
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, MSI_LO, G), ERANGE);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, MSI_LO - G, 2 * G), ERANGE);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, MSI_HI + 1 - G, 2 * G), ERANGE);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 1ull << 39, G), ERANGE);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, (1ull << 39) - G, 2 * G), ERANGE);
	}
	ASSERT_EQ(vfdma_iova_reserve(sp, 0x100000, 16 * G), 0);
	ASSERT_EQ(vfdma_iova_alloc_fixed(sp, 0x200000, 5 * G), 0);
	ASSERT_EQ(vfdma_iova_alloc_fixed(sp, MSI_HI + 1, G), 0);    // right after the hole
	ASSERT_EQ(vfdma_iova_alloc_fixed(sp, MSI_LO - G, G), 0);     // right before it
	ASSERT_EQ(vfdma_iova_alloc_fixed(sp, 0, G), 0);              // first page
	ASSERT_EQ(vfdma_iova_reserve(sp, (1ull << 39) - G, G), 0);   // last page
	for (auto fn : { vfdma_iova_alloc_fixed, vfdma_iova_reserve }) {
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0x100000, G), EBUSY);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0x10f000, 2 * G), EBUSY);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0xff000, 2 * G), EBUSY);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0xf0000, 0x100000), EBUSY);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0x204000, G), EBUSY);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0x1ff000, 2 * G), EBUSY);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, MSI_HI + 1, G), EBUSY);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, 0, 2 * G), EBUSY);
		EXPECT_FAILS_UNCHANGED(sp, fn(sp, (1ull << 39) - G, G), EBUSY);
	}
	// adjacent blocks are fine
	EXPECT_EQ(vfdma_iova_alloc_fixed(sp, 0x110000, G), 0);
	EXPECT_EQ(vfdma_iova_reserve(sp, 0xff000, G), 0);
	// alloc never returns reserved space: fill a small range completely
	Space small(G, { { 0x10000, 0x1ffff } });
	ASSERT_EQ(vfdma_iova_reserve(small, 0x18000, 4 * G), 0);
	uint64_t total = 0;
	while (vfdma_iova_alloc(small, G, G, ~0ull, &iova) == 0) {
		EXPECT_TRUE(iova < 0x18000 || iova >= 0x1c000);
		total += G;
	}
	EXPECT_EQ(total, 12 * G);
	vfdma_iova_stats st = stats(small);
	EXPECT_EQ(st.free_bytes, 0u);
	EXPECT_EQ(st.largest_free, 0u);
	EXPECT_EQ(st.reservations, 1u);
	check_tree(sp);
	check_tree(small);
}

TEST(Iova, FixedAllocMovesCachedBlocksAway)
{
	Space sp(G, { { 0x10000, 0x1ffff } }, 0);
	uint64_t a;
	ASSERT_NE(sp.sp, nullptr);
	ASSERT_EQ(vfdma_iova_alloc(sp, 4 * G, G, ~0ull, &a), 0);
	ASSERT_EQ(vfdma_iova_free(sp, a, 4 * G), 0); // cached
	EXPECT_EQ(vfdma_iova_alloc_fixed(sp, a + G, G), 0);
	EXPECT_EQ(stats(sp).cached, 0u);
	EXPECT_EQ(vfdma_iova_free(sp, a + G, G), 0);
	// and a full space flushes the caches before it says ENOSPC
	ASSERT_EQ(vfdma_iova_alloc(sp, 8 * G, G, ~0ull, &a), 0);
	ASSERT_EQ(vfdma_iova_free(sp, a, 8 * G), 0);
	uint64_t b;
	EXPECT_EQ(vfdma_iova_alloc(sp, 16 * G, G, ~0ull, &b), 0);
	EXPECT_EQ(vfdma_iova_free(sp, b, 16 * G), 0);
	EXPECT_EQ(vfdma_iova_alloc(sp, 16 * G, G, ~0ull, &b), 0);
	EXPECT_EQ(vfdma_iova_alloc(sp, 16 * G, G, ~0ull, &a), -ENOSPC);
	check_tree(sp);
}

TEST(Iova, LargerGranule)
{
	Space sp(1 << 16, { { 0, 0xfedfffff }, { 0xfef00000, 0xffffffff } });
	uint64_t a;
	ASSERT_NE(sp.sp, nullptr);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_alloc(sp, G, G, ~0ull, &a), EINVAL); // align < granule
	ASSERT_EQ(vfdma_iova_alloc(sp, G, 1 << 16, ~0ull, &a), 0);
	EXPECT_EQ(a, 0xffff0000u);
	EXPECT_FAILS_UNCHANGED(sp, vfdma_iova_free(sp, a + G, G), EINVAL);
	EXPECT_EQ(vfdma_iova_free(sp, a, 1), 0);
}

// Fault injection: every allocation a call makes may fail; each failure must
// be -ENOMEM (NULL + ENOMEM for create) with nothing changed.
TEST(Iova, FaultInjectionCreate)
{
	auto r = x86_ranges();
	r.push_back({ 1ull << 40, (1ull << 41) - 1 });
	vfdma_iova_space *sp = nullptr;
	unsigned points = vfdma_test_fail_each(
		VFD_SYS_ALLOC,
		[&] {
			errno = 0;
			sp = vfdma_iova_space_create(G, r.data(), r.size(), 0);
			if (!sp) {
				EXPECT_EQ(errno, ENOMEM);
			}
			return sp != nullptr;
		},
		[&] {
			vfdma_iova_space_destroy(sp);
			sp = nullptr;
		},
		[] {});
	EXPECT_GE(points, 3u);
}

namespace {

// A space whose tree arrays are exactly full, so that the next insertion
// must grow them: filled with descending blocks of 8, 16 and 24 pages until
// a probe (a fixed allocation, which needs no memory but the tree's) fails
// with -ENOMEM when the first allocation made fails, changing nothing.
// Small sizes of orders 0 and 2 have no live-map leaf yet, so their first
// allocation must create one.
struct FullChunk : Space {
	explicit FullChunk(unsigned flags) : Space(G, x86_ranges(), flags)
	{
		uint64_t iova;
		unsigned i = 0;
		for (; i < 100000; i++) {
			vfdma_iova_stats before = stats(sp);
			vfd_fault_arm(VFD_SYS_ALLOC, 1, ENOMEM, false);
			int rc = vfdma_iova_alloc_fixed(sp, 0x100000, G);
			vfd_fault_disarm();
			if (rc == -ENOMEM) {
				EXPECT_TRUE(stats(sp) == before);
				break;
			}
			EXPECT_EQ(rc, 0);
			EXPECT_EQ(vfdma_iova_free(sp, 0x100000, G), 0);
			EXPECT_EQ(vfdma_iova_alloc(sp, (i % 3 + 1) * 8 * G, G, ~0ull, &iova), 0);
		}
		EXPECT_LT(i, 100000u) << "the tree never needed memory";
		check_tree(sp);
	}
};

// Runs op under fail-the-Nth-allocation for every N it reaches: a failure is
// -ENOMEM with the stats (metadata included) and the tree as before.
template <typename Op, typename Undo>
unsigned fault_each(vfdma_iova_space *sp, Op op, Undo undo)
{
	vfdma_iova_stats before;
	return vfdma_test_fail_each(
		VFD_SYS_ALLOC,
		[&] {
			before = stats(sp);
			int rc = op();
			if (rc) {
				EXPECT_EQ(rc, -ENOMEM);
			}
			return rc == 0;
		},
		undo,
		[&] {
			EXPECT_TRUE(stats(sp) == before) << "a failed call changed the stats";
			check_tree(sp);
		});
}

} // namespace

TEST(Iova, FaultInjectionAlloc)
{
	for (unsigned flags : { (unsigned)VFDMA_IOVA_NOCACHE, 0u }) {
		for (uint64_t size : { G, 3 * G, 33 * G, 1000 * G }) {
			FullChunk sp(flags);
			uint64_t got = 0;
			unsigned points = fault_each(
				sp, [&] { return vfdma_iova_alloc(sp, size, G, 0xffffffff, &got); },
				[&] { EXPECT_EQ(vfdma_iova_free(sp, got, size), 0); });
			EXPECT_GE(points, size <= 4 * G ? 2u : 1u) << size;
			// a following normal operation works
			ASSERT_EQ(vfdma_iova_alloc(sp, size, G, ~0ull, &got), 0);
			ASSERT_EQ(vfdma_iova_free(sp, got, size), 0);
			check_tree(sp);
		}
	}
}

TEST(Iova, FaultInjectionFixedAndReserve)
{
	for (bool resv : { false, true }) {
		FullChunk sp(VFDMA_IOVA_NOCACHE);
		unsigned points = fault_each(
			sp,
			[&] {
				return resv ? vfdma_iova_reserve(sp, 0x100000, 5 * G)
					    : vfdma_iova_alloc_fixed(sp, 0x100000, 5 * G);
			},
			[&] {
				if (!resv) {
					EXPECT_EQ(vfdma_iova_free(sp, 0x100000, 5 * G), 0);
				}
			});
		EXPECT_GE(points, 1u);
		EXPECT_EQ(vfdma_iova_alloc_fixed(sp, 0x200000, G), 0);
		check_tree(sp);
	}
}
