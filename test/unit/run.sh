#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Unit tier: algorithms and internals, one GoogleTest program.
exec bash "$VFDMA_ROOT/test/gtest-run.sh" unit "$VFDMA_BUILD/test/vfdma_unit" "$@"
