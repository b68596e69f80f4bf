/* SPDX-License-Identifier: BSD-3-Clause */
/* Helpers shared by the NVMe tools (see tool.h). */
#include "tool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct vfdma_domain *tool_domain(const char *prog, const char *name)
{
	static const char *const names[] = {"auto", "iommufd", "type1", "noiommu", "sim"};
	struct vfdma_domain_opts o = {0};
	if (name) {
		unsigned int i;
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(name, names[i]))
				break;
		if (i == sizeof(names) / sizeof(names[0])) {
			fprintf(stderr, "%s: unknown backend '%s' (auto, iommufd, type1, noiommu, sim)\n",
				prog, name);
			return NULL;
		}
		o.backend = (enum vfdma_backend)i;
		unsetenv("VFDMA_BACKEND"); /* it would override the option */
	}
	struct vfdma_domain *dom = vfdma_domain_open(&o);
	if (!dom)
		fprintf(stderr, "%s: cannot open a %s domain: %s\n", prog, name ? name : "default",
			strerror(errno));
	return dom;
}

bool tool_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return false;
	*out = v;
	return true;
}

bool tool_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return false;
	unsigned int shift = 0;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	default:
		return false;
	}
	if (*end && end[1])
		return false;
	if (shift && v > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

void tool_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}
