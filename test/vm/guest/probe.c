// SPDX-License-Identifier: BSD-3-Clause
/*
 * probe - prove that the guest offers what vfdma's backends need.
 *
 * Runs in the VM tier's guest with one NVMe device bound to vfio-pci
 * (its PCI address in $VFDMA_VFIO_BDFS).  $VFDMA_BACKEND picks the half:
 *
 *   iommufd  /dev/iommu: IOAS alloc, IOVA ranges, map/unmap of 2 MiB (and
 *            1 GiB if reserved) hugepage memory; the device's VFIO cdev:
 *            bind, attach to the IOAS, map/unmap with the device
 *            attached, detach.
 *   type1    /dev/vfio/vfio container + /dev/vfio/<group>: API version,
 *            TYPE1v2, set container and IOMMU, get info, device fd,
 *            MAP_DMA/UNMAP_DMA of 2 MiB hugepage memory.
 *
 * Each step is its own PASS/FAIL line; after the first failure the
 * remaining steps of that half are not attempted (they would fail for
 * the same reason and hide it).  This calls the kernel directly on
 * purpose: it checks the environment, not libvfdma.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "vmtest.h"

#define SZ_2M (2UL << 20)
#define SZ_1G (1UL << 30)

#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif

/* Hugepage memory of @size (2 MiB or 1 GiB pages), touched so it is backed. */
static void *huge_alloc(size_t size)
{
	int shift = size >= SZ_1G ? 30 : 21;
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (shift << MAP_HUGE_SHIFT), -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0xa5, 4096);
	return p;
}

/* The first PCI address in $VFDMA_VFIO_BDFS, or NULL. */
static const char *vfio_bdf(void)
{
	static char bdf[32];
	const char *list = getenv("VFDMA_VFIO_BDFS");

	if (!list || sscanf(list, "%31s", bdf) != 1)
		return NULL;
	return bdf;
}

/* Path of the device's VFIO cdev (/dev/vfio/devices/vfioN) into @path. */
static int cdev_path(const char *bdf, char *path, size_t len)
{
	char dir[PATH_MAX];
	int n = -1;

	for (int i = 0; i < 64 && n < 0; i++) {
		snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/vfio-dev/vfio%d", bdf, i);
		if (access(dir, F_OK) == 0)
			n = i;
	}
	if (n < 0) {
		errno = ENOENT;
		return -1;
	}
	snprintf(path, len, "/dev/vfio/devices/vfio%d", n);
	return 0;
}

/*
 * Map @len bytes at @va into @ioas at the fixed @iova: vfdma owns IOVA
 * allocation, so FIXED_IOVA is the mode that matters.
 */
static int ioas_map(int iommufd, uint32_t ioas, void *va, size_t len, uint64_t iova)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas,
		.user_va = (uintptr_t)va,
		.length = len,
		.iova = iova,
	};

	return ioctl(iommufd, IOMMU_IOAS_MAP, &map);
}

static int ioas_unmap(int iommufd, uint32_t ioas, uint64_t iova, size_t len)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap),
		.ioas_id = ioas,
		.iova = iova,
		.length = len,
	};

	if (ioctl(iommufd, IOMMU_IOAS_UNMAP, &unmap))
		return -1;
	if (unmap.length != len) {
		errno = EIO;
		return -1;
	}
	return 0;
}

/* Map and unmap @len bytes of hugepage memory: two steps named @tag. */
static bool ioas_map_unmap(int iommufd, uint32_t ioas, size_t len, const char *tag)
{
	char name[64];
	uint64_t iova = len; /* naturally aligned, clear of 0 and of the MSI window */
	void *buf = huge_alloc(len);
	bool ok;

	snprintf(name, sizeof(name), "ioas_map_%s", tag);
	if (!buf) {
		if (len >= SZ_1G) {
			vt_skip(name, "no 1 GiB hugepage available (hugepagesz=1G hugepages=N on the cmdline)");
			return true;
		}
		vt_fail(name, "mmap of hugepage memory: %s", strerror(errno));
		return false;
	}
	ok = vt_check(name, ioas_map(iommufd, ioas, buf, len, iova) == 0);
	if (ok) {
		snprintf(name, sizeof(name), "ioas_unmap_%s", tag);
		ok = vt_check(name, ioas_unmap(iommufd, ioas, iova, len) == 0);
	}
	munmap(buf, len);
	return ok;
}

