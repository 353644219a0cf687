#!/bin/bash
# The plugin against collectd's exec plugin, through the real collectd daemon
# (issue 10, "Userspace"): 9 groups x 4096 series, one batch per 1 s
# interval. Each repetition runs two daemons side by side, so that both see
# the same load on a shared machine (their batches half an interval apart,
# so that neither's burst of values competes with the other's; the first
# batch, when every series is new to the reader, is not measured):
#   stap: build/stap.so, each group's staprun being tests/bench/bench_feed,
#         which prints the group's series in the record protocol;
#   exec: the exec plugin, one child per group (bench_feed --putval) printing
#         the same series with the same values as PUTVAL lines.
# Both daemons write through tests/bench/null_write.c, a writer that does
# nothing: every value still goes through collectd's write queue, its value
# cache and filter chain, as in production. (Without any write plugin
# collectd 5.12 logs a line per value, which would load the machine.)
#
# CPU: what the readers cost per dispatched value. The reader is the thread
# that reads the child's pipe, parses and dispatches: the plugin's group
# threads ("stap/GROUP") against exec's read threads ("exec read"). Their
# run time comes from /proc/PID/task/TID/schedstat (nanoseconds, unlike the
# 10 ms ticks of stat), taken when the feeders start and after they have
# printed their last batch and every value fed has reached the writer
# (null_write counts them); the values are counted exactly (every feeder
# prints BATCHES batches). A repetition where a feeder did not finish or a
# daemon's writer got fewer values than were fed fails the benchmark: a
# reader that dispatched nothing costs nothing. Whole-process CPU would add collectd's write
# threads, the same work on both sides that neither plugin can change, and
# would only dilute the ratio.
# Memory: each daemon's VmRSS after the last batch (steady) and VmHWM (peak).
#
# Prints one row per repetition and the medians with their range; exits 1
# when the median CPU ratio exceeds BENCH_CPU_MAX or the median steady or
# peak memory ratio exceeds BENCH_RSS_MAX.
#   collectd.sh OUT BIN     OUT: evidence directory; BIN: where bench_feed and
#                           null_write.so were built
# Knobs (environment): BENCH_REPS (5), BENCH_BATCHES (15), BENCH_SERIES
# (4096), BENCH_CPU_MAX (0.5), BENCH_RSS_MAX (1.2), BENCH_PLUGIN_DIR (where
# stap.so is: build/; another build to compare, e.g. an older release's).
set -u
umask 022
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$top/build/bench/collectd}")
bin=$(realpath "${2:-$top/build/bench}")
feed=$bin/bench_feed
reps=${BENCH_REPS:-5}
batches=${BENCH_BATCHES:-15}
series=${BENCH_SERIES:-4096}
plugin_dir=$(realpath "${BENCH_PLUGIN_DIR:-$top/build}")
cpu_max=${BENCH_CPU_MAX:-0.5}
rss_max=${BENCH_RSS_MAX:-1.2}
groups="tcp accept connect drops netdev netfilter ipmib udp socket"
ngroups=9

. "$top/tests/assert.sh" # trusted

rm -rf "$out"
mkdir -p "$out"
# The plugin runs only a staprun and modules that root alone can change:
# they go in $out, or in the project's cache when $out is where others can
# write (a checkout under /tmp).
lib=$out/lib
if ! trusted "$out"; then
  lib=$HOME/.cache/collectd-stap/bench
  echo "note: $out is not a trusted directory; the plugin's files are in $lib"
