#!/bin/bash
# Writes the seed corpus of tests/fuzz/fuzz_read_path.c into OUTDIR: the
# module lines of every tests/data/*.replay (what the module prints, with
# the fake staprun's directives turned into the harness's: @stderr TEXT
# lines go to the run's stderr, @exit and @kill-self end the run), a session
# that crashes and restarts, and hand-made edge cases of the protocol.
# Each input starts with the harness's two header bytes (see the harness):
# group and chunk size, then the MaxSeries/MaxBatchRecords selector.
#   tests/fuzz/seeds.sh OUTDIR
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: seeds.sh OUTDIR}
mkdir -p "$out"
groups=(tcp netdev udp netfilter ipmib socket connect accept drops)

group_index() { # NAME -> its index in the plugin's known groups
  local i
  for i in "${!groups[@]}"; do
    [ "${groups[i]}" = "$1" ] && echo "$i" && return
  done
  echo 0
}

header() { # GROUP CHUNK_INDEX LIMITS_BYTE
  printf "\\x$(printf %02x $(($(group_index "$1") * 16 + $2)))\\x$(printf %02x "$3")"
}

# The module's output of one replay file: stdout lines, then "@stderr" and
# the stderr lines; @exit/@kill-self end it (what follows never plays).
module_lines() { # FILE GROUP
  awk -v group="$2" '
    /^@(exit|kill-self)( |$)/ { exit }
    /^@stderr / { err = err substr($0, 9) "\n"; next }
    /^@/ || /^#/ { next }
    { gsub(/GROUP/, group); printf "%s\n", $0 }
    END { if (err != "") printf "@stderr\n%s", err }
  ' "$1"
}

replay_group() { # FILE -> the group its hello names (tcp for a placeholder)
  local g
  g=$(awk '$1 == "hello" { print $3; exit }' "$1")
  case $g in '' | GROUP) echo tcp ;; *) echo "$g" ;; esac
}

n=0
for f in "$top"/tests/data/*.replay; do
  name=$(basename "$f" .replay)
  g=$(replay_group "$f")
  # Whole reads with large limits; 7-byte pieces with MaxSeries 4 and
  # MaxBatchRecords 7, so lines are cut everywhere and the limits are hit.
  { header "$g" 15 128; module_lines "$f" "$g"; } >"$out/replay-$name"
  { header "$g" 4 35; module_lines "$f" "$g"; } >"$out/replay-$name-small"
  n=$((n + 2))
done

# The collectd tier's session: a run that crashes, then a good one.
{
  header tcp 15 128
  module_lines "$top/tests/data/tcp-crash.replay" tcp
  printf '@restart\n'
  module_lines "$top/tests/data/tcp-climb.replay" tcp
} >"$out/replay-tcp-crash-restart"
n=$((n + 1))

# case NAME GROUP CHUNK_INDEX LIMITS_BYTE: the body on stdin, with printf %b
# escapes (\xNN, \n) for bytes a text file cannot hold; a \c at the end
# leaves the last line without its newline.
case_seed() {
  { header "$2" "$3" "$4"; printf '%b\n' "$(cat)"; } >"$out/case-$1"
  n=$((n + 1))
}

case_seed restart-decrease tcp 15 128 <<'EOF'
hello 1 tcp
begin 1
derive tcp protocol_counter a 9 4
derive tcp-x if_octets - 100 200
end 1 2
begin 2
derive tcp protocol_counter a 5 4
derive tcp-x if_octets - 50 300
end 2 2
@restart
hello 1 tcp
begin 1
derive tcp protocol_counter a 1 1
derive tcp-x if_octets - 0 0
end 1 2
begin 3
derive tcp protocol_counter a 12 2
end 3 1
EOF

case_seed duplicate-and-count udp 6 128 <<'EOF'
hello 1 udp
begin 1
derive udp protocol_counter a 1
gauge udp protocol_counter a 2
end 1 2
begin 2
notify warning udp protocol_counter a twice is fine for notifications
notify okay udp protocol_counter a twice is fine for notifications
derive udp protocol_counter a 3
end 2 3
begin 3
derive udp protocol_counter a 4
end 3 7
begin 4
begin 5
derive udp protocol_counter a 5
end 4 1
end 5 1
EOF

case_seed foreign-and-health tcp 3 128 <<'EOF'
hello 1 tcp
begin 1
derive udp protocol_counter a 1
end 1 1
begin 2
derive tcpx protocol_counter a 1
end 2 1
begin 3
gauge tcp stap_running - 1
end 3 1
begin 4
derive tcp-a stap_events restarts 999
end 4 1
begin 5
derive tcp stap_module probes_skipped 0
gauge tcp- gauge - nan
end 5 2
EOF

case_seed max-series netfilter 7 0x22 <<'EOF'
hello 1 netfilter
begin 1
gauge netfilter gauge a 1
gauge netfilter gauge b 1
gauge netfilter gauge c 1
derive netfilter derive d 1
notify failure netfilter gauge e too many
end 1 5
begin 2
gauge netfilter gauge a 1
derive netfilter fuzz_unknown f 1
end 2 2
EOF

case_seed hello-refused tcp 5 128 <<'EOF'
hello 2 tcp
begin 1
derive tcp protocol_counter a 1
end 1 1
@restart
hello 1 udp
@restart
hello 1 tcp
info probes \x1b[31m red\x7f and \xc3\xa9
hello 1 tcp
begin 1
hello 1 tcp
end 1 0
begin 2
info inside a batch
end 2 0
EOF

case_seed bytes tcp 1 0x80 <<'EOF'
hello 1 tcp\r
begin 1\r
derive tcp protocol_counter a 1\x00\r
end 1 1
begin 2
derive tcp  protocol_counter   b   18446744073709551615
derive tcp protocol_counter c 9223372036854775807
gauge tcp gauge d 1e308 -1e-300 +5 nan NaN 0x10
gauge tcp gauge e inf
gauge tcp gauge f 1 2 3 4 5 6 7 8 9
end 2 4
\xff\xfe\x00\x01 binary
begin 3
derive tcp protocol_counter c 9223372036854775807
end 3 1
@restart
hello 1 tcp
begin 1
derive tcp protocol_counter c 9223372036854775807
end 1 1
begin 2
derive tcp protocol_counter c 1
end 2 1
unterminated last line\c
EOF

# Overlong lines: inside a batch, at exactly the limit, and one without a
# newline at the end of the output.
long=$(printf '%01100d' 0)
case_seed overlong drops 11 128 <<EOF
hello 1 drops
begin 1
derive drops packets total 1
$long
end 1 1
begin 2
derive drops packets total 2 $(printf '%0990d' 0)
end 2 1
begin 3
derive drops packets total 3
end 3 1
$long$long
EOF

case_seed stderr-hints accept 9 128 <<'EOF'
@insert
@stderr
ERROR: Couldn't insert module 'x.ko': Function not implemented
ERROR: Couldn't insert module 'x.ko': File exists
ERROR: Rerun with staprun option '-R' to remove this module.
WARNING: \x1b]0;title\x07 bell
ERROR: a
ERROR: b
ERROR: c
ERROR: d
ERROR: e
ERROR: f doesn't match
EOF

echo "seeds.sh: $n inputs in $out"
