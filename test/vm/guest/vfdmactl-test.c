/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdmactl-test: app/vfdmactl on a real kernel.  Two NVMe controllers:
 * NVMe 0 (node 0) stays on the kernel's nvme driver, NVMe 1 (node 1) is on
 * vfio-pci ($VFDMA_VFIO_BDFS).  Runs /vfdma/bin/vfdmactl through popen(),
 * parses its JSON (test/minijson.h, strict) and checks what it says
 * against sysfs read here directly:
 *
 *   list     both controllers with driver, IOMMU group, NUMA node, cdev and
 *            the usable verdict; the human table
 *   info     on iommufd and type1: backend, 4K among the page sizes, IOVA
 *            ranges that leave out the MSI window, dirty caps, device facts
 *   unbind   refused while a process holds the VFIO cdev open
 *   bind     NVMe 0 to vfio-pci (then usable, with a cdev; info works on
 *            it); binding again is a no-op
 *   unbind   NVMe 0 back to nvme, its namespace's block device reappears
 *   errors   exit codes for a missing device, a bad backend, a device on
 *            the kernel driver
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmtest.h"
#include "../../minijson.h"

#define MSI_WINDOW 0xfee00000ull

/* Run "vfdmactl <args>"; its stdout in a new buffer, its exit status. */
static char *ctl(const char *args, int *status)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "/vfdma/bin/vfdmactl %s", args);
	FILE *p = popen(cmd, "r");
	if (!p) {
		*status = -1;
		return NULL;
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	for (size_t r; buf && (r = fread(buf + n, 1, cap - 1 - n, p)) > 0;) {
		n += r;
		if (n + 1 == cap) {
			char *g = realloc(buf, 2 * cap);
			if (!g) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = g;
			cap *= 2;
		}
	}
	int st = pclose(p);
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (buf)
		buf[n] = '\0';
	return buf;
}

/* "vfdmactl <args>" with --json; the parsed document (NULL: FAIL printed). */
static struct mj *ctl_json(const char *check, const char *args, int want_status)
{
	int status;
	char *out = ctl(args, &status), err[160];
	if (!out) {
		vt_fail(check, "cannot run vfdmactl %s", args);
		return NULL;
	}
	struct mj *doc = mj_parse(out, err, sizeof(err));
	if (status != want_status)
		vt_fail(check, "vfdmactl %s: exit status %d, expected %d", args, status, want_status);
	else if (!doc)
		vt_fail(check, "vfdmactl %s: bad JSON: %s\n%s", args, err, out);
	free(out);
	if (status != want_status) {
		mj_free(doc);
		return NULL;
	}
	return doc;
}

static const struct mj *find_dev(const struct mj *doc, const char *bdf)
{
	const struct mj *devs = mj_get(doc, "devices");
	for (size_t i = 0; i < mj_len(devs); i++) {
		const char *b = mj_str(mj_get(mj_at(devs, i), "bdf"));
		if (b && !strcmp(b, bdf))
			return mj_at(devs, i);
	}
	return NULL;
}

static const char *s_or(const struct mj *v, const char *key)
{
	const char *s = mj_str(mj_get(v, key));
	return s ? s : "(null)";
}

/* sysfs, read directly: the basename of a link, or "" */
static void link_name(const char *bdf, const char *attr, char *buf, size_t len)
{
	char path[256], target[256];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	buf[0] = '\0';
	if (n > 0) {
		target[n] = '\0';
		snprintf(buf, len, "%.31s", strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
	}
}

/* The NVMe controller on the kernel's nvme driver, from sysfs. */
static bool kernel_nvme(char *bdf, size_t len)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	bool found = false;
	for (struct dirent *e; d && !found && (e = readdir(d));) {
		char drv[64];
		link_name(e->d_name, "driver", drv, sizeof(drv));
		if (!strcmp(drv, "nvme")) {
			snprintf(bdf, len, "%.31s", e->d_name);
			found = true;
		}
	}
	if (d)
		closedir(d);
	return found;
}

