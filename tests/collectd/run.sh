#!/bin/bash
# collectd integration test: the real collectd daemon loads build/stap.so
# with the shipped collectd.conf.d/ snippets; tests/fake-staprun replays a
# module session in which the module crashes once and is restarted, then
# retransmits climb and go flat. Checks the csv plugin's rows, the shipped
# threshold's WARNING and OKAY, the plugin's health values, and that no
# staprun is left behind.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$top/build/collectd-test}")
rm -rf "$out"
mkdir -p "$out/modules"
cd "$out"

. "$top/tests/assert.sh"

# The "module" the fake staprun replays: first run crashes, second is normal.
mod=$out/modules/collectd_stap_tcp.ko
cp "$top/tests/data/tcp-climb.replay" "$mod"
cp "$top/tests/data/tcp-crash.replay" "$mod.1"
# Two more groups, for the shipped thresholds on overflows and drops. The
# other groups of the shipped stap.conf have no module here: they must be
# reported and must not disturb these.
cp "$top/tests/data/accept-overflow.replay" "$out/modules/collectd_stap_accept.ko"
cp "$top/tests/data/drops-climb.replay" "$out/modules/collectd_stap_drops.ko"

# The shipped snippets, with only the install paths pointed at this tree.
for f in stap.conf stap-thresholds.conf; do
  sed "s|/usr/share/collectd/stap.types.db|$top/collectd.conf.d/stap.types.db|" \
    "$top/collectd.conf.d/$f" >"$out/$f"
done

cat >"$out/collectd.conf" <<CONF
Hostname "integration"
Interval 1
BaseDir "$out"
PIDFile "$out/collectd.pid"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$out/collectd.log"
  Timestamp true
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$out/csv"
  StoreRates false
</Plugin>
PluginDir "$top/build"
Include "$out/stap.conf"
PluginDir "/usr/lib/collectd"
Include "$out/stap-thresholds.conf"
<Plugin stap>
  Staprun "$top/tests/fake-staprun"
  ModuleDir "$out/modules"
  RestartDelay 0.5
</Plugin>
CONF

collectd -f -C "$out/collectd.conf" >"$out/collectd.stdout" 2>&1 &
cpid=$!

csv=$out/csv/integration/stap-tcp
retrans() { tail -n +2 "$csv"/protocol_counter-retransmits-20* 2>/dev/null | cut -d, -f2; }
# Wait (bounded) until the flat phase has been seen and the OKAY sent.
for _ in $(seq 1 60); do
  kill -0 $cpid 2>/dev/null || break
  grep -q 'severity = OKAY.*type_instance = retransmits' "$out/collectd.log" 2>/dev/null &&
    grep -q 'severity = OKAY.*plugin_instance = drops' "$out/collectd.log" 2>/dev/null &&
    grep -q 'severity = OKAY.*plugin_instance = accept, type = protocol_counter, type_instance = accept-queue-overflows,' "$out/collectd.log" 2>/dev/null &&
    [ "$(retrans | grep -c '^91$')" -ge 3 ] && break
  sleep 0.5
done
if ! kill -INT $cpid 2>/dev/null; then
  bad "collectd ended early; its output:"
  cat "$out/collectd.stdout"
fi
for _ in $(seq 1 100); do kill -0 $cpid 2>/dev/null || break; sleep 0.1; done
if kill -0 $cpid 2>/dev/null; then
  bad "collectd did not exit within 10 s of SIGINT"
  kill -9 $cpid
fi
wait $cpid
echo "collectd exit status: $?"

values=$(retrans | tr '\n' ' ')
echo "retransmits column of the csv: $values"
check "values arrived" [ -n "$values" ]
check "values never go backwards across the module crash" \
  awk 'BEGIN{p=-1} {if ($1 < p) exit 1; p=$1}' < <(retrans)
check "the offset carried the crashed run's 1 into the next run (1 then 21)" \
  grep -qE '(^| )1 (1 )*21 ' <<<"$values"
check "final value is 91 (90 + 1 from the first run)" [ "$(retrans | tail -1)" = 91 ]
check "per-port series dispatched" test -s "$(ls "$csv"/protocol_counter-retransmits-port-5001-20* 2>/dev/null | head -1)"

log=$out/collectd.log
warn_line=$(grep -n 'severity = WARNING.*plugin = stap, plugin_instance = tcp, type = protocol_counter, type_instance = retransmits' "$log" | head -1 | cut -d: -f1)
okay_line=$(grep -n 'severity = OKAY.*plugin = stap, plugin_instance = tcp, type = protocol_counter, type_instance = retransmits' "$log" | tail -1 | cut -d: -f1)
echo "threshold notifications:"
grep 'Notification:.*retransmits' "$log" | sed 's/^/  /'
check "threshold WARNING for climbing retransmits" [ -n "$warn_line" ]
# The first climbing interval goes 1 -> 21 in about a second: the WARNING must
# carry that rate (about 20/s), not a later one (30/s, 40/s).
first_rate=$(sed -n "${warn_line:-0}s/.*is currently \([0-9.]*\).*/\1/p" "$log")
check "the WARNING came in the first climbing interval (rate $first_rate/s, 10-30 expected)" \
  awk -v r="${first_rate:-0}" 'BEGIN{exit !(r >= 10 && r <= 30)}'
