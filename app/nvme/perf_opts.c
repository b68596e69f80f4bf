/* SPDX-License-Identifier: BSD-3-Clause */
/* vfdma_nvme_perf's command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf.h"
#include "tool.h"

#define MAX_QD 4096
#define MAX_QUEUES 64

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [options] <bdf>            this driver, on a controller bound to vfio-pci\n"
		"       %s [options] --bdev <device>  the kernel's driver, through io_uring\n"
		"\n"
		"  --dev <bdf>          the controller (instead of the positional argument)\n"
		"  --backend <name>     auto (default; $VFDMA_BACKEND), iommufd, type1, noiommu\n"
		"  --rw <mode>          read, write, randread (default), randwrite\n"
		"  --bs <size>          bytes per I/O (default 4k; k, m suffixes)\n"
		"  --qd <n>             commands outstanding per queue (default 32)\n"
		"  --queues <n>         I/O queue pairs, all polled by one thread (default 1)\n"
		"  --time <seconds>     run this long (default 5 without --ios)\n"
		"  --ios <n>            stop after n I/Os (with --time: whichever comes first)\n"
		"  --ns <nsid>          namespace (default 1)\n"
		"  --offset <size>      start of the region (default 0)\n"
		"  --size <size>        length of the region (default: to the end)\n"
		"  --verify             write the pattern over the region, read it back, compare\n"
		"  --verify-read        only read the region and compare it with the pattern\n"
		"  --seed <n>           pattern and random offsets (default 0x5eed)\n"
		"  --irq                wait on MSI-X interrupts (eventfds) instead of polling\n"
		"  --dbbuf              shadow doorbells (Doorbell Buffer Config: emulated controllers)\n"
		"  --timeout <ms>       per command (default 5000)\n"
		"  --no-check           do not check namespace and region against Identify data:\n"
		"                       send the commands and report the controller's answer\n"
		"  --json               results as JSON on stdout (the summary stays on stderr)\n",
		prog, prog);
}

static int bad(const char *prog, const char *opt, const char *val, const char *what)
{
	fprintf(stderr, "%s: %s %s: %s\n", prog, opt, val, what);
	return 2;
}

int perf_parse(int argc, char **argv, struct perf_opts *o)
{
	static const struct option longopts[] = {
		{"dev", required_argument, NULL, 'd'},	   {"bdev", required_argument, NULL, 'B'},
		{"backend", required_argument, NULL, 'b'}, {"rw", required_argument, NULL, 'r'},
		{"bs", required_argument, NULL, 's'},	   {"qd", required_argument, NULL, 'q'},
		{"queues", required_argument, NULL, 'Q'},  {"time", required_argument, NULL, 't'},
		{"ios", required_argument, NULL, 'n'},	   {"ns", required_argument, NULL, 'N'},
		{"offset", required_argument, NULL, 'o'},  {"size", required_argument, NULL, 'S'},
		{"verify", no_argument, NULL, 'v'},	   {"seed", required_argument, NULL, 'e'},
		{"irq", no_argument, NULL, 'i'},	   {"timeout", required_argument, NULL, 'T'},
		{"no-check", no_argument, NULL, 'C'},	   {"json", no_argument, NULL, 'j'},
		{"verify-read", no_argument, NULL, 'V'},   {"dbbuf", no_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},	   {NULL, 0, NULL, 0},
	};
	static const char *const rw[] = {"read", "write", "randread", "randwrite"};
	const char *prog = argv[0];
	*o = (struct perf_opts){
		.rw = PERF_RANDREAD, .bs = 4096, .qd = 32, .queues = 1, .nsid = 1,
		.seed = 0x5eed, .timeout_ms = 5000,
	};
	uint64_t v;
	char *end;
	int opt;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			o->dev = optarg;
			break;
		case 'B':
			o->bdev = optarg;
			break;
		case 'b':
			o->backend = optarg;
			break;
		case 'r': {
			unsigned int i = 0;
			while (i < 4 && strcmp(optarg, rw[i]))
				i++;
			if (i == 4)
				return bad(prog, "--rw", optarg, "read, write, randread or randwrite");
			o->rw = (enum perf_rw)i;
			break;
		}
		case 's':
			if (!tool_size(optarg, &v) || !v || v % 512 || v > (64u << 20))
				return bad(prog, "--bs", optarg, "a multiple of 512, up to 64m");
			o->bs = (uint32_t)v;
			break;
		case 'q':
			if (!tool_u64(optarg, &v) || !v || v > MAX_QD)
				return bad(prog, "--qd", optarg, "1 .. 4096");
			o->qd = (uint32_t)v;
			break;
		case 'Q':
			if (!tool_u64(optarg, &v) || !v || v > MAX_QUEUES)
				return bad(prog, "--queues", optarg, "1 .. 64");
			o->queues = (uint32_t)v;
			break;
		case 't':
			o->time_s = strtod(optarg, &end);
			if (end == optarg || *end || !(o->time_s > 0 && o->time_s < 1e6))
				return bad(prog, "--time", optarg, "seconds, > 0");
			break;
		case 'n':
			if (!tool_u64(optarg, &o->ios) || !o->ios)
				return bad(prog, "--ios", optarg, "a count, > 0");
			break;
		case 'N':
			if (!tool_u64(optarg, &v) || v > UINT32_MAX)
				return bad(prog, "--ns", optarg, "a namespace ID");
			o->nsid = (uint32_t)v;
			break;
		case 'o':
			if (!tool_size(optarg, &o->offset))
				return bad(prog, "--offset", optarg, "a size in bytes");
			break;
		case 'S':
			if (!tool_size(optarg, &o->size) || !o->size)
				return bad(prog, "--size", optarg, "a size in bytes, > 0");
			break;
		case 'v':
			o->verify = true;
			break;
		case 'D':
			o->dbbuf = true;
			break;
		case 'V':
			o->verify_read = true;
			break;
		case 'e':
			if (!tool_u64(optarg, &o->seed))
				return bad(prog, "--seed", optarg, "a number");
			break;
		case 'i':
			o->irq = true;
			break;
		case 'T':
			if (!tool_u64(optarg, &v) || !v || v > UINT32_MAX)
				return bad(prog, "--timeout", optarg, "milliseconds, > 0");
			o->timeout_ms = (uint32_t)v;
			break;
		case 'C':
			o->no_check = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			usage(stdout, prog);
			exit(0);
		default:
			usage(stderr, prog);
			return 2;
		}
	}
	if (optind < argc && !o->dev)
		o->dev = argv[optind++];
	if (optind < argc || !o->dev == !o->bdev) {
		fprintf(stderr, "%s: give one controller (<bdf> or --dev) or one --bdev\n", prog);
		usage(stderr, prog);
		return 2;
	}
	if (o->bdev && (o->irq || o->backend || o->nsid != 1 || o->dbbuf)) {
		fprintf(stderr, "%s: --irq, --backend, --ns and --dbbuf are for the vfdma engine\n",
			prog);
		return 2;
	}
	if (o->verify && o->verify_read) {
		fprintf(stderr, "%s: --verify or --verify-read, not both\n", prog);
		return 2;
	}
	if (!o->time_s && !o->ios && !o->verify && !o->verify_read)
		o->time_s = 5;
	return 0;
}