fi
rm -rf "$lib"
mkdir -p "$lib/modules" "$lib/bin"
cp "$feed" "$lib/bin/staprun"
: >"$lib/proc-modules"
# exec runs its children as nobody, who may not reach $out (a checkout under
# /root): its copy of the feeder and both control directories go in /tmp.
tmp=$(mktemp -d /tmp/collectd-stap-bench.XXXXXX)
chmod 755 "$tmp"
cp "$feed" "$tmp/bench_feed"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# conf SIDE DIR CTL: the daemon's configuration.
conf() {
  cat <<CONF
Hostname "bench"
Interval 1
BaseDir "$2"
PIDFile "$2/collectd.pid"
TypesDB "/usr/share/collectd/types.db" "$top/collectd.conf.d/stap.types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$2/collectd.log"
  Timestamp true
</Plugin>
PluginDir "$bin"
LoadPlugin null_write
PluginDir "/usr/lib/collectd"
CONF
  local g
  if [ "$1" = stap ]; then
    echo "PluginDir \"$plugin_dir\""
    echo "LoadPlugin stap"
    echo "<Plugin stap>"
    echo "  Staprun \"$lib/bin/staprun\""
    echo "  ModuleDir \"$lib/modules\""
    echo "  ProcModules \"$lib/proc-modules\""
    echo "  StopTimeout 2"
    for g in $groups; do
      echo "$series $batches $3" >"$lib/modules/collectd_stap_$g.ko"
      echo "  <Group \"$g\">"
      echo "  </Group>"
    done
    echo "</Plugin>"
  else
    echo "LoadPlugin exec"
    echo "<Plugin exec>"
    for g in $groups; do
      echo "  Exec \"nobody\" \"$tmp/bench_feed\" \"--putval\" \"$g\" \"$series\" \"$batches\" \"$3\" \"1000\""
    done
    echo "</Plugin>"
  fi
}

# readers PID SIDE: the reader threads' ids.
readers() {
  local t comm
  for t in /proc/"$1"/task/*; do
    comm=$(cat "$t/comm" 2>/dev/null) || continue
    case "$2:$comm" in
    stap:stap/*) echo "${t##*/}" ;;
    exec:exec\ read*) echo "${t##*/}" ;;
    esac
  done
}

# stats PID TIDS...: their run time (ns) and context switches, summed.
stats() {
  local pid=$1 ns=0 cs=0 t x k v
  shift
  for t in "$@"; do
    read -r x _ <"/proc/$pid/task/$t/schedstat" || return 1
    ns=$((ns + x))
    while read -r k v; do
      case $k in *ctxt_switches:) cs=$((cs + v)) ;; esac
    done <"/proc/$pid/task/$t/status"
  done
  echo "$ns $cs"
}

# written SIDE: the values the daemon's writer was given (null_write's count).
written() {
  local n
  n=$(cat "${dir[$1]}/written" 2>/dev/null)
  echo "${n:-0}"
}

# broken WHY: a repetition that measured nothing real stops the benchmark.
broken() {
  echo "collectd bench: FAILED: repetition $rep: $1" >&2
  exit 1
}

rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

results=$out/results
: >"$results"
printf '%-4s %10s %10s %6s %9s %9s %6s %9s %9s %6s %8s %8s\n' rep \
  "stap ns/v" "exec ns/v" ratio "stap RSS" "exec RSS" ratio \
  "stap HWM" "exec HWM" ratio "stap cs" "exec cs"
