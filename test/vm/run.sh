#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# The VM test tier: boots a QEMU guest (emulated VT-d, NVMe, two NUMA
# nodes) with a kernel built from Debian's source, runs the tests in
# test/vm/tests/*.test inside it and reports one line per test:
#
#   PASS <name> | FAIL <name>: <why> | SKIP <name>: <why>
#
# then writes "<passed> <failed> <skipped>" to $VFDMA_COUNTS and exits
# non-zero if anything failed.  See test/vm/README.md.
#
# Environment (set by `make check-vm`; defaults for running it by hand):
#   VFDMA_ROOT     repo root            (default: two levels up from here)
#   VFDMA_BUILD    build directory      (default: $VFDMA_ROOT/build)
#   VFDMA_COUNTS   counts file          (default: $VFDMA_BUILD/vm/counts)
# Knobs:
#   VFDMA_VM_TESTS="probe kselftest"    run only these tests (spec names)
#   VFDMA_VM_ACCEL=kvm|tcg              force the accelerator (default: probe)
#   VFDMA_VM_TIMEOUT_SCALE=N            multiply every timeout by N
#   VFDMA_VM_PARALLEL=N                 boots at once (default 2)
#   VFDMA_VM_VERBOSE=1                  copy the guest console to stderr
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=${VFDMA_ROOT:-$(cd "$here/../.." && pwd)}
build=${VFDMA_BUILD:-$root/build}
out=$build/vm
counts=${VFDMA_COUNTS:-$out/counts}
scale=${VFDMA_VM_TIMEOUT_SCALE:-1}
t0=$SECONDS

passed=0 failed=0 skipped=0 finished=''

# --- reporting -----------------------------------------------------------

# report PASS|FAIL|SKIP <name> [why]
report() {
	local kind=$1 name=$2 why=${3:-}
	case $kind in
	PASS) passed=$((passed + 1)) ;;
	FAIL) failed=$((failed + 1)) ;;
	SKIP) skipped=$((skipped + 1)) ;;
	*)
		kind=FAIL why="bad result kind '$1': $why"
		failed=$((failed + 1))
		;;
	esac
	if [[ -n $why ]]; then
		echo "$kind $name: $why"
	else
		echo "$kind $name"
	fi
}

note() { echo "[vm $(((SECONDS - t0) / 60))m$(printf %02d $(((SECONDS - t0) % 60)))s] $*" >&2; }

# Lines indented under a result, for context (console tails, logs).
indent() { sed -e 's/\r//g' -e 's/^/    | /'; }

write_counts() {
	mkdir -p "$(dirname "$counts")"
	echo "$passed $failed $skipped" >"$counts"
}

# If this script dies half-way, that is a failure, never a silent pass.
declare -A B_pid=()
on_exit() {
	local rc=$? pid
	for pid in "${B_pid[@]}"; do
		if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
	done
	[[ -n $finished ]] && return
	report FAIL vm/runner "run.sh aborted (exit status $rc) before all tests ran"
	write_counts
	exit 1
}
trap on_exit EXIT

finish() {
	write_counts
	finished=1
	note "VM tier: $passed passed, $failed failed, $skipped skipped in $((SECONDS - t0))s"
	((failed == 0))
}

# --- test specs ----------------------------------------------------------
#
# tests/<name>.test, "key = value" lines, # comments.  See README.md.

declare -A T_run T_backend T_nvme T_nvme_numa T_kernel_nvme T_cmdline T_timeout T_host_check T_kernel T_expect T_isolate
tests=()

spec_error() {
	report FAIL "vm/$1" "bad test spec tests/$1.test: $2"
}

