/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Hugepage arenas (include/vfdma/arena.h).
 *
 * One attempt per page size, largest first: reserve aligned address space,
 * map the memory into it, bind it to the node, populate, lock, verify where
 * the pages went.  A failed attempt undoes everything it did before the next
 * size is tried, so a failure at any step of any attempt leaves nothing.
 *
 * NUMA goes through the raw system calls in the syscall shim, not libnuma,
 * even when libnuma is configured: libnuma's mbind/move_pages wrappers are
 * the same system calls, but calls through the shim can be failed by the
 * fault-injection tests, and libnuma reports errors by printing to stderr
 * (numa_error/numa_warn), which a library that never prints cannot have.
 * What libnuma would add (parsing node lists, CPU-to-node maps) the arena
 * does not need: it asks sysfs whether a node exists and asks the kernel
 * where each page is.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <linux/memfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dma/arena_impl.h"
#include "util/log.h"
#include "util/sys.h"
#include "vfdma/arena.h"
#include "vfdma/pci.h"

#define SZ_2M	       (UINT64_C(1) << 21)
#define SZ_1G	       (UINT64_C(1) << 30)
#define ARENA_MAX_SIZE (UINT64_C(1) << 46)
#define NODE_BITS      1024 /* nodes the arena can bind to: 0 .. NODE_BITS - 1 */
#define QUERY_BATCH    256  /* pages per move_pages(2) query */

struct vfdma_arena {
	void *addr;
	uint64_t size;
	uint64_t pgsize;
	void *map_base; /* the whole reservation, slack included */
	uint64_t map_len;
	int node_req;
	int node;
	unsigned int flags;
};

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

int vfd_numa_node_check(int node)
{
	char path[64];

	if (node < 0 || node >= NODE_BITS)
		return -ENODEV;
	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", node);
	int rc = vfd_access(path, F_OK);
	if (rc == -ENOENT && node == 0 && vfd_access("/sys/devices/system/node", F_OK) == -ENOENT)
		return 0;
	return rc == -ENOENT ? -ENODEV : rc;
}

/*
 * The node of every @step-sized page of [addr, addr + len): *node is that
 * node, or -1 if they differ.  move_pages(2) in query mode, in batches.
 */
static int query_nodes(const void *addr, uint64_t len, uint64_t step, int *node)
{
	void *pages[QUERY_BATCH];
	int status[QUERY_BATCH];
	uintptr_t p = (uintptr_t)addr & ~(uintptr_t)(step - 1);
	uintptr_t end = (uintptr_t)addr + len;
	int found = -2;

	while (p < end) {
		unsigned long n = 0;
		for (; n < QUERY_BATCH && p < end; n++, p += step)
			pages[n] = (void *)p;
		int rc = vfd_move_pages(n, pages, NULL, status, 0);
		if (rc < 0)
			return rc;
		for (unsigned long i = 0; i < n; i++) {
			if (status[i] < 0)
				return status[i];
			if (found == -2)
				found = status[i];
			else if (found != status[i])
				found = -1;
		}
	}
	*node = found;
	return 0;
}

int vfdma_numa_node_of(const void *addr, uint64_t len, int *node)
{
	if (!addr || !node || !len || (uintptr_t)addr + len < (uintptr_t)addr)
		return -EINVAL;
	return query_nodes(addr, len, vfd_page_size(), node);
}

/* Bind [addr, addr + len) to @node; without NUMA support node 0 needs nothing. */
static int bind_node(void *addr, uint64_t len, int node, unsigned int flags)
{
	unsigned long mask[NODE_BITS / (8 * sizeof(unsigned long))] = {0};
	const unsigned int bits = 8 * sizeof(unsigned long);
	int mode = flags & VFDMA_ARENA_PREFERRED ? MPOL_PREFERRED : MPOL_BIND;

	mask[node / bits] = 1ul << (node % bits);
	/* maxnode counts one more than the mask holds (a kernel quirk kept for ABI) */
	int rc = vfd_mbind(addr, len, mode, mask, NODE_BITS + 1, 0);
	return rc == -ENOSYS && node == 0 ? 0 : rc;
}

