#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# bench/guest.sh [--smoke] [--reps N] [--only REGEX] [--dir DIR]
#
# Runs inside the tools/vm guest (started by bench/run): every workload for
# every peer, REPS times, the repetitions outermost so that the peers of one
# cell run side by side in time. Prints, for bench/run to collect:
#
#   INFO key=value ...      the machine, kernel, filesystem
#   RESULT ... rep=R        one cell (from build/bench/aiofbench)
#   NA w=... peer=...       the peer does not apply (or is not built yet)
#   FAIL w=... peer=... ... a cell that failed, with the reason
#   FIO engine=... rate=... fio's commits/s (writes/s with fsync=1)
#   # ...                   progress
#   END cells=N failed=M
#
# Exit status: 0 if no cell failed.
#
# It also runs on a host for development (--dir on any filesystem), where
# the aiofsync peers fail for want of /dev/aiofsync unless --only excludes
# them; the module is only ever loaded inside QEMU, by tools/vm.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
top=$(dirname "$here")
bin=$top/build/bench/aiofbench
binlib=$top/build/bench/aiofbench-lib
lib=$top/userlib/libaiofsync.so

smoke=0 reps=3 only= dir=/mnt/scratch/bench
while [ $# -gt 0 ]; do
	case $1 in
	--smoke) smoke=1; shift ;;
	--reps) reps=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	*) echo "guest.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

if [ $smoke -eq 1 ]; then
	# Tiny: one value per workload, short runs; the point is that every
	# peer still runs and gives a valid result.
	reps=1 secs=0.3 secs4=0.2 fiosecs=1
	w1_F=(4) w1_Q=(1 4) w2_T=(4) w4_N=(100) w4_M=(1)
else
	secs=1 secs4=1 fiosecs=3
	w1_F=(1 4 16 64) w1_Q=(1 4) w2_T=(1 4 16 64) w4_N=(1 100 1000 10000) w4_M=(1 1000)
fi
peers=(plain glibc libaio uring-link uring-drain aiofsync aiofsync-lib aiofsync-libaio)

mkdir -p "$dir" || exit 1
dev=$(findmnt -n -o SOURCE --target "$dir" 2>/dev/null)
echo "INFO kernel=$(uname -r) fs=$(findmnt -n -o FSTYPE --target "$dir") dev=${dev:-?}" \
	"opts=$(findmnt -n -o OPTIONS --target "$dir" | tr ' ' _)" \
	"cpus=$(nproc) mem_mb=$(($(awk '/MemTotal/ { print $2 }' /proc/meminfo) / 1024))" \
	"hz=$(getconf CLK_TCK) reps=$reps secs=$secs smoke=$smoke"
echo "INFO cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo | tr ' ' _)" \
	"virt=$(systemd-detect-virt 2>/dev/null || echo ?)" \
	"flags_hypervisor=$(grep -qw hypervisor /proc/cpuinfo && echo yes || echo no)"

cells=0 failed=0

# Under TCG every fork+exec costs a fifth of a second: a cell runs one
# process (aiofbench, which also does the sync(2) that starts each cell from
# a quiet filesystem); everything else here is a bash builtin.
errf=/tmp/aiofbench.err

# ms_since T0 VAR: milliseconds since T0 (microseconds, from EPOCHREALTIME).
ms_since() { local t=${EPOCHREALTIME/./}; printf -v "$2" '%d' $(((t - $1) / 1000)); }

# joined FILE VAR: the file's lines joined by blanks, cut to 600 characters.
joined() {
	local l all=
	while IFS= read -r l; do all+="$l "; done <"$1"
	printf -v "$2" '%s' "${all:0:600}"
}

# cell REP W PEER PARAMS...: one run of aiofbench, its line tagged with REP.
cell() {
	local rep=$1 w=$2 peer=$3 b=$bin out rc t0 msg ms
	shift 3
	if [ -n "$only" ] && ! [[ "w$w $peer $*" =~ $only ]]; then
		return 0
	fi
	if [[ $peer == aiofsync-lib* ]]; then
		if [ ! -x "$binlib" ]; then
			echo "NA w=w$w peer=$peer $* reason=libaiofsync_not_built"
			return 0
		fi
		b=$binlib
	fi
	cells=$((cells + 1))
	t0=${EPOCHREALTIME/./}
	out=$("$b" -w "$w" -p "$peer" -d "$dir" "$@" 2>"$errf")
	rc=$?
	if [ $rc -eq 0 ] && [[ $out =~ ^RESULT.*\ rate=([^ ]*) ]]; then
		echo "$out rep=$rep"
		ms_since "$t0" ms
		echo "# w$w $peer $* rep $rep: ${BASH_REMATCH[1]}/s ($ms ms)" >&2
	elif [ $rc -eq 3 ]; then
		joined "$errf" msg
		echo "NA w=w$w peer=$peer $* reason=${msg// /_}"
	else
		failed=$((failed + 1))
		joined "$errf" msg
		echo "FAIL w=w$w peer=$peer $* rep=$rep rc=$rc: $msg"
	fi
}