for rep in $(seq 1 "$reps"); do
  declare -A pid tids cpu0 dir
  for side in stap exec; do
    dir[$side]=$out/$rep-$side
    mkdir -p "${dir[$side]}"
    ctl=$tmp/$rep-$side
    mkdir -p "$ctl"
    chmod 777 "$ctl" # exec's children (nobody) say when they are done
    conf "$side" "${dir[$side]}" "$ctl" >"${dir[$side]}/collectd.conf"
  done
  for side in stap exec; do
    NULL_WRITE_COUNT=${dir[$side]}/written \
      collectd -f -C "${dir[$side]}/collectd.conf" >"${dir[$side]}/stdout" 2>&1 &
    pid[$side]=$!
    pids+=("$!")
  done
  # Ready when every reader thread is there (exec starts its children at its
  # first read, the plugin at init) and has taken the first batch, which
  # each feeder prints at once: its series are new to the reader then, and
  # that is not the steady state measured.
  for _ in $(seq 1 100); do
    ready=1
    for side in stap exec; do
      n=$(readers "${pid[$side]}" "$side" | wc -l)
      [ "$n" = "$ngroups" ] || ready=0
    done
    [ "$ready" = 1 ] && break
    sleep 0.1
  done
  sleep 2
  for side in stap exec; do
    tids[$side]=$(readers "${pid[$side]}" "$side" | tr '\n' ' ')
    # shellcheck disable=SC2086
    cpu0[$side]=$(stats "${pid[$side]}" ${tids[$side]})
  done
  # The two sides' batches half an interval apart: each daemon's burst of
  # values has the machine to itself rather than the other's.
  touch "$tmp/$rep-stap/go"
  sleep 0.5
  touch "$tmp/$rep-exec/go"
  for _ in $(seq 1 $((batches * 20 + 200))); do
    [ "$(cat "$tmp/$rep-stap/done" "$tmp/$rep-exec/done" 2>/dev/null | wc -l)" -ge $((2 * ngroups)) ] && break
    sleep 0.1
  done
  for side in stap exec; do
    finished=$(cat "$tmp/$rep-$side/done" 2>/dev/null | wc -l)
    [ "$finished" = "$ngroups" ] ||
      broken "$side: $finished of $ngroups feeders printed their $batches batches; see ${dir[$side]}/collectd.log"
  done
  # The last batch is in the pipes: wait until every value fed has reached
  # the writer (null_write counts them; the plugin adds its health values).
  values=$((batches * series * ngroups))
  fed=$(((batches + 1) * series * ngroups))
  for _ in $(seq 1 300); do
    [ "$(written stap)" -ge $fed ] && [ "$(written exec)" -ge $fed ] && break
    sleep 0.1
  done
  for side in stap exec; do
    [ "$(written $side)" -ge $fed ] ||
      broken "$side: $(written $side) values written of the $fed fed; see ${dir[$side]}/collectd.log"
  done
  row=$rep
  for side in stap exec; do
    # shellcheck disable=SC2086
    read -r ns1 cs1 < <(stats "${pid[$side]}" ${tids[$side]})
    read -r ns0 cs0 <<<"${cpu0[$side]}"
    row="$row $side $(((ns1 - ns0) / values))"
    row="$row $(rss_kib "${pid[$side]}" VmRSS) $(rss_kib "${pid[$side]}" VmHWM)"
    row="$row $(((cs1 - cs0) * 1000 / values))"
  done
  echo "$row" >>"$results"
  for side in stap exec; do kill -INT "${pid[$side]}"; done
  for side in stap exec; do wait "${pid[$side]}"; done
  pids=()
  echo "$row" | awk '{ printf "%-4s %10d %10d %6.2f %9d %9d %6.2f %9d %9d %6.2f %8d %8d\n",
    $1, $3, $8, $3 / $8, $4, $9, $4 / $9, $5, $10, $5 / $10, $6, $11 }'
  unset pid tids cpu0 dir
done

python3 - "$results" "$cpu_max" "$rss_max" "$reps" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
cpu_max, rss_max, reps = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
# Fields: rep, "stap", ns/value, RSS KiB, peak KiB, switches/1000 values,
# then the same for "exec".
def col(i): return [float(r[i]) for r in rows]
def ratio(i, j): return [a / b for a, b in zip(col(i), col(j))]
def show(name, xs, unit=""):
    print("%-22s median %9.2f%s  (min %.2f, max %.2f)" % (name, statistics.median(xs), unit, min(xs), max(xs)))
    return statistics.median(xs)
print("--- %d repetitions, 9 groups x %s series, null writer ---" % (len(rows), "4096"))
show("stap reader ns/value", col(2))
show("exec reader ns/value", col(7))
cpu = show("CPU ratio stap/exec", ratio(2, 7))
show("stap RSS MiB", [x / 1024 for x in col(3)])
show("exec RSS MiB", [x / 1024 for x in col(8)])
rss = show("RSS ratio stap/exec", ratio(3, 8))
peak = show("peak RSS ratio", ratio(4, 9))
show("stap switches/1000 v", col(5))
show("exec switches/1000 v", col(10))
bad = []
if len(rows) != reps: bad.append("only %d of %d repetitions measured" % (len(rows), reps))
if cpu > cpu_max: bad.append("CPU ratio %.2f > %.2f" % (cpu, cpu_max))
if rss > rss_max: bad.append("RSS ratio %.2f > %.2f" % (rss, rss_max))
if peak > rss_max: bad.append("peak RSS ratio %.2f > %.2f" % (peak, rss_max))
print("collectd bench: " + ("FAILED: " + "; ".join(bad) if bad else "ok (CPU <= %.2f, RSS <= %.2f)" % (cpu_max, rss_max)))
sys.exit(1 if bad else 0)
PY