okay_after_warning() { [ -n "$okay_line" ] && [ -n "$warn_line" ] && [ "$okay_line" -gt "$warn_line" ]; }
check "threshold OKAY after retransmits went flat" okay_after_warning
no_failure() { ! grep -q 'severity = FAILURE.*type_instance = retransmits' "$log"; }
check "no FAILURE (rate stayed below FailureMax 50/s)" no_failure
check "staprun's ERROR line is logged" grep -q 'simulated module failure' "$log"
check "the exit is logged with its status" grep -q 'exited with status 1' "$log"
check "the restart is logged" grep -q 'restarting staprun in 0.5 s' "$log"
check "the bad line is logged" grep -q 'bad line from the module (unknown record type): this is not a record' "$log"
check "staprun was given interval_ms=1000 and the group's parameters" \
  grep -qx 'interval_ms=1000' "$mod.args"
check "staprun was started twice" [ "$(cat "$mod.runs")" = 2 ]

last() { tail -1 "$(ls "$csv"/$1-20* | head -1)" | cut -d, -f2; }
check "health: stap_running was 1" grep -qE ',1(\.0+)?$' "$(ls "$csv"/stap_running-20* | head -1)"
check "health: restarts = 1" [ "$(last stap_events-restarts)" = 1 ]
check "health: bad_lines = 1" [ "$(last stap_events-bad_lines)" = 1 ]
check "health: batches counted (>= 6)" [ "$(last stap_events-batches)" -ge 6 ]
check "health: decreases = 0 (no counter went back within a session)" [ "$(last stap_events-decreases)" = 0 ]
check "health: duplicate_series = 0" [ "$(last stap_events-duplicate_series)" = 0 ]
check "clean stop is logged" grep -q 'staprun stopped (exited with status 0)' "$log"
no_fake_left() { ! pgrep -f "fake-staprun $mod" >/dev/null; }
check "no staprun (fake) process is left" no_fake_left
no_dataset_error() { ! grep -q 'Dataset not found' "$log"; }
check "no error from collectd about types" no_dataset_error

# The shipped thresholds for the accept and drops groups, and the accept
# module's own notification naming the port.
has_notification() { # SEVERITY PINST TINST
  grep -q "severity = $1, host = integration, plugin = stap, plugin_instance = $2, type = [a-z_]*, type_instance = $3," "$log"
}
check "threshold WARNING for accept-queue overflows (40-50/s over two intervals)" has_notification WARNING accept accept-queue-overflows
check "threshold OKAY once overflows stop" has_notification OKAY accept accept-queue-overflows
check "the accept module's WARNING naming the port is dispatched" \
  grep -q 'plugin_instance = accept, type = protocol_counter, type_instance = accept-queue-overflows-port-8080, message = listen queue overflow on port 8080' "$log"
check "threshold WARNING for drops above 1000/s" has_notification WARNING drops total
check "threshold OKAY once drops stop" has_notification OKAY drops total
check "a group whose module is missing is reported with what to do" \
  grep -q 'group udp: module .*collectd_stap_udp.ko: No such file or directory. Build it with' "$log"
check "... and the other groups carry on (accept values arrived)" \
  test -n "$(ls "$out"/csv/integration/stap-accept/protocol_counter-accept-queue-overflows-20* 2>/dev/null)"

# A session recorded from the real module in the VM, replayed as it was: the
# dispatched values are the module's totals, batch by batch.
rec=$out/recorded
mkdir -p "$rec/modules"
cp "$top/tests/data/tcp-vm.replay" "$rec/modules/collectd_stap_tcp.ko"
sed -e "s|$out/csv|$rec/csv|" -e "s|$out/modules|$rec/modules|" -e "s|$out/collectd.log|$rec/collectd.log|" \
  -e "/Include .*stap-thresholds.conf/d" "$out/collectd.conf" >"$rec/collectd.conf"
want=$(awk '$1 == "derive" && $4 == "retransmits" {print $5}' "$rec/modules/collectd_stap_tcp.ko" | tr '\n' ' ')
timeout --preserve-status -s INT 4 collectd -f -C "$rec/collectd.conf" >"$rec/collectd.stdout" 2>&1
got=$(tail -n +2 "$rec"/csv/integration/stap-tcp/protocol_counter-retransmits-20* 2>/dev/null | cut -d, -f2 | tr '\n' ' ')
echo "recorded session: module printed: $want"
echo "recorded session: csv has:        $got"
same_as_recorded() { [ -n "$want" ] && [ "$got" = "$want" ]; }
check "a recorded VM session is dispatched batch by batch, unchanged" same_as_recorded

summary
