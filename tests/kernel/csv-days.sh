#!/bin/bash
# tests/kernel/csv-days.sh -- on the host (make check-unit): the scenarios' csv helpers read a
# series across midnight. collectd's csv plugin writes series NAME to NAME-YYYY-MM-DD and
# starts a new file each day, so a scenario running at 23:59 sees two files per series.
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
GUEST_RESULTS=$tmp/out
. "$(dirname "$0")/scenario.sh"
d=$tmp/csv
mkdir -p "$d"
printf 'epoch,value\n100.001,1\n110.002,2\n' >"$d/x-2026-11-30"
printf 'epoch,value\n120.003,3\n' >"$d/x-2026-12-01"
printf 'epoch,value\n100.001,7\n' >"$d/x-port-5001-2026-11-30"
printf 'epoch,value\n120.003,9\n' >"$d/x-port-5001-2026-12-01"
printf 'epoch,value\n120.003,4\n' >"$d/x-port-5002-2026-12-01"
joined() { "$@" | tr '\n' ' '; }
check "kt_csv: both days' values, oldest first, no header" [ "$(joined kt_csv "$d/x")" = "1 2 3 " ]
check "kt_last: the newest day's last value" [ "$(kt_last "$d/x")" = 3 ]
check "kt_rows: stamped rows of both days" [ "$(joined kt_rows "$d/x")" = "100.001,1 110.002,2 120.003,3 " ]
check "kt_names: each series once, without its dates" \
  [ "$(joined kt_names "$d" x-port-)" = "x-port-5001 x-port-5002 " ]
check "kt_csv: a longer name with the same start is another series" [ -z "$(kt_csv "$d/x-port")" ]
check "kt_csv: a series without a file reads as nothing" [ -z "$(kt_csv "$d/none")" ]
summary
