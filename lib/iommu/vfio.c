/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Helpers shared by the VFIO backends: sysfs lookups for a PCI device, and
 * the container + group machinery of type1 and noiommu (see vfio.h).
 *
 * Groups.  The kernel lets a group be opened once: two devices of one group
 * in one domain share a struct vfd_vfio_group, counted by its devices.  The
 * first group set into the container also sets its IOMMU type; when the
 * last group leaves, the kernel tears the IOMMU down and every mapping with
 * it (the core keeps its table and replays it on the next attach).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "iommu/domain.h"
#include "iommu/vfio.h"
#include "util/log.h"
#include "util/sys.h"

#define PCI_SYSFS "/sys/bus/pci/devices/"

struct vfd_vfio_group {
	struct vfd_vfio_group *next;
	int num;
	int fd;
	unsigned int refs;
};

/* ---- sysfs ---- */

static int sysfs_path(char *out, size_t len, const char *bdf, const char *attr)
{
	int n = snprintf(out, len, PCI_SYSFS "%s%s%s", bdf, attr ? "/" : "", attr ? attr : "");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* A missing attribute of an existing device is -ENOENT; no device, -ENODEV. */
static int missing(const char *bdf, int rc)
{
	char path[128];
	if (rc != -ENOENT || sysfs_path(path, sizeof(path), bdf, NULL))
		return rc;
	return vfd_access(path, F_OK) == -ENOENT ? -ENODEV : rc;
}

int vfd_pci_sysfs_read(const char *bdf, const char *attr, char *buf, size_t len)
{
	char path[128];
	int rc = sysfs_path(path, sizeof(path), bdf, attr);
	if (rc)
		return rc;
	if (len < 2)
		return -EINVAL;
	int fd = vfd_open(path, O_RDONLY, 0);
	if (fd < 0)
		return missing(bdf, fd);
	ssize_t n = vfd_read(fd, buf, len - 1);
	vfd_close(fd);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

int vfd_pci_sysfs_num(const char *bdf, const char *attr, int64_t *val)
{
	char buf[32], *end;
	int rc = vfd_pci_sysfs_read(bdf, attr, buf, sizeof(buf));
	if (rc)
		return rc;
	errno = 0;
	long long v = strtoll(buf, &end, 0);
	if (errno || end == buf || *end)
		return -EINVAL;
	*val = v;
	return 0;
}

int vfd_pci_sysfs_link(const char *bdf, const char *link, char *buf, size_t len)
{
	char path[128], target[256];
	int rc = sysfs_path(path, sizeof(path), bdf, link);
	if (rc)
		return rc;
	ssize_t n = vfd_readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return missing(bdf, (int)n);
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, base);
	return 0;
}

int vfd_pci_iommu_group(const char *bdf, int *group)
{
	char name[32], *end;
	int rc = vfd_pci_sysfs_link(bdf, "iommu_group", name, sizeof(name));
	if (rc)
		return rc;
	long g = strtol(name, &end, 10);
	if (end == name || *end || g < 0 || g > INT32_MAX)
		return -EINVAL;
	*group = (int)g;
	return 0;
}

int vfd_vfio_cdev_path(const char *bdf, char *buf, size_t len)
{
	char path[128];
	int rc = sysfs_path(path, sizeof(path), bdf, "vfio-dev");
	if (rc)
		return rc;
	int fd = vfd_open(path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return missing(bdf, fd);
	/* The directory holds one entry, "vfioN". */
	char dents[1024];
	rc = -ENOENT;
	for (;;) {
		ssize_t n = vfd_getdents64(fd, dents, sizeof(dents));
		if (n <= 0) {
			if (n < 0)
				rc = (int)n;
			break;
		}
		for (ssize_t off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(dents + off);
			off += d->d_reclen;
			if (strncmp(d->d_name, "vfio", 4) || !d->d_name[4])
				continue;
			int w = snprintf(buf, len, "/dev/vfio/devices/%s", d->d_name);
			rc = w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
			goto out;
		}
	}
out:
	vfd_close(fd);
	return rc;
}

int vfd_pci_check_vfio_bound(const char *bdf)
{
	char drv[64];
	int rc = vfd_pci_sysfs_link(bdf, "driver", drv, sizeof(drv));
	if (rc == -ENODEV) {
		VFD_ERR("%s: no such PCI device", bdf);
		return -ENODEV;
	}
	if (rc == -ENOENT) {
		VFD_ERR("%s: bound to no driver; bind it to vfio-pci first", bdf);
		return -ENODEV;
	}
	if (rc)
		return rc;
	if (strcmp(drv, "vfio-pci")) {
		VFD_ERR("%s: bound to %s, not vfio-pci", bdf, drv);
		return -ENODEV;
	}
	return 0;
}

/* ---- container + groups ---- */

int vfd_container_open(struct vfd_container *c, unsigned long iommu_type,
		       const char *group_prefix)
{
	*c = (struct vfd_container){.fd = -1, .iommu_type = iommu_type,
				    .group_prefix = group_prefix};
	int fd = vfd_open("/dev/vfio/vfio", O_RDWR, 0);
	if (fd < 0)
		return fd == -ENOENT ? -ENODEV : fd;
	int rc = vfd_ioctl(fd, VFIO_GET_API_VERSION, NULL);
	if (rc >= 0 && rc != VFIO_API_VERSION) {
		VFD_ERR("/dev/vfio/vfio speaks VFIO API %d, not %d", rc, VFIO_API_VERSION);
		rc = -ENODEV;
	}
	if (rc >= 0) {
		rc = vfd_ioctl(fd, VFIO_CHECK_EXTENSION, (void *)iommu_type);
		if (rc == 0) {
			VFD_INFO("/dev/vfio/vfio does not offer IOMMU type %lu", iommu_type);
			rc = -ENODEV;
		}
	}
	if (rc < 0) {
		vfd_close(fd);
		return rc;
	}
	c->fd = fd;
	return 0;
}

static void group_close(struct vfd_container *c, struct vfd_vfio_group *g)
{
	if (vfd_ioctl(g->fd, VFIO_GROUP_UNSET_CONTAINER, NULL))
		VFD_WARN("group %d: VFIO_GROUP_UNSET_CONTAINER failed", g->num);
	vfd_close(g->fd);
	for (struct vfd_vfio_group **p = &c->groups; *p; p = &(*p)->next) {
		if (*p == g) {
			*p = g->next;
			break;
		}
	}
	c->nr_groups--;
	vfd_free(g);
}

void vfd_container_close(struct vfd_container *c)
{
	while (c->groups)
		group_close(c, c->groups);
	if (c->fd >= 0)
		vfd_close(c->fd);
	c->fd = -1;
}

/* Open group @num and put it into the container. */
static int group_open(struct vfd_container *c, int num, struct vfd_vfio_group **out)
{
	char path[64];
	snprintf(path, sizeof(path), "/dev/vfio/%s%d", c->group_prefix, num);
	struct vfd_vfio_group *g = vfd_calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->num = num;
	g->fd = vfd_open(path, O_RDWR, 0);
	int rc = g->fd < 0 ? g->fd : 0;
	if (rc) {
		VFD_ERR("%s: cannot open (%d)", path, rc);
		vfd_free(g);
		return rc == -ENOENT ? -ENODEV : rc;
	}
	struct vfio_group_status st = {.argsz = sizeof(st)};
	rc = vfd_ioctl(g->fd, VFIO_GROUP_GET_STATUS, &st);
	if (!rc && !(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		VFD_ERR("%s: group not viable: bind every device of IOMMU group %d to vfio-pci "
			"(or unbind it)",
			path, num);
		rc = -EPERM;
	}
	if (!rc)
		rc = vfd_ioctl(g->fd, VFIO_GROUP_SET_CONTAINER, &c->fd);
	if (!rc && !c->nr_groups) {
		rc = vfd_ioctl(c->fd, VFIO_SET_IOMMU, (void *)c->iommu_type);
		if (rc)
			vfd_ioctl(g->fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
	}
	if (rc) {
		vfd_close(g->fd);
		vfd_free(g);
		return rc;
	}
	g->next = c->groups;
	c->groups = g;
	c->nr_groups++;
	*out = g;
	return 0;
}

int vfd_container_attach(struct vfd_container *c, struct vfdma_device *dev)
{
	int rc = vfd_pci_check_vfio_bound(dev->bdf);
	int num = -1;
	if (!rc)
		rc = vfd_pci_iommu_group(dev->bdf, &num);
	if (rc == -ENOENT) {
		VFD_ERR("%s: no IOMMU group", dev->bdf);
		rc = -ENODEV;
	}
	if (rc)
		return rc;
	struct vfd_vfio_group *g = c->groups;
	while (g && g->num != num)
		g = g->next;
	bool fresh = !g;
	if (fresh) {
		rc = group_open(c, num, &g);
		if (rc)
			return rc;
	}
	int fd = vfd_ioctl(g->fd, VFIO_GROUP_GET_DEVICE_FD, dev->bdf);
	if (fd < 0) {
		VFD_ERR("%s: VFIO_GROUP_GET_DEVICE_FD failed (%d)", dev->bdf, fd);
		if (fresh)
			group_close(c, g);
		return fd;
	}
	g->refs++;
	dev->fd = fd;
	dev->be = g;
	return 0;
}

unsigned int vfd_container_detach(struct vfd_container *c, struct vfdma_device *dev)
{
	struct vfd_vfio_group *g = dev->be;
	if (dev->fd >= 0)
		vfd_close(dev->fd);
	dev->fd = -1;
	dev->be = NULL;
	if (g && !--g->refs)
		group_close(c, g);
	return c->nr_groups;
}
