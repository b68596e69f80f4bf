/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdmactl info: what vfdma sees when it opens a domain (and a device in
 * it) on this machine -- the backend, the IOMMU page sizes, the usable IOVA
 * ranges after the device's reserved regions are cut out, dirty tracking,
 * and the device's interrupts and BARs.  Everything is released before the
 * command returns.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "vfdma/iommu.h"
#include "vfdma/log.h"
#include "vfdma/pci.h"

#include "ctl.h"

static const struct {
	unsigned int cap;
	const char *name;
} dirty_names[] = {
	{ VFDMA_DIRTY_CAP_HW, "hw" },
	{ VFDMA_DIRTY_CAP_TYPE1, "type1" },
	{ VFDMA_DIRTY_CAP_SPLIT, "split" },
	{ VFDMA_DIRTY_CAP_MARK, "mark" },
};

static bool parse_backend(const char *s, enum vfdma_backend *b)
{
	for (int i = VFDMA_BACKEND_AUTO; i <= VFDMA_BACKEND_SIM; i++) {
		if (!strcmp(s, vfdma_backend_name((enum vfdma_backend)i))) {
			*b = (enum vfdma_backend)i;
			return true;
		}
	}
	return false;
}

/* "4K 2M 1G" */
static void pgsizes_text(uint64_t pgs, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	size_t off = 0;
	buf[0] = '\0';
	for (int bit = 0; bit < 64 && off < len; bit++) {
		if (!(pgs >> bit & 1))
			continue;
		int u = bit >= 10 ? (bit - 10) / 10 : -1;
		unsigned long long v = 1ull << (bit - (u + 1) * 10);
		off += (size_t)snprintf(buf + off, len - off, "%s%llu%s", off ? " " : "", v,
					u >= 0 ? (char[2]){ units[u], 0 } : "");
	}
}

/* A BAR as sysfs describes it (the resource file: start end flags per line). */
struct bar {
	uint64_t start, size, flags;
};

static bool sysfs_bar(const struct ctl *c, const char *bdf, unsigned int idx, struct bar *b)
{
	char path[CTL_PATH], line[128];
	ctl_dev_path(c, bdf, "resource", path, sizeof(path));
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool ok = false;
	for (unsigned int i = 0; i <= idx && fgets(line, sizeof(line), f); i++) {
		uint64_t end;
		if (i == idx && sscanf(line, "%" SCNx64 " %" SCNx64 " %" SCNx64, &b->start, &end,
				       &b->flags) == 3 && end > b->start) {
			b->size = end - b->start + 1;
			ok = true;
		}
	}
	fclose(f);
	return ok;
}

#define IORESOURCE_IO 0x100
#define IORESOURCE_PREFETCH 0x2000
#define IORESOURCE_MEM_64 0x100000

static void bars(struct ctl *c, struct ctl_json *j, struct vfdma_device *dev, const char *bdf)
{
	if (c->json)
		json_arr(j, "bars");
	for (unsigned int i = 0; i < 6; i++) {
		struct bar sb = { 0 };
		void *addr;
		uint64_t len = 0;
		/* what VFIO offers (mappable or not), sized by sysfs when not */
		int rc = vfdma_pci_bar_map(dev, i, &addr, &len);
		bool have_sysfs = sysfs_bar(c, bdf, i, &sb);
		if (rc == -ENOENT || (rc != 0 && !have_sysfs))
			continue;
		uint64_t size = rc == 0 ? len : sb.size;
		const char *kind = sb.flags & IORESOURCE_IO ? "io" : "mem";
		if (c->json) {
			json_obj(j, NULL);
			json_int(j, "index", i);
			json_str(j, "type", kind);
			json_u64(j, "size", size);
			json_bool(j, "mappable", rc == 0);
			json_bool(j, "prefetchable", sb.flags & IORESOURCE_PREFETCH);
			json_bool(j, "64bit", sb.flags & IORESOURCE_MEM_64);
			json_close(j);
		} else {
			fprintf(c->out, "  BAR %u:       %s, %" PRIu64 " bytes%s%s%s\n", i, kind, size,
				sb.flags & IORESOURCE_MEM_64 ? ", 64-bit" : "",
				sb.flags & IORESOURCE_PREFETCH ? ", prefetchable" : "",
				rc == 0 ? ", mmap" : ", not mappable");
		}
	}
	if (c->json)
		json_close(j);
}

