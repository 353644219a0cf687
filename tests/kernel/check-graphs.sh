#!/bin/bash
# After the VM run (host side): `make graphs` from the operator scenario's RRD
# files must give valid PNGs with data in them: retransmits (with the
# threshold line), per-device throughput, handshake latency, drops by reason,
# each with a largest value above 0 and the PNG signature.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
rrd=${1:?usage: check-graphs.sh RRDDIR OUTDIR}
out=${2:?usage: check-graphs.sh RRDDIR OUTDIR}
. "$top/tests/assert.sh"
rm -rf "$out"
if ! res=$(bash "$top/scripts/graphs.sh" "$rrd" "$out" 2>&1); then
  bad "graphs.sh failed: $res"
fi
echo "$res"
for png in "$out"/*.png; do
  [ -e "$png" ] || continue
  if [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ "$(stat -c %s "$png")" -gt 2000 ]; then
    ok "$(basename "$png") is a PNG of $(stat -c %s "$png") bytes"
  else
    bad "$(basename "$png") is not a valid PNG"
  fi
done
for g in retransmits throughput connect-latency drops; do
  max=$(sed -n "s/^$g: max=\([0-9.]*\).*/\1/p" <<<"$res")
  if awk -v m="${max:-0}" 'BEGIN{exit !(m > 0)}'; then
    ok "$g.png has data (max ${max})"
  else
    bad "$g.png has no data (max '${max:-none}')"
  fi
done
summary
