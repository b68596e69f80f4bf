// SPDX-License-Identifier: BSD-3-Clause
// The VFIO side where no kernel is needed: PCI access on sim devices is
// refused with specific errors and changes nothing; the VFIO backends fail
// cleanly (ENODEV, no fd left behind) on a machine without VFIO; the sysfs
// helpers tell a missing device from a missing attribute.
#include "vfdma_test.h"

#include <dirent.h>
#include <unistd.h>

extern "C" {
#include "iommu/domain.h"
#include "iommu/vfio.h"
}

namespace
{
int nr_fds()
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

vfdma_domain *open_backend(vfdma_backend b)
{
	vfdma_domain_opts o = {};
	o.backend = b;
	return vfdma_domain_open(&o);
}
} // namespace

TEST(VfioPci, SimDevicesRefusePciAccess)
{
	vfdma_domain *d = open_backend(VFDMA_BACKEND_SIM);
	ASSERT_NE(d, nullptr);
	vfdma_device *dev = vfdma_sim_device_create(d);
	ASSERT_NE(dev, nullptr);
	void *a = nullptr;
	uint64_t len = 0;
	uint32_t v = 0;
	int efd[2] = {-1, -1};
	EXPECT_EQ(vfdma_pci_bar_map(dev, 0, &a, &len), -ENOTSUP);
	EXPECT_EQ(a, nullptr);
	EXPECT_EQ(vfdma_pci_bar_read(dev, 0, 0, &v, 4), -ENOTSUP);
	EXPECT_EQ(vfdma_pci_bar_write(dev, 0, 0, &v, 4), -ENOTSUP);
	EXPECT_EQ(vfdma_pci_cfg_read(dev, 0, &v, 4), -ENOTSUP);
	EXPECT_EQ(vfdma_pci_cfg_write(dev, 0, &v, 4), -ENOTSUP);
	EXPECT_EQ(vfdma_pci_irq_enable(dev, VFDMA_IRQ_AUTO, 1, efd), -ENOTSUP);
	EXPECT_EQ(efd[0], -1);
	EXPECT_EQ(vfdma_pci_irq_disable(dev), -ENOTSUP);
	EXPECT_EQ(vfdma_pci_reset(dev), -ENOTSUP);
	EXPECT_EQ(dev->pci, nullptr);

	// Device info works: a sim device has no group and no node.
	vfdma_device_info info;
	ASSERT_EQ(vfdma_device_get_info(dev, &info), 0);
	EXPECT_EQ(strncmp(info.bdf, "sim:", 4), 0);
	EXPECT_EQ(info.iommu_group, -1);
	EXPECT_EQ(info.numa_node, -1);

	// Bad arguments come first, with their own errno.
	EXPECT_EQ(vfdma_pci_bar_map(nullptr, 0, &a, &len), -EINVAL);
	EXPECT_EQ(vfdma_pci_bar_map(dev, 6, &a, &len), -EINVAL);
	EXPECT_EQ(vfdma_pci_bar_map(dev, 0, nullptr, &len), -EINVAL);
	EXPECT_EQ(vfdma_pci_bar_read(dev, 6, 0, &v, 4), -EINVAL);
	EXPECT_EQ(vfdma_pci_bar_read(dev, 0, 0, nullptr, 4), -EINVAL);
	EXPECT_EQ(vfdma_pci_bar_write(dev, 0, 0, &v, 0), -EINVAL);
	EXPECT_EQ(vfdma_pci_cfg_read(nullptr, 0, &v, 4), -EINVAL);
	EXPECT_EQ(vfdma_pci_cfg_write(dev, 0, nullptr, 4), -EINVAL);
	EXPECT_EQ(vfdma_pci_irq_enable(dev, VFDMA_IRQ_AUTO, 0, efd), -EINVAL);
	EXPECT_EQ(vfdma_pci_irq_enable(dev, VFDMA_IRQ_INTX, 2, efd), -EINVAL);
	EXPECT_EQ(vfdma_pci_irq_enable(dev, (vfdma_irq_type)7, 1, efd), -EINVAL);
	EXPECT_EQ(vfdma_pci_irq_enable(dev, VFDMA_IRQ_MSIX, 1, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_pci_irq_disable(nullptr), -EINVAL);
	EXPECT_EQ(vfdma_pci_reset(nullptr), -EINVAL);
	EXPECT_EQ(vfdma_device_get_info(nullptr, &info), -EINVAL);
	EXPECT_EQ(vfdma_device_get_info(dev, nullptr), -EINVAL);
	EXPECT_EQ(vfdma_device_close(dev), 0);
	EXPECT_EQ(vfdma_domain_close(d), 0);
}

// Where /dev/vfio/vfio does not exist (the build machines), the container
// backends say ENODEV and leave nothing open, under fault injection too.
TEST(VfioBackends, NoVfioMeansEnodev)
{
	if (access("/dev/vfio/vfio", F_OK) == 0)
		GTEST_SKIP() << "this machine has VFIO: covered by the VM tier";
	int fds = nr_fds();
	for (vfdma_backend b : {VFDMA_BACKEND_TYPE1, VFDMA_BACKEND_NOIOMMU}) {
		errno = 0;
		EXPECT_EQ(open_backend(b), nullptr);
		EXPECT_EQ(errno, ENODEV) << vfdma_backend_name(b);
		for (unsigned n = 1; n < 20; n++) {
			vfd_fault_arm(VFD_SYS_ANY, n, EIO, false);
			vfdma_domain *d = open_backend(b);
			unsigned long injected = vfd_fault_disarm();
			EXPECT_EQ(d, nullptr);
			if (!injected)
				break;
		}
	}
	EXPECT_EQ(nr_fds(), fds);
}

TEST(VfioSysfs, MissingDeviceIsEnodev)
{
	char buf[64];
	int64_t v;
	int g;
	EXPECT_EQ(vfd_pci_sysfs_read("ffff:ff:1f.7", "vendor", buf, sizeof(buf)), -ENODEV);
	EXPECT_EQ(vfd_pci_sysfs_num("ffff:ff:1f.7", "vendor", &v), -ENODEV);
	EXPECT_EQ(vfd_pci_sysfs_link("ffff:ff:1f.7", "driver", buf, sizeof(buf)), -ENODEV);
	EXPECT_EQ(vfd_pci_iommu_group("ffff:ff:1f.7", &g), -ENODEV);
	EXPECT_EQ(vfd_vfio_cdev_path("ffff:ff:1f.7", buf, sizeof(buf)), -ENODEV);
	EXPECT_EQ(vfd_pci_check_vfio_bound("ffff:ff:1f.7"), -ENODEV);
}

// A real PCI device of this machine, if sysfs shows one: IDs parse, and a
// device that is not on vfio-pci is refused.
TEST(VfioSysfs, HostDeviceAttributes)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	struct dirent *e = nullptr;
	while (d && (e = readdir(d)) && e->d_name[0] == '.')
		;
	if (!d || !e) {
		if (d)
			closedir(d);
		GTEST_SKIP() << "no PCI devices visible";
	}
	std::string bdf = e->d_name;
	closedir(d);
	int64_t vendor = 0;
	ASSERT_EQ(vfd_pci_sysfs_num(bdf.c_str(), "vendor", &vendor), 0) << bdf;
	EXPECT_GT(vendor, 0);
	EXPECT_LE(vendor, 0xffff);
	char buf[8];
	EXPECT_EQ(vfd_pci_sysfs_read(bdf.c_str(), "no_such_attribute", buf, sizeof(buf)), -ENOENT);
	char drv[64];
	if (vfd_pci_sysfs_link(bdf.c_str(), "driver", drv, sizeof(drv)) == 0 &&
	    strcmp(drv, "vfio-pci")) {
		EXPECT_EQ(vfd_pci_check_vfio_bound(bdf.c_str()), -ENODEV);
	}
}
