/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdmactl bind / unbind: move devices to vfio-pci and back.
 *
 * bind uses driver_override (not new_id): it names one device, not every
 * device with the same IDs, and it keeps the device's own driver from
 * grabbing it back on a rescan.  The driver the device had is remembered in
 * a small state file, so that unbind can put it back explicitly when the
 * kernel's own re-probe does not (a driver loaded as a module that was
 * since unloaded, or a device with several matching drivers).
 *
 * Both refuse, unless --force, what would hurt or hang: a device whose
 * disk is mounted or whose network interface is up, and (unbind) a VFIO
 * device some process has open -- the kernel's vfio-pci remove waits for
 * that process to let go, so the unbind write would block.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

struct opts {
	const char *driver;
	bool force;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* The device reached the state bind or unbind waits for. */
static bool settled(const struct ctl *c, const char *bdf, const char *want, struct ctl_pci *p)
{
	char path[CTL_PATH];
	if (ctl_pci_read(c, bdf, p) != 0)
		return false;
	if (!want) /* any driver */
		return p->driver[0] != '\0';
	if (strcmp(p->driver, want) != 0)
		return false;
	if (strcmp(want, "vfio-pci") != 0 || p->group < 0)
		return true;
	/* vfio-pci is bound; wait for its device nodes too (devtmpfs or udev
	 * creates them a moment after the probe) */
	snprintf(path, sizeof(path), "%s/vfio/%s%d", c->dev, p->noiommu_group ? "noiommu-" : "",
		 p->group);
	if (!ctl_exists(path))
		return false;
	snprintf(path, sizeof(path), "%s/vfio/devices/%s", c->dev, p->cdev);
	return !p->cdev[0] || ctl_exists(path);
}

static bool wait_for(const struct ctl *c, const char *bdf, const char *want, struct ctl_pci *p)
{
	uint64_t end = now_ms() + c->wait_ms;
	while (!settled(c, bdf, want, p)) {
		if (now_ms() >= end)
			return false;
		sleep_ms(10);
	}
	return true;
}

/* VFIO's no-IOMMU mode: vfio-pci then takes devices without a group. */
static bool noiommu_enabled(const struct ctl *c)
{
	char path[CTL_PATH], buf[8];
	snprintf(path, sizeof(path), "%s/module/vfio/parameters/enable_unsafe_noiommu_mode", c->sys);
	return ctl_read_attr(path, buf, sizeof(buf)) == 0 && (buf[0] == 'Y' || buf[0] == '1');
}

/* Something that uses the device through its kernel driver; false if none. */
static bool busy_kernel(const struct ctl *c, const char *bdf, char *why, size_t len)
{
	char dir[CTL_PATH], path[CTL_PATH + 300], buf[64];
	DIR *d;

	/* network interfaces that are up */
	ctl_dev_path(c, bdf, "net", dir, sizeof(dir));
	if ((d = opendir(dir))) {
		for (struct dirent *e; (e = readdir(d));) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s/operstate", dir, e->d_name);
			if (ctl_read_attr(path, buf, sizeof(buf)) == 0 && !strcmp(buf, "up")) {
				snprintf(why, len, "network interface %.64s is up", e->d_name);
				closedir(d);
				return true;
			}
		}
		closedir(d);
	}
	/* NVMe namespaces (nvme/nvmeX/nvmeXnY) that are mounted */
	char ctrl[64] = "", ns[64];
	ctl_dev_path(c, bdf, "nvme", dir, sizeof(dir));
	if ((d = opendir(dir))) {
		for (struct dirent *e; (e = readdir(d));)
			if (!strncmp(e->d_name, "nvme", 4))
				snprintf(ctrl, sizeof(ctrl), "%.60s", e->d_name);
		closedir(d);
	}
	if (!ctrl[0])
		return false;
	snprintf(path, sizeof(path), "%s/mounts", c->proc);
	FILE *m = fopen(path, "re");
	if (!m)
		return false;
	char line[1024];
	bool found = false;
	snprintf(ns, sizeof(ns), "/dev/%sn", ctrl);
	while (!found && fgets(line, sizeof(line), m)) {
		if (strncmp(line, ns, strlen(ns)) == 0) {
			line[strcspn(line, " ")] = '\0';
			snprintf(why, len, "%.200s is mounted", line);
			found = true;
		}
	}
	fclose(m);
	return found;
}

