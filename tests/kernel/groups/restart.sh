#!/bin/bash
# Kernel scenario "restart": self-healing after a SIGKILL (issue 8, item 4). collectd runs the
# tcp and udp groups (Interval 1 s, RestartDelay 1 s); with netem loss on lo making retransmits
# and a UDP sender keeping the udp group's values moving, the tcp group's stapio is killed with
# SIGKILL. Its module stays loaded with nobody reading it, and every start would fail with
# "File exists" unless the plugin detaches it first. Asserts:
#  (1) the group is back in one restart: the exit is reported, the leftover module is named in
#      the log, detached with `staprun -d' (status 0) and removed, staprun started again, the
#      module says hello and its batch 1 is dispatched, stap_running goes 0 and then 1 again.
#      Bound: the last of (stap_running 1, the new module's first csv row) comes at most
#        RestartDelay + Interval + DETACH + LOAD + 1 s
#      after the kill. DETACH (`staprun -d' of the old module: its end probe and the
#      unregistration) and LOAD (staprun to the module's hello) are staprun's and the kernel's
#      work, measured in this run from the log's lines as they appear (collectd.log.stamped:
#      a real-time-priority reader stamps each line); under TCG they are seconds each, on
#      hardware a fraction of one. The first batch is printed at the module's first tick, right
#      after its hello; stap_running is read once an interval, hence the Interval; the 1 s is
#      for the plugin's own steps (noticing the exit, the checks before a start, spawning) and
#      the stamping.
#      Also: the restart was attempted within RestartDelay + 1 s of the kill, a single
#      restart (stap_events-restarts 1), no "File exists", collectd alive, one new stapio.
#  (2) retransmits: the plugin's total V against the kernel's Tcp RetransSegs delta D (R0 read
#      before collectd started, R_end after the load ended, V from a batch dispatched 3 batches
#      after R_end, and R_end2 read after V):
#        D - DOWN - TOL <= V <= R_end2 - R0
#      DOWN = R_back - R_pre, from readings of RetransSegs every 0.1 s (snmp-samples.txt, each
#      stamped before it is read) -- what the kernel counted while the plugin could not see:
#        R_pre:  the last reading below R0 + V_old (V_old: the old module's last dispatched
#                total). The module cannot count a retransmit before the kernel has (both
#                tracepoints fire after the kernel adds to RetransSegs), so that reading was
#                taken before the old module's last dispatched batch. What came after that
#                batch is lost: stapio was killed with batches unread, and the old module's
#                last batch at its unload goes nowhere.
#        R_back: the first reading stamped after the csv stamp of the first batch in which the
#                new module had counted a retransmit (the plugin stamps a batch once it has read
#                all of it), so after its tracepoints were registered.
#      So every retransmit the plugin could not see is in [R_pre, R_back]; the window is wider
#      than the outage by up to one batch (the new module counts before the batch that proves
#      it), and an old-session shortfall falls into it too (tcp.sh checks that one). The kernel's
#      count at the kill and at the new module's hello are reported beside it, but that narrower
#      window is not a bound: it misses what the old module counted after its last delivered
#      batch, and what came after the hello before the new module counted (in a passing run the
#      plugin missed 44 with 40 between the kill and the hello, none before the kill).
#      TOL is the one of tests/kernel/groups/tcp.sh: the module's own probes_skipped +
#      handler_errors (both sessions: the plugin carries counters across the restart), TcpExt
#      TCPRetransFail, and the -EBUSY retransmits the kernel counts without a tracepoint
#      (untraced_retx, max(2, 2% of D)). Also: the new module counted, the total never went back.
#  (3) the udp group's values kept flowing through the kill: its sendmsg rows stamped between
#      the kill and the tcp group's return climb; its stap_running stayed 1, no restart, no
#      batch gap. At the end no staprun/stapio and no collectd_stap_* module (so no leftover of
#      the tcp module), a clean stop of both groups, handler_errors 0, no abort text.
# Every wait has a deadline; no fixed sleep is taken as proof. Leaves collectd.log (and
# collectd.log.stamped), csv/, snmp-samples.txt, measurements.txt and process and module
# listings in $GUEST_RESULTS.
. "$(dirname "$0")/../scenario.sh"
kt_require_module tcp
kt_require_module udp
port=5201
uport=5291
restart_delay=1 # RestartDelay, set below
interval=1      # the groups' Interval: collectd's global Interval of kt_collectd_conf
slack=1         # s, see (1)
tcsv=$csv/stap-tcp
ucsv=$csv/stap-udp
log=$out/collectd.log
stamped=$out/collectd.log.stamped
samples=/tmp/kt-restart-snmp.txt

