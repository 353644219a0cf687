#!/bin/bash
# Kernel stress scenario (runs inside the VM booted with 4 vCPUs: `make check-stress`): all nine
# groups loaded at once in one collectd while the host is made busy:
#  (a) 64 veth pairs, each with one end in its own network namespace, carry small UDP datagrams;
#  (b) 200 dummy devices are created and deleted within a few seconds (a container drain);
#  (c) a SYN flood: 3000 listeners with backlog 8 that never accept, 12 connects each;
#  (d) bulk TCP and 32-byte UDP datagrams on every CPU (pinned).
# Pass: no group restarted its module (stap_events-restarts unchanged, stap_running 1), no abort
# text and no staprun "transport failures" (output lost) in collectd.log, each module's skipped
# probes and handler errors reported (printed), and each group's key values within its stated
# tolerance of the kernel's own counters over the whole run, summed over every namespace:
#   tcp segments-in = Tcp InSegs; udp sendmsg-ipv4 = Udp OutDatagrams; ipmib InReceives = Ip
#   InReceives; accept accept-queue-overflows = TcpExt ListenOverflows; netdev lo rx packets =
#   /proc/net/dev lo rx packets; drops total >= Udp NoPorts (each such datagram is freed with a
#   drop reason).
# Tolerance: the group's own reported probes_skipped + handler_errors over the run (a skipped probe
# misses exactly one event), nothing else: the values are read after two unchanged batches.
. "$(dirname "$0")/../scenario.sh"
load=$top/tests/kernel/stress_load.py
all=(tcp netdev udp netfilter ipmib socket connect accept drops)
for g in "${all[@]}"; do kt_require_module "$g"; done
nns=64
# Phase lines carry the guest's uptime (to match the kernel's own timestamps in console.log,
# should the guest crash) and its free memory.
phase() {
  say "$* [uptime $(cut -d' ' -f1 /proc/uptime) s, MemAvailable $(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo) MiB]"
}

modprobe veth 2>/dev/null
modprobe dummy 2>/dev/null
phase "setup: $nns network namespaces with a veth pair each"
for i in $(seq 0 $((nns - 1))); do
  echo "netns add ks$i"
  echo "link add ksv$i type veth peer name ksi$i netns ks$i"
  echo "addr add 10.99.$i.1/30 dev ksv$i"
  echo "link set ksv$i up"
  echo "-n ks$i addr add 10.99.$i.2/30 dev ksi$i"
  echo "-n ks$i link set ksi$i up"
  echo "-n ks$i link set lo up"
done >"$out/setup.batch"
# `ip -batch` takes no -n per line: run the namespace lines through `ip -n`.
while read -r a b rest; do
  if [ "$a" = -n ]; then ip -n "$b" $rest; else ip "$a" $b $rest; fi
done <"$out/setup.batch"
check "setup: $nns veth pairs up" [ "$(ip -o link show type veth | grep -c 'ksv')" = "$nns" ]

# The kernel's counters, summed over the initial namespace and every stress namespace: one awk
# per namespace reads all of them (five readings of 65 namespaces, one `ip netns exec` each, took
# 66-93 s under TCG).
counted="Tcp:InSegs Udp:OutDatagrams Ip:InReceives TcpExt:ListenOverflows Udp:NoPorts"
ksums() {
  local i v tot=(0 0 0 0 0) line k
  for i in init $(seq 0 $((nns - 1))); do
    if [ "$i" = init ]; then
      line=$(snmp_counters $counted)
    else
      line=$(snmp_counters --netns "ks$i" $counted)
    fi
    read -r -a v <<<"$line"
    for k in 0 1 2 3 4; do
      case "${v[k]:--}" in -) ;; *) tot[k]=$((tot[k] + v[k])) ;; esac
    done
  done
  echo "${tot[*]}"
}
lo_rx() { awk '$1 == "lo:" { print $3 }' /proc/net/dev; }
truth() {
  local s
  read -r -a s <<<"$(ksums)"
  echo "tcp=${s[0]} udp=${s[1]} ipmib=${s[2]} accept=${s[3]} noports=${s[4]} lo=$(lo_rx)"
}

