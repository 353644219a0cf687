#!/bin/bash
# Fault tier: the real collectd daemon with build/stap.so and
# tests/fake-staprun, one scenario at a time, each breaking something on
# purpose and checking that the log names the thing and what to do, that
# the plugin counts it, and that the other groups' data keep flowing:
#   staprun    Staprun missing
#   runtime    one collectd, nine groups, each a fault but the tcp witness:
#              module missing, ENOSYS from insmod, SIGKILL of staprun
#              mid-run, staprun exiting at once (backoff), garbage output,
#              a batch cut mid-way, protocol version mismatch, writes into
#              another group's values and the plugin's health series; then
#              SIGKILL of collectd (the keepers stop everything)
#   trust      untrusted module paths (symbolic link, mode 0666, directory
#              0777, owned by nobody), a Param not in the module's list,
#              config typos (unknown option, group, bad value); then a
#              staprun that ignores SIGTERM at shutdown (SIGKILL after
#              StopTimeout, bounded)
#   valgrind   30 s of collectd under valgrind with a busy module and a
#              restarting one: no error attributed to stap.so
#   tests/faults/run.sh [OUTDIR] [SCENARIO...]
set -u
umask 022 # what the plugin loads must not be writable by group or others
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$top/build/faults-test}")
shift $(($# > 0 ? 1 : 0))
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(staprun runtime trust valgrind)
rm -rf "$out"
mkdir -p "$out"

. "$top/tests/faults/lib.sh"

# What the plugin loads goes in $out, unless others can write there (a
# checkout under /tmp): then in the project's cache in $HOME.
lib_base=$out/lib
if ! trusted "$out"; then
  lib_base=$HOME/.cache/collectd-stap/faults-test
  mkdir -p "$lib_base"
  trusted "$lib_base" || {
    echo "FAIL: neither $out nor $lib_base can hold modules the plugin trusts"
    exit 1
  }
  echo "note: $out is not a trusted directory; modules are in $lib_base"
fi
release=$(uname -r)

# ---- staprun: Staprun missing ----------------------------------------------
scenario_staprun() {
  echo "==> scenario staprun: the Staprun option names no file"
  scenario_dirs staprun
  climb tcp 100 0.3 >"$mods/collectd_stap_tcp.ko"
  cat >"$dir/stap.conf" <<CONF
<Plugin stap>
  Staprun "$lib/bin/no-such-staprun"
  ModuleDir "$mods"
  ProcModules "$procmods"
  RestartDelay 0.2
  RestartDelayMax 0.4
  <Group "tcp">
  </Group>
</Plugin>
CONF
  write_conf
  start_collectd
  local msg="group tcp: Staprun $lib/bin/no-such-staprun: No such file or directory. Install it with \`apt-get install systemtap-runtime' or set the Staprun option."
  two_refusals() { [ "$(grep -cF -- "$msg" "$dir/collectd.log" 2>/dev/null)" -ge 2 ]; }
  wait_for 15 two_refusals && timing "staprun missing: refused twice"
  check "staprun missing: the log names the path and how to fix it" logged "$msg"
  check "... it is checked again before every start (refused twice, backoff between)" two_refusals
  check "... with the restart logged" logged "group tcp: restarting staprun in 0.2 s"
  check "... the group's health says not running (stap_running 0)" \
    wait_for 10 csv_last_is tcp stap_running 0
  check "... no module was started" [ ! -e "$mods/collectd_stap_tcp.ko.runs" ]
  check "... collectd runs on, the group's health values keep coming" flowing tcp stap_running
  stop_collectd 20
  check "... and stops cleanly (exit status $cstatus)" [ "$cstatus" = 0 ]
}

# ---- runtime: faults while collectd runs -----------------------------------
scenario_runtime() {
  echo "==> scenario runtime: nine groups, eight faults and a witness"
  scenario_dirs runtime
  local m=$mods

  # tcp: the witness, a healthy module whose counter climbs; it also starts
  # a stray process, which the SIGKILL of collectd at the end must reach.
  climb tcp 400 0.3 | sed '3i @spawn-stray' >"$m/collectd_stap_tcp.ko"

  # udp: no module at all.

  # netfilter: staprun on a kernel without module support.
  cat >"$m/collectd_stap_netfilter.ko" <<EOF
@stderr ERROR: Couldn't insert module '$m/collectd_stap_netfilter.ko': Function not implemented
@exit 1
EOF

  # ipmib: killed with SIGKILL mid-run (by the test), with the module left
  # loaded and a stray process of its own; the second run's counter starts
  # from 1 again.
  climb ipmib 400 0.3 | sed '3i @spawn-stray' >"$m/collectd_stap_ipmib.ko.1"
  climb ipmib 400 0.3 1 1 >"$m/collectd_stap_ipmib.ko"

  # socket: staprun exits at once, every time.
  printf '@stderr ERROR: simulated failure at start\n@exit 1\n' >"$m/collectd_stap_socket.ko"

  # connect: garbage between good batches: NUL and high bytes, terminal
  # escapes, an overlong line, and an overlong line inside a batch.
  {
    printf 'hello 1 connect\nbegin 1\nderive connect protocol_counter flow 10\nend 1 1\n'
    printf 'x\000y binary \377\376\n'
    printf '\033[31mred\007 bell\n'
    head -c 5000 /dev/zero | tr '\0' A
    printf '\nbegin 2\nderive connect protocol_counter garbage 1\n'
    head -c 1500 /dev/zero | tr '\0' B
    printf '\nend 2 1\n'
  } >"$m/garbage.bin"
  {
    printf '@insert\n@cat garbage.bin\n'
    batches connect 400 0.3 10 20 3
    session_end
  } >"$m/collectd_stap_connect.ko"

  # accept: the output ends in the middle of a batch (staprun dies), then a
  # good run.
  cat >"$m/collectd_stap_accept.ko.1" <<EOF
@insert
hello 1 accept
begin 1
derive accept protocol_counter flow 5
end 1 1
@sleep 0.3
begin 2
derive accept protocol_counter flow 6
derive accept protocol_counter cut 7
@stderr ERROR: simulated crash in the middle of a batch
@exit 1
EOF
  climb accept 400 0.3 1 1 >"$m/collectd_stap_accept.ko"

  # drops: a module of another protocol version.
  printf '@insert\nhello 2 drops\n@wait-term\n@on-term\n@remove\n' >"$m/collectd_stap_drops.ko"

  # netdev: writes into another group's values and into the plugin's health
  # series, then good batches; then it is stuck, silent and deaf to SIGTERM
  # (as a staprun stuck in the kernel): at the SIGKILL of collectd at the
  # end its keeper kills it 10 s after the SIGTERM.
  {
    cat <<EOF
@insert
hello 1 netdev
begin 1
derive tcp protocol_counter flow 1000000
end 1 1
begin 2
derive netdevx protocol_counter flow 1000000
end 2 1
begin 3
gauge netdev stap_running - 0.5
end 3 1
begin 4
derive netdev stap_events restarts 999
end 4 1
EOF
    batches netdev-lo 12 0.3 10 10 5
    printf '@ignore-term\n@sleep 600\n'
  } >"$m/collectd_stap_netdev.ko"

  cat >"$dir/stap.conf" <<CONF
<Plugin stap>
  Staprun "$staprun"
  ModuleDir "$mods"
  ProcModules "$procmods"
  RestartDelay 0.2
  RestartDelayMax 1.6
  StopTimeout 2
  <Group "tcp">
  </Group>
  <Group "udp">
  </Group>
  <Group "netfilter">
  </Group>
  <Group "ipmib">
  </Group>
  <Group "socket">
  </Group>
  <Group "connect">
  </Group>
  <Group "accept">
  </Group>
  <Group "drops">
  </Group>
  <Group "netdev">
  </Group>
</Plugin>
CONF
  write_conf
  start_collectd
  wait_for 10 csv_at_least tcp protocol_counter-flow 2 && timing "witness tcp: first values"

  # Module missing.
  local missing="group udp: module $m/collectd_stap_udp.ko: No such file or directory. Build it with \`make modules KVER=$release' and \`make install', or set the group's Module option."
  wait_for 10 logged "$missing" && timing "module missing: reported"
  check "module missing: the log names the file and how to build and install it" logged "$missing"
  check "... it is not started" not_logged "group udp: started "

  # ENOSYS.
  local enosys="group netfilter: staprun on $m/collectd_stap_netfilter.ko exited with status 1; it said: ERROR: Couldn't insert module '$m/collectd_stap_netfilter.ko': Function not implemented; this kernel cannot load modules (built without CONFIG_MODULES); run collectd-stap on a kernel with module support (kernel $release)"
  wait_for 10 logged "$enosys" && timing "ENOSYS: reported"
  check "ENOSYS: the log has staprun's error and the hint (this kernel cannot load modules)" logged "$enosys"

  # SIGKILL of staprun mid-run.
  wait_for 10 csv_at_least ipmib protocol_counter-flow 3
  local kpid before stray
  kpid=$(pid_of ipmib)
  stray=$(sed -n 's/.*group ipmib: staprun: stray \([0-9]*\)$/\1/p' "$dir/collectd.log" | head -1)
  before=$(csv_last ipmib protocol_counter-flow)
  if [ -n "$kpid" ]; then kill -KILL "$kpid"; fi
  local killed="group ipmib: staprun on $m/collectd_stap_ipmib.ko was killed by signal 9 (Killed)"
  wait_for 10 logged "$killed" && timing "SIGKILL of staprun: seen"
  check "SIGKILL of staprun (pid ${kpid:-?}): the log says it was killed by signal 9" logged "$killed"
  two_ups() { [ "$(grep -cF "group ipmib: module $m/collectd_stap_ipmib.ko is up" "$dir/collectd.log")" -ge 2 ]; }
  check "... the group restarts" wait_for 10 two_ups
  check "... the module it left loaded is detached first" \
    logged "group ipmib: module collectd_stap_ipmib detached and removed"
  check "... its values climb on after the restart (last before the kill: $before)" \
    wait_for 10 csv_at_least_value ipmib protocol_counter-flow $((before + 3))
  check "... and never went back" csv_monotonic ipmib protocol_counter-flow
  stray_gone() { [ -n "$stray" ] && pid_gone "$stray"; }
  check "... nothing of the killed run is left (its stray ${stray:-?}, its staprun)" \
    wait_for 5 eval 'stray_gone && [ -n "$kpid" ] && pid_gone "$kpid"'
  timing "SIGKILL of staprun: restarted, climbing"

  # Exit loop: backoff grows to RestartDelayMax.
  restarts() { [ "$(count_re 'group socket: restarting staprun in')" -ge "$1" ]; }
  wait_for 15 restarts 5 && timing "exit loop: five restarts"
  local delays
  delays=$(sed -n 's/.*group socket: restarting staprun in \([0-9.]*\) s$/\1/p' "$dir/collectd.log" | head -5 | paste -sd ' ')
  check "exit loop: the backoff doubles up to RestartDelayMax 1.6 s (delays: $delays)" \
    [ "$delays" = "0.2 0.4 0.8 1.6 1.6" ]
  check "... each exit is logged with staprun's error" \
    logged "group socket: staprun on $m/collectd_stap_socket.ko exited with status 1; it said: ERROR: simulated failure at start"
  local rows_before
  rows_before=$(csv_rows tcp protocol_counter-flow)
  wait_for 10 restarts 6
  check "... the witness delivers meanwhile ($rows_before values at the 5th restart, $(csv_rows tcp protocol_counter-flow) at the 6th)" \
    [ "$(csv_rows tcp protocol_counter-flow)" -ge $((rows_before + 3)) ]

  # Garbage output.
  wait_for 10 csv_at_least_value connect protocol_counter-flow 30 && timing "garbage: good batches after it"
  check "garbage: a line with a NUL byte is logged escaped" \
    logged 'group connect: bad line from the module (line contains a NUL byte): x\x00y binary \xff\xfe'
  check "... terminal escapes are logged escaped" \
    logged 'group connect: bad line from the module (unknown record type): \x1b[31mred\x07 bell'
  check "... an overlong line is logged, cut" \
    logged "group connect: bad line from the module (longer than 1023 bytes): $(printf 'A%.0s' {1..60})..."
  check "... the batch holding an overlong line is discarded" \
    logged "group connect: batch discarded: it contained a bad line"
  check "... and none of its values dispatched" eval '! has_csv connect protocol_counter-garbage'
  check "... counted: stap_events-bad_lines 4" wait_for 5 csv_last_is connect stap_events-bad_lines 4
  check "... counted: stap_events-discarded_batches 1" csv_last_is connect stap_events-discarded_batches 1
  check "... the good batches around it are dispatched" csv_at_least_value connect protocol_counter-flow 30
  check "... no raw control byte reached the log" no_raw_control

  # A batch cut mid-way.
  local cut="group accept: batch discarded: the module's output ended inside it"
  wait_for 10 logged "$cut" && timing "batch cut: discarded"
  check "batch cut mid-way: the log says the batch was discarded" logged "$cut"
  check "... none of its values is dispatched" eval '! has_csv accept protocol_counter-cut'
  check "... the complete batch before it is (flow 5)" eval 'csv accept protocol_counter-flow | grep -qx 5'
  check "... the next run goes on from there (5 + 1 = 6, climbing)" \
    wait_for 10 csv_at_least_value accept protocol_counter-flow 8
  check "... never going back" csv_monotonic accept protocol_counter-flow
  check "... counted in stap_events-discarded_batches" \
    wait_for 5 csv_last_is accept stap_events-discarded_batches 1

  # Protocol version mismatch.
  local version="group drops: module $m/collectd_stap_drops.ko speaks record protocol version 2, this plugin speaks version 1. Rebuild the module from the same collectd-stap release (make modules) and install it. Stopping it."
  wait_for 10 logged "$version" && timing "version mismatch: refused"
  check "protocol version mismatch: the log names both versions and what to do" logged "$version"
  check "... the module is stopped" \
    wait_for 10 logged "group drops: staprun on $m/collectd_stap_drops.ko exited with status 0"
  check "... and retried after RestartDelayMax" wait_for 5 logged "group drops: restarting staprun in 1.6 s"
  check "... it is not running (stap_running 0)" wait_for 5 csv_last_is drops stap_running 0

  # Cross-group writes and health series spoofing.
  wait_for 10 csv_at_least netdev-lo protocol_counter-flow 2 && timing "cross-group/spoofing: good batches after them"
  check "cross-group write: refused, naming the rule" \
    logged "group netdev: bad line from the module (plugin instance is not the group or GROUP-...): derive tcp protocol_counter flow 1000000"
  check "... a look-alike prefix too (netdevx)" \
    logged "group netdev: bad line from the module (plugin instance is not the group or GROUP-...): derive netdevx protocol_counter flow 1000000"
  check "... the tcp group's values never got it" eval '! csv tcp protocol_counter-flow | grep -qx 1000000'
  check "... no netdevx values exist" eval '! compgen -G "$dir/csv/faults/stap-netdevx*" >/dev/null'
  check "health spoofing: stap_running refused" \
    logged "group netdev: bad line from the module (type stap_running is the plugin's own health series; a module reports its health as type stap_module): gauge netdev stap_running - 0.5"
  check "... stap_events refused" \
    logged "group netdev: bad line from the module (type stap_events is the plugin's own health series; a module reports its health as type stap_module): derive netdev stap_events restarts 999"
  check "... the plugin's stap_running never showed the module's 0.5" eval '! csv netdev stap_running | grep -q "^0\.5"'
  check "... the plugin's restarts count never showed the module's 999" eval '! csv netdev stap_events-restarts | grep -qx 999'
  check "... counted: bad_lines 4, discarded_batches 4" \
    eval 'wait_for 5 csv_last_is netdev stap_events-bad_lines 4 && csv_last_is netdev stap_events-discarded_batches 4'

  # The witness went through all of it.
  check "witness: tcp values kept flowing" flowing tcp protocol_counter-flow
  check "witness: never restarted" csv_last_is tcp stap_events-restarts 0
  check "witness: never went back" csv_monotonic tcp protocol_counter-flow
  check "collectd survived all of it" alive

  # SIGKILL of collectd: each keeper sees collectd go, sends SIGTERM to its
  # staprun's process group and SIGKILL 10 s later (netdev, stuck once its
  # batches are over, ignores SIGTERM).
  wait_for 10 csv_at_least netdev-lo protocol_counter-flow 12
  local wstray
  wstray=$(sed -n 's/.*group tcp: staprun: stray \([0-9]*\)$/\1/p' "$dir/collectd.log" | head -1)
  local t0
  t0=$(ms)
  kill -KILL "$cpid"
  wait "$cpid" 2>/dev/null
  # staprun's command line: STAPRUN -b MIB MODULE PARAMS.
  clean_gone() { ! pgrep -f -- "$staprun -b [0-9]+ $m/collectd_stap_(tcp|ipmib|connect|accept|drops)" >/dev/null && ! listed tcp; }
  wait_for 5 clean_gone
  echo "timing: SIGKILL of collectd: stapruns that stop on SIGTERM gone after $(($(ms) - t0)) ms"
  check "SIGKILL of collectd: stapruns that obey SIGTERM stop (and unload) at once" clean_gone
  check "... while the one ignoring SIGTERM (netdev) is still there" \
    eval 'pgrep -f -- "$staprun -b [0-9]+ $m/collectd_stap_netdev.ko" >/dev/null'
  wait_for 20 nothing_left
  local took=$(($(ms) - t0))
  timings+=("$(awk -v d=$took 'BEGIN { printf "%.1f", d / 1000 }') s  SIGKILL of collectd: nothing left (after the kill)")
  echo "timing: SIGKILL of collectd: nothing left after $took ms"
  check "... the one ignoring SIGTERM is killed by its keeper (after 10 s), nothing left (${took} ms)" nothing_left
  check "... the keepers are gone" eval '! keepers_left'
  check "... the witness's stray process (${wstray:-?}) too" wait_for 5 eval '[ -n "$wstray" ] && pid_gone "$wstray"'
  check "... the modules that stopped on SIGTERM were unloaded" \
    eval '! grep -q "^collectd_stap_\(tcp\|ipmib\|connect\|accept\|drops\) " "$procmods"'
}

# ---- trust: what the plugin refuses to load, config typos, stop ------------
scenario_trust() {
  echo "==> scenario trust: untrusted modules, bad Params and options; a staprun deaf to SIGTERM"
  scenario_dirs trust
  local m=$mods
  climb tcp 400 0.3 >"$m/collectd_stap_tcp.ko"
  # drops ignores SIGTERM: at shutdown it is killed after StopTimeout.
  { printf '@ignore-term\n'; climb drops 400 0.3; } >"$m/collectd_stap_drops.ko"
  # netdev: a symbolic link to a good module.
  mkdir -p "$lib/links"
  climb netdev 400 0.3 >"$m/real-netdev.ko"
  ln -s "$m/real-netdev.ko" "$lib/links/collectd_stap_netdev.ko"
  # udp: a module anyone can write (fixed while collectd runs).
  climb udp 400 0.3 >"$m/collectd_stap_udp.ko"
  chmod 0666 "$m/collectd_stap_udp.ko"
  # netfilter: a module in a directory anyone can write.
  mkdir -p "$lib/open"
  climb netfilter 400 0.3 >"$lib/open/collectd_stap_netfilter.ko"
  chmod 0777 "$lib/open"
  # ipmib: a module owned by nobody.
  climb ipmib 400 0.3 >"$m/collectd_stap_ipmib.ko"
  chown nobody "$m/collectd_stap_ipmib.ko"
  # socket: a Param its module's list does not have.
  climb socket 400 0.3 >"$m/collectd_stap_socket.ko"
  printf '# public parameters of socket\ninterval_ms\nmax_rows\n' >"$m/collectd_stap_socket.params"
  # connect, accept, tpc: config typos.
  climb connect 400 0.3 >"$m/collectd_stap_connect.ko"
  climb accept 400 0.3 >"$m/collectd_stap_accept.ko"

  cat >"$dir/stap.conf" <<CONF
<Plugin stap>
  Staprun "$staprun"
  ModuleDir "$mods"
  ProcModules "$procmods"
  RestartDelay 0.2
  RestartDelayMax 1.6
  StopTimeout 1.5
  StopTimout 3
  <Group "tcp">
  </Group>
  <Group "drops">
  </Group>
  <Group "netdev">
    Module "$lib/links/collectd_stap_netdev.ko"
  </Group>
  <Group "udp">
  </Group>
  <Group "netfilter">
    Module "$lib/open/collectd_stap_netfilter.ko"
  </Group>
  <Group "ipmib">
  </Group>
  <Group "socket">
    Param "bogus" 1
  </Group>
  <Group "connect">
    Intervall 1
  </Group>
  <Group "accept">
    MaxSeries 0
  </Group>
  <Group "tpc">
  </Group>
</Plugin>
CONF
  write_conf
  start_collectd
  wait_for 10 csv_at_least tcp protocol_counter-flow 2 && timing "trust: witness's first values"

  local link="group netdev: module $lib/links/collectd_stap_netdev.ko: $lib/links/collectd_stap_netdev.ko is a symbolic link, and the plugin does not follow one there (O_NOFOLLOW); point the option at the file itself. Not loaded: whoever can change it could run anything in the kernel."
  local writable="group udp: module $m/collectd_stap_udp.ko: file $m/collectd_stap_udp.ko is writable by its group and others (mode 0666); fix with chmod go-w $m/collectd_stap_udp.ko. Not loaded"
  local opendir="group netfilter: module $lib/open/collectd_stap_netfilter.ko: directory $lib/open is writable by its group and others (mode 0777); fix with chmod go-w $lib/open. Not loaded"
  local nobody_uid nobody
  nobody_uid=$(id -u nobody)
  nobody="group ipmib: module $m/collectd_stap_ipmib.ko: file $m/collectd_stap_ipmib.ko is owned by user $nobody_uid (nobody), not root; fix with chown root $m/collectd_stap_ipmib.ko. Not loaded"
  local param="group socket: Param \`bogus' is not a parameter of module $m/collectd_stap_socket.ko; allowed: interval_ms, max_rows (from $m/collectd_stap_socket.params). The module is not loaded."
  wait_for 10 logged "$link" && timing "trust: refusals logged"
  check "untrusted: a symbolic link is refused, naming it and the fix" logged "$link"
  check "untrusted: a file mode 0666 is refused, naming the chmod" logged "$writable"
  check "untrusted: a directory mode 0777 is refused, naming the chmod" logged "$opendir"
  check "untrusted: a file owned by nobody is refused, naming the chown" logged "$nobody"
  check "Param not in the module's list: refused, naming it and the allowed ones" logged "$param"
  check "config: unknown option names the group and the valid ones" \
    logged "group connect: unknown option \`Intervall'. Valid options: Module, Interval, MaxBatchRecords, MaxSeries, BufferSize, Param."
  check "... and says the group is not started" \
    logged "group connect: <Group \"connect\"> has 1 error(s) and is not started; fix them and restart collectd."
  check "config: a bad value names the group, the option and the range" \
    logged "group accept: option \`MaxSeries' is 0: it must be a whole number from 1 to "
  check "config: an unknown group is named with the known ones" \
    logged "group tpc: unknown probe group; known groups: tcp, netdev, udp, netfilter, ipmib, socket, connect, accept, drops. The group is not started."
  check "config: an unknown top-level option is named with the valid ones" \
    logged "unknown option \`StopTimout' in <Plugin stap>; it is ignored. Valid options: Staprun, ModuleDir, ProcfsDir, ProcModules, RestartDelay, RestartDelayMax, StopTimeout, <Group>."
  refused_not_started() {
    local g
    for g in netdev udp netfilter ipmib socket connect accept; do
      ! logged "group $g: started " || return 1
    done
    [ ! -e "$m/real-netdev.ko.runs" ] && [ ! -e "$lib/open/collectd_stap_netfilter.ko.runs" ] &&
      ! compgen -G "$m/collectd_stap_[!td]*.runs" >/dev/null
  }
  check "none of the refused groups was started" refused_not_started
  check "... they are checked again before every start" \
    wait_for 10 eval '[ "$(grep -cF -- "$link" "$dir/collectd.log")" -ge 2 ]'
  chmod go-w "$m/collectd_stap_udp.ko"
  check "... so fixing the file (chmod go-w) heals the group at its next retry" \
    wait_for 10 csv_at_least udp protocol_counter-flow 1
  timing "trust: chmod go-w healed udp"
  check "the other groups run: tcp values flowing" flowing tcp protocol_counter-flow
  check "... drops values flowing" flowing drops protocol_counter-flow
  check "... and still not started: the config typos" eval '! logged "group connect: started " && ! logged "group accept: started "'

  # Shutdown with a staprun that ignores SIGTERM: SIGKILL after StopTimeout.
  local dpid
  dpid=$(pid_of drops)
  stop_collectd 20
  echo "timing: shutdown with a staprun deaf to SIGTERM took $stop_ms ms (StopTimeout 1.5 s)"
  timings+=("$(awk -v d=$stop_ms 'BEGIN { printf "%.1f", d / 1000 }') s  SIGTERM ignored: collectd's shutdown (StopTimeout 1.5 s)")
  check "SIGTERM ignored: staprun (pid ${dpid:-?}) is killed after StopTimeout, logged" \
    logged "group drops: staprun (pid $dpid) did not stop within StopTimeout (1500 ms); killing it. The module may still be loaded: check \`lsmod | grep collectd_stap'."
  check "... its end is logged" logged "group drops: staprun stopped (was killed by signal 9 (Killed))"
  check "... the others stopped on SIGTERM" logged "group tcp: staprun stopped (exited with status 0)"
  check "... shutdown waited for StopTimeout and no longer (${stop_ms} ms, bound 5000)" \
    [ "$stop_ms" -ge 1500 ] && [ "$stop_ms" -lt 5000 ]
  check "... collectd exited with status 0" [ "$cstatus" = 0 ]
  check "... nothing is left running" nothing_left
}

# ---- valgrind: 30 s of collectd under valgrind ----------------------------
VALGRIND_SECONDS=${VALGRIND_SECONDS:-30}
scenario_valgrind() {
  echo "==> scenario valgrind: ${VALGRIND_SECONDS} s of collectd under valgrind, a busy module and a restarting one"
  scenario_dirs valgrind
  local m=$mods
  # tcp: busy, a batch every 0.1 s of 40 counters, 10 gauges (two data
  # sources each) and, every 10th batch, a notification on retransmits (the
  # plugin then reads the module's top flows from ProcfsDir).
  {
    printf '@insert\nhello 1 tcp\n'
    awk 'BEGIN {
      for (b = 1; b <= 3000; b++) {
        n = 0
        print "begin " b
        for (i = 0; i < 40; i++) { print "derive tcp protocol_counter c" i " " b * (i + 1); n++ }
        for (i = 0; i < 10; i++) { print "gauge tcp-g" i " if_octets - " b " " i; n++ }
        if (b % 10 == 0) { print "notify warning tcp protocol_counter retransmits busy " b; n++ }
        print "end " b " " n
        print "@sleep 0.1"
      }
    }'
    session_end
  } >"$m/collectd_stap_tcp.ko"
  mkdir -p "$lib/procfs/collectd_stap_tcp"
  printf '# top flows\nflow 10.0.0.1:5001 10.0.0.2:40000 12\nflow [fe80::1]:22 [fe80::2]:50000 3\n' \
    >"$lib/procfs/collectd_stap_tcp/top_flows"
  # udp: restarts every 20 batches, leaving its module loaded (detached
  # before the next start), with more series than MaxSeries (42 of 40), a
  # bad line, a duplicate series, a foreign plugin instance and an overlong
  # line: fewer messages than the group's log budget of 10 a minute.
  {
    printf '@insert\nhello 1 udp\n'
    awk 'BEGIN {
      for (b = 1; b <= 20; b++) {
        print "begin " b
        print "derive udp protocol_counter flow " b
        n = b == 20 ? 41 : 1
        for (i = 0; i < n; i++) print "gauge udp gauge invented-" i " " b
        print "end " b " " n + 1
        print "@sleep 0.1"
      }
      print "not a record \033[1m"
      print "begin 21"; print "derive udp protocol_counter flow 21"; print "derive udp protocol_counter flow 22"; print "end 21 2"
      print "begin 22"; print "derive tcp protocol_counter flow 1"; print "end 22 1"
      s = ""; for (i = 0; i < 1100; i++) s = s "x"; print s
    }'
    printf '@stderr ERROR: simulated failure\n@exit 1\n'
  } >"$m/collectd_stap_udp.ko"
  # netfilter: ENOSYS at every start; drops: a protocol version mismatch.
  printf "@stderr ERROR: Couldn't insert module 'x': Function not implemented\n@exit 1\n" \
    >"$m/collectd_stap_netfilter.ko"
  printf '@insert\nhello 2 drops\n@wait-term\n@on-term\n@remove\n' >"$m/collectd_stap_drops.ko"

  cat >"$dir/stap.conf" <<CONF
<Plugin stap>
  Staprun "$staprun"
  ModuleDir "$mods"
  ProcModules "$procmods"
  ProcfsDir "$lib/procfs"
  RestartDelay 0.2
  RestartDelayMax 1
  StopTimeout 3
  <Group "tcp">
  </Group>
  <Group "udp">
    MaxSeries 40
  </Group>
  <Group "netfilter">
  </Group>
  <Group "drops">
  </Group>
</Plugin>
CONF
  write_conf
  start_collectd valgrind --error-exitcode=99 --leak-check=full \
    --suppressions="$top/tests/faults/collectd.supp" \
    --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --child-silent-after-fork=yes --num-callers=40 --log-file="$dir/valgrind.log"
  busy_enough() {
    (($(ms) - started_ms >= VALGRIND_SECONDS * 1000)) &&
      csv_at_least tcp protocol_counter-c0 50 && csv_at_least udp stap_events-restarts 1
  }
  wait_for $((VALGRIND_SECONDS + 90)) busy_enough
  timing "valgrind: ran busy for ${VALGRIND_SECONDS} s"
  local batches restarts
  batches=$(csv_last tcp stap_events-batches)
  restarts=$(csv_last udp stap_events-restarts)
  check "valgrind: collectd ran under valgrind (tcp batches: ${batches:-0}, udp restarts: ${restarts:-0})" \
    eval 'alive && [ "${batches:-0}" -ge 50 ] && [ "${restarts:-0}" -ge 1 ]'
  check "... the flow report ran (retransmits WARNING, top flows read)" \
    logged "group tcp: top flows by retransmits: 10.0.0.1:5001 <-> 10.0.0.2:40000 12, [fe80::1]:22 <-> [fe80::2]:50000 3"
  check "... the udp faults were met (MaxSeries, duplicate, foreign instance, overlong line)" \
    eval 'logged "group udp: more than MaxSeries (40) series" && logged "names series udp/protocol_counter/flow twice" && logged "group udp: bad line from the module (plugin instance is not the group" && logged "group udp: bad line from the module (longer than 1023 bytes)"'
  stop_collectd 120
  echo "timing: valgrind: collectd's shutdown (with the leak check) took $stop_ms ms"
  echo "valgrind: $(grep -m1 'ERROR SUMMARY' "$dir/valgrind.log")"
  # Each error is a block of lines between blank ("==PID== ") lines; one
  # with a frame in the plugin (stap.so, or a source file of plugin/) is
  # the plugin's.
  local ours
  ours="stap\\.so|\\(($(cd "$top/plugin" && ls *.c | sed 's/\.c$//' | paste -sd '|'))\\.c:[0-9]+\\)"
  awk -v ours="$ours" '/^==[0-9]+== *$/ { if (blk ~ ours) print blk; blk = ""; next }
       { blk = blk $0 "\n" }
       END { if (blk ~ ours) print blk }' "$dir/valgrind.log" >"$dir/valgrind-stap.txt"
  plugin_errors() { grep -E 'Invalid|uninitialised|definitely lost|Mismatched|overlap|Syscall param|Jump to' "$dir/valgrind-stap.txt"; }
  check "valgrind: no invalid access, uninitialised use or definite leak in stap.so" eval '! plugin_errors'
  if plugin_errors >/dev/null; then cat "$dir/valgrind-stap.txt"; fi
  check "... valgrind found no error at all (--error-exitcode=99; collectd's own known leaks suppressed): exit status $cstatus" \
    [ "$cstatus" = 0 ]
  check "... nothing is left running" nothing_left
}

# csv_at_least_value PINST NAME V: the last value is at least V.
csv_at_least_value() {
  local v
  v=$(csv_last "$1" "$2")
  [ -n "$v" ] && [ "${v%%.*}" -ge "$3" ]
}

# A scenario that ends early (a shell error) leaves no collectd behind; its
# keepers then stop the fakes.
trap 'if [ -n "${cpid:-}" ] && kill -0 "$cpid" 2>/dev/null; then kill -KILL "$cpid"; fi' EXIT

for s in "${scenarios[@]}"; do
  if [ "$(type -t "scenario_$s")" != function ]; then
    bad "no scenario $s (staprun, runtime, trust, valgrind)"
    continue
  fi
  t0=$(ms)
  "scenario_$s"
  echo "timing: scenario $s took $(awk -v d=$(($(ms) - t0)) 'BEGIN { printf "%.1f", d / 1000 }') s"
  timings+=("$(awk -v d=$(($(ms) - t0)) 'BEGIN { printf "%.1f", d / 1000 }') s  == scenario $s (total)")
done
echo "==> timings"
printf '  %s\n' "${timings[@]}"
summary