# Seconds with fractions.
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
retx() { kt_last "$tcsv/protocol_counter-retransmits"; }
retx_at_least() { local v; v=$(retx); [ -n "$v" ] && [ "$v" -ge "$1" ]; }
# The tcp group's stapio (staprun execs it): its command line names the module.
tcp_stapio() {
  local p
  for p in $(pgrep -x stapio); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q 'collectd_stap_tcp\.ko' && echo "$p"
  done
}
collectd_alive() { kill -0 "$kt_cpid" 2>/dev/null; }
listing() { # FILE: processes and modules of the moment
  { ps -eo pid,pgid,ppid,comm,args | grep -E 'PID|stap|collectd' | grep -v grep; grep collectd_stap /proc/modules; } >"$1"
}

load='' witness='' sampler='' stamper=''
stop_pid() { [ -z "$1" ] || { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }; }
cleanup() {
  netem_stop >/dev/null 2>&1
  stop_pid "$load"; load=''
  stop_pid "$witness"; witness=''
  stop_pid "$sampler"; sampler=''
  cp "$samples" "$out/snmp-samples.txt" 2>/dev/null
}
give_up() { # WHY: evidence, a stop, the summary
  bad "$1"
  tail -40 "$log" | sed 's/^/  log: /'
  cleanup
  collectd_alive && kt_collectd_stop
  stop_pid "$stamper"
  kt_done
  exit 1
}

kt_collectd_conf tcp,udp
cat >>"$out/collectd.conf" <<CONF
<Plugin stap>
  RestartDelay $restart_delay
  RestartDelayMax 60
</Plugin>
CONF
r0=$(snmp_counter Tcp RetransSegs)
f0=$(snmp_counter TcpExt TCPRetransFail)
say "RetransSegs before collectd: $r0"
kt_collectd_start "$tcsv/protocol_counter-retransmits" || give_up "collectd did not start"

# The log's lines stamped as they appear: tail polls the file (on the 9p results share, so no
# inotify) every 20 ms and ends with collectd; both run at real-time priority so that a busy
# guest does not delay the stamps. Line N of the stamped file is line N of the log.
rt=(chrt -f 20)
"${rt[@]}" true 2>/dev/null || rt=()
"${rt[@]}" tail -s 0.02 -n +1 --pid="$kt_cpid" -F "$log" 2>/dev/null |
  "${rt[@]}" bash -c 'while IFS= read -r l; do printf "%s %s\n" "$EPOCHREALTIME" "$l"; done' >"$stamped" &
stamper=$!
wait_for 120 rows_at_least "$ucsv/stap_module-probes_skipped" 1 || give_up "no udp batch within 120 s"

# RetransSegs every 0.1 s, each reading stamped before it is taken.
python3 - "$samples" <<'PY' &
import sys, time
out = open(sys.argv[1], "w", buffering=1)
def retrans():
    with open("/proc/net/snmp") as f:
        tcp = [l.split() for l in f if l.startswith("Tcp:")]
    return tcp[1][tcp[0].index("RetransSegs")]
end = time.monotonic() + 300
while time.monotonic() < end:
    t = time.time()
    out.write("%.6f %s\n" % (t, retrans()))
    time.sleep(0.1)
PY
sampler=$!

# The udp group's witness traffic: 20 datagrams a second to a local reader, for at most 150 s.
timeout 160 python3 - "$uport" 150 >"$out/udp-witness.txt" 2>&1 <<'PY' &
import socket, sys, threading, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("127.0.0.1", port))
r.settimeout(0.2)
def drain():
    while True:
        try:
            r.recv(2048)
        except socket.timeout:
            pass
threading.Thread(target=drain, daemon=True).start()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end, n = time.monotonic() + secs, 0
while time.monotonic() < end:
    s.sendto(b"x" * 64, ("127.0.0.1", port))
    n += 1
    time.sleep(0.05)
print("sent=%d" % n)
PY
witness=$!

# Loss and load for as long as the scenario needs them (stopped below, at most 150 s).
say "load: 4 clients of 20 kB transfers to 127.0.0.1:$port, netem 20% loss on lo"
netem_loss_start 20 || give_up "cannot add netem loss on lo"
"$top/tests/kernel/tcp_load.py" $port 150 4 20000 >"$out/transfers.txt" 2>&1 &
load=$!
wait_for 90 retx_at_least 20 || give_up "fewer than 20 retransmits reported within 90 s of loss"

