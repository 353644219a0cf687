#!/bin/bash
# Kernel test, group netfilter (runs inside the VM, see scripts/vm/run-guest.sh):
# nftables tables with one `counter` rule in a chain on every hook of the ip,
# ip6, arp and bridge families (priority 0) in the initial namespace and in four
# namespaces created after the module was loaded (the module hooks every
# namespace, later ones too), and traffic that passes each of them: TCP over lo
# (ipv4 local_out, post_routing, pre_routing, local_in), UDP over ::1 (the same
# for ipv6), UDP forwarded between two namespaces through this one (ipv4
# forward, and ARP in/out on the veths; ipv4 out and in inside the two), UDP
# bridged between two namespaces through br0 (bridge hooks). A fifth namespace
# is created and deleted while the module runs (its hooks come and go).
# Asserts, under collectd:
#  (a) for every family and hook with an nft chain, the module's packets and
#      bytes deltas over the traffic phase equal the nft counters' deltas summed
#      over the five namespaces;
#  (b) traffic reached every hook the test meant to exercise (> 0);
#  (h) module health: handler_errors 0; no MAXACTION, Array overflow, aborted or
#      fatal in the logs; every batch within MAXACTION (all four families on:
#      the group's maximum of 40 rows);
#  (c) after collectd stops, no staprun/stapio and no module remain.
# Tolerance: a module count may be short of nft's by at most the events the
# module reports lost (stap_module probes_skipped + handler_errors), never above.
. "$(dirname "$0")/../scenario.sh"
kt_require_module netfilter
modprobe nf_tables 2>/dev/null

modprobe veth 2>/dev/null
modprobe bridge 2>/dev/null
# Only the traffic the test makes: no IPv6 on new devices (no router
# solicitations, MLD, ND); lo keeps ::1.
sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=0

health() { kt_last "$csv/stap-netfilter/stap_module-$1"; }

# ---------------------------------------------------------------- raw output
say "raw module output (staprun alone, 1 s batches), TCP over lo"
raw=$out/netfilter-module-output.txt
staprun "$modules/collectd_stap_netfilter.ko" interval_ms=1000 arp=0 bridge=0 >"$raw" 2>"$out/netfilter-module-stderr.txt" &
spid=$!
wait_for 60 grep -q '^end ' "$raw"
tcp_transfers 2 10000 5050 20 >/dev/null
wait_for 30 raw_batches_at_least "$raw" $(($(raw_batches "$raw") + 2))
kill -INT $spid
wait $spid
sed 's/^/  /' "$raw" | head -16
echo "  ..."
sed 's/^/  /' "$raw" | tail -16
wait_for 30 no_module
check "(b) raw: ipv4 local_out counted" grep -q '^derive netfilter-ipv4 ipt_packets local_out [1-9]' "$raw"
check "(b) raw: arp=0 bridge=0: no arp or bridge lines" \
  bash -c "! grep -q 'netfilter-\(arp\|bridge\)' '$raw'"
check "(h) raw: handler_errors 0 in the last batch" \
  [ "$(grep '^derive netfilter stap_module handler_errors ' "$raw" | tail -1 | cut -d' ' -f5)" = 0 ]
check "(h) raw: no MAXACTION/Array overflow/aborted/fatal in the module's output" \
  log_clean "$raw" "$out/netfilter-module-stderr.txt"

# ---------------------------------------------------------------- nft counters
hooks_inet="prerouting input forward output postrouting"
# The namespaces with nft chains ("-": this one).
nslist=(-)
nsrun() { # NS CMD...: CMD in namespace NS
  local ns=$1
  shift
  if [ "$ns" = - ]; then "$@"; else ip netns exec "$ns" "$@"; fi
}
nft_setup() { # NS
  local fam hooks h
  for fam in ip ip6 arp bridge; do
    case $fam in arp) hooks="input output" ;; *) hooks=$hooks_inet ;; esac
    nsrun "$1" nft add table $fam kt_nf || return 1
    for h in $hooks; do
      nsrun "$1" nft add chain $fam kt_nf "$h" "{ type filter hook $h priority 0; }" &&
        nsrun "$1" nft add rule $fam kt_nf "$h" counter || return 1
    done
  done
}
# nft_counts -> lines "fam hook packets bytes" of the kt_nf chains, summed over the namespaces
# in nslist (one `nft list table` per namespace and family)
nft_counts() {
  local ns fam
  for ns in "${nslist[@]}"; do
    for fam in ip ip6 arp bridge; do
      nsrun "$ns" nft list table $fam kt_nf |
        awk -v f=$fam '$1 == "chain" { c = $2 } $1 == "counter" && $2 == "packets" { print f, c, $3, $5 }'
    done
  done | awk '{ p[$1 " " $2] += $3; b[$1 " " $2] += $4 } END { for (k in p) print k, p[k], b[k] }'
}
nft_setup - || bad "nft setup failed"

