#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# `make demo`: the whole stack on a machine without VFIO devices.  Boots
# the test VM (building its kernel the first time, with progress) and runs
# tests/demo.test there on both backends: vfdmactl list, bind the NVMe to
# vfio-pci, vfdma_nvme_identify, vfdma_nvme_perf --verify, a short random
# read run, unbind; after the guest exits, the host checks that the NVMe
# image holds exactly the pattern that was written.  Ends with a summary
# table; exit status 0 only if every step passed.
#
# Environment: as test/vm/run.sh (VFDMA_VM_VERBOSE=1 shows the console).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${VFDMA_ROOT:-$(cd "$here/../.." && pwd)}
build=${VFDMA_BUILD:-$root/build}
log=$build/vm/demo.log
mkdir -p "$build/vm"

echo "vfdma demo: booting a QEMU guest (emulated Intel IOMMU + NVMe) to run the" \
	"example driver on the iommufd and type1 backends" >&2
VFDMA_ROOT=$root VFDMA_BUILD=$build VFDMA_COUNTS=$build/vm/demo.counts VFDMA_VM_TESTS=demo \
	bash "$here/run.sh" | tee "$log"
rc=${PIPESTATUS[0]}

# The result lines: "PASS vm/demo/<backend>/<step>: key=value ...".
detail() { # detail <backend> <step> -> "ok: ..." / "FAILED: ..." / "not run"
	local line
	line=$(grep -E "^(PASS|FAIL|SKIP) vm/demo/$1/$2(:|$)" "$log" | tail -1)
	case $line in
	PASS*) echo "ok  ${line#*: }" ;;
	FAIL*) echo "FAILED  ${line#*: }" ;;
	SKIP*) echo "skipped  ${line#*: }" ;;
	*) echo "not run" ;;
	esac
}

echo
echo "vfdma demo summary (log: $log)"
printf '%-10s  %-8s  %s\n' step backend result
for step in list bind identify verify perf unbind host-check; do
	for be in iommufd type1; do
		printf '%-10s  %-8s  %s\n' "$step" "$be" "$(detail "$be" "$step" | cut -c1-100)"
	done
done
if ((rc == 0)); then
	echo "demo: every step passed on both backends; the host found the written pattern in the NVMe image"
else
	echo "demo: FAILED (exit status $rc); see $log and the console logs under $build/vm/boot*/"
fi
exit "$rc"
