#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Fetch Debian's kernel source and build the guest kernel of the VM tier.
#
# Prints one line on stdout: the cache directory of the finished kernel,
# which holds
#   bzImage           the guest kernel
#   hdr/include       its exported uAPI headers (guest programs build
#                     against these; the host's are too old for iommufd)
#   selftests/        the kernel's iommufd selftests, linked statically
#   version           deb_version=, kernelrelease=, series=
# Progress goes to stderr.  A finished kernel is reused silently.
#
# The source comes from Debian's archive through a private apt
# configuration (own sources list, lists and cache directories); the
# machine's apt sources are only read, to learn the mirror URI.
#
# Environment:
#   XDG_CACHE_HOME      cache root (default ~/.cache); we use .../vfdma/
#   VFDMA_VM_REFRESH=1  ask the archive again even if a kernel is cached
#   VFDMA_VM_JOBS       make -j (default 2)
#   VFDMA_VM_KEEP_TREE=1  keep the kernel source and object trees
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment=$here/kernel.config
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vfdma
jobs=${VFDMA_VM_JOBS:-2}
# Bump when the way the kernel is built changes (not the fragment: that
# is hashed already), so that stale caches are rebuilt.
build_rev=1

t0=$SECONDS
say() { printf '[vm-kernel %3dm%02ds] %s\n' $(((SECONDS - t0) / 60)) $(((SECONDS - t0) % 60)) "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

mkdir -p "$cache/kernel"
exec 9>"$cache/kernel.lock"
flock 9

key_hash=$( { cat "$fragment"; echo "build_rev=$build_rev"; } | sha256sum | cut -c1-12)

# --- fast path: a finished kernel with this fragment
if [[ -z ${VFDMA_VM_REFRESH:-} ]]; then
	# shellcheck disable=SC2012 # names are ours, no odd characters
	done_dir=$(ls -1dt "$cache"/kernel/*-"$key_hash" 2>/dev/null | while read -r d; do
		[[ -f $d/DONE ]] && { echo "$d"; break; }; done || true)
	if [[ -n $done_dir ]]; then
		echo "$done_dir"
		exit 0
	fi
fi

# --- the mirror this machine already uses (never hard-coded here)
mirror_uri() {
	local f uri=''
	f=/etc/apt/sources.list.d/debian.sources
	if [[ -r $f ]]; then
		uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
	fi
	if [[ -z $uri && -r /etc/apt/sources.list ]]; then
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp|file):/ && $i !~ /security/) { print $i; exit } }' /etc/apt/sources.list)
	fi
	[[ -n $uri ]] || die "no Debian mirror URI in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
	echo "$uri"
}

# Private apt configuration for one suite: prints the apt options.
apt_opts() {
	local suite=$1 d=$cache/apt/$1
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial" "$d/empty"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$d/sources.list"
	echo "-o Dir::Etc::SourceList=$d/sources.list -o Dir::Etc::SourceParts=$d/empty" \
		"-o Dir::State::Lists=$d/lists -o Dir::Etc::Preferences=$d/empty/none" \
		"-o Dir::Etc::PreferencesParts=$d/empty -o Dir::Cache=$d/cache" \
		"-o Dir::State::status=/dev/null -o APT::Get::List-Cleanup=0" \
		"$([[ $(id -u) == 0 ]] && echo "-o APT::Sandbox::User=root")"
}

# Candidate version of a package in a suite, empty if none.
candidate() {
	# shellcheck disable=SC2086 # $2 is a list of options
	apt-cache $2 policy "$1" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }'
}

mirror=$(mirror_uri)
say "resolving linux-source from $mirror"
pkg='' ver='' opts=''
# Debian stable's 6.12 first, then bookworm-backports' 6.12, then the
# newest series unstable has.
for suite in trixie bookworm-backports unstable; do
	opts=$(apt_opts "$suite")
	# shellcheck disable=SC2086
	if ! apt-get $opts -qq update >&2; then
		say "apt update of $suite failed, trying the next suite"
		continue
	fi
	if [[ $suite != unstable ]]; then
		pkg=linux-source-6.12
	else
		# shellcheck disable=SC2086
		pkg=$(apt-cache $opts search --names-only '^linux-source-[0-9]+\.[0-9]+$' |
			awk '{ print $1 }' | sort -V | tail -1)
	fi
	[[ -n $pkg ]] && ver=$(candidate "$pkg" "$opts")
	if [[ -n $ver ]]; then
		say "using $pkg $ver from $suite"
		break
	fi
	say "no usable linux-source in $suite"
	pkg='' ver=''
done
[[ -n $ver ]] || die "could not find linux-source-6.12 (trixie, bookworm-backports) or a newer series (unstable)"

kdir=$cache/kernel/${ver//[^A-Za-z0-9.+-]/_}-$key_hash
obj=$kdir/obj
mkdir -p "$kdir" "$cache/src"
rm -f "$kdir/DONE"

# --- download and unpack
src=$kdir/src
if [[ ! -f $kdir/src.stamp ]]; then
	debs=("$cache/src/${pkg}_${ver//:/%3a}"_*.deb)
	deb=${debs[0]}
	if [[ ! -f $deb ]]; then
		say "download $pkg $ver (~150 MB)"
		# shellcheck disable=SC2086
		(cd "$cache/src" && apt-get $opts -qq download "$pkg=$ver" >&2) || die "download of $pkg failed"
		debs=("$cache/src/${pkg}_${ver//:/%3a}"_*.deb)
		deb=${debs[0]}
		[[ -f $deb ]] || die "apt-get download left no ${pkg}_${ver}_*.deb in $cache/src"
	fi
	say "unpack $(basename "$deb")"
	rm -rf "$src" "$kdir/deb"
	dpkg -x "$deb" "$kdir/deb"
	mkdir -p "$src"
	tar -xf "$kdir"/deb/usr/src/linux-source-*.tar.* -C "$src" --strip-components=1
	rm -rf "$kdir/deb"
	touch "$kdir/src.stamp"
fi

# Run a long step with its output in build.log and a heartbeat on stderr.
log=$kdir/build.log
step() {
	local what=$1 start=$SECONDS pid n=0
	shift
	say "$what"
	echo "=== $what: $*" >>"$log"
	"$@" >>"$log" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 1
		if ((++n % 30 == 0)); then
			say "$what: still running, $((SECONDS - start))s ($(find "$obj" -name '*.o' 2>/dev/null | wc -l) objects)"
		fi
	done
	if ! wait "$pid"; then
		tail -n 40 "$log" >&2
		die "$what failed (full log: $log)"
	fi
}

kmake() { make -C "$src" O="$obj" ARCH=x86_64 "$@"; }

# --- configure: tinyconfig + fragment, then check every option stuck
frag_all=$kdir/fragment.config
cp "$fragment" "$frag_all"
# On 7.x, IOMMUFD_TEST also needs IOMMU_PT_AMDV1, which nothing selects
# in an Intel-only configuration; older series have no such option.
if grep -rqs '^config IOMMU_PT_AMDV1$' "$src/drivers/iommu"; then
	echo "CONFIG_IOMMU_PT_AMDV1=y" >>"$frag_all"
fi
: >"$log"
step "configure (tinyconfig + test/vm/kernel.config)" kmake tinyconfig
step "merge fragment" "$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "$frag_all"
step "olddefconfig" kmake olddefconfig
missing=()
while read -r opt; do
	grep -qx "$opt=y" "$obj/.config" || missing+=("$opt")
done < <(sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=y$/\1/p' "$frag_all")
while read -r opt; do
	if grep -qx "$opt=[ym]" "$obj/.config"; then missing+=("$opt (must be off)"); fi
done < <(sed -n 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1/p' "$frag_all")
if ((${#missing[@]})); then
	die "kconfig dropped or changed these options (missing dependencies?): ${missing[*]}"
fi
say "config verified: all $(grep -c '^CONFIG_.*=y$' "$frag_all") requested options are =y"

# --- build
step "compile bzImage (make -j$jobs)" kmake -j"$jobs" bzImage
step "headers_install" kmake headers_install INSTALL_HDR_PATH="$kdir/hdr"
rm -rf "$kdir/selftests"
mkdir -p "$kdir/selftests"
# Debian's 6.12 trees (6.12.95, 6.12.107) carry iommufd selftests from a
# newer kernel (stable backports): they use a few uAPI and test-header
# names this kernel does not have and do not compile as shipped.
# selftest_compat writes the missing names (values as in newer kernels)
# into a header that is force-included; only names the tree lacks are
# defined.  The tests for the features behind them cannot pass on this
# kernel; test/vm/kselftest.exclude lists them.
selftest_compat() {
	local hdrs=("$src/include/uapi/linux/iommufd.h" "$src/drivers/iommu/iommufd/iommufd_test.h")
	local name value
	echo "/* generated by test/vm/build-kernel.sh: names the selftest needs, this tree lacks */"
	while read -r name value; do
		if grep -qw "$name" "$src/tools/testing/selftests/iommu/"*.[ch] && ! grep -qw "$name" "${hdrs[@]}"; then
			echo "#define $name $value"
		fi
	done <<-'EOF'
		IOMMU_HW_INFO_TYPE_DEFAULT 0
		IOMMU_HW_INFO_FLAG_INPUT_TYPE (1 << 0)
		in_data_type out_data_type
		MOCK_FLAGS_DEVICE_PASID (1 << 2)
		MOCK_PASID_WIDTH 20
	EOF
}
selftest_compat >"$kdir/selftest-compat.h"
if grep -q '^#define' "$kdir/selftest-compat.h"; then
	say "selftest compat: defining $(grep -c '^#define' "$kdir/selftest-compat.h") names the backported selftest needs ($kdir/selftest-compat.h)"
fi
step "iommufd selftests (static)" make -C "$src/tools/testing/selftests/iommu" -j"$jobs" \
	OUTPUT="$kdir/selftests" LDFLAGS=-static \
	KHDR_INCLUDES="-isystem $kdir/hdr/include -include $kdir/selftest-compat.h"
for t in iommufd iommufd_fail_nth; do
	[[ -x $kdir/selftests/$t ]] || die "selftest $t was not built (log: $log)"
done
cp "$obj/arch/x86/boot/bzImage" "$kdir/bzImage"

krel=$(kmake -s kernelrelease 2>/dev/null | tail -1)
{
	echo "package=$pkg"
	echo "deb_version=$ver"
	echo "kernelrelease=$krel"
	echo "series=$(echo "$krel" | cut -d. -f1,2)"
} >"$kdir/version"
touch "$kdir/DONE"
# The source and object trees (~1.8 GB) are not needed any more: keep the
# cache small enough for CI to carry.  The .deb stays in $cache/src.
if [[ -z ${VFDMA_VM_KEEP_TREE:-} ]]; then
	say "removing the source and object trees (VFDMA_VM_KEEP_TREE=1 keeps them)"
	rm -rf "$src" "$obj" "$kdir/src.stamp"
fi
say "done: kernel $krel ($(du -h "$kdir/bzImage" | cut -f1) bzImage) in $kdir"
echo "$kdir"
