#!/bin/bash
# Kernel test, group connect (runs inside the VM, see scripts/vm/run-guest.sh).
# An nftables rule drops every third SYN to a port: each connect sends at most
# two SYNs, so the drops fall on every second connect, which then waits for
# the SYN retransmit (initial RTO 1 s) while the others connect at once.
# Asserts:
#  (a) the module alone (staprun, one final batch): connect() and handshake
#      latency (count, avg, max, p50, p99) agree with the test's stopwatch;
#  (b) under collectd: results by family and errno name equal the calls the
#      test made (success, ECONNREFUSED, EINPROGRESS, ETIMEDOUT; IPv4 and
#      IPv6); handshakes agree with Tcp ActiveOpens; latency counts over all
#      intervals equal the calls made, and the largest max the ETIMEDOUT call;
#  (c) after collectd stops, no staprun/stapio and no module remain.
# Counts may be short by exactly what the module reports it missed
# (stap_module probes_skipped + handler_errors); every run asserts
# handler_errors 0 and no abort text (MAXACTION, Array overflow, aborted,
# fatal) in collectd.log or staprun's output.
. "$(dirname "$0")/../scenario.sh"
load=$top/tests/kernel/connect_load.py
kt_require_module connect

# nft expression modules are not autoloaded in the guest: load them here.
modprobe nf_tables 2>/dev/null || true
modprobe nft_numgen 2>/dev/null || true

# Module vs stopwatch: the module's clock starts and stops inside the syscall (the handshake
# inside it too) while Python's brackets it, so each module value is at most its call's
# stopwatch, and so is each order statistic (avg, max, p50, p99) at most the test's; a
# percentile, a bucket midpoint, may be up to 6.25% above its value: + 1/16 + 1 ms. How much
# less it is depends on how long the busy emulated host kept Python from running (a cold run
# saw a p50 22 ms below the stopwatch's): the lower bounds are the kernel's own timers (a
# dropped SYN is sent again after 1 s, TCP_TIMEOUT_INIT), never the stopwatch (lat_in:
# tests/kernel/scenario.sh).
user_lat() { # FILE -> count avg max p50 p99 slow
  sed -n 's/^count=\([0-9]*\) avg_us=\([0-9]*\) max_us=\([0-9]*\) p50_us=\([0-9]*\) p99_us=\([0-9]*\) slow=\([0-9]*\)$/\1 \2 \3 \4 \5 \6/p' "$1"
}
drop_every_third_syn() { # PORT
  nft -f - <<NFT
table inet kt_connect {
  chain input {
    type filter hook input priority 0;
    tcp dport $1 tcp flags & (syn | ack) == syn numgen inc mod 3 == 0 counter drop
  }
}
NFT
}