# ---------------------------------------------------------------- collectd
kt_collectd_conf netfilter
csvbase=$csv/stap-netfilter
kt_collectd_start "$csvbase-ipv4/ipt_packets-local_out" || { kt_done; exit 1; }

# module series name for an nft family/hook
mfam() { case $1 in ip) echo ipv4 ;; ip6) echo ipv6 ;; *) echo "$1" ;; esac; }
mhook() { # FAM HOOK
  case $1:$2 in
  arp:input) echo in ;; arp:output) echo out ;;
  *:prerouting) echo pre_routing ;; *:input) echo local_in ;; *:forward) echo forward ;;
  *:output) echo local_out ;; *:postrouting) echo post_routing ;;
  esac
}
mval() { kt_last "$csvbase-$(mfam "$1")/ipt_$3-$(mhook "$1" "$2")"; }
# -> lines "fam hook packets bytes", from nft's counters or the module's last batch
nft_snapshot() {
  local fam hooks h counts
  counts=$(nft_counts)
  for fam in ip ip6 arp bridge; do
    case $fam in arp) hooks="input output" ;; *) hooks=$hooks_inet ;; esac
    for h in $hooks; do
      echo "$fam $h $(awk -v f=$fam -v h="$h" '$1 == f && $2 == h { print $3, $4 }' <<<"$counts")"
    done
  done
}
mod_snapshot() {
  local fam hooks h
  for fam in ip ip6 arp bridge; do
    case $fam in arp) hooks="input output" ;; *) hooks=$hooks_inet ;; esac
    for h in $hooks; do echo "$fam $h $(mval $fam "$h" packets) $(mval $fam "$h" bytes)"; done
  done
}
# settled FILE: the nft counters did not move from before to after a module batch emitted
# after them; writes "fam hook nft_p nft_b mod_p mod_b" lines of that moment to FILE.
settled() {
  local n1 n2
  n1=$(nft_snapshot)
  batches_after_now "$csvbase-ipv4/ipt_packets-local_out" || return 1
  mod_snapshot >"$1.mod"
  n2=$(nft_snapshot)
  [ "$n1" = "$n2" ] || return 1
  echo "$n2" | paste -d' ' - "$1.mod" | awk '{ print $1, $2, $3, $4, $7, $8 }' >"$1"
  rm -f "$1.mod"
}

# Namespaces and devices, made after the module was loaded: the module hooks them
# as they are created, so their nft chains are counted too.
sysctl -qw net.ipv4.ip_forward=1
for n in a b c d; do
  ip netns add kt_$n
  # a new namespace does not inherit the sysctls above
  ip netns exec kt_$n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  nft_setup kt_$n || bad "nft setup in kt_$n failed"
  nslist+=(kt_$n)
done
# One that comes and goes while the module runs: its hooks are added and removed with it (the
# kernel log check after the scenario sees any complaint about them).
ip netns add kt_e && ip netns del kt_e
ip link add a0 type veth peer name a1 netns kt_a
ip link add b0 type veth peer name b1 netns kt_b
ip addr add 10.1.0.1/24 dev a0; ip link set a0 up
ip addr add 10.2.0.1/24 dev b0; ip link set b0 up
ip -n kt_a addr add 10.1.0.2/24 dev a1; ip -n kt_a link set a1 up; ip -n kt_a route add default via 10.1.0.1
ip -n kt_b addr add 10.2.0.2/24 dev b1; ip -n kt_b link set b1 up; ip -n kt_b route add default via 10.2.0.1
ip link add br0 type bridge
ip link add c0 type veth peer name c1 netns kt_c
ip link add d0 type veth peer name d1 netns kt_d
ip link set c0 master br0; ip link set d0 master br0
ip link set c0 up; ip link set d0 up; ip link set br0 up
ip -n kt_c addr add 10.3.0.2/24 dev c1; ip -n kt_c link set c1 up
ip -n kt_d addr add 10.3.0.3/24 dev d1; ip -n kt_d link set d1 up
wait_for 120 settled "$out/before.txt"

