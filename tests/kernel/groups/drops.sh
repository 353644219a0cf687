#!/bin/bash
# Kernel test, group drops (runs inside the VM, see scripts/vm/run-guest.sh):
# an nftables rule drops UDP datagrams to one port on the input hook, datagrams
# to a closed port are dropped for want of a socket, and a TCP sender whose
# receiver never reads hits its full send buffer. Asserts, under collectd:
#  (a) the reason names are the running kernel's (info line, series names);
#      packets-netfilter_drop equals the nft rule's own counter, which equals
#      the datagrams sent to that port;
#  (b) packets-no_socket equals the kernel's Udp NoPorts delta;
#      packets-total equals the sum of the per-reason series;
#  (c) sndbuf_waits equals the number of send() calls that found the buffer
#      full (counted by the sender), the time waited agrees with the sender's
#      stopwatch, and the latency gauge saw every wait and the longest one;
#  (h) the module's health rows: handler_errors 0; nothing in the logs says
#      MAXACTION, Array overflow, aborted or fatal; every batch within
#      MAXACTION (the tapset's "info batch N used X of 10000 actions" lines);
#  (d) after collectd stops, no staprun/stapio and no module remain.
# A module count may be short of the kernel's by at most the events SystemTap
# reports it lost (stap_module probes_skipped + handler_errors, and for the
# send-buffer waits, timed through the tapset's stamp table, stamps_lost);
# never above it.
. "$(dirname "$0")/../scenario.sh"
load=$top/tests/kernel/drops_load.py
kt_require_module drops

# nft needs nf_tables (and nfnetlink) loaded; the guest does not autoload it.
modprobe nf_tables 2>/dev/null
nft_setup() { # PORT
  nft add table inet kt_drops &&
    nft add chain inet kt_drops in '{ type filter hook input priority 0; }' &&
    nft add rule inet kt_drops in udp dport "$1" counter drop
}
nft_packets() { nft list chain inet kt_drops in | sed -n 's/.*counter packets \([0-9]*\) .*/\1/p'; }

health() { kt_last "$csv/stap-drops/stap_module-$1"; }

# ---------------------------------------------------------------- raw output
say "raw module output (staprun alone, 1 s batches)"
raw=$out/drops-module-output.txt
staprun "$modules/collectd_stap_drops.ko" interval_ms=1000 >"$raw" 2>"$out/drops-module-stderr.txt" &
spid=$!
wait_for 60 grep -q '^end ' "$raw"
nft_setup 9990 || bad "nft setup failed (raw run)"
"$load" udp 9990 20 >/dev/null
"$load" udp 9991 5 >/dev/null
"$load" sndbuf 2 300 >"$out/raw-sndbuf.txt"
wait_for 30 raw_batches_at_least "$raw" $(($(raw_batches "$raw") + 2))
kill -INT $spid
wait $spid
nft delete table inet kt_drops
sed 's/^/  /' "$raw" | head -14
echo "  ..."
sed 's/^/  /' "$raw" | tail -14
wait_for 30 no_module
check "(a) raw: both probes resolved (info probes line)" \
  grep -q '^info probes kfree_skb=yes sk_stream_wait_memory=yes$' "$raw"
check "(a) raw: names from the running kernel (info line)" \
  grep -q "^info reasons [1-9][0-9]* names read from the running kernel's drop_reasons\[\] (e.g. [0-9]*=[a-z0-9_]*)" "$raw"
check "(a) raw: netfilter_drop reached 20" grep -q '^derive drops packets netfilter_drop 20$' "$raw"
check "(h) raw: health rows in the last batch, handler_errors 0" \
  [ "$(grep '^derive drops stap_module handler_errors ' "$raw" | tail -1 | cut -d' ' -f5)" = 0 ]
check "(h) raw: no MAXACTION/Array overflow/aborted/fatal in the module's output" \
  log_clean "$raw" "$out/drops-module-stderr.txt"

# ---------------------------------------------------------------- collectd
kt_collectd_conf drops
csvdir=$csv/stap-drops
nop0=$(snmp_counter Udp NoPorts)
kt_collectd_start "$csvdir/packets-total" || { kt_done; exit 1; }

nft_setup 9999 || bad "nft setup failed"
say "300 datagrams to udp/9999 (nft drop), 60 to the closed udp/9998, send-buffer stalls"
"$load" udp 9999 300 | sed 's/^/  /'
"$load" udp 9998 60 | sed 's/^/  /'
"$load" sndbuf 4 500 | tee "$out/sndbuf.txt" | sed 's/^/  /'

series() { kt_last "$csvdir/$1"; }
# Every event happened before the loads returned; wait for batches emitted after that.
batches_after_now "$csvdir/packets-total"
nftc=$(nft_packets)
nop1=$(snmp_counter Udp NoPorts)
skipped=$(health probes_skipped); herr=$(health handler_errors); slost=$(health stamps_lost)
kt_collectd_stop drops
nft delete table inet kt_drops

nfd=$(series packets-netfilter_drop)
nos=$(series packets-no_socket)
tot=$(series packets-total)
sum=0
for name in $(kt_names "$csvdir" packets-); do
  [ "$name" = packets-total ] && continue
  n=$(kt_last "$csvdir/$name")
  echo "  $name: $n"
  sum=$((sum + n))