static void device_out(struct ctl *c, struct ctl_json *j, struct vfdma_device *dev)
{
	struct vfdma_device_info di;
	if (vfdma_device_get_info(dev, &di) != 0)
		return;
	if (c->json) {
		char buf[16];
		json_obj(j, "device");
		json_str(j, "bdf", di.bdf);
		snprintf(buf, sizeof(buf), "0x%04x", di.vendor_id);
		json_str(j, "vendor", buf);
		snprintf(buf, sizeof(buf), "0x%04x", di.device_id);
		json_str(j, "device", buf);
		snprintf(buf, sizeof(buf), "0x%06x", di.class_code);
		json_str(j, "class", buf);
		json_str(j, "class_name", ctl_class_name(di.class_code));
		json_int_or_null(j, "numa_node", di.numa_node);
		json_int_or_null(j, "iommu_group", di.iommu_group);
		json_obj(j, "irqs");
		json_int(j, "msix", di.nr_irqs_msix);
		json_int(j, "msi", di.nr_irqs_msi);
		json_bool(j, "intx", di.has_intx);
		json_close(j);
		json_bool(j, "can_reset", di.can_reset);
	} else {
		fprintf(c->out, "device:        %s  %04x:%04x  %s (class %06x)\n", di.bdf, di.vendor_id,
			di.device_id, ctl_class_name(di.class_code), di.class_code);
		fprintf(c->out, "  NUMA node:   %d\n  IOMMU group: %d\n", di.numa_node, di.iommu_group);
		fprintf(c->out, "  interrupts:  MSI-X %u, MSI %u, INTx %s\n  reset:       %s\n",
			di.nr_irqs_msix, di.nr_irqs_msi, di.has_intx ? "yes" : "no",
			di.can_reset ? "yes" : "no");
	}
	bars(c, j, dev, di.bdf);
	if (c->json)
		json_close(j);
}

static void domain_out(struct ctl *c, struct ctl_json *j, struct vfdma_domain *dom,
		       const struct vfdma_iova_range *r, int nr)
{
	struct vfdma_domain_info di = { 0 };
	char text[128];
	vfdma_domain_get_info(dom, &di);
	pgsizes_text(di.pgsizes, text, sizeof(text));
	if (c->json) {
		json_str(j, "backend", vfdma_backend_name(di.backend));
		json_arr(j, "pgsizes");
		for (int bit = 0; bit < 64; bit++)
			if (di.pgsizes >> bit & 1)
				json_u64(j, NULL, 1ull << bit);
		json_close(j);
		json_str(j, "pgsizes_text", text);
		json_arr(j, "iova_ranges");
		for (int i = 0; i < nr; i++) {
			json_obj(j, NULL);
			json_hex(j, "first", r[i].first);
			json_hex(j, "last", r[i].last);
			json_close(j);
		}
		json_close(j);
		json_obj(j, "dirty");
		json_arr(j, "caps");
		for (size_t i = 0; i < sizeof(dirty_names) / sizeof(dirty_names[0]); i++)
			if (di.dirty_caps & dirty_names[i].cap)
				json_str(j, NULL, dirty_names[i].name);
		json_close(j);
		for (size_t i = 0; i < sizeof(dirty_names) / sizeof(dirty_names[0]); i++)
			json_bool(j, dirty_names[i].name, di.dirty_caps & dirty_names[i].cap);
		json_close(j);
		return;
	}
	fprintf(c->out, "backend:       %s\npage sizes:    %s\nIOVA ranges:  ",
		vfdma_backend_name(di.backend), text);
	for (int i = 0; i < nr; i++)
		fprintf(c->out, "%s 0x%" PRIx64 "-0x%" PRIx64 "\n", i ? "              " : "",
			r[i].first, r[i].last);
	if (!nr)
		fprintf(c->out, " none\n");
	fprintf(c->out, "dirty caps:   ");
	for (size_t i = 0; i < sizeof(dirty_names) / sizeof(dirty_names[0]); i++)
		if (di.dirty_caps & dirty_names[i].cap)
			fprintf(c->out, " %s", dirty_names[i].name);
	fprintf(c->out, "%s\n", di.dirty_caps ? "" : " none");
}

/* Open a domain on @b; an explicit backend beats VFDMA_BACKEND in the
 * environment (which the library would otherwise obey). */
