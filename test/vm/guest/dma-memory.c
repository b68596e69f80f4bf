/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dma-memory: a real device writes into each kind of memory lib/dma hands
 * out.  The first vfio NVMe, brought up with app/nvme's driver core, runs
 * Identify Controller into
 *   - a DMA pool buffer (vfdma_dma_alloc: a hugepage arena on the device's
 *     node, mapped once),
 *   - caller memory registered with vfdma_mem_register (at the IOVA the
 *     translation gives for an address inside it), and blocked again after
 *     vfdma_mem_unregister,
 *   - caller memory mapped on demand (vfdma_mem_acquire/release, the
 *     mapping cache's automatic mode),
 * and the Identify data is checked each time.
 */
#include <stdint.h>
#include <stdio.h>

#include "nvme-guest.h"

#define K4 4096u
#define CANARY 0xa5
#define TMO_MS 3000

static uint16_t vid, ssvid;

/* Identify into @iova must land in @buf (4 KiB, canary-filled first). */
static void identify_into(const char *check, struct nvme_ctrl *c, uint64_t iova, uint8_t *buf)
{
	memset(buf, CANARY, K4);
	int rc = nvme_identify_ctrl(c, iova, TMO_MS);
	if (rc)
		vt_fail(check, "status %d", rc);
	else
		vg_identify_ok(check, buf, vid, ssvid, "vfdma0");
}

/* Identify into @iova must not change @buf (the IOMMU blocks it). */
static void blocked(const char *check, struct nvme_ctrl *c, uint64_t iova, uint8_t *buf)
{
	memset(buf, CANARY, K4);
	int rc = nvme_identify_ctrl(c, iova, TMO_MS);
	if (!vg_all(buf, K4, CANARY))
		vt_fail(check, "host memory CHANGED (status %d)", rc);
	else if (rc < 0)
		vt_fail(check, "no completion: %s", strerror(-rc));
	else
		vt_pass(check);
}

static void pool_dma(struct vfdma_domain *d, struct nvme_ctrl *c)
{
	struct vfdma_arena_opts ao = {.dev = c->dev};
	struct vfdma_pool_opts po = {.arena = &ao};
	struct vfdma_pool *pool = vfdma_pool_create(d, VFDMA_NUMA_ANY, &po);
	if (!pool) {
		vt_fail("pool_create", "%s", strerror(errno));
		return;
	}
	vt_pass("pool_create");
	uint64_t iova = 0;
	uint8_t *buf = vfdma_dma_alloc(pool, K4, K4, VFDMA_NUMA_ANY, &iova);
	if (!buf) {
		vt_fail("pool_alloc", "%s", strerror(errno));
	} else {
		struct vfdma_pool_stats st;
		vfdma_pool_get_stats(pool, &st);
		printf("PASS pool_alloc: iova 0x%llx; %llu arena(s): %llu of 1 GiB pages, %llu of "
		       "2 MiB, %llu of 4 KiB\n",
		       (unsigned long long)iova, (unsigned long long)st.arenas,
		       (unsigned long long)st.arenas_1g, (unsigned long long)st.arenas_2m,
		       (unsigned long long)st.arenas_4k);
		fflush(stdout);
		uint64_t t = 0;
		if (vfdma_vaddr_to_iova(d, buf, &t, NULL) || t != iova)
			vt_fail("pool_translate", "0x%llx, expected 0x%llx", (unsigned long long)t,
				(unsigned long long)iova);
		else
			vt_pass("pool_translate");
		identify_into("identify_into_pool", c, iova, buf);
		vt_check("pool_free", vfdma_dma_free(pool, buf) == 0);
	}
	vt_check("pool_destroy", vfdma_pool_destroy(pool) == 0);
}

static void registered_dma(struct vfdma_domain *d, struct nvme_ctrl *c)
{
	const size_t len = 16 * K4;
	uint8_t *mem = vg_buf(len, 0);
	uint8_t *buf = mem + 5 * K4;
	uint64_t iova = 0, rest = 0;
	int rc = vfdma_mem_register(d, mem, len);
	if (rc) {
		vt_fail("register", "%s", strerror(-rc));
		free(mem);
		return;
	}
	vt_pass("register");
	if (vfdma_vaddr_to_iova(d, buf, &iova, &rest) || rest != len - 5 * K4)
		vt_fail("register_translate", "iova 0x%llx, %llu bytes to the end",
			(unsigned long long)iova, (unsigned long long)rest);
	else
		vt_pass("register_translate");
	identify_into("identify_into_registered", c, iova, buf);
	vt_check("unregister", vfdma_mem_unregister(d, mem, len) == 0);
	blocked("blocked_after_unregister", c, iova, buf);
	free(mem);
}

static void on_demand_dma(struct vfdma_domain *d, struct nvme_ctrl *c)
{
	uint8_t *buf = vg_buf(K4, 0);
	uint64_t iova = 0;
	vt_check("set_budget", vfdma_mem_set_budget(d, 1u << 20) == 0);
	int rc = vfdma_mem_acquire(d, buf, K4, VFDMA_PROT_RW, &iova);
	if (rc) {
		vt_fail("acquire", "%s", strerror(-rc));
		free(buf);
		return;
	}
	vt_pass("acquire");
	identify_into("identify_into_acquired", c, iova, buf);
	uint64_t again = 0;
	struct vfdma_mem_stats st;
	vt_check("acquire_hit", vfdma_mem_acquire(d, buf, K4, VFDMA_PROT_RW, &again) == 0 &&
					again == iova && vfdma_mem_get_stats(d, &st) == 0 &&
					st.hits >= 1);
	vt_check("release", vfdma_mem_release(d, buf, again) == 0 &&
				    vfdma_mem_release(d, buf, iova) == 0);
	free(buf);
}

int main(void)
{
	struct nvme_ctrl c;
	struct vfdma_domain *d = vg_nvme_setup(&c, &vid, &ssvid);
	if (!d)
		return vt_exit_status();

	pool_dma(d, &c);
	registered_dma(d, &c);
	on_demand_dma(d, &c);

	vt_check("domain_check", vfdma_domain_check(d) == 0);
	vt_check("nvme_close", nvme_close(&c) == 0);
	vt_check("domain_close", vfdma_domain_close(d) == 0);
	return vt_exit_status();
}
