/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * nvme-timeout: a controller that does not answer gives -ETIMEDOUT with a
 * clear message within the command's timeout, never a hang.
 *
 *   admin   an Asynchronous Event Request (a command the controller holds
 *           until an event happens: here, never) with a 300 ms timeout
 *   io      an I/O queue pair whose controller was disabled behind the
 *           driver's back (CC.EN = 0, as a reset by someone else would):
 *           a Read with a 500 ms timeout finds no completion; the message
 *           says the controller is not enabled
 *   after   the controller is marked broken: the next command fails at
 *           once with -EIO instead of waiting again; close still works
 */
#include <time.h>

#include "nvme-guest.h"

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* -ETIMEDOUT after @tmo ms (not much later), with a message mentioning @want. */
static void expect_timeout(const char *check, int rc, uint64_t ms, uint32_t tmo,
			   const struct nvme_ctrl *c, const char *want)
{
	if (rc != -ETIMEDOUT)
		vt_fail(check, "returned %d (%s), expected -ETIMEDOUT", rc,
			rc < 0 ? strerror(-rc) : "a status");
	else if (ms < tmo || ms > tmo + 3000)
		vt_fail(check, "timed out after %llu ms, timeout %u ms", (unsigned long long)ms,
			tmo);
	else if (!strstr(nvme_errmsg(c), want))
		vt_fail(check, "message '%s' does not say '%s'", nvme_errmsg(c), want);
	else
		printf("PASS %s: after %llu ms: %s\n", check, (unsigned long long)ms,
		       nvme_errmsg(c)), fflush(stdout);
}

static void admin_timeout(struct vfdma_domain *d, const char *bdf)
{
	struct nvme_ctrl c;
	if (nvme_open(&c, d, bdf)) {
		vt_fail("admin_open", "%s", nvme_errmsg(&c));
		return;
	}
	struct nvme_sqe aer = {.opc = NVME_ADMIN_ASYNC_EVENT};
	uint64_t t0 = now_ms();
	int rc = nvme_admin(&c, &aer, NULL, 300);
	expect_timeout("admin_timeout", rc, now_ms() - t0, 300, &c, "no completion in 300 ms");
	t0 = now_ms();
	rc = nvme_ctrl_identify(&c);
	if (rc == -EIO && now_ms() - t0 < 100)
		vt_pass("admin_after_timeout_fails_fast");
	else
		vt_fail("admin_after_timeout_fails_fast", "returned %d after %llu ms", rc,
			(unsigned long long)(now_ms() - t0));
	vt_check("admin_close", nvme_close(&c) == 0);
}

static void io_timeout(struct vfdma_domain *d, const char *bdf)
{
	struct nvme_ctrl c;
	struct nvme_qpair *qp = NULL;
	if (nvme_open(&c, d, bdf) || nvme_ctrl_identify(&c) || nvme_set_num_queues(&c, 1)) {
		vt_fail("io_setup", "%s", nvme_errmsg(&c));
		nvme_close(&c);
		return;
	}
	struct nvme_qpair_opts o = {.depth = 4, .timeout_ms = 500};
	int rc = nvme_qpair_create(&c, 1, &o, &qp);
	uint64_t iova = 0;
	void *buf = rc ? NULL : vfdma_dma_alloc(nvme_pool(&c), 4096, 4096, VFDMA_NUMA_ANY, &iova);
	if (!buf) {
		vt_fail("io_setup", "queue pair %d: %s", rc, nvme_errmsg(&c));
		nvme_close(&c);
		return;
	}
	/* A Read that works first: the queue pair itself is fine. */
	rc = nvme_io_sync(qp, NVME_CMD_READ, 1, 0, 8, iova, 4096);
	if (!vt_check("io_read_before", rc == 0))
		printf("  read returned %d: %s\n", rc, nvme_errmsg(&c));

	/* Now disable the controller behind the driver's back. */
	volatile uint32_t *cc = (volatile uint32_t *)(c.bar0 + NVME_REG_CC);
	*cc &= ~NVME_CC_EN;
	uint64_t t0 = now_ms();
	while ((nvme_csts(&c) & NVME_CSTS_RDY) && now_ms() - t0 < c.timeout_ms)
		;
	t0 = now_ms();
	rc = nvme_io_sync(qp, NVME_CMD_READ, 1, 0, 8, iova, 4096);
	expect_timeout("io_timeout", rc, now_ms() - t0, 500, &c, "not enabled (CSTS.RDY 0)");
	t0 = now_ms();
	rc = nvme_qpair_destroy(qp); /* its admin commands fail at once: broken */
	if (rc == -EIO && now_ms() - t0 < c.timeout_ms + 500)
		vt_pass("io_destroy_after_timeout");
	else
		vt_fail("io_destroy_after_timeout", "returned %d after %llu ms", rc,
			(unsigned long long)(now_ms() - t0));
	vfdma_dma_free(nvme_pool(&c), buf);
	vt_check("io_close", nvme_close(&c) == 0);
}

int main(void)
{
	char bdf[32];
	if (!vg_bdf(0, bdf)) {
		vt_fail("setup", "no device in $VFDMA_VFIO_BDFS");
		return vt_exit_status();
	}
	struct vfdma_domain *d = vg_domain();
	if (!d)
		return vt_exit_status();
	admin_timeout(d, bdf);
	io_timeout(d, bdf);
	vt_check("domain_close", vfdma_domain_close(d) == 0);
	return vt_exit_status();
}
