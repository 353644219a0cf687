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
  GUEST_RESULTS=$results/$g bash "$script" 2>&1 | tee "$results/$g/scenario.log"
  rc=${PIPESTATUS[0]}
  echo "=== group $g: $([ "$rc" = 0 ] && echo passed || echo FAILED) in $(($(date +%s) - t0)) s"
  [ "$rc" = 0 ] || failed+=("$g")
done
echo "kernel scenarios: $((${#groups[@]} - ${#failed[@]})) passed, ${#failed[@]} failed${failed:+ (${failed[*]})}"
[ ${#failed[@]} = 0 ]
