/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdmactl list: the PCI devices, their driver, IOMMU group, NUMA node and
 * VFIO nodes, and whether vfdma can open each one now -- and if not, the
 * first thing in the way, in the order a user has to fix them.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

/* What stands between a device and vfdma_device_open(). */
struct verdict {
	bool usable;
	bool iommufd, type1, noiommu; /* backends that can open it now */
	char why[192];                /* the first obstacle, "" when usable */
};

/* Drivers that leave a group viable for VFIO: they never do DMA of their
 * own on the device (the kernel's driver_managed_dma). */
static bool viable_driver(const char *drv)
{
	return !drv[0] || !strcmp(drv, "vfio-pci") || !strcmp(drv, "pci-stub") ||
	       !strcmp(drv, "pcieport");
}

/* A group member that is bound to another driver, or false. */
static bool group_blocker(const struct ctl *c, const struct ctl_pci *p, char *who, size_t len)
{
	char dir[CTL_PATH];
	snprintf(dir, sizeof(dir), "%s/kernel/iommu_groups/%d/devices", c->sys, p->group);
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	for (struct dirent *e; !found && (e = readdir(d));) {
		struct ctl_pci other;
		if (e->d_name[0] == '.' || !strcmp(e->d_name, p->bdf))
			continue;
		if (ctl_pci_read(c, e->d_name, &other) == 0 && !viable_driver(other.driver)) {
			snprintf(who, len, "%s (driver %s)", other.bdf, other.driver);
			found = true;
		}
	}
	closedir(d);
	return found;
}

/* A device node that exists and this user may open read-write. */
static int node_ok(const struct ctl *c, const char *rel, char *why, size_t len)
{
	char path[CTL_PATH];
	snprintf(path, sizeof(path), "%s/%s", c->dev, rel);
	if (!ctl_exists(path)) {
		snprintf(why, len, "no %s/%s", c->dev, rel);
		return -ENOENT;
	}
	if (access(path, R_OK | W_OK) != 0) {
		snprintf(why, len, "no permission on %s/%s", c->dev, rel);
		return -EACCES;
	}
	return 0;
}

static void judge(const struct ctl *c, const struct ctl_pci *p, struct verdict *v)
{
	char who[96], rel[96], why_fd[160] = "", why_t1[160] = "";

	memset(v, 0, sizeof(*v));
	if (p->group < 0) {
		snprintf(v->why, sizeof(v->why), "no IOMMU group (IOMMU off or absent)");
		return;
	}
	if (strcmp(p->driver, "vfio-pci") != 0) {
		if (p->driver[0])
			snprintf(v->why, sizeof(v->why), "bound to %s, not vfio-pci", p->driver);
		else
			snprintf(v->why, sizeof(v->why), "no driver, not bound to vfio-pci");
		return;
	}
	if (group_blocker(c, p, who, sizeof(who))) {
		snprintf(v->why, sizeof(v->why), "IOMMU group %d also holds %s", p->group, who);
		return;
	}
	if (p->noiommu_group) {
		snprintf(rel, sizeof(rel), "vfio/noiommu-%d", p->group);
		v->noiommu = node_ok(c, "vfio/vfio", why_t1, sizeof(why_t1)) == 0 &&
			     node_ok(c, rel, why_t1, sizeof(why_t1)) == 0;
	} else {
		if (!p->cdev[0])
			snprintf(why_fd, sizeof(why_fd), "no vfio cdev (kernel without VFIO_DEVICE_CDEV?)");
		else if (node_ok(c, "iommu", why_fd, sizeof(why_fd)) == 0) {
			snprintf(rel, sizeof(rel), "vfio/devices/%s", p->cdev);
			v->iommufd = node_ok(c, rel, why_fd, sizeof(why_fd)) == 0;
		}
		snprintf(rel, sizeof(rel), "vfio/%d", p->group);
		v->type1 = node_ok(c, "vfio/vfio", why_t1, sizeof(why_t1)) == 0 &&
			   node_ok(c, rel, why_t1, sizeof(why_t1)) == 0;
	}
	v->usable = v->iommufd || v->type1 || v->noiommu;
	if (!v->usable)
		snprintf(v->why, sizeof(v->why), "%s%s%s", why_fd, why_fd[0] && why_t1[0] ? "; " : "",
			 why_t1);
}

/* Devices shown without --all: what a user might hand to vfdma.  Bridges,
 * chipset functions, USB/SMBus controllers and the like are left out
 * unless somebody bound them to vfio-pci already. */
static bool interesting(const struct ctl_pci *p)
{
	unsigned int base = p->class_code >> 16;
	if (!strcmp(p->driver, "vfio-pci"))
		return true;
	switch (base) {
	case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0a: case 0x0c:
		return false;
	default:
		return true;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted device names under bus/pci/devices; NULL with errno on failure. */
static char **scan(const struct ctl *c, size_t *n)
{
	char dir[CTL_PATH];
	snprintf(dir, sizeof(dir), "%s/bus/pci/devices", c->sys);
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	char **names = NULL;
	size_t cap = 0;
	*n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 32;
			char **grown = realloc(names, cap * sizeof(*names));
			if (!grown)
				goto fail;
			names = grown;
		}
		if (!(names[*n] = strdup(e->d_name)))
			goto fail;
		(*n)++;
	}
	closedir(d);
	qsort(names, *n, sizeof(*names), cmp_str);
	return names;
fail:
	closedir(d);
	for (size_t i = 0; i < *n; i++)
		free(names[i]);
	free(names);
	errno = ENOMEM;
	return NULL;
}

