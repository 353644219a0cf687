#!/bin/bash
# tests/bench/kernel/guest.sh -- runs in the VM (scripts/vm/run-guest.sh; `make bench-kernel`).
#
#   guest.sh duration=S warmup=S reps=N base_reps=N groups=g1,g2,... [bpftrace=1] [rr_cpu=same|other]
#            [modules=DIR]   (default: build/modules/KVER; `make bench-kernel BENCH_KERNEL_TIMING=1`
#                            passes a directory of -DSTP_TIMING builds)
#            [compare=DIR]   another build of the same modules for this kernel (`make bench-kernel
#                            BENCH_KERNEL_COMPARE=DIR`): all groups from DIR, right after all groups
#                            from modules=DIR, as configuration "all@other"
#            [alone=0]       skip each group alone (and the variants): only all groups
#
# Three workloads (tests/bench/kernel/netbench.c) over a veth pair: the client in the root
# namespace on nb0 (10.199.0.1) pinned to vCPU 0, the server in namespace nbs on nb1
# (10.199.0.2) pinned to vCPU 1 (taskset). Each run is WARMUP s unmeasured, then S s measured:
#   bulk  64 KiB TCP writes, bytes/s
#   rr    64-byte TCP request/response, round trips/s; with rr_cpu=same (the default) against a
#         second server pinned to vCPU 0 too: across vCPUs every round trip waits for the host to
#         wake two halted vCPU threads, which on a busy host swings the rate tenfold (measured:
#         130-300/s with other VMs running, 1700-2100/s without) whatever the probes cost; on one
#         vCPU a round trip is two guest context switches (2200-2900/s, same conditions)
#   udp   64-byte datagrams, received/s (the receiver's count)
#
# Configurations, in this order, with a block of no-module runs (base_reps x the three
# workloads) before the first and after every configuration, so each configuration is compared
# with the baseline runs right before and right after it:
#   for each group: the module alone (staprun), then bpftrace on the group's probe points;
#   then all groups' modules together, then bpftrace with every group's probes.
# A group written GROUP+PARAM=V[+PARAM=V...] (a variant: `make bench-kernel` adds
# BENCH_KERNEL_VARIANTS, e.g. netdev+txq_latency=1) is the group's module loaded with those
# parameters, alone: no bpftrace block of its own (the same probe points as the group's) and not
# part of "all" (which loads each group once, with its defaults).
# A configuration block is reps x the three workloads (rep 1: bulk rr udp, rep 2: ...).
#
# Modules: staprun MODULE.ko interval_ms=10000 (collectd's default interval), each waited for
# until its first batch is complete (`end 1 N`, modules/PROTOCOL.md), stopped with SIGTERM and
# waited for (their final batch, with probes_skipped/handler_errors, stays in stap/).
# bpftrace: `@GROUP[probe] = count()` on the probes listed in /results/probes/GROUP.probes
# (tests/bench/kernel/probes.py, from the module's generated C), less those this kernel lacks
# (bpf/CFG.missing); ready once it holds one perf event per probe; stopped with SIGINT (its
# counts stay in bpf/CFG.N.out). All groups: as many bpftrace processes as it takes for no
# script to name a probe point twice (see bpf_plan).
#
# Output in /results: runs.tsv (block kind config workload rep value sent), events.tsv (what
# happened when), stap/, bpf/, server*.log, setup.txt. Exit 0, or 1 if a run was broken (a module
# or bpftrace did not start or stop, a workload or the server died); slow runs are never a
# failure.
set -u
top=$(cd "$(dirname "$0")/../../.." && pwd)
out=${GUEST_RESULTS:?run me through scripts/vm/run-guest.sh}
kver=${GUEST_KVER:-$(uname -r)}
modules=$top/build/modules/$kver
bin=$top/build/bench/kernel/netbench

