#!/bin/bash
# make run: build, then run collectd in the foreground with the plugin and the
# shipped snippets, printing every value (csv plugin to stdout) and every
# notification, until Ctrl-C or for DURATION seconds.
# Where the running kernel cannot load modules, the same runs inside a VM that
# boots Debian's kernel, with a light traffic generator (netem loss on lo comes
# and goes, so retransmits move).
#   scripts/run.sh [--in-guest] [DURATION]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
duration=${DURATION:-0}
in_guest=0
if [ "${1:-}" = --in-guest ]; then
  in_guest=1
  duration=${2:-0}
fi
case $duration in '' | *[!0-9]*)
  echo "run: DURATION must be whole seconds (0 = until Ctrl-C)" >&2
  exit 2
  ;;
esac

can_load_modules() {
  [ -e /proc/modules ] && [ -d "/lib/modules/$(uname -r)/build" ]
}

write_conf() { # dir moduledir
  local dir=$1 mdir=$2
  mkdir -p "$dir"
  for f in stap.conf stap-thresholds.conf; do
    sed "s|/usr/share/collectd/stap.types.db|$top/collectd.conf.d/stap.types.db|" \
      "$top/collectd.conf.d/$f" >"$dir/$f"
  done
  cat >"$dir/collectd.conf" <<CONF
# No DNS lookup of the host name: the VM has no resolver.
FQDNLookup false
Interval ${RUN_INTERVAL:-2}
BaseDir "$dir"
PIDFile "$dir/collectd.pid"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File stdout
  Timestamp true
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir stdout
  StoreRates true
</Plugin>
PluginDir "$top/build"
Include "$dir/stap.conf"
PluginDir "/usr/lib/collectd"
Include "$dir/stap-thresholds.conf"
<Plugin stap>
  ModuleDir "$mdir"
</Plugin>
CONF
}

run_collectd() { # dir
  echo "run: collectd -f -C $1/collectd.conf${duration:+ (for ${duration}s; 0 = until Ctrl-C)}"
  echo "run: values are printed as PUTVAL lines (rates per second), notifications as log lines"
  if [ "$duration" -gt 0 ]; then
    timeout --preserve-status -s INT "$duration" collectd -f -C "$1/collectd.conf"
  else
    collectd -f -C "$1/collectd.conf"
  fi
}

if [ $in_guest = 1 ]; then
  . "$top/tests/kernel/lib.sh"
  dir=/tmp/collectd-stap-run
  write_conf "$dir" "$top/build/modules/$(uname -r)"
  # Light traffic: 10 s of 10% loss on lo in every 30 s, connections all along.
  (
    while :; do
      "$top/tests/kernel/tcp_load.py" 5001 10 2 20000 0.1 >/dev/null 2>&1
      netem_loss_start 10 >/dev/null 2>&1
      "$top/tests/kernel/tcp_load.py" 5001 10 2 20000 0.1 >/dev/null 2>&1
      netem_stop >/dev/null 2>&1
      "$top/tests/kernel/tcp_load.py" 5001 10 2 20000 0.1 >/dev/null 2>&1
    done
  ) &
  gen=$!
  rc=0
  run_collectd "$dir" || rc=$?
  kill $gen 2>/dev/null || true
  netem_stop >/dev/null 2>&1 || true
  exit $rc
fi

if can_load_modules; then
  kver=$(uname -r)
  make -C "$top" --no-print-directory plugin
  make -C "$top" --no-print-directory modules KVER="$kver"
  dir=$top/build/run
  write_conf "$dir" "$top/build/modules/$kver"
  run_collectd "$dir"
else
  kver=$(make -C "$top" -s --no-print-directory kernel-kver)
  echo "run: this kernel ($(uname -r)) cannot load modules (no /proc/modules or no build tree);"
  echo "run: running the same collectd, plugin and modules inside a VM booting Debian's kernel $kver,"
  echo "run: with a light traffic generator (10% loss on lo for 10 s of every 30 s)."
  make -C "$top" --no-print-directory plugin
  make -C "$top" --no-print-directory modules KVER="$kver"
  timeout=$((duration > 0 ? duration + 300 : 31536000))
  exec "$top/scripts/vm/run-guest.sh" --kver "$kver" --results "$top/build/run-vm" \
    --timeout $timeout "$top/scripts/run.sh" --in-guest "$duration"
fi
