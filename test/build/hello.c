/* SPDX-License-Identifier: BSD-3-Clause */
/* A user program built against the installed library with pkg-config only. */
#include <stdio.h>
#include <string.h>

#include <vfdma/vfdma.h>

int main(void)
{
	if (strcmp(vfdma_version(), "") == 0)
		return 1;
	if (vfdma_log_set_level(VFDMA_LOG_OFF) != 0)
		return 2;
	printf("vfdma %s\n", vfdma_version());
	return 0;
}
