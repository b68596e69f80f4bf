// SPDX-License-Identifier: BSD-3-Clause
// Hugepage arenas: input validation, the page-size fallback (made
// deterministic with fault injection, and on real huge pages where the test
// can reserve them), placement verification, and a fault-injection sweep
// that proves a failed create leaves no descriptor, mapping or lock behind.
#include "vfdma_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace
{
constexpr uint64_t K4 = 4096, M2 = 2ull << 20, G1 = 1ull << 30;

std::string hp_dir(uint64_t pgsize)
{
	return "/sys/kernel/mm/hugepages/hugepages-" + std::to_string(pgsize >> 10) + "kB/";
}

long read_num(const std::string &path)
{
	std::ifstream f(path);
	long v = -1;
	f >> v;
	return f ? v : -1;
}

bool write_num(const std::string &path, long v)
{
	std::ofstream f(path);
	f << v;
	f.flush();
	return (bool)f;
}

// Reserves @count more huge pages of @pgsize for the test's lifetime and
// puts the previous number back afterwards.  ok() is false (and the test
// should skip) when the kernel would not give them.
// The machine's huge-page counts are shared by every process: tests that
// change or count them (here, and test/dpdk/run.sh with flock(1)) hold this
// lock, so that two test runs on one machine cannot undo each other's
// reservations.
struct HugeLock {
	// flock() locks belong to an open file: nested holders in this process
	// share the one descriptor instead of waiting on themselves.
	static inline int fd = -1, depth = 0;
	HugeLock()
	{
		if (depth++ == 0) {
			fd = open("/tmp/vfdma-hugepages.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
			if (fd >= 0)
				flock(fd, LOCK_EX);
		}
	}
	~HugeLock()
	{
		if (--depth == 0 && fd >= 0) {
			close(fd);
			fd = -1;
		}
	}
	HugeLock(const HugeLock &) = delete;
	HugeLock &operator=(const HugeLock &) = delete;
};

struct HugeReserve {
	HugeLock lock;
	std::string path;
	long old = -1;
	bool got = false;
	HugeReserve(uint64_t pgsize, long count)
	{
		path = hp_dir(pgsize) + "nr_hugepages";
		old = read_num(path);
		if (old < 0)
			return;
		long want_free = read_num(hp_dir(pgsize) + "free_hugepages") + count;
		write_num(path, old + count);
		got = read_num(hp_dir(pgsize) + "free_hugepages") >= want_free;
	}
	~HugeReserve()
	{
		if (old < 0)
			return;
		if (!write_num(path, old)) {
			ADD_FAILURE() << "could not restore " << path << " to " << old;
		}
		EXPECT_EQ(read_num(path), old) << path << " not restored";
	}
	bool ok() const
	{
		return got;
	}
};

#define SKIP_UNLESS_RESERVED(r, what)                                                  \
	do {                                                                           \
		if (!(r).ok()) {                                                       \
			fprintf(stderr, "\n*** SKIP: could not reserve %s (not root, or " \
					"no free memory); the real huge-page path is "     \
					"NOT tested here ***\n\n",                         \
				what);                                                 \
			GTEST_SKIP() << "cannot reserve " << what;                     \
		}                                                                      \
	} while (0)

long free_huge(uint64_t pgsize)
{
	return read_num(hp_dir(pgsize) + "free_hugepages");
}

// What a failed create could leave behind: descriptors, mappings, locked memory.
struct Leftovers {
	int fds = 0, maps = 0;
	long locked_kb = 0, free_2m = 0;
	Leftovers()
	{
		DIR *d = opendir("/proc/self/fd");
		while (d && readdir(d))
			fds++;
		if (d)
			closedir(d);
		// Mappings an arena makes: its memory (a hugetlb memfd, or shared
		// anonymous memory) and its address-space reservation (PROT_NONE,
		// a few MiB here).  Other mappings come and go with the heap, and
		// ASan's allocator splits its huge PROT_NONE regions as it grows.
		std::ifstream m("/proc/self/maps");
		for (std::string l; std::getline(m, l);) {
			unsigned long lo = 0, hi = 0;
			sscanf(l.c_str(), "%lx-%lx", &lo, &hi);
			maps += l.find("vfdma-arena") != std::string::npos ||
				l.find("/dev/zero") != std::string::npos ||
				(l.find(" ---p ") != std::string::npos && hi - lo < (1ul << 32));
		}
		std::ifstream s("/proc/self/status");
		for (std::string l; std::getline(s, l);)
			if (l.rfind("VmLck:", 0) == 0)
				locked_kb = std::stol(l.substr(6));
		free_2m = free_huge(M2);
	}
	bool operator==(const Leftovers &o) const
	{
		if (getenv("VFDMA_TEST_DEBUG"))
			fprintf(stderr, "fds %d/%d maps %d/%d lck %ld/%ld free2m %ld/%ld\n", fds,
				o.fds, maps, o.maps, locked_kb, o.locked_kb, free_2m, o.free_2m);
		return fds == o.fds && maps == o.maps && locked_kb == o.locked_kb &&
		       free_2m == o.free_2m;
	}
};

vfdma_arena_info info_of(vfdma_arena *a)
{
	vfdma_arena_info i = {};
	EXPECT_EQ(vfdma_arena_get_info(a, &i), 0);
	return i;
}

// The memory is there, writable, and holds what was written.
void check_memory(const vfdma_arena_info &i)
{
	auto *p = static_cast<volatile uint8_t *>(i.addr);
	for (uint64_t off = 0; off < i.size; off += i.size / 16 + K4)
		p[off] = (uint8_t)(off >> 12);
	p[i.size - 1] = 0xa5;
	for (uint64_t off = 0; off < i.size; off += i.size / 16 + K4)
		EXPECT_EQ(p[off], (uint8_t)(off >> 12));
	EXPECT_EQ(p[i.size - 1], 0xa5);
}

vfdma_arena_opts opts_pg(uint64_t pgsizes, unsigned flags = 0)
{
	vfdma_arena_opts o = {};
	o.pgsizes = pgsizes;
	o.flags = flags;
	return o;
}
} // namespace

TEST(Arena, RejectsBadInput)
{
	vfdma_arena_opts o = {};
	errno = 0;
	EXPECT_EQ(vfdma_arena_create(0, VFDMA_NUMA_ANY, nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_arena_create(1ull << 46, VFDMA_NUMA_ANY, nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(vfdma_arena_create(M2, -2, nullptr), nullptr);
	EXPECT_EQ(errno, EINVAL);
	o.flags = 1u << 7;
	EXPECT_EQ(vfdma_arena_create(M2, VFDMA_NUMA_ANY, &o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	o = opts_pg(1ull << 16);
	EXPECT_EQ(vfdma_arena_create(M2, VFDMA_NUMA_ANY, &o), nullptr);
	EXPECT_EQ(errno, EINVAL);
	// nodes this machine does not have
	EXPECT_EQ(vfdma_arena_create(M2, 1000, nullptr), nullptr);
	EXPECT_EQ(errno, ENODEV);
	EXPECT_EQ(vfdma_arena_create(M2, 1 << 20, nullptr), nullptr);
	EXPECT_EQ(errno, ENODEV);

	vfdma_arena_info i;
	EXPECT_EQ(vfdma_arena_get_info(nullptr, &i), -EINVAL);
	EXPECT_EQ(vfdma_arena_verify(nullptr, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_arena_destroy(nullptr), 0);
	int node = 7;
	EXPECT_EQ(vfdma_numa_node_of(nullptr, K4, &node), -EINVAL);
	EXPECT_EQ(vfdma_numa_node_of(&node, 0, &node), -EINVAL);
	EXPECT_EQ(vfdma_numa_node_of(&node, 4, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_numa_node_of((void *)~0ull, K4, &node), -EINVAL);
	EXPECT_EQ(node, 7);
}

// With no huge page of either size to be had (memfd_create(MFD_HUGETLB)
// fails every time), a 1 GiB request tries 1 GiB, then 2 MiB, then takes
// 4 KiB pages.
TEST(Arena, FallsBackTo4KWhenNoHugePages)
{
	vfd_fault_arm(VFD_SYS_MEMFD, 1, ENOMEM, true);
	vfdma_arena *a = vfdma_arena_create(G1, 0, nullptr);
	unsigned long memfds = vfd_fault_calls(VFD_SYS_MEMFD);
	vfd_fault_disarm();
	ASSERT_NE(a, nullptr) << strerror(errno);
	EXPECT_EQ(memfds, 2u) << "1 GiB and 2 MiB were tried first";
	auto i = info_of(a);
	EXPECT_EQ(i.page_size, K4);
	EXPECT_EQ(i.size, G1);
	EXPECT_EQ((uintptr_t)i.addr % M2, 0u) << "aligned for 2 MiB IOMMU pages anyway";
	EXPECT_EQ(i.node_requested, 0);
	EXPECT_EQ(i.node, 0);
	check_memory(i);
	EXPECT_EQ(vfdma_arena_destroy(a), 0);

	// Without 4 KiB in the allowed set, the same conditions fail.
	vfdma_arena_opts o = opts_pg(VFDMA_PGSIZE_2M | VFDMA_PGSIZE_1G);
	vfd_fault_arm(VFD_SYS_MEMFD, 1, ENOMEM, true);
	errno = 0;
	EXPECT_EQ(vfdma_arena_create(G1, 0, &o), nullptr);
	vfd_fault_disarm();
	EXPECT_EQ(errno, ENOMEM);
}

// Page sizes larger than the request are not tried; sizes round up.
TEST(Arena, SmallRequestsSkipLargePagesAndRoundUp)
{
	vfd_fault_arm(VFD_SYS_MEMFD, 1, ENOMEM, true);
	vfdma_arena *a = vfdma_arena_create(3 * M2 + 5, VFDMA_NUMA_ANY, nullptr);
	EXPECT_EQ(vfd_fault_calls(VFD_SYS_MEMFD), 1u) << "only 2 MiB was tried";
	vfd_fault_disarm();
	ASSERT_NE(a, nullptr);
	auto i = info_of(a);
	EXPECT_EQ(i.page_size, K4);
	EXPECT_EQ(i.size, 3 * M2 + K4);
	EXPECT_EQ(i.node_requested, VFDMA_NUMA_ANY);
	EXPECT_GE(i.node, 0) << "unbound, but the node is still read back";
	EXPECT_EQ(vfdma_arena_destroy(a), 0);

	// A set with only 1 GiB pages tries them even for a small request.
	vfdma_arena_opts o = opts_pg(VFDMA_PGSIZE_1G);
	vfd_fault_arm(VFD_SYS_MEMFD, 1, ENOMEM, true);
	EXPECT_EQ(vfdma_arena_create(M2, VFDMA_NUMA_ANY, &o), nullptr);
	EXPECT_EQ(vfd_fault_calls(VFD_SYS_MEMFD), 1u);
	vfd_fault_disarm();

	o = opts_pg(VFDMA_PGSIZE_4K);
	a = vfdma_arena_create(100 * 1024, VFDMA_NUMA_ANY, &o);
	ASSERT_NE(a, nullptr);
	i = info_of(a);
	EXPECT_EQ(i.size, 25 * K4);
	EXPECT_EQ((uintptr_t)i.addr % K4, 0u);
	check_memory(i);
	vfdma_arena_destroy(a);
}

// Placement is read back from the kernel, and can be checked again later.
TEST(Arena, PlacementIsVerified)
{
	vfdma_arena_opts o = opts_pg(VFDMA_PGSIZE_4K);
	vfdma_arena *a = vfdma_arena_create(4 * M2, 0, &o);
	ASSERT_NE(a, nullptr);
	auto i = info_of(a);
	EXPECT_EQ(i.node, 0);
	int node = -5;
	EXPECT_EQ(vfdma_arena_verify(a, &node), 0);
	EXPECT_EQ(node, 0);
	node = -5;
	EXPECT_EQ(vfdma_numa_node_of((char *)i.addr + 5, i.size - 10, &node), 0);
	EXPECT_EQ(node, 0);
	// The kernel policy really is MPOL_BIND to node 0.
	int mode = -1;
	unsigned long mask[16] = {};
	ASSERT_EQ(vfd_get_mempolicy(&mode, mask, 1024 + 1, i.addr, 2 /* MPOL_F_ADDR */), 0);
	EXPECT_EQ(mode, 2 /* MPOL_BIND */);
	EXPECT_EQ(mask[0], 1ul);
	vfdma_arena_destroy(a);

	o.flags = VFDMA_ARENA_PREFERRED;
	a = vfdma_arena_create(M2, 0, &o);
	ASSERT_NE(a, nullptr);
	ASSERT_EQ(vfd_get_mempolicy(&mode, mask, 1024 + 1, info_of(a).addr, 2), 0);
	EXPECT_EQ(mode, 1 /* MPOL_PREFERRED */);
	EXPECT_EQ(info_of(a).flags, VFDMA_ARENA_PREFERRED);
	vfdma_arena_destroy(a);

	// Memory that was never touched has no node yet.
	void *p = mmap(nullptr, 2 * K4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(p, MAP_FAILED);
	EXPECT_EQ(vfdma_numa_node_of(p, 2 * K4, &node), -ENOENT);
	munmap(p, 2 * K4);
}

// Every system call and allocation of create failing in turn: each either
// falls back to the next page size (and succeeds) or fails, and a failure
// leaves nothing behind.
TEST(Arena, FaultSweepLeavesNothingBehind)
{
	HugeLock lock; // it counts the machine's free huge pages
	for (int node : {VFDMA_NUMA_ANY, 0}) {
		Leftovers before;
		vfdma_arena *a = nullptr;
		unsigned points = vfdma_test_fail_each(
			VFD_SYS_ANY,
			[&]() { return (a = vfdma_arena_create(3 * M2, node, nullptr)) != nullptr; },
			[&]() {
				check_memory(info_of(a));
				EXPECT_EQ(vfdma_arena_destroy(a), 0);
			},
			[&]() { EXPECT_TRUE(Leftovers() == before); });
		EXPECT_GE(points, node == 0 ? 5u : 4u);
		EXPECT_TRUE(Leftovers() == before);
	}
}

// The real thing, where the test can reserve huge pages (it puts the old
// numbers back): 2 MiB pages are used when there are any, 1 GiB pages when
// those are reserved, and the 1 GiB -> 2 MiB fallback happens because no
// 1 GiB page is free.
TEST(Arena, Real2MPages)
{
	HugeReserve r(M2, 8);
	SKIP_UNLESS_RESERVED(r, "8 huge pages of 2 MiB");
	long free0 = free_huge(M2);
	vfdma_arena *a = vfdma_arena_create(6 * M2, 0, nullptr);
	ASSERT_NE(a, nullptr);
	auto i = info_of(a);
	EXPECT_EQ(i.page_size, M2);
	EXPECT_EQ(i.size, 6 * M2);
	EXPECT_EQ((uintptr_t)i.addr % M2, 0u);
	EXPECT_EQ(i.node, 0);
	EXPECT_EQ(free_huge(M2), free0 - 6) << "the arena holds 6 huge pages";
	check_memory(i);
	int node = -1;
	EXPECT_EQ(vfdma_arena_verify(a, &node), 0);
	EXPECT_EQ(node, 0);
	EXPECT_EQ(vfdma_arena_destroy(a), 0);
	EXPECT_EQ(free_huge(M2), free0);

	// More than is free: 2 MiB fails, 4 KiB is used.
	if (free0 > 256) {
		fprintf(stderr, "\n*** SKIP (part): %ld 2 MiB pages are free here; not asking "
				"for more than that ***\n\n",
			free0);
		return;
	}
	a = vfdma_arena_create((uint64_t)(free0 + 1) * M2, 0, nullptr);
	ASSERT_NE(a, nullptr);
	EXPECT_EQ(info_of(a).page_size, K4);
	EXPECT_EQ(free_huge(M2), free0);
	vfdma_arena_destroy(a);
}

TEST(Arena, Real1GFallsBackTo2M)
{
	HugeLock lock;
	long free1g = free_huge(G1);
	if (free1g != 0) {
		fprintf(stderr, "\n*** SKIP: %ld 1 GiB pages are free on this host ***\n\n",
			free1g);
		GTEST_SKIP() << "1 GiB pages are free here";
	}
	HugeReserve r(M2, 512);
	SKIP_UNLESS_RESERVED(r, "512 huge pages of 2 MiB");
	vfdma_arena *a = vfdma_arena_create(G1, VFDMA_NUMA_ANY, nullptr);
	ASSERT_NE(a, nullptr);
	auto i = info_of(a);
	EXPECT_EQ(i.page_size, M2) << "no 1 GiB page is reserved: 2 MiB pages";
	EXPECT_EQ(i.size, G1);
	check_memory(i);
	vfdma_arena_destroy(a);
}

TEST(Arena, Real1GPages)
{
	HugeReserve r(G1, 1);
	SKIP_UNLESS_RESERVED(r, "one huge page of 1 GiB");
	long free0 = free_huge(G1);
	vfdma_arena *a = vfdma_arena_create(G1, 0, nullptr);
	ASSERT_NE(a, nullptr);
	auto i = info_of(a);
	EXPECT_EQ(i.page_size, G1);
	EXPECT_EQ((uintptr_t)i.addr % G1, 0u);
	EXPECT_EQ(i.node, 0);
	EXPECT_EQ(free_huge(G1), free0 - 1);
	check_memory(i);

	// The deterministic fallback on real pages: the 1 GiB attempt fails.
	HugeReserve r2(M2, 512);
	if (r2.ok()) {
		vfd_fault_arm(VFD_SYS_MEMFD, 1, ENOMEM, false);
		vfdma_arena *b = vfdma_arena_create(G1, 0, nullptr);
		vfd_fault_disarm();
		ASSERT_NE(b, nullptr);
		EXPECT_EQ(info_of(b).page_size, M2);
		vfdma_arena_destroy(b);
	}
	EXPECT_EQ(vfdma_arena_destroy(a), 0);
	EXPECT_EQ(free_huge(G1), free0);
}

// The same sweep on real 2 MiB pages: every failure in the huge-page attempt
// falls back or fails cleanly, and no huge page is left taken.
TEST(Arena, FaultSweepOnReal2MPages)
{
	HugeReserve r(M2, 4);
	SKIP_UNLESS_RESERVED(r, "4 huge pages of 2 MiB");
	Leftovers before;
	vfdma_arena *a = nullptr;
	unsigned huge_ok = 0;
	unsigned points = vfdma_test_fail_each(
		VFD_SYS_ANY, [&]() { return (a = vfdma_arena_create(4 * M2, 0, nullptr)) != nullptr; },
		[&]() {
			huge_ok += info_of(a).page_size == M2;
			EXPECT_EQ(vfdma_arena_destroy(a), 0);
		},
		[&]() { EXPECT_TRUE(Leftovers() == before); });
	EXPECT_GE(points, 8u);
	EXPECT_GE(huge_ok, 1u) << "the clean run gets huge pages";
	EXPECT_TRUE(Leftovers() == before);
}
