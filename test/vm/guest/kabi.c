// SPDX-License-Identifier: BSD-3-Clause
/*
 * kabi - check the guest kernel against the series a test was written for.
 *
 *   kabi <series>      e.g. "kabi 6.12"
 *
 * Tests that use a version-specific kernel test ABI (the IOMMUFD_TEST
 * mock domain: its commands and structures change between kernel series,
 * and its header is not an exported uAPI) call vt_require_kernel_series()
 * from vmtest.h first and SKIP loudly on a mismatch.  This program runs
 * that helper on its own: it proves the helper in the VM tier, and shell
 * tests can use it as a guard ("kabi 6.12 || exit 77").
 */
#include "vmtest.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: kabi <kernel series, e.g. 6.12>\n");
		return EXIT_FAILURE;
	}
	if (!vt_require_kernel_series("kernel_series", argv[1]))
		return VT_EXIT_SKIP;
	vt_pass("kernel_series");
	return EXIT_SUCCESS;
}
