#!/bin/bash
# Kernel scenario "operator": the paths an operator uses, with the tcp
# group's real retransmits (loss on one flow, from an nft rule):
#  - alerts that name the flows: the threshold's WARNING makes the plugin read
#    the tcp module's top_flows file and send a follow-up naming the lossy
#    flow, not the clean one;
#  - forwarding: a second collectd ("central") receives the values over the
#    network plugin on loopback and writes them with csv; the stap values
#    arrive under the sender's host name;
#  - Prometheus: write_prometheus serves the retransmit counter;
#  - graphs: the rrdtool plugin writes RRD files that `make graphs` (run on
#    the host after the VM) turns into PNGs.
. "$(dirname "$0")/../scenario.sh"
kt_require_module tcp
port=5101
# write_prometheus resolves its listen address with AI_ADDRCONFIG, which finds
# nothing on a machine whose only interface is lo: give the guest an IPv4
# address on a dummy interface (TEST-NET-1; the VM has no network device, so
# nothing can leave it).
modprobe dummy 2>/dev/null
ip link add stapdummy0 type dummy && ip addr add 192.0.2.1/24 dev stapdummy0 &&
  ip link set stapdummy0 up || bad "cannot add a dummy interface for write_prometheus"
kt_collectd_conf tcp stap-thresholds.conf
cat >>"$out/collectd.conf" <<CONF
LoadPlugin rrdtool
<Plugin rrdtool>
  DataDir "/tmp/rrd"
</Plugin>
LoadPlugin network
<Plugin network>
  Server "127.0.0.1" "25826"
</Plugin>
LoadPlugin write_prometheus
<Plugin write_prometheus>
  Host "127.0.0.1"
  Port "9103"
</Plugin>
CONF
# RRD files are updated through mmap, which the 9p results share does not
# carry: they are written in the guest's memory and copied out at the end.
rm -rf "$out/rrd" "$out/central" /tmp/rrd
mkdir -p "$out/central"
cat >"$out/central/collectd.conf" <<CONF
Hostname "central"
FQDNLookup false
Interval 1
BaseDir "/tmp/central"
PIDFile "/tmp/central/collectd.pid"
TypesDB "/usr/share/collectd/types.db" "$top/collectd.conf.d/stap.types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$out/central/collectd.log"
</Plugin>
LoadPlugin network
<Plugin network>
  Listen "127.0.0.1" "25826"
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$out/central/csv"
  StoreRates false
</Plugin>
CONF
mkdir -p /tmp/central
collectd -f -C "$out/central/collectd.conf" >"$out/central/stdout" 2>&1 &
central=$!

kt_collectd_start "$csv/stap-tcp/protocol_counter-retransmits" || { kill $central; kt_done; exit 1; }
# Loss on one flow only: two long streams over lo, one to port $port that
# loses 10% of its data segments (an nft rule on that port), one to
# $((port + 1)) that loses nothing. The alert's follow-up notification must
# name the first and not the second.
say "loss on one flow: 10% of segments to port $port dropped by nft, a clean stream to $((port + 1))"
modprobe nft_numgen 2>/dev/null
nft add table inet stapflow &&
  nft add chain inet stapflow out '{ type filter hook output priority 0; }' &&
  nft add rule inet stapflow out tcp dport $port numgen random mod 100 '<' 10 drop ||
  bad "cannot add the nft loss rule"
lines_before=$(wc -l <"$out/collectd.log")
for p in $port $((port + 1)); do
  socat -u TCP-LISTEN:$p,bind=127.0.0.1,reuseaddr OPEN:/dev/null </dev/null &
done
sleep 1
for p in $port $((port + 1)); do
  (head -c 2000000000 /dev/zero | timeout 12 socat -u - TCP:127.0.0.1:$p) 2>/dev/null &
done
sleep 14
nft delete table inet stapflow
pkill -f "TCP-LISTEN:$port" ; pkill -f "TCP-LISTEN:$((port + 1))"
sleep 3
flows=$(tail -n +"$((lines_before + 1))" "$out/collectd.log" | grep 'type_instance = retransmits-flows' | head -1)
echo "follow-up: ${flows:-none}"
echo "${flows:-none}" >"$out/flow-notification.txt"
check "an alert on retransmits brought a follow-up notification naming flows" test -n "$flows"
names_lossy() { grep -q "127.0.0.1:$port " <<<"$flows" || grep -q "127.0.0.1:$port <->" <<<"$flows" || grep -q "<-> 127.0.0.1:$port " <<<"$flows"; }
check "it names the lossy flow (port $port)" names_lossy
check "it does not name the clean flow (port $((port + 1)))" bash -c "! grep -q '127.0.0.1:$((port + 1))[ ,]' <<<'$flows'"

# Prometheus: the exporter's text for the retransmit counter.
python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9103/metrics", timeout=10).read().decode())' \
  >"$out/metrics.txt" 2>"$out/metrics.err"
prom=$(grep '^collectd_stap_protocol_counter_total{.*stap="tcp".*type="retransmits"' "$out/metrics.txt" | head -1)
echo "prometheus: $prom"
local_v=$(kt_last "$csv/stap-tcp/protocol_counter-retransmits")
prom_v=$(awk '{print $2}' <<<"$prom")
check "write_prometheus serves the retransmit counter (${prom_v:-none})" [ -n "$prom" ]
close_enough() { [ -n "$prom_v" ] && [ "${prom_v%.*}" -ge 1 ] && [ "${prom_v%.*}" -le "$local_v" ]; }
check "its value is the counter's (1 <= ${prom_v:-none} <= $local_v, the latest csv row)" close_enough
check "the metric carries the sender's host name" grep -q 'instance="stapvm"' <<<"$prom"

kt_collectd_stop tcp
cp -r /tmp/rrd "$out/rrd"
kill -INT $central
wait $central
fwd=$out/central/csv/stapvm/stap-tcp
central_v=$(kt_last "$fwd/protocol_counter-retransmits")
echo "forwarded: central has stapvm/stap-tcp/protocol_counter-retransmits = ${central_v:-none}, sender's last = $local_v"
check "forwarded values arrive at the central collectd under the sender's host name" test -n "$central_v"
forwarded_moved() { [ -n "$central_v" ] && [ "$central_v" -ge 1 ] && [ "$central_v" -le "$local_v" ]; }
check "the forwarded counter moved (1 <= $central_v <= $local_v)" forwarded_moved
check "the health values are forwarded too" test -n "$(ls "$fwd"/stap_running-20* 2>/dev/null)"
check "rrdtool wrote the retransmit RRD" test -s "$out/rrd/$host/stap-tcp/protocol_counter-retransmits.rrd"
kt_done
