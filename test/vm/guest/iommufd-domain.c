/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * iommufd-domain: a vfdma domain on the iommufd backend, against the real
 * kernel (emulated VT-d, an NVMe device bound to vfio-pci).
 *
 * Part 1: backend, page sizes and ranges; maps before any device; attach
 * (the MSI window leaves the usable ranges); fixed IOVA in the window
 * refused; 4 KiB and 2 MiB hugepage maps; a partial unmap refused; 1 GiB
 * of 2 MiB hugepages in one kernel call; check; close releases every fd.
 *
 * Part 2: a mapping at 0xfee00000 made before the first attach is in the
 * way of the device's MSI window: the attach fails with EBUSY, and the
 * mapping, the kernel state and the fds are as before.
 *
 * Part 3: check finds a mapping changed behind the library's back.
 *
 * Part 4: a fault-injection sweep over domain open, device attach, map
 * and close (see part_sweep).  Part 5: concurrent mappers.
 *
 * Needs VFDMA_BACKEND=iommufd (the runner sets it) and a device in
 * $VFDMA_VFIO_BDFS.  Every check is its own result line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/iommufd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmtest.h"
#include "vfdma/dma.h"
#include "vfdma/iommu.h"
#include "vfdma/log.h"
/* The library's internal fault injection (vfd_fault_arm); in libvfdma.a. */
#include "../../../lib/util/sys.h"

#define SZ_4K (1ull << 12)
#define SZ_2M (1ull << 21)
#define SZ_1G (1ull << 30)
#define MSI_FIRST 0xfee00000ull
#define MSI_LAST 0xfeefffffull