static struct vfdma_domain *open_domain(enum vfdma_backend b)
{
	struct vfdma_domain_opts o = { .backend = b };
	char *saved = NULL;
	const char *env = getenv("VFDMA_BACKEND");
	if (b != VFDMA_BACKEND_AUTO && env) {
		saved = strdup(env);
		unsetenv("VFDMA_BACKEND");
	}
	struct vfdma_domain *dom = vfdma_domain_open(&o);
	int err = errno;
	if (saved) {
		setenv("VFDMA_BACKEND", saved, 1);
		free(saved);
	}
	errno = err;
	return dom;
}

static int open_error(struct ctl *c, const char *what, int err)
{
	const char *hint = "";
	int code;
	switch (err) {
	case ENODEV: code = CTL_ENODEV; break;
	case EACCES: code = CTL_EPERM; hint = " (run as root, or get access to /dev/vfio)"; break;
	case EBUSY: code = CTL_EBUSY; break;
	case EPERM: code = CTL_ENOTSUP; hint = " (IOMMU group not viable: see vfdmactl list)"; break;
	case ENOTSUP: code = CTL_ENOTSUP; break;
	default: code = CTL_EFAIL; break;
	}
	return ctl_errorf(c, code, "%s: %s%s", what, strerror(err), hint);
}

int ctl_info(struct ctl *c, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "backend", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	enum vfdma_backend backend = VFDMA_BACKEND_AUTO;
	int o;
	while ((o = getopt_long(argc, argv, "+b:jv", lopts, NULL)) != -1) {
		if (o == 'b' && !parse_backend(optarg, &backend))
			return ctl_errorf(c, CTL_EUSAGE, "unknown backend %s (auto, iommufd, type1, "
					  "noiommu, sim)", optarg);
		else if (o == 'j')
			c->json = true;
		else if (o == 'v')
			vfdma_log_set_level(VFDMA_LOG_INFO);
		else if (o != 'b')
			return CTL_EUSAGE;
	}
	if (argc - optind > 1)
		return ctl_errorf(c, CTL_EUSAGE, "info: one device at a time");
	char bdf[16] = "";
	if (optind < argc) {
		struct ctl_pci p;
		if (!ctl_bdf_normalize(argv[optind], bdf))
			return ctl_errorf(c, CTL_EUSAGE, "not a PCI address: %s", argv[optind]);
		/* sysfs first: its answers are clearer than the library's ENODEV */
		if (ctl_pci_read(c, bdf, &p) != 0)
			return ctl_errorf(c, CTL_ENODEV, "%s: no such PCI device", bdf);
		if (strcmp(p.driver, "vfio-pci") != 0)
			return ctl_errorf(c, CTL_ENOTSUP, "%s: bound to %s, not vfio-pci (vfdmactl bind %s)",
					  bdf, p.driver[0] ? p.driver : "no driver", bdf);
	}

	struct vfdma_domain *dom = open_domain(backend);
	if (!dom) {
		int err = errno;
		if (err == ENODEV)
			return ctl_errorf(c, CTL_ENOTSUP, "backend %s is not available here",
					  vfdma_backend_name(backend));
		return open_error(c, "opening a domain", err);
	}
	if (backend == VFDMA_BACKEND_AUTO && vfdma_domain_backend(dom) == VFDMA_BACKEND_SIM &&
	    !c->json)
		fprintf(c->err, "vfdmactl: note: no usable VFIO here; auto picked the sim backend "
				"(a software IOMMU)\n");
	struct vfdma_device *dev = NULL;
	if (bdf[0] && !(dev = vfdma_device_open(dom, bdf, VFDMA_DEVICE_NOFLAGS))) {
		int rc = open_error(c, bdf, errno);
		vfdma_domain_close(dom);
		return rc;
	}
	int nr = vfdma_domain_ranges(dom, NULL, 0);
	struct vfdma_iova_range *r = calloc(nr > 0 ? (size_t)nr : 1, sizeof(*r));
	if (!r) {
		vfdma_domain_close(dom);
		return ctl_errorf(c, CTL_EFAIL, "out of memory");
	}
	nr = nr > 0 ? vfdma_domain_ranges(dom, r, (size_t)nr) : 0;

	struct ctl_json j = { 0 };
	if (c->json) {
		json_begin(&j, c->out);
		json_obj(&j, NULL);
	}
	domain_out(c, &j, dom, r, nr);
	if (dev)
		device_out(c, &j, dev);
	if (c->json) {
		json_close(&j);
		json_end(&j);
	}
	free(r);
	vfdma_device_close(dev);
	int rc = vfdma_domain_close(dom);
	if (rc != 0)
		return ctl_errorf(c, CTL_EFAIL, "closing the domain: %s", strerror(-rc));
	return CTL_OK;
}