kt_collectd_conf "$(IFS=,; echo "${all[*]}")"
c() { kt_last "$csv/stap-$1"; }
kt_collectd_start "$csv/stap-tcp/protocol_counter-segments-in" || { kt_done; exit 1; }
all_running() {
  local g
  local v
  for g in "${all[@]}"; do v=$(c "$g/stap_running"); [ "${v%%.*}" = 1 ] || return 1; done
}
wait_for 240 all_running
check "all nine groups running" all_running

# Plugin values the scenario compares (csv names under $csv/stap-GROUP/).
pvals() {
  echo "tcp=$(c tcp/protocol_counter-segments-in) udp=$(c udp/operations-sendmsg-ipv4)" \
    "ipmib=$(c ipmib/protocol_counter-InReceives) accept=$(c accept/protocol_counter-accept-queue-overflows)" \
    "noports=$(c drops/packets-total) lo=$(c netdev-lo/if_packets)"
}
health() { # what each group reported about itself: restarts skipped errors
  local g
  for g in "${all[@]}"; do
    echo "$g restarts=$(c "$g/stap_events-restarts") skipped=$(c "$g/stap_module-probes_skipped")" \
      "errors=$(c "$g/stap_module-handler_errors") running=$(c "$g/stap_running")"
  done
}
# Settled: the compared values unchanged over 2.5 s (more than two batches). Drops are left out:
# the 64 new veth links keep dropping IPv6 neighbour and router traffic, and drops are compared
# only as a lower bound, counted in the same batches as the other values.
settled_vals() { pvals | sed 's/ noports=[^ ]*//'; }
# What moved is kept (unsettled.txt, its last lines in the log after each wait): a wait that
# runs to its limit says which value did not settle.
stable() {
  local a b
  a=$(settled_vals)
  sleep 2.5
  b=$(settled_vals)
  [ "$a" = "$b" ] && return 0
  printf '%s\n%s\n' "$a" "$b" | awk -v t="$(cut -d' ' -f1 /proc/uptime)" '
    NR == 1 { for (i = 1; i <= NF; i++) was[i] = $i; next }
    { m = ""; for (i = 1; i <= NF; i++) if ($i != was[i]) m = m " " was[i] " -> " $i; print "uptime " t ":" m }' >>"$out/unsettled.txt"
  return 1
}
unsettled() { # PHASE: what moved while waiting to settle, if anything
  [ -s "$out/unsettled.txt" ] || return 0
  say "$1: values that moved while waiting ($(wc -l <"$out/unsettled.txt") checks), last:"
  tail -3 "$out/unsettled.txt" | sed 's/^/  /'
  : >"$out/unsettled.txt"
}

wait_for 120 stable
unsettled before
t0=$(truth); p0=$(pvals); h0=$(health)
say "before: kernel $t0"
say "before: plugin $p0"

# STRESS_ROUNDS=N (make check-stress STRESS_ROUNDS=N): the four loads N times over (a soak);
# the values are compared over the whole run all the same.
rounds=${STRESS_ROUNDS:-1}
case $rounds in '' | *[!0-9]* | 0) echo "STRESS_ROUNDS must be a number >= 1 (is '$rounds')" >&2; exit 2 ;; esac
for round in $(seq 1 "$rounds"); do
  [ "$rounds" = 1 ] || phase "round $round of $rounds"
  phase "(a) $nns namespaces send 64-byte UDP datagrams over their veth for 10 s"
  python3 "$load" netns-udp ks "$nns" 9 10 | tee -a "$out/load-a.txt"

  phase "(b) 200 dummy devices created and deleted"
  t=$(date +%s)
  for i in $(seq 0 199); do echo "link add ksd$i type dummy"; done | ip -batch -
  for i in $(seq 0 199); do echo "link del ksd$i"; done | ip -batch -
  phase "(b) took $(($(date +%s) - t)) s"

  phase "(c) SYN flood: 3000 listeners (backlog 8), 12 connects each"
  python3 "$load" syn-flood 20000 3000 12 | tee -a "$out/load-c.txt"

  phase "(d) bulk TCP and small UDP on every CPU for 15 s"
  python3 "$load" cpu-load 7000 15 | tee -a "$out/load-d.txt"
