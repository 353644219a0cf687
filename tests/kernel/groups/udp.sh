#!/bin/bash
# Kernel test, group udp (runs inside the VM, see scripts/vm/run-guest.sh):
# the real collectd loads build/stap.so, which loads the prebuilt
# collectd_stap_udp.ko (built with kernel debuginfo) with the real staprun.
# tests/kernel/udp_events.py makes UDP events with known counts over lo: N
# datagrams of known sizes with send/sendto/sendmsg, each read with
# recv/recvfrom/recvmsg; N/10 connect + connect(AF_UNSPEC); N 1000-byte
# datagrams at a receiver with the smallest SO_RCVBUF that never reads. Then
# (udp_events.py v6) M datagrams from AF_INET6 sockets to ::1 and M to the
# v4-mapped ::ffff:127.0.0.1, read by a dual-stack socket.
# Asserts:
#  (a) sendmsg-ipv4 calls and bytes equal what the test sent from AF_INET
#      sockets, and the calls plus the v4-mapped sends equal Udp OutDatagrams'
#      delta (a v4-mapped send is IPv4 for the kernel, but the socket's family,
#      ipv6, for the module: counted once, in sendmsg-ipv6);
#  (b) recvmsg-ipv4 calls and bytes equal what the test read on AF_INET
#      sockets, and the calls plus the v4-mapped reads equal Udp InDatagrams'
#      delta (the kernel counts InDatagrams when the application reads a
#      datagram, not when it arrives);
#  (f) sendmsg-ipv6 / recvmsg-ipv6 calls and bytes equal the AF_INET6 sockets'
#      sends and reads (::1 and v4-mapped); Udp6 OutDatagrams / InDatagrams
#      deltas equal the ::1 ones;
#  (e) disconnect equals the test's connect(AF_UNSPEC) count;
#  (d) rcvbuf_errors-ipv4 equals Udp RcvbufErrors' delta, and nearly all
#      blasted datagrams were dropped;
#  (h) module health: handler_errors 0; no MAXACTION, Array overflow, aborted or
#      fatal in the logs; every batch within MAXACTION;
#  (c) after collectd stops, no staprun/stapio and no collectd_stap_* module.
# Tolerance: a module count may be short of the truth by at most the events
# SystemTap reports it lost (stap_module probes_skipped + handler_errors; for
# sendmsg-ipv4, which passes the socket's family through the tapset's stamp
# table, also stamps_lost), never above it. The probes sit where the kernel counts, nothing else in the guest
# speaks UDP, and the values are read from batches emitted after the traffic.
. "$(dirname "$0")/../scenario.sh"
kt_require_module udp
ev=$top/tests/kernel/udp_events.py
port=5301
n=600
m=200

health() { kt_last "$csv/stap-udp/stap_module-$1"; }
snmp6() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/snmp6; }

say "raw module output (staprun alone, 1 s batches, udp_events.py with N=30)"
raw=$out/udp-module-output.txt
staprun "$modules/collectd_stap_udp.ko" interval_ms=1000 >"$raw" 2>"$out/udp-module-stderr.txt" &
spid=$!
wait_for 60 grep -q '^end ' "$raw"
python3 "$ev" $((port + 10)) 30 >"$out/raw-events.txt"
python3 "$ev" v6 $((port + 20)) 10 >"$out/raw-events-v6.txt"
wait_for 30 raw_batches_at_least "$raw" $(($(raw_batches "$raw") + 2))
kill -INT $spid
wait $spid
sed 's/^/  /' "$raw" | tail -24
sed 's/^/  test: /' "$out/raw-events.txt" "$out/raw-events-v6.txt"
wait_for 30 no_module
check "(a) raw: every probe resolved (info probes line)" \
  grep -q '^info probes udp_sendmsg=yes udpv6_sendmsg=yes udp_recvmsg=yes udpv6_recvmsg=yes udp_disconnect=yes udp_fail_queue_rcv_skb=yes$' "$raw"
check "(h) raw: handler_errors 0 in the last batch" \
  [ "$(grep '^derive udp stap_module handler_errors ' "$raw" | tail -1 | cut -d' ' -f5)" = 0 ]
check "(h) raw: no MAXACTION/Array overflow/aborted/fatal in the module's output" \
  log_clean "$raw" "$out/udp-module-stderr.txt"

