# shellcheck shell=bash
# Shared helpers for scripts/vm/*.sh (sourced, not executed).
#
# Kernel cache layout, one directory per kernel ABI version (KVER):
#   ${XDG_CACHE_HOME:-$HOME/.cache}/collectd-stap/kernel/KVER/
#     linux-image-KVER_*.deb    the downloaded package
#     root/                     dpkg -x of it, with modules.dep from depmod
#     vmlinux                   uncompressed kernel (preferred, boots faster)
#     bzImage                   only if vmlinux could not be extracted
#     initrd.img, initrd.sum    busybox initramfs, and the checksum of what built it
#   ...kernel/KVER.lock         flock(1) lock serialising fetch/build for KVER

vm_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
vm_die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

vm_cache_root() {
	printf '%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}/collectd-stap/kernel"
}

# vm_resolve_kver [KVER]: print KVER, or if empty the ABI version of the
# kernel Debian's linux-image-amd64 metapackage currently depends on. A
# release name (bookworm, trixie) gives that release's linux-image-amd64 ABI,
# from its archive (scripts/release-tree.sh kver).
vm_resolve_kver() {
	case "${1:-}" in
	[a-z]*)
		bash "$(dirname "${BASH_SOURCE[0]}")/../release-tree.sh" kver "$1" ||
			vm_die "cannot resolve the kernel of Debian release '$1'"
		return 0
		;;
	esac
	if [ -n "${1:-}" ]; then
		printf '%s\n' "$1"
		return 0
	fi
	local k
	k=$(LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: <\{0,1\}linux-image-\([0-9][^ >]*\)>\{0,1\}$/\1/p' |
		head -n 1)
	[ -n "$k" ] || vm_die "cannot resolve the kernel version: 'apt-cache depends linux-image-amd64' names no linux-image-VERSION (run apt-get update, or pass KVER)"
	printf '%s\n' "$k"
}

# vm_check_kver KVER: refuse anything that is not a plain version string
# (it ends up in paths and on the kernel command line).
vm_check_kver() {
	case "$1" in
	'' | *[!A-Za-z0-9._+-]* | [!0-9]*) vm_die "bad kernel version '$1'" ;;
	esac
}