old=$(tcp_stapio)
[ -n "$old" ] && [ "$(wc -w <<<"$old")" = 1 ] || give_up "not one stapio for tcp: '${old}'"
listing "$out/before-kill.txt"
mark=$(wc -l <"$log")
t_kill=$EPOCHREALTIME
kill -KILL "$old"
say "killed tcp's stapio (pid $old) at $(date -d @"${t_kill%.*}" +%T) (log line $mark)"

# (1) The restart, from the stamped log: the first line after the kill matching each step.
stamp_of() { tail -n +"$((mark + 1))" "$stamped" | grep -m1 -- "$1" | cut -d' ' -f1; }
has_stamp() { [ -n "$(stamp_of "$1")" ]; }
steps=(
  "exit|group tcp: staprun on .* was killed by signal 9"
  "restart due|group tcp: restarting staprun in ${restart_delay}.0 s"
  "leftover named|group tcp: module collectd_stap_tcp is still loaded (left behind by a staprun or collectd that was killed); detaching and removing it"
  "staprun -d status 0|group tcp: \`[^ ]*staprun -d collectd_stap_tcp' exited with status 0"
  "detached and removed|group tcp: module collectd_stap_tcp detached and removed"
  "staprun started|group tcp: started .*staprun (pid [0-9]*)"
  "hello|group tcp: module .* is up"
  "batch 1|group tcp: module says: batch 1 used"
)
wait_for 90 has_stamp "${steps[-1]#*|}" || give_up "(1) no batch 1 of a new tcp module logged within 90 s of the kill"

# From the csv (collectd's stamps): the first stap_running 0 after the kill (read after the
# old run's output was drained, so later batch rows are the new module's), the first 1 after
# it, and the first retransmits row after it.
t_down='' t_up='' t_batch=''
back_in_csv() {
  t_down=$(kt_rows "$tcsv/stap_running" | awk -F, -v t="$t_kill" '$1 > t && $2 + 0 == 0 { print $1; exit }')
  [ -n "$t_down" ] || return 1
  t_up=$(kt_rows "$tcsv/stap_running" | awk -F, -v t="$t_down" '$1 > t && $2 + 0 == 1 { print $1; exit }')
  t_batch=$(kt_rows "$tcsv/protocol_counter-retransmits" | awk -F, -v t="$t_down" '$1 > t { print $1; exit }')
  [ -n "$t_up" ] && [ -n "$t_batch" ]
}
wait_for 30 back_in_csv || give_up "(1) csv: no stap_running 0 then 1 and new batch after the kill (down ${t_down:-none}, up ${t_up:-none}, batch ${t_batch:-none})"
t_back=$(awk -v a="$t_up" -v b="$t_batch" 'BEGIN { print (a + 0 > b + 0) ? a : b }')
v_old=$(kt_rows "$tcsv/protocol_counter-retransmits" | awk -F, -v t="$t_down" '$1 < t { v = $2 } END { print v + 0 }')

# The first batch in which the new module had counted a retransmit, then a reading after it.
t_counted=''
new_counted() {
  t_counted=$(kt_rows "$tcsv/protocol_counter-retransmits" | awk -F, -v t="$t_down" -v v="$v_old" '$1 > t && $2 + 0 > v { print $1; exit }')
  [ -n "$t_counted" ]
}
wait_for 60 new_counted || give_up "(2) the new module counted no retransmit within 60 s (total stays $v_old)"
sample_after() { awk -v t="$1" '$1 >= t { print $2; exit }' "$samples"; }
has_sample_after() { [ -n "$(sample_after "$1")" ]; }
wait_for 30 has_sample_after "$t_counted" || give_up "(2) no RetransSegs reading after $t_counted"
# The restart's evidence is in: end the loss and the load before looking at it (the guest is
# busy while they run); the udp witness goes on. Further below, pending retransmit timers are
# left to fire (at most 30 s, not a proof of anything: the readings do not depend on it).
netem_stop
stop_pid "$load"
load=''
t_stop=$EPOCHREALTIME
say "loss off and load stopped $(calc "$t_stop - $t_kill") s after the kill"
new=$(tcp_stapio)
listing "$out/after-restart.txt"

