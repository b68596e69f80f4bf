/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * sysfs access for vfdmactl: paths under a configurable root (so that the
 * tests can point the tool at a fake tree), one-line attributes, symlink
 * names, and the facts of one PCI device.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

int ctl_errorf(struct ctl *c, int code, const char *fmt, ...)
{
	va_list ap;

	fputs("vfdmactl: ", c->err);
	va_start(ap, fmt);
	vfprintf(c->err, fmt, ap);
	va_end(ap);
	fputc('\n', c->err);
	return code;
}

static bool hex_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

bool ctl_bdf_normalize(const char *in, char out[16])
{
	/* "dddd:bb:ss.f" or "bb:ss.f" (domain 0), as lspci and dpdk-devbind
	 * accept them; lower case, as sysfs spells them */
	size_t n = strlen(in);
	const char *b = in;
	char dom[5] = "0000";

	if (n == 12) {
		if (!hex_digits(in, 4) || in[4] != ':')
			return false;
		memcpy(dom, in, 4);
		b = in + 5;
	} else if (n != 7) {
		return false;
	}
	if (!hex_digits(b, 2) || b[2] != ':' || !hex_digits(b + 3, 2) || b[5] != '.' ||
	    b[6] < '0' || b[6] > '7')
		return false;
	snprintf(out, 16, "%s:%.7s", dom, b);
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return true;
}

void ctl_dev_path(const struct ctl *c, const char *bdf, const char *attr, char *buf, size_t len)
{
	snprintf(buf, len, "%s/bus/pci/devices/%s%s%s", c->sys, bdf, attr ? "/" : "",
		 attr ? attr : "");
}

int ctl_read_attr(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	int err = errno;
	close(fd);
	if (n < 0)
		return -err;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

int ctl_write_attr(struct ctl *c, const char *path, const char *val)
{
	/* One write() of the whole value: sysfs store functions see exactly
	 * one call, as with `echo val > attr`. */
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(val);
	ssize_t w = write(fd, val, n);
	int err = errno;
	close(fd);
	if (w < 0)
		return -err;
	if ((size_t)w != n)
		return -EIO;
	if (c->hook)
		c->hook(c, path, val);
	return 0;
}

int ctl_link_name(const char *path, char *buf, size_t len)
{
	char target[PATH_MAX];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, base);
	return 0;
}

bool ctl_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

int ctl_errno_code(int err)
{
	switch (err < 0 ? -err : err) {
	case EACCES:
	case EPERM:
		return CTL_EPERM;
	case ENOENT:
	case ENODEV:
		return CTL_ENODEV;
	case EBUSY:
		return CTL_EBUSY;
	default:
		return CTL_EFAIL;
	}
}

/* A hex attribute such as vendor ("0x1b36"); 0 if unreadable. */
static unsigned int read_hex(const struct ctl *c, const char *bdf, const char *attr)
{
	char path[CTL_PATH], buf[32];
	ctl_dev_path(c, bdf, attr, path, sizeof(path));
	if (ctl_read_attr(path, buf, sizeof(buf)) != 0)
		return 0;
	return (unsigned int)strtoul(buf, NULL, 16);
}

/* The first entry of a directory that starts with @prefix, or "". */
static void first_entry(const char *dir, const char *prefix, char *buf, size_t len)
{
	DIR *d = opendir(dir);
	buf[0] = '\0';
	if (!d)
		return;
	for (struct dirent *e; (e = readdir(d));) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strlen(e->d_name) < len) {
			strcpy(buf, e->d_name);
			break;
		}
	}
	closedir(d);
}

int ctl_pci_read(const struct ctl *c, const char *bdf, struct ctl_pci *p)
{
	char path[CTL_PATH], buf[64];

	memset(p, 0, sizeof(*p));
	ctl_dev_path(c, bdf, NULL, path, sizeof(path));
	if (!ctl_exists(path))
		return -ENODEV;
	snprintf(p->bdf, sizeof(p->bdf), "%s", bdf);
	p->vendor = read_hex(c, bdf, "vendor");
	p->device = read_hex(c, bdf, "device");
	p->class_code = read_hex(c, bdf, "class");

	ctl_dev_path(c, bdf, "driver", path, sizeof(path));
	if (ctl_link_name(path, p->driver, sizeof(p->driver)) != 0)
		p->driver[0] = '\0';
	ctl_dev_path(c, bdf, "driver_override", path, sizeof(path));
	if (ctl_read_attr(path, p->override, sizeof(p->override)) != 0 ||
	    strcmp(p->override, "(null)") == 0)
		p->override[0] = '\0';

	p->group = -1;
	ctl_dev_path(c, bdf, "iommu_group", path, sizeof(path));
	if (ctl_link_name(path, buf, sizeof(buf)) == 0) {
		p->group = atoi(buf);
		/* a no-IOMMU group exists for VFIO only; its node says so */
		char node[CTL_PATH];
		snprintf(node, sizeof(node), "%s/vfio/noiommu-%d", c->dev, p->group);
		p->noiommu_group = ctl_exists(node);
	}

	p->numa_node = -1;
	ctl_dev_path(c, bdf, "numa_node", path, sizeof(path));
	if (ctl_read_attr(path, buf, sizeof(buf)) == 0 && buf[0])
		p->numa_node = atoi(buf);

	ctl_dev_path(c, bdf, "vfio-dev", path, sizeof(path));
	first_entry(path, "vfio", p->cdev, sizeof(p->cdev));
	return 0;
}

const char *ctl_class_name(unsigned int class_code)
{
	static const struct {
		unsigned int code, shift; /* shift 0: full code, 8: class+subclass, 16: class */
		const char *name;
	} names[] = {
		{ 0x010802, 0, "NVMe" },         { 0x0100, 8, "SCSI" },
		{ 0x0101, 8, "IDE" },            { 0x0104, 8, "RAID" },
		{ 0x0106, 8, "SATA" },           { 0x0107, 8, "SAS" },
		{ 0x0108, 8, "NVM" },            { 0x01, 16, "storage" },
		{ 0x0200, 8, "Ethernet" },       { 0x0207, 8, "InfiniBand" },
		{ 0x02, 16, "network" },         { 0x0300, 8, "VGA" },
		{ 0x03, 16, "display" },         { 0x0403, 8, "audio" },
		{ 0x04, 16, "multimedia" },      { 0x05, 16, "memory" },
		{ 0x0600, 8, "host bridge" },    { 0x0601, 8, "ISA bridge" },
		{ 0x0604, 8, "PCI bridge" },     { 0x06, 16, "bridge" },
		{ 0x07, 16, "communication" },   { 0x0806, 8, "IOMMU" },
		{ 0x08, 16, "system" },          { 0x09, 16, "input" },
		{ 0x0b, 16, "processor" },       { 0x0c03, 8, "USB" },
		{ 0x0c05, 8, "SMBus" },          { 0x0c, 16, "serial bus" },
		{ 0x0d, 16, "wireless" },        { 0x10, 16, "encryption" },
		{ 0x11, 16, "signal processing" }, { 0x12, 16, "accelerator" },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (class_code >> names[i].shift == names[i].code)
			return names[i].name;
	return "other";
}
