#!/bin/bash
# Kernel test, group socket (runs inside the VM, see scripts/vm/run-guest.sh):
# the real collectd loads build/stap.so, which loads the prebuilt
# collectd_stap_socket.ko (built with kernel debuginfo) with the real staprun.
# tests/kernel/socket_events.py sends N messages of known sizes on each of
# inet-stream (TCP), inet-dgram (UDP), unix-stream and unix-dgram sockets,
# cycling send/sendmsg/write/writev, reads them back cycling
# recv/recvmsg/read/readv, and counts every call and the bytes it returned.
# Asserts, per kind, on the plugin's values over the test's run (the delta
# between two stable snapshots, so whatever else the guest did before does not
# matter):
#  (a) send calls and bytes = what the test sent (each write/writev counted
#      once, although it passes both sock_write_iter and sock_sendmsg);
#  (b) receive calls and bytes = what the test's reads returned;
#  (d) create = sockets the test created with socket()/socketpair(), close =
#      sockets it closed (the accepted one included);
#  (c) after collectd stops, no staprun/stapio and no collectd_stap_* module.
# Tolerance 0: the probes count each call once where every path passes, and
# nothing else in the guest uses sockets while the test runs.
. "$(dirname "$0")/../scenario.sh"
kt_require_module socket
ev=$top/tests/kernel/socket_events.py
n=400

say "raw module output (staprun alone, 1 s batches, socket_events.py N=8)"
staprun "$modules/collectd_stap_socket.ko" interval_ms=1000 >"$out/socket-module-output.txt" 2>"$out/socket-module-stderr.txt" &
spid=$!
wait_for 60 grep -q '^end ' "$out/socket-module-output.txt"
python3 "$ev" 8 >"$out/raw-events.txt"
sleep 2
kill -INT $spid
wait $spid
sed 's/^/  /' "$out/socket-module-output.txt" | tail -36
sed 's/^/  test: /' "$out/raw-events.txt"
wait_for 30 no_module

kt_collectd_conf socket
csvdir=$csv/stap-socket
kt_collectd_start "$csvdir/stap_running" || { kt_done; exit 1; }
kinds=(inet-stream inet-dgram unix-stream unix-dgram)
series=(operations-send total_bytes-send operations-receive total_bytes-receive operations-create operations-close)
# One line per kind: the six values (0 while the row does not exist yet).
snapshot() {
  local k s v
  for k in "${kinds[@]}"; do
    printf '%s' "$k"
    for s in "${series[@]}"; do
      v=$(kt_last "$csv/stap-socket-$k/$s")
      printf ' %s' "${v:-0}"
    done
    echo
  done
}
stable() {
  local a b
  a=$(snapshot)
  sleep 2.5
  b=$(snapshot)
  [ "$a" = "$b" ]
}
wait_for 60 stable
snapshot >"$out/before.txt"
say "socket_events.py N=$n"
python3 "$ev" $n | tee "$out/events.txt"
sleep 2
wait_for 60 stable
snapshot >"$out/after.txt"
kt_collectd_stop socket

names=(send_calls send_bytes recv_calls recv_bytes creates closes)
# SystemTap skips a probe rather than wait long for a lock, and says so when
# the module stops ("skipped probes: N", logged by the plugin). Each skipped
# probe may be one call (and its bytes) not counted; nothing else may differ.
skipped=$(grep -o 'skipped probes: [0-9]*' "$out/collectd.log" | awk '{s += $3} END {print s + 0}')
echo "skipped probes reported by staprun: $skipped"
within() { # MEASURED EXPECTED TOLERANCE
  local d=$(($1 - $2))
  [ ${d#-} -le "$3" ]
}
: >"$out/measurements.txt"
for k in "${kinds[@]}"; do
  read -r _ b1 b2 b3 b4 b5 b6 <<<"$(grep "^$k " "$out/before.txt")"
  read -r _ a1 a2 a3 a4 a5 a6 <<<"$(grep "^$k " "$out/after.txt")"
  read -r _ t1 t2 t3 t4 t5 t6 <<<"$(grep "^$k " "$out/events.txt")"
  d=($((a1 - b1)) $((a2 - b2)) $((a3 - b3)) $((a4 - b4)) $((a5 - b5)) $((a6 - b6)))
  t=("$t1" "$t2" "$t3" "$t4" "$t5" "$t6")
  for i in 0 1 2 3 4 5; do
    case $i in 0 | 1) tag="(a)" ;; 2 | 3) tag="(b)" ;; *) tag="(d)" ;; esac
    echo "$k ${names[$i]}: plugin ${d[$i]}, test ${t[$i]}" >>"$out/measurements.txt"
    tol=0
    case $i in
    0 | 2) tol=$skipped ;;
    1 | 3) [ "${t[$((i - 1))]:-0}" -gt 0 ] && tol=$((skipped * 2 * ((t[i] + t[i - 1] - 1) / t[i - 1]))) ;;
    esac
    check "$tag $k ${names[$i]}: plugin ${d[$i]} = test ${t[$i]:-?} (tolerance $tol: skipped probes)" \
      within "${d[$i]}" "${t[$i]:-999999999}" "$tol"
  done
done

grep -i stap /proc/modules >"$out/modules-after.txt" || true
kt_done
