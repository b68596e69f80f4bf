/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * numa-arena: arenas land on the NUMA node they are asked for, and the
 * check is made by the kernel (move_pages), not assumed.  The guest has two
 * nodes, each with 1 GiB and 2 MiB hugepages, and NVMe <i> in node <i>.
 *   - for each node: a 1 GiB arena (1 GiB page) and a 64 MiB arena (2 MiB
 *     pages) bound to it; info, vfdma_arena_verify and an independent
 *     vfdma_numa_node_of of the whole range all say that node;
 *   - a pool created for each device, with no node named, puts its buffers
 *     on the device's node (read from sysfs by the library).
 */
#include <stdint.h>
#include <stdio.h>

#include "nvme-guest.h"

#define M2 (2ull << 20)
#define G1 (1ull << 30)

static void arena_on(int node, uint64_t size, uint64_t pgsize, const char *what)
{
	char check[64];
	snprintf(check, sizeof(check), "arena_%s_node%d", what, node);
	struct vfdma_arena_opts o = {.pgsizes = pgsize};
	struct vfdma_arena *a = vfdma_arena_create(size, node, &o);
	if (!a) {
		vt_fail(check, "%s", strerror(errno));
		return;
	}
	struct vfdma_arena_info info;
	int found = -2, independent = -2;
	int rc = vfdma_arena_get_info(a, &info);
	int vrc = vfdma_arena_verify(a, &found);
	int nrc = rc ? rc : vfdma_numa_node_of(info.addr, info.size, &independent);
	if (rc || vrc || nrc || info.page_size != pgsize || info.node != node || found != node ||
	    independent != node)
		vt_fail(check,
			"info %d (page %llu KiB, node %d), verify %d (node %d), node_of %d "
			"(node %d)",
			rc, (unsigned long long)(info.page_size >> 10), info.node, vrc, found, nrc,
			independent);
	else
		printf("PASS %s: %llu MiB of %llu KiB pages at %p, every page on node %d\n", check,
		       (unsigned long long)(info.size >> 20),
		       (unsigned long long)(info.page_size >> 10), info.addr, node),
			fflush(stdout);
	vfdma_arena_destroy(a);
}

/* A pool for device @i (on node @i) puts buffers on node @i by itself. */
static void pool_follows_device(struct vfdma_domain *d, unsigned int i)
{
	char bdf[32], check[64];
	snprintf(check, sizeof(check), "pool_on_device_node%u", i);
	if (!vg_bdf(i, bdf)) {
		vt_fail(check, "no device %u in $VFDMA_VFIO_BDFS", i);
		return;
	}
	struct vfdma_device *dev = vfdma_device_open(d, bdf, 0);
	if (!dev) {
		vt_fail(check, "open %s: %s", bdf, strerror(errno));
		return;
	}
	struct vfdma_arena_opts ao = {.dev = dev};
	struct vfdma_pool_opts po = {.arena = &ao};
	struct vfdma_pool *pool = vfdma_pool_create(d, VFDMA_NUMA_ANY, &po);
	void *buf = pool ? vfdma_dma_alloc(pool, 4096, 0, VFDMA_NUMA_ANY, NULL) : NULL;
	int node = -2, rc = buf ? vfdma_numa_node_of(buf, 4096, &node) : -errno;
	if (rc || node != (int)i)
		vt_fail(check, "%s: buffer on node %d (%s)", bdf, node, strerror(-rc));
	else
		printf("PASS %s: %s, buffer on node %d\n", check, bdf, node), fflush(stdout);
	if (buf)
		vfdma_dma_free(pool, buf);
	vfdma_pool_destroy(pool);
	vfdma_device_close(dev);
}

int main(void)
{
	for (int node = 0; node < 2; node++) {
		arena_on(node, G1, G1, "1g");
		arena_on(node, 64 * M2 / 2, M2, "2m");
	}
	errno = 0;
	struct vfdma_arena *none = vfdma_arena_create(M2, 7, NULL);
	vt_check("arena_no_such_node", !none && errno == ENODEV);
	struct vfdma_domain *d = vg_domain();
	if (!d)
		return vt_exit_status();
	pool_follows_device(d, 0);
	pool_follows_device(d, 1);
	vt_check("domain_close", vfdma_domain_close(d) == 0);
	return vt_exit_status();
}