/* One device in list's JSON against sysfs and what the harness set up. */
static void check_listed(const char *check, const struct mj *dev, const char *bdf,
			 const char *driver, int node, bool usable)
{
	char grp[32], cdev[64] = "", want_cdev[128] = "", path[256];
	link_name(bdf, "iommu_group", grp, sizeof(grp));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	DIR *d = opendir(path);
	for (struct dirent *e; d && (e = readdir(d));)
		if (!strncmp(e->d_name, "vfio", 4))
			snprintf(cdev, sizeof(cdev), "%.60s", e->d_name);
	if (d)
		closedir(d);
	if (cdev[0])
		snprintf(want_cdev, sizeof(want_cdev), "/dev/vfio/devices/%s", cdev);

	if (!dev)
		vt_fail(check, "%s not listed", bdf);
	else if (strcmp(s_or(dev, "driver"), driver))
		vt_fail(check, "driver %s, expected %s", s_or(dev, "driver"), driver);
	else if (strcmp(s_or(dev, "class_name"), "NVMe"))
		vt_fail(check, "class_name %s", s_or(dev, "class_name"));
	else if (mj_num(mj_get(dev, "iommu_group"), -1) != atoi(grp) || !grp[0])
		vt_fail(check, "iommu_group %s, sysfs says %s", mj_get(dev, "iommu_group") ?
			mj_get(dev, "iommu_group")->str : "?", grp);
	else if (mj_num(mj_get(dev, "numa_node"), -1) != node)
		vt_fail(check, "numa_node %g, expected %d", mj_num(mj_get(dev, "numa_node"), -1), node);
	else if (cdev[0] ? strcmp(s_or(dev, "vfio_cdev"), want_cdev) != 0
			 : !mj_is_null(mj_get(dev, "vfio_cdev")))
		vt_fail(check, "vfio_cdev %s, sysfs says '%s'", s_or(dev, "vfio_cdev"), want_cdev);
	else if (cdev[0] && access(want_cdev, F_OK) != 0)
		vt_fail(check, "%s does not exist", want_cdev);
	else if (mj_bool(mj_get(dev, "usable"), !usable) != usable)
		vt_fail(check, "usable is %s (reason: %s)", usable ? "false" : "true",
			s_or(dev, "reason"));
	else if (usable && !(mj_has_str(mj_get(dev, "backends"), "iommufd") &&
			     mj_has_str(mj_get(dev, "backends"), "type1")))
		vt_fail(check, "backends do not list iommufd and type1");
	else if (!usable && !strstr(s_or(dev, "reason"), "vfio-pci"))
		vt_fail(check, "reason '%s' does not mention vfio-pci", s_or(dev, "reason"));
	else
		printf("PASS %s: %s driver %s group %s node %d cdev %s%s%s\n", check, bdf, driver,
		       grp, node, cdev[0] ? want_cdev : "-", usable ? "" : ", not usable: ",
		       usable ? "" : s_or(dev, "reason"));
	fflush(stdout);
}

static void check_list(const char *check, const char *bdf, const char *driver, int node,
		       bool usable)
{
	char args[64];
	snprintf(args, sizeof(args), "list --json %s", bdf);
	struct mj *doc = ctl_json(check, args, 0);
	if (doc)
		check_listed(check, find_dev(doc, bdf), bdf, driver, node, usable);
	mj_free(doc);
}