kt_collectd_conf udp
csvdir=$csv/stap-udp
c() { kt_last "$csvdir/$1"; }
o0=$(snmp_counter Udp OutDatagrams); i0=$(snmp_counter Udp InDatagrams); r0=$(snmp_counter Udp RcvbufErrors)
o60=$(snmp6 Udp6OutDatagrams); i60=$(snmp6 Udp6InDatagrams)
kt_collectd_start "$csvdir/operations-sendmsg-ipv4" || { kt_done; exit 1; }

say "udp_events.py N=$n, then udp_events.py v6 M=$m"
python3 "$ev" $port $n | tee "$out/events.txt"
python3 "$ev" v6 $((port + 20)) $m | tee "$out/events-v6.txt"
ev_get() { cat "$out/events.txt" "$out/events-v6.txt" | awk -F= -v k="$1" '$1 == k { print $2 }'; }
# Every event happened before the test returned; wait for batches emitted after that.
batches_after_now "$csvdir/operations-sendmsg-ipv4"
o1=$(snmp_counter Udp OutDatagrams); i1=$(snmp_counter Udp InDatagrams); r1=$(snmp_counter Udp RcvbufErrors)
o61=$(snmp6 Udp6OutDatagrams); i61=$(snmp6 Udp6InDatagrams)
declare -A v
for k in operations-sendmsg-ipv4 total_bytes-sendmsg-ipv4 operations-sendmsg_errors-ipv4 \
  operations-recvmsg-ipv4 total_bytes-recvmsg-ipv4 operations-recvmsg_errors-ipv4 \
  operations-disconnect protocol_counter-rcvbuf_errors-ipv4 protocol_counter-mem_errors-ipv4 \
  operations-sendmsg-ipv6 total_bytes-sendmsg-ipv6 operations-sendmsg_errors-ipv6 \
  operations-recvmsg-ipv6 total_bytes-recvmsg-ipv6 operations-recvmsg_errors-ipv6 \
  protocol_counter-rcvbuf_errors-ipv6; do
  v[$k]=$(c $k)
done
skipped=$(health probes_skipped); herr=$(health handler_errors); slost=$(health stamps_lost)
kt_collectd_stop udp
maxact=$(max_actions "$out/collectd.log")

{
  for k in "${!v[@]}"; do echo "plugin $k = ${v[$k]}"; done | sort
  echo "test: $(tr '\n' ' ' <"$out/events.txt")"
  echo "test v6: $(tr '\n' ' ' <"$out/events-v6.txt")"
  echo "Udp OutDatagrams delta $((o1 - o0)) ($o0 -> $o1)"
  echo "Udp InDatagrams delta  $((i1 - i0)) ($i0 -> $i1)"
  echo "Udp RcvbufErrors delta $((r1 - r0)) ($r0 -> $r1)"
  echo "Udp6 OutDatagrams delta $((o61 - o60)) ($o60 -> $o61)"
  echo "Udp6 InDatagrams delta  $((i61 - i60)) ($i60 -> $i61)"
  echo "module health: probes_skipped $skipped handler_errors $herr stamps_lost $slost"
  echo "largest batch: $maxact of 10000 actions (collectd run); raw run: $(max_actions "$raw")"
} | tee "$out/measurements.txt"

slack=$((${skipped:-0} + ${herr:-0}))    # events SystemTap says it lost
slack4=$((slack + ${slost:-0}))         # sendmsg-ipv4 also reads the stamp table
# bytes_ok BYTES EXPECTED_BYTES CALLS EXPECTED_CALLS MAXSIZE: bytes exact when no call was
# lost, else short by at most MAXSIZE per lost call.
bytes_ok() { short_ok "$1" "$2" $((($4 - ${3:-0}) * $5)); }
eq() { check "$1: plugin $2 = expected $3" [ "${2:-x}" = "$3" ]; }
sb() { check "$1: plugin $2 = expected $3 (may be short by $4: lost events)" short_ok "$2" "$3" "$4"; }

