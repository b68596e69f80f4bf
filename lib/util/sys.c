/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The syscall shim (see sys.h).  The fault check is one relaxed load of a
 * global flag when nothing is armed, so the wrappers cost nothing measurable
 * on paths that make system calls anyway.
 */
#include "util/sys.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct {
	atomic_bool armed;
	atomic_int sysno;
	atomic_ulong nth;
	atomic_int err;
	atomic_bool sticky;
	atomic_ulong calls[VFD_SYS_NR + 1];
	atomic_ulong injected;
} fault;

static const char *const sys_names[VFD_SYS_NR + 1] = {
	[VFD_SYS_OPEN] = "open",	   [VFD_SYS_CLOSE] = "close",
	[VFD_SYS_IOCTL] = "ioctl",	   [VFD_SYS_MMAP] = "mmap",
	[VFD_SYS_MUNMAP] = "munmap",	   [VFD_SYS_READ] = "read",
	[VFD_SYS_WRITE] = "write",	   [VFD_SYS_MEMFD] = "memfd_create",
	[VFD_SYS_FTRUNCATE] = "ftruncate", [VFD_SYS_FALLOCATE] = "fallocate",
	[VFD_SYS_MADVISE] = "madvise",	   [VFD_SYS_MLOCK] = "mlock",
	[VFD_SYS_EVENTFD] = "eventfd",	   [VFD_SYS_READLINK] = "readlink",
	[VFD_SYS_ACCESS] = "access",	   [VFD_SYS_GETDENTS] = "getdents",
	[VFD_SYS_MBIND] = "mbind",	   [VFD_SYS_MEMPOLICY] = "get_mempolicy",
	[VFD_SYS_MOVE_PAGES] = "move_pages",
	[VFD_SYS_ALLOC] = "alloc",
	[VFD_SYS_ANY] = "any",
};

const char *vfd_sysno_name(enum vfd_sysno sysno)
{
	return (unsigned)sysno <= VFD_SYS_NR ? sys_names[sysno] : "?";
}

void vfd_fault_arm(enum vfd_sysno sysno, unsigned long nth, int err, bool sticky)
{
	atomic_store(&fault.armed, false);
	for (int i = 0; i <= VFD_SYS_NR; i++)
		atomic_store(&fault.calls[i], 0);
	atomic_store(&fault.injected, 0);
	atomic_store(&fault.sysno, sysno);
	atomic_store(&fault.nth, nth);
	atomic_store(&fault.err, err);
	atomic_store(&fault.sticky, sticky);
	atomic_store(&fault.armed, true);
}

unsigned long vfd_fault_disarm(void)
{
	atomic_store(&fault.armed, false);
	return atomic_load(&fault.injected);
}

unsigned long vfd_fault_calls(enum vfd_sysno sysno)
{
	return (unsigned)sysno <= VFD_SYS_NR ? atomic_load(&fault.calls[sysno]) : 0;
}

/* Returns the negative errno to inject for this call, or 0 to go ahead. */
static int fault_check(enum vfd_sysno sysno)
{
	if (__builtin_expect(!atomic_load_explicit(&fault.armed, memory_order_relaxed), 1))
		return 0;
	unsigned long n = atomic_fetch_add(&fault.calls[sysno], 1) + 1;
	unsigned long any = atomic_fetch_add(&fault.calls[VFD_SYS_ANY], 1) + 1;
	int target = atomic_load(&fault.sysno);
	unsigned long count = target == VFD_SYS_ANY ? any : target == (int)sysno ? n : 0;
	unsigned long nth = atomic_load(&fault.nth);
	if (count == 0 || count < nth || (count > nth && !atomic_load(&fault.sticky)))
		return 0;
	atomic_fetch_add(&fault.injected, 1);
	return -atomic_load(&fault.err);
}

#define SYS_RET(expr)                                                                    \
	do {                                                                             \
		long r_ = (long)(expr);                                                  \
		return r_ < 0 ? -errno : r_;                                             \
	} while (0)

#define INJECT(sysno)                                                                    \
	do {                                                                             \
		int e_ = fault_check(sysno);                                             \
		if (e_)                                                                  \
			return e_;                                                       \
	} while (0)

int vfd_open(const char *path, int flags, mode_t mode)
{
	INJECT(VFD_SYS_OPEN);
	SYS_RET(open(path, flags | O_CLOEXEC, mode));
}

/*
 * close(2) releases the descriptor even when it reports an error, so an
 * injected failure closes it too: a test of the error path must not see a
 * leak that a real kernel would never produce.
 */
int vfd_close(int fd)
{
	int e = fault_check(VFD_SYS_CLOSE);
	int r = close(fd) < 0 ? -errno : 0;
	return e ? e : r;
}

int vfd_ioctl(int fd, unsigned long req, void *arg)
{
	INJECT(VFD_SYS_IOCTL);
	SYS_RET(ioctl(fd, req, arg));
}