static void check_info(const char *check, const char *bdf, const char *backend, int node)
{
	char args[96];
	snprintf(args, sizeof(args), "info --json --backend %s %s", backend, bdf);
	struct mj *doc = ctl_json(check, args, 0);
	if (!doc)
		return;
	const struct mj *pgs = mj_get(doc, "pgsizes"), *ranges = mj_get(doc, "iova_ranges");
	const struct mj *dev = mj_get(doc, "device"), *caps = mj_get(mj_get(doc, "dirty"), "caps");
	bool has4k = false, msi_excluded = true;
	for (size_t i = 0; i < mj_len(pgs); i++)
		has4k = has4k || mj_num(mj_at(pgs, i), 0) == 4096;
	for (size_t i = 0; i < mj_len(ranges); i++) {
		uint64_t first = strtoull(s_or(mj_at(ranges, i), "first"), NULL, 16);
		uint64_t last = strtoull(s_or(mj_at(ranges, i), "last"), NULL, 16);
		if (first <= MSI_WINDOW && MSI_WINDOW <= last)
			msi_excluded = false;
	}
	if (strcmp(s_or(doc, "backend"), backend))
		vt_fail(check, "backend %s", s_or(doc, "backend"));
	else if (!has4k)
		vt_fail(check, "4K not among the page sizes (%s)", s_or(doc, "pgsizes_text"));
	else if (!mj_len(ranges) || !msi_excluded)
		vt_fail(check, "%zu IOVA ranges, MSI window %s", mj_len(ranges),
			msi_excluded ? "excluded" : "INSIDE a usable range");
	else if (!mj_has_str(caps, "mark"))
		vt_fail(check, "dirty caps without 'mark'");
	else if (strcmp(s_or(dev, "bdf"), bdf) || strcmp(s_or(dev, "vendor"), "0x1b36") ||
		 mj_num(mj_get(dev, "numa_node"), -1) != node)
		vt_fail(check, "device %s vendor %s node %g", s_or(dev, "bdf"), s_or(dev, "vendor"),
			mj_num(mj_get(dev, "numa_node"), -1));
	else if (mj_num(mj_get(mj_get(dev, "irqs"), "msix"), 0) < 1 || !mj_len(mj_get(dev, "bars")))
		vt_fail(check, "no MSI-X vectors or no BARs");
	else {
		printf("PASS %s: pgsizes %s, %zu ranges (first %s-%s), dirty", check,
		       s_or(doc, "pgsizes_text"), mj_len(ranges), s_or(mj_at(ranges, 0), "first"),
		       s_or(mj_at(ranges, 0), "last"));
		for (size_t i = 0; i < mj_len(caps); i++)
			printf(" %s", mj_str(mj_at(caps, i)));
		printf(", MSI-X %g, node %d\n", mj_num(mj_get(mj_get(dev, "irqs"), "msix"), 0), node);
		fflush(stdout);
	}
	mj_free(doc);
}

/* One result of bind/unbind's JSON: action and driver. */
static void check_moved(const char *check, const char *args, const char *bdf, const char *action,
			const char *driver)
{
	struct mj *doc = ctl_json(check, args, 0);
	if (!doc)
		return;
	const struct mj *r = find_dev(doc, bdf);
	if (strcmp(s_or(r, "action"), action) || strcmp(s_or(r, "driver"), driver))
		vt_fail(check, "action %s driver %s (error %s)", s_or(r, "action"), s_or(r, "driver"),
			s_or(r, "error"));
	else
		printf("PASS %s: %s %s -> %s%s%s\n", check, action, s_or(r, "driver_before"), driver,
		       mj_str(mj_get(r, "vfio_cdev")) ? ", " : "",
		       mj_str(mj_get(r, "vfio_cdev")) ? mj_str(mj_get(r, "vfio_cdev")) : "");
	fflush(stdout);
	mj_free(doc);
}

static void check_status(const char *check, const char *args, int want)
{
	int status;
	free(ctl(args, &status));
	if (status != want)
		vt_fail(check, "vfdmactl %s: exit status %d, expected %d", args, status, want);
	else
		printf("PASS %s: vfdmactl %s -> %d\n", check, args, status);
	fflush(stdout);
}

/* The namespace of @bdf as a block device, within 10 s of a rebind. */
static bool block_device_back(const char *bdf, char *dev, size_t len)
{
	for (int i = 0; i < 100; i++) {
		char path[256];
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/nvme", bdf);
		DIR *d = opendir(path);
		for (struct dirent *e; d && (e = readdir(d));) {
			if (strncmp(e->d_name, "nvme", 4))
				continue;
			snprintf(dev, len, "/dev/%.32sn1", e->d_name);
			struct stat st;
			if (stat(dev, &st) == 0 && S_ISBLK(st.st_mode)) {
				closedir(d);
				return true;
			}
		}
		if (d)
			closedir(d);
		usleep(100 * 1000);
	}
	return false;
}

