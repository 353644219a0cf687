#!/bin/bash
# Kernel scenario "operator": the paths an operator uses, with the tcp
# group's real retransmits (netem loss on one port's traffic only):
#  - alerts that name the flows: the threshold's WARNING makes the plugin read
#    the tcp module's top_flows file and send a follow-up naming the lossy
#    flows; with a clean load beside the lossy one, top_flows ranks the lossy
#    port's flows first;
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
# band); load to $((port + 1)) loses nothing.
#
# The clean load starts only once the alert's follow-up is in. Under TCG a clean
# flow on lo retransmits now and then (a tail loss probe when the guest stalls),
# and new connections starting together do it together: with both loads
# started at once, the first interval above the line could be four clean flows'
# probes and one lossy retransmit, and the follow-up then rightly names mostly
# clean flows (a cold make check saw exactly that). So: the lossy load alone
# until the follow-up, which must name mostly flows to $port; then both loads
# together, and the module's top_flows file (what any later follow-up reads)
# must rank the lossy port's flows above the clean port's.
say "loss on port $port only: netem 20% behind a u32 filter on lo; clean load to $((port + 1)) after the follow-up"
modprobe sch_prio 2>/dev/null
modprobe cls_u32 2>/dev/null
modprobe sch_netem 2>/dev/null
tc qdisc add dev lo root handle 1: prio &&
  tc qdisc add dev lo parent 1:3 handle 30: netem loss 20% &&
  tc filter add dev lo parent 1:0 protocol ip prio 1 u32 match ip dport $port 0xffff flowid 1:3 ||
  bad "cannot set up loss for port $port only"
lines_before=$(wc -l <"$out/collectd.log")
"$top/tests/kernel/tcp_load.py" $port 24 4 20000 >"$out/transfers.txt" &
lossy=$!
# The follow-up comes after the WARNING, once the plugin has read top_flows: on a loaded host
# that can take a few intervals, so wait for it rather than for a fixed time.
followup() { tail -n +"$((lines_before + 1))" "$out/collectd.log" | grep 'type_instance = retransmits-flows' | head -1; }
has_followup() { [ -n "$(followup)" ]; }
wait_for 60 has_followup
"$top/tests/kernel/tcp_load.py" $((port + 1)) 12 2 20000 >"$out/transfers-clean.txt" &
clean=$!
flows=$(followup)
echo "follow-up: ${flows:-none}"
echo "${flows:-none}" >"$out/flow-notification.txt"
check "an alert on retransmits brought a follow-up notification naming flows" test -n "$flows"
# Flows in the follow-up, "LOCAL <-> REMOTE COUNT", most retransmits first (flows with the same
# count in no particular order).
flow_list=$(sed 's/.*top flows by retransmits: //; s/ \.\.\.$//' <<<"$flows" | tr ',' '\n' | sed 's/^ *//')
echo "$flow_list" | sed 's/^/  /'
# named_by_port PORT: "N TOTAL": retransmits of the flows to PORT among those listed on stdin
# ("... COUNT" lines), and of all of them.
named_by_port() { awk -v p=":$1 " '{ n = $NF + 0; all += n; if (index($0 " ", p)) mine += n }
  END { print mine + 0, all + 0 }'; }
most() { [ "$1" -gt 0 ] && [ $((2 * $1)) -gt "$2" ]; }
named=$(named_by_port $port <<<"$flow_list")
check "the follow-up's flows are mostly to the lossy port $port (retransmits: to $port, all: $named)" most $named
wait $lossy $clean
# The module's own ranking after both loads (the last 30-60 s): "flow LOCAL REMOTE COUNT" lines.
top_flows=/proc/systemtap/collectd_stap_tcp/top_flows
grep '^flow ' "$top_flows" | sed 's/^flow //' >"$out/top-flows-after.txt"
sed 's/^/  top_flows: /' "$out/top-flows-after.txt"
ranked=$(named_by_port $port <"$out/top-flows-after.txt")
check "top_flows after both loads: the lossy port's flows carry most retransmits (to $port, all: $ranked)" most $ranked
clean_flows() { awk -v p=":$((port + 1)) " 'index($0 " ", p)' "$out/top-flows-after.txt"; }
clean_quiet() { ! clean_flows | awk '$NF > 2 {bad = 1} END {exit !bad}'; }
check "no flow to the clean port $((port + 1)) with more than 2 retransmits (top_flows)" clean_quiet
check "the clean load ran alongside ($(cat "$out/transfers-clean.txt"))" grep -q 'completed=[1-9]' "$out/transfers-clean.txt"
tc qdisc del dev lo root

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