/*
 * Fault every page in, writable.  MADV_POPULATE_WRITE (Linux 5.14) reports
 * a hugetlb page that cannot be had as an error, where touching it would
 * raise SIGBUS; before 5.14, hugetlb memory is allocated by fallocate(2) on
 * its memfd, and small pages are touched.
 */
static int populate(void *addr, uint64_t len, uint64_t pgsize, int fd)
{
	int rc = vfd_madvise(addr, len, MADV_POPULATE_WRITE);
	if (rc != -EINVAL)
		return rc;
	if (fd >= 0)
		return vfd_fallocate(fd, 0, 0, (off_t)len);
	for (uint64_t off = 0; off < len; off += pgsize)
		__atomic_store_n((volatile char *)addr + off, 0, __ATOMIC_RELAXED);
	return 0;
}

static const char *pgsize_name(uint64_t pgsize)
{
	return pgsize == SZ_1G ? "1 GiB" : pgsize == SZ_2M ? "2 MiB" : "4 KiB";
}

/* One attempt with one page size; on failure nothing is left. */
static int try_pgsize(struct vfdma_arena *a, uint64_t size, uint64_t pgsize, int node,
		      unsigned int flags)
{
	const uint64_t base = vfd_page_size();
	bool huge = pgsize > base;
	uint64_t len = round_up(size, pgsize);
	uint64_t align = huge ? pgsize : len >= SZ_2M ? SZ_2M : base;
	uint64_t map_len = len + (align > base ? align - base : 0);
	void *resv = NULL, *addr = NULL;
	int fd = -1, rc;

	if (huge) {
		fd = vfd_memfd_create(
		    "vfdma-arena", MFD_HUGETLB | (pgsize == SZ_1G ? MFD_HUGE_1GB : MFD_HUGE_2MB));
		if (fd < 0)
			return fd;
		rc = vfd_ftruncate(fd, (off_t)len);
		if (rc < 0)
			goto out;
	}
	/*
	 * Address space first (no memory behind it), so the arena can sit at
	 * an address aligned to its page size: the IOVA a domain picks follows
	 * the address's alignment.  The slack stays reserved until destroy.
	 */
	rc = vfd_mmap(&resv, NULL, map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		      -1, 0);
	if (rc < 0)
		goto out;
	addr = (void *)(uintptr_t)round_up((uintptr_t)resv, align);
	rc = vfd_mmap(&addr, addr, len, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_FIXED | (huge ? 0 : MAP_ANONYMOUS), fd, 0);
	if (rc < 0)
		goto out;
	if (node >= 0) {
		rc = bind_node(addr, len, node, flags);
		if (rc < 0)
			goto out;
	}
	rc = populate(addr, len, pgsize, fd);
	if (rc < 0)
		goto out;
	rc = vfd_mlock(addr, len);
	if (rc < 0)
		goto out;
	/* One query per page actually used: a huge page is on one node. */
	int where = -1;
	rc = query_nodes(addr, len, pgsize, &where);
	if (rc == -ENOSYS) {
		where = node <= 0 ? 0 : -1;
		rc = 0;
	}
	if (rc < 0)
		goto out;
	if (node >= 0 && where != node && !(flags & VFDMA_ARENA_PREFERRED)) {
		VFD_ERR("arena: bound to node %d, but pages were found on node %d", node, where);
		rc = -EXDEV;
		goto out;
	}
	a->addr = addr;
	a->size = len;
	a->pgsize = pgsize;
	a->map_base = resv;
	a->map_len = map_len;
	a->node = where;
out:
	/*
	 * Unmapping whole mappings needs no memory and does not fail in
	 * practice; should it (an injected fault), once more, so that a
	 * failed attempt never leaves address space behind.
	 */
	if (rc < 0 && resv && vfd_munmap(resv, map_len) < 0)
		vfd_munmap(resv, map_len);
	/* the mapping holds the memory; the descriptor is not needed */
	if (fd >= 0)
		vfd_close(fd);
	return rc;
}

