#!/bin/bash
# fetch-kernel.sh [KVER]
#
# Download Debian's linux-image-KVER package into a stable cache and prepare it
# for booting under qemu (see scripts/vm/common.sh for the cache layout):
#   - KVER defaults to the ABI version linux-image-amd64 currently depends on;
#   - apt-get download, dpkg -x into CACHE/KVER/root, depmod -b (the .deb ships
#     no modules.dep); a kernel of another Debian release than the host's (not in
#     the host's index, e.g. trixie's 6.12) is downloaded inside that release's
#     tree (scripts/release-tree.sh ensure/run);
#   - cut the xz- (Debian 12) or zstd-compressed (Debian 13) payload out of vmlinuz
#     and decompress it to CACHE/KVER/vmlinux (boots ~2x faster than the bzImage);
#     if that fails the bzImage is kept as CACHE/KVER/bzImage instead.
# Idempotent: with the cache complete it only prints where things are.
# Prints the cache directory on stdout (last line); progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/vm/common.sh
. "$here/common.sh"

[ $# -le 1 ] || vm_die "usage: ${0##*/} [KVER]"
KVER=$(vm_resolve_kver "${1:-}")
vm_check_kver "$KVER"
root=$(vm_cache_root)
dir=$root/$KVER
mkdir -p "$root"

# One fetcher per KVER at a time (run-guest.sh may be started twice).
exec 9>"$root/$KVER.lock"
flock 9

complete() {
	[ -f "$dir/root/lib/modules/$KVER/modules.dep" ] &&
		[ -f "$dir/root/boot/vmlinuz-$KVER" ] &&
		{ [ -s "$dir/vmlinux" ] || [ -s "$dir/bzImage" ]; }
}

if complete; then
	vm_log "kernel $KVER: cached in $dir"
	printf '%s\n' "$dir"
	exit 0
fi
mkdir -p "$dir"

# 1. The package.
find_deb() {
	local d
	for d in "$dir"/linux-image-"$KVER"_*.deb; do
		[ -f "$d" ] && { printf '%s\n' "$d"; return 0; }
	done
	return 0
}
deb=$(find_deb)
if [ -z "$deb" ]; then
	if apt-cache show "linux-image-$KVER" >/dev/null 2>&1; then
		vm_log "kernel $KVER: apt-get download linux-image-$KVER into $dir"
		if ! (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "linux-image-$KVER") >&2; then
			rmdir "$dir" 2>/dev/null || true
			vm_die "apt-get download linux-image-$KVER failed (apt-get update? is $KVER a Debian kernel ABI version?)"
		fi
	else
		# Not in the host's index: another release's kernel, fetched with that release's apt.
		rt=$here/../release-tree.sh
		rel=$(bash "$rt" release-of "$KVER") ||
			{ rmdir "$dir" 2>/dev/null || true; vm_die "no Debian release known here has linux-image-$KVER (apt-get update? is $KVER a Debian kernel ABI version?)"; }
		vm_log "kernel $KVER: from Debian $rel: apt-get download linux-image-$KVER in the $rel tree into $dir"
		bash "$rt" ensure "$rel" >/dev/null
		# shellcheck disable=SC2016
		if ! bash "$rt" run "$rel" --bind "$dir" -- sh -c 'cd "$1" && apt-get download -q -o APT::Sandbox::User=root "linux-image-$2"' sh "$dir" "$KVER" >&2; then
			rmdir "$dir" 2>/dev/null || true
			vm_die "apt-get download linux-image-$KVER in the $rel tree failed"
		fi
	fi
	deb=$(find_deb)
	[ -n "$deb" ] || vm_die "apt-get download left no linux-image-${KVER}_*.deb in $dir"
else
	vm_log "kernel $KVER: using downloaded ${deb##*/}"
fi

# 2. Unpack (into a temporary tree, renamed when complete) and depmod.
if [ ! -f "$dir/root/lib/modules/$KVER/modules.dep" ]; then
	vm_log "kernel $KVER: dpkg -x ${deb##*/}"
	rm -rf "$dir/root" "$dir/root.tmp"
	dpkg -x "$deb" "$dir/root.tmp"
	# Debian has /lib -> usr/lib since bookworm's usrmerge; older
	# packages ship lib/modules. Use whichever exists.
	if [ ! -d "$dir/root.tmp/lib/modules/$KVER" ] && [ -d "$dir/root.tmp/usr/lib/modules/$KVER" ]; then
		ln -s usr/lib "$dir/root.tmp/lib"
	fi
	[ -d "$dir/root.tmp/lib/modules/$KVER" ] || vm_die "${deb##*/} has no lib/modules/$KVER"
	vm_log "kernel $KVER: depmod -b $dir/root $KVER"
	depmod -b "$dir/root.tmp" "$KVER"
	mv "$dir/root.tmp" "$dir/root"
fi

# 3. An uncompressed vmlinux.
vmlinuz=$dir/root/boot/vmlinuz-$KVER
[ -f "$vmlinuz" ] || vm_die "${deb##*/} has no boot/vmlinuz-$KVER"
is_elf() { [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }
if [ ! -s "$dir/vmlinux" ] && [ ! -s "$dir/bzImage" ]; then
	# Byte offsets of the xz stream header magic FD 37 7A 58 5A 00, then of the
	# zstd frame magic 28 B5 2F FD (Debian 13 compresses its kernel with zstd).
	for fmt in xz zstd; do
		command -v "$fmt" >/dev/null || continue
		vm_log "kernel $KVER: extracting vmlinux from ${vmlinuz##*/} ($fmt payload)"
		case $fmt in
		xz) offsets=$(LC_ALL=C grep -obUaP '\xFD7zXZ\x00' "$vmlinuz" | cut -d: -f1 || true) ;;
		zstd) offsets=$(LC_ALL=C grep -obUaP '\x28\xB5\x2F\xFD' "$vmlinuz" | cut -d: -f1 || true) ;;
		esac
		for off in $offsets; do
			rm -f "$dir/vmlinux.tmp"
			case $fmt in
			xz) tail -c +"$((off + 1))" "$vmlinuz" | xz -dc --single-stream >"$dir/vmlinux.tmp" 2>/dev/null || true ;;
			zstd) tail -c +"$((off + 1))" "$vmlinuz" | zstd -qdc >"$dir/vmlinux.tmp" 2>/dev/null || true ;;
			esac
			if [ -s "$dir/vmlinux.tmp" ] && is_elf "$dir/vmlinux.tmp"; then
				mv "$dir/vmlinux.tmp" "$dir/vmlinux"
				vm_log "kernel $KVER: vmlinux from offset $off ($(stat -c %s "$dir/vmlinux") bytes)"
				break 2
			fi
		done
	done
	rm -f "$dir/vmlinux.tmp"
	if [ ! -s "$dir/vmlinux" ]; then
		vm_log "kernel $KVER: no xz- or zstd-compressed ELF found in ${vmlinuz##*/}; falling back to the bzImage (slower boot)"
		cp "$vmlinuz" "$dir/bzImage"
	fi
fi

complete || vm_die "kernel $KVER: cache in $dir is still incomplete"
vm_log "kernel $KVER: ready in $dir"
printf '%s\n' "$dir"
