#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Runs the named test tiers (test/<tier>/run.sh) and prints the one summary
# line CI reads, counted over everything that ran:
#     N passed, N failed, N skipped
# A tier's run.sh prints PASS/FAIL/SKIP lines and writes "passed failed
# skipped" to $VFDMA_COUNTS.  A tier that crashes without writing its counts
# is one failure.  Exit status is non-zero if anything failed.
set -uo pipefail

: "${VFDMA_ROOT:?}" "${VFDMA_BUILD:?}"
passed=0 failed=0 skipped=0
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT

for tier in "$@"; do
	runner=$VFDMA_ROOT/test/$tier/run.sh
	[ -f "$runner" ] || continue
	echo "=== tier $tier"
	start=$(date +%s)
	: >"$counts"
	VFDMA_COUNTS=$counts bash "$runner"
	rc=$?
	if read -r p f s <"$counts" && [[ "$p$f$s" =~ ^[0-9]+$ ]]; then
		[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1 &&
			echo "FAIL tier-$tier: runner exited $rc with no failed test counted"
	else
		p=0 f=1 s=0
		echo "FAIL tier-$tier: runner exited $rc without reporting counts"
	fi
	echo "=== tier $tier: $p passed, $f failed, $s skipped ($(($(date +%s) - start)) s)"
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
