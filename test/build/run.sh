#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Build tier: what the build promises to users, checked on the built tree.
#   install     make install into a temporary prefix, build and run a small
#               program using only `pkg-config --cflags --libs libvfdma`
#               (shared, then --static); sbin/vfdmactl runs and its man
#               page renders cleanly; then make uninstall leaves nothing
#   destdir     make install DESTDIR=... puts everything under DESTDIR
#   exports     the shared library exports vfdma_* and nothing else
#   headers     every public header compiles on its own, in C and in C++
#   documented  every public function has a doc comment right above it
#   hygiene     SPDX line on every source file; no exit()/abort() in lib/
#   readme      the README's API example compiles against the installed
#               tree and runs on the sim backend
#   dpdk        (with DPDK) a program built with `pkg-config libvfdma_dpdk`
#               alone links and runs; libvfdma_dpdk.so exports vfdma_dpdk_*
#               only
set -uo pipefail

root=$VFDMA_ROOT build=$VFDMA_BUILD
p=0 f=0 s=0
pass() { echo "PASS $1"; p=$((p + 1)); }
fail() { echo "FAIL $1: $2"; f=$((f + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc=$(sed -n 's/^CONFIG_CC := //p' "$root/mk/config.mk")

# --- install / uninstall through PREFIX, used with pkg-config alone
t_install() {
	local pre=$work/prefix log=$work/install.log
	make -s -C "$root" install PREFIX="$pre" >"$log" 2>&1 || { fail install "make install: $(tail -3 "$log")"; return; }
	export PKG_CONFIG_PATH=$pre/lib/pkgconfig
	# shellcheck disable=SC2046
	"$cc" -std=gnu11 -Wall -Wextra -Werror "$root/test/build/hello.c" -o "$work/hello" \
		$(pkg-config --cflags --libs libvfdma) >"$log" 2>&1 ||
		{ fail install "build against the installed tree: $(tail -3 "$log")"; return; }
	LD_LIBRARY_PATH=$pre/lib "$work/hello" >"$log" 2>&1 || { fail install "hello (shared): $(cat "$log")"; return; }
	# (not "ldd | grep -q": with pipefail, grep quitting early fails ldd)
	local libs
	libs=$(LD_LIBRARY_PATH=$pre/lib ldd "$work/hello")
	[[ "$libs" == *"$pre/lib/libvfdma.so"* ]] ||
		{ fail install "hello did not load the installed libvfdma.so: $libs"; return; }
	# shellcheck disable=SC2046
	"$cc" -std=gnu11 -Wall -Wextra -Werror -static "$root/test/build/hello.c" -o "$work/hello-static" \
		$(pkg-config --cflags --static --libs libvfdma) >"$log" 2>&1 ||
		{ fail install "static build against the installed tree: $(tail -3 "$log")"; return; }
	"$work/hello-static" >"$log" 2>&1 || { fail install "hello (static): $(cat "$log")"; return; }
	# the tool and its man page (which must render without warnings)
	[ -x "$pre/sbin/vfdmactl" ] || { fail install "no sbin/vfdmactl"; return; }
	"$pre/sbin/vfdmactl" --help >"$log" 2>&1 || { fail install "vfdmactl --help: $(cat "$log")"; return; }
	[ -f "$pre/share/man/man8/vfdmactl.8" ] || { fail install "no share/man/man8/vfdmactl.8"; return; }
	if command -v groff >/dev/null; then
		LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$pre/share/man/man8/vfdmactl.8" >"$log" 2>&1 &&
			[ ! -s "$log" ] || { fail install "vfdmactl.8 does not render cleanly: $(head -3 "$log")"; return; }
	fi
	make -s -C "$root" uninstall PREFIX="$pre" >"$log" 2>&1 || { fail install "make uninstall failed"; return; }
	local left
	left=$(find "$pre" -type f)
	[ -z "$left" ] || { fail install "uninstall left files: $left"; return; }
	unset PKG_CONFIG_PATH
	pass install
}

t_destdir() {
	local d=$work/destdir
	make -s -C "$root" install DESTDIR="$d" PREFIX=/opt/vfdma >/dev/null 2>&1 || { fail destdir "make install DESTDIR failed"; return; }
	for x in include/vfdma/vfdma.h lib/libvfdma.a lib/libvfdma.so lib/pkgconfig/libvfdma.pc \
		sbin/vfdmactl share/man/man8/vfdmactl.8; do
		[ -e "$d/opt/vfdma/$x" ] || { fail destdir "missing $x under DESTDIR"; return; }
	done
	grep -q '^prefix=/opt/vfdma$' "$d/opt/vfdma/lib/pkgconfig/libvfdma.pc" ||
		{ fail destdir "pkg-config file does not name the PREFIX"; return; }
	make -s -C "$root" uninstall DESTDIR="$d" PREFIX=/opt/vfdma >/dev/null 2>&1
	[ -z "$(find "$d" -type f)" ] || { fail destdir "uninstall DESTDIR left files"; return; }
	pass destdir
}

t_exports() {
	local so bad n
	so=$(ls "$build"/lib/libvfdma.so.*.* 2>/dev/null | head -1)
	[ -n "$so" ] || { fail exports "no shared library in $build/lib"; return; }
	bad=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDBRVW]/ && $3 !~ /^vfdma_/ && $3 !~ /^VFDMA_/ {print $3}')
	[ -z "$bad" ] || { fail exports "non-vfdma symbols exported: $(echo $bad)"; return; }
	n=$(nm -D --defined-only "$so" | grep -c ' T vfdma_')
	[ "$n" -gt 0 ] || { fail exports "no vfdma_ function exported"; return; }
	pass "exports ($n functions)"
}

t_headers() {
	local h
	for h in "$root"/include/vfdma/*.h; do
		printf '#include "vfdma/%s"\n' "$(basename "$h")" >"$work/h.c"
		"$cc" -std=gnu11 -Wall -Wextra -Werror -fsyntax-only -I"$root/include" "$work/h.c" 2>"$work/h.log" ||
			{ fail headers "$(basename "$h") alone in C: $(head -3 "$work/h.log")"; return; }
		cp "$work/h.c" "$work/h.cc"
		c++ -std=c++17 -Wall -Wextra -Werror -fsyntax-only -I"$root/include" "$work/h.cc" 2>"$work/h.log" ||
			{ fail headers "$(basename "$h") alone in C++: $(head -3 "$work/h.log")"; return; }
	done
	pass headers
}

t_documented() {
	# A prototype of a public function must follow the end of a comment.
	local out
	out=$(awk '
		FNR == 1 { prev = "" }
		/^[a-z].*[ *]vfdma_[a-z0-9_]+\(/ && prev !~ /\*\/[ \t]*$/ { print FILENAME ":" FNR ": " $0 }
		/^[ \t]*$/ { next }
		{ prev = $0 }' "$root"/include/vfdma/*.h)
	[ -z "$out" ] || { fail documented "undocumented: $out"; return; }
	pass documented
}

t_hygiene() {
	local missing calls
	local list=(git ls-files -co --exclude-standard)
	git -C "$root" rev-parse --git-dir >/dev/null 2>&1 || list=(find . -path ./build -prune -o -type f -print)
	missing=$(cd "$root" && "${list[@]}" | grep -E '\.(c|h|cc|sh|mk)$|Makefile$|^(\./)?configure$' |
		while read -r x; do [ -f "$x" ] && ! head -3 "$x" | grep -q 'SPDX-License-Identifier: BSD-3-Clause' && echo "$x"; done)
	[ -z "$missing" ] || { fail hygiene "no SPDX line: $(echo $missing)"; return; }
	calls=$(grep -rnE '\b(exit|abort|_exit|assert)\s*\(' "$root/lib" --include='*.c' --include='*.h' | grep -v '^\s*/\?\*')
	[ -z "$calls" ] || { fail hygiene "exit/abort/assert in the library: $calls"; return; }
	pass hygiene
}

# The ```c block under "## The API in ten lines": includes on top, the rest
# as the body of main().
t_readme() {
	local pre=$work/readme-prefix log=$work/readme.log
	awk '/^## The API in ten lines/ {sec = 1} sec && /^```c/ {on = 1; next}
	     on && /^```/ {exit} on {print}' "$root/README.md" >"$work/example.txt"
	[ -s "$work/example.txt" ] || { fail readme "no C example found in README.md"; return; }
	{
		grep '^#include' "$work/example.txt"
		echo '#include <stdlib.h>'
		echo 'int main(void) {'
		grep -v '^#include' "$work/example.txt"
		echo 'return rc == 0 ? 0 : 1; }'
	} >"$work/example.c"
	make -s -C "$root" install PREFIX="$pre" >"$log" 2>&1 || { fail readme "make install"; return; }
	# shellcheck disable=SC2046
	"$cc" -std=gnu11 -Wall -Werror -Wno-unused-variable -static "$work/example.c" -o "$work/example" \
		$(PKG_CONFIG_PATH=$pre/lib/pkgconfig pkg-config --cflags --static --libs libvfdma) >"$log" 2>&1 ||
		{ fail readme "the example does not compile: $(head -5 "$log")"; return; }
	VFDMA_BACKEND=sim "$work/example" >"$log" 2>&1 ||
		{ fail readme "the example failed on the sim backend: $(head -5 "$log")"; return; }
	pass readme
}

t_dpdk() {
	if ! grep -q '^CONFIG_DPDK := y' "$root/mk/config.mk"; then
		echo "SKIP dpdk: built without DPDK"
		s=$((s + 1))
		return
	fi
	local pre=$work/dpdk-prefix log=$work/dpdk.log bad
	make -s -C "$root" install PREFIX="$pre" >"$log" 2>&1 || { fail dpdk "make install: $(tail -3 "$log")"; return; }
	cat >"$work/d.c" <<-'EOF'
		#include <errno.h>
		#include <vfdma/dpdk.h>
		int main(void) { return vfdma_dpdk_detach(0) == -EINVAL ? 0 : 1; }
	EOF
	# shellcheck disable=SC2046
	"$cc" -std=gnu11 -Wall -Wextra -Werror "$work/d.c" -o "$work/d" \
		$(PKG_CONFIG_PATH=$pre/lib/pkgconfig pkg-config --cflags --libs libvfdma_dpdk) >"$log" 2>&1 ||
		{ fail dpdk "build with pkg-config libvfdma_dpdk: $(tail -3 "$log")"; return; }
	LD_LIBRARY_PATH=$pre/lib "$work/d" >"$log" 2>&1 || { fail dpdk "the program failed: $(cat "$log")"; return; }
	bad=$(nm -D --defined-only "$pre"/lib/libvfdma_dpdk.so | awk '$2 ~ /[TDBRVW]/ && $3 !~ /^vfdma_dpdk_/ {print $3}')
	[ -z "$bad" ] || { fail dpdk "libvfdma_dpdk.so exports: $(echo $bad)"; return; }
	pass dpdk
}

t_install
t_destdir
t_exports
t_headers
t_documented
t_hygiene
t_readme
t_dpdk

echo "$p $f $s" >"$VFDMA_COUNTS"
[ "$f" -eq 0 ]
