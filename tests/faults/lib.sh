# tests/faults/lib.sh -- helpers of the fault tier (sourced by
# tests/faults/run.sh; needs $top, the repository). Each scenario runs the
# real collectd with build/stap.so and copies of tests/fake-staprun in a
# directory of its own; these helpers write its configuration and replays,
# start and stop it, wait for what its log or csv files say, and read them.
# Every wait is bounded; nothing sleeps a fixed time to wait for something.

. "$top/tests/assert.sh"

# Milliseconds since the epoch.
ms() {
  local t=${EPOCHREALTIME/./}
  echo $((t / 1000))
}

# wait_for SECONDS CMD [ARG...]: runs CMD every 0.1 s until it succeeds
# (status 0) or SECONDS have passed (status 1).
wait_for() {
  local until=$(($(ms) + $1 * 1000))
  shift
  until "$@"; do
    (($(ms) < until)) || return 1
    sleep 0.1
  done
}


# scenario_dirs NAME: sets $dir (collectd's files: conf, log, csv), $lib (a
# trusted directory for what the plugin loads: the fake staprun, its fake
# /proc/modules, the modules), $mods, $staprun and $procmods.
scenario_dirs() {
  dir=$out/$1
  lib=$lib_base/$1
  rm -rf "$dir" "$lib"
  mkdir -p "$dir" "$lib/bin" "$lib/modules"
  mods=$lib/modules
  staprun=$lib/bin/staprun
  procmods=$lib/bin/proc-modules
  cp "$top/tests/fake-staprun" "$staprun"
  chmod 755 "$staprun"
  : >"$procmods"
}

# write_conf: collectd.conf in $dir (csv and logfile plugins, the plugin
# from build/) including $dir/stap.conf, which the scenario writes: its
# <Plugin stap> block.
write_conf() {
  cat >"$dir/collectd.conf" <<CONF
Hostname "faults"
Interval 1
BaseDir "$dir"
PIDFile "$dir/collectd.pid"
TypesDB "/usr/share/collectd/types.db" "$top/collectd.conf.d/stap.types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$dir/collectd.log"
  Timestamp true
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$dir/csv"
  StoreRates false
</Plugin>
PluginDir "$top/build"
LoadPlugin stap
Include "$dir/stap.conf"
CONF
}

# start_collectd [WRAPPER...]: collectd in the foreground of a background
# job (under WRAPPER, e.g. valgrind); sets $cpid and $started_ms.
start_collectd() {
  "$@" collectd -f -C "$dir/collectd.conf" >"$dir/collectd.stdout" 2>&1 &
  cpid=$!
  started_ms=$(ms)
}

alive() { kill -0 "$cpid" 2>/dev/null; }
gone() { ! kill -0 "$cpid" 2>/dev/null; }

# stop_collectd SECONDS: SIGINT, then waits at most SECONDS for collectd to
# exit (SIGKILL after that). Sets $stop_ms (how long it took) and $cstatus.
stop_collectd() {
  local t0
  t0=$(ms)
  kill -INT "$cpid" 2>/dev/null
  if ! wait_for "$1" gone; then
    bad "collectd did not exit within $1 s of SIGINT"
    kill -KILL "$cpid" 2>/dev/null
  fi
  stop_ms=$(($(ms) - t0))
  wait "$cpid"
  cstatus=$?
}

log() { cat "$dir/collectd.log" 2>/dev/null; }
# logged TEXT: the log has a line containing TEXT (fixed string).
logged() { grep -qF -- "$1" "$dir/collectd.log" 2>/dev/null; }
# logged_re REGEX
logged_re() { grep -qE -- "$1" "$dir/collectd.log" 2>/dev/null; }
# count_re REGEX: how many log lines match.
count_re() { grep -cE -- "$1" "$dir/collectd.log" 2>/dev/null; }
not_logged() { ! logged "$1"; }

