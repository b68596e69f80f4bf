#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Sim tier: the whole stack through the public API on the sim backend.
exec bash "$VFDMA_ROOT/test/gtest-run.sh" sim "$VFDMA_BUILD/test/vfdma_sim" "$@"
