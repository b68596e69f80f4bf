/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdmactl's command dispatch and help.  main.c fills the context from the
 * environment; the unit tests fill it themselves and call ctl_main().
 */
#include <getopt.h>
#include <string.h>

#include "ctl.h"

static const struct {
	const char *name;
	int (*fn)(struct ctl *c, int argc, char **argv);
	const char *args;
	const char *help;
} cmds[] = {
	{ "list", ctl_list, "[--all] [--json] [BDF...]",
	  "PCI devices: driver, IOMMU group, NUMA node, VFIO cdev, usable by vfdma" },
	{ "bind", ctl_bind, "[--driver vfio-pci] [--force] [--timeout S] [--json] BDF...",
	  "bind devices to vfio-pci (driver_override), remembering their driver" },
	{ "unbind", ctl_unbind, "[--force] [--timeout S] [--json] BDF...",
	  "give devices back to their original driver" },
	{ "info", ctl_info, "[--backend auto|iommufd|type1|noiommu|sim] [--json] [BDF]",
	  "open a domain (and the device): backend, page sizes, IOVA ranges, dirty tracking" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vfdmactl <command> [options]\n\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-6s %s\n         %s\n", cmds[i].name, cmds[i].args, cmds[i].help);
	fprintf(f, "\nExit status: 0 ok, 1 failed, 2 usage, 3 no such device, 4 device busy,\n"
		   "5 permission denied, 6 not available here.  See vfdmactl(8).\n");
}

int ctl_main(struct ctl *c, int argc, char **argv)
{
	if (argc < 2) {
		usage(c->err);
		return CTL_EUSAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(c->out);
		return CTL_OK;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		/* each command parses its own options from argv[1] on;
		 * getopt keeps its position across calls (tests call us
		 * repeatedly), so reset it: 0 also resets glibc's state */
		optind = 0;
		opterr = 1;
		int rc = cmds[i].fn(c, argc - 1, argv + 1);
		if (rc == CTL_EUSAGE)
			fprintf(c->err, "usage: vfdmactl %s %s\n", cmds[i].name, cmds[i].args);
		return rc;
	}
	ctl_errorf(c, CTL_EUSAGE, "unknown command '%s'", argv[1]);
	usage(c->err);
	return CTL_EUSAGE;
}