# csv PINST NAME: the value column of the csv file(s) of plugin instance
# stap-PINST, file NAME (type-type_instance), oldest first.
csv() {
  local f
  for f in "$dir"/csv/faults/stap-$1/$2-20*; do
    [ -f "$f" ] && tail -n +2 "$f"
  done | cut -d, -f2
}
# csv_rows PINST NAME: how many values were written.
csv_rows() { csv "$1" "$2" | grep -c .; }
csv_last() { csv "$1" "$2" | tail -1; }
# csv_cols PINST NAME: every value column of the rows (for two data sources).
csv_all() {
  local f
  for f in "$dir"/csv/faults/stap-$1/$2-20*; do
    [ -f "$f" ] && tail -n +2 "$f"
  done | cut -d, -f2-
}
has_csv() { compgen -G "$dir/csv/faults/stap-$1/$2-20*" >/dev/null; }
# monotonic: the numbers on stdin never decrease.
monotonic() { awk 'BEGIN { p = -1 } { if ($1 + 0 < p) exit 1; p = $1 + 0 }'; }
csv_monotonic() { csv "$1" "$2" | monotonic; }
# csv_at_least PINST NAME N: at least N values written.
csv_at_least() { [ "$(csv_rows "$1" "$2")" -ge "$3" ]; }
# csv_last_is PINST NAME V: the last value is V (numerically: a gauge is
# written as 1.000000).
csv_last_is() {
  local v
  v=$(csv_last "$1" "$2")
  [ -n "$v" ] && awk -v a="$v" -v b="$3" 'BEGIN { exit !(a + 0 == b + 0) }'
}

# flowing PINST NAME: the series gets at least two more values (bounded):
# a group that the fault must not affect keeps delivering.
flowing() {
  local n
  n=$(csv_rows "$1" "$2")
  wait_for 10 csv_at_least "$1" "$2" $((n + 2))
}

# pid_of GROUP: the pid of the staprun (fake) the group last started, from
# the log line "group G: started STAPRUN (pid N) on MODULE".
pid_of() {
  grep -F "group $1: started " "$dir/collectd.log" | tail -1 |
    sed -n 's/.* (pid \([0-9]*\)) on .*/\1/p'
}

# Processes left: fake stapruns of this scenario, keepers (they carry
# collectd's command line), strays the fakes started.
fakes_left() { pgrep -f -- "$staprun " >/dev/null; }
keepers_left() { pgrep -f -- "collectd -f -C $dir/collectd.conf" >/dev/null; }
nothing_left() { ! fakes_left && ! keepers_left && ! alive; }
listed() { grep -q "^collectd_stap_$1 " "$procmods"; }
# The raw control bytes a module printed never reach the log.
no_raw_control() { ! LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$dir/collectd.log"; }

# timing NAME: prints how long after collectd's start NAME was seen, and
# keeps it for the summary.
timings=()
timing() {
  local t
  t=$(awk -v d=$(($(ms) - started_ms)) 'BEGIN { printf "%.1f", d / 1000 }')
  echo "timing: $1: ${t} s after collectd started"
  timings+=("$t s  $1")
}

# batches PINST N SLEEP [STEP] [START] [SEQ]: N batches of a module session,
# numbered from SEQ (1), one every SLEEP s, each with one counter (PINST
# protocol_counter flow) that climbs by STEP (10) from START (10): a group's
# "data flowing" witness.
batches() {
  local p=$1 n=$2 s=$3 step=${4:-10} start=${5:-10} seq=${6:-1} i
  for ((i = 0; i < n; i++)); do
    echo "begin $((seq + i))"
    echo "derive $p protocol_counter flow $((start + i * step))"
    echo "end $((seq + i)) 1"
    echo "@sleep $s"
  done
}

# The end of a session: wait for SIGTERM, then unload (leave the fake module
# list).
session_end() { printf '@wait-term\n@on-term\n@remove\n'; }

# climb GROUP N SLEEP [STEP] [START]: a whole module session: inserted in
# the fake module list, hello, batches of the group's counter, removed on
# SIGTERM.
climb() {
  printf '@insert\nhello 1 %s\n' "$1"
  batches "$1" "$2" "$3" "${4:-10}" "${5:-10}"
  session_end
}