/* Checks with an errno-style result: PASS when rc == want. */
static bool check_rc(const char *check, int rc, int want)
{
	if (rc == want) {
		vt_pass(check);
		return true;
	}
	vt_fail(check, "returned %d (%s), expected %d", rc, rc < 0 ? strerror(-rc) : "ok", want);
	return false;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static const char *first_bdf(char *buf, size_t len)
{
	const char *list = getenv("VFDMA_VFIO_BDFS");
	if (!list || !*list)
		return NULL;
	size_t n = strcspn(list, " ,");
	if (n >= len)
		return NULL;
	memcpy(buf, list, n);
	buf[n] = 0;
	return buf;
}

/* At least @n 2 MiB hugepages reserved (the guest's init reserves 128). */
static bool reserve_hugepages(unsigned long n)
{
	FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r+");
	unsigned long cur = 0;
	if (!f)
		return false;
	if (fscanf(f, "%lu", &cur) != 1)
		cur = 0;
	if (cur < n) {
		rewind(f);
		fprintf(f, "%lu\n", n);
		fflush(f);
		rewind(f);
		if (fscanf(f, "%lu", &cur) != 1)
			cur = 0;
	}
	fclose(f);
	return cur >= n;
}

/* @len bytes of 2 MiB hugepage memory from hugetlbfs, or NULL. */
static void *hp_alloc(uint64_t len)
{
	char path[64];
	static int seq;
	snprintf(path, sizeof(path), "/dev/hugepages/iommufd-domain.%d.%d", getpid(), seq++);
	int fd = open(path, O_CREAT | O_RDWR | O_EXCL, 0600);
	if (fd < 0)
		return NULL;
	unlink(path);
	void *p = NULL;
	if (ftruncate(fd, (off_t)len) == 0)
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static bool range_holds(const struct vfdma_iova_range *r, int n, uint64_t first, uint64_t last)
{
	for (int i = 0; i < n; i++)
		if (r[i].first <= first && last <= r[i].last)
			return true;
	return false;
}

static bool range_touches(const struct vfdma_iova_range *r, int n, uint64_t first, uint64_t last)
{
	for (int i = 0; i < n; i++)
		if (r[i].first <= last && first <= r[i].last)
			return true;
	return false;
}

static void part_domain(const char *bdf)
{
	int fds0 = count_fds();
	struct vfdma_domain *dom = vfdma_domain_open(NULL);
	if (!vt_check("open", dom != NULL))
		return;
	int be = vfdma_domain_backend(dom);
	if (be != VFDMA_BACKEND_IOMMUFD)
		vt_fail("backend", "got %s", vfdma_backend_name(be));
	else
		vt_pass("backend");

	uint64_t pg = 0;
	vfdma_domain_pgsizes(dom, &pg);
	if ((pg & (SZ_4K | SZ_2M | SZ_1G)) == (SZ_4K | SZ_2M | SZ_1G) && !(pg & (SZ_4K - 1)))
		vt_pass("pgsizes");
	else
		vt_fail("pgsizes", "0x%llx, expected 4K|2M|1G", (unsigned long long)pg);

	struct vfdma_iova_range r[16];
	int n = vfdma_domain_ranges(dom, r, 16);
	if (n >= 1 && n <= 16 && range_holds(r, n, MSI_FIRST, MSI_LAST) && r[0].first > 0)
		vt_pass("ranges_before_attach");
	else
		vt_fail("ranges_before_attach", "%d ranges, first 0x%llx-0x%llx (expected the MSI "
			"window inside, IOVA 0 outside)", n, n > 0 ? (unsigned long long)r[0].first : 0,
			n > 0 ? (unsigned long long)r[0].last : 0);

	/* Maps before any device: the IOAS takes them at once. */
	void *small = NULL;
	if (posix_memalign(&small, SZ_4K, SZ_4K))
		small = NULL;
	void *huge = hp_alloc(SZ_2M);
	if (!vt_check("alloc_memory", small && huge))
		goto out;
	memset(small, 0x5a, SZ_4K);
	uint64_t iova_small = 0, iova_huge = 0;
	check_rc("map_4k_before_attach", vfdma_map(dom, small, SZ_4K, VFDMA_PROT_RW, 0, &iova_small), 0);
	check_rc("map_2m_before_attach", vfdma_map(dom, huge, SZ_2M, VFDMA_PROT_READ, 0, &iova_huge), 0);
	if (iova_huge & (SZ_2M - 1))
		vt_fail("map_2m_aligned", "iova 0x%llx", (unsigned long long)iova_huge);
	else
		vt_pass("map_2m_aligned");
	struct vfdma_domain_info info;
	vfdma_domain_get_info(dom, &info);
	if (info.kernel_map_calls == 2 && info.mappings == 2)
		vt_pass("maps_issued_before_attach");
	else
		vt_fail("maps_issued_before_attach", "%llu kernel calls, %llu mappings",
			(unsigned long long)info.kernel_map_calls, (unsigned long long)info.mappings);
	check_rc("check_before_attach", vfdma_domain_check(dom), 0);

	/* Attach: the MSI window leaves the ranges, the maps stay. */
	struct vfdma_device *dev = vfdma_device_open(dom, bdf, 0);
	if (!vt_check("device_open", dev != NULL))
		goto out;
	n = vfdma_domain_ranges(dom, r, 16);
	if (n >= 2 && n <= 16 && !range_touches(r, n, MSI_FIRST, MSI_LAST))
		vt_pass("msi_window_excluded");
	else
		vt_fail("msi_window_excluded", "%d ranges", n);
	vfdma_domain_get_info(dom, &info);
	if (info.nr_devices == 1 && info.mappings == 2)
		vt_pass("attach_keeps_maps");
	else
		vt_fail("attach_keeps_maps", "%u devices, %llu mappings", info.nr_devices,
			(unsigned long long)info.mappings);
	if (info.dirty_caps & VFDMA_DIRTY_CAP_HW)
		vt_fail("no_hw_dirty_claimed", "dirty_caps 0x%x on the emulated VT-d", info.dirty_caps);
	else
		vt_pass("no_hw_dirty_claimed");
	check_rc("check_after_attach", vfdma_domain_check(dom), 0);

	uint64_t in_msi = MSI_FIRST + 0x10000;
	check_rc("fixed_in_msi_window_refused",
		 vfdma_map(dom, small, SZ_4K, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &in_msi), -ERANGE);

	/* Unmap must name whole mappings: a different size is refused. */
	void *two = hp_alloc(2 * SZ_2M);
	uint64_t iova_two = 0;
	if (!vt_check("alloc_4m", two != NULL))
		goto out_dev;
	check_rc("map_4m", vfdma_map(dom, two, 2 * SZ_2M, VFDMA_PROT_RW, 0, &iova_two), 0);
	int rc1 = vfdma_unmap(dom, iova_two, SZ_2M);
	int rc2 = vfdma_unmap(dom, iova_two, 4 * SZ_2M);
	if (rc1 < 0 && rc2 < 0)
		vt_pass("unmap_other_size_refused");
	else
		vt_fail("unmap_other_size_refused", "half: %d, double: %d", rc1, rc2);
	check_rc("check_after_refused_unmap", vfdma_domain_check(dom), 0);
	check_rc("unmap_4m", vfdma_unmap(dom, iova_two, 2 * SZ_2M), 0);
	munmap(two, 2 * SZ_2M);

	check_rc("unmap_4k", vfdma_unmap(dom, iova_small, SZ_4K), 0);
	check_rc("unmap_2m", vfdma_unmap(dom, iova_huge, SZ_2M), 0);
	check_rc("map_2m_after_attach", vfdma_map(dom, huge, SZ_2M, VFDMA_PROT_RW, 0, &iova_huge), 0);
	check_rc("unmap_2m_after_attach", vfdma_unmap(dom, iova_huge, SZ_2M), 0);

	/* 1 GiB of 2 MiB hugepages: one contiguous run, one kernel call. */
	if (!vt_check("reserve_hugepages", reserve_hugepages(128 + 512 + 8)))
		goto out_dev;
	void *gig = hp_alloc(SZ_1G);
	if (!vt_check("alloc_1g", gig != NULL))
		goto out_dev;
	struct vfdma_domain_info before, after;
	vfdma_domain_get_info(dom, &before);
	uint64_t iova_gig = 0;
	check_rc("map_1g", vfdma_map(dom, gig, SZ_1G, VFDMA_PROT_RW, 0, &iova_gig), 0);
	vfdma_domain_get_info(dom, &after);
	uint64_t calls = after.kernel_map_calls - before.kernel_map_calls;
	if (calls == 1)
		vt_pass("map_1g_one_call");
	else
		vt_fail("map_1g_one_call", "%llu kernel calls", (unsigned long long)calls);
	uint64_t t_iova = 0, t_len = 0;
	int trc = vfdma_vaddr_to_iova(dom, (char *)gig + SZ_1G - SZ_4K, &t_iova, &t_len);
	if (trc == 0 && t_iova == iova_gig + SZ_1G - SZ_4K)
		vt_pass("translate_1g");
	else
		vt_fail("translate_1g", "rc %d iova 0x%llx", trc, (unsigned long long)t_iova);
	check_rc("check_1g", vfdma_domain_check(dom), 0);
	vfdma_domain_get_info(dom, &before);
	check_rc("unmap_1g", vfdma_unmap(dom, iova_gig, SZ_1G), 0);
	vfdma_domain_get_info(dom, &after);
	calls = after.kernel_unmap_calls - before.kernel_unmap_calls;
	if (calls == 1)
		vt_pass("unmap_1g_one_call");
	else
		vt_fail("unmap_1g_one_call", "%llu kernel calls", (unsigned long long)calls);

	/* The same memory as a batch of 512 runs: coalesced, one call. */
	struct vfdma_map_run *runs = calloc(512, sizeof(*runs));
	if (!vt_check("alloc_runs", runs != NULL))
		goto out_dev;
	for (int i = 0; i < 512; i++)
		runs[i] = (struct vfdma_map_run){(char *)gig + (uint64_t)i * SZ_2M, SZ_2M, 0};
	vfdma_domain_get_info(dom, &before);
	check_rc("map_batch_1g", vfdma_map_batch(dom, runs, 512, VFDMA_PROT_RW, 0), 0);
	vfdma_domain_get_info(dom, &after);
	calls = after.kernel_map_calls - before.kernel_map_calls;
	if (calls == 1 && after.mappings == before.mappings + 1 &&
	    runs[511].iova == runs[0].iova + 511 * SZ_2M)
		vt_pass("map_batch_1g_one_call");
	else
		vt_fail("map_batch_1g_one_call", "%llu kernel calls, %llu new mappings",
			(unsigned long long)calls,
			(unsigned long long)(after.mappings - before.mappings));
	check_rc("unmap_batch_1g", vfdma_unmap(dom, runs[0].iova, SZ_1G), 0);

	/* Not coalesced: 512 mappings, 512 calls; unmapped gathered. */
	vfdma_domain_get_info(dom, &before);
	check_rc("map_batch_nocoalesce",
		 vfdma_map_batch(dom, runs, 512, VFDMA_PROT_RW, VFDMA_MAP_NOCOALESCE), 0);
	vfdma_domain_get_info(dom, &after);
	calls = after.kernel_map_calls - before.kernel_map_calls;
	if (calls == 512 && after.mappings == before.mappings + 512)
		vt_pass("map_batch_nocoalesce_calls");
	else
		vt_fail("map_batch_nocoalesce_calls", "%llu kernel calls", (unsigned long long)calls);
	check_rc("check_512", vfdma_domain_check(dom), 0);
	/* Adjacent IOVAs are gathered: one kernel call per contiguous IOVA stretch. */
	uint64_t *iovas = calloc(512, sizeof(*iovas));
	uint64_t stretches = 0;
	if (iovas) {
		for (int i = 0; i < 512; i++)
			iovas[i] = runs[i].iova;
		for (int i = 1; i < 512; i++) /* insertion sort: 512 entries */
			for (int j = i; j > 0 && iovas[j - 1] > iovas[j]; j--) {
				uint64_t t = iovas[j];
				iovas[j] = iovas[j - 1];
				iovas[j - 1] = t;
			}
		for (int i = 0; i < 512; i++)
			if (!i || iovas[i] != iovas[i - 1] + SZ_2M)
				stretches++;
		free(iovas);
	}
	vfdma_domain_get_info(dom, &before);
	check_rc("unmap_batch_512", vfdma_unmap_batch(dom, runs, 512), 0);
	vfdma_domain_get_info(dom, &after);
	calls = after.kernel_unmap_calls - before.kernel_unmap_calls;
	if (stretches && calls == stretches)
		vt_pass("unmap_batch_gathered");
	else
		vt_fail("unmap_batch_gathered", "%llu kernel calls for %llu IOVA stretches",
			(unsigned long long)calls, (unsigned long long)stretches);
	printf("# unmap_batch: 512 mappings in %llu IOVA stretch(es), %llu kernel call(s)\n",
	       (unsigned long long)stretches, (unsigned long long)calls);
	free(runs);
	munmap(gig, SZ_1G);

	/* A mapping left for close to clean up. */
	check_rc("map_left_for_close", vfdma_map(dom, huge, SZ_2M, VFDMA_PROT_RW, 0, &iova_huge), 0);
	check_rc("check_final", vfdma_domain_check(dom), 0);
	vfdma_domain_get_info(dom, &info);
	if (!info.broken)
		vt_pass("not_broken");
	else
		vt_fail("not_broken", "domain marked broken");
out_dev:
	check_rc("device_close", vfdma_device_close(dev), 0);
out:
	check_rc("close", vfdma_domain_close(dom), 0);
	int fds1 = count_fds();
	if (fds0 == fds1)
		vt_pass("close_releases_fds");
	else
		vt_fail("close_releases_fds", "%d fds before, %d after", fds0, fds1);
	if (huge)
		munmap(huge, SZ_2M);
	free(small);
}

static void part_attach_busy(const char *bdf)
{
	int fds0 = count_fds();
	struct vfdma_domain *dom = vfdma_domain_open(NULL);
	if (!vt_check("busy_open", dom != NULL))
		return;
	void *buf = hp_alloc(SZ_2M);
	if (!vt_check("busy_alloc", buf != NULL))
		goto out;
	memset(buf, 0xa5, SZ_2M);
	/* 0xfee00000 is usable until a device brings its MSI window. */
	uint64_t iova = MSI_FIRST;
	check_rc("busy_map_in_msi_window",
		 vfdma_map(dom, buf, SZ_2M, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &iova), 0);
	int fds1 = count_fds();
	errno = 0;
	struct vfdma_device *dev = vfdma_device_open(dom, bdf, 0);
	if (!dev && errno == EBUSY)
		vt_pass("busy_attach_refused");
	else
		vt_fail("busy_attach_refused", "device %p, errno %d (%s)", (void *)dev, errno,
			strerror(errno));
	if (dev)
		vfdma_device_close(dev);
	int fds2 = count_fds();
	if (fds1 == fds2)
		vt_pass("busy_no_fd_leak");
	else
		vt_fail("busy_no_fd_leak", "%d fds before the attach, %d after", fds1, fds2);

	struct vfdma_domain_info info;
	vfdma_domain_get_info(dom, &info);
	void *va = NULL;
	uint64_t len = 0;
	int trc = vfdma_iova_to_vaddr(dom, MSI_FIRST + 0x1000, &va, &len);
	if (info.nr_devices == 0 && info.mappings == 1 && trc == 0 && va == (char *)buf + 0x1000)
		vt_pass("busy_mapping_still_there");
	else
		vt_fail("busy_mapping_still_there", "%u devices, %llu mappings, translate %d",
			info.nr_devices, (unsigned long long)info.mappings, trc);
	struct vfdma_iova_range r[16];
	int n = vfdma_domain_ranges(dom, r, 16);
	if (n >= 1 && n <= 16 && range_holds(r, n, MSI_FIRST, MSI_LAST))
		vt_pass("busy_ranges_unchanged");
	else
		vt_fail("busy_ranges_unchanged", "%d ranges", n);
	/* check probes the kernel: the mapping is really still in the IOAS. */
	check_rc("busy_check", vfdma_domain_check(dom), 0);
	/* Still usable: a second mapping next to it, then both go. */
	uint64_t iova2 = MSI_FIRST + SZ_2M;
	void *buf2 = hp_alloc(SZ_2M);
	check_rc("busy_map_next",
		 buf2 ? vfdma_map(dom, buf2, SZ_2M, VFDMA_PROT_RW, VFDMA_MAP_FIXED, &iova2) : -ENOMEM, 0);
	check_rc("busy_unmap", vfdma_unmap(dom, MSI_FIRST, SZ_2M), 0);
	check_rc("busy_unmap_next", vfdma_unmap(dom, iova2, SZ_2M), 0);
	/* With the window free again the same device attaches. */
	dev = vfdma_device_open(dom, bdf, 0);
	if (vt_check("busy_attach_after_unmap", dev != NULL))
		check_rc("busy_device_close", vfdma_device_close(dev), 0);
	check_rc("busy_check_final", vfdma_domain_check(dom), 0);
	if (buf2)
		munmap(buf2, SZ_2M);
out:
	check_rc("busy_close", vfdma_domain_close(dom), 0);
	if (buf)
		munmap(buf, SZ_2M);
	int fds3 = count_fds();
	if (fds0 == fds3)
		vt_pass("busy_close_releases_fds");
	else
		vt_fail("busy_close_releases_fds", "%d fds before, %d after", fds0, fds3);
}

static bool ranges_equal(struct vfdma_domain *dom, const struct vfdma_iova_range *r, int n)
{
	struct vfdma_iova_range now[16];
	int m = vfdma_domain_ranges(dom, now, 16);
	return m == n && !memcmp(now, r, (size_t)n * sizeof(*r));
}

/*
 * Part 4: every system call and allocation of domain open, device attach,
 * map and domain close fails in turn (the nth call, n = 1, 2, ... until the
 * operation no longer reaches an injected failure).  After each failure
 * the operation returned an error, no fd leaked, and the domain (ranges,
 * mappings, the kernel's view through check) is as before.
 */
static void part_sweep(const char *bdf)
{
	char why[160] = "";
	unsigned points = 0, n;
	int fds0 = count_fds();

	/* Domain open. */
	for (n = 1; n < 1000 && !*why; n++) {
		vfd_fault_arm(VFD_SYS_ANY, n, ENOMEM, false);
		errno = 0;
		struct vfdma_domain *dom = vfdma_domain_open(NULL);
		int err = errno;
		unsigned long injected = vfd_fault_disarm();
		if (dom)
			vfdma_domain_close(dom);
		else if (!err)
			snprintf(why, sizeof(why), "n=%u: NULL without errno", n);
		if (!*why && count_fds() != fds0)
			snprintf(why, sizeof(why), "n=%u: %d fds, %d before", n, count_fds(), fds0);
		if (!injected)
			break;
		points++;
	}
	if (*why)
		vt_fail("sweep_domain_open", "%s", why);
	else
		printf("PASS sweep_domain_open: %u injection points\n", points);

	/* Device attach, with a mapping in place. */
	struct vfdma_domain *dom = vfdma_domain_open(NULL);
	void *buf = hp_alloc(SZ_2M);
	uint64_t iova = 0;
	if (!dom || !buf || vfdma_map(dom, buf, SZ_2M, VFDMA_PROT_RW, 0, &iova)) {
		vt_fail("sweep_setup", "domain %p buffer %p", (void *)dom, buf);
		goto out;
	}
	struct vfdma_iova_range r0[16];
	int nr0 = vfdma_domain_ranges(dom, r0, 16);
	int fds1 = count_fds();
	points = 0;
	*why = 0;
	for (n = 1; n < 1000 && !*why; n++) {
		vfd_fault_arm(VFD_SYS_ANY, n, ENOMEM, false);
		errno = 0;
		struct vfdma_device *dev = vfdma_device_open(dom, bdf, 0);
		int err = errno;
		unsigned long injected = vfd_fault_disarm();
		struct vfdma_domain_info info;
		if (dev) {
			/* Recovered; the ranges stay narrowed after the close (by design). */
			vfdma_device_close(dev);
			nr0 = vfdma_domain_ranges(dom, r0, 16);
		} else if (!err) {
			snprintf(why, sizeof(why), "n=%u: NULL without errno", n);
		} else if (count_fds() != fds1) {
			snprintf(why, sizeof(why), "n=%u (%s): %d fds, %d before", n, strerror(err),
				 count_fds(), fds1);
		} else if (!ranges_equal(dom, r0, nr0)) {
			snprintf(why, sizeof(why), "n=%u (%s): ranges changed", n, strerror(err));
		} else if (vfdma_domain_get_info(dom, &info) || info.nr_devices || info.mappings != 1) {
			snprintf(why, sizeof(why), "n=%u (%s): %u devices, %llu mappings", n,
				 strerror(err), info.nr_devices, (unsigned long long)info.mappings);
		} else if (vfdma_domain_check(dom)) {
			snprintf(why, sizeof(why), "n=%u (%s): check failed", n, strerror(err));
		}
		if (!injected)
			break;
		points++;
	}
	if (*why)
		vt_fail("sweep_device_open", "%s", why);
	else
		printf("PASS sweep_device_open: %u injection points\n", points);

	/* Map, with the device attached. */
	struct vfdma_device *dev = vfdma_device_open(dom, bdf, 0);
	void *buf2 = hp_alloc(SZ_2M);
	if (!dev || !buf2) {
		vt_fail("sweep_map_setup", "device %p buffer %p", (void *)dev, buf2);
		goto out;
	}
	points = 0;
	*why = 0;
	for (n = 1; n < 1000 && !*why; n++) {
		uint64_t io = 0;
		vfd_fault_arm(VFD_SYS_ANY, n, ENOMEM, false);
		int rc = vfdma_map(dom, buf2, SZ_2M, VFDMA_PROT_RW, 0, &io);
		unsigned long injected = vfd_fault_disarm();
		struct vfdma_domain_info info;
		if (!rc) {
			vfdma_unmap(dom, io, SZ_2M);
		} else if (vfdma_domain_get_info(dom, &info) || info.mappings != 1 || info.broken) {
			snprintf(why, sizeof(why), "n=%u (%d): %llu mappings, broken %d", n, rc,
				 (unsigned long long)info.mappings, info.broken);
		} else if (vfdma_domain_check(dom)) {
			snprintf(why, sizeof(why), "n=%u (%d): check failed", n, rc);
		}
		if (!injected)
			break;
		points++;
	}
	if (*why)
		vt_fail("sweep_map", "%s", why);
	else
		printf("PASS sweep_map: %u injection points\n", points);
	vfdma_device_close(dev);
	munmap(buf2, SZ_2M);

	/* Domain close with a device and a mapping: releases everything anyway. */
	vfdma_domain_close(dom);
	dom = NULL;
	points = 0;
	*why = 0;
	for (n = 1; n < 1000 && !*why; n++) {
		struct vfdma_domain *d = vfdma_domain_open(NULL);
		struct vfdma_device *v = d ? vfdma_device_open(d, bdf, 0) : NULL;
		uint64_t io = 0;
		if (!v || vfdma_map(d, buf, SZ_2M, VFDMA_PROT_RW, 0, &io)) {
			snprintf(why, sizeof(why), "n=%u: setup failed", n);
			vfdma_domain_close(d);
			break;
		}
		vfd_fault_arm(VFD_SYS_ANY, n, ENOMEM, false);
		vfdma_domain_close(d);
		unsigned long injected = vfd_fault_disarm();
		if (count_fds() != fds0)
			snprintf(why, sizeof(why), "n=%u: %d fds, %d before", n, count_fds(), fds0);
		if (!injected)
			break;
		points++;
	}
	if (*why)
		vt_fail("sweep_domain_close", "%s", why);
	else
		printf("PASS sweep_domain_close: %u injection points\n", points);
	fflush(stdout);
out:
	vfdma_domain_close(dom);
	if (buf)
		munmap(buf, SZ_2M);
}

/* This process's /dev/iommu fd (the domain's), or -1. */
static int find_iommufd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int fd = -1;
	while (d && (de = readdir(d))) {
		char link[300], target[64];
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = 0;
			if (!strcmp(target, "/dev/iommu"))
				fd = atoi(de->d_name);
		}
	}
	if (d)
		closedir(d);
	return fd;
}

