/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vfdma_nvme_perf's kernel engine: the same workload on a block device
 * (e.g. /dev/nvme0n1 on the kernel's nvme driver), O_DIRECT through
 * io_uring, with raw system calls (no liburing: the guest programs are
 * static and have only the kernel's headers).
 *
 * Fair to the kernel: one ring as deep as all slots (qd x queues), the file
 * and the buffers registered once (IORING_REGISTER_FILES / _BUFFERS, so no
 * per-I/O file lookup or page pinning, as the vfdma engine maps its
 * buffers once), submissions batched into the io_uring_enter() that waits
 * for completions.  The kernel's nvme driver completes by interrupt unless
 * the controller was given poll queues; that is its default, measured as is.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "perf.h"

struct ring {
	int fd, ring_fd;
	bool fixed_file, fixed_bufs;
	unsigned int *sq_head, *sq_tail, *sq_mask, *sq_array;
	unsigned int *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	void *sq_ptr, *cq_ptr;
	size_t sq_len, cq_len, sqes_len;
	unsigned int to_submit;
};

static int ring_setup(struct ring *r, unsigned int entries)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	r->ring_fd = (int)syscall(__NR_io_uring_setup, entries, &p);
	if (r->ring_fd < 0)
		return -errno;
	r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	bool single = p.features & IORING_FEAT_SINGLE_MMAP;
	if (single && r->cq_len > r->sq_len)
		r->sq_len = r->cq_len;
	r->sq_ptr = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			 r->ring_fd, IORING_OFF_SQ_RING);
	if (r->sq_ptr == MAP_FAILED)
		return -errno;
	r->cq_ptr = single ? r->sq_ptr
			   : mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_POPULATE, r->ring_fd, IORING_OFF_CQ_RING);
	if (r->cq_ptr == MAP_FAILED)
		return -errno;
	r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		       r->ring_fd, IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED)
		return -errno;
	char *sq = r->sq_ptr, *cq = r->cq_ptr;
	r->sq_head = (unsigned int *)(sq + p.sq_off.head);
	r->sq_tail = (unsigned int *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned int *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned int *)(sq + p.sq_off.array);
	r->cq_head = (unsigned int *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned int *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned int *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

static int k_open(struct perf_job *job)
{
	const struct perf_opts *o = job->o;
	struct ring *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	job->priv = r;
	job->target = o->bdev;
	job->backend = NULL;
	r->ring_fd = -1;
	r->fd = open(o->bdev, (o->verify || o->rw == PERF_WRITE || o->rw == PERF_RANDWRITE
				       ? O_RDWR
				       : O_RDONLY) |
				      O_DIRECT | O_CLOEXEC);
	if (r->fd < 0) {
		fprintf(stderr, "vfdma_nvme_perf: %s: %s\n", o->bdev, strerror(errno));
		return -1;
	}
	struct stat sb;
	uint64_t bytes = 0;
	int ssz = 512;
	if (fstat(r->fd, &sb) == 0 && S_ISBLK(sb.st_mode)) {
		if (ioctl(r->fd, BLKGETSIZE64, &bytes) || ioctl(r->fd, BLKSSZGET, &ssz))
			bytes = 0;
	} else {
		bytes = (uint64_t)sb.st_size; /* a file: useful for trying the tool out */
	}
	job->capacity = bytes;
	job->block = (uint32_t)ssz;
	job->max_xfer = 64u << 20;
	snprintf(job->capdesc, sizeof(job->capdesc), "%s: %" PRIu64 " bytes, blocks of %d B",
		 o->bdev, bytes, ssz);
	return 0;
}

static int k_setup(struct perf_job *job)
{
	const struct perf_opts *o = job->o;
	struct ring *r = job->priv;
	int rc = ring_setup(r, job->nr_slots);
	if (rc) {
		fprintf(stderr, "vfdma_nvme_perf: io_uring_setup: %s\n", strerror(-rc));
		return -1;
	}
	struct iovec *iov = calloc(job->nr_slots, sizeof(*iov));
	if (!iov)
		return -1;
	for (unsigned int i = 0; i < job->nr_slots; i++) {
		if (posix_memalign(&job->slots[i].buf, 4096, o->bs)) {
			free(iov);
			return -1;
		}
		memset(job->slots[i].buf, 0, o->bs);
		iov[i] = (struct iovec){.iov_base = job->slots[i].buf, .iov_len = o->bs};
	}
	/* Registration is an optimisation: without it the I/O still works. */
	r->fixed_file = syscall(__NR_io_uring_register, r->ring_fd, IORING_REGISTER_FILES, &r->fd,
				1) == 0;
	r->fixed_bufs = syscall(__NR_io_uring_register, r->ring_fd, IORING_REGISTER_BUFFERS, iov,
				job->nr_slots) == 0;
	free(iov);
	return 0;
}

static int k_submit(struct perf_job *job, struct perf_slot *s)
{
	struct ring *r = job->priv;
	unsigned int tail = *r->sq_tail, idx = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	memset(sqe, 0, sizeof(*sqe));
	if (r->fixed_bufs) {
		sqe->opcode = s->write ? IORING_OP_WRITE_FIXED : IORING_OP_READ_FIXED;
		sqe->buf_index = (uint16_t)(s - job->slots);
	} else {
		sqe->opcode = s->write ? IORING_OP_WRITE : IORING_OP_READ;
	}
	sqe->fd = r->fixed_file ? 0 : r->fd;
	sqe->flags = r->fixed_file ? IOSQE_FIXED_FILE : 0;
	sqe->addr = (uint64_t)(uintptr_t)s->buf;
	sqe->len = job->o->bs;
	sqe->off = s->off;
	sqe->user_data = (uint64_t)(uintptr_t)s;
	r->sq_array[idx] = idx;
	/* The entry before the tail that publishes it (the kernel reads it with acquire). */
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	r->to_submit++;
	return 0;
}

static int k_reap(struct perf_job *job, bool wait)
{
	struct ring *r = job->priv;
	unsigned int flags = wait ? IORING_ENTER_GETEVENTS : 0;
	long n = syscall(__NR_io_uring_enter, r->ring_fd, r->to_submit, wait ? 1 : 0, flags, NULL,
			 0);
	if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EBUSY) {
		snprintf(job->errmsg, sizeof(job->errmsg), "io_uring_enter: %s", strerror(errno));
		return -errno;
	}
	if (n > 0)
		r->to_submit -= (unsigned int)n;
	int reaped = 0;
	unsigned int head = *r->cq_head;
	for (;;) {
		unsigned int tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
		if (head == tail)
			break;
		struct io_uring_cqe *cqe = &r->cqes[head & *r->cq_mask];
		struct perf_slot *s = (struct perf_slot *)(uintptr_t)cqe->user_data;
		int res = cqe->res;
		__atomic_store_n(r->cq_head, ++head, __ATOMIC_RELEASE); /* the entry is ours now */
		reaped++;
		if (res == (int)job->o->bs) {
			perf_complete(job, s, NULL);
			continue;
		}
		char msg[200];
		if (res < 0)
			snprintf(msg, sizeof(msg), "%s at offset %" PRIu64 ": %s",
				 s->write ? "write" : "read", s->off, strerror(-res));
		else
			snprintf(msg, sizeof(msg),
				 "%s at offset %" PRIu64 ": %d of %u bytes (past the end?)",
				 s->write ? "write" : "read", s->off, res, job->o->bs);
		perf_complete(job, s, msg);
	}
	return reaped;
}

static void k_close(struct perf_job *job)
{
	struct ring *r = job->priv;
	if (!r)
		return;
	if (r->sqes && r->sqes != MAP_FAILED)
		munmap(r->sqes, r->sqes_len);
	if (r->cq_ptr && r->cq_ptr != MAP_FAILED && r->cq_ptr != r->sq_ptr)
		munmap(r->cq_ptr, r->cq_len);
	if (r->sq_ptr && r->sq_ptr != MAP_FAILED)
		munmap(r->sq_ptr, r->sq_len);
	if (r->ring_fd >= 0)
		close(r->ring_fd);
	if (r->fd >= 0)
		close(r->fd);
	for (unsigned int i = 0; i < job->nr_slots; i++)
		free(job->slots[i].buf);
	free(r);
	job->priv = NULL;
}

const struct perf_engine perf_kernel_engine = {
	.name = "kernel",
	.open = k_open,
	.setup = k_setup,
	.submit = k_submit,
	.reap = k_reap,
	.close = k_close,
};
