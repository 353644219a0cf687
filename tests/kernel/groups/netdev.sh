#!/bin/bash
# Kernel test, group netdev (runs inside the VM, see scripts/vm/run-guest.sh):
# a veth pair (vA here, vB in network namespace kt_nd) carries a TCP transfer
# and UDP datagrams; `ip link` changes vA (mtu, address, promisc on/off,
# down/up) and adds and deletes a dummy device; a few ioctls name vA. Asserts,
# under collectd:
#  (a) rx/tx packets and bytes of vA and of vB (named vB.nsINUM) equal their
#      /proc/net/dev counters (read in their namespaces);
#  (b) each `ip link` action counted once on vA (and the dummy's register and
#      unregister), notifications logged (promiscuous on = WARNING, MTU change
#      names old and new MTU); ioctl and get_stats counts equal the calls the
#      test made;
#  (c) the transmit-queue latency gauge saw every packet vA sent;
#  (d) after collectd stops, no staprun/stapio and no module remain.
. "$(dirname "$0")/../scenario.sh"
kt_require_module netdev
modprobe veth 2>/dev/null
modprobe dummy 2>/dev/null
# No IPv6 autoconfiguration traffic (router solicitations, MLD) on new devices.
sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1

# ---------------------------------------------------------------- raw output
say "raw module output (staprun alone, 1 s batches): ip link actions on a dummy device"
staprun "$modules/collectd_stap_netdev.ko" interval_ms=1000 >"$out/netdev-module-output.txt" 2>"$out/netdev-module-stderr.txt" &
spid=$!
wait_for 60 grep -q '^end ' "$out/netdev-module-output.txt"
ip link add kt0 type dummy
ip link set kt0 mtu 1400
ip link set kt0 address 02:00:00:00:00:01
ip link set kt0 up
ip link set kt0 promisc on
ip link set kt0 promisc off
ip link set kt0 down
ip link del kt0
sleep 1.5
kill -INT $spid
wait $spid
head -4 "$out/netdev-module-output.txt" | sed 's/^/  /'
grep '^notify' "$out/netdev-module-output.txt" | sed 's/^/  /'
wait_for 30 no_module
check "(b) raw: 8 notifications for kt0 (register, mtu, mac, up, promisc on, off, down, unregister)" \
  [ "$(grep -c '^notify .* netdev-kt0 ' "$out/netdev-module-output.txt")" = 8 ]
check "(b) raw: promiscuous on is a warning" grep -q '^notify warning netdev-kt0 operations promisc_on kt0: promiscuous mode on' "$out/netdev-module-output.txt"

say "txq_latency=0: the latency probes are off"
staprun "$modules/collectd_stap_netdev.ko" interval_ms=1000 txq_latency=0 >"$out/netdev-module-output-txq0.txt" 2>&1 &
spid=$!
wait_for 60 grep -q '^end ' "$out/netdev-module-output-txq0.txt"
head -c 20000 /dev/zero | socat -u - UDP:127.0.0.1:9 2>/dev/null
sleep 1.2
kill -INT $spid
wait $spid
wait_for 30 no_module
check "(c) txq_latency=0: info line says off" grep -q 'net:net_dev_queue=off net:net_dev_start_xmit=off' "$out/netdev-module-output-txq0.txt"
check "(c) txq_latency=0: lo counted, no latency lines" \
  grep -q '^derive netdev-lo if_packets - [1-9]' "$out/netdev-module-output-txq0.txt" && ! grep -q stap_latency "$out/netdev-module-output-txq0.txt"

# ---------------------------------------------------------------- collectd
kt_collectd_conf netdev
csvdir=$csv/stap-netdev
kt_collectd_start "$csvdir/stap_running" || { kt_done; exit 1; }