done

phase "after: waiting for two unchanged batches"
wait_for 180 stable
unsettled after
t1=$(truth); p1=$(pvals); h1=$(health)
phase "stopping collectd (the nine modules unload)"
kt_collectd_stop

get() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k { print $2 }'; }
hget() { awk -v g="$2" -v k="$3" '$1 == g { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' <<<"$1"; }
{
  echo "kernel before: $t0"; echo "kernel after:  $t1"
  echo "plugin before: $p0"; echo "plugin after:  $p1"
  echo "health before:"; echo "$h0"; echo "health after:"; echo "$h1"
} | tee "$out/measurements.txt"

for g in "${all[@]}"; do
  check "$g: no module restart (restarts $(hget "$h0" $g restarts) -> $(hget "$h1" $g restarts))" \
    [ "$(hget "$h0" $g restarts)" = "$(hget "$h1" $g restarts)" ]
  r=$(hget "$h1" $g running)
  check "$g: still running ($r)" [ "${r%%.*}" = 1 ]
  check "$g: reports its skipped probes ($(hget "$h1" $g skipped)) and handler errors ($(hget "$h1" $g errors))" \
    test -n "$(hget "$h1" $g skipped)" -a -n "$(hget "$h1" $g errors)"
done
check "no abort text in collectd.log" \
  bash -c "! grep -Ei 'MAXACTION|Array overflow|aggregation overflow|Skipped too many|overload|fatal' '$out/collectd.log'"
# staprun says at unload how many flushes the module could not hand to its relay buffer; any is
# output lost (SystemTap 4.8 without the build's header fix lost every netdev batch this way).
check "no module lost output (no 'transport failures' from staprun in collectd.log)" \
  bash -c "! grep -i 'transport failures' '$out/collectd.log'"

# within GROUP KEY [RACE]: |plugin delta - kernel delta| <= the group's skipped + errors over the
# run, plus RACE per mille of the kernel delta where the module has to re-evaluate a decision
# the kernel takes on shared state (stated in the group's doc).
within() {
  local g=$1 k=$2 race=${3:-0} dp dk tol extra=0
  dp=$(($(get "$p1" $k) - $(get "$p0" $k)))
  dk=$(($(get "$t1" $k) - $(get "$t0" $k)))
  tol=$(($(hget "$h1" $g skipped) - $(hget "$h0" $g skipped) + $(hget "$h1" $g errors) - $(hget "$h0" $g errors)))
  local d=$((dp - dk)) why="tolerance $tol"
  if [ "$race" != 0 ]; then
    extra=$(((dk * race + 999) / 1000))
    why="tolerance $tol + $extra for the race"
  fi
  check "$g $k: plugin +$dp vs kernel +$dk ($why)" [ "${d#-}" -le $((tol + extra)) ]
}
within tcp tcp
within udp udp
within ipmib ipmib
# accept: the overflow is decided from the listener's queues as they are at the probe, the
# kernel reads them again a few instructions later; a handshake completed on another CPU in
# between (a vCPU preempted by its host widens that window) is counted by one and not the other
# (modules/accept.md). Seen: 1 more than the skipped probes in 38 000-58 000 overflows; allowed:
# 5 per mille.
within accept accept 5
within netdev lo
dn=$(($(get "$p1" noports) - $(get "$p0" noports))); kn=$(($(get "$t1" noports) - $(get "$t0" noports)))
check "drops total +$dn >= Udp NoPorts +$kn" [ "$dn" -ge "$kn" ]
check "(c) the flood overflowed accept queues (ListenOverflows +$(($(get "$t1" accept) - $(get "$t0" accept))))" \
  [ $(($(get "$t1" accept) - $(get "$t0" accept))) -gt 0 ]
kt_done
