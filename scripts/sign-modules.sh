#!/bin/bash
# Signs the built modules for kernels that enforce module signatures (Secure
# Boot, module.sig_enforce=1), with the kernel's own sign-file from its build
# tree, so the signature format is the one that kernel checks.
#   scripts/sign-modules.sh KVER KEY CERT
# KVER: the kernel ABI the modules were built for (6.1.0-57-amd64,
# 6.12.118+deb13-amd64). KEY: private key (PEM); CERT: its X.509 certificate
# (DER or PEM), enrolled on the target as a Machine Owner Key (mokutil
# --import CERT.der).
# Signs ${MODULES_OUT:-build/modules}/KVER/collectd_stap_*.ko in place; a
# module that already carries a signature is left alone (sign-file appends, it
# cannot replace).
# sign-file: the host's /usr/src/linux-headers-KVER/scripts/sign-file (a
# kernel of the host's Debian release), else, for a kernel of another release,
# the one in that release's tree (${XDG_CACHE_HOME:-~/.cache}/collectd-stap/
# trees/RELEASE, where `make modules KVER=...' built the modules, see
# scripts/release-tree.sh), run in the tree (chroot, as root) so that it uses
# the tree's own libcrypto (OpenSSL 3.5 in trixie's, 3.0 on a bookworm host).
set -euo pipefail
usage='usage: sign-modules.sh KVER KEY CERT'
kver=${1:?$usage}
key=${2:?$usage}
cert=${3:?$usage}
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${MODULES_OUT:-$top/build/modules}/$kver
release_tree=$top/scripts/release-tree.sh
trees="${XDG_CACHE_HOME:-$HOME/.cache}/collectd-stap/trees"
case "$kver" in
  '' | */* | [!0-9]*) echo "sign-modules: bad KVER '$kver' (a kernel ABI like 6.1.0-57-amd64)" >&2; exit 1 ;;
esac
for f in "$key" "$cert"; do
  [ -r "$f" ] || { echo "sign-modules: cannot read $f" >&2; exit 1; }
done
# Absolute paths: sign-file may run chrooted, with these directories bound at the same path.
key=$(realpath "$key")
cert=$(realpath "$cert")

in_tree=
signer=/usr/src/linux-headers-$kver/scripts/sign-file
if [ ! -x "$signer" ]; then
  # A kernel of another release: its headers are in that release's tree (made by `make modules
  # KVER=...', scripts/release-tree.sh), at the same path.
  for t in "$trees"/*/.collectd-stap-tree; do
    t=$(dirname "$t")
    if [ -x "$t$signer" ]; then
      in_tree=$(basename "$t")
      break
    fi
  done
  if [ -z "$in_tree" ]; then
    echo "sign-modules: $signer not found, on this host nor as $trees/RELEASE$signer in a release" \
      "tree. For a kernel of this host's release: apt-get install linux-headers-$kver; for one of" \
      "another release: make modules KVER=$kver (it builds in that release's tree, with its headers)" >&2
    exit 1
  fi
fi

magic='~Module signature appended~'
shopt -s nullglob
kos=("$dir"/collectd_stap_*.ko)
[ ${#kos[@]} -gt 0 ] || { echo "sign-modules: no modules in $dir (make modules KVER=$kver)" >&2; exit 1; }
dir=$(realpath "$dir")
kos=("$dir"/collectd_stap_*.ko)

# In a tree, the directories of the modules, KEY and CERT are bound into it at the same path; not
# one that would hide what the tree's sign-file runs with (its libraries, /etc/ssl, /dev, ...).
binds=()
if [ -n "$in_tree" ]; then
  for d in "$dir" "$(dirname "$key")" "$(dirname "$cert")"; do
    for n in "/usr/src/linux-headers-$kver" /usr/lib/x86_64-linux-gnu /usr/lib/ssl /lib/x86_64-linux-gnu \
      /usr/bin /usr/share /lib64 /etc/ssl \
      /etc/ld.so.cache /dev /proc /sys; do
      case "$n/" in "${d%/}/"*)
        echo "sign-modules: $d cannot be bound into the $in_tree tree to sign there (it would hide" \
          "the tree's $n): put the modules, KEY and CERT in directories of their own" >&2
        exit 1 ;;
      esac
    done
    case " ${binds[*]} " in *" $d "*) ;; *) binds+=(--bind "$d") ;; esac
  done
fi
sign() {
  if [ -z "$in_tree" ]; then
    "$signer" sha256 "$key" "$cert" "$1"
  else
    bash "$release_tree" run "$in_tree" "${binds[@]}" -- "$signer" sha256 "$key" "$cert" "$1"
  fi
}

[ -z "$in_tree" ] || echo "sign-modules: KVER=$kver is Debian $in_tree's kernel: signing with $signer in the $in_tree tree ($trees/$in_tree)"
for ko in "${kos[@]}"; do
  if tail -c 28 "$ko" | grep -q "$magic"; then
    echo "sign-modules: $ko is already signed (make modules-force rebuilds it unsigned)"
    continue
  fi
  sign "$ko"
  tail -c 28 "$ko" | grep -q "$magic" || { echo "sign-modules: signing $ko failed" >&2; exit 1; }
  echo "sign-modules: signed $ko"
done
