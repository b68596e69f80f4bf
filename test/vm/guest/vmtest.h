/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vmtest.h - result reporting for guest test programs of the VM tier.
 *
 * A guest test prints one line per check on stdout:
 *
 *   PASS <check>
 *   FAIL <check>: <why>
 *   SKIP <check>: <why>
 *
 * The guest init forwards these lines to the host, which prints them as
 * "PASS vm/<test>/<check>" and counts each one.  A program that prints
 * no result line is judged by its exit status (0 pass, 77 skip, else
 * fail).  Exit with vt_exit_status() so that a FAIL line and the exit
 * status agree.
 *
 * Header-only on purpose: guest programs are single files linked
 * statically, with no library of their own.
 */
#ifndef VFDMA_VMTEST_H
#define VFDMA_VMTEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

/* Exit status meaning "skipped" (the automake/kselftest convention). */
#define VT_EXIT_SKIP 77

static int vt_failures;

static inline void vt_pass(const char *check)
{
	printf("PASS %s\n", check);
	fflush(stdout);
}

static inline void vt_vreport(const char *what, const char *check, const char *fmt, va_list ap)
{
	printf("%s %s: ", what, check);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
}

__attribute__((format(printf, 2, 3))) static inline void vt_fail(const char *check, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vt_vreport("FAIL", check, fmt, ap);
	va_end(ap);
	vt_failures++;
}

__attribute__((format(printf, 2, 3))) static inline void vt_skip(const char *check, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vt_vreport("SKIP", check, fmt, ap);
	va_end(ap);
}

/*
 * Assert one step: report PASS when @ok, else FAIL with errno's text.
 * Returns @ok so that callers can stop at the first failed step.
 */
static inline bool vt_check(const char *check, bool ok)
{
	if (ok)
		vt_pass(check);
	else
		vt_fail(check, "%s (errno %d)", strerror(errno), errno);
	return ok;
}

static inline int vt_exit_status(void)
{
	return vt_failures ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * Tests built against a version-specific kernel test ABI (the
 * IOMMUFD_TEST mock domain and its test commands change between kernel
 * series) call this first.  @series is "major.minor", e.g. "6.12".
 * On a mismatch it prints a loud SKIP for @check and returns false; the
 * caller then exits with VT_EXIT_SKIP.  The running kernel's release is
 * compared, so this also catches a guest booted with another kernel.
 */
static inline bool vt_require_kernel_series(const char *check, const char *series)
{
	struct utsname u;
	size_t n = strlen(series);

	if (uname(&u) != 0) {
		vt_skip(check, "SKIPPED: uname failed (%s); cannot check kernel test ABI %s", strerror(errno),
			series);
		return false;
	}
	if (strncmp(u.release, series, n) != 0 || (u.release[n] != '.' && u.release[n] != '\0' &&
						   u.release[n] != '-')) {
		vt_skip(check,
			"SKIPPED: built for the kernel test ABI of series %s, but the guest runs %s "
			"(update the test for this kernel series)",
			series, u.release);
		return false;
	}
	return true;
}

#endif /* VFDMA_VMTEST_H */