ip netns add kt_nd
ip netns exec kt_nd sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip link add vA type veth peer name vB netns kt_nd
ip addr add 10.77.0.1/24 dev vA
ip link set vA up
ip -n kt_nd addr add 10.77.0.2/24 dev vB
ip -n kt_nd link set vB up
ns=$(ip netns exec kt_nd stat -L -c %i /proc/self/ns/net)
pB=vB.ns$ns

say "traffic over the veth pair: 2 MB of TCP, 100 UDP datagrams"
ip netns exec kt_nd timeout 30 socat -u TCP-LISTEN:7000,bind=10.77.0.2 OPEN:/dev/null &
lp=$!
sleep 0.5
head -c 2000000 /dev/zero | timeout 30 socat -u - TCP:10.77.0.2:7000,connect-timeout=10
wait $lp
python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(100):
    s.sendto(b"u" * (100 + i), ("10.77.0.2", 9))
PY
sleep 1

# collectd's csv directory of plugin instance PINST is stap-PINST.
csvpath() { echo "$csv/stap-$1"; }
series() { kt_last "$(csvpath "$1")"; }
field() { tail -1 "$(csvpath "$1")"-20* 2>/dev/null | cut -d, -f"$2"; }
stable() {
  local a b
  a="$(field netdev-vA/if_packets 2,3) $(series netdev-vA/operations-get_stats)"
  sleep 2.5
  b="$(field netdev-vA/if_packets 2,3) $(series netdev-vA/operations-get_stats)"
  [ "$a" = "$b" ]
}
wait_for 60 stable

say "get_stats: 5 reads of /proc/net/dev; ioctl: 3 SIOCGIFMTU on vA"
g1=$(series netdev-vA/operations-get_stats)
for _ in 1 2 3 4 5; do cat /proc/net/dev >/dev/null; done
python3 - <<'PY'
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    fcntl.ioctl(s, 0x8921, struct.pack("16s16x", b"vA"))   # SIOCGIFMTU
PY
sleep 2.5
g2=$(series netdev-vA/operations-get_stats)

say "ip link actions on vA; a dummy device added and deleted"
lines0=$(wc -l <"$out/collectd.log")
ip link set vA mtu 1400
ip link set vA address 02:00:00:00:00:aa
ip link set vA promisc on
ip link set vA promisc off
ip link set vA down
ip link set vA up
ip link add kt1 type dummy
ip link del kt1
sleep 3
wait_for 60 stable
read -r _ rxbA rxpA _ _ _ _ _ _ txbA txpA _ txdA _ <<<"$(grep '^ *vA:' /proc/net/dev | tr ':' ' ')"
read -r _ rxbB rxpB _ _ _ _ _ _ txbB txpB _ txdB _ <<<"$(ip netns exec kt_nd grep '^ *vB:' /proc/net/dev | tr ':' ' ')"
g3=$(series netdev-vA/operations-get_stats)
kt_collectd_stop netdev
ip netns del kt_nd

mA=$(field netdev-vA/if_packets 2,3)
oA=$(field netdev-vA/if_octets 2,3)
mB=$(field "netdev-$pB/if_packets" 2,3)
oB=$(field "netdev-$pB/if_octets" 2,3)
lat=$(ls "$(csvpath netdev-vA)"/stap_latency-txqueue-20* 2>/dev/null | head -1)
lcount=$(tail -n +2 "$lat" | awk -F, '{ s += $2 } END { print s + 0 }')
lmax=$(tail -n +2 "$lat" | awk -F, '$2 > 0 && $4 > m { m = $4 } END { print m + 0 }')
{
  echo "vA packets rx,tx (csv): $mA   /proc/net/dev: $rxpA,$txpA (tx dropped $txdA)"
  echo "vA bytes   rx,tx (csv): $oA   /proc/net/dev: $rxbA,$txbA"
  echo "$pB packets rx,tx (csv): $mB   /proc/net/dev in kt_nd: $rxpB,$txpB"
  echo "$pB bytes   rx,tx (csv): $oB   /proc/net/dev in kt_nd: $rxbB,$txbB"
  for e in register unregister open close change_mtu change_mac promisc_on promisc_off change_rx_flag ioctl get_stats; do
    printf '  vA %-15s %s\n' "$e" "$(series "netdev-vA/operations-$e")"
  done
  echo "  kt1 register $(series netdev-kt1/operations-register) unregister $(series netdev-kt1/operations-unregister)"
  echo "get_stats on vA over 5 reads of /proc/net/dev: $g1 -> $g2"
  echo "txqueue latency: $lcount packets timed over all intervals, vA sent $txpA (+$txdA dropped); largest max $lmax us"
} | tee "$out/measurements.txt"

