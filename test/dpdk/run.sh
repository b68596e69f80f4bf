#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# DPDK tier: the EAL in the test process, its memory in vfdma domains.  Runs
# the program twice: without hugepages in VA mode (--no-huge), and with
# 2 MiB hugepages this harness reserves (and gives back) so that the EAL
# allocates and frees memory while the domain follows its events.
set -uo pipefail

bin=$VFDMA_BUILD/test/vfdma_dpdk_test
total=$VFDMA_COUNTS
p=0 f=0 s=0
add() { # add the counts one run wrote
	local a b c
	read -r a b c <"$VFDMA_COUNTS.run" || { a=0 b=1 c=0; }
	p=$((p + a)) f=$((f + b)) s=$((s + c))
}
finish() {
	echo "$p $f $s" >"$total"
	rm -f "$total.run"
	exit 0
}

if ! grep -q '^CONFIG_DPDK := y' "$VFDMA_ROOT/mk/config.mk"; then
	echo "SKIP dpdk: ./configure did not find DPDK (libdpdk-dev): the DPDK integration is not built or tested"
	s=1
	finish
fi

run() { # run NAME EAL-ARGS... [--gtest_filter=...]
	local name=$1 eal=() gt=()
	shift
	for a in "$@"; do
		if [[ $a == --gtest* ]]; then gt+=("$a"); else eal+=("$a"); fi
	done
	VFDMA_COUNTS=$total.run VFDMA_DPDK_EAL="${eal[*]}" \
		bash "$VFDMA_ROOT/test/gtest-run.sh" "dpdk-$name" "$bin" "${gt[@]}"
	add
}

echo "--- dpdk: no hugepages, IOVA as VA"
# (memory events need dynamic hugepage memory: that test runs below)
run nohuge --no-huge -m 64 --iova-mode=va --gtest_filter=-Dpdk.FollowsMemoryEvents

# Hugepages: reserve 2 MiB pages on top of what is there, give them back.
sysfs=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
want=96
if [ ! -w "$sysfs" ]; then
	echo "SKIP dpdk-hugepages: cannot reserve hugepages ($sysfs not writable: not root?)"
	s=$((s + 1))
	finish
fi
# The machine's counts are shared: hold the lock the unit tests take too.
exec 9>/tmp/vfdma-hugepages.lock
flock 9
before=$(cat "$sysfs")
mnt=$(mktemp -d)
cleanup() {
	umount "$mnt" 2>/dev/null
	rmdir "$mnt" 2>/dev/null
	echo "$before" >"$sysfs"
}
trap cleanup EXIT
echo $((before + want)) >"$sysfs"
got=$(($(cat "$sysfs") - before))
if [ "$got" -lt "$want" ] || ! mount -t hugetlbfs -o pagesize=2M nodev "$mnt"; then
	echo "SKIP dpdk-hugepages: could reserve only $got of $want 2 MiB hugepages (or mount hugetlbfs)"
	s=$((s + 1))
	finish
fi
echo "--- dpdk: $want x 2 MiB hugepages in $mnt, IOVA as VA, dynamic memory"
run hugepages --huge-dir "$mnt" --in-memory --iova-mode=va
finish
