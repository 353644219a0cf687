#!/bin/bash
# Kernel scenario "operator": the paths an operator uses, with the tcp
# group's real retransmits (netem loss on one port's traffic only):
#  - alerts that name the flows: the threshold's WARNING makes the plugin read
#    the tcp module's top_flows file and send a follow-up naming the lossy
#    flow, not the clean one;
#  - forwarding: a second collectd ("central") receives the values over the
#    network plugin on loopback and writes them with csv; the stap values
#    arrive under the sender's host name;
#  - Prometheus: write_prometheus serves the retransmit counter;
#  - graphs: with the netdev, connect and drops groups enabled too, the
#    rrdtool plugin writes RRD files that `make graphs` (run on the host after
#    the VM) turns into PNGs: retransmits with the threshold line, per-device
#    throughput, handshake latency percentiles, drops by reason.
. "$(dirname "$0")/../scenario.sh"
for g in tcp netdev connect drops; do kt_require_module $g; done
port=5101
# write_prometheus resolves its listen address with AI_ADDRCONFIG, which finds
# nothing on a machine whose only interface is lo: give the guest an IPv4
# address on a dummy interface (TEST-NET-1; the VM has no network device, so
# nothing can leave it).
modprobe dummy 2>/dev/null
ip link add stapdummy0 type dummy && ip addr add 192.0.2.1/24 dev stapdummy0 &&
  ip link set stapdummy0 up || bad "cannot add a dummy interface for write_prometheus"
kt_collectd_conf tcp,netdev,connect,drops stap-thresholds.conf
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
# Loss on one service's flows only: netem drops 20% of the segments to port
# $port (a prio qdisc on lo with a u32 filter sends only those to the netem
# band); load to $((port + 1)) runs at the same time and loses nothing. The
# alert's follow-up notification must name flows to $port, none to $((port + 1)).
say "loss on port $port only: netem 20% behind a u32 filter on lo, clean load to $((port + 1))"
modprobe sch_prio 2>/dev/null
modprobe cls_u32 2>/dev/null
modprobe sch_netem 2>/dev/null
tc qdisc add dev lo root handle 1: prio &&
  tc qdisc add dev lo parent 1:3 handle 30: netem loss 20% &&
  tc filter add dev lo parent 1:0 protocol ip prio 1 u32 match ip dport $port 0xffff flowid 1:3 ||
  bad "cannot set up loss for port $port only"
lines_before=$(wc -l <"$out/collectd.log")
"$top/tests/kernel/tcp_load.py" $((port + 1)) 12 2 20000 >"$out/transfers-clean.txt" &
clean=$!
"$top/tests/kernel/tcp_load.py" $port 12 4 20000 >"$out/transfers.txt"
wait $clean
tc qdisc del dev lo root
# The follow-up comes after the WARNING, once the plugin has read top_flows: on a loaded host
# that can take a few intervals, so wait for it rather than for a fixed time.
followup() { tail -n +"$((lines_before + 1))" "$out/collectd.log" | grep 'type_instance = retransmits-flows' | head -1; }
has_followup() { [ -n "$(followup)" ]; }
wait_for 60 has_followup
flows=$(followup)
echo "follow-up: ${flows:-none}"
echo "${flows:-none}" >"$out/flow-notification.txt"
check "an alert on retransmits brought a follow-up notification naming flows" test -n "$flows"
# Flows in the follow-up, "LOCAL <-> REMOTE COUNT", most retransmits first. The
# follow-up answers the first alert, when each flow has retransmitted once or
# twice, and flows with the same count come in no particular order: a flow to
# the clean port with the odd spurious retransmit an emulated CPU causes (a tail
# loss probe) can come first among flows of 1 (a loaded run named it first,
# before four lossy flows of 1 each). So: the lossy port's flows carry most of
# the retransmits named, and a flow to the clean port has at most 2.
flow_list=$(sed 's/.*top flows by retransmits: //; s/ \.\.\.$//' <<<"$flows" | tr ',' '\n' | sed 's/^ *//')
echo "$flow_list" | sed 's/^/  /'
# "LOSSY TOTAL": retransmits named for flows to $port, and for all flows named.
named=$(awk -v p=":$port " '{ n = $NF + 0; all += n; if (index($0 " ", p)) lossy += n }
  END { print lossy + 0, all + 0 }' <<<"$flow_list")
lossy_leads() { read -r l a <<<"$named"; [ "$l" -gt 0 ] && [ $((2 * l)) -gt "$a" ]; }
check "the lossy port $port's flows carry most retransmits named (lossy, all: $named)" lossy_leads
clean_quiet() { ! awk -v p=":$((port + 1)) " 'index($0, p) && $NF > 2 {bad = 1} END {exit !bad}' <<<"$flow_list"; }
check "no flow to the clean port $((port + 1)) with more than 2 retransmits" clean_quiet

# Prometheus: the exporter's text for the retransmit counter.
python3 -c 'import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:9103/metrics", timeout=10).read().decode())' \
  >"$out/metrics.txt" 2>"$out/metrics.err"
prom=$(grep '^collectd_stap_protocol_counter_total{.*stap="tcp".*type="retransmits"' "$out/metrics.txt" | head -1)
echo "prometheus: $prom"
local_v=$(kt_last "$csv/stap-tcp/protocol_counter-retransmits")
prom_v=$(awk '{print $2}' <<<"$prom")
check "write_prometheus serves the retransmit counter (${prom_v:-none})" [ -n "$prom" ]
# write_prometheus and csv get each value from the same write queue, csv possibly a moment later:
# compare with the csv row once it has caught up (or 30 s have passed).
csv_caught_up() { [ -n "$prom_v" ] && [ "$(kt_last "$csv/stap-tcp/protocol_counter-retransmits")" -ge "${prom_v%.*}" ]; }
wait_for 30 csv_caught_up
local_v=$(kt_last "$csv/stap-tcp/protocol_counter-retransmits")
close_enough() { [ -n "$prom_v" ] && [ "${prom_v%.*}" -ge 1 ] && [ "${prom_v%.*}" -le "$local_v" ]; }
check "its value is the counter's (1 <= ${prom_v:-none} <= $local_v, the latest csv row)" close_enough
check "the metric carries the sender's host name" grep -q 'instance="stapvm"' <<<"$prom"

kt_collectd_stop tcp
cp -r /tmp/rrd "$out/rrd"
# The sender's final csv row, read after it stopped: the central can only have received values
# the sender also wrote (it kept sending after local_v was read above).
local_v=$(kt_last "$csv/stap-tcp/protocol_counter-retransmits")
fwd=$out/central/csv/stapvm/stap-tcp
central_has_last() { [ "$(kt_last "$fwd/protocol_counter-retransmits")" = "$local_v" ]; }
wait_for 30 central_has_last
kill -INT $central
wait $central
central_v=$(kt_last "$fwd/protocol_counter-retransmits")
echo "forwarded: central has stapvm/stap-tcp/protocol_counter-retransmits = ${central_v:-none}, sender's last = $local_v"
check "forwarded values arrive at the central collectd under the sender's host name" test -n "$central_v"
forwarded_moved() { [ -n "$central_v" ] && [ "$central_v" -ge 1 ] && [ "$central_v" -le "$local_v" ]; }
check "the forwarded counter moved (1 <= $central_v <= $local_v)" forwarded_moved
check "the health values are forwarded too" test -n "$(ls "$fwd"/stap_running-20* 2>/dev/null)"
check "rrdtool wrote the retransmit RRD" test -s "$out/rrd/$host/stap-tcp/protocol_counter-retransmits.rrd"
kt_done
