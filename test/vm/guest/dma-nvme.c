/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * dma-nvme: real device DMA through a vfdma domain.  The first vfio NVMe
 * is brought up with app/nvme's driver core; Identify Controller writes
 * 4 KiB into a mapped buffer and the data is checked against what QEMU
 * reports (PCI IDs from config space, serial "vfdma0").  The same command
 * aimed at an unmapped IOVA and at a read-only mapping must fail and leave
 * the canary in host memory untouched; afterwards the controller still
 * works.  Also: the PCI access API on a real device (device info, bad
 * arguments, MSI-X to an eventfd, reset) and the usable ranges (the MSI
 * window is excluded).  One result line per step.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/klog.h>
#include <unistd.h>

#include "nvme-guest.h"

#define K4 4096u
#define CANARY 0xa5
#define TMO_MS 3000

/* Kernel log lines reporting an IOMMU fault at @iova (DMAR on VT-d). */
static int dmar_faults(uint64_t iova)
{
	static char log[1 << 17];
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log, sizeof(log) - 1);
	if (n < 0)
		return -1;
	log[n] = '\0';
	char pat[48];
	snprintf(pat, sizeof(pat), "fault addr 0x%llx", (unsigned long long)iova);
	int count = 0;
	for (char *p = log; (p = strstr(p, pat)); p++)
		count++;
	return count;
}

/*
 * A command aimed at memory the device may not write must not change host
 * memory, and must end (completion or timeout, never a hang).  QEMU's NVMe
 * completes such a command with success: its DMA helpers do not pass the
 * IOMMU's refusal on to the completion status.  So what proves the block is
 * the unchanged canary, with the IOMMU's fault in the kernel log as
 * evidence (the log is rate-limited: not every fault shows).
 */
static void must_fail(const char *check, struct nvme_ctrl *c, uint64_t iova, const void *canary)
{
	int before = dmar_faults(iova);
	int st = nvme_identify_ctrl(c, iova, TMO_MS);
	bool intact = vg_all(canary, K4, CANARY);
	int faults = dmar_faults(iova) - before;
	if (!intact)
		vt_fail(check, "host memory CHANGED (status %d)", st);
	else if (st < 0)
		vt_fail(check, "no completion: %s", strerror(-st));
	else if (st > 0)
		printf("PASS %s: failed with SCT %d SC 0x%02x, memory unchanged\n", check,
		       NVME_STATUS_SCT(st << 1), NVME_STATUS_SC(st << 1));
	else
		printf("PASS %s: write blocked, memory unchanged (completion status 0: QEMU does "
		       "not report DMA errors; %d new IOMMU fault line(s) for 0x%llx in the log)\n",
		       check, faults, (unsigned long long)iova);
	fflush(stdout);
}

static void pci_api(struct vfdma_device *dev, uint16_t *vid, uint16_t *ssvid)
{
	struct vfdma_device_info info;
	int rc = vfdma_device_get_info(dev, &info);
	if (rc) {
		vt_fail("device_info", "%s", strerror(-rc));
	} else {
		uint16_t cfg_vid = 0, cfg_did = 0;
		vfdma_pci_cfg_read(dev, 0x00, &cfg_vid, 2);
		vfdma_pci_cfg_read(dev, 0x02, &cfg_did, 2);
		vfdma_pci_cfg_read(dev, 0x2c, ssvid, 2);
		*vid = cfg_vid;
		if (info.vendor_id != cfg_vid || info.device_id != cfg_did ||
		    (info.class_code >> 8) != 0x0108 || info.iommu_group < 0 || !info.nr_irqs_msix)
			vt_fail("device_info", "vendor 0x%x device 0x%x class 0x%x group %d msix %u",
				info.vendor_id, info.device_id, info.class_code, info.iommu_group,
				info.nr_irqs_msix);
		else
			printf("PASS device_info: %s %04x:%04x class 0x%06x node %d group %d msix %u "
			       "msi %u intx %u reset %u\n",
			       info.bdf, info.vendor_id, info.device_id, info.class_code, info.numa_node,
			       info.iommu_group, info.nr_irqs_msix, info.nr_irqs_msi, info.has_intx,
			       info.can_reset),
				fflush(stdout);
	}

	/* Bad arguments: a specific errno each. */
	void *a;
	uint32_t v;
	int efd[2];
	struct {
		const char *what;
		int got, want;
	} t[] = {
		{"bar 6", vfdma_pci_bar_map(dev, 6, &a, NULL), -EINVAL},
		{"bar NULL addr", vfdma_pci_bar_map(dev, 0, NULL, NULL), -EINVAL},
		{"absent bar 5", vfdma_pci_bar_map(dev, 5, &a, NULL), -ENOENT},
		{"cfg past end", vfdma_pci_cfg_read(dev, 4096, &v, 4), -ERANGE},
		{"cfg straddling end", vfdma_pci_cfg_read(dev, 4094, &v, 4), -ERANGE},
		{"cfg len 0", vfdma_pci_cfg_read(dev, 0, &v, 0), -EINVAL},
		{"bar_read past end", vfdma_pci_bar_read(dev, 0, 1ull << 40, &v, 4), -ERANGE},
		{"intx 2 vectors", vfdma_pci_irq_enable(dev, VFDMA_IRQ_INTX, 2, efd), -EINVAL},
		{"irq type 9", vfdma_pci_irq_enable(dev, (enum vfdma_irq_type)9, 1, efd), -EINVAL},
		{"0 vectors", vfdma_pci_irq_enable(dev, VFDMA_IRQ_AUTO, 0, efd), -EINVAL},
		{"msix 5000 vectors", vfdma_pci_irq_enable(dev, VFDMA_IRQ_MSIX, 5000, efd), -ENOTSUP},
	};
	bool ok = true;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (t[i].got != t[i].want) {
			vt_fail("pci_bad_args", "%s: got %d, expected %d", t[i].what, t[i].got, t[i].want);
			ok = false;
		}
	}
	if (ok)
		vt_pass("pci_bad_args");

	/* BAR 0 through the region: CAP read by pread equals CAP read by the mapping. */
	uint32_t cap_lo = 0;
	rc = vfdma_pci_bar_read(dev, 0, NVME_REG_CAP, &cap_lo, 4);
	void *bar;
	uint64_t len;
	int rc2 = vfdma_pci_bar_map(dev, 0, &bar, &len);
	if (rc || rc2 || cap_lo != *(volatile uint32_t *)bar)
		vt_fail("bar_read", "rc %d/%d, 0x%x vs 0x%x", rc, rc2, cap_lo,
			rc2 ? 0 : *(volatile uint32_t *)bar);
	else
		vt_pass("bar_read");
}

