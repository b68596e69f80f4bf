// SPDX-License-Identifier: BSD-3-Clause
/*
 * pattern - write a known pattern to a block device or file, or verify it.
 *
 *   pattern write  <dev>  <offset> <length> <seed>   (in the guest)
 *   pattern verify <file> <offset> <length> <seed>   (on the host, on the image)
 *
 * The same source is built twice: statically for the guest and natively
 * for the host, so both sides agree on the pattern by construction; the
 * pattern (app/nvme/pattern.h) is also what vfdma_nvme_perf --verify
 * writes.  Every 8-byte word holds a mix of the seed and its own byte
 * offset in the device, so data written to the wrong place, stale data or
 * a torn write all show up as a mismatch at a reported offset.
 *
 * write uses O_DIRECT (straight to the device through the kernel's NVMe
 * driver, not the page cache), fsyncs, then reads back and compares.
 * verify also checks that the 4 KiB on either side of the range are
 * still zero (the host creates the images zero-filled), which catches a
 * write at a shifted offset.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <unistd.h>

#include "pattern.h" /* app/nvme/pattern.h: the pattern itself */
#include "vmtest.h"

#define CHUNK (1u << 20)
#define GUARD 4096u

static bool io_all(bool wr, int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n = wr ? pwrite(fd, buf, len, (off_t)off) : pread(fd, buf, len, (off_t)off);

	if (n == (ssize_t)len)
		return true;
	if (n >= 0)
		errno = EIO;
	return false;
}

static int do_write(const char *dev, uint64_t off, uint64_t len, uint64_t seed)
{
	uint64_t *buf;
	int64_t bad = -1;
	uint64_t done;
	int fd;

	if (posix_memalign((void **)&buf, 4096, CHUNK))
		return EXIT_FAILURE;
	fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (!vt_check("open_direct", fd >= 0))
		return EXIT_FAILURE;
	for (done = 0; done < len; done += CHUNK) {
		pattern_fill(buf, CHUNK, off + done, seed);
		if (!io_all(true, fd, buf, CHUNK, off + done))
			break;
	}
	if (!vt_check("write", done >= len) || !vt_check("fsync", fsync(fd) == 0))
		goto out;
	for (done = 0; done < len && bad < 0; done += CHUNK) {
		memset(buf, 0, CHUNK);
		if (!io_all(false, fd, buf, CHUNK, off + done))
			break;
		bad = pattern_mismatch(buf, CHUNK, off + done, seed);
	}
	if (bad >= 0)
		vt_fail("readback", "pattern mismatch at byte %" PRId64, bad);
	else
		vt_check("readback", done >= len);
out:
	close(fd);
	free(buf);
	return vt_exit_status();
}

static int do_verify(const char *file, uint64_t off, uint64_t len, uint64_t seed)
{
	static uint64_t buf[CHUNK / 8];
	char zero[GUARD] = { 0 };
	char guard[GUARD];
	int64_t bad = -1;
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "pattern: %s: %s\n", file, strerror(errno));
		return EXIT_FAILURE;
	}
	for (uint64_t done = 0; done < len && bad < 0; done += CHUNK) {
		if (!io_all(false, fd, buf, CHUNK, off + done)) {
			fprintf(stderr, "pattern: read %s at %" PRIu64 ": %s\n", file, off + done, strerror(errno));
			return EXIT_FAILURE;
		}
		bad = pattern_mismatch(buf, CHUNK, off + done, seed);
	}
	if (bad >= 0) {
		fprintf(stderr, "pattern: %s: mismatch at byte %" PRId64 "\n", file, bad);
		return EXIT_FAILURE;
	}
	if ((off >= GUARD && (!io_all(false, fd, guard, GUARD, off - GUARD) || memcmp(guard, zero, GUARD))) ||
	    (!io_all(false, fd, guard, GUARD, off + len) || memcmp(guard, zero, GUARD))) {
		fprintf(stderr, "pattern: %s: bytes next to the range are not zero (shifted write?)\n", file);
		return EXIT_FAILURE;
	}
	printf("pattern: %s: %" PRIu64 " bytes at %" PRIu64 " match seed 0x%" PRIx64 "\n", file, len, off, seed);
	close(fd);
	return EXIT_SUCCESS;
}

int main(int argc, char **argv)
{
	uint64_t off, len, seed;

	if (argc != 6) {
		fprintf(stderr, "usage: pattern write|verify <dev|file> <offset> <length> <seed>\n");
		return EXIT_FAILURE;
	}
	off = strtoull(argv[3], NULL, 0);
	len = strtoull(argv[4], NULL, 0);
	seed = strtoull(argv[5], NULL, 0);
	if (off % 4096 || len == 0 || len % CHUNK) {
		fprintf(stderr, "pattern: offset must be 4 KiB-aligned, length a multiple of 1 MiB\n");
		return EXIT_FAILURE;
	}
	if (strcmp(argv[1], "write") == 0)
		return do_write(argv[2], off, len, seed);
	if (strcmp(argv[1], "verify") == 0)
		return do_verify(argv[2], off, len, seed);
	fprintf(stderr, "pattern: unknown mode %s\n", argv[1]);
	return EXIT_FAILURE;
}
