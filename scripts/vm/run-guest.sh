#!/bin/bash
# run-guest.sh [--kver KVER] [--results DIR] [--timeout SEC] [--cpus N] [--append ARGS] SCRIPT [ARGS...]
#
# Boot Debian's kernel KVER under qemu (TCG; KVM does not work here) with this
# machine's root filesystem as the guest's root (9p, read-only, with a tmpfs
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

kver='' results='' timeout=600 append='' cpus=${VM_CPUS:-2}
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
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	--) shift; break ;;
	-*) vm_log "unknown option $1"; usage ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || usage
case "$timeout" in '' | *[!0-9]* | 0) vm_log "--timeout wants a whole number of seconds > 0, not '$timeout'"; usage ;; esac

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
printf '%s' "$PWD" >"$results/.guest/cwd"

kdir=$("$here/fetch-kernel.sh" "$KVER")
initrd=$("$here/mkinitrd.sh" "$KVER")
if [ -s "$kdir/vmlinux" ]; then kimg=$kdir/vmlinux; else kimg=$kdir/bzImage; fi

command -v qemu-system-x86_64 >/dev/null || vm_die "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"

# qemu option values escape a comma by doubling it.
qesc() { printf '%s' "${1//,/,,}"; }

# shellcheck disable=SC2054 # commas separate qemu sub-options
qemu=(qemu-system-x86_64
	-accel tcg,thread=multi -cpu max -smp "$cpus" -m 2048
	-nographic -no-reboot -nodefaults -serial stdio
	-kernel "$kimg" -initrd "$initrd"
	-append "console=ttyS0 panic=-1 quiet guest_script=$gscript${append:+ $append}"
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$(qesc "$results"),mount_tag=results,security_model=none,multidevs=remap"
)

# One VM at a time (2 cores, 2 GB each).
exec 9>"$(vm_cache_root)/vm.lock"
if ! flock -n 9; then
	vm_log "another VM is running; waiting for it to finish"
	flock 9
fi

vm_log "booting $KVER (${kimg##*/}, $cpus vCPUs), guest script $gscript, results in $results, timeout ${timeout}s"
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
vm_log "timings (s): $(tr '\n' ' ' <"$results/times")"

if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
	vm_log "error: the guest did not finish within ${timeout}s; qemu was killed (see $results/console.log)"
	exit 124
fi
if [ "$qrc" -ne 0 ]; then
	vm_log "warning: qemu exited with status $qrc"
fi
if [ ! -s "$results/rc" ]; then
	vm_log "error: the guest wrote no exit status ($results/rc missing): its setup failed or it crashed; see $results/console.log"
	exit 125
fi
rc=$(cat "$results/rc")
case "$rc" in '' | *[!0-9]*) vm_die "bad exit status '$rc' in $results/rc" ;; esac
vm_log "guest script exited with status $rc (results in $results)"
exit "$rc"