# Each step's stamp, in the order the plugin takes them.
declare -A at
prev=$t_kill
for s in "${steps[@]}"; do
  name=${s%%|*}
  at[$name]=$(stamp_of "${s#*|}")
  if [ -z "${at[$name]}" ]; then
    bad "(1) no '${s#*|}' in the log after the kill"
    at[$name]=$prev
  else
    check "(1) logged after the kill, in order: $name (+$(calc "${at[$name]} - $t_kill") s)" le "$prev" "${at[$name]}"
    prev=${at[$name]}
  fi
done

check "(1) one new stapio for tcp (${new:-none}, was $old)" bash -c '[ -n "$1" ] && [ "$(wc -w <<<"$1")" = 1 ] && [ "$1" != "$2" ]' _ "$new" "$old"
check "(1) the killed stapio is gone" bash -c '! kill -0 "$1" 2>/dev/null' _ "$old"
check "(1) collectd still running" collectd_alive
check "(1) one restart only: a single 'restarting staprun' after the kill" \
  [ "$(tail -n +"$((mark + 1))" "$log" | grep -c 'group tcp: restarting staprun')" = 1 ]
check "(1) no 'File exists' in the log" bash -c '! grep -q "File exists" "$1"' _ "$log"

settled() {
  rows_after "$tcsv/protocol_counter-retransmits" "$t_stop" 3 &&
    [ "$(kt_rows "$tcsv/protocol_counter-retransmits" | tail -3 | cut -d, -f2 | sort -u | wc -l)" = 1 ]
}
wait_for 30 settled
r_end=$(snmp_counter Tcp RetransSegs)
t_end=$EPOCHREALTIME
say "R_end read $(calc "$t_end - $t_stop") s later"
# Three batches dispatched after R_end: the last one was taken after it.
wait_for 30 rows_after "$tcsv/protocol_counter-retransmits" "$t_end" 3 ||
  bad "(2) no 3 batches within 30 s after the last RetransSegs reading"
v=$(retx)
skipped=$(kt_last "$tcsv/stap_module-probes_skipped")
errors=$(kt_last "$tcsv/stap_module-handler_errors")
r_end2=$(snmp_counter Tcp RetransSegs)
f1=$(snmp_counter TcpExt TCPRetransFail)
restarts=$(kt_last "$tcsv/stap_events-restarts")
decreases=$(kt_last "$tcsv/stap_events-decreases")
u_restarts=$(kt_last "$ucsv/stap_events-restarts")
u_gaps=$(kt_last "$ucsv/stap_events-gaps")
u_errors=$(kt_last "$ucsv/stap_module-handler_errors")
check "(1) collectd still running at the end" collectd_alive
cleanup
kt_collectd_stop tcp
# tail follows collectd's pid: the stamper ends on its own once the last lines are stamped.
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_for 10 gone "$stamper"
stop_pid "$stamper"
check "(c) clean stop of group udp logged" grep -q 'group udp: staprun stopped (exited with status 0)' "$log"

# ---- figures
d=$((r_end - r0))
d2=$((r_end2 - r0))
r_pre=$(awk -v lim=$((r0 + v_old)) '$2 < lim { r = $2; t = $1 } END { print r }' "$samples")
t_pre=$(awk -v lim=$((r0 + v_old)) '$2 < lim { t = $1 } END { print t }' "$samples")
r_back=$(sample_after "$t_counted")
t_rback=$(awk -v t="$t_counted" '$1 >= t { print $1; exit }' "$samples")
r_kill=$(sample_after "$t_kill")
r_hello=$(sample_after "${at[hello]}")
down=$((r_back - r_pre))
fails=$((f1 - f0))
tol=$((${skipped:-0} + ${errors:-0} + fails + $(untraced_retx "$d")))
since() { calc "${at[$1]} - $t_kill"; }
t_detach=$(calc "${at[detached and removed]} - ${at[leftover named]}")
t_load=$(calc "${at[hello]} - ${at[detached and removed]}")
back=$(calc "$t_back - $t_kill")
bound=$(calc "$restart_delay + $interval + $t_detach + $t_load + $slack")
{
  echo "restart after SIGKILL of tcp's stapio (pid $old -> ${new:-none}); seconds after the kill:"
  echo "  exit reported $(since exit), restart due $(since 'restart due'); leftover module named $(since 'leftover named')"
  echo "  detached and removed $(since 'detached and removed') (DETACH $t_detach s); staprun started $(since 'staprun started')"
  echo "  hello $(since hello) (LOAD $t_load s); batch 1 logged $(since 'batch 1')"
  echo "  csv: stap_running 0 at $(calc "$t_down - $t_kill"), 1 at $(calc "$t_up - $t_kill"); first new batch row at $(calc "$t_batch - $t_kill"); first with a new retransmit at $(calc "$t_counted - $t_kill")"
  echo "  back after $back s; bound RestartDelay $restart_delay + Interval $interval + DETACH $t_detach + LOAD $t_load + $slack = $bound s"
  echo "retransmits: plugin total V $v (old session $v_old, new $((v - v_old))); Tcp RetransSegs delta D $d ($r0 -> $r_end; $d2 at the re-read after V)"
  echo "  DOWN [R_pre, R_back] = $r_pre -> $r_back = $down, over $(calc "$t_rback - $t_pre") s (R_pre $(calc "$t_pre - $t_kill") s from the kill, R_back $(calc "$t_rback - $t_kill") s)"
  echo "  RetransSegs at the kill $r_kill, at the hello $r_hello: $((r_hello - r_kill)) in between"
  echo "  missed by the plugin: D - V = $((d - v)); allowed DOWN $down + TOL $tol (probes_skipped ${skipped:-none}, handler_errors ${errors:-none}, TCPRetransFail $fails, untraced $(untraced_retx "$d"))"
  echo "  tcp stap_events: restarts ${restarts:-none}, decreases ${decreases:-none}; udp: restarts ${u_restarts:-none}, gaps ${u_gaps:-none}"
} | tee "$out/measurements.txt"

