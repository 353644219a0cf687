#!/bin/bash
# Signs the built modules for kernels that enforce module signatures (Secure
# Boot, module.sig_enforce=1), with the kernel's own sign-file from its build
# tree, so the signature format is the one that kernel checks.
#   scripts/sign-modules.sh KVER KEY CERT
# KEY: private key (PEM); CERT: its X.509 certificate (DER or PEM), enrolled
# on the target as a Machine Owner Key (mokutil --import CERT.der).
# Signs build/modules/KVER/collectd_stap_*.ko in place; a module that already
# carries a signature is left alone (sign-file appends, it cannot replace).
set -euo pipefail
kver=${1:?usage: sign-modules.sh KVER KEY CERT}
key=${2:?usage: sign-modules.sh KVER KEY CERT}
cert=${3:?usage: sign-modules.sh KVER KEY CERT}
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${MODULES_OUT:-$top/build/modules}/$kver
signer=/usr/src/linux-headers-$kver/scripts/sign-file
[ -x "$signer" ] || {
  echo "sign-modules: $signer not found: apt-get install linux-headers-$kver" >&2
  exit 1
}
for f in "$key" "$cert"; do
  [ -r "$f" ] || { echo "sign-modules: cannot read $f" >&2; exit 1; }
done
magic='~Module signature appended~'
shopt -s nullglob
kos=("$dir"/collectd_stap_*.ko)
[ ${#kos[@]} -gt 0 ] || { echo "sign-modules: no modules in $dir (make modules KVER=$kver)" >&2; exit 1; }
for ko in "${kos[@]}"; do
  if tail -c 28 "$ko" | grep -q "$magic"; then
    echo "sign-modules: $ko is already signed (make modules-force rebuilds it unsigned)"
    continue
  fi
  "$signer" sha256 "$key" "$cert" "$ko"
  tail -c 28 "$ko" | grep -q "$magic" || { echo "sign-modules: signing $ko failed" >&2; exit 1; }
  echo "sign-modules: signed $ko"
done
