// SPDX-License-Identifier: BSD-3-Clause
// The syscall shim: wrappers report negative errno, and fault injection
// fails exactly the calls it was armed for.
#include "vfdma_test.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

TEST(Sys, WrappersReturnNegativeErrno)
{
	EXPECT_EQ(vfd_open("/nonexistent/vfdma", O_RDONLY, 0), -ENOENT);
	EXPECT_EQ(vfd_close(-1), -EBADF);
	EXPECT_EQ(vfd_ioctl(-1, 0, nullptr), -EBADF);
	void *p = nullptr;
	EXPECT_EQ(vfd_mmap(&p, nullptr, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), -EINVAL);
	EXPECT_EQ(p, nullptr);
}

TEST(Sys, WrappersWork)
{
	int fd = vfd_memfd_create("vfdma-test", 0);
	ASSERT_GE(fd, 0);
	EXPECT_EQ(vfd_ftruncate(fd, 4096), 0);
	EXPECT_EQ(vfd_pwrite(fd, "abc", 3, 100), 3);
	char buf[4] = {};
	EXPECT_EQ(vfd_pread(fd, buf, 3, 100), 3);
	EXPECT_STREQ(buf, "abc");
	void *p = nullptr;
	ASSERT_EQ(vfd_mmap(&p, nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0), 0);
	EXPECT_EQ(memcmp((char *)p + 100, "abc", 3), 0);
	EXPECT_EQ(vfd_munmap(p, 4096), 0);
	EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	EXPECT_EQ(vfd_close(fd), 0);
}

TEST(Sys, FailsTheNthCallOfAClass)
{
	vfd_fault_arm(VFD_SYS_OPEN, 2, EACCES, false);
	int a = vfd_open("/dev/null", O_RDONLY, 0);
	int b = vfd_open("/dev/null", O_RDONLY, 0);
	int c = vfd_open("/dev/null", O_RDONLY, 0);
	void *m = vfd_malloc(16); /* other classes are not affected */
	EXPECT_EQ(vfd_fault_calls(VFD_SYS_OPEN), 3u);
	EXPECT_EQ(vfd_fault_disarm(), 1u);
	EXPECT_GE(a, 0);
	EXPECT_EQ(b, -EACCES);
	EXPECT_GE(c, 0);
	EXPECT_NE(m, nullptr);
	vfd_free(m);
	vfd_close(a);
	vfd_close(c);
}

TEST(Sys, AnyClassAndSticky)
{
	vfd_fault_arm(VFD_SYS_ANY, 2, ENOMEM, true);
	void *a = vfd_malloc(8);
	int fd = vfd_open("/dev/null", O_RDONLY, 0);
	void *b = vfd_calloc(1, 8);
	EXPECT_EQ(vfd_fault_disarm(), 2u);
	EXPECT_NE(a, nullptr);
	EXPECT_EQ(fd, -ENOMEM);
	EXPECT_EQ(b, nullptr);
	vfd_free(a);
	/* Disarmed: everything works again. */
	void *c = vfd_malloc(8);
	EXPECT_NE(c, nullptr);
	vfd_free(c);
}

TEST(Sys, FailEachVisitsEveryPoint)
{
	int state = 0;
	/* An operation with three allocations that rolls back on failure. */
	auto op = [&]() {
		void *p[3] = {};
		for (int i = 0; i < 3; i++) {
			p[i] = vfd_malloc(32);
			if (!p[i]) {
				for (int j = 0; j < i; j++)
					vfd_free(p[j]);
				return false;
			}
		}
		state++;
		for (void *x : p)
			vfd_free(x);
		return true;
	};
	unsigned points = vfdma_test_fail_each(
		VFD_SYS_ALLOC, op, [&]() { state--; }, [&]() { EXPECT_EQ(state, 0); });
	EXPECT_EQ(points, 3u);
	EXPECT_EQ(state, 0);
}