load_spec() {
	local file=$1 name key value line n=0 i b
	name=$(basename "$file" .test)
	if [[ ! $name =~ ^[A-Za-z0-9_-]+$ ]]; then
		report FAIL "vm/$name" "bad test spec name: use letters, digits, - and _"
		return 1
	fi
	T_run[$name]='' T_backend[$name]=none T_nvme[$name]=2 T_nvme_numa[$name]='' T_kernel_nvme[$name]=0 T_cmdline[$name]=''
	T_timeout[$name]=120 T_host_check[$name]='' T_kernel[$name]='' T_expect[$name]=pass T_isolate[$name]=no
	while IFS='' read -r line || [[ -n $line ]]; do
		n=$((n + 1))
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		if [[ ! $line =~ ^[[:space:]]*([a-z_]+)[[:space:]]*=[[:space:]]*(.*[^[:space:]])?[[:space:]]*$ ]]; then
			spec_error "$name" "line $n: expected 'key = value'"
			return 1
		fi
		key=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
		case $key in
		run | backend | nvme | nvme_numa | kernel_nvme | cmdline | timeout | host_check | kernel | expect | isolate)
			printf -v "T_${key}[$name]" '%s' "$value"
			;;
		*)
			spec_error "$name" "line $n: unknown key '$key'"
			return 1
			;;
		esac
	done <"$file"
	local why=''
	[[ -n ${T_run[$name]} ]] || why="no 'run' command"
	[[ ${T_run[$name]} != *"'"* ]] || why="'run' must not contain single quotes"
	[[ ${T_nvme[$name]} =~ ^[0-4]$ ]] || why="nvme must be 0..4"
	[[ ${T_kernel_nvme[$name]} =~ ^[0-4]$ ]] && ((T_kernel_nvme[$name] <= T_nvme[$name])) ||
		why="kernel_nvme must be 0..nvme"
	[[ ${T_timeout[$name]} =~ ^[0-9]+$ ]] || why="timeout must be seconds"
	# nvme_numa: default NVMe <i> in node i % 2; "none": all on the root bus
	case ${T_nvme_numa[$name]} in
	"") [[ -n $why ]] || for ((i = 0; i < T_nvme[$name]; i++)); do T_nvme_numa[$name]+="$((i % 2)) "; done ;;
	none) T_nvme_numa[$name]='' ;;
	*) [[ ${T_nvme_numa[$name]} =~ ^[01]([[:space:]]+[01])*$ ]] || why="nvme_numa must be none or a list of nodes 0/1" ;;
	esac
	[[ ${T_expect[$name]} =~ ^(pass|hang|panic)$ ]] || why="expect must be pass, hang or panic"
	[[ ${T_isolate[$name]} =~ ^(yes|no)$ ]] || why="isolate must be yes or no"
	[[ -n ${T_backend[$name]//[[:space:]]/} ]] || why="backend must not be empty (use none)"
	for b in ${T_backend[$name]}; do
		[[ $b =~ ^(none|iommufd|type1)$ ]] || why="backend must be none, iommufd and/or type1"
	done
	[[ -z ${T_host_check[$name]} || -f $here/tests/${T_host_check[$name]} ]] ||
		why="host_check script tests/${T_host_check[$name]} does not exist"
	if [[ -n $why ]]; then
		spec_error "$name" "$why"
		return 1
	fi
	tests+=("$name")
}

for f in "$here"/tests/*.test; do
	name=$(basename "$f" .test)
	if [[ -n ${VFDMA_VM_TESTS:-} && " $VFDMA_VM_TESTS " != *" $name "* ]]; then
		continue
	fi
	load_spec "$f" || true
done
for name in ${VFDMA_VM_TESTS:-}; do
	[[ -f $here/tests/$name.test ]] || report FAIL "vm/$name" "VFDMA_VM_TESTS names it, but there is no tests/$name.test"
done

# Every test a spec would run, for SKIP/FAIL lines before any boot.
skip_all() {
	local t
	for t in "${tests[@]}"; do report "$1" "vm/$t" "$2"; done
	finish
	exit $?
}

# --- prerequisites -------------------------------------------------------

missing=()
for tool in qemu-system-x86_64 cpio gzip make gcc flex bison bc apt-get dpkg rsync readelf; do
	command -v "$tool" >/dev/null || missing+=("$tool")
done
busybox=$(command -v busybox || true)
if [[ -z $busybox ]]; then
	missing+=(busybox-static)
elif readelf -l "$busybox" 2>/dev/null | grep -q INTERP; then
	missing+=("busybox-static (the installed busybox is dynamically linked)")
fi
[[ -f /usr/include/libelf.h ]] || missing+=(libelf-dev)
[[ -f /usr/include/sys/capability.h ]] || missing+=(libcap-dev)
if ((${#missing[@]})); then
	skip_all SKIP "SKIPPED: VM tier needs ${missing[*]} (install with scripts/pkgdep.sh)"
fi
((${#tests[@]})) || {
	finish
	exit $?
}

# --- kernel, guest programs, initramfs ------------------------------------

mkdir -p "$out"
note "kernel: checking the cache (a first build takes ~10 minutes)"
if ! kdir=$(bash "$here/build-kernel.sh"); then
	skip_all FAIL "guest kernel build failed (see the messages above)"
fi
kver=$(sed -n 's/^kernelrelease=//p' "$kdir/version")
kseries=$(sed -n 's/^series=//p' "$kdir/version")
note "kernel: $kver ($kdir)"

# Guest programs: build what builds (-k).  A program that does not build
# is one FAIL here, and the tests that run it fail in the guest (command
# not found); the other tests still run.
rm -rf "${out:?}/bin"
# With DPDK (configure found it), dma-dpdk is built too, statically.
dpdk_vars=()
if grep -q '^CONFIG_DPDK := y' "$root/mk/config.mk"; then
	dpdk_vars=(VFDMA_DPDK_LIB="$build/lib/libvfdma_dpdk.a"
		DPDK_CFLAGS="$(sed -n 's/^CONFIG_DPDK_CFLAGS := //p' "$root/mk/config.mk")")
fi
if ! make -k -s -C "$here" KHDR="$kdir/hdr/include" O="$out/bin" \
	VFDMA_INC="$root/include" VFDMA_LIB="$build/lib/libvfdma.a" "${dpdk_vars[@]}" >"$out/make.log" 2>&1; then
	report FAIL vm/guest-programs "some guest test programs do not build, their tests will fail (log: $out/make.log):"
	grep -e 'error' -e 'cannot find' -e '\*\*\*' "$out/make.log" | head -10 | indent
fi

# KVM when it really works (here /dev/kvm exists, but starting a vCPU
# fails), software emulation otherwise.
pick_accel() {
	if [[ -n ${VFDMA_VM_ACCEL:-} ]]; then
		echo "$VFDMA_VM_ACCEL"
		return
	fi
	if [[ -r /dev/kvm && -w /dev/kvm ]]; then
		# A VM that keeps running for 3 s (SeaBIOS idling) works; a
		# broken KVM fails at the first vCPU entry.
		local rc=0
		timeout 3 qemu-system-x86_64 -accel kvm -cpu host -machine q35 -m 64 -nodefaults \
			-display none -no-reboot >/dev/null 2>&1 || rc=$?
		if ((rc == 124)); then
			echo kvm
			return
		fi
	fi
	echo tcg
}
accel=$(pick_accel)
# shellcheck disable=SC2054 # commas belong to QEMU options
if [[ $accel == kvm ]]; then
	qemu_accel=(-accel kvm -cpu host)
else
	qemu_accel=(-accel tcg,thread=multi -cpu max)
fi
note "accelerator: $accel"

# --- units and boots -------------------------------------------------------
#
# A unit is one test run with one backend: "probe/iommufd".  Units
# whose boot needs are equal share one boot; tests with a host check or
# an expected hang/panic, or isolate = yes, get a boot of their own.

units=()
declare -A U_test U_backend U_boot U_begun U_status U_nres U_nfail U_start
boots=()
declare -A B_key B_units B_nvme B_nvme_numa B_kernel_nvme B_cmdline
nb=0

for t in "${tests[@]}"; do
	if [[ -n ${T_kernel[$t]} && ${T_kernel[$t]} != "$kseries" ]]; then
		report SKIP "vm/$t" "SKIPPED: needs the kernel test ABI of series ${T_kernel[$t]}, the guest kernel is $kver"
		continue
	fi
	key="${T_nvme[$t]}|${T_nvme_numa[$t]}|${T_kernel_nvme[$t]}|${T_cmdline[$t]}"
	if [[ -n ${T_host_check[$t]} || ${T_expect[$t]} != pass || ${T_isolate[$t]} == yes ]]; then
		key="$key|own:$t"
	fi
	b=''
	for cand in "${boots[@]}"; do
		[[ ${B_key[$cand]} == "$key" ]] && b=$cand
	done
	if [[ -z $b ]]; then
		nb=$((nb + 1))
		b=boot$nb
		boots+=("$b")
		B_key[$b]=$key B_units[$b]='' B_nvme[$b]=${T_nvme[$t]} B_kernel_nvme[$b]=${T_kernel_nvme[$t]}
		B_nvme_numa[$b]=${T_nvme_numa[$t]}
		B_cmdline[$b]=${T_cmdline[$t]}
	fi
	read -ra blist <<<"${T_backend[$t]}"
	for be in "${blist[@]}"; do
		u=$t
		((${#blist[@]} > 1)) || [[ $be != none ]] && u="$t/$be"
		units+=("$u")
		U_test[$u]=$t U_backend[$u]=$be U_boot[$u]=$b U_begun[$u]='' U_status[$u]='' U_nres[$u]=0 U_nfail[$u]=0
		B_units[$b]+="$u "
	done
done

# Initramfs: busybox, /init, the guest programs, the kernel selftests,
# and one plan per boot.
stage=$out/initramfs
rm -rf "$stage"
mkdir -p "$stage"/{bin,dev,proc,sys,tmp,vfdma/bin,vfdma/plans}
cp "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
install -m 755 "$here/guest/init" "$stage/init"
# guest shell tools: the executable files in guest/ other than /init
for f in "$here"/guest/*; do
	if [[ -x $f && $f != */init ]]; then install -m 755 "$f" "$stage/vfdma/bin/"; fi
