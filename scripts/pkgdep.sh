#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Install every build and test dependency of vfdma by Debian package name.
# Safe to run twice: packages already present are left alone, and apt is only
# asked for what is missing.
set -euo pipefail

pkgs=(
	# build
	build-essential clang llvm pkg-config make
	libnuma-dev libdpdk-dev
	# static DPDK programs for the VM guest (dma-dpdk)
	libbsd-dev libmd-dev
	# unit tests and sanitizers
	libgtest-dev libclang-rt-14-dev
	# tools used by tests and benchmarks
	python3 jq
	# VM tier: guest, initramfs, kernel build
	qemu-system-x86 qemu-utils busybox-static cpio gzip
	flex bison libelf-dev libssl-dev bc rsync xz-utils libcap-dev
	debian-archive-keyring
)

missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "pkgdep: all ${#pkgs[@]} packages present"
	exit 0
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "pkgdep: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "pkgdep: done"
