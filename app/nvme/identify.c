/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_nvme_identify [options] <bdf>: bring up the NVMe controller at
 * <bdf> (bound to vfio-pci) in a vfdma domain and print what Identify
 * Controller and Identify Namespace say about it: PCI IDs, serial, model,
 * firmware, transfer and queue limits, and each active namespace's size
 * and LBA format.  Human-readable on stdout, or JSON with --json.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nvme.h"
#include "tool.h"

#define MAX_NS 1024 /* what one Identify active namespace list holds */

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s [--backend auto|iommufd|type1|noiommu] [--json] <bdf>\n"
		"  Identify an NVMe controller bound to vfio-pci, e.g. 0000:01:00.0.\n",
		prog);
}

struct facts {
	const char *bdf, *backend;
	struct nvme_ctrl *c;
	struct nvme_ns ns[MAX_NS];
	unsigned int nr_ns;
};

static void print_human(const struct facts *f)
{
	const struct nvme_ctrl *c = f->c;
	const struct nvme_ctrl_id *id = &c->id;
	printf("%s: backend %s, NVMe %u.%u\n", f->bdf, f->backend, c->vs >> 16,
	       (c->vs >> 8) & 0xff);
	printf("  VID 0x%04x SSVID 0x%04x\n", id->vid, id->ssvid);
	printf("  SN '%s' MN '%s' FR '%s'\n", id->sn, id->mn, id->fr);
	printf("  SUBNQN '%s'\n", id->subnqn);
	printf("  CNTLID %u, MDTS %u KiB%s, NN %u, OACS 0x%x, ONCS 0x%x, VWC %u\n", id->cntlid,
	       id->mdts_bytes >> 10, id->mdts_bytes ? "" : " (no limit)", id->nn, id->oacs,
	       id->oncs, id->vwc & 1);
	printf("  queues: CAP.MQES+1 %u entries, I/O SQ %u CQ %u, SQES %u..%u B, CQES %u..%u B\n",
	       NVME_CAP_MQES(c->cap) + 1, c->nr_io_sq, c->nr_io_cq, 1u << (id->sqes & 0xf),
	       1u << (id->sqes >> 4), 1u << (id->cqes & 0xf), 1u << (id->cqes >> 4));
	printf("  CAP.TO %u ms, doorbell stride %u B\n", c->timeout_ms, c->dstrd);
	for (unsigned int i = 0; i < f->nr_ns; i++) {
		const struct nvme_ns *ns = &f->ns[i];
		printf("  namespace %u: NSZE %" PRIu64 " NCAP %" PRIu64 " NUSE %" PRIu64
		       " blocks of %u B (LBA format %u of %u, %u metadata B) = %" PRIu64 " MiB\n",
		       ns->nsid, ns->nsze, ns->ncap, ns->nuse, ns->lba_size, ns->lbaf,
		       ns->nlbaf + 1u, ns->ms, (ns->nsze * ns->lba_size) >> 20);
	}
}

static void print_json(const struct facts *f)
{
	const struct nvme_ctrl *c = f->c;
	const struct nvme_ctrl_id *id = &c->id;
	printf("{\"device\": ");
	tool_json_str(stdout, f->bdf);
	printf(", \"backend\": ");
	tool_json_str(stdout, f->backend);
	printf(", \"controller\": {\"version\": \"%u.%u\", \"vid\": %u, \"ssvid\": %u, \"sn\": ",
	       c->vs >> 16, (c->vs >> 8) & 0xff, id->vid, id->ssvid);
	tool_json_str(stdout, id->sn);
	printf(", \"mn\": ");
	tool_json_str(stdout, id->mn);
	printf(", \"fr\": ");
	tool_json_str(stdout, id->fr);
	printf(", \"subnqn\": ");
	tool_json_str(stdout, id->subnqn);
	printf(", \"cntlid\": %u, \"mdts_bytes\": %u, \"nn\": %u, \"oacs\": %u, \"oncs\": %u, "
	       "\"vwc\": %u, "
	       "\"mqes\": %u, \"io_sq\": %u, \"io_cq\": %u, \"cap_to_ms\": %u, \"dstrd\": %u}",
	       id->cntlid, id->mdts_bytes, id->nn, id->oacs, id->oncs, id->vwc & 1,
	       NVME_CAP_MQES(c->cap),
	       c->nr_io_sq, c->nr_io_cq, c->timeout_ms, c->dstrd);
	printf(", \"namespaces\": [");
	for (unsigned int i = 0; i < f->nr_ns; i++) {
		const struct nvme_ns *ns = &f->ns[i];
		printf("%s{\"nsid\": %u, \"nsze\": %" PRIu64 ", \"ncap\": %" PRIu64
		       ", \"nuse\": %" PRIu64 ", \"lba_size\": %u, \"lbaf\": %u, \"ms\": %u, "
		       "\"bytes\": %" PRIu64 "}",
		       i ? ", " : "", ns->nsid, ns->nsze, ns->ncap, ns->nuse, ns->lba_size, ns->lbaf,
		       ns->ms, ns->nsze * ns->lba_size);
	}
	printf("]}\n");
}