s4=${v[operations-sendmsg-ipv4]}; r4=${v[operations-recvmsg-ipv4]}
s6=${v[operations-sendmsg-ipv6]}; r6=${v[operations-recvmsg-ipv6]}
mapped_s=$(ev_get mapped_sends); mapped_r=$(ev_get mapped_reads)
sb "(a) sendmsg-ipv4 calls = test's AF_INET sends" "$s4" "$(ev_get sendmsg_calls)" "$slack4"
sb "(a) sendmsg-ipv4 calls + v4-mapped sends = Udp OutDatagrams delta" "$((s4 + mapped_s))" $((o1 - o0)) "$slack4"
check "(a) sendmsg-ipv4 bytes = test's bytes (${v[total_bytes-sendmsg-ipv4]} = $(ev_get sendmsg_bytes))" \
  bytes_ok "${v[total_bytes-sendmsg-ipv4]}" "$(ev_get sendmsg_bytes)" "$s4" "$(ev_get sendmsg_calls)" 1400
eq "(a) sendmsg errors" "${v[operations-sendmsg_errors-ipv4]}" 0
sb "(b) recvmsg-ipv4 calls = test's AF_INET reads" "$r4" "$(ev_get recvmsg_calls)" "$slack"
sb "(b) recvmsg-ipv4 calls + v4-mapped reads = Udp InDatagrams delta" "$((r4 + mapped_r))" $((i1 - i0)) "$slack"
check "(b) recvmsg-ipv4 bytes = test's bytes read (${v[total_bytes-recvmsg-ipv4]} = $(ev_get recvmsg_bytes))" \
  bytes_ok "${v[total_bytes-recvmsg-ipv4]}" "$(ev_get recvmsg_bytes)" "$r4" "$(ev_get recvmsg_calls)" 1400
sb "(f) sendmsg-ipv6 calls = AF_INET6 sends (::1 + v4-mapped)" "$s6" $(($(ev_get v6_sends) + mapped_s)) "$slack"
check "(f) sendmsg-ipv6 bytes = AF_INET6 bytes sent (${v[total_bytes-sendmsg-ipv6]})" \
  bytes_ok "${v[total_bytes-sendmsg-ipv6]}" $(($(ev_get v6_send_bytes) + $(ev_get mapped_send_bytes))) "$s6" $(($(ev_get v6_sends) + mapped_s)) 1200
eq "(f) Udp6 OutDatagrams delta = ::1 sends" $((o61 - o60)) "$(ev_get v6_sends)"
eq "(f) sendmsg errors ipv6" "${v[operations-sendmsg_errors-ipv6]}" 0
sb "(f) recvmsg-ipv6 calls = AF_INET6 reads (::1 + v4-mapped)" "$r6" $(($(ev_get v6_reads) + mapped_r)) "$slack"
check "(f) recvmsg-ipv6 bytes = AF_INET6 bytes read (${v[total_bytes-recvmsg-ipv6]})" \
  bytes_ok "${v[total_bytes-recvmsg-ipv6]}" $(($(ev_get v6_read_bytes) + $(ev_get mapped_read_bytes))) "$r6" $(($(ev_get v6_reads) + mapped_r)) 1200
eq "(f) Udp6 InDatagrams delta = ::1 reads" $((i61 - i60)) "$(ev_get v6_reads)"
sb "(e) disconnect = test's connect(AF_UNSPEC)" "${v[operations-disconnect]}" "$(ev_get disconnects)" "$slack"
sb "(d) rcvbuf_errors-ipv4 = Udp RcvbufErrors delta" "${v[protocol_counter-rcvbuf_errors-ipv4]}" $((r1 - r0)) "$slack"
# The smallest receive buffer still holds a datagram or two; the rest drop.
check "(d) rcvbuf_errors-ipv4 ${v[protocol_counter-rcvbuf_errors-ipv4]} >= blasted $(ev_get blast_sent) - 10" \
  [ "${v[protocol_counter-rcvbuf_errors-ipv4]:-0}" -ge $(($(ev_get blast_sent) - 10)) ]
eq "(d) mem_errors-ipv4" "${v[protocol_counter-mem_errors-ipv4]}" 0
eq "(d) rcvbuf_errors-ipv6 (none made)" "${v[protocol_counter-rcvbuf_errors-ipv6]}" 0
check "(h) handler_errors 0 (got ${herr:-none})" [ "${herr:-x}" = 0 ]
check "(h) no MAXACTION/Array overflow/aborted/fatal in collectd.log" log_clean "$out/collectd.log"
check "(h) batches within MAXACTION: largest $maxact of 10000 actions" in_range "$maxact" 0 9999

grep -i stap /proc/modules >"$out/modules-after.txt" || true
kt_done