/* A process that holds the device's VFIO cdev or group open; false if none. */
static bool busy_vfio(const struct ctl *c, const struct ctl_pci *p, char *why, size_t len)
{
	char cdev[CTL_PATH] = "", group[CTL_PATH] = "", dir[CTL_PATH], path[CTL_PATH + 300];
	char target[CTL_PATH];

	if (p->cdev[0])
		snprintf(cdev, sizeof(cdev), "%s/vfio/devices/%s", c->dev, p->cdev);
	if (p->group >= 0)
		snprintf(group, sizeof(group), "%s/vfio/%s%d", c->dev,
			 p->noiommu_group ? "noiommu-" : "", p->group);
	DIR *procs = opendir(c->proc);
	if (!procs)
		return false;
	bool found = false;
	for (struct dirent *pe; !found && (pe = readdir(procs));) {
		if (pe->d_name[0] < '0' || pe->d_name[0] > '9')
			continue;
		snprintf(dir, sizeof(dir), "%s/%s/fd", c->proc, pe->d_name);
		DIR *fds = opendir(dir); /* other users' processes: EACCES, skipped */
		if (!fds)
			continue;
		for (struct dirent *fe; !found && (fe = readdir(fds));) {
			snprintf(path, sizeof(path), "%s/%s", dir, fe->d_name);
			ssize_t n = readlink(path, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			if ((cdev[0] && !strcmp(target, cdev)) || (group[0] && !strcmp(target, group))) {
				snprintf(why, len, "process %.16s has %.200s open", pe->d_name, target);
				found = true;
			}
		}
		closedir(fds);
	}
	closedir(procs);
	return found;
}

static void state_path(const struct ctl *c, const char *bdf, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", c->state, bdf);
}

/* Remember the driver a device had before its first bind (kept until unbind). */
static void remember(struct ctl *c, const struct ctl_pci *p)
{
	char path[CTL_PATH];
	state_path(c, p->bdf, path, sizeof(path));
	if (ctl_exists(path))
		return;
	mkdir(c->state, 0755); /* EEXIST is fine; a failure shows at fopen */
	FILE *f = fopen(path, "we");
	if (!f) {
		/* not fatal: unbind then relies on the kernel's re-probe */
		fprintf(c->err, "vfdmactl: warning: cannot record the original driver in %s: %s\n",
			path, strerror(errno));
		return;
	}
	fprintf(f, "%s\n", p->driver);
	fclose(f);
}

static void report(struct ctl *c, struct ctl_json *j, const char *bdf, const char *action,
		   const char *before, const struct ctl_pci *now, const char *error)
{
	char cdev[CTL_PATH] = "";
	if (now && now->cdev[0])
		snprintf(cdev, sizeof(cdev), "%s/vfio/devices/%s", c->dev, now->cdev);
	if (c->json) {
		json_obj(j, NULL);
		json_str(j, "bdf", bdf);
		json_str(j, "action", action);
		json_str(j, "driver_before", before && before[0] ? before : NULL);
		json_str(j, "driver", now && now->driver[0] ? now->driver : NULL);
		json_int_or_null(j, "iommu_group", now ? now->group : -1);
		json_str(j, "vfio_cdev", cdev[0] ? cdev : NULL);
		json_str(j, "error", error);
		json_close(j);
	} else if (!error) {
		fprintf(c->out, "%s: %s (driver %s%s%s)\n", bdf, action,
			now && now->driver[0] ? now->driver : "none", cdev[0] ? ", " : "", cdev);
	}
	if (error)
		ctl_errorf(c, 0, "%s: %s", bdf, error);
}

/*
 * The sysfs steps of bind and unbind: write @override to driver_override,
 * unbind from the current driver if any, ask drivers_probe (and, if
 * @fallback, that driver's own bind file when drivers_probe is refused, as
 * on old kernels).  Reports a failure itself; returns 0 or a negative errno.
 */
static int move(struct ctl *c, struct ctl_json *j, const char *bdf, const struct ctl_pci *p,
		const char *override, const char *fallback)
{
	char path[CTL_PATH], err[400];
	const char *step = "driver_override";
	ctl_dev_path(c, bdf, "driver_override", path, sizeof(path));
	int rc = ctl_write_attr(c, path, override);
	if (rc == 0 && p->driver[0]) {
		step = "unbind";
		ctl_dev_path(c, bdf, "driver/unbind", path, sizeof(path));
		rc = ctl_write_attr(c, path, bdf);
	}
	if (rc == 0) {
		step = "drivers_probe";
		snprintf(path, sizeof(path), "%s/bus/pci/drivers_probe", c->sys);
		rc = ctl_write_attr(c, path, bdf);
		if (rc != 0 && fallback) {
			snprintf(path, sizeof(path), "%s/bus/pci/drivers/%s/bind", c->sys, fallback);
			rc = ctl_write_attr(c, path, bdf);
		}
	}
	if (rc != 0) {
		snprintf(err, sizeof(err), "writing %s failed: %s%s", step, strerror(-rc),
			 rc == -EACCES || rc == -EPERM ? " (run as root)" : "");
		report(c, j, bdf, "failed", p->driver, p, err);
	}
	return rc;
}

static int bind_one(struct ctl *c, struct ctl_json *j, const char *bdf, const struct opts *o)
{
	char path[CTL_PATH], why[256], err[400];
	struct ctl_pci p, now;
	int rc;

	if (ctl_pci_read(c, bdf, &p) != 0) {
		report(c, j, bdf, "failed", NULL, NULL, "no such PCI device (see: vfdmactl list --all)");
		return CTL_ENODEV;
	}
	if (!strcmp(p.driver, o->driver)) {
		report(c, j, bdf, "unchanged", p.driver, &p, NULL);
		return CTL_OK;
	}
	snprintf(path, sizeof(path), "%s/bus/pci/drivers/%s", c->sys, o->driver);
	if (!ctl_exists(path)) {
		snprintf(err, sizeof(err), "driver %s is not loaded (modprobe %s)", o->driver, o->driver);
		report(c, j, bdf, "failed", p.driver, &p, err);
		return CTL_ENOTSUP;
	}
	if (p.group < 0 && !strcmp(o->driver, "vfio-pci") && !noiommu_enabled(c)) {
		/* vfio-pci would fail its probe and leave the device driverless */
		report(c, j, bdf, "failed", p.driver, &p,
		       "no IOMMU group: the IOMMU is off (intel_iommu=on / amd_iommu=on?)");
		return CTL_ENOTSUP;
	}
	if (!o->force && busy_kernel(c, bdf, why, sizeof(why))) {
		snprintf(err, sizeof(err), "in use: %s (--force to bind anyway)", why);
		report(c, j, bdf, "failed", p.driver, &p, err);
		return CTL_EBUSY;
	}
	remember(c, &p);
	rc = move(c, j, bdf, &p, o->driver, o->driver);
	if (rc != 0)
		return ctl_errno_code(rc);
	if (!wait_for(c, bdf, o->driver, &now)) {
		/* best effort: let the kernel give it back to its own driver */
		ctl_dev_path(c, bdf, "driver_override", path, sizeof(path));
		if (!now.driver[0] && ctl_write_attr(c, path, "\n") == 0) {
			snprintf(path, sizeof(path), "%s/bus/pci/drivers_probe", c->sys);
			ctl_write_attr(c, path, bdf);
			ctl_pci_read(c, bdf, &now);
		}
		snprintf(err, sizeof(err), "timed out after %u ms waiting for %s (driver now %s)",
			 c->wait_ms, o->driver, now.driver[0] ? now.driver : "none");
		report(c, j, bdf, "failed", p.driver, &now, err);
		return CTL_EFAIL;
	}
	report(c, j, bdf, "bound", p.driver, &now, NULL);
	return CTL_OK;
}

static int unbind_one(struct ctl *c, struct ctl_json *j, const char *bdf, const struct opts *o)
{
	char path[CTL_PATH], why[256], err[400], orig[64] = "";
	struct ctl_pci p, now;
	bool known;
	int rc;

	if (ctl_pci_read(c, bdf, &p) != 0) {
		report(c, j, bdf, "failed", NULL, NULL, "no such PCI device (see: vfdmactl list --all)");
		return CTL_ENODEV;
	}
	if (strcmp(p.driver, o->driver) != 0 && strcmp(p.override, o->driver) != 0) {
		report(c, j, bdf, "unchanged", p.driver, &p, NULL);
		return CTL_OK;
	}
	if (!o->force && busy_vfio(c, &p, why, sizeof(why))) {
		snprintf(err, sizeof(err), "in use: %s (the kernel would wait for it to close)", why);
		report(c, j, bdf, "failed", p.driver, &p, err);
		return CTL_EBUSY;
	}
	state_path(c, bdf, path, sizeof(path));
	known = ctl_read_attr(path, orig, sizeof(orig)) == 0;

	rc = move(c, j, bdf, &p, "\n", NULL); /* an empty line clears driver_override */
	if (rc != 0)
		return ctl_errno_code(rc);
	/* A device that had no driver before bind may stay without one. */
	if (!known || orig[0])
		wait_for(c, bdf, known ? orig : NULL, &now);
	ctl_pci_read(c, bdf, &now);
	if (known && orig[0] && strcmp(now.driver, orig) != 0 && !now.driver[0]) {
		/* the re-probe did not bring it back: ask the driver directly */
		snprintf(path, sizeof(path), "%s/bus/pci/drivers/%s/bind", c->sys, orig);
		if (ctl_exists(path) && ctl_write_attr(c, path, bdf) == 0)
			wait_for(c, bdf, orig, &now);
	}
	state_path(c, bdf, path, sizeof(path));
	unlink(path);
	if (known && strcmp(now.driver, orig) != 0) {
		snprintf(err, sizeof(err), "unbound from %s, but the driver is now %s, was %s before bind",
			 o->driver, now.driver[0] ? now.driver : "none", orig[0] ? orig : "none");
		report(c, j, bdf, "failed", p.driver, &now, err);
		return CTL_EFAIL;
	}
	report(c, j, bdf, "unbound", p.driver, &now, NULL);
	return CTL_OK;
}

/* Shared by bind and unbind: options, then one result per BDF. */
static int run(struct ctl *c, int argc, char **argv, bool bind)
{
	static const struct option lopts[] = {
		{ "driver", required_argument, NULL, 'd' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .driver = "vfio-pci" };
	int opt;
	while ((opt = getopt_long(argc, argv, "+d:fjt:", lopts, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 'd': o.driver = optarg; break;
		case 'f': o.force = true; break;
		case 'j': c->json = true; break;
		case 't': {
			errno = 0;
			double s = strtod(optarg, &end);
			if (errno || end == optarg || *end || s < 0 || s > 3600)
				return ctl_errorf(c, CTL_EUSAGE, "bad --timeout: %s", optarg);
			c->wait_ms = (unsigned int)(s * 1000);
			break;
		}
		default: return CTL_EUSAGE;
		}
	}
	if (optind >= argc)
		return ctl_errorf(c, CTL_EUSAGE, "%s: which device? (a PCI address)", argv[0]);
	if (!o.driver[0] || strchr(o.driver, '/') || strlen(o.driver) > 60)
		return ctl_errorf(c, CTL_EUSAGE, "bad driver name: %s", o.driver);

	struct ctl_json j = { 0 };
	if (c->json) {
		json_begin(&j, c->out);
		json_obj(&j, NULL);
		json_arr(&j, "devices");
	}
	int worst = CTL_OK;
	for (int i = optind; i < argc; i++) {
		char bdf[16];
		int rc;
		if (!ctl_bdf_normalize(argv[i], bdf)) {
			rc = ctl_errorf(c, CTL_EUSAGE, "not a PCI address: %s", argv[i]);
		} else {
			rc = bind ? bind_one(c, &j, bdf, &o) : unbind_one(c, &j, bdf, &o);
		}
		if (worst == CTL_OK)
			worst = rc; /* the first failure names the exit code */
	}
	if (c->json) {
		json_close(&j);
		json_close(&j);
		json_end(&j);
	}
	return worst;
}

int ctl_bind(struct ctl *c, int argc, char **argv)
{
	return run(c, argc, argv, true);
}

int ctl_unbind(struct ctl *c, int argc, char **argv)
{
	return run(c, argc, argv, false);
}
