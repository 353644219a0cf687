#!/bin/bash
# Kernel test, group udp (runs inside the VM, see scripts/vm/run-guest.sh):
# the real collectd loads build/stap.so, which loads the prebuilt
# collectd_stap_udp.ko (built with kernel debuginfo) with the real staprun.
# tests/kernel/udp_events.py makes UDP events with known counts over lo: N
# datagrams of known sizes with send/sendto/sendmsg, each read with
# recv/recvfrom/recvmsg; N/10 connect + connect(AF_UNSPEC); N 1000-byte
# datagrams at a receiver with the smallest SO_RCVBUF that never reads.
# Asserts:
#  (a) sendmsg-ipv4 calls and bytes equal what the test sent, and the calls
#      equal Udp OutDatagrams' delta;
#  (b) recvmsg-ipv4 calls and bytes equal what the test read, and the calls
#      equal Udp InDatagrams' delta (the kernel counts InDatagrams when the
#      application reads a datagram, not when it arrives);
#  (e) disconnect equals the test's connect(AF_UNSPEC) count;
#  (d) rcvbuf_errors-ipv4 equals Udp RcvbufErrors' delta, and nearly all
#      blasted datagrams were dropped;
#  (c) after collectd stops, no staprun/stapio and no collectd_stap_* module.
# Tolerance 0 everywhere: the probes sit where the kernel counts, nothing else
# in the guest speaks UDP, and the values were stable for two batches before
# the counters were read again.
. "$(dirname "$0")/../scenario.sh"
kt_require_module udp
ev=$top/tests/kernel/udp_events.py
port=5301
n=600

say "raw module output (staprun alone, 1 s batches, udp_events.py with N=30)"
staprun "$modules/collectd_stap_udp.ko" interval_ms=1000 >"$out/udp-module-output.txt" 2>"$out/udp-module-stderr.txt" &
spid=$!
wait_for 60 grep -q '^end ' "$out/udp-module-output.txt"
python3 "$ev" $((port + 10)) 30 >"$out/raw-events.txt"
sleep 2
kill -INT $spid
wait $spid
sed 's/^/  /' "$out/udp-module-output.txt" | tail -20
sed 's/^/  test: /' "$out/raw-events.txt"
wait_for 30 no_module

kt_collectd_conf udp
csvdir=$csv/stap-udp
c() { kt_last "$csvdir/$1"; }
o0=$(snmp_counter Udp OutDatagrams); i0=$(snmp_counter Udp InDatagrams); r0=$(snmp_counter Udp RcvbufErrors)
kt_collectd_start "$csvdir/operations-sendmsg-ipv4" || { kt_done; exit 1; }

say "udp_events.py N=$n"
python3 "$ev" $port $n | tee "$out/events.txt"
ev_get() { awk -F= -v k="$1" '$1 == k { print $2 }' "$out/events.txt"; }
stable() {
  local a b
  a=$(c operations-sendmsg-ipv4)/$(c protocol_counter-rcvbuf_errors-ipv4)
  sleep 2.5
  b=$(c operations-sendmsg-ipv4)/$(c protocol_counter-rcvbuf_errors-ipv4)
  [ "$a" = "$b" ] && [ "${a%/*}" -ge "$(ev_get sendmsg_calls)" ]
}
wait_for 60 stable
o1=$(snmp_counter Udp OutDatagrams); i1=$(snmp_counter Udp InDatagrams); r1=$(snmp_counter Udp RcvbufErrors)
declare -A v
for k in operations-sendmsg-ipv4 total_bytes-sendmsg-ipv4 operations-sendmsg_errors-ipv4 \
  operations-recvmsg-ipv4 total_bytes-recvmsg-ipv4 operations-recvmsg_errors-ipv4 \
  operations-disconnect protocol_counter-rcvbuf_errors-ipv4 protocol_counter-mem_errors-ipv4 \
  operations-sendmsg-ipv6 operations-recvmsg-ipv6; do
  v[$k]=$(c $k)
done
kt_collectd_stop udp

{
  for k in "${!v[@]}"; do echo "plugin $k = ${v[$k]}"; done | sort
  echo "test: $(tr '\n' ' ' <"$out/events.txt")"
  echo "Udp OutDatagrams delta $((o1 - o0)) ($o0 -> $o1)"
  echo "Udp InDatagrams delta  $((i1 - i0)) ($i0 -> $i1)"
  echo "Udp RcvbufErrors delta $((r1 - r0)) ($r0 -> $r1)"
} | tee "$out/measurements.txt"

eq() { check "$1: plugin $2 = expected $3" [ "${2:-x}" = "$3" ]; }
eq "(a) sendmsg-ipv4 calls = test's sends" "${v[operations-sendmsg-ipv4]}" "$(ev_get sendmsg_calls)"
eq "(a) sendmsg-ipv4 calls = Udp OutDatagrams delta" "${v[operations-sendmsg-ipv4]}" $((o1 - o0))
eq "(a) sendmsg-ipv4 bytes = test's bytes" "${v[total_bytes-sendmsg-ipv4]}" "$(ev_get sendmsg_bytes)"
eq "(a) sendmsg errors" "${v[operations-sendmsg_errors-ipv4]}" 0
eq "(b) recvmsg-ipv4 calls = test's reads" "${v[operations-recvmsg-ipv4]}" "$(ev_get recvmsg_calls)"
eq "(b) recvmsg-ipv4 calls = Udp InDatagrams delta" "${v[operations-recvmsg-ipv4]}" $((i1 - i0))
eq "(b) recvmsg-ipv4 bytes = test's bytes read" "${v[total_bytes-recvmsg-ipv4]}" "$(ev_get recvmsg_bytes)"
eq "(e) disconnect = test's connect(AF_UNSPEC)" "${v[operations-disconnect]}" "$(ev_get disconnects)"
eq "(d) rcvbuf_errors-ipv4 = Udp RcvbufErrors delta" "${v[protocol_counter-rcvbuf_errors-ipv4]}" $((r1 - r0))
# The smallest receive buffer still holds a datagram or two; the rest drop.
check "(d) rcvbuf_errors-ipv4 ${v[protocol_counter-rcvbuf_errors-ipv4]} >= blasted $(ev_get blast_sent) - 10" \
  [ "${v[protocol_counter-rcvbuf_errors-ipv4]:-0}" -ge $(($(ev_get blast_sent) - 10)) ]
eq "(d) mem_errors-ipv4" "${v[protocol_counter-mem_errors-ipv4]}" 0
eq "ipv6 sendmsg (none made)" "${v[operations-sendmsg-ipv6]}" 0

grep -i stap /proc/modules >"$out/modules-after.txt" || true
kt_done