# ---------------------------------------------------------------- (a) raw
say "raw module output (staprun alone, one final batch): 10 connects to 127.0.0.1:5020, every third SYN dropped"
check "(a) nft rule dropping every third SYN to 5020 installed" drop_every_third_syn 5020
staprun "$modules/collectd_stap_connect.ko" interval_ms=600000 >"$out/connect-module-output.txt" 2>"$out/connect-module-stderr.txt" &
spid=$!
wait_for 60 grep -q '^end 1 ' "$out/connect-module-output.txt"
"$load" listen 127.0.0.1 5020 10 >"$out/raw-connects.txt"
kill -INT $spid
wait $spid
nft list table inet kt_connect | grep counter | sed 's/^ */  nft: /'
nft delete table inet kt_connect
sed 's/^/  /' "$out/connect-module-output.txt"
wait_for 30 no_module
raw_err=$(awk '$1 == "derive" && $3 == "stap_module" && $4 == "handler_errors" { v = $5 } END { print v }' "$out/connect-module-output.txt")
check "(a) handler_errors 0 (${raw_err:-none})" [ "${raw_err:-x}" = 0 ]
check "(a) no abort text in staprun's output" log_clean "$out/connect-module-output.txt" "$out/connect-module-stderr.txt"
read -r uc ua umax u50 u99 uslow <<<"$(user_lat "$out/raw-connects.txt")"
for what in syscall handshake; do
  read -r mc ma mmax m50 m99 <<<"$(awk -v w=$what '$1 == "gauge" && $4 == w && $5 > 0 { print $5, $6, $7, $8, $9 }' "$out/connect-module-output.txt" | tail -1)"
  {
    echo "raw run, $what latency (us)    count avg max p50 p99"
    echo "  module:                      $mc $ma $mmax $m50 $m99"
    echo "  test's stopwatch (connect()): $uc $ua $umax $u50 $u99 (slow >= 500 ms: $uslow)"
  } | tee -a "$out/measurements.txt"
  check "(a) $what count: module ${mc:-none} = test $uc" [ "${mc:-x}" = "$uc" ]
  # 5 of the 10 connects wait for the 1 s SYN retransmit (checked below): the average holds
  # 5 x 1 s / 10, the maximum and p99 (the 10th of 10) are slow ones (at least 1 s, less 6.25%
  # for p99's bucket), p50 (the 5th) a fast one (below the slow ones' 933 ms).
  check "(a) $what avg ${ma:-none} us: at most the test's $ua us, at least $uslow x 1 s / $uc" \
    lat_in "${ma:-x}" "$ua" $((${uslow:-0} * 996000 / ${uc:-1})) 100000000
  check "(a) $what max ${mmax:-none} us: at most the test's $umax us, at least 1 s" \
    lat_in "${mmax:-x}" "$umax" 996000 100000000
  check "(a) $what p50 ${m50:-none} us: at most the test's $u50 us, a fast connect" \
    lat_in "${m50:-x}" "$u50" 0 933000
  check "(a) $what p99 ${m99:-none} us: at most the test's $u99 us, a slow connect" \
    lat_in "${m99:-x}" "$u99" 933000 100000000
done
check "(a) half the connects were slow (>= 500 ms): $uslow of $uc" [ "$uslow" = 5 ]
check "(a) 10 ipv4-success in the raw output" grep -q '^derive connect connections ipv4-success 10$' "$out/connect-module-output.txt"

# ---------------------------------------------------------------- collectd
kt_collectd_conf connect
csvdir=$csv/stap-connect
a0=$(snmp_counter Tcp ActiveOpens)
f0=$(snmp_counter Tcp AttemptFails)
kt_collectd_start "$csvdir/connections-handshake-established" || { kt_done; exit 1; }

say "closed ports: 7 x 127.0.0.1:5029, 3 x [::1]:5029"
"$load" closed 127.0.0.1 5029 7 >"$out/closed4.txt"
"$load" closed ::1 5029 3 >"$out/closed6.txt"
say "non-blocking: 4 x 127.0.0.1:5022; blocking IPv6: 5 x [::1]:5024"
"$load" nonblock 127.0.0.1 5022 4 >"$out/nonblock4.txt"
"$load" listen ::1 5024 5 >"$out/listen6.txt"
say "every third SYN to 5021 dropped: 6 x 127.0.0.1:5021"
drop_every_third_syn 5021
"$load" listen 127.0.0.1 5021 6 >"$out/listen4.txt"
nft delete table inet kt_connect
say "all SYNs to 5023 dropped, tcp_syn_retries=1: 1 x 127.0.0.1:5023 (ETIMEDOUT after ~3 s)"
nft -f - <<'NFT'
table inet kt_connect {
  chain input {
    type filter hook input priority 0;
    tcp dport 5023 tcp flags & (syn | ack) == syn counter drop
  }
}
NFT
r0=$(sysctl -n net.ipv4.tcp_syn_retries)
sysctl -qw net.ipv4.tcp_syn_retries=1
"$load" blackhole 127.0.0.1 5023 1 >"$out/blackhole4.txt"
sysctl -qw net.ipv4.tcp_syn_retries="$r0"
nft delete table inet kt_connect
for f in closed4 closed6 nonblock4 listen6 listen4 blackhole4; do
  echo "  $f: $(grep '^result' "$out/$f.txt" | tr '\n' ' ')$(tail -1 "$out/$f.txt")"
