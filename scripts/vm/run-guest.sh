#!/bin/bash
# run-guest.sh [--kver KVER] [--results DIR] [--timeout SEC] [--cpus N] [--append ARGS] [--root DIR [--share DIR]...] [--env NAME=VALUE]... SCRIPT [ARGS...]
#
# Boot Debian's kernel KVER under qemu (TCG; KVM does not work here) with this
# machine's root filesystem (or --root DIR) as the guest's root (9p, read-only, with a tmpfs
# overlay so the guest can write anywhere; writes are lost at power-off), run
#   bash SCRIPT ARGS...
# as root inside it, power off, and exit with SCRIPT's exit status.
#
#   --kver KVER     kernel ABI version (default: what Debian's linux-image-amd64
#                   depends on now, see fetch-kernel.sh); fetched and cached on
#                   first use, with the initramfs (mkinitrd.sh).
#   --results DIR   host directory shared writable with the guest as /results
#                   (default: a new directory under ${TMPDIR:-/tmp}). Created if
#                   missing. Afterwards it holds, besides what SCRIPT wrote:
#                     console.log   the serial console (kernel, init, SCRIPT's
#                                   stdout and stderr), also shown live
#                     rc            SCRIPT's exit status, written by the guest
#                     guest-times   guest uptime when SCRIPT started and ended
#                     times         host-side timings of this run
#                     .guest/       how SCRIPT is called (args, cwd)
#   --timeout SEC   kill qemu after SEC seconds of wall time (default 600).
#   --cpus N        vCPUs (default 2, or VM_CPUS); the stress tier boots with 4.
#   --append ARGS   extra kernel command line words (e.g. nokaslr).
#   --root DIR      the guest's root filesystem is DIR instead of this machine's /
#                   (e.g. a Debian 13 tree from scripts/release-tree.sh, so collectd,
#                   staprun and every tool are that release's). Shared at the same paths
#                   as with the default root, each with its own tmpfs overlay: this
#                   repository, the guest kernel's module tree, SCRIPT's directory, the
#                   current directory and every --share DIR. If DIR.lock exists (the
#                   release-tree.sh convention), a shared flock on it is held while the VM
#                   runs, so the tree is not upgraded under the guest.
#   --share DIR     with --root: also show this host directory at the same path.
#   --env NAME=VALUE  put NAME=VALUE into SCRIPT's environment (repeatable).
#
# Passing arguments: ARGS are written NUL-separated to DIR/.guest/args and the
# host's current directory to DIR/.guest/cwd; the guest's init reads both, so
# any bytes except NUL survive. SCRIPT itself is named on the kernel command
# line (guest_script=PATH); its absolute host path is used, which must not
# contain white space. The guest sees the host's files at the same paths,
# except under /run, /dev, /proc and /sys (fresh mounts in the guest): a
# SCRIPT there is copied into DIR/.guest/ and run from /results/.guest/, and a
# current directory there falls back to /.
#
# The host root is mounted with cache=loose (much faster under TCG): a host
# file changed while the guest runs may look stale to it. /results is not
# cached: what the guest writes there is on the host at once.
#
# In the guest: stdin is /dev/null; environment is PATH, HOME=/root, TERM=dumb,
# LANG=C.UTF-8, GUEST_RESULTS=/results, GUEST_KVER=KVER; lo is up; debugfs and
# tracefs are mounted; /lib/modules/KVER is the guest kernel's module tree.
#
# Exit status: SCRIPT's, or 124 if the timeout hit, or 125 if the guest
# wrote no DIR/rc (setup failed or the guest crashed; read DIR/console.log),
# or 2 for a usage error.
#
# Only one VM runs at a time on this machine: a second run-guest.sh waits for
# the first (flock on the kernel cache's vm.lock).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/vm/common.sh
. "$here/common.sh"

usage() {
	sed -n '2p' "${BASH_SOURCE[0]}" | sed 's/^# /usage: /' >&2
	exit 2
}

kver='' results='' timeout=600 append='' cpus=${VM_CPUS:-2} root='' shares=() envs=()
while [ $# -gt 0 ]; do
	case "$1" in
	--kver) [ $# -ge 2 ] || usage; kver=$2; shift 2 ;;
	--kver=*) kver=${1#*=}; shift ;;
	--results) [ $# -ge 2 ] || usage; results=$2; shift 2 ;;
	--results=*) results=${1#*=}; shift ;;
	--timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
	--timeout=*) timeout=${1#*=}; shift ;;
	--cpus) [ $# -ge 2 ] || usage; cpus=$2; shift 2 ;;
	--append) [ $# -ge 2 ] || usage; append=$2; shift 2 ;;
	--append=*) append=${1#*=}; shift ;;
	--root) [ $# -ge 2 ] || usage; root=$2; shift 2 ;;
	--root=*) root=${1#*=}; shift ;;
	--share) [ $# -ge 2 ] || usage; shares+=("$2"); shift 2 ;;
	--share=*) shares+=("${1#*=}"); shift ;;
	--env) [ $# -ge 2 ] || usage; envs+=("$2"); shift 2 ;;
	--env=*) envs+=("${1#*=}"); shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	--) shift; break ;;
	-*) vm_log "unknown option $1"; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