duration=1 warmup=0.3 reps=6 base_reps=3 groups='' use_bpf=1 rr_cpu=same compare='' alone=1
for a in "$@"; do
  case "$a" in
  rr_cpu=same | rr_cpu=other) rr_cpu=${a#*=} ;;
  duration=*) duration=${a#*=} ;;
  warmup=*) warmup=${a#*=} ;;
  reps=*) reps=${a#*=} ;;
  base_reps=*) base_reps=${a#*=} ;;
  groups=*) groups=${a#*=} ;;
  bpftrace=*) use_bpf=${a#*=} ;;
  modules=*) modules=${a#*=} ;;
  compare=*) compare=${a#*=} ;;
  alone=0 | alone=1) alone=${a#*=} ;;
  *) echo "guest.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
IFS=, read -r -a glist <<<"$groups"
[ ${#glist[@]} -gt 0 ] || { echo "guest.sh: no groups" >&2; exit 2; }

server_ip=10.199.0.2
port=5201      # server on vCPU 1
rr_port=5202   # server on vCPU 0 (rr_cpu=same)
broken=0
block=0
t_start=$(date +%s.%N)

mkdir -p "$out/stap" "$out/bpf"
printf 'block\tkind\tconfig\tworkload\trep\tvalue\tsent\n' >"$out/runs.tsv"
printf 'elapsed_s\tevent\n' >"$out/events.tsv"

event() {
  local t
  t=$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  printf '%s\t%s\n' "$t" "$*" >>"$out/events.tsv"
  echo "[bench $t s] $*"
}
broken() {
  broken=1
  event "BROKEN: $*"
}

# ------------------------------------------------------------------ set-up
[ -x "$bin" ] || { echo "guest.sh: $bin missing (make bench-kernel builds it)" >&2; exit 1; }
modprobe veth || { echo "guest.sh: modprobe veth failed" >&2; exit 1; }
ip netns add nbs &&
  ip link add nb0 type veth peer name nb1 &&
  ip link set nb1 netns nbs &&
  ip addr add 10.199.0.1/24 dev nb0 &&
  ip link set nb0 up &&
  ip -n nbs addr add "$server_ip/24" dev nb1 &&
  ip -n nbs link set nb1 up &&
  ip -n nbs link set lo up || { echo "guest.sh: veth set-up failed" >&2; exit 1; }

{
  echo "kernel: $(uname -r)"
  echo "vCPUs: $(nproc)"
  echo "memory: $(awk '/MemTotal/ { print $2 " kB" }' /proc/meminfo)"
  echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)"
  echo "path: veth pair nb0 (root namespace, 10.199.0.1) <-> nb1 (namespace nbs, $server_ip)"
  if [ "$rr_cpu" = same ]; then
    echo "client: taskset -c 0; server: taskset -c 1 (ip netns exec nbs) for bulk and UDP, taskset -c 0 for RR (both ends on vCPU 0)"
  else
    echo "client: taskset -c 0; server: taskset -c 1 (ip netns exec nbs)"
  fi
  echo "duration=$duration warmup=$warmup reps=$reps base_reps=$base_reps groups=$groups bpftrace=$use_bpf rr_cpu=$rr_cpu alone=$alone modules=$modules${compare:+ compare=$compare}"
  echo "staprun: $(command -v staprun); bpftrace: $(bpftrace --version 2>/dev/null)"
  echo "nb0 offloads: $(ethtool -k nb0 2>/dev/null | awk '/^(tcp-segmentation-offload|generic-receive-offload|generic-segmentation-offload):/ { printf "%s ", $0 }')"
} >"$out/setup.txt"
cat "$out/setup.txt"

server_pid='' rr_server_pid=''
# start_one CPU PORT LOG: prints the pid once the server said ready.
start_one() {
  local pid i
  : >"$3"
  ip netns exec nbs taskset -c "$1" "$bin" serve "$2" >>"$3" 2>&1 &
  pid=$!
  for ((i = 0; i < 100; i++)); do
    if grep -q '^ready' "$3"; then echo "$pid"; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}
servers_alive() {
  kill -0 "$server_pid" 2>/dev/null && { [ "$rr_cpu" != same ] || kill -0 "$rr_server_pid" 2>/dev/null; }
}
start_server() {
  kill "$server_pid" "$rr_server_pid" 2>/dev/null
  server_pid=$(start_one 1 "$port" "$out/server.log") || return 1
  [ "$rr_cpu" != same ] || rr_server_pid=$(start_one 0 "$rr_port" "$out/server-rr.log")
}
start_server || { cat "$out"/server*.log; echo "guest.sh: the server did not start" >&2; exit 1; }
event "servers started (pid $server_pid on vCPU 1${rr_server_pid:+, RR server pid $rr_server_pid on vCPU 0})"

# ------------------------------------------------------------------ workloads
# run_block KIND CONFIG NREPS: NREPS x (bulk rr udp) in one client process (netbench suite);
# one line per run in runs.tsv, FAIL for the runs a dead client or server did not make.
run_block() {
  local kind=$1 cfg=$2 n=$3 rep w res value sent i=0 lines=()
  block=$((block + 1))
  if ! servers_alive; then
    broken "a server died before block $block ($kind/$cfg); restarting them"
    start_server || { broken "the servers do not start again"; return 1; }
  fi
  local rr_arg=()
  [ "$rr_cpu" != same ] || rr_arg=("$rr_port")
  res=$(taskset -c 0 "$bin" suite "$server_ip" "$port" "$warmup" "$duration" "$n" "${rr_arg[@]}" 2>&1) ||
    broken "workload client died in block $block ($kind/$cfg): $(grep -v '^RESULT' <<<"$res" | tr '\n' ' ')"
  mapfile -t lines <<<"$(grep '^RESULT' <<<"$res")"  # (no /dev/fd in the guest: no <(...))
  for ((rep = 1; rep <= n; rep++)); do
    for w in bulk rr udp; do
      if [[ ${lines[i]:-} =~ ^RESULT\ $w\ ([0-9]+)( sent=([0-9]+))?$ ]]; then
        value=${BASH_REMATCH[1]}
        sent=${BASH_REMATCH[3]:--}
      else
        value=FAIL sent=-
      fi
      i=$((i + 1))
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$block" "$kind" "$cfg" "$w" "$rep" "$value" "$sent" >>"$out/runs.tsv"
    done
  done
  servers_alive || broken "a server died during block $block ($kind/$cfg)"
  event "block $block $kind $cfg: $(awk -F'\t' -v b="$block" '$1 == b { printf "%s=%s ", $4, $6 }' "$out/runs.tsv")"
}

baseline() { run_block base none "$base_reps"; }

# ------------------------------------------------------------------ modules
stap_pids=()
no_module() { ! grep -q '^collectd_stap_' /proc/modules; }

# stap_start CFG GROUP...: one staprun per group, each waited for until its first batch.
stap_start() {
  local cfg=$1 g f pid i ok base extra
  shift
  stap_pids=()
  for g in "$@"; do
    f=$out/stap/$cfg.$g
    base=${g%%+*} extra=()
    [ "$base" = "$g" ] || IFS=+ read -r -a extra <<<"${g#*+}"
    if [ ! -f "$modules/collectd_stap_$base.ko" ]; then
      broken "$modules/collectd_stap_$base.ko missing"
      return 1
    fi
    staprun "$modules/collectd_stap_$base.ko" interval_ms=10000 "${extra[@]}" >"$f.out" 2>"$f.err" &
    pid=$!
    stap_pids+=("$pid")
    ok=0
    for ((i = 0; i < 1200; i++)); do
      if grep -q '^end 1 ' "$f.out"; then ok=1; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if [ "$ok" != 1 ]; then
      broken "module $g did not print its first batch within 120 s (staprun: $(tr '\n' ' ' <"$f.err" | cut -c1-300))"
      return 1
    fi
  done
  event "modules loaded for $cfg: $*"
}

# reap_within_60s PID WHAT SIGNAL: wait up to 60 s for PID (already sent SIGNAL) to exit, else
# report it broken and SIGKILL it (status 1); reaps it either way.
reap_within_60s() {
  local pid=$1 what=$2 sig=$3 i rc=0
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    broken "$what still running 60 s after $sig; SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    rc=1
  fi
  wait "$pid" 2>/dev/null
  return $rc
}

# stap_stop CFG: SIGTERM every staprun, wait (60 s each, then SIGKILL = broken).
stap_stop() {
  local cfg=$1 pid i rc=0
  for pid in "${stap_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${stap_pids[@]}"; do
    reap_within_60s "$pid" "staprun $pid ($cfg)" SIGTERM || rc=1
  done
  stap_pids=()
  for ((i = 0; i < 300; i++)); do
    no_module && break
    sleep 0.1
  done
  if ! no_module; then
    broken "a module is still loaded after $cfg: $(grep '^collectd_stap_' /proc/modules | cut -d' ' -f1 | tr '\n' ' ')"
    local m
    for m in $(grep '^collectd_stap_' /proc/modules | cut -d' ' -f1); do staprun -d "$m" 2>/dev/null; done
    rc=1
  fi
  event "modules unloaded after $cfg"
  return $rc
}

# ------------------------------------------------------------------ bpftrace
bpf_pids=() bpf_need=()
# The kernel's functions that kprobes can attach to, and its tracepoints.
avail=$out/bpf/available_functions.txt
awk '{ print $1 }' /sys/kernel/tracing/available_filter_functions 2>/dev/null | sort -u >"$avail"
have_probe() {
  case "$1" in
  tracepoint:*)
    local tp=${1#tracepoint:}
    [ -d "/sys/kernel/tracing/events/${tp%%:*}/${tp#*:}" ]
    ;;
  kprobe:* | kretprobe:*) grep -qxF "${1#*:}" "$avail" ;;
  *) return 1 ;;
  esac
}

