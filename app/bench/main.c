/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_bench: benchmarks of libvfdma, one subcommand per component.
 * Results go to stdout as JSON, a human summary to stderr.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{ "iova", bench_iova, "IOVA allocator: cached pairs, fragmented space, 32-bit limit, memory" },
	{ "dma", bench_dma, "DMA memory: translation hit, mapping-cache hit (syscalls counted), pool pairs, metadata per mapping" },
	{ "dirty", bench_dirty, "dirty logs (sim, or --backend iommufd-mock): sync cost per GiB tracked at 4 KiB, precision with and without split" },
	{ "map", bench_map, "mapping: 1 GiB of 2 MiB pages (kernel calls, time), 4 KiB map+unmap pairs strict/deferred" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vfdma_bench <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-8s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\n'vfdma_bench <command> --help' for the options of a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "vfdma_bench: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