/* Identify everything; 0 or the exit status. */
static int identify_all(struct facts *f, const char *prog)
{
	struct nvme_ctrl *c = f->c;
	char st[96];
	int rc = nvme_ctrl_identify(c);
	if (rc) {
		fprintf(stderr, "%s: Identify Controller: %s\n", prog,
			rc > 0 ? nvme_sf_str((uint16_t)rc, st, sizeof(st)) : nvme_errmsg(c));
		return 1;
	}
	/* Ask for the most queues a controller can give; it answers with what it has. */
	rc = nvme_set_num_queues(c, 65535);
	if (rc)
		fprintf(stderr, "%s: Set Features Number of Queues: %s (queue counts unknown)\n",
			prog, rc > 0 ? nvme_sf_str((uint16_t)rc, st, sizeof(st)) : nvme_errmsg(c));
	if (rc < 0)
		return 1;

	static uint32_t nsids[MAX_NS];
	unsigned int n;
	rc = nvme_ns_list(c, nsids, MAX_NS, &n);
	if (rc < 0) {
		fprintf(stderr, "%s: Identify active namespaces: %s\n", prog, nvme_errmsg(c));
		return 1;
	}
	if (rc > 0) /* before NVMe 1.1 there is no list: try every NSID up to NN */
		for (n = 0; n < c->id.nn && n < MAX_NS; n++)
			nsids[n] = n + 1;
	for (unsigned int i = 0; i < n; i++) {
		rc = nvme_ns_identify(c, nsids[i], &f->ns[f->nr_ns]);
		if (rc) {
			fprintf(stderr, "%s: Identify Namespace %u: %s\n", prog, nsids[i],
				rc > 0 ? nvme_sf_str((uint16_t)rc, st, sizeof(st))
				       : nvme_errmsg(c));
			return 1;
		}
		if (f->ns[f->nr_ns].nsze) /* inactive namespaces report zeros */
			f->nr_ns++;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"backend", required_argument, NULL, 'b'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *prog = argv[0], *backend = NULL;
	bool json = false;
	int opt;
	while ((opt = getopt_long(argc, argv, "b:jh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'b':
			backend = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout, prog);
			return 0;
		default:
			usage(stderr, prog);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr, prog);
		return 2;
	}
	struct facts *f = calloc(1, sizeof(*f));
	struct vfdma_domain *dom = f ? tool_domain(prog, backend) : NULL;
	if (!dom) {
		free(f);
		return 1;
	}
	struct nvme_ctrl c;
	f->bdf = argv[optind];
	f->c = &c;
	f->backend = vfdma_backend_name((enum vfdma_backend)vfdma_domain_backend(dom));
	int rc = nvme_open(&c, dom, f->bdf);
	if (rc) {
		fprintf(stderr, "%s: %s: %s\n", prog, f->bdf, nvme_errmsg(&c));
		vfdma_domain_close(dom);
		free(f);
		return 1;
	}
	int status = identify_all(f, prog);
	if (!status) {
		if (json)
			print_json(f);
		else
			print_human(f);
	}
	nvme_close(&c);
	vfdma_domain_close(dom);
	free(f);
	return status;
}