int vfd_mmap(void **out, void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	INJECT(VFD_SYS_MMAP);
	void *p = mmap(addr, len, prot, flags, fd, off);
	if (p == MAP_FAILED)
		return -errno;
	*out = p;
	return 0;
}

int vfd_munmap(void *addr, size_t len)
{
	INJECT(VFD_SYS_MUNMAP);
	SYS_RET(munmap(addr, len));
}

ssize_t vfd_read(int fd, void *buf, size_t len)
{
	INJECT(VFD_SYS_READ);
	SYS_RET(read(fd, buf, len));
}

ssize_t vfd_pread(int fd, void *buf, size_t len, off_t off)
{
	INJECT(VFD_SYS_READ);
	SYS_RET(pread(fd, buf, len, off));
}

ssize_t vfd_write(int fd, const void *buf, size_t len)
{
	INJECT(VFD_SYS_WRITE);
	SYS_RET(write(fd, buf, len));
}

ssize_t vfd_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	INJECT(VFD_SYS_WRITE);
	SYS_RET(pwrite(fd, buf, len, off));
}

int vfd_memfd_create(const char *name, unsigned int flags)
{
	INJECT(VFD_SYS_MEMFD);
	SYS_RET(memfd_create(name, flags | MFD_CLOEXEC));
}

int vfd_ftruncate(int fd, off_t len)
{
	INJECT(VFD_SYS_FTRUNCATE);
	SYS_RET(ftruncate(fd, len));
}

int vfd_fallocate(int fd, int mode, off_t off, off_t len)
{
	INJECT(VFD_SYS_FALLOCATE);
	SYS_RET(fallocate(fd, mode, off, len));
}

int vfd_madvise(void *addr, size_t len, int advice)
{
	INJECT(VFD_SYS_MADVISE);
	SYS_RET(madvise(addr, len, advice));
}

int vfd_mlock(const void *addr, size_t len)
{
	INJECT(VFD_SYS_MLOCK);
	SYS_RET(mlock(addr, len));
}

int vfd_munlock(const void *addr, size_t len)
{
	INJECT(VFD_SYS_MLOCK);
	SYS_RET(munlock(addr, len));
}

int vfd_eventfd(unsigned int initval, int flags)
{
	INJECT(VFD_SYS_EVENTFD);
	SYS_RET(eventfd(initval, flags | EFD_CLOEXEC));
}

ssize_t vfd_readlink(const char *path, char *buf, size_t len)
{
	INJECT(VFD_SYS_READLINK);
	SYS_RET(readlink(path, buf, len));
}

int vfd_access(const char *path, int mode)
{
	INJECT(VFD_SYS_ACCESS);
	SYS_RET(access(path, mode));
}

ssize_t vfd_getdents64(int fd, void *buf, size_t len)
{
	INJECT(VFD_SYS_GETDENTS);
	SYS_RET(getdents64(fd, buf, len));
}

int vfd_mbind(void *addr, size_t len, int mode, const unsigned long *nodemask,
	      unsigned long maxnode, unsigned int flags)
{
	INJECT(VFD_SYS_MBIND);
	SYS_RET(syscall(SYS_mbind, addr, len, mode, nodemask, maxnode, flags));
}

int vfd_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr,
		      unsigned long flags)
{
	INJECT(VFD_SYS_MEMPOLICY);
	SYS_RET(syscall(SYS_get_mempolicy, mode, nodemask, maxnode, addr, flags));
}

int vfd_move_pages(unsigned long count, void **pages, const int *nodes, int *status, int flags)
{
	INJECT(VFD_SYS_MOVE_PAGES);
	SYS_RET(syscall(SYS_move_pages, 0, count, pages, nodes, status, flags));
}

size_t vfd_page_size(void)
{
	static size_t sz;
	size_t s = __atomic_load_n(&sz, __ATOMIC_RELAXED);

	if (!s) {
		long v = sysconf(_SC_PAGESIZE);
		s = v > 0 ? (size_t)v : 4096;
		__atomic_store_n(&sz, s, __ATOMIC_RELAXED);
	}
	return s;
}

void *vfd_malloc(size_t size)
{
	if (fault_check(VFD_SYS_ALLOC))
		return NULL;
	return malloc(size);
}

void *vfd_calloc(size_t n, size_t size)
{
	if (fault_check(VFD_SYS_ALLOC))
		return NULL;
	return calloc(n, size);
}

void *vfd_realloc(void *p, size_t size)
{
	if (fault_check(VFD_SYS_ALLOC))
		return NULL;
	return realloc(p, size);
}

void *vfd_aligned_alloc(size_t align, size_t size)
{
	if (fault_check(VFD_SYS_ALLOC))
		return NULL;
	void *p = NULL;
	return posix_memalign(&p, align, size) ? NULL : p;
}

void vfd_free(void *p)
{
	free(p);
}