case "$timeout" in '' | *[!0-9]* | 0) vm_log "--timeout wants a whole number of seconds > 0, not '$timeout'"; usage ;; esac

for e in "${envs[@]}"; do
	[[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { vm_log "--env wants NAME=VALUE, not '$e'"; usage; }
done
if [ -n "$root" ]; then
	root=$(realpath -e -- "$root" 2>/dev/null) || vm_die "--root '$root' not found"
	[ -x "$root/bin/bash" ] || [ -x "$root/usr/bin/bash" ] || vm_die "--root $root has no bin/bash: not a root filesystem"
	[ "$root" != / ] || root=''
fi
[ ${#shares[@]} = 0 ] || [ -n "$root" ] || vm_die "--share needs --root (the default root shows every host path)"

script=$(realpath -e -- "$1" 2>/dev/null) || vm_die "guest script '$1' not found"
[ -f "$script" ] || vm_die "guest script '$1' is not a regular file"
shift

KVER=$(vm_resolve_kver "$kver")
vm_check_kver "$KVER"

if [ -z "$results" ]; then
	results=$(mktemp -d "${TMPDIR:-/tmp}/collectd-stap-vm.XXXXXX")
fi
mkdir -p "$results"
results=$(realpath -e -- "$results")
rm -rf "$results/.guest"
rm -f "$results/rc" "$results/console.log" "$results/guest-times" "$results/times"
mkdir -p "$results/.guest"

# Where the guest finds SCRIPT.
case "$script" in
/run/* | /dev/* | /proc/* | /sys/*)
	cp "$script" "$results/.guest/${script##*/}"
	vm_log "$script is hidden in the guest (fresh /run etc.); running a copy from /results/.guest/"
	gscript=/results/.guest/${script##*/}
	;;
*) gscript=$script ;;
esac
case "$gscript" in *[[:space:]]*) vm_die "guest script path '$gscript' contains white space (it goes on the kernel command line)" ;; esac

if [ $# -gt 0 ]; then printf '%s\0' "$@"; fi >"$results/.guest/args"
if [ ${#envs[@]} -gt 0 ]; then printf '%s\0' "${envs[@]}"; fi >"$results/.guest/env"
printf '%s' "$PWD" >"$results/.guest/cwd"

kdir=$("$here/fetch-kernel.sh" "$KVER")
initrd=$("$here/mkinitrd.sh" "$KVER")
if [ -s "$kdir/vmlinux" ]; then kimg=$kdir/vmlinux; else kimg=$kdir/bzImage; fi

command -v qemu-system-x86_64 >/dev/null || vm_die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"

# qemu option values escape a comma by doubling it.
qesc() { printf '%s' "${1//,/,,}"; }

# With --root: the host directories the guest sees at the same paths (each a 9p share
# "shareN", overlaid writable in the guest; named on the kernel command line as guest_shares=).
share_args=() share_list=''
if [ -n "$root" ]; then
	top=$(cd "$here/../.." && pwd -P)
	want=("$top" "$kdir/root/lib/modules/$KVER" "$(dirname "$gscript")" "$PWD" "${shares[@]}")
	n=0
	for d in "${want[@]}"; do
		case "$d" in /results | /results/* | /run/* | /dev/* | /proc/* | /sys/*) continue ;; esac
		# Absolute but with symlinks kept: the guest must see the path as named
		# (the kernel cache's root/lib is a link to usr/lib).
		d=$(realpath -e -s -- "$d" 2>/dev/null) || vm_die "share '$d' not found"
		[ -d "$d" ] && [ "$d" != / ] || continue
		case "$d" in *[[:space:],]*) vm_die "share path '$d' contains white space or a comma (it goes on the kernel command line)" ;; esac
		# Skip a directory already shared, or under one that is.
		case ",$share_list," in *",$d,"*) continue ;; esac
		covered=0
		for s in ${share_list//,/ }; do case "$d/" in "$s"/*) covered=1 ;; esac; done
		[ "$covered" = 0 ] || continue
		share_list+=${share_list:+,}$d
		share_args+=(-virtfs "local,path=$(qesc "$d"),mount_tag=share$n,security_model=none,readonly=on,multidevs=remap")
		n=$((n + 1))
	done
fi

# shellcheck disable=SC2054 # commas separate qemu sub-options
qemu=(qemu-system-x86_64
	-accel tcg,thread=multi -cpu max -smp "$cpus" -m 2048
	-nographic -no-reboot -nodefaults -serial stdio
	-kernel "$kimg" -initrd "$initrd"
	-append "console=ttyS0 panic=-1 quiet guest_script=$gscript${share_list:+ guest_shares=$share_list}${append:+ $append}"
	-virtfs "local,path=$(qesc "${root:-/}"),mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
	-virtfs "local,path=$(qesc "$results"),mount_tag=results,security_model=none,multidevs=remap"
	"${share_args[@]}"
)

# One VM at a time (2 cores, 2 GB each).
exec 9>"$(vm_cache_root)/vm.lock"
if ! flock -n 9; then
	vm_log "another VM is running; waiting for it to finish"
	flock 9
fi

# A release tree is not refreshed while it is the guest's root (release-tree.sh takes this lock
# exclusively to change it). Taken after the VM lock, so waiting for the VM does not hold it.
if [ -n "$root" ] && [ -f "$root.lock" ]; then
	exec 6<"$root.lock"
	if ! flock -s -n 6; then
		vm_log "$root is being changed (release-tree.sh); waiting for it"
		flock -s 6
	fi
fi

vm_log "booting $KVER (${kimg##*/}, $cpus vCPUs)${root:+ with root $root (shares: $share_list)}, guest script $gscript, results in $results, timeout ${timeout}s"
t0=$(date +%s.%N)
set +e
# stdin from /dev/null: qemu must not take over a terminal. sed drops the
# serial line's carriage returns and the firmware's terminal escapes so
# console.log is plain text.
timeout -k 10 "$timeout" "${qemu[@]}" </dev/null 2>&1 |
	sed -u 's/\r$//; s/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' | tee "$results/console.log"
qrc=${PIPESTATUS[0]}
set -e
t1=$(date +%s.%N)
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

boot=$(awk '$1 == "boot_to_script" { print $2 }' "$results/guest-times" 2>/dev/null || true)
send=$(awk '$1 == "script_end" { print $2 }' "$results/guest-times" 2>/dev/null || true)
{
	printf 'wall %s\n' "$wall"
	[ -z "$boot" ] || printf 'boot_to_script %s\n' "$boot"
	[ -z "$send" ] || printf 'script %s\n' "$(awk -v a="$boot" -v b="$send" 'BEGIN { printf "%.1f", b - a }')"
} >"$results/times"
# crash_report CONSOLE: the kernel's own report of a crash or hang, if the console has one,
# printed here so that a log that keeps only the end of the output (CI's) still shows the cause:
# the first report (Oops, BUG, panic, lockup, OOM) from 5 lines before it, at most 60 lines,
# and the panic line. After a panic SystemTap dumps every loaded module's trace buffers to the
# console, which would otherwise be all the end of the log shows.
crash_report() {
	[ -f "$1" ] || return 0
	local first
	first=$(grep -n -m1 -E 'Kernel panic|BUG:|Oops|general protection fault|kernel BUG|Fatal exception|Out of memory|WARNING: CPU:|stack-protector|soft lockup|hard LOCKUP|rcu_.*stall|blocked for more than' "$1" | cut -d: -f1)
	[ -n "$first" ] || return 0
	vm_log "the guest kernel reported a fault (console.log line $first):"
	sed -n "$((first > 5 ? first - 5 : 1)),$((first + 59))p" "$1" | cut -c1-200 >&2
	local panic
	panic=$(grep -n -m1 'Kernel panic' "$1" | cut -d: -f1)
	if [ -n "$panic" ] && [ "$panic" -gt $((first + 59)) ]; then
		sed -n "${panic}p" "$1" | cut -c1-200 >&2
	fi
}

vm_log "timings (s): $(tr '\n' ' ' <"$results/times")"

if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
	crash_report "$results/console.log"
	vm_log "error: the guest did not finish within ${timeout}s; qemu was killed (see $results/console.log)"
	exit 124
fi
if [ "$qrc" -ne 0 ]; then
	vm_log "warning: qemu exited with status $qrc"
fi
if [ ! -s "$results/rc" ]; then
	crash_report "$results/console.log"
	vm_log "error: the guest wrote no exit status ($results/rc missing): its setup failed or it crashed; see $results/console.log"
	exit 125
fi
rc=$(cat "$results/rc")
case "$rc" in '' | *[!0-9]*) vm_die "bad exit status '$rc' in $results/rc" ;; esac
vm_log "guest script exited with status $rc (results in $results)"
exit "$rc"
