#!/bin/bash
# Runs in the VM (scripts/vm/run-guest.sh): every group scenario in
# tests/kernel/groups/ (or the groups named as arguments), one after another,
# each with its own results directory /results/GROUP. A scenario that fails
# does not stop the others; the exit status is non-zero if any failed.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
results=${GUEST_RESULTS:?run me through scripts/vm/run-guest.sh}
groups=("$@")
if [ ${#groups[@]} = 0 ]; then
  for f in "$top"/tests/kernel/groups/*.sh; do
    g=${f##*/}
    groups+=("${g%.sh}")
  done
fi
failed=()

# kernel_report MARK FILE: the kernel's messages since MARK (all of them if the ring buffer lost
# it) go to FILE. The console shows only errors (the VM boots `quiet`): a WARN splat, and what
# led to a crash, would otherwise be seen by nobody. A splat (WARNING, BUG, Oops, a corruption
# report) during a scenario fails it, with its first lines; a soft lockup or an RCU stall is
# printed but does not fail it (TCG on a busy host can starve a vCPU that long without anything
# being wrong).
kernel_report() {
  dmesg 2>/dev/null | awk -v m="$1" 'index($0, m) { n = NR } { l[NR] = $0 } END { for (i = n ? n : 1; i <= NR; i++) print l[i] }' >"$2"
  local splat='WARNING: CPU:|kernel BUG at|BUG: (unable|kernel NULL|KASAN|KFENCE|scheduling|sleeping|Bad page|workqueue)|Oops|general protection fault|UBSAN:|list_(add|del) corruption|refcount_t:|stack-protector|double fault'
  local slow='soft lockup|rcu_(sched|preempt) (self-)?detected stall|blocked for more than'
  if grep -Eq "$slow" "$2"; then
    echo "note: kernel: a vCPU was starved (soft lockup or RCU stall; see $2):"
    grep -E -m3 "$slow" "$2"
  fi
  if grep -Eq "$splat" "$2"; then
    echo "FAIL: kernel: the kernel reported a fault during the scenario (all of it in $2):"
    grep -E -m1 -A25 "$splat" "$2"
    return 1
  fi
  echo "PASS: kernel: no WARNING, BUG or Oops in the kernel log during the scenario ($(wc -l <"$2") lines in $2)"
}
# What this guest runs (its root may be another Debian release's tree: make check-kernel RELEASE=...).
# shellcheck disable=SC1091
echo "=== guest: $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}"), kernel $(uname -r)," \
  "$(dpkg-query -W -f '${Package} ${Version}, ' collectd-core systemtap-runtime 2>/dev/null)" \
  "plugin ${KT_PLUGIN_DIR:-$top/build}/stap.so"
for g in "${groups[@]}"; do
  script=$top/tests/kernel/groups/$g.sh
  # The stress scenario has its own boot (4 vCPUs, `make check-stress`), so it is not in groups/.
  [ -f "$script" ] || [ ! -f "$top/tests/kernel/stress/$g.sh" ] || script=$top/tests/kernel/stress/$g.sh
  mkdir -p "$results/$g"
  echo "=== group $g"
  if [ ! -f "$script" ]; then
    echo "FAIL: no scenario $script"
    failed+=("$g")
    continue
  fi
  t0=$(date +%s)
  mark="collectd-stap test: scenario $g starts at $t0"
  echo "$mark" >/dev/kmsg 2>/dev/null
  GUEST_RESULTS=$results/$g bash "$script" 2>&1 | tee "$results/$g/scenario.log"
  rc=${PIPESTATUS[0]}
  kernel_report "$mark" "$results/$g/dmesg.txt" || rc=1
  echo "=== group $g: $([ "$rc" = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - t0)) s"
  [ "$rc" = 0 ] || failed+=("$g")
done
echo "kernel scenarios: $((${#groups[@]} - ${#failed[@]})) passed, ${#failed[@]} failed${failed:+ (${failed[*]})}"
[ ${#failed[@]} = 0 ]