static void probe_iommufd(const char *bdf)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct iommu_iova_range ranges[16];
	struct iommu_ioas_iova_ranges rq = {
		.size = sizeof(rq),
		.num_iovas = 16,
		.allowed_iovas = (uintptr_t)ranges,
	};
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	struct vfio_device_detach_iommufd_pt detach = { .argsz = sizeof(detach) };
	char path[64];
	int iommufd, dev;

	iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (!vt_check("open_dev_iommu", iommufd >= 0))
		return;
	if (!vt_check("ioas_alloc", ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc) == 0))
		goto out;
	rq.ioas_id = alloc.out_ioas_id;
	if (!vt_check("ioas_iova_ranges", ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &rq) == 0 && rq.num_iovas > 0))
		goto out;
	if (!ioas_map_unmap(iommufd, alloc.out_ioas_id, SZ_2M, "2m"))
		goto out;
	if (!ioas_map_unmap(iommufd, alloc.out_ioas_id, SZ_1G, "1g"))
		goto out;

	if (!bdf) {
		vt_fail("cdev_open", "no device bound to vfio-pci ($VFDMA_VFIO_BDFS is empty)");
		goto out;
	}
	if (!vt_check("cdev_find", cdev_path(bdf, path, sizeof(path)) == 0))
		goto out;
	dev = open(path, O_RDWR | O_CLOEXEC);
	if (!vt_check("cdev_open", dev >= 0))
		goto out;
	bind.iommufd = iommufd;
	if (!vt_check("cdev_bind_iommufd", ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind) == 0))
		goto out_dev;
	attach.pt_id = alloc.out_ioas_id;
	if (!vt_check("cdev_attach_ioas", ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) == 0))
		goto out_dev;
	/* With a real (emulated VT-d) domain behind the IOAS now. */
	if (!ioas_map_unmap(iommufd, alloc.out_ioas_id, SZ_2M, "2m_attached"))
		goto out_dev;
	vt_check("cdev_detach", ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach) == 0);
out_dev:
	close(dev);
out:
	close(iommufd);
}

static void probe_type1(const char *bdf)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct vfio_iommu_type1_info info = { .argsz = sizeof(info) };
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap) };
	char link[PATH_MAX], target[PATH_MAX], path[64];
	const char *slash;
	int container, group = -1, dev;
	ssize_t n;
	void *buf;

	container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (!vt_check("container_open", container >= 0))
		return;
	errno = EPROTO;
	if (!vt_check("api_version", ioctl(container, VFIO_GET_API_VERSION) == VFIO_API_VERSION))
		goto out;
	errno = ENOTSUP;
	if (!vt_check("has_type1v2", ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) == 1))
		goto out;

	if (!bdf) {
		vt_fail("group_open", "no device bound to vfio-pci ($VFDMA_VFIO_BDFS is empty)");
		goto out;
	}
	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(link, target, sizeof(target) - 1);
	if (!vt_check("group_find", n > 0))
		goto out;
	target[n] = '\0';
	slash = strrchr(target, '/');
	snprintf(path, sizeof(path), "/dev/vfio/%d", atoi(slash ? slash + 1 : target));
	group = open(path, O_RDWR | O_CLOEXEC);
	if (!vt_check("group_open", group >= 0))
		goto out;
	errno = EBUSY;
	if (!vt_check("group_viable", ioctl(group, VFIO_GROUP_GET_STATUS, &status) == 0 &&
					      (status.flags & VFIO_GROUP_FLAGS_VIABLE)))
		goto out;
	if (!vt_check("group_set_container", ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) == 0))
		goto out;
	if (!vt_check("set_iommu_type1v2", ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) == 0))
		goto out;
	if (!vt_check("iommu_get_info", ioctl(container, VFIO_IOMMU_GET_INFO, &info) == 0))
		goto out;
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (!vt_check("group_get_device_fd", dev >= 0))
		goto out;
	close(dev);

	buf = huge_alloc(SZ_2M);
	if (!vt_check("hugepage_alloc_2m", buf != NULL))
		goto out;
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	map.vaddr = (uintptr_t)buf;
	map.iova = 1UL << 30; /* below the MSI window at 0xfee00000 */
	map.size = SZ_2M;
	if (vt_check("map_dma_2m", ioctl(container, VFIO_IOMMU_MAP_DMA, &map) == 0)) {
		unmap.iova = map.iova;
		unmap.size = map.size;
		errno = EIO;
		vt_check("unmap_dma_2m", ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) == 0 &&
						 unmap.size == SZ_2M);
	}
	munmap(buf, SZ_2M);
out:
	if (group >= 0)
		close(group);
	close(container);
}

int main(void)
{
	const char *backend = getenv("VFDMA_BACKEND");

	if (backend && strcmp(backend, "iommufd") == 0) {
		probe_iommufd(vfio_bdf());
	} else if (backend && strcmp(backend, "type1") == 0) {
		probe_type1(vfio_bdf());
	} else {
		fprintf(stderr, "probe: set VFDMA_BACKEND to iommufd or type1\n");
		return EXIT_FAILURE;
	}
	return vt_exit_status();
}