# bpf_plan CFG GROUP...: the bpftrace scripts bpf/CFG.N.bt, one block `@GROUP[probe] = count()`
# per group, the groups spread over as few scripts as share no probe point: bpftrace 0.17 does
# not load a script that names a tracepoint twice ("Error loading program"), and the modules
# attach such a point once each (sock:inet_sock_set_state: tcp, accept, connect), so each copy
# gets its own bpftrace. Sets bpf_need (probes per script); CFG.missing lists the probe points
# this kernel lacks (left out).
bpf_plan() {
  local cfg=$1 g p pp i n placed clash list
  shift
  local -a sets=()
  bpf_need=()
  rm -f "$out/bpf/$cfg".*.bt
  : >"$out/bpf/$cfg.missing"
  for g in "$@"; do
    list=()
    while IFS=$'\t' read -r p pp; do
      if have_probe "$p"; then
        list+=("$p")
      else
        printf '%s\t%s\t%s\n' "$g" "$p" "$pp" >>"$out/bpf/$cfg.missing"
      fi
    done <"$out/probes/$g.probes"
    [ ${#list[@]} -gt 0 ] || continue
    placed=
    for ((i = 0; i < ${#sets[@]}; i++)); do
      clash=0
      for p in "${list[@]}"; do
        if [[ ${sets[i]} == *"|$p|"* ]]; then clash=1; break; fi
      done
      if [ "$clash" = 0 ]; then placed=$i; break; fi
    done
    if [ -z "$placed" ]; then
      placed=${#sets[@]}
      sets[placed]='|'
      bpf_need[placed]=0
      echo "// make bench-kernel: bpftrace counting on the probe points of groups (tests/bench/kernel/probes.py)" \
        >"$out/bpf/$cfg.$placed.bt"
    fi
    for p in "${list[@]}"; do sets[placed]+="$p|"; done
    bpf_need[placed]=$((bpf_need[placed] + ${#list[@]}))
    {
      (IFS=,; printf '%s\n' "${list[*]}")
      printf '{ @%s[probe] = count(); }\n' "$g"
    } >>"$out/bpf/$cfg.$placed.bt"
  done
}

perf_fds() {
  local n=0 f
  for f in /proc/"$1"/fd/*; do
    [ "$(readlink "$f" 2>/dev/null)" = 'anon_inode:[perf_event]' ] && n=$((n + 1))
  done
  echo "$n"
}

# bpf_start CFG GROUP...: every script of the plan under its own bpftrace, all started at once;
# each is attached once it holds one perf event per probe (kprobe, kretprobe and tracepoint alike).
bpf_start() {
  local cfg=$1 i k ok n total=0
  bpf_plan "$@"
  bpf_pids=()
  if [ ${#bpf_need[@]} = 0 ]; then
    broken "bpftrace $cfg: none of the probe points exists on this kernel"
    return 1
  fi
  for ((k = 0; k < ${#bpf_need[@]}; k++)); do
    bpftrace "$out/bpf/$cfg.$k.bt" >"$out/bpf/$cfg.$k.out" 2>&1 &
    bpf_pids[k]=$!
    total=$((total + bpf_need[k]))
  done
  for ((k = 0; k < ${#bpf_need[@]}; k++)); do
    ok=0 n=0
    for ((i = 0; i < 2400; i++)); do
      kill -0 "${bpf_pids[k]}" 2>/dev/null || break
      n=$(perf_fds "${bpf_pids[k]}")
      if [ "$n" -ge "${bpf_need[k]}" ]; then ok=1; break; fi
      sleep 0.1
    done
    if [ "$ok" != 1 ]; then
      broken "bpftrace $cfg.$k did not attach its ${bpf_need[k]} probes within 240 s ($n perf events): $(tr '\n' ' ' <"$out/bpf/$cfg.$k.out" | cut -c1-400)"
      bpf_stop "$cfg" quiet
      return 1
    fi
  done
  sleep 0.5
  event "bpftrace attached for $cfg: $total probes in ${#bpf_need[@]} bpftrace process(es), $(wc -l <"$out/bpf/$cfg.missing") missing on this kernel"
}

# bpf_stop CFG [quiet]: SIGINT to every bpftrace (they print their counts), 60 s each, then SIGKILL.
bpf_stop() {
  local cfg=$1 pid
  for pid in "${bpf_pids[@]}"; do kill -INT "$pid" 2>/dev/null; done
  for pid in "${bpf_pids[@]}"; do
    reap_within_60s "$pid" "bpftrace $pid ($cfg)" SIGINT
  done
  bpf_pids=()
  [ -n "${2:-}" ] || event "bpftrace stopped for $cfg"
}

# ------------------------------------------------------------------ the run
# A configuration whose tool did not start gets no runs (its cells say so); the rest goes on.
stap_config() { # CFG GROUP...
  local cfg=$1
  shift
  if stap_start "$cfg" "$@"; then
    run_block stap "$cfg" "$reps"
  fi
  stap_stop "$cfg"
  baseline
}
bpf_config() { # CFG GROUP...
  local cfg=$1
  [ "$use_bpf" = 1 ] || return 0
  if bpf_start "$@"; then
    run_block bpf "$cfg" "$reps"
    bpf_stop "$cfg"
  fi
  baseline
}

event "start: ${#glist[@]} groups"
baseline
plain=()
for g in "${glist[@]}"; do
  [ "${g%%+*}" = "$g" ] && plain+=("$g")
  [ "$alone" = 1 ] || continue
  stap_config "$g" "$g"
  [ "${g%%+*}" = "$g" ] || continue
  bpf_config "$g" "$g"
done
if [ ${#plain[@]} -gt 1 ] || [ "$alone" = 0 ]; then
  stap_config all "${plain[@]}"
  if [ -n "$compare" ]; then
    # The other build, next to this one (a baseline block between them): modules= is what
    # stap_start loads from.
    this_build=$modules modules=$compare
    stap_config all@other "${plain[@]}"
    modules=$this_build
  fi
  bpf_config all "${plain[@]}"
fi

kill "$server_pid" "$rr_server_pid" 2>/dev/null
wait 2>/dev/null
event "done$([ "$broken" = 1 ] && echo ' (with broken runs)')"
exit "$broken"
