/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A small streaming JSON writer: two-space indentation, one value per line,
 * strings escaped per RFC 8259.  Addresses are written as "0x..." strings:
 * a 64-bit IOVA does not survive a trip through a parser that reads
 * numbers as doubles.
 */
#include <inttypes.h>

#include "ctl.h"

void json_write_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			/* other control characters have no short form; bytes
			 * >= 0x80 pass through (UTF-8 stays UTF-8) */
			if (*p < 0x20 || *p == 0x7f)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

/* Separator, indentation and key of the next value. */
static void prefix(struct ctl_json *j, const char *key)
{
	if (j->depth > 0) {
		if (!j->first[j->depth])
			fputc(',', j->f);
		j->first[j->depth] = false;
		fputc('\n', j->f);
		for (int i = 0; i < j->depth; i++)
			fputs("  ", j->f);
	}
	if (key) {
		json_write_string(j->f, key);
		fputs(": ", j->f);
	}
}

void json_begin(struct ctl_json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->first[0] = true;
}

void json_end(struct ctl_json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
}

static void open_container(struct ctl_json *j, const char *key, char c)
{
	prefix(j, key);
	fputc(c, j->f);
	/* deeper nesting than any command writes would be a bug: stay put
	 * rather than overrun (the output is then wrongly indented only) */
	if (j->depth + 1 < CTL_JSON_DEPTH)
		j->depth++;
	j->first[j->depth] = true;
	j->closer[j->depth] = c == '{' ? '}' : ']';
}

void json_obj(struct ctl_json *j, const char *key)
{
	open_container(j, key, '{');
}

void json_arr(struct ctl_json *j, const char *key)
{
	open_container(j, key, '[');
}

void json_close(struct ctl_json *j)
{
	bool empty = j->first[j->depth];
	char closer = j->closer[j->depth];
	if (j->depth > 0)
		j->depth--;
	if (!empty) { /* "[]" and "{}" stay on one line */
		fputc('\n', j->f);
		for (int i = 0; i < j->depth; i++)
			fputs("  ", j->f);
	}
	fputc(closer, j->f);
}

void json_str(struct ctl_json *j, const char *key, const char *val)
{
	prefix(j, key);
	if (val)
		json_write_string(j->f, val);
	else
		fputs("null", j->f);
}

void json_int(struct ctl_json *j, const char *key, long long val)
{
	prefix(j, key);
	fprintf(j->f, "%lld", val);
}

void json_u64(struct ctl_json *j, const char *key, uint64_t val)
{
	prefix(j, key);
	fprintf(j->f, "%" PRIu64, val);
}

void json_hex(struct ctl_json *j, const char *key, uint64_t val)
{
	prefix(j, key);
	fprintf(j->f, "\"0x%" PRIx64 "\"", val);
}

void json_bool(struct ctl_json *j, const char *key, bool val)
{
	prefix(j, key);
	fputs(val ? "true" : "false", j->f);
}

void json_null(struct ctl_json *j, const char *key)
{
	prefix(j, key);
	fputs("null", j->f);
}

void json_int_or_null(struct ctl_json *j, const char *key, long long val)
{
	if (val < 0)
		json_null(j, key);
	else
		json_int(j, key, val);
}