done
read -r short blocked bms bmin bmax partial <<<"$(sed -n 's/^short_nonblocking=\([0-9]*\) blocked=\([0-9]*\) blocked_ms=\([0-9]*\) blocked_min_ms=\([0-9]*\) blocked_max_ms=\([0-9]*\) partial_blocked=\([0-9]*\)$/\1 \2 \3 \4 \5 \6/p' "$out/sndbuf.txt")"
waits=$(series operations-sndbuf_waits)
wms=$(series total_time_in_ms-sndbuf_waits)
lat=$csvdir/stap_latency-sndbuf_wait
lcount=$(kt_rows "$lat" | awk -F, '{ s += $2 } END { print s + 0 }')
lmax=$(kt_rows "$lat" | awk -F, '$2 > 0 && $4 > m { m = $4 } END { print m + 0 }')
lmax_ms=$((${lmax%.*} / 1000))
slack=$((${skipped:-0} + ${herr:-0}))      # events SystemTap says it lost
wslack=$((slack + ${slost:-0}))           # ... and waits whose start stamp was replaced
maxact=$(max_actions "$out/collectd.log")
{
  echo "netfilter_drop (csv): $nfd   nft rule counter: $nftc   datagrams sent to 9999: 300"
  echo "no_socket (csv): $nos   Udp NoPorts delta: $((nop1 - nop0)) ($nop0 -> $nop1)   sent to 9998: 60"
  echo "total (csv): $tot   sum of per-reason series: $sum"
  echo "sndbuf_waits (csv): $waits   sender: $short short non-blocking sends + $blocked blocking sends ($partial sent data)"
  echo "time waited (csv): $wms ms   sender's stopwatch over the blocking sends: $bms ms (each $bmin..$bmax ms, SO_SNDTIMEO 500 ms)"
  echo "latency gauge: $lcount waits counted over all intervals, largest max $lmax_ms ms"
  echo "module health: probes_skipped $skipped handler_errors $herr stamps_lost $slost"
  echo "largest batch: $maxact of 10000 actions (collectd run); raw run: $(max_actions "$raw")"
} | tee "$out/measurements.txt"

# (a) nf_hook_slow() frees every NF_DROP verdict with SKB_DROP_REASON_NETFILTER_DROP, once
# per packet, at the same point the rule's counter has already counted it, and nothing
# else in the guest drops in netfilter: equal, short only by what SystemTap reports lost.
check "(a) series name from the kernel's table exists (packets-netfilter_drop)" [ -n "$nfd" ]
check "(a) nft rule counter = datagrams sent ($nftc = 300)" [ "$nftc" = 300 ]
check "(a) netfilter_drop = nft rule counter ($nfd = $nftc, may be short by $slack: skipped + errors)" \
  short_ok "$nfd" "$nftc" "$slack"
# (b) __udp4_lib_rcv() adds 1 to NoPorts and frees the skb with NO_SOCKET for each
# datagram without a socket; TCP would add NO_SOCKET drops for segments to closed ports,
# and the test makes none.
check "(b) no_socket = Udp NoPorts delta ($nos = $((nop1 - nop0)), may be short by $slack)" \
  short_ok "$nos" "$((nop1 - nop0))" "$slack"
check "(b) Udp NoPorts delta = datagrams sent to the closed port ($((nop1 - nop0)) = 60)" [ "$((nop1 - nop0))" = 60 ]
# total is the sum of the same statistics in the same batch: always exact.
check "(b) total = sum of per-reason series ($tot = $sum)" [ "$tot" = "$sum" ]
# (c) Every short non-blocking send went through sk_stream_wait_memory() once (zero
# timeout: EAGAIN at the first check) and every blocking send on the stalled connection
# slept there once for SO_SNDTIMEO; nothing else in the guest fills a send buffer:
# equal while no blocking send got data through (then it may have waited twice), short
# only by lost events or stamps.
waits_ok() { [ "$partial" = 0 ] && short_ok "$waits" "$((short + blocked))" "$wslack"; }
check "(c) sndbuf_waits = short + blocking sends ($waits = $short + $blocked, may be short by $wslack)" waits_ok
# The kernel's clock runs from the function's entry to its return, inside the sender's
# send() call: at most the stopwatch, and short of it by the syscall around it (under
# TCG a few ms per call); allow 10 ms per blocking send below, 2 ms above (rounding).
check "(c) time waited $wms ms within [$bms - $((10 * blocked)), $bms + 2] ms" \
  in_range "$wms" $((bms - 10 * blocked)) $((bms + 2))
check "(c) latency gauge counted every wait ($lcount = $waits)" [ "$lcount" = "$waits" ]
# max is exact (not a histogram bucket); same clock argument as above, per wait.
check "(c) latency gauge max $lmax_ms ms within [$bmax - 10, $bmax + 2] ms" \
  in_range "$lmax_ms" $((bmax - 10)) $((bmax + 2))
# (h) module health and cost.
check "(h) handler_errors 0 (got ${herr:-none})" [ "${herr:-x}" = 0 ]
check "(h) no MAXACTION/Array overflow/aborted/fatal in collectd.log" log_clean "$out/collectd.log"
check "(h) batches within MAXACTION: largest $maxact of 10000 actions" in_range "$maxact" 0 9999

kt_done