static void host_json(const struct ctl *c, struct ctl_json *j)
{
	char path[CTL_PATH];
	json_obj(j, "host");
	snprintf(path, sizeof(path), "%s/iommu", c->dev);
	json_bool(j, "dev_iommu", ctl_exists(path));
	snprintf(path, sizeof(path), "%s/vfio/vfio", c->dev);
	json_bool(j, "vfio_container", ctl_exists(path));
	snprintf(path, sizeof(path), "%s/bus/pci/drivers/vfio-pci", c->sys);
	json_bool(j, "vfio_pci_driver", ctl_exists(path));
	json_close(j);
}

static void dev_json(const struct ctl *c, struct ctl_json *j, const struct ctl_pci *p,
		     const struct verdict *v)
{
	char buf[CTL_PATH];
	json_obj(j, NULL);
	json_str(j, "bdf", p->bdf);
	snprintf(buf, sizeof(buf), "0x%04x", p->vendor);
	json_str(j, "vendor", buf);
	snprintf(buf, sizeof(buf), "0x%04x", p->device);
	json_str(j, "device", buf);
	snprintf(buf, sizeof(buf), "0x%06x", p->class_code);
	json_str(j, "class", buf);
	json_str(j, "class_name", ctl_class_name(p->class_code));
	json_str(j, "driver", p->driver[0] ? p->driver : NULL);
	json_str(j, "driver_override", p->override[0] ? p->override : NULL);
	json_int_or_null(j, "iommu_group", p->group);
	json_int_or_null(j, "numa_node", p->numa_node);
	snprintf(buf, sizeof(buf), "%s/vfio/devices/%s", c->dev, p->cdev);
	json_str(j, "vfio_cdev", p->cdev[0] ? buf : NULL);
	json_bool(j, "usable", v->usable);
	json_str(j, "reason", v->usable ? NULL : v->why);
	json_arr(j, "backends");
	if (v->iommufd)
		json_str(j, NULL, "iommufd");
	if (v->type1)
		json_str(j, NULL, "type1");
	if (v->noiommu)
		json_str(j, NULL, "noiommu");
	json_close(j);
	json_close(j);
}

static void dev_row(FILE *f, const struct ctl_pci *p, const struct verdict *v)
{
	char grp[24] = "-", numa[16] = "-";
	if (p->group >= 0)
		snprintf(grp, sizeof(grp), "%s%d", p->noiommu_group ? "noiommu-" : "", p->group);
	if (p->numa_node >= 0)
		snprintf(numa, sizeof(numa), "%d", p->numa_node);
	fprintf(f, "%-13s %04x:%04x  %-11s %-10s %-6s %-4s %-8s %s%s\n", p->bdf, p->vendor,
		p->device, ctl_class_name(p->class_code), p->driver[0] ? p->driver : "-", grp, numa,
		p->cdev[0] ? p->cdev : "-", v->usable ? "yes" : "no: ", v->usable ? "" : v->why);
}

int ctl_list(struct ctl *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	bool all = false;
	int o;
	while ((o = getopt_long(argc, argv, "+aj", opts, NULL)) != -1) {
		if (o == 'a')
			all = true;
		else if (o == 'j')
			c->json = true;
		else
			return CTL_EUSAGE;
	}
	/* optional BDFs: show just those, whatever their class */
	char (*want)[16] = calloc((size_t)(argc - optind) + 1, sizeof(*want));
	if (!want)
		return ctl_errorf(c, CTL_EFAIL, "out of memory");
	int nwant = argc - optind;
	for (int i = 0; i < nwant; i++) {
		if (!ctl_bdf_normalize(argv[optind + i], want[i])) {
			free(want);
			return ctl_errorf(c, CTL_EUSAGE, "not a PCI address: %s", argv[optind + i]);
		}
	}

	size_t n;
	char **names = scan(c, &n);
	if (!names) {
		free(want);
		return ctl_errorf(c, CTL_ENOTSUP, "cannot read %s/bus/pci/devices: %s", c->sys,
				  strerror(errno));
	}
	struct ctl_json j = { 0 };
	if (c->json) {
		json_begin(&j, c->out);
		json_obj(&j, NULL);
		host_json(c, &j);
		json_arr(&j, "devices");
	} else {
		fprintf(c->out, "%-13s %-10s %-11s %-10s %-6s %-4s %-8s %s\n", "BDF", "VEN:DEV",
			"CLASS", "DRIVER", "GROUP", "NUMA", "CDEV", "USABLE");
	}
	int found = 0;
	for (size_t i = 0; i < n; i++) {
		struct ctl_pci p;
		struct verdict v;
		bool asked = false;
		for (int k = 0; k < nwant; k++)
			asked = asked || !strcmp(want[k], names[i]);
		if (ctl_pci_read(c, names[i], &p) != 0 || (nwant && !asked) ||
		    (!nwant && !all && !interesting(&p)))
			continue;
		judge(c, &p, &v);
		found++;
		if (c->json)
			dev_json(c, &j, &p, &v);
		else
			dev_row(c->out, &p, &v);
	}
	if (c->json) {
		json_close(&j);
		json_close(&j);
		json_end(&j);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	int rc = CTL_OK;
	for (int k = 0; k < nwant && found < nwant; k++) {
		char path[CTL_PATH];
		ctl_dev_path(c, want[k], NULL, path, sizeof(path));
		if (!ctl_exists(path))
			rc = ctl_errorf(c, CTL_ENODEV, "%s: no such PCI device", want[k]);
	}
	free(want);
	return rc;
}