# mflushes VAR: the device's flush count (empty without the module).
mflushes() {
	local v=
	[ -r /sys/class/misc/aiofsync/stats/flushes ] &&
		read -r v </sys/class/misc/aiofsync/stats/flushes
	printf -v "$1" '%s' "$v"
}

# fio: --fsync=1 through its posixaio engine (glibc, and the library
# preloaded), and its libaio and io_uring engines for reference.
fio_cell() {
	local rep=$1 name=$2 engine=$3 pre=$4 out rc t0 ms before after
	if [ -n "$only" ] && ! [[ "fio $name" =~ $only ]]; then
		return 0
	fi
	if [ -n "$pre" ] && [ ! -e "$pre" ]; then
		echo "NA w=fio peer=$name reason=libaiofsync_not_built"
		return 0
	fi
	command -v fio >/dev/null || { echo "NA w=fio peer=$name reason=no_fio"; return 0; }
	cells=$((cells + 1))
	sync
	mflushes before
	t0=${EPOCHREALTIME/./}
	out=$(env ${pre:+LD_PRELOAD=$pre} fio --name="$name" --directory="$dir" \
		--ioengine="$engine" --rw=write --bs=4k --size=64m --fsync=1 \
		--iodepth=4 --runtime="$fiosecs" --time_based --unlink=1 \
		--output-format=terse --terse-version=3 2>&1)
	rc=$?
	# Terse version 3: field 49 is the write IOPS, 5 the error.
	local iops err
	iops=$(awk -F';' 'NF > 100 { print $49; exit }' <<<"$out")
	err=$(awk -F';' 'NF > 100 { print $5; exit }' <<<"$out")
	mflushes after
	if [ -n "$pre" ] && [ -n "$before" ] && [ "$after" = "$before" ]; then
		# The library did not reach the device: not the peer it claims.
		failed=$((failed + 1))
		echo "FAIL w=fio peer=$name rep=$rep rc=$rc: no flush went through /dev/aiofsync with LD_PRELOAD=$pre"
	elif [ $rc -eq 0 ] && [ "${err:-1}" = 0 ] && [ -n "$iops" ] && [ "$iops" != 0 ]; then
		echo "FIO peer=$name engine=$engine rate=$iops mflushes=$((${after:-0} - ${before:-0})) rep=$rep"
		ms_since "$t0" ms
		echo "# fio $name rep $rep: $iops/s ($ms ms)" >&2
	else
		failed=$((failed + 1))
		echo "FAIL w=fio peer=$name rep=$rep rc=$rc: $(tr '\n' ' ' <<<"$out" | head -c 600)"
	fi
}

for rep in $(seq "$reps"); do
	echo "# repetition $rep of $reps" >&2
	for Q in "${w1_Q[@]}"; do
		for F in "${w1_F[@]}"; do
			for p in "${peers[@]}"; do cell "$rep" 1 "$p" -f "$F" -q "$Q" -k 4 -s "$secs"; done
		done
	done
	for T in "${w2_T[@]}"; do
		for p in "${peers[@]}"; do cell "$rep" 2 "$p" -t "$T" -s "$secs"; done
	done
	for p in "${peers[@]}"; do cell "$rep" 3 "$p" -f 16 -s "$secs"; done
	for M in "${w4_M[@]}"; do
		for N in "${w4_N[@]}"; do
			for p in "${peers[@]}"; do cell "$rep" 4 "$p" -n "$N" -f "$M" -s "$secs4"; done
		done
	done
	fio_cell "$rep" glibc posixaio ""
	fio_cell "$rep" aiofsync-lib posixaio "$lib"
	fio_cell "$rep" libaio libaio ""
	fio_cell "$rep" io_uring io_uring ""
done
rm -rf "$dir"
echo "END cells=$cells failed=$failed"
[ $failed -eq 0 ]
