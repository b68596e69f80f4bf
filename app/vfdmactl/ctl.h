/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdmactl: inspect PCI devices and move them between their kernel driver
 * and vfio-pci.  Everything the commands share: the context (where sysfs
 * and /dev are, where to print), the exit codes, the sysfs helpers and the
 * JSON writer.  Kept includable from C++ so that the unit tests can drive
 * ctl_main() against a fake sysfs tree.
 */
#ifndef VFDMACTL_CTL_H
#define VFDMACTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exit codes (documented in vfdmactl.8). */
enum {
	CTL_OK = 0,
	CTL_EFAIL = 1,   /* an operation failed (kernel refused, timed out) */
	CTL_EUSAGE = 2,  /* bad command line */
	CTL_ENODEV = 3,  /* no such device */
	CTL_EBUSY = 4,   /* device in use: refused */
	CTL_EPERM = 5,   /* permission denied */
	CTL_ENOTSUP = 6, /* not available here (no VFIO, no vfio-pci, backend) */
};

struct ctl;

/*
 * Called after every sysfs write, with the full path and the value.  NULL
 * in the program; the unit tests use it to play the kernel's part in a fake
 * sysfs tree (a write to drivers_probe binds, to unbind unbinds, ...).
 */
typedef void (*ctl_write_hook)(struct ctl *c, const char *path, const char *val);

struct ctl {
	FILE *out;           /* results */
	FILE *err;           /* diagnostics */
	const char *sys;     /* sysfs root, "/sys" */
	const char *dev;     /* device root, "/dev" */
	const char *proc;    /* procfs root, "/proc" (mounts, open fds) */
	const char *state;   /* where bind remembers original drivers */
	unsigned int wait_ms; /* how long bind/unbind wait for the kernel */
	bool json;
	ctl_write_hook hook;
	void *hook_arg;
};

/* Run one command line (argv[0] is the program name); returns an exit code. */
int ctl_main(struct ctl *c, int argc, char **argv);

int ctl_list(struct ctl *c, int argc, char **argv);
int ctl_bind(struct ctl *c, int argc, char **argv);
int ctl_unbind(struct ctl *c, int argc, char **argv);
int ctl_info(struct ctl *c, int argc, char **argv);

/* Print "vfdmactl: <msg>" on the error stream; returns @code. */
int ctl_errorf(struct ctl *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* --- sysfs (sysfs.c) --------------------------------------------------- */

#define CTL_PATH 512

/* "0000:00:03.0" from "0000:00:03.0" or "00:03.0"; false if malformed. */
bool ctl_bdf_normalize(const char *in, char out[16]);
/* <sys>/bus/pci/devices/<bdf>[/<attr>] */
void ctl_dev_path(const struct ctl *c, const char *bdf, const char *attr, char *buf, size_t len);
/* Read a one-line attribute without its newline; 0 or -errno. */
int ctl_read_attr(const char *path, char *buf, size_t len);
/* Write @val to a sysfs attribute (then call the hook); 0 or -errno. */
int ctl_write_attr(struct ctl *c, const char *path, const char *val);
/* The last component of a symlink's target ("nvme" for driver); 0 or -errno. */
int ctl_link_name(const char *path, char *buf, size_t len);
/* Whether a path exists. */
bool ctl_exists(const char *path);
/* Exit code for an errno from a sysfs write. */
int ctl_errno_code(int err);

/* Facts about one PCI device, read from sysfs. */
struct ctl_pci {
	char bdf[16];
	unsigned int vendor, device, class_code;
	char driver[64];      /* "" when no driver is bound */
	char override[64];    /* driver_override, "" when none */
	int group;            /* IOMMU group, -1 if none */
	bool noiommu_group;   /* the group is a VFIO no-IOMMU group */
	int numa_node;        /* -1 if unknown */
	char cdev[64];        /* "vfioN" when bound to vfio-pci with a cdev */
};

/* Read a device's facts; 0, or -ENODEV if there is no such device. */
int ctl_pci_read(const struct ctl *c, const char *bdf, struct ctl_pci *p);
/* A name for the device's class ("NVMe", "Ethernet", ...). */
const char *ctl_class_name(unsigned int class_code);

/* --- JSON writer (json.c) ---------------------------------------------- */

#define CTL_JSON_DEPTH 16

struct ctl_json {
	FILE *f;
	int depth;
	bool first[CTL_JSON_DEPTH]; /* nothing written yet at this depth */
	char closer[CTL_JSON_DEPTH]; /* '}' or ']' */
};

/* Every value takes a key inside an object and NULL inside an array. */
void json_begin(struct ctl_json *j, FILE *f);
void json_end(struct ctl_json *j); /* the final newline */
void json_obj(struct ctl_json *j, const char *key);
void json_arr(struct ctl_json *j, const char *key);
void json_close(struct ctl_json *j); /* the innermost object or array */
void json_str(struct ctl_json *j, const char *key, const char *val); /* NULL: null */
void json_int(struct ctl_json *j, const char *key, long long val);
void json_u64(struct ctl_json *j, const char *key, uint64_t val);
void json_hex(struct ctl_json *j, const char *key, uint64_t val); /* "0x..." string */
void json_bool(struct ctl_json *j, const char *key, bool val);
void json_null(struct ctl_json *j, const char *key);
/* An integer, or null when negative (unknown NUMA node, no group). */
void json_int_or_null(struct ctl_json *j, const char *key, long long val);
/* @s as a JSON string literal, quotes included. */
void json_write_string(FILE *f, const char *s);

#ifdef __cplusplus
}
#endif

#endif
