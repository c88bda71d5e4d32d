# SPDX-License-Identifier: GPL-2.0
#
# Shared by the tools/ scripts (sourced, not run): where things live, which
# kernel a name like "6.1" means, and what counts as a kernel report.

# The checkout's real path: the guest sees the host's root at the same paths,
# so every path handed to the guest must be a real (symlink-free) one.
AIOFSYNC_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
AIOFSYNC_BUILD=$AIOFSYNC_REPO/build
# Things that outlive a checkout (the debug kernel, extracted sources).
AIOFSYNC_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/aiofsync

# The version string of a bzImage, read from its setup header (the
# kernel_version field at 0x20e points at it, relative to 0x200), so that a
# kernel given by path can be matched with its /lib/modules/<release>.
bzimage_release() {
	local off v
	off=$(od -An -tu2 -j $((0x20e)) -N2 "$1" | tr -d ' ')
	[ -n "$off" ] && [ "$off" -gt 0 ] || return 1
	# dd reads just what it needs: no SIGPIPE to trip pipefail.
	v=$(dd if="$1" bs=1 skip=$((off + 0x200)) count=256 2>/dev/null | tr '\0' '\n')
	v=${v%%$'\n'*}
	v=${v%% *}
	[ -n "$v" ] && echo "$v"
}

# resolve_kernel SPEC: SPEC is a series (6.1, 6.12: the newest installed
# Debian kernel of it; the ABI number moves, so it is never written down),
# "debug" (tools/debug-kernel, built on first use), a release string
# (6.1.0-56-amd64), or the path of a bzImage. Sets:
#   KREL    kernel release (uname -r in the guest)
#   KIMAGE  the image to boot
#   KBUILD  the tree out-of-tree modules build against ("" if none)
#   KMODS   /lib/modules/<release> on the host ("" if none: debug kernel)
resolve_kernel() {
	local spec=$1 cand
	KREL= KIMAGE= KBUILD= KMODS=
	case $spec in
	debug)
		KBUILD=$("$AIOFSYNC_REPO/tools/debug-kernel") || return 1
		KIMAGE=$KBUILD/arch/x86/boot/bzImage
		KREL=$(cat "$KBUILD/include/config/kernel.release")
		return 0 ;;
	*/*)
		[ -f "$spec" ] || { echo "no such kernel image: $spec" >&2; return 1; }
		KIMAGE=$(realpath "$spec")
		KREL=$(bzimage_release "$KIMAGE") ||
			{ echo "$spec: not a bzImage" >&2; return 1; } ;;
	[0-9]*.[0-9]*)
		if [ -e "/boot/vmlinuz-$spec" ]; then
			KREL=$spec
		else
			# A series: the newest installed image of it.
			cand=$(cd /boot && ls -d vmlinuz-"$spec".*-amd64 2>/dev/null |
				sed 's/^vmlinuz-//' | sort -V | tail -n1)
			[ -n "$cand" ] || {
				echo "no installed kernel for '$spec' (/boot/vmlinuz-$spec.*-amd64)" >&2
				return 1
			}
			KREL=$cand
		fi
		KIMAGE=/boot/vmlinuz-$KREL ;;
	*)
		echo "unknown kernel '$spec' (6.1, 6.12, debug, a release or a bzImage path)" >&2
		return 1 ;;
	esac
	[ -d "/lib/modules/$KREL" ] && KMODS=/lib/modules/$KREL
	[ -e "/lib/modules/$KREL/build/Makefile" ] &&
		KBUILD=$(realpath "/lib/modules/$KREL/build")
	# The debug kernel's bzImage given by path: find its build tree.
	if [ -z "$KBUILD" ]; then
		cand=$(dirname "$(dirname "$(dirname "$(dirname "$KIMAGE")")")")
		[ -e "$cand/include/config/kernel.release" ] &&
			[ "$(cat "$cand/include/config/kernel.release")" = "$KREL" ] &&
			KBUILD=$cand
	fi
	return 0
}

# What in a console log means the kernel found a bug. Boot chatter such as
# "kmemleak: Kernel memory leak detector initialized" must not match, so
# kmemleak is matched by its report lines only.
KREPORT_RE='WARNING:|BUG:|Oops|KASAN|UBSAN|general protection|Call Trace'
KREPORT_RE+='|possible circular locking|possible recursive locking'
KREPORT_RE+='|inconsistent lock state|lock held when returning|hung task'
KREPORT_RE+='|blocked for more than|soft lockup|hard LOCKUP|detected stall'
KREPORT_RE+='|kmemleak: .*suspected memory leak|unreferenced object'
KREPORT_RE+='|Kernel panic|ODEBUG:|list_(add|del) corruption'

# kernel_reports LOG: print the offending lines of LOG (numbered, at most
# 60); succeed if there were any.
kernel_reports() {
	local hits
	# The command line names panic_on_warn and friends: not a report.
	hits=$(tr -d '\r' <"$1" | grep -n -E -- "$KREPORT_RE" |
		grep -v -E '^[0-9]+:(\[[ 0-9.]*\] )?(Kernel )?[Cc]ommand line:') || return 1
	printf '%s\n' "$hits" | head -n 60
	return 0
}

# now_ms: wall clock in milliseconds, for the timings the tools print.
now_ms() { date +%s%3N; }
# secs FROM_MS: elapsed seconds since FROM_MS, one decimal.
secs() { local d=$(($(now_ms) - $1)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