check "(1) back within the bound: $back <= $bound s" le "$back" "$bound"
check "(1) the restart was attempted within RestartDelay + $slack s of the kill ($(since 'leftover named') s)" \
  le "$(since 'leftover named')" "$((restart_delay + slack))"
check "(1) staprun -d within StopTimeout (10 s): $t_detach s" le "$t_detach" 10
check "(1) stap_events-restarts is 1 (${restarts:-none})" [ "${restarts:-x}" = 1 ]
check "(2) a reading before the old module's last batch (R_pre ${r_pre:-none})" [ -n "$r_pre" ]
check "(2) the new module counted retransmits ($((v - v_old)))" [ "$v" -gt "$v_old" ]
check "(2) never above the kernel: $v <= $d2" [ "$v" -le "$d2" ]
check "(2) short of the kernel by at most DOWN + TOL: $d - $v = $((d - v)) <= $down + $tol" [ $((d - v)) -le $((down + tol)) ]
check "(2) the total never went back (csv rows non-decreasing)" \
  bash -c 'awk -F, "FNR > 1 { if (\$2 + 0 < p) bad = 1; p = \$2 + 0 } END { exit bad }" "$1"-20*' _ "$tcsv/protocol_counter-retransmits"
check "(2) stap_events-decreases 0 (${decreases:-none})" [ "${decreases:-x}" = 0 ]
check "(2) tcp handler_errors 0 (${errors:-none})" [ "${errors:-x}" = 0 ]

# (3) The udp group through the tcp group's outage [kill, back].
uwin=$(kt_rows "$ucsv/operations-sendmsg-ipv4" | awk -F, -v a="$t_kill" -v b="$t_back" '$1 >= a && $1 <= b')
un=$(grep -c . <<<"$uwin")
ufirst=$(head -1 <<<"$uwin" | cut -d, -f2)
ulast=$(tail -1 <<<"$uwin" | cut -d, -f2)
echo "udp sendmsg-ipv4 while tcp was down: $un rows, ${ufirst:-none} -> ${ulast:-none}" | tee -a "$out/measurements.txt"
check "(3) udp rows kept coming while tcp was down ($un in $back s, at least 2)" [ "$un" -ge 2 ]
check "(3) and climbed (${ufirst:-none} -> ${ulast:-none})" bash -c '[ -n "$1" ] && [ -n "$2" ] && [ "${2%.*}" -gt "${1%.*}" ]' _ "$ufirst" "$ulast"
check "(3) udp stap_running stayed 1 from its first 1" \
  bash -c 'awk -F, "FNR > 1 { if (\$2 + 0 == 1) up = 1; else if (up) bad = 1 } END { exit bad || !up }" "$1"-20*' _ "$ucsv/stap_running"
check "(3) udp not restarted (${u_restarts:-none}), no batch gap (${u_gaps:-none}), handler_errors ${u_errors:-none}" \
  [ "${u_restarts:-x}/${u_gaps:-x}/${u_errors:-x}" = 0/0/0 ]
check "(c) no abort text in collectd.log" log_clean "$log"
grep -i collectd_stap /proc/modules >"$out/modules-after.txt" || true
kt_done
