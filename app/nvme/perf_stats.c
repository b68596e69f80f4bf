/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_nvme_perf's figures: a latency histogram and the reports.
 *
 * The histogram is log-linear (as HdrHistogram): values below 32 ns have a
 * bucket each, above that every power of two is cut into 32 buckets, so a
 * percentile is within about 3 % of the true value whatever the range, in
 * a fixed 16 KiB and one increment per I/O.
 */
#include <inttypes.h>
#include <stdio.h>

#include "perf.h"
#include "tool.h"

static unsigned int bucket_of(uint64_t v)
{
	if (v < PERF_HIST_SUB)
		return (unsigned int)v;
	unsigned int e = 63u - (unsigned int)__builtin_clzll(v); /* >= 5 */
	unsigned int sub = (unsigned int)(v >> (e - 5)) & (PERF_HIST_SUB - 1);
	return (e - 4) * PERF_HIST_SUB + sub;
}

/* The middle of bucket @i. */
static uint64_t bucket_value(unsigned int i)
{
	if (i < PERF_HIST_SUB)
		return i;
	unsigned int e = i / PERF_HIST_SUB + 4, sub = i % PERF_HIST_SUB;
	uint64_t lo = (uint64_t)(PERF_HIST_SUB + sub) << (e - 5);
	return lo + ((1ull << (e - 5)) >> 1);
}

void perf_stats_add(struct perf_stats *st, uint64_t lat)
{
	if (!st->ios || lat < st->lat_min)
		st->lat_min = lat;
	if (lat > st->lat_max)
		st->lat_max = lat;
	st->lat_sum += lat;
	st->ios++;
	st->hist[bucket_of(lat)]++;
}

uint64_t perf_stats_percentile(const struct perf_stats *st, double p)
{
	if (!st->ios)
		return 0;
	uint64_t want = (uint64_t)(p / 100.0 * (double)st->ios + 0.999999);
	if (want < 1)
		want = 1;
	uint64_t seen = 0;
	for (unsigned int i = 0; i < PERF_HIST_BUCKETS; i++) {
		seen += st->hist[i];
		if (seen >= want) {
			uint64_t v = bucket_value(i);
			return v < st->lat_min ? st->lat_min : v > st->lat_max ? st->lat_max : v;
		}
	}
	return st->lat_max;
}

static double iops(const struct perf_stats *st)
{
	return st->ns ? (double)st->ios * 1e9 / (double)st->ns : 0;
}

static double mbps(const struct perf_stats *st)
{
	return st->ns ? (double)st->bytes * 1e3 / (double)st->ns : 0; /* 10^6 B/s */
}

void perf_report_human(const struct perf_job *job)
{
	const struct perf_opts *o = job->o;
	const struct perf_stats *st = &job->st;
	double us = 1e-3;
	fprintf(stderr,
		"%s %s%s%s: %s bs %u qd %u queues %u%s%s: %.0f IOPS, %.1f MB/s, %" PRIu64
		" I/Os in %.2f s, %" PRIu64 " errors\n"
		"  latency us: min %.1f mean %.1f p50 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
		job->eng->name, job->target, job->backend ? " " : "", job->backend ? job->backend : "",
		job->phase, o->bs, o->qd, o->queues, o->irq ? " irq" : "", job->dbbuf ? " dbbuf" : "",
		iops(st), mbps(st),
		st->ios, (double)st->ns * 1e-9, st->errors, (double)st->lat_min * us,
		st->ios ? (double)st->lat_sum / (double)st->ios * us : 0,
		(double)perf_stats_percentile(st, 50) * us, (double)perf_stats_percentile(st, 99) * us,
		(double)perf_stats_percentile(st, 99.9) * us, (double)st->lat_max * us);
}

void perf_report_json_head(const struct perf_job *job)
{
	const struct perf_opts *o = job->o;
	printf("{\"tool\": \"vfdma_nvme_perf\", \"engine\": \"%s\", \"target\": ", job->eng->name);
	tool_json_str(stdout, job->target);
	printf(", \"backend\": ");
	if (job->backend)
		tool_json_str(stdout, job->backend);
	else
		printf("null");
	printf(", \"bs\": %u, \"qd\": %u, \"queues\": %u, \"ns\": %u, \"irq\": %s, \"dbbuf\": %s, \"offset\": %" PRIu64
	       ", \"size\": %" PRIu64 ", \"block\": %u, \"seed\": %" PRIu64 ", \"jobs\": [",
	       o->bs, o->qd, o->queues, o->nsid, o->irq ? "true" : "false",
	       job->dbbuf ? "true" : "false", job->region_off,
	       job->region_len, job->block, o->seed);
}

void perf_report_json_phase(const struct perf_job *job, bool first)
{
	const struct perf_stats *st = &job->st;
	double us = 1e-3;
	printf("%s{\"rw\": \"%s\", \"seconds\": %.3f, \"ios\": %" PRIu64 ", \"bytes\": %" PRIu64
	       ", \"errors\": %" PRIu64 ", \"iops\": %.1f, \"mbps\": %.2f, \"lat_us\": {\"min\": %.2f"
	       ", \"mean\": %.2f, \"p50\": %.2f, \"p99\": %.2f, \"p99.9\": %.2f, \"max\": %.2f}}",
	       first ? "" : ", ", job->phase, (double)st->ns * 1e-9, st->ios, st->bytes, st->errors,
	       iops(st), mbps(st), (double)st->lat_min * us,
	       st->ios ? (double)st->lat_sum / (double)st->ios * us : 0,
	       (double)perf_stats_percentile(st, 50) * us, (double)perf_stats_percentile(st, 99) * us,
	       (double)perf_stats_percentile(st, 99.9) * us, (double)st->lat_max * us);
}

void perf_report_json_tail(const struct perf_job *job, int status)
{
	printf("], \"verify\": %s, \"status\": \"%s\", \"error\": ",
	       !job->o->verify && !job->o->verify_read ? "null"
	       : status				       ? "\"fail\""
						       : "\"pass\"",
	       status ? "error" : "ok");
	if (job->failed)
		tool_json_str(stdout, job->errmsg);
	else
		printf("null");
	printf("}\n");
}
