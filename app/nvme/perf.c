/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_nvme_perf: the workload loop (see perf.h), shared by both engines
 * so that they are measured the same way: the same offsets from the same
 * generator, the clock read at the same points (when an I/O is handed to
 * the engine and when the engine reports it done), one thread.
 *
 * --verify runs two phases over the region: a sequential write of the
 * pattern (pattern.h), then a sequential read that compares every block;
 * --verify-read only the second.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pattern.h"
#include "perf.h"

uint64_t perf_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: the random offsets; reproducible from --seed. */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static void fail(struct perf_job *job, const char *msg)
{
	if (!job->failed)
		snprintf(job->errmsg, sizeof(job->errmsg), "%s", msg);
	job->failed = true;
	job->stop = true;
}

/* Hand slot @s its next I/O; false when the phase is done or failed. */
static bool start_io(struct perf_job *job, struct perf_slot *s)
{
	const struct perf_opts *o = job->o;
	if (job->stop || (job->max_ios && job->issued >= job->max_ios))
		return false;
	uint64_t nr = job->region_len / o->bs;
	if (job->random) {
		s->off = job->region_off + next_rand(&job->rng) % nr * o->bs;
	} else {
		s->off = job->region_off + job->next_seq;
		job->next_seq = (job->next_seq + o->bs) % (nr * o->bs);
	}
	s->write = job->write;
	if (s->write && job->compare)
		pattern_fill(s->buf, o->bs, s->off, o->seed);
	s->t0_ns = perf_now_ns();
	int rc = job->eng->submit(job, s);
	if (rc) {
		char msg[128];
		snprintf(msg, sizeof(msg), "submit at offset %" PRIu64 ": %s", s->off,
			 strerror(-rc));
		fail(job, msg);
		return false;
	}
	job->issued++;
	job->inflight++;
	return true;
}

void perf_complete(struct perf_job *job, struct perf_slot *s, const char *err)
{
	uint64_t now = perf_now_ns();
	job->inflight--;
	if (err) {
		job->st.errors++;
		fail(job, err);
		return;
	}
	if (!s->write && job->compare) {
		int64_t bad = pattern_mismatch(s->buf, job->o->bs, s->off, job->o->seed);
		if (bad >= 0) {
			char msg[160];
			uint64_t got = ((const uint64_t *)s->buf)[((uint64_t)bad - s->off) / 8];
			snprintf(msg, sizeof(msg),
				 "verify: data mismatch at byte %" PRId64 ": read 0x%016" PRIx64
				 ", expected 0x%016" PRIx64,
				 bad, got, pattern_word(job->o->seed, (uint64_t)bad));
			job->st.errors++;
			fail(job, msg);
			return;
		}
	}
	perf_stats_add(&job->st, now - s->t0_ns);
	job->st.bytes += job->o->bs;
	if (job->deadline_ns && now >= job->deadline_ns)
		job->stop = true;
	start_io(job, s);
}

/* Run one phase to its end; 0, or -1 with job->errmsg set. */
static int run_phase(struct perf_job *job, const char *phase, bool write, bool random,
		     bool compare, uint64_t max_ios, double seconds)
{
	memset(&job->st, 0, sizeof(job->st));
	job->phase = phase;
	job->write = write;
	job->random = random;
	job->compare = compare;
	job->next_seq = 0;
	job->rng = job->o->seed * 2 + 1; /* never 0 */
	job->issued = job->inflight = 0;
	job->max_ios = max_ios;
	job->stop = false;
	uint64_t start = perf_now_ns();
	job->deadline_ns = seconds > 0 ? start + (uint64_t)(seconds * 1e9) : 0;
	for (unsigned int i = 0; i < job->nr_slots; i++)
		if (!start_io(job, &job->slots[i]))
			break;
	while (job->inflight) {
		int n = job->eng->reap(job, true);
		if (n < 0) {
			fail(job, job->errmsg[0] ? job->errmsg : strerror(-n));
			break; /* what is still outstanding cannot be waited for */
		}
	}
	job->st.ns = perf_now_ns() - start;
	return job->failed ? -1 : 0;
}

