#!/bin/bash
# lib-test.sh -- guest scenario that exercises tests/kernel/lib.sh.
#
# Run with `make vm-lib-test` (scripts/vm/run-guest.sh scripts/vm/lib-test.sh).
# Outside the VM only the checks that leave the machine alone run (netem and
# the lossy transfers are skipped). Prints "lib-test: ok|FAIL ..." per check
# and the measurements; exit status 0 if all checks passed.
set -u
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tests/kernel/lib.sh
. "$top/tests/kernel/lib.sh"

failed=0 passed=0
say() { printf 'lib-test: %s\n' "$*"; }
check() { # check DESCRIPTION CMD [ARGS...]
	local d=$1
	shift
	if "$@"; then passed=$((passed + 1)); say "ok   $d"; else failed=$((failed + 1)); say "FAIL $d"; fi
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
status_is() { # status_is WANT CMD [ARGS...]: CMD exits with WANT
	local want=$1
	shift
	"$@" >/dev/null 2>&1
	[ $? -eq "$want" ]
}
elapsed_between() { # elapsed_between MIN MAX CMD...: CMD's wall time in [MIN, MAX] s
	local lo=$1 hi=$2 t0 t1
	shift 2
	t0=$(_klib_now_usec)
	"$@" >/dev/null 2>&1
	t1=$(_klib_now_usec)
	say "     ($* took $(((t1 - t0) / 1000)) ms)"
	[ $((t1 - t0)) -ge "$(_klib_usec "$lo")" ] && [ $((t1 - t0)) -le "$(_klib_usec "$hi")" ]
}

# snmp_counter
v=$(snmp_counter Tcp RetransSegs)
check "snmp_counter Tcp RetransSegs = '$v' is a number" is_uint "$v"
v=$(snmp_counter Ip InReceives)
check "snmp_counter Ip InReceives = '$v' is a number" is_uint "$v"
v=$(snmp_counter TcpExt ListenOverflows)
check "snmp_counter TcpExt ListenOverflows = '$v' (from /proc/net/netstat)" is_uint "$v"
v=$(snmp_counter Udp InDatagrams)
check "snmp_counter Udp InDatagrams = '$v' is a number" is_uint "$v"
check "snmp_counter Tcp NoSuchCounter fails with 1" status_is 1 snmp_counter Tcp NoSuchCounter
check "snmp_counter NoGroup RetransSegs fails with 1" status_is 1 snmp_counter NoGroup RetransSegs
check "snmp_counter with one argument is a usage error" status_is 2 snmp_counter Tcp

# wait_for
check "wait_for 1 true succeeds at once" elapsed_between 0 0.5 wait_for 1 true
check "wait_for 0.5 false fails after about 0.5 s" elapsed_between 0.5 2 status_is 1 wait_for 0.5 false
flag=/tmp/lib-test.flag.$$
rm -f "$flag"
(sleep 0.5 && : >"$flag") &
check "wait_for 5 sees a file created after 0.5 s" elapsed_between 0.3 3 wait_for 5 test -e "$flag"
wait
rm -f "$flag"
check "wait_for without a command is a usage error" status_is 2 wait_for 1
check "wait_for with a bad timeout is a usage error" status_is 2 wait_for abc true
check "counter_at_least Tcp RetransSegs 0 is true" counter_at_least Tcp RetransSegs 0

# tcp_transfers: bounds
check "tcp_transfers 0 ... is refused" status_is 2 tcp_transfers 0 1000 6001
check "tcp_transfers 1001 ... is refused" status_is 2 tcp_transfers 1001 1000 6001
check "tcp_transfers with SIZE 200 MB is refused" status_is 2 tcp_transfers 1 200000000 6001
check "tcp_transfers on port 80 is refused" status_is 2 tcp_transfers 1 1000 80
check "tcp_transfers with TIMEOUT 7200 is refused" status_is 2 tcp_transfers 1 1000 6001 7200

# tcp_transfers without loss
r0=$(snmp_counter Tcp RetransSegs)
out=$(tcp_transfers 5 10000 6001 30)
rc=$?
r1=$(snmp_counter Tcp RetransSegs)
say "measure no-loss: $out RetransSegs_delta=$((r1 - r0))"
check "tcp_transfers 5 10000 6001: all complete" [ "$rc" -eq 0 ]
check "tcp_transfers 5 10000 6001 reports complete=5" [ "${out%% *}" = complete=5 ]
check "the listener is gone afterwards" status_is 1 _klib_listening 6001

# a port in use
socat TCP-LISTEN:6003,bind=127.0.0.1,reuseaddr OPEN:/dev/null </dev/null &
busy=$!
wait_for 5 _klib_listening 6003
check "tcp_transfers on a port in use fails with 1" status_is 1 tcp_transfers 1 1000 6003 5
kill "$busy" 2>/dev/null
wait "$busy" 2>/dev/null

if ! klib_in_guest; then
	check "netem_loss_start refuses to run outside the VM" status_is 1 netem_loss_start 10
	say "not in the test VM: netem checks skipped"
	say "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
fi

# netem
check "netem_loss_start 101 is a usage error" status_is 2 netem_loss_start 101
check "netem_loss_start 10" netem_loss_start 10
check "tc shows netem loss 10% on lo" eval 'tc qdisc show dev lo | grep -q "netem.*loss 10%"'
r0=$(snmp_counter Tcp RetransSegs)
out=$(tcp_transfers 20 100000 6002 120)
rc=$?
r1=$(snmp_counter Tcp RetransSegs)
say "measure loss=10%: $out RetransSegs_before=$r0 after=$r1 delta=$((r1 - r0))"
check "20 x 100 kB over 10% loss: all complete" [ "$rc" -eq 0 ]
check "RetransSegs rose ($r0 -> $r1)" [ "$r1" -gt "$r0" ]
check "wait_for + counter_at_least sees it" wait_for 1 counter_at_least Tcp RetransSegs "$r1"
check "netem_loss_start 2.5% replaces it" netem_loss_start 2.5%
check "tc shows loss 2.5%" eval 'tc qdisc show dev lo | grep -q "netem.*loss 2.5%"'

# the time bound: with 100% loss nothing gets through
check "netem_loss_start 100" netem_loss_start 100
check "tcp_transfers under 100% loss gives up after its 3 s TIMEOUT" \
	elapsed_between 2.5 6 status_is 1 tcp_transfers 3 1000 6004 3
check "netem_stop" netem_stop
check "no netem left on lo" eval '! tc qdisc show dev lo | grep -q netem'
check "netem_stop again is fine" netem_stop
out=$(tcp_transfers 3 1000 6004 30)
check "transfers work again after netem_stop ($out)" [ "${out%% *}" = complete=3 ]

say "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