struct vfdma_arena *vfdma_arena_create(uint64_t size, int node, const struct vfdma_arena_opts *opts)
{
	static const uint64_t order[] = {SZ_1G, SZ_2M, VFDMA_PGSIZE_4K};
	const uint64_t all = VFDMA_PGSIZE_4K | SZ_2M | SZ_1G;
	struct vfdma_arena_opts o = {0};
	int rc = -EINVAL;

	if (opts)
		o = *opts;
	if (!o.pgsizes)
		o.pgsizes = all;
	if (!size || size >= ARENA_MAX_SIZE || (o.flags & ~VFDMA_ARENA_PREFERRED) ||
	    (o.pgsizes & ~all) || node < VFDMA_NUMA_ANY) {
		errno = EINVAL;
		return NULL;
	}
	if (node == VFDMA_NUMA_ANY && o.dev) {
		struct vfdma_device_info di;
		rc = vfdma_device_get_info(o.dev, &di);
		if (rc < 0) {
			errno = -rc;
			return NULL;
		}
		node = di.numa_node >= 0 ? di.numa_node : VFDMA_NUMA_ANY;
	}
	if (node >= 0 && (rc = vfd_numa_node_check(node)) < 0) {
		errno = -rc;
		return NULL;
	}
	struct vfdma_arena *a = vfd_calloc(1, sizeof(*a));
	if (!a) {
		errno = ENOMEM;
		return NULL;
	}
	a->node_req = node;
	a->flags = o.flags;
	/* The smallest allowed size is always tried; larger ones only if they fit. */
	uint64_t smallest = o.pgsizes & -o.pgsizes;
	for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		uint64_t pg = order[i];
		if (!(o.pgsizes & pg) || (pg > size && pg != smallest))
			continue;
		if (pg == VFDMA_PGSIZE_4K && o.pgsizes != pg)
			VFD_LOG_ONCE(VFDMA_LOG_WARN,
				     "arena: using 4 KiB pages (no huge pages reserved?): "
				     "IOTLB reach suffers");
		rc = try_pgsize(a, size, pg, node, o.flags);
		if (rc == 0) {
			VFD_DBG("arena: %llu bytes of %s pages at %p, node %d (asked %d)",
				(unsigned long long)a->size, pgsize_name(pg), a->addr, a->node,
				node);
			return a;
		}
		if (rc == -EXDEV)
			break;
		VFD_INFO("arena: %s pages failed (%s)", pgsize_name(pg), strerror(-rc));
	}
	vfd_free(a);
	errno = -rc;
	return NULL;
}

int vfdma_arena_destroy(struct vfdma_arena *arena)
{
	if (!arena)
		return 0;
	/* munmap drops the lock and the memory together */
	int rc = vfd_munmap(arena->map_base, arena->map_len);
	vfd_free(arena);
	return rc;
}

int vfdma_arena_get_info(const struct vfdma_arena *arena, struct vfdma_arena_info *info)
{
	if (!arena || !info)
		return -EINVAL;
	info->addr = arena->addr;
	info->size = arena->size;
	info->page_size = arena->pgsize;
	info->node_requested = arena->node_req;
	info->node = arena->node;
	info->flags = arena->flags;
	return 0;
}

int vfdma_arena_verify(const struct vfdma_arena *arena, int *node)
{
	int where = -1;

	if (!arena)
		return -EINVAL;
	int rc = query_nodes(arena->addr, arena->size, arena->pgsize, &where);
	if (rc == -ENOSYS) {
		if (node)
			*node = 0;
		return rc;
	}
	if (rc < 0)
		return rc;
	if (node)
		*node = where;
	if (where < 0 || (arena->node_req >= 0 && where != arena->node_req))
		return -EXDEV;
	return 0;
}