done
for f in "$out"/bin/guest/* "$kdir"/selftests/iommufd "$kdir"/selftests/iommufd_fail_nth; do
	if [[ -f $f ]]; then cp "$f" "$stage/vfdma/bin/"; fi
done
cp "$kdir/version" "$stage/vfdma/kernel-version"
cp "$here/kselftest.known-failures" "$stage/vfdma/kselftest.known"
for b in "${boots[@]}"; do
	{
		echo "# plan for $b, written by run.sh"
		echo "export VFDMA_KERNEL_RELEASE='$kver' VFDMA_KERNEL_SERIES='$kseries'"
		echo "bind_nvme ${B_kernel_nvme[$b]}"
		for u in ${B_units[$b]}; do
			echo "vt_run '$u' '${U_backend[$u]}' '${T_run[${U_test[$u]}]}'"
		done
	} >"$stage/vfdma/plans/$b"
done
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$out/initrd.gz"

# --- boots -----------------------------------------------------------------
#
# Up to $max_boots boots run at once (VFDMA_VM_PARALLEL, default 2): a
# guest test mostly keeps one vCPU busy, so two guests use the two cores
# of the machines here.  Per-boot state lives in the B_* arrays.
max_boots=${VFDMA_VM_PARALLEL:-2}
declare -A B_nread B_cur B_start B_last B_done B_outcome B_detail

# Handle one protocol line from the guest's ttyS1 in boot $1.
on_line() {
	local b=$1 line=$2 u rest kind body check why
	case $line in
	"BEGIN "*)
		u=${line#BEGIN }
		[[ ${U_boot[$u]:-} == "$b" ]] || return 0
		U_begun[$u]=1 U_start[$u]=$SECONDS B_cur[$b]=$u
		;;
	"R "*)
		rest=${line#R }
		u=${rest%% *} rest=${rest#* }
		[[ ${U_boot[$u]:-} == "$b" ]] || return 0
		kind=${rest%% *} body=${rest#* }
		[[ $body == "$rest" ]] && body=-
		check=${body%%: *} why=''
		[[ $body == *": "* ]] && why=${body#*: }
		U_nres[$u]=$((U_nres[$u] + 1))
		[[ $kind == FAIL ]] && U_nfail[$u]=$((U_nfail[$u] + 1))
		if [[ ${T_expect[${U_test[$u]}]} == pass ]]; then
			if [[ $check == - ]]; then
				report "$kind" "vm/$u" "$why"
			else
				report "$kind" "vm/$u/$check" "$why"
			fi
		fi
		;;
	"END "*)
		rest=${line#END }
		u=${rest% *}
		[[ ${U_boot[$u]:-} == "$b" ]] || return 0
		U_status[$u]=${rest##* }
		B_cur[$b]=''
		note "$b: $u exited with status ${U_status[$u]} after $((SECONDS - U_start[$u]))s"
		;;
	DONE) B_done[$b]=1 ;;
	esac
}

# Start QEMU for boot $1.
start_boot() {
	local b=$1 bd=$out/$1 i
	rm -rf "$bd"
	mkdir -p "$bd"
	# NVMe <i> has serial vfdma<i> (the guest orders devices by it).
	# Without a NUMA node it sits on the root bus (slot 4 + i, no node);
	# with one, behind a root port of a PCIe expander bridge (pxb-pcie)
	# that ACPI places in that node.
	local drives=() nodes pxb_done=''
	read -ra nodes <<<"${B_nvme_numa[$b]}"
	for ((i = 0; i < B_nvme[$b]; i++)); do
		truncate -s 256M "$bd/nvme$i.img"
		drives+=(-drive "file=$bd/nvme$i.img,if=none,id=d$i,format=raw")
		local node=${nodes[i]:-}
		if [[ -z $node ]]; then
			drives+=(-device "nvme,serial=vfdma$i,drive=d$i,addr=0x$((4 + i))")
			continue
		fi
		if [[ $pxb_done != *"<$node>"* ]]; then
			drives+=(-device "pxb-pcie,id=pxb$node,bus_nr=$((64 * (node + 1))),numa_node=$node,bus=pcie.0")
			pxb_done+="<$node>"
		fi
		drives+=(-device "pcie-root-port,id=rp$i,bus=pxb$node,chassis=$((i + 1)),slot=$i"
			-device "nvme,serial=vfdma$i,drive=d$i,bus=rp$i")
	done
	# panic=0: a panicking guest halts and prints the whole report, ending
	# with a trailer written while the other CPUs are stopped, so no user
	# output can break it up (with panic=-1 the guest reboots before it).
	local cmdline="console=ttyS0 intel_iommu=on iommu=nopt panic=0 no_timer_check"
	# one 1 GiB page on each node, unless the test reserves hugepages itself
	[[ ${B_cmdline[$b]} == *hugepages=* ]] || cmdline+=" hugepagesz=1G hugepages=0:1,1:1"
	cmdline+=" vfdma.plan=$b ${B_cmdline[$b]}"
	# shellcheck disable=SC2054 # commas belong to QEMU options
	local qemu=(qemu-system-x86_64 "${qemu_accel[@]}" -machine q35,kernel-irqchip=split
		-smp 2,sockets=2,cores=1,threads=1 -m 7G
		-object memory-backend-ram,id=m0,size=4G -numa node,nodeid=0,cpus=0,memdev=m0
		-object memory-backend-ram,id=m1,size=3G -numa node,nodeid=1,cpus=1,memdev=m1
		-device intel-iommu,intremap=on,caching-mode=on
		"${drives[@]}"
		-kernel "$kdir/bzImage" -initrd "$out/initrd.gz" -append "$cmdline"
		-display none -vga none -nic none -monitor none -no-reboot
		-serial "file:$bd/console.log" -serial "file:$bd/results.log")
	printf '%q ' "${qemu[@]}" >"$bd/qemu.cmd"
	: >"$bd/console.log"
	: >"$bd/results.log"
	note "$b: booting (${B_nvme[$b]} NVMe, ${B_kernel_nvme[$b]} on the kernel driver): ${B_units[$b]}"
	"${qemu[@]}" >"$bd/qemu.log" 2>&1 &
	B_pid[$b]=$!
	if [[ -n ${VFDMA_VM_VERBOSE:-} ]]; then
		tail -n +1 -f --pid="${B_pid[$b]}" "$bd/console.log" >&2 &
	fi
	B_nread[$b]=0 B_cur[$b]='' B_done[$b]='' B_outcome[$b]='' B_detail[$b]=''
	B_start[$b]=$SECONDS B_last[$b]=$SECONDS
}

# One look at boot $1: handle new protocol lines, enforce the timeouts.
# Returns 0 while the boot goes on, 1 when it ended (B_outcome set to
# ok | timeout | boot-timeout | stalled | panic | died, QEMU reaped).
poll_boot() {
	local b=$1 bd=$out/$1 alive=1 total n=${B_nread[$1]} now cur limit line
	kill -0 "${B_pid[$b]}" 2>/dev/null || alive=''
	# complete lines only; a partial last line waits for the next round
	total=$(tr -d '\r' <"$bd/results.log" | grep -c '' || true)
	[[ -n $(tail -c1 "$bd/results.log") ]] && total=$((total - 1))
	if ((total > n)); then
		while IFS='' read -r line; do
			on_line "$b" "$line"
		done < <(tr -d '\r' <"$bd/results.log" | sed -n "$((n + 1)),${total}p")
		B_nread[$b]=$total B_last[$b]=$SECONDS
		n=$total
	fi
	now=$SECONDS cur=${B_cur[$b]}
	if [[ -z $alive ]]; then
		: # QEMU exited (poweroff)
	elif panicked "$bd/console.log"; then
		# let the report reach its trailer
		for _ in 1 2 3 4 5; do
			grep -aq 'end Kernel panic' "$bd/console.log" && break
			sleep 1
		done
		B_outcome[$b]=panic
	elif [[ -n $cur ]]; then
		limit=$((T_timeout[${U_test[$cur]}] * scale))
		if ((now - U_start[$cur] > limit)); then
			B_outcome[$b]=timeout B_detail[$b]="$cur timed out after ${limit}s"
		fi
	elif [[ -n ${B_done[$b]} ]] && ((now - B_last[$b] > 30)); then
		B_outcome[$b]=stalled B_detail[$b]="guest did not power off within 30s after its tests"
	elif ((n == 0 && now - B_start[$b] > 120 * scale)); then
		B_outcome[$b]=boot-timeout B_detail[$b]="guest did not start its tests within $((120 * scale))s"
	elif ((n > 0 && now - B_last[$b] > 60 * scale)); then
		B_outcome[$b]=stalled B_detail[$b]="no progress between tests for $((60 * scale))s"
	fi
	[[ -n $alive && -z ${B_outcome[$b]} ]] && return 0
	end_boot "$b"
	return 1
}

# Did the kernel whose console log is $1 panic?  The first report line
# can be broken up by user output on the same console (a shell's echo
# racing the crash); the trailer cannot, it is printed with every other
# CPU stopped.
panicked() {
	grep -aqE 'Kernel panic - not syncing|end Kernel panic' "$1"
}

# Kill (if still running) and reap QEMU of boot $1, settle its outcome.
end_boot() {
	local b=$1 bd=$out/$1 pid=${B_pid[$1]}
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	B_pid[$b]=''
	if [[ -z ${B_outcome[$b]} ]]; then
		if [[ -n ${B_done[$b]} ]]; then
			B_outcome[$b]=ok
		elif panicked "$bd/console.log"; then
			B_outcome[$b]=panic
		else
			B_outcome[$b]=died
			B_detail[$b]="QEMU exited before the guest finished: $(tail -2 "$bd/qemu.log" | tr '\n' ' ')"
		fi
	fi
	if [[ ${B_outcome[$b]} == panic ]]; then
		local why
		why=$(grep -a -m1 -o 'end Kernel panic - not syncing: [^]]*' "$bd/console.log" | sed 's/^end //; s/ *$//')
		[[ -n $why ]] || why=$(grep -a -m1 -o 'Kernel panic - not syncing.*' "$bd/console.log" | tr -d '\r')
		B_detail[$b]="kernel panic: $why"
	fi
	note "$b: ${B_outcome[$b]} after $((SECONDS - B_start[$b]))s${B_detail[$b]:+ (${B_detail[$b]})}"
}

console_tail() { tail -n "${2:-20}" "$out/$1/console.log" | indent; }

# The last lines unit $2 printed in boot $1 (from its "===" marker on).
unit_tail() {
	tr -d '\r' <"$out/$1/console.log" |
		awk -v m="vfdma-init: === $2: " 'index($0, m) == 1 { on = 1; next } /^vfdma-init: / { on = 0 } on' |
		tail -n 5 | indent
}

# Results of the units of boot $1 that the stream did not already give.
judge() {
	local b=$1 u
	boot_outcome=${B_outcome[$b]} boot_detail=${B_detail[$b]}
	for u in ${B_units[$b]}; do
		if [[ ${T_expect[${U_test[$u]}]} != pass ]]; then
			judge_selftest "$b" "$u"
		else
			judge_unit "$b" "$u"
		fi
	done
}

judge_unit() {
	local b=$1 u=$2 t=${U_test[$2]} st=${U_status[$2]}
	if [[ -z ${U_begun[$u]} ]]; then
		report FAIL "vm/$u" "not run: $boot_outcome${boot_detail:+ ($boot_detail)}"
	elif [[ -z $st ]]; then
		report FAIL "vm/$u" "did not finish: $boot_outcome${boot_detail:+ ($boot_detail)}; last console lines:"
		console_tail "$b"
	elif ((U_nres[$u] == 0)); then
		case $st in
		0) report PASS "vm/$u" ;;
		77) report SKIP "vm/$u" "SKIPPED: exit status 77" ;;
		*)
			report FAIL "vm/$u" "exit status $st; its last output:"
			unit_tail "$b" "$u"
			;;
		esac
	elif ((st != 0 && st != 77 && U_nfail[$u] == 0)); then
		report FAIL "vm/$u" "exit status $st after $((U_nres[$u])) result lines without a FAIL; its last output:"
		unit_tail "$b" "$u"
	fi
	if [[ -n ${T_host_check[$t]} ]]; then
		host_check "$b" "$u"
	fi
}

# The runner's own tests: the guest is meant to hang or panic.  PASS only
# if the runner noticed (the boot ended with that outcome while the test
# was running) and its ordinary judgement of the test, run here in a
# subshell so that it counts nothing, is a FAIL with the console tail.
judge_selftest() {
	local b=$1 u=$2 want=${T_expect[${U_test[$2]}]} got=$boot_outcome verdict
	verdict=$(judge_unit "$b" "$u")
	if [[ -z ${U_begun[$u]} ]]; then
		report FAIL "vm/$u" "runner self-test did not start in the guest ($got${boot_detail:+: $boot_detail})"
		console_tail "$b"
	elif [[ $want != "$got" && ! ($want == hang && $got == timeout) ]]; then
		report FAIL "vm/$u" "runner self-test expected a $want to be detected, got outcome '$got'${boot_detail:+ ($boot_detail)}"
		console_tail "$b"
	elif [[ $verdict != "FAIL vm/$u: "* || $verdict != *$'\n    | '* ]]; then
		report FAIL "vm/$u" "the runner detected the $want but did not report a FAIL with the console tail; it said:"
		echo "$verdict" | indent
	else
		report PASS "vm/$u" "runner detected the $want, killed the guest and reported (not counted):"
		echo "$verdict" | head -1 | indent
		echo "$verdict" | tail -n 3
	fi
}

# Run the host-side check of unit $2 on the images of boot $1.
host_check() {
	local b=$1 u=$2 t=${U_test[$2]} bd=$out/$1 i rc=0
	local name="vm/$u/host-check"
	if [[ $boot_outcome == ok && ${U_status[$u]} == 77 ]]; then
		report SKIP "$name" "SKIPPED: the guest part was skipped"
		return
	fi
	if [[ $boot_outcome != ok || ${U_status[$u]} != 0 || ${U_nfail[$u]} != 0 ]]; then
		report FAIL "$name" "not run: the guest part did not pass"
		return
	fi
	local env=(VFDMA_VM_HOSTBIN="$out/bin/host" VFDMA_VM_BACKEND="${U_backend[$u]}") images=()
	for ((i = 0; i < B_nvme[$b]; i++)); do
		env+=("VFDMA_VM_IMAGE$i=$bd/nvme$i.img")
		images+=("$bd/nvme$i.img")
	done
	env+=("VFDMA_VM_IMAGES=${images[*]}")
	(cd "$bd" && env "${env[@]}" bash "$here/tests/${T_host_check[$t]}") >"$bd/host-check-$t.log" 2>&1 || rc=$?
	if ((rc == 0)); then
		report PASS "$name" "$(tail -1 "$bd/host-check-$t.log")"
	else
		report FAIL "$name" "tests/${T_host_check[$t]} exit status $rc:"
		tail -5 "$bd/host-check-$t.log" | indent
	fi
}

rm -rf "$out"/boot[0-9]* # logs and images of the previous run
pending=("${boots[@]}") running=()
while ((${#pending[@]} + ${#running[@]})); do
	while ((${#running[@]} < max_boots && ${#pending[@]})); do
		start_boot "${pending[0]}"
		running+=("${pending[0]}")
		pending=("${pending[@]:1}")
	done
	still=()
	for b in "${running[@]}"; do
		if poll_boot "$b"; then
			still+=("$b")
		else
			judge "$b"
		fi
	done
	running=("${still[@]}")
	sleep 0.2
done

finish
