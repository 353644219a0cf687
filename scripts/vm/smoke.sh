#!/bin/bash
# smoke.sh [KVER] -- guest script: is the VM test bed fit for module tests?
#
# Run it with scripts/vm/run-guest.sh (make vm-smoke). Checks, in the guest:
# the kernel is KVER, sch_netem loads, netem loss on lo makes TCP retransmit
# (Tcp RetransSegs in /proc/net/snmp), staprun is there, debugfs is mounted.
# Prints one "smoke: ..." line per check and the measurements; writes them to
# $GUEST_RESULTS/smoke.txt too. Exit status 0 if every check passed.
set -u
KVER=${1:-${GUEST_KVER:-}}
N=${SMOKE_TRANSFERS:-20}
SIZE=${SMOKE_SIZE:-100000}
LOSS=${SMOKE_LOSS:-10%}
PORT=${SMOKE_PORT:-5999}
out=${GUEST_RESULTS:-/tmp}/smoke.txt
: >"$out"
failed=0

say() { printf 'smoke: %s\n' "$*" | tee -a "$out"; }
pass() { say "ok   $*"; }
fail() { say "FAIL $*"; failed=$((failed + 1)); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
retrans() { awk '$1 == "Tcp:" { if (!h) { for (i = 2; i <= NF; i++) if ($i == "RetransSegs") c = i; h = 1 } else { print $c; exit } }' /proc/net/snmp; }

# 1. The kernel.
if [ "$(uname -r)" = "$KVER" ]; then pass "uname -r is $KVER"; else fail "uname -r is $(uname -r), want $KVER"; fi

# 2. netem.
t=$(now)
if modprobe sch_netem; then pass "modprobe sch_netem ($(since "$t") s)"; else fail "modprobe sch_netem"; fi
if tc qdisc add dev lo root netem loss "$LOSS"; then
	pass "tc qdisc add dev lo root netem loss $LOSS"
else
	fail "tc qdisc add dev lo root netem loss $LOSS"
fi

# 3. TCP over lossy lo: N transfers of SIZE bytes to a listener that answers
# with the byte count it got, so a transfer counts only when all data arrived.
socat -t 30 -T 60 TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork EXEC:'wc -c' &
lpid=$!
for _ in $(seq 50); do
	ss -Hltn "sport = :$PORT" | grep -q . && break
	sleep 0.1
done
r0=$(retrans)
t=$(now)
ok=0
for i in $(seq "$N"); do
	got=$(head -c "$SIZE" /dev/zero | timeout 60 socat -t 30 -T 30 - TCP:127.0.0.1:"$PORT",connect-timeout=10)
	if [ "$got" = "$SIZE" ]; then ok=$((ok + 1)); else say "transfer $i: got '${got}' bytes, want $SIZE"; fi
done
dt=$(since "$t")
r1=$(retrans)
kill "$lpid" 2>/dev/null
wait "$lpid" 2>/dev/null
tc qdisc del dev lo root 2>/dev/null
say "measure transfers=$N size=$SIZE loss=$LOSS complete=$ok seconds=$dt RetransSegs_before=$r0 after=$r1 delta=$((r1 - r0))"
if [ "$ok" -eq "$N" ]; then pass "$ok/$N transfers complete in $dt s"; else fail "$ok/$N transfers complete"; fi
if [ $((r1 - r0)) -gt 0 ]; then pass "RetransSegs rose by $((r1 - r0))"; else fail "RetransSegs did not rise ($r0 -> $r1)"; fi

# 4. SystemTap's loader and debugfs.
if p=$(command -v staprun); then pass "staprun at $p"; else fail "staprun not found"; fi
if awk '$2 == "/sys/kernel/debug" && $3 == "debugfs" { f = 1 } END { exit !f }' /proc/mounts; then
	pass "debugfs mounted on /sys/kernel/debug"
else
	fail "debugfs not mounted on /sys/kernel/debug"
fi

say "uptime $(cut -d' ' -f1 /proc/uptime) s; $failed check(s) failed"
[ "$failed" -eq 0 ]