udp_send() { # NS ADDR COUNT (NS "-" = this namespace)
  local run=()
  [ "$1" = - ] || run=(ip netns exec "$1")
  "${run[@]}" python3 -c '
import socket, sys
a, n = sys.argv[1], int(sys.argv[2])
f = socket.AF_INET6 if ":" in a else socket.AF_INET
s = socket.socket(f, socket.SOCK_DGRAM)
for i in range(n):
    s.sendto(b"n" * (50 + i), (a, 9))
' "$2" "$3"
}
say "traffic: TCP over lo, UDP over ::1, UDP forwarded kt_a -> kt_b, UDP bridged kt_c -> kt_d"
tcp_transfers 5 50000 5051 60
udp_send - ::1 40
udp_send kt_a 10.2.0.2 30
udp_send kt_c 10.3.0.3 30
wait_for 120 settled "$out/after.txt"
skipped=$(health probes_skipped); herr=$(health handler_errors)
kt_collectd_stop netfilter
slack=$((${skipped:-0} + ${herr:-0}))
maxact=$(max_actions "$out/collectd.log")
for ns in "${nslist[@]}"; do
  for fam in ip ip6 arp bridge; do nsrun "$ns" nft delete table $fam kt_nf; done
done
for n in a b c d; do ip netns del kt_$n; done

# (a)+(b): deltas per family and hook.
# Our hook runs first (priority INT_MIN) and the nft chain at 0 on the same hook, nothing
# in between drops or changes a packet (no conntrack, no other rules), and both add
# skb->len: equal, the module short only by the events SystemTap reports lost (bytes: by
# at most 1500 per lost packet, the largest packet here). Counters are compared as deltas
# over the traffic phase, each end read from a module batch emitted while nft's counters
# stood still.
{
  printf '%-7s %-12s %12s %12s   %14s %14s\n' family hook "nft pkts" "module pkts" "nft bytes" "module bytes"
  paste -d' ' "$out/before.txt" "$out/after.txt" | while read -r f h np0 nb0 mp0 mb0 _ _ np1 nb1 mp1 mb1; do
    printf '%-7s %-12s %12d %12d   %14d %14d\n' "$f" "$h" $((np1 - np0)) $((mp1 - mp0)) $((nb1 - nb0)) $((mb1 - mb0))
  done
} | tee "$out/measurements.txt"
while read -r f h np nmp nb nmb; do
  [ "$f" = family ] && continue
  check "(a) $f $h packets: module $nmp = nft $np (may be short by $slack)" short_ok "$nmp" "$np" "$slack"
  check "(a) $f $h bytes: module $nmb = nft $nb" short_ok "$nmb" "$nb" $(((np - nmp) * 1500))
done <"$out/measurements.txt"
{
  echo "module health: probes_skipped $skipped handler_errors $herr"
  echo "largest batch: $maxact of 10000 actions (collectd run, all four families); raw run: $(max_actions "$raw")"
} | tee -a "$out/measurements.txt"
check "(h) handler_errors 0 (got ${herr:-none})" [ "${herr:-x}" = 0 ]
check "(h) no MAXACTION/Array overflow/aborted/fatal in collectd.log" log_clean "$out/collectd.log"
check "(h) batches within MAXACTION: largest $maxact of 10000 actions" in_range "$maxact" 0 9999
exercised() { awk -v f="$1" -v h="$2" '$1 == f && $2 == h { print $3 }' "$out/measurements.txt"; }
for fh in "ip prerouting" "ip input" "ip forward" "ip output" "ip postrouting" \
  "ip6 prerouting" "ip6 input" "ip6 output" "ip6 postrouting" \
  "arp input" "arp output" "bridge prerouting" "bridge forward" "bridge postrouting"; do
  set -- $fh
  v=$(exercised "$1" "$2")
  check "(b) traffic reached $1 $2 ($v packets)" [ "${v:-0}" -gt 0 ]
done
echo "arp forward (no nft chain for it; bridged ARP only with br_netfilter): $(kt_last "$csvbase-arp/ipt_packets-forward")"

kt_done
