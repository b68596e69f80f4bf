#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
#
# Helpers for the nvme-* guest scripts (busybox sh): result lines in the
# VM tier's format (see vmtest.h), and checks on a tool's output.  Sourced,
# not run; executable only because run.sh copies the executable files of
# guest/ to /vfdma/bin.
failed=0

pass() { echo "PASS $1${2:+: $2}"; }
fail() {
	echo "FAIL $1: $2"
	failed=1
}
# expect <check> <status> <output>: the tool exited 0
expect() {
	if [ "$2" -eq 0 ]; then pass "$1"; else fail "$1" "exit status $2: $(echo "$3" | tail -3)"; fi
}
# has <check> <text> <needle>: the output contains the needle
has() {
	case $2 in
	*"$3"*) pass "$1" ;;
	*) fail "$1" "no '$3' in the output" ;;
	esac
}
# The first PCI address in $VFDMA_VFIO_BDFS.
first_bdf() {
	set -- $VFDMA_VFIO_BDFS
	if [ -z "$1" ]; then
		fail setup "no device in \$VFDMA_VFIO_BDFS"
		return 1
	fi
	echo "$1"
}
# json_num <json> <key>: the first number after "key":
json_num() { echo "$1" | sed -n "s/.*\"$2\": \([0-9.]*\).*/\1/p" | head -1; }
finish() { exit $failed; }
