#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Unit tier: the GoogleTest program, its per-test results counted from its
# output ("[       OK ] Suite.Name (N ms)" and the FAILED/SKIPPED equivalents).
set -uo pipefail

bin=$VFDMA_BUILD/test/vfdma_unit
if [ ! -x "$bin" ]; then
	echo "SKIP unit: $bin was not built (GoogleTest missing? run scripts/pkgdep.sh)"
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
	echo "FAIL unit: $bin exited $rc (crash?) after $p passed tests"
	f=1
fi
echo "$p $f $s" >"$VFDMA_COUNTS"
[ "$f" -eq 0 ]