int main(void)
{
	char vfio[32] = "", kern[32], args[128], cdev[128], blk[64];
	const char *list = getenv("VFDMA_VFIO_BDFS");
	/* the harness exports VFDMA_BACKEND=none for a test without a backend;
	 * the library would take that for a request: let "info" pick (auto) */
	unsetenv("VFDMA_BACKEND");
	if (!list || sscanf(list, "%31s", vfio) != 1 || !kernel_nvme(kern, sizeof(kern))) {
		vt_fail("setup", "needs one NVMe on vfio-pci and one on nvme (VFDMA_VFIO_BDFS=%s)",
			list ? list : "");
		return vt_exit_status();
	}

	/* the whole list: both controllers, valid JSON */
	struct mj *doc = ctl_json("list-json", "list --json", 0);
	if (doc) {
		if (!find_dev(doc, kern) || !find_dev(doc, vfio) || !mj_get(doc, "host"))
			vt_fail("list-json", "the NVMe controllers are missing");
		else
			printf("PASS list-json: %zu devices\n", mj_len(mj_get(doc, "devices")));
		check_listed("list-kernel-nvme", find_dev(doc, kern), kern, "nvme", 0, false);
		check_listed("list-vfio-nvme", find_dev(doc, vfio), vfio, "vfio-pci", 1, true);
	}
	mj_free(doc);
	int status;
	char *text = ctl("list", &status);
	if (status == 0 && text && strstr(text, kern) && strstr(text, vfio) && strstr(text, "NVMe")) {
		fputs(text, stdout); /* for the console log: the table on a real kernel */
		vt_pass("list-human");
	} else
		vt_fail("list-human", "status %d:\n%s", status, text ? text : "");
	free(text);

	check_info("info-iommufd", vfio, "iommufd", 1);
	check_info("info-type1", vfio, "type1", 1);
	snprintf(args, sizeof(args), "info %s", vfio);
	text = ctl(args, &status);
	if (status == 0 && text && strstr(text, "backend:") && strstr(text, "BAR 0:")) {
		fputs(text, stdout);
		vt_pass("info-human");
	} else {
		vt_fail("info-human", "status %d:\n%s", status, text ? text : "");
	}
	free(text);

	/* a process holding the cdev open: unbind must refuse, not hang */
	snprintf(cdev, sizeof(cdev), "/sys/bus/pci/devices/%s/vfio-dev", vfio);
	DIR *d = opendir(cdev);
	cdev[0] = '\0';
	for (struct dirent *e; d && (e = readdir(d));)
		if (!strncmp(e->d_name, "vfio", 4))
			snprintf(cdev, sizeof(cdev), "/dev/vfio/devices/%.60s", e->d_name);
	if (d)
		closedir(d);
	int fd = cdev[0] ? open(cdev, O_RDWR) : -1;
	if (fd < 0) {
		vt_fail("unbind-refused-open", "cannot open the cdev '%s': %s", cdev, strerror(errno));
	} else {
		snprintf(args, sizeof(args), "unbind %s", vfio);
		check_status("unbind-refused-open", args, 4);
		close(fd);
	}

	/* NVMe 0 to vfio-pci and back */
	snprintf(args, sizeof(args), "bind --json %s", kern);
	check_moved("bind", args, kern, "bound", "vfio-pci");
	check_moved("bind-again", args, kern, "unchanged", "vfio-pci");
	check_list("list-after-bind", kern, "vfio-pci", 0, true);
	check_info("info-after-bind", kern, "iommufd", 0);
	snprintf(args, sizeof(args), "unbind --json %s", kern);
	check_moved("unbind", args, kern, "unbound", "nvme");
	if (block_device_back(kern, blk, sizeof(blk)))
		printf("PASS block-device-back: %s\n", blk);
	else
		vt_fail("block-device-back", "no block device for %s within 10 s", kern);
	fflush(stdout);
	check_list("list-after-unbind", kern, "nvme", 0, false);

	check_status("error-no-device", "bind 0000:ff:1f.7", 3);
	check_status("error-usage", "info --backend warp", 2);
	snprintf(args, sizeof(args), "info %s", kern);
	check_status("error-not-vfio", args, 6);
	return vt_exit_status();
}
