/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_nvme_perf: one workload loop (perf.c) over two engines that move
 * the data: this driver on a vfio-pci controller (perf_vfdma.c) and the
 * kernel's block layer through io_uring (perf_kernel.c), so the two can be
 * compared at equal block size, queue depth and duration.
 *
 * The loop keeps qd commands outstanding on each queue, from one thread:
 * each completion is timed, checked (verify mode) and replaced by the
 * next I/O until the time or the I/O count is reached, then the
 * outstanding ones are drained.
 */
#ifndef VFDMA_APP_NVME_PERF_H
#define VFDMA_APP_NVME_PERF_H

#include <stdbool.h>
#include <stdint.h>

enum perf_rw { PERF_READ, PERF_WRITE, PERF_RANDREAD, PERF_RANDWRITE };

struct perf_opts {
	const char *dev;  /* PCI address: the vfdma engine */
	const char *bdev; /* block device: the kernel engine */
	const char *backend;
	enum perf_rw rw;
	uint32_t bs, qd, queues;
	double time_s; /* 0: no time limit */
	uint64_t ios;  /* 0: no I/O count limit */
	uint32_t nsid;
	uint64_t offset, size; /* the region, bytes; size 0: to the end */
	uint64_t seed;
	uint32_t timeout_ms;
	bool verify;	  /* write the pattern over the region, then read and compare */
	bool verify_read; /* only read and compare (data written by an earlier run) */
	bool irq, json, no_check;
	bool dbbuf; /* vfdma engine: shadow doorbells (Doorbell Buffer Config) */
};

/* Parse the command line (perf_opts.c); 0, or the exit status for a usage error. */
int perf_parse(int argc, char **argv, struct perf_opts *o);

struct perf_job;

/* One outstanding I/O: its buffer and what it is doing. */
struct perf_slot {
	struct perf_job *job;
	unsigned int queue;
	void *buf;
	uint64_t iova; /* vfdma engine */
	uint64_t off;  /* byte offset on the device */
	bool write;
	uint64_t t0_ns; /* submitted */
};

struct perf_engine {
	const char *name;
	/*
	 * Open the target and learn what it is: set job->capacity,
	 * job->block, job->max_xfer, job->capdesc, job->target and
	 * job->backend.  0 or -1 (after printing why).
	 */
	int (*open)(struct perf_job *job);
	/*
	 * After the region was checked: queues, and a buffer of opts->bs
	 * bytes for every slot.  0 or -1 (after printing why).
	 */
	int (*setup)(struct perf_job *job);
	/* Queue @s's I/O (submitted at the latest by the next reap). 0 or -errno. */
	int (*submit)(struct perf_job *job, struct perf_slot *s);
	/*
	 * Submit what is queued and reap completions, calling perf_complete()
	 * for each; with @wait, block until at least one (or a timeout).
	 * Returns the number reaped or -errno (job->errmsg says why).
	 */
	int (*reap)(struct perf_job *job, bool wait);
	void (*close)(struct perf_job *job);
};

extern const struct perf_engine perf_vfdma_engine, perf_kernel_engine;

/* Latency histogram: log-linear buckets, 32 per power of two (3 % wide). */
#define PERF_HIST_SUB 32
#define PERF_HIST_BUCKETS (64 * PERF_HIST_SUB)

struct perf_stats {
	uint64_t ios, bytes, errors;
	uint64_t lat_min, lat_max, lat_sum; /* ns */
	uint64_t ns;			    /* wall time of the phase */
	uint64_t hist[PERF_HIST_BUCKETS];
};

struct perf_job {
	const struct perf_opts *o;
	const struct perf_engine *eng;
	void *priv; /* the engine's */
	const char *target, *backend;
	uint64_t capacity; /* bytes */
	uint32_t block;	   /* logical block size */
	uint32_t max_xfer; /* bytes per I/O the engine can do */
	char capdesc[160]; /* the capacity in words, for errors */
	bool dbbuf;	   /* shadow doorbells in use */
	struct perf_slot *slots; /* queues * qd */
	unsigned int nr_slots;
	/* the phase running */
	const char *phase; /* "read", "randwrite", "verify-write", ... */
	bool write, random, compare;
	uint64_t region_off, region_len, next_seq, rng;
	uint64_t issued, max_ios, deadline_ns, inflight;
	bool stop;
	struct perf_stats st;
	char errmsg[256];
	bool failed;
};

/* An I/O finished; @err is NULL on success, else what went wrong. */
void perf_complete(struct perf_job *job, struct perf_slot *s, const char *err);

/* Monotonic nanoseconds. */
uint64_t perf_now_ns(void);

/* Statistics and reports (perf_stats.c). */
void perf_stats_add(struct perf_stats *st, uint64_t lat_ns);
uint64_t perf_stats_percentile(const struct perf_stats *st, double p);
void perf_report_human(const struct perf_job *job);
void perf_report_json_head(const struct perf_job *job);
void perf_report_json_phase(const struct perf_job *job, bool first);
void perf_report_json_tail(const struct perf_job *job, int status);

#endif
