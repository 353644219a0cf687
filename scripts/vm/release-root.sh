#!/bin/bash
# release-root.sh RELEASE KVER BUILD [PKG...]
#
# Make the Debian RELEASE tree (scripts/release-tree.sh) ready to be the kernel
# tier's guest root (run-guest.sh --root) and print its path:
#   1. the tree has linux-headers-KVER and the PKGs (Debian 12 names; where RELEASE
#      renamed a library for the 64-bit time_t transition, e.g. librrd8 ->
#      librrd8t64 in Debian 13, its new name is used): packages are only added;
#   2. the plugin is built inside the tree (RELEASE's gcc and collectd-dev) as
#      BUILD/stap.so, by this repository's Makefile run there (make BUILD=BUILD),
#      so the guest loads a plugin built for its own collectd.
# Progress goes to stderr; the tree's path is the last line on stdout.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/vm/common.sh
. "$here/common.sh"
top=$(cd "$here/../.." && pwd -P)
rt=$top/scripts/release-tree.sh

[ $# -ge 3 ] || vm_die "usage: ${0##*/} RELEASE KVER BUILD [PKG...]"
rel=$1 kver=$2 build=$3
shift 3
vm_check_kver "$kver"
case "$build" in /*) ;; *) build=$top/$build ;; esac
case "$build" in "$top"/*) ;; *) vm_die "BUILD ($build) must be inside the repository ($top)" ;; esac

tree=$(bash "$rt" ensure "$rel" --kver "$kver" | tail -n 1)
[ -d "$tree" ] || vm_die "release-tree.sh ensure $rel printed no tree"

# Debian 12 package names -> RELEASE's (the t64 renames), from the tree's own index.
lists=("$tree"/var/lib/apt/lists/*_Packages)
pkgs=()
for p in "$@"; do
	if ! grep -qx "Package: $p" "${lists[@]}" 2>/dev/null &&
		grep -qx "Package: ${p}t64" "${lists[@]}" 2>/dev/null; then
		p=${p}t64
	fi
	pkgs+=("$p")
done
[ ${#pkgs[@]} = 0 ] || tree=$(bash "$rt" ensure "$rel" --kver "$kver" "${pkgs[@]}" | tail -n 1)

rel_build=${build#"$top"/}
vm_log "plugin for $rel: make $rel_build/stap.so in the $rel tree"
bash "$rt" run "$rel" --bind "$top" -- \
	make -C "$top" --no-print-directory BUILD="$rel_build" "$rel_build/stap.so" >&2 ||
	vm_die "building the plugin in the $rel tree failed"
printf '%s\n' "$tree"