/* Unmap [iova, iova + len) behind vfdma's back; returns the IOAS ID or 0. */
static uint32_t raw_unmap(int fd, uint64_t iova, uint64_t len)
{
	/* The domain's IOAS is the first object of its iommufd: try the first few IDs. */
	for (uint32_t id = 1; id < 8; id++) {
		struct iommu_ioas_unmap u = {.size = sizeof(u), .ioas_id = id, .iova = iova, .length = len};
		if (!ioctl(fd, IOMMU_IOAS_UNMAP, &u) && u.length == len)
			return id;
	}
	return 0;
}

/*
 * Part 3: vfdma_domain_check() asks the kernel.  A mapping removed behind
 * vfdma's back, or replaced by a read-only one, is found and the domain is
 * marked broken (maps then fail with -EIO); close still cleans up.
 */
static void part_check_detects(void)
{
	int fds0 = count_fds();
	void *buf = hp_alloc(SZ_2M);
	for (int round = 0; round < 2 && buf; round++) {
		const char *name = round ? "check_finds_readonly_remap" : "check_finds_missing_map";
		struct vfdma_domain *dom = vfdma_domain_open(NULL);
		uint64_t iova = 0;
		if (!dom || vfdma_map(dom, buf, SZ_2M, VFDMA_PROT_RW, 0, &iova)) {
			vt_fail(name, "setup");
			vfdma_domain_close(dom);
			continue;
		}
		int fd = find_iommufd();
		uint32_t ioas = fd >= 0 ? raw_unmap(fd, iova, SZ_2M) : 0;
		if (!ioas) {
			vt_fail(name, "could not unmap behind the library's back (fd %d)", fd);
			vfdma_domain_close(dom);
			continue;
		}
		if (round) {
			struct iommu_ioas_map m = {
				.size = sizeof(m),
				.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE,
				.ioas_id = ioas,
				.user_va = (uintptr_t)buf,
				.length = SZ_2M,
				.iova = iova,
			};
			if (ioctl(fd, IOMMU_IOAS_MAP, &m)) {
				vt_fail(name, "read-only remap: %s", strerror(errno));
				vfdma_domain_close(dom);
				continue;
			}
		}
		int rc = vfdma_domain_check(dom);
		uint64_t io2 = 0;
		int rc2 = vfdma_map(dom, buf, SZ_2M, VFDMA_PROT_READ, 0, &io2);
		if (rc == -EIO && rc2 == -EIO)
			vt_pass(name);
		else
			vt_fail(name, "check %d, map after it %d (expected -EIO, -EIO)", rc, rc2);
		vfdma_domain_close(dom);
	}
	if (buf)
		munmap(buf, SZ_2M);
	int fds1 = count_fds();
	if (fds0 == fds1)
		vt_pass("check_close_releases_fds");
	else
		vt_fail("check_close_releases_fds", "%d fds before, %d after", fds0, fds1);
}