/* The region against the target; 0, or -1 after printing why. */
static int check_region(struct perf_job *job, const char *prog)
{
	const struct perf_opts *o = job->o;
	const char *why = NULL;
	char msg[320];
	uint64_t size = o->size			   ? o->size
			: job->capacity > o->offset ? job->capacity - o->offset
						    : o->bs; /* --no-check past the end */
	if (o->bs % job->block)
		why = "the block size is not a multiple of the logical block size";
	else if (o->bs > job->max_xfer)
		why = "the block size is larger than one command can transfer";
	else if (o->offset % job->block)
		why = "the offset is not a multiple of the logical block size";
	else if (!o->no_check && (o->offset >= job->capacity || size > job->capacity - o->offset))
		why = "the region is past the end";
	else if (size < o->bs)
		why = "the region is smaller than one block";
	else if ((o->verify || o->verify_read) && size % o->bs)
		why = "--verify needs a region that is a multiple of the block size";
	if (why) {
		snprintf(msg, sizeof(msg),
			 "%s: %s: bs %u, offset %" PRIu64 ", size %" PRIu64 "; %s; max transfer %u B",
			 prog, why, o->bs, o->offset, size, job->capdesc, job->max_xfer);
		fprintf(stderr, "%s\n", msg);
		return -1;
	}
	job->region_off = o->offset;
	job->region_len = size - size % o->bs;
	return 0;
}

static const char *const rw_names[] = {"read", "write", "randread", "randwrite"};

int main(int argc, char **argv)
{
	struct perf_opts o;
	int rc = perf_parse(argc, argv, &o);
	if (rc)
		return rc;
	static struct perf_job job;
	job.o = &o;
	job.eng = o.dev ? &perf_vfdma_engine : &perf_kernel_engine;
	job.nr_slots = o.qd * o.queues;
	job.slots = calloc(job.nr_slots, sizeof(*job.slots));
	if (!job.slots)
		return 1;
	for (unsigned int i = 0; i < job.nr_slots; i++) {
		job.slots[i].job = &job;
		job.slots[i].queue = i % o.queues; /* round robin: the queues fill evenly */
	}
	if (job.eng->open(&job)) {
		job.eng->close(&job);
		free(job.slots);
		return 1;
	}
	int status = check_region(&job, argv[0]) || job.eng->setup(&job) ? 1 : 0;
	if (!status && o.json)
		perf_report_json_head(&job);
	if (!status && (o.verify || o.verify_read)) {
		uint64_t n = job.region_len / o.bs;
		rc = 0;
		if (o.verify) {
			rc = run_phase(&job, "verify-write", true, false, true, n, 0);
			perf_report_human(&job);
			if (o.json)
				perf_report_json_phase(&job, true);
		}
		if (!rc) {
			rc = run_phase(&job, "verify-read", false, false, true, n, 0);
			perf_report_human(&job);
			if (o.json)
				perf_report_json_phase(&job, !o.verify);
		}
		status = rc ? 1 : 0;
	} else if (!status) {
		bool write = o.rw == PERF_WRITE || o.rw == PERF_RANDWRITE;
		bool random = o.rw == PERF_RANDREAD || o.rw == PERF_RANDWRITE;
		rc = run_phase(&job, rw_names[o.rw], write, random, false, o.ios, o.time_s);
		perf_report_human(&job);
		if (o.json)
			perf_report_json_phase(&job, true);
		status = rc ? 1 : 0;
	}
	if (job.failed)
		fprintf(stderr, "%s: %s\n", argv[0], job.errmsg);
	else if ((o.verify || o.verify_read) && !status)
		fprintf(stderr, "%s: verify: %" PRIu64 " bytes at offset %" PRIu64
				" hold the pattern of seed 0x%" PRIx64 "\n",
			argv[0], job.region_len, job.region_off, o.seed);
	if (o.json && job.region_len)
		perf_report_json_tail(&job, status);
	job.eng->close(&job);
	free(job.slots);
	return status;
}
