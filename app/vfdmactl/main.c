/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdmactl: list PCI devices with what vfdma needs to know about them,
 * bind them to vfio-pci and back, and show what a domain looks like here.
 * See vfdmactl.8.
 *
 * The roots of sysfs, /dev and /proc and the state directory come from the
 * environment (VFDMA_SYSFS_ROOT, VFDMA_DEV_ROOT, VFDMA_PROC_ROOT,
 * VFDMA_STATE_DIR) so that the tool can be pointed at a fake tree.
 */
#include <stdlib.h>

#include "ctl.h"

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v && *v ? v : def;
}

int main(int argc, char **argv)
{
	struct ctl c = {
		.out = stdout,
		.err = stderr,
		.sys = env_or("VFDMA_SYSFS_ROOT", "/sys"),
		.dev = env_or("VFDMA_DEV_ROOT", "/dev"),
		.proc = env_or("VFDMA_PROC_ROOT", "/proc"),
		.state = env_or("VFDMA_STATE_DIR", "/run/vfdmactl"),
		.wait_ms = 10000,
	};
	int rc = ctl_main(&c, argc, argv);
	if (fflush(stdout) != 0 && rc == CTL_OK) /* a full disk or closed pipe is a failure */
		rc = CTL_EFAIL;
	return rc;
}