struct mapper {
	struct vfdma_domain *dom;
	char *mem; /* 64 pages of its own */
	int errors;
	char why[96];
};

static void *mapper_main(void *arg)
{
	struct mapper *m = arg;
	for (int it = 0; it < 200 && !m->errors; it++) {
		int page = it % 64;
		void *va = m->mem + (size_t)page * SZ_4K;
		uint64_t iova = 0, t = 0, len = 0;
		int rc = vfdma_map(m->dom, va, SZ_4K, VFDMA_PROT_RW, 0, &iova);
		if (!rc)
			rc = vfdma_vaddr_to_iova(m->dom, va, &t, &len);
		if (!rc && t != iova)
			rc = -EFAULT;
		int rc2 = rc ? 0 : vfdma_unmap(m->dom, iova, SZ_4K);
		if (rc || rc2) {
			m->errors++;
			snprintf(m->why, sizeof(m->why), "iteration %d: %d/%d", it, rc, rc2);
		}
	}
	return NULL;
}

/*
 * Part 5: four threads map, translate and unmap 4 KiB buffers at once
 * against the kernel (op_lock is shared, so their ioctls overlap).
 */
static void part_threads(const char *bdf)
{
	struct vfdma_domain *dom = vfdma_domain_open(NULL);
	struct vfdma_device *dev = dom ? vfdma_device_open(dom, bdf, 0) : NULL;
	struct mapper m[4];
	pthread_t th[4];
	if (!vt_check("threads_setup", dev != NULL)) {
		vfdma_domain_close(dom);
		return;
	}
	for (int i = 0; i < 4; i++) {
		m[i] = (struct mapper){.dom = dom};
		if (posix_memalign((void **)&m[i].mem, SZ_4K, 64 * SZ_4K))
			m[i].mem = NULL;
	}
	int started = 0;
	bool running[4] = {false};
	for (int i = 0; i < 4; i++) {
		running[i] = m[i].mem && !pthread_create(&th[i], NULL, mapper_main, &m[i]);
		started += running[i];
		if (!running[i])
			m[i].errors = 1;
	}
	for (int i = 0; i < 4; i++)
		if (running[i])
			pthread_join(th[i], NULL);
	int errors = 0;
	for (int i = 0; i < 4; i++) {
		if (m[i].errors && !errors)
			vt_fail("threads_map_unmap", "thread %d: %s", i, m[i].why[0] ? m[i].why : "start");
		errors += m[i].errors;
	}
	struct vfdma_domain_info info;
	vfdma_domain_get_info(dom, &info);
	if (!errors && started == 4 && info.mappings == 0 && info.kernel_map_calls == 800)
		vt_pass("threads_map_unmap");
	else if (!errors)
		vt_fail("threads_map_unmap", "%d threads, %llu mappings left, %llu map calls", started,
			(unsigned long long)info.mappings, (unsigned long long)info.kernel_map_calls);
	check_rc("threads_check", vfdma_domain_check(dom), 0);
	vfdma_device_close(dev);
	vfdma_domain_close(dom);
	for (int i = 0; i < 4; i++)
		free(m[i].mem);
}

int main(void)
{
	const char *be = getenv("VFDMA_BACKEND");
	if (!be || strcmp(be, "iommufd")) {
		vt_skip("iommufd", "VFDMA_BACKEND is %s, not iommufd", be ? be : "unset");
		return VT_EXIT_SKIP;
	}
	/* Errors from the library on stderr (the console log); VFDMA_LOG=debug for more. */
	if (!getenv("VFDMA_LOG"))
		vfdma_log_set_level(VFDMA_LOG_ERROR);
	char bdf[32];
	if (!first_bdf(bdf, sizeof(bdf))) {
		vt_fail("device", "no device bound to vfio-pci ($VFDMA_VFIO_BDFS is empty)");
		return vt_exit_status();
	}
	part_domain(bdf);
	part_attach_busy(bdf);
	part_check_detects();
	part_threads(bdf);
	part_sweep(bdf);
	return vt_exit_status();
}
