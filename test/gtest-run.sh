#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Run one GoogleTest program and count its per-test results from its output
# ("[       OK ] Suite.Name (N ms)" and the FAILED/SKIPPED equivalents) into
# $VFDMA_COUNTS.  A program that crashes counts as a failure.
#   gtest-run.sh TIER-NAME PROGRAM [gtest args...]
set -uo pipefail

name=$1 bin=$2
shift 2
if [ ! -x "$bin" ]; then
	echo "SKIP $name: $bin was not built (GoogleTest missing? run scripts/pkgdep.sh)"
	echo "0 0 1" >"$VFDMA_COUNTS"
	exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# TSan needs a fixed address-space layout on kernels with high mmap entropy.
run=()
if grep -q '^CONFIG_TSAN := y' "$VFDMA_ROOT/mk/config.mk" 2>/dev/null; then
	run=(setarch "$(uname -m)" -R)
fi
"${run[@]}" "$bin" --gtest_color=no "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

p=$(grep -cE '^\[       OK \] .* \([0-9]+ ms\)$' "$log")
f=$(grep -cE '^\[  FAILED  \] .* \([0-9]+ ms\)$' "$log")
s=$(grep -cE '^\[  SKIPPED \] .* \([0-9]+ ms\)$' "$log")
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
	echo "FAIL $name: $bin exited $rc (crash?) after $p passed tests"
	f=1
fi
echo "$p $f $s" >"$VFDMA_COUNTS"
[ "$f" -eq 0 ]
