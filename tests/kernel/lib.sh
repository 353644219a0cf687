# shellcheck shell=bash
# tests/kernel/lib.sh -- helpers for kernel test scenarios (bash; source it).
#
# Written for guest scripts run by scripts/vm/run-guest.sh, where the test
# owns the (virtual) machine: netem changes lo for everyone. Functions:
#
#   snmp_counter GROUP NAME          print a counter from /proc/net/snmp or
#                                    /proc/net/netstat (e.g. Tcp RetransSegs,
#                                    TcpExt ListenOverflows)
#   snmp_counters [--netns NS] GROUP:NAME...
#                                    several on one line ("-" for a missing one),
#                                    in network namespace NS if given
#   counter_at_least GROUP NAME MIN  true if that counter is >= MIN
#   netem_loss_start PCT [DEV]       netem loss PCT% on DEV (default lo)
#   netem_stop [DEV]                 remove DEV's root qdisc (default lo)
#   tcp_transfers COUNT SIZE PORT [TIMEOUT]
#                                    COUNT transfers of SIZE bytes over lo to a
#                                    listener on 127.0.0.1:PORT, all within
#                                    TIMEOUT s (default 120)
#   wait_for TIMEOUT CMD [ARGS...]   run CMD every KLIB_POLL s (default 0.1)
#                                    until it succeeds or TIMEOUT s passed
#   klib_in_guest                    true inside the test VM
#
# Conventions: messages go to stderr prefixed "lib: "; results to stdout; a
# function returns 0 on success, 1 on failure, 2 on a usage error. Nothing here
# calls exit or sets shell options or traps. Needs bash >= 5 (EPOCHREALTIME),
# socat, iproute2 (tc, ss), kmod (modprobe), coreutils (head, timeout).

KLIB_POLL=${KLIB_POLL:-0.1}

_klib_msg() { printf 'lib: %s\n' "$*" >&2; }

# _klib_uint VALUE MIN MAX: VALUE is a decimal integer within [MIN, MAX].
_klib_uint() {
	case "$1" in '' | *[!0-9]*) return 1 ;; esac
	[ "${#1}" -le 12 ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}

# _klib_seconds VALUE: VALUE is a number of seconds (e.g. 5, 0.5), > 0.
_klib_seconds() {
	[[ $1 =~ ^[0-9]{1,6}(\.[0-9]{1,6})?$ ]] && [[ $1 =~ [1-9] ]]
}

