/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The syscall shim: every system call and every heap allocation libvfdma
 * makes goes through one of these wrappers, so that a test can make any one
 * of them fail (the Nth call of a class, or of any class) and prove that the
 * error path leaves state unchanged.  Internal: not part of the public API.
 *
 * Convention: wrappers return 0 or a non-negative result on success and a
 * negative errno on failure (kernel style), never -1 with errno.  The
 * allocation wrappers return NULL on failure, like malloc.
 */
#ifndef VFDMA_UTIL_SYS_H
#define VFDMA_UTIL_SYS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Classes of calls that fault injection can target. */
enum vfd_sysno {
	VFD_SYS_OPEN,
	VFD_SYS_CLOSE,
	VFD_SYS_IOCTL,
	VFD_SYS_MMAP,
	VFD_SYS_MUNMAP,
	VFD_SYS_READ,
	VFD_SYS_WRITE,
	VFD_SYS_MEMFD,
	VFD_SYS_FTRUNCATE,
	VFD_SYS_FALLOCATE,
	VFD_SYS_MADVISE,
	VFD_SYS_MLOCK,
	VFD_SYS_EVENTFD,
	VFD_SYS_READLINK,
	VFD_SYS_ACCESS, /* access, stat */
	VFD_SYS_GETDENTS, /* directory listing */
	VFD_SYS_MBIND, /* mbind(2): NUMA policy of a range */
	VFD_SYS_MEMPOLICY, /* get_mempolicy(2) */
	VFD_SYS_MOVE_PAGES, /* move_pages(2), also in query mode */
	VFD_SYS_ALLOC, /* malloc, calloc, realloc, aligned allocation */
	VFD_SYS_NR,
	VFD_SYS_ANY = VFD_SYS_NR, /* vfd_fault_arm(): count calls of every class */
};

/*
 * Make the nth call (1-based, counted from now) of class @sysno fail with
 * -@err (ENOMEM for allocations); VFD_SYS_ANY counts every class together.
 * With @sticky, every call from the nth on fails.  One rule is armed at a
 * time, for the whole process.
 */
void vfd_fault_arm(enum vfd_sysno sysno, unsigned long nth, int err, bool sticky);
/* Disarm; returns how many injected failures happened. */
unsigned long vfd_fault_disarm(void);
/* Calls of @sysno (or VFD_SYS_ANY) seen since the last vfd_fault_arm(). */
unsigned long vfd_fault_calls(enum vfd_sysno sysno);
/* Name of a class, for test output. */
const char *vfd_sysno_name(enum vfd_sysno sysno);

int vfd_open(const char *path, int flags, mode_t mode);
int vfd_close(int fd);
int vfd_ioctl(int fd, unsigned long req, void *arg);
int vfd_mmap(void **out, void *addr, size_t len, int prot, int flags, int fd, off_t off);
int vfd_munmap(void *addr, size_t len);
ssize_t vfd_read(int fd, void *buf, size_t len);
ssize_t vfd_pread(int fd, void *buf, size_t len, off_t off);
ssize_t vfd_write(int fd, const void *buf, size_t len);
ssize_t vfd_pwrite(int fd, const void *buf, size_t len, off_t off);
int vfd_memfd_create(const char *name, unsigned int flags);
int vfd_ftruncate(int fd, off_t len);
int vfd_fallocate(int fd, int mode, off_t off, off_t len);
int vfd_madvise(void *addr, size_t len, int advice);
int vfd_mlock(const void *addr, size_t len);
int vfd_munlock(const void *addr, size_t len);
int vfd_eventfd(unsigned int initval, int flags);
ssize_t vfd_readlink(const char *path, char *buf, size_t len);
int vfd_access(const char *path, int mode);
/* getdents64(2) on a directory fd (open it with O_DIRECTORY): bytes read, 0 at the end. */
ssize_t vfd_getdents64(int fd, void *buf, size_t len);
/*
 * The NUMA system calls, raw (no libnuma: see lib/dma/arena.c): mbind(2),
 * get_mempolicy(2) and move_pages(2) of this process (pid 0).  move_pages
 * with @nodes NULL only queries: @status gets each page's node or -errno.
 */
int vfd_mbind(void *addr, size_t len, int mode, const unsigned long *nodemask,
	      unsigned long maxnode, unsigned int flags);
int vfd_get_mempolicy(int *mode, unsigned long *nodemask, unsigned long maxnode, void *addr,
		      unsigned long flags);
int vfd_move_pages(unsigned long count, void **pages, const int *nodes, int *status, int flags);
/* The base page size (sysconf(_SC_PAGESIZE); no system call, never fails). */
size_t vfd_page_size(void);

void *vfd_malloc(size_t size);
void *vfd_calloc(size_t n, size_t size);
void *vfd_realloc(void *p, size_t size);
void *vfd_aligned_alloc(size_t align, size_t size);
void vfd_free(void *p);

#endif
