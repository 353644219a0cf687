#!/bin/bash
# make graphs: PNGs from the RRD files of collectd's rrdtool plugin.
#   scripts/graphs.sh RRDDIR OUTDIR
# RRDDIR is the rrdtool plugin's DataDir (HOST/PLUGIN-INSTANCE/TYPE-INST.rrd
# below it). Draws what is there, says what is not:
#   retransmits.png  TCP retransmits per second with the shipped WarningMax
#   throughput.png   bytes per second per device (netdev group)
#   connect-latency.png  TCP handshake latency p50, p99 and max (connect group)
#   drops.png        dropped packets per second by reason (drops group)
# For each graph it prints "GRAPH: max=N" (the largest value drawn), so a
# test can tell a graph with data from an empty one.
set -euo pipefail
rrd=${1:?usage: graphs.sh RRDDIR OUTDIR}
out=${2:?usage: graphs.sh RRDDIR OUTDIR}
top=$(cd "$(dirname "$0")/.." && pwd)
command -v rrdtool >/dev/null || { echo "graphs: rrdtool missing: apt-get install rrdtool" >&2; exit 1; }
mkdir -p "$out"
span=${GRAPH_SPAN:-120}
drawn=0

window() { # RRD -> "--start S --end E" around its last update
  local last
  last=$(rrdtool last "$1")
  echo "--start $((last - span)) --end $last"
}

graph() { # NAME RRD-for-window rrdtool-args...
  local name=$1 ref=$2 res
  shift 2
  # shellcheck disable=SC2046
  res=$(rrdtool graph "$out/$name.png" $(window "$ref") --width 720 --height 240 \
    --imgformat PNG --lower-limit 0 "$@" | tail -n +2 | head -1)
  echo "$name: max=$res ($out/$name.png)"
  drawn=$((drawn + 1))
}

retrans=$(find "$rrd" -path '*/stap-tcp/protocol_counter-retransmits.rrd' | head -1)
if [ -n "$retrans" ]; then
  warn=$(awk '$1 == "WarningMax" {print $2; exit}' "$top/collectd.conf.d/stap-thresholds.conf")
  graph retransmits "$retrans" --title "TCP retransmits ($(basename "$(dirname "$(dirname "$retrans")")"))" \
    --vertical-label "segments/s" \
    DEF:r="$retrans":value:AVERAGE LINE2:r#1f77b4:"retransmitted segments/s" \
    HRULE:"$warn"#d62728:"threshold WarningMax $warn/s" \
    VDEF:m=r,MAXIMUM PRINT:m:"%.2lf"
else
  echo "retransmits: no stap-tcp/protocol_counter-retransmits.rrd under $rrd"
fi

mapfile -t devs < <(find "$rrd" -path '*/stap-netdev-*/if_octets.rrd' | sort)
if [ ${#devs[@]} -gt 0 ]; then
  args=()
  colors=(1f77b4 ff7f0e 2ca02c d62728 9467bd 8c564b 17becf 7f7f7f)
  i=0
  for f in "${devs[@]}"; do
    dev=$(basename "$(dirname "$f")")
    dev=${dev#stap-netdev-}
    c=${colors[$((i % ${#colors[@]}))]}
    args+=(DEF:rx$i="$f":rx:AVERAGE DEF:tx$i="$f":tx:AVERAGE
      LINE2:rx$i#$c:"$dev rx" LINE1:tx$i#$c:"$dev tx:dashes")
    [ $i = 0 ] && sum="rx0,tx0,MAX" || sum="$sum,rx$i,MAX,tx$i,MAX"
    i=$((i + 1))
  done
  graph throughput "${devs[0]}" --title "Throughput per device (stap-netdev)" \
    --vertical-label "bytes/s" "${args[@]}" CDEF:all=$sum VDEF:m=all,MAXIMUM PRINT:m:"%.2lf"
else
  echo "throughput: no stap-netdev-*/if_octets.rrd under $rrd"
fi
lat=$(find "$rrd" -path '*/stap-connect/stap_latency-handshake.rrd' | head -1)
if [ -n "$lat" ]; then
  graph connect-latency "$lat" --title "TCP handshake latency (stap-connect)" \
    --vertical-label "ms" \
    DEF:p50u="$lat":p50:AVERAGE DEF:p99u="$lat":p99:AVERAGE DEF:maxu="$lat":max:AVERAGE \
    CDEF:p50=p50u,1000,/ CDEF:p99=p99u,1000,/ CDEF:mx=maxu,1000,/ \
    LINE2:p50#2ca02c:"p50" LINE2:p99#ff7f0e:"p99" LINE1:mx#d62728:"max" \
    VDEF:m=mx,MAXIMUM PRINT:m:"%.2lf"
else
  echo "connect-latency: no stap-connect/stap_latency-handshake.rrd under $rrd"
fi

mapfile -t reasons < <(find "$rrd" -path '*/stap-drops/packets-*.rrd' ! -name 'packets-total.rrd' | sort)
if [ ${#reasons[@]} -gt 0 ]; then
  args=()
  colors=(1f77b4 ff7f0e 2ca02c d62728 9467bd 8c564b 17becf 7f7f7f e377c2 bcbd22)
  i=0
  for f in "${reasons[@]}"; do
    r=$(basename "$f" .rrd)
    r=${r#packets-}
    c=${colors[$((i % ${#colors[@]}))]}
    args+=(DEF:d$i="$f":value:AVERAGE CDEF:z$i=d$i,UN,0,d$i,IF "AREA:z$i#$c:$r:STACK")
    [ $i = 0 ] && sum="z0" || sum="$sum,z$i,+"
    i=$((i + 1))
  done
  graph drops "${reasons[0]}" --title "Dropped packets by reason (stap-drops)" \
    --vertical-label "packets/s" "${args[@]}" CDEF:all=$sum VDEF:m=all,MAXIMUM PRINT:m:"%.2lf"
else
  echo "drops: no stap-drops/packets-*.rrd under $rrd"
fi

[ $drawn -gt 0 ] || { echo "graphs: nothing to draw under $rrd" >&2; exit 1; }