# _klib_usec SECONDS: print SECONDS (e.g. 1.5) in microseconds.
_klib_usec() {
	local i=${1%%.*} f=
	[ "$i" = "$1" ] || f=${1#*.}
	f=${f}000000
	printf '%d\n' "$((10#${i:-0} * 1000000 + 10#${f:0:6}))"
}

# _klib_now_usec: microseconds since the epoch, without forking.
_klib_now_usec() {
	local t=$EPOCHREALTIME
	printf '%d\n' "$((10#${t%[.,]*} * 1000000 + 10#${t#*[.,]}))"
}

klib_in_guest() {
	[ -n "${GUEST_RESULTS:-}" ] && [ "$(hostname 2>/dev/null)" = stapvm ]
}

# KLIB_SNMP_AWK: the awk program that reads /proc/net/snmp and /proc/net/netstat, given
# -v want="Group:name ..." (e.g. "Tcp:InSegs TcpExt:ListenOverflows"): prints the values on one
# line, in that order, "-" for a counter that is not there. Both files hold pairs of lines,
# "Group: name1 name2 ..." then "Group: value1 value2 ...".
KLIB_SNMP_AWK='
	BEGIN { n = split(want, w, " ") }
	{ key = FILENAME SUBSEP $1 }
	!(key in hdr) { hdr[key] = 1; for (i = 2; i <= NF; i++) col[$1, $i] = i; next }
	{ for (i = 2; i <= NF; i++) val[$1, i] = $i }
	END {
		for (k = 1; k <= n; k++) {
			split(w[k], gn, ":"); c = col[gn[1] ":", gn[2]]
			printf "%s%s", (k > 1 ? " " : ""), (c && (gn[1] ":", c) in val ? val[gn[1] ":", c] : "-")
		}
		print ""
	}'

# snmp_counters [--netns NS] GROUP:NAME...: their values on one line ("-" for one that is not
# there), in namespace NS if given (one `ip netns exec` for all of them).
snmp_counters() {
	local run=()
	if [ "${1:-}" = --netns ]; then
		run=(ip netns exec "$2")
		shift 2
	fi
	"${run[@]}" awk -v want="$*" "$KLIB_SNMP_AWK" /proc/net/snmp /proc/net/netstat
}

# snmp_counter GROUP NAME: prints the value; 1 if there is no such counter.
snmp_counter() {
	if [ $# -ne 2 ]; then
		_klib_msg "usage: snmp_counter GROUP NAME (e.g. Tcp RetransSegs)"
		return 2
	fi
	local v
	v=$(snmp_counters "$1:$2" 2>/dev/null)
	case "$v" in
	'' | -)
		_klib_msg "no counter '$1 $2' in /proc/net/snmp or /proc/net/netstat"
		return 1
		;;
	esac
	printf '%s\n' "$v"
}

# counter_at_least GROUP NAME MIN (quiet; for wait_for)
counter_at_least() {
	local v
	v=$(snmp_counter "$1" "$2") || return 1
	[ "$v" -ge "$3" ]
}

# netem_loss_start PCT [DEV]: PCT is 0-100, optionally with decimals or a
# trailing %. Replaces DEV's root qdisc. Only inside the test VM unless
# KLIB_ALLOW_HOST=1 (netem on a real host's lo hurts everything on it).
netem_loss_start() {
	local pct=${1:-} dev=${2:-lo}
	pct=${pct%\%}
	if ! [[ $pct =~ ^[0-9]{1,3}(\.[0-9]{1,4})?$ ]] || [ "${pct%.*}" -gt 100 ]; then
		_klib_msg "usage: netem_loss_start PCT [DEV] (PCT 0-100, e.g. 10 or 2.5%)"
		return 2
	fi
	if ! klib_in_guest && [ "${KLIB_ALLOW_HOST:-0}" != 1 ]; then
		_klib_msg "netem_loss_start: refusing to add loss to $dev outside the test VM (set KLIB_ALLOW_HOST=1 to force)"
		return 1
	fi
	modprobe sch_netem 2>/dev/null || true # built in or already loaded is fine
	if ! tc qdisc replace dev "$dev" root netem loss "$pct%"; then
		_klib_msg "netem_loss_start: tc qdisc replace dev $dev root netem loss $pct% failed (sch_netem missing?)"
		return 1
	fi
	_klib_msg "netem loss $pct% on $dev"
}

# netem_stop [DEV]: back to the default qdisc; fine if none was set.
netem_stop() {
	local dev=${1:-lo}
	if tc qdisc show dev "$dev" 2>/dev/null | grep -q '^qdisc netem .* root'; then
		tc qdisc del dev "$dev" root || {
			_klib_msg "netem_stop: tc qdisc del dev $dev root failed"
			return 1
		}
		_klib_msg "netem removed from $dev"
	fi
	return 0
}

# tcp_transfers COUNT SIZE PORT [TIMEOUT]
# Starts a listener on 127.0.0.1:PORT that answers each connection with the
# number of bytes it received (socat running `wc -c`; its -t is raised from
# 0.5 s because under TCG wc can take longer than that to answer), then makes COUNT sequential connections that
# each send SIZE bytes and check the answer: a transfer is complete only when
# every byte arrived. Everything (listener included) ends within TIMEOUT s.
# Bounds: COUNT 1-1000, SIZE 1-100000000, PORT 1024-65535, TIMEOUT <= 3600.
# Prints "complete=N count=COUNT size=SIZE seconds=S" on stdout; returns 0 if
# all COUNT transfers completed, 1 otherwise (or if PORT is in use).
tcp_transfers() {
	local count=${1:-} size=${2:-} port=${3:-} tmo=${4:-120}
	if ! _klib_uint "$count" 1 1000 || ! _klib_uint "$size" 1 100000000 ||
		! _klib_uint "$port" 1024 65535 || ! _klib_seconds "$tmo" ||
		[ "$(_klib_usec "$tmo")" -gt 3600000000 ]; then
		_klib_msg "usage: tcp_transfers COUNT(1-1000) SIZE(1-100000000) PORT(1024-65535) [TIMEOUT(s, <=3600)]"
		return 2
	fi
	if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
		_klib_msg "tcp_transfers: port $port is already in use"
		return 1
	fi
	local t0 deadline lpid i left got ok=0 tsec
	t0=$(_klib_now_usec)
	deadline=$((t0 + $(_klib_usec "$tmo")))
	socat -t "$tmo" -T "$tmo" TCP-LISTEN:"$port",bind=127.0.0.1,reuseaddr,fork EXEC:'wc -c' </dev/null >/dev/null &
	lpid=$!
	if ! wait_for 5 _klib_listening "$port"; then
		_klib_msg "tcp_transfers: listener on 127.0.0.1:$port did not start"
		kill "$lpid" 2>/dev/null
		wait "$lpid" 2>/dev/null
		return 1
	fi
	for ((i = 1; i <= count; i++)); do
		left=$((deadline - $(_klib_now_usec)))
		if [ "$left" -le 0 ]; then
			_klib_msg "tcp_transfers: timeout (${tmo}s) after $((i - 1)) of $count transfers"
			break
		fi
		left=$(printf '%d.%06d' $((left / 1000000)) $((left % 1000000)))
		got=$(head -c "$size" /dev/zero |
			timeout -k 1 "$left" socat -t "$tmo" -T "$tmo" - TCP:127.0.0.1:"$port",connect-timeout="$left" 2>/dev/null)
		if [ "$got" = "$size" ]; then
			ok=$((ok + 1))
		else
			_klib_msg "tcp_transfers: transfer $i of $count: listener got '${got:-nothing}' of $size bytes"
		fi
	done
	kill "$lpid" 2>/dev/null
	wait "$lpid" 2>/dev/null
	tsec=$(($(_klib_now_usec) - t0))
	printf 'complete=%d count=%d size=%d seconds=%d.%02d\n' "$ok" "$count" "$size" \
		$((tsec / 1000000)) $((tsec % 1000000 / 10000))
	[ "$ok" -eq "$count" ]
}

_klib_listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# wait_for TIMEOUT CMD [ARGS...]: 0 as soon as CMD succeeds (checked at least
# once), 1 if it still fails after TIMEOUT seconds (fractions allowed).
wait_for() {
	if [ $# -lt 2 ] || ! _klib_seconds "$1"; then
		_klib_msg "usage: wait_for TIMEOUT(s) CMD [ARGS...]"
		return 2
	fi
	local deadline
	deadline=$(($(_klib_now_usec) + $(_klib_usec "$1")))
	shift
	while :; do
		"$@" && return 0
		[ "$(_klib_now_usec)" -lt "$deadline" ] || break
		sleep "$KLIB_POLL"
	done
	_klib_msg "wait_for: '$*' still false after the timeout"
	return 1
}