done
a1=$(snmp_counter Tcp ActiveOpens)
f1=$(snmp_counter Tcp AttemptFails)
t1=$(date +%s.%N)
# Two batches dispatched after the last call carry everything; then stop.
wait_for 30 rows_after "$csvdir/connections-handshake-established" "$t1" 2
kt_collectd_stop connect
read -r skipped errors <<<"$(mod_health "$csvdir")"
tol=$((${skipped:-0} + ${errors:-0}))
check "(b) the module reported handler_errors 0 (${errors:-none})" [ "${errors:-x}" = 0 ]
check "(b) no abort text in collectd.log" log_clean "$out/collectd.log"
mx=$(max_actions "$out/collectd.log")
echo "module: probes_skipped $skipped, handler_errors $errors; largest batch $mx of 10000 actions" | tee -a "$out/measurements.txt"

val() { kt_last "$csvdir/connections-$1"; }
# What the test's own calls returned, per family and result name.
declare -A want
for f in closed4 nonblock4 listen4 blackhole4 closed6 listen6; do
  fam=ipv${f: -1}
  while read -r _ name n; do
    [ -n "$name" ] && want[$fam-$name]=$((${want[$fam-$name]:-0} + n))
  done <<<"$(grep '^result ' "$out/$f.txt")"
done
for k in $(printf '%s\n' "${!want[@]}" | sort); do
  v=$(val "$k")
  check "(b) $k: module ${v:-none} vs ${want[$k]} calls the test made (short by at most $tol)" short_ok "$v" "${want[$k]}" "$tol"
done
extra=$(kt_names "$csvdir" connections-ipv | sed 's/^connections-//' | while read -r k; do [ -n "${want[$k]:-}" ] || echo "$k"; done)
check "(b) no result series the test did not cause (${extra:-none})" [ -z "$extra" ]
for exp in "ipv4-ECONNREFUSED 7" "ipv6-ECONNREFUSED 3" "ipv4-EINPROGRESS 4" "ipv6-success 5" \
  "ipv4-success 6" "ipv4-ETIMEDOUT 1"; do
  set -- $exp
  check "(b) the test itself saw $2 x $1 (${want[$1]:-0})" [ "${want[$1]:-0}" = "$2" ]
done
est=$(val handshake-established)
hf=$(val handshake-failed)
{
  echo "handshake-established $est (test: 4 + 5 + 6 = 15), handshake-failed $hf (test: 7 + 3 + 1 = 11)"
  echo "Tcp ActiveOpens delta $((a1 - a0)), AttemptFails delta $((f1 - f0))"
} | tee -a "$out/measurements.txt"
check "(b) handshake-established ${est:-none} vs 15 (short by at most $tol)" short_ok "$est" 15 "$tol"
check "(b) handshake-failed ${hf:-none} vs 11 (short by at most $tol)" short_ok "$hf" 11 "$tol"
check "(b) established + failed vs Tcp ActiveOpens delta $((a1 - a0)) (short by at most $tol)" short_ok $((est + hf)) $((a1 - a0)) "$tol"
check "(b) handshake-failed vs Tcp AttemptFails delta $((f1 - f0)) (short by at most $tol)" short_ok "$hf" $((f1 - f0)) "$tol"
sys_n=$(kt_rows "$csvdir/stap_latency-syscall" | awk -F, '{ s += $2 } END { print s + 0 }')
hs_n=$(kt_rows "$csvdir/stap_latency-handshake" | awk -F, '{ s += $2 } END { print s + 0 }')
sys_max=$(kt_rows "$csvdir/stap_latency-syscall" | awk -F, '$2 > 0 && $4 > m { m = $4 } END { print m + 0 }')
read -r _ _ bh_max _ _ _ <<<"$(user_lat "$out/blackhole4.txt")"
echo "latency counts over all intervals: syscall $sys_n (test: 26 calls), handshake $hs_n (15); largest syscall max $sys_max us (ETIMEDOUT call: $bh_max us)" | tee -a "$out/measurements.txt"
check "(b) syscall latency count $sys_n vs 26 connect() calls (short by at most $tol)" short_ok "$sys_n" 26 "$tol"
check "(b) handshake latency count $hs_n vs 15 established (short by at most $tol)" short_ok "$hs_n" 15 "$tol"
# tcp_syn_retries=1: the SYN at 0 and 1 s, ETIMEDOUT at 3 s by the kernel's timers.
check "(b) largest syscall max $sys_max us: at most the ETIMEDOUT call's $bh_max us, at least 3 s" \
  lat_in "$sys_max" "$bh_max" 2990000 100000000
kt_done