/* The usable ranges exclude the x86 MSI window. */
static void ranges_check(struct vfdma_domain *d)
{
	struct vfdma_iova_range r[16];
	int n = vfdma_domain_ranges(d, r, 16);
	bool ok = n > 0;
	for (int i = 0; i < n && i < 16; i++) {
		printf("# range %d: 0x%llx-0x%llx\n", i, (unsigned long long)r[i].first,
		       (unsigned long long)r[i].last);
		if (r[i].first <= 0xfee00000ull && r[i].last >= 0xfee00000ull)
			ok = false;
	}
	if (ok)
		printf("PASS ranges: %d ranges, MSI window 0xfee00000 excluded\n", n), fflush(stdout);
	else
		vt_fail("ranges", "%d ranges, or the MSI window is inside one", n);
}

int main(void)
{
	char bdf[32];
	if (!vg_bdf(0, bdf)) {
		vt_fail("setup", "no device in $VFDMA_VFIO_BDFS");
		return vt_exit_status();
	}
	int fds0 = vg_nr_fds();
	struct vfdma_domain *d = vg_domain();
	if (!d)
		return vt_exit_status();

	/* A mapping made before any device: type1 replays it at the first attach. */
	uint8_t *early = vg_buf(K4, CANARY);
	uint64_t early_iova = 0;
	vt_check("map_before_device", vfdma_map(d, early, K4, VFDMA_PROT_RW, 0, &early_iova) == 0);

	struct nvme_ctrl c;
	int rc = nvme_open(&c, d, bdf);
	if (rc) {
		vt_fail("nvme_open", "%s: %s", bdf, strerror(-rc));
		vfdma_domain_close(d);
		return vt_exit_status();
	}
	printf("PASS nvme_open: %s, NVMe %u.%u, CAP 0x%llx\n", bdf, c.vs >> 16, (c.vs >> 8) & 0xff,
	       (unsigned long long)c.cap);
	fflush(stdout);

	/* Device open errors: each with its errno, the domain unchanged. */
	struct {
		const char *what;
		const char *bdf;
		unsigned int flags;
		int want;
	} bad[] = {
		{"no such device", "0000:ff:1f.7", 0, ENODEV},
		{"open twice", bdf, 0, EBUSY},
		{"bad address", "0000:00:32.0", 0, EINVAL},
		{"flags", bdf, 1, EINVAL},
	};
	bool ok = true;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		struct vfdma_device *x = vfdma_device_open(d, bad[i].bdf, bad[i].flags);
		if (x || errno != bad[i].want) {
			vt_fail("device_open_errors", "%s: %p, errno %d, expected %d", bad[i].what,
				(void *)x, errno, bad[i].want);
			ok = false;
		}
	}
	struct vfdma_domain_info di;
	vfdma_domain_get_info(d, &di);
	if (ok && di.nr_devices == 1 && vfdma_domain_check(d) == 0)
		vt_pass("device_open_errors");
	else if (ok)
		vt_fail("device_open_errors", "%u devices after the failed opens", di.nr_devices);
	ranges_check(d);

	uint16_t vid = 0, ssvid = 0;
	pci_api(c.dev, &vid, &ssvid);

	int efd = -1;
	rc = vfdma_pci_irq_enable(c.dev, VFDMA_IRQ_AUTO, 1, &efd);
	if (rc != VFDMA_IRQ_MSIX)
		vt_fail("irq_enable", "got %d, expected MSI-X (%d)", rc, VFDMA_IRQ_MSIX);
	else
		vt_pass("irq_enable");
	int efd2;
	rc = vfdma_pci_irq_enable(c.dev, VFDMA_IRQ_MSIX, 1, &efd2);
	if (rc != -EBUSY)
		vt_fail("irq_enable_twice", "got %d, expected -EBUSY", rc);
	else
		vt_pass("irq_enable_twice");

	/* The good case: Identify into a mapped buffer. */
	uint8_t *buf = vg_buf(K4, CANARY);
	uint64_t iova;
	vt_check("map", vfdma_map(d, buf, K4, VFDMA_PROT_RW, 0, &iova) == 0);
	rc = nvme_identify_ctrl(&c, iova, TMO_MS);
	if (rc)
		vt_fail("identify", "status/errno %d", rc);
	else
		vg_identify_ok("identify", buf, vid, ssvid, "vfdma0");
	if (efd >= 0) {
		struct pollfd p = {.fd = efd, .events = POLLIN};
		uint64_t cnt = 0;
		if (poll(&p, 1, 2000) == 1 && read(efd, &cnt, 8) == 8 && cnt > 0)
			printf("PASS irq_delivered: %llu interrupt(s) on the eventfd\n",
			       (unsigned long long)cnt), fflush(stdout);
		else
			vt_fail("irq_delivered", "no interrupt on the eventfd within 2 s");
	}
	/* The mapping made before the device exists in the kernel too. */
	rc = nvme_identify_ctrl(&c, early_iova, TMO_MS);
	if (rc)
		vt_fail("identify_replayed", "status/errno %d", rc);
	else
		vg_identify_ok("identify_replayed", early, vid, ssvid, "vfdma0");

	/*
	 * Unmapped IOVA: map a page, remember where, unmap it, aim there.  The
	 * read-only page is mapped first, so that the two IOVAs differ.
	 */
	uint8_t *gone = vg_buf(K4, CANARY), *ro = vg_buf(K4, CANARY);
	uint64_t gone_iova, ro_iova;
	vt_check("map_readonly", vfdma_map(d, ro, K4, VFDMA_PROT_READ, 0, &ro_iova) == 0);
	vt_check("map_then_unmap", vfdma_map(d, gone, K4, VFDMA_PROT_RW, 0, &gone_iova) == 0 &&
					   vfdma_unmap(d, gone_iova, K4) == 0);
	must_fail("identify_unmapped", &c, gone_iova, gone);
	/* Read-only for the device: the device may not write it. */
	must_fail("identify_readonly", &c, ro_iova, ro);

	/* The controller still works after the faults. */
	memset(buf, CANARY, K4);
	rc = nvme_identify_ctrl(&c, iova, TMO_MS);
	if (rc)
		vt_fail("identify_after_faults", "status/errno %d", rc);
	else
		vg_identify_ok("identify_after_faults", buf, vid, ssvid, "vfdma0");

	vt_check("domain_check", vfdma_domain_check(d) == 0);
	rc = vfdma_pci_irq_disable(c.dev);
	if (rc)
		vt_fail("irq_disable", "%s", strerror(-rc));
	else
		vt_pass("irq_disable");
	rc = vfdma_pci_reset(c.dev);
	if (rc && rc != -ENOTSUP)
		vt_fail("reset", "%s", strerror(-rc));
	else
		printf("PASS reset: %s\n", rc ? "not supported by the device" : "done"), fflush(stdout);

	rc = nvme_close(&c);
	if (rc)
		vt_fail("nvme_close", "%s", strerror(-rc));
	else
		vt_pass("nvme_close");
	vfdma_unmap(d, iova, K4);
	vfdma_unmap(d, ro_iova, K4);
	vfdma_unmap(d, early_iova, K4);
	struct vfdma_domain_info info;
	vfdma_domain_get_info(d, &info);
	if (info.mappings || info.broken)
		vt_fail("state", "%llu mappings left, broken %d", (unsigned long long)info.mappings,
			info.broken);
	rc = vfdma_domain_close(d);
	int fds1 = vg_nr_fds();
	if (rc || fds0 != fds1)
		vt_fail("domain_close", "rc %d, fds %d before, %d after", rc, fds0, fds1);
	else
		vt_pass("domain_close");
	free(buf);
	free(ro);
	free(gone);
	free(early);
	return vt_exit_status();
}