# (a) Both sides count skbs at the same places the driver does: veth adds skb->len (with
# the Ethernet header) per skb it forwards, to its tx and to the peer's rx; the module
# adds the same length at net_dev_xmit and, with the pulled header added back, at
# netif_receive_skb. The devices were created after the module was loaded, so both
# start at 0: equality, no tolerance.
check "(a) vA packets rx,tx: $mA = $rxpA,$txpA" [ "$mA" = "$rxpA,$txpA" ]
check "(a) vA bytes rx,tx: $oA = $rxbA,$txbA" [ "$oA" = "$rxbA,$txbA" ]
check "(a) $pB packets rx,tx: $mB = $rxpB,$txpB" [ "$mB" = "$rxpB,$txpB" ]
check "(a) $pB bytes rx,tx: $oB = $rxbB,$txbB" [ "$oB" = "$rxbB,$txbB" ]
check "(a) the transfer went through vA (>= 2000000 bytes tx)" [ "${txbA:-0}" -ge 2000000 ]
# (b) one notifier call per action: exact.
want() { # EVENT N
  local v
  v=$(series "netdev-vA/operations-$1")
  check "(b) vA $1 = $2 (measured ${v:-none})" [ "${v:-x}" = "$2" ]
}
want register 1
want unregister 0
want open 2
want close 1
want change_mtu 1
want change_mac 1
want promisc_on 1
want promisc_off 1
want change_rx_flag 2   # IFF_PROMISC on and off reach the driver once each
want ioctl 3
check "(b) kt1 register 1, unregister 1" \
  [ "$(series netdev-kt1/operations-register),$(series netdev-kt1/operations-unregister)" = "1,1" ]
check "(b) get_stats on vA: +5 for 5 reads of /proc/net/dev ($g1 -> $g2)" [ $((g2 - g1)) = 5 ]
log=$out/collectd.log
grep 'Notification:.*plugin_instance = netdev-' "$log" | sed 's/^/  /' >"$out/notifications.txt"
sed 's/^/  /' "$out/notifications.txt" | tail -12
check "(b) WARNING for promiscuous mode on vA" \
  grep -q 'severity = WARNING.*plugin_instance = netdev-vA, type = operations, type_instance = promisc_on.*promiscuous mode on' "$log"
check "(b) OKAY naming the MTU change 1500 -> 1400" \
  grep -q 'severity = OKAY.*plugin_instance = netdev-vA.*type_instance = change_mtu.*MTU changed from 1500 to 1400' "$log"
check "(b) OKAY for kt1 unregistered" \
  grep -q 'severity = OKAY.*plugin_instance = netdev-kt1.*type_instance = unregister.*device unregistered' "$log"
# (c) vA's qdisc is noqueue: every packet it sends passes net_dev_queue and then
# net_dev_start_xmit with the same skb (veth does GSO itself, nothing is split), so the
# gauge's counts add up to the packets sent, plus any the driver dropped.
check "(c) txqueue latency counted every packet vA sent ($lcount = $txpA + $txdA)" \
  [ "$lcount" = "$((txpA + txdA))" ]
check "(c) txqueue latency max below 1 s ($lmax us)" [ "${lmax%.*}" -lt 1000000 ]

kt_done
