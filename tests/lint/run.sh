#!/usr/bin/env bash
# The module lint must fail on each deliberately bad example (tests/lint/bad-*.stp, each with
# the rule it breaks on an `// expect:` line), name that rule, and pass the good one. Usage:
# tests/lint/run.sh KVER (the kernel headers of KVER must be installed: `make modules` does it).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/../.." && pwd)
. "$TOP/tests/assert.sh"
kver=${1:?usage: run.sh KVER}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Each example gets the generated tapset a module gets (no optional probes).
printf 'function cs_probes_info:string () { return "" }\n' >"$work/resolved.stp"
for stp in "$TOP"/tests/lint/*.stp; do
    name=$(basename "$stp" .stp)
    expect=$(sed -n 's|^// expect: *||p' "$stp" | head -n 1)
    if ! stap -p3 -r "$kver" -I "$TOP/modules/tapset" -I "$work" --suppress-handler-errors \
            -DSTP_NO_OVERLOAD "$stp" >"$work/$name.c" 2>"$work/$name.err"; then
        sed 's/^/    /' "$work/$name.err" >&2
        bad "$name: stap -p3 failed"
        continue
    fi
    rc=0
    python3 "$TOP/scripts/module-lint.py" --name "$name" "$work/$name.c" >"$work/$name.out" 2>&1 || rc=$?
    sed 's/^/    /' "$work/$name.out"
    if [ "$expect" = ok ]; then
        check "$name: the lint passes it" [ "$rc" = 0 ]
    else
        check "$name: the lint rejects it (exit 1)" [ "$rc" = 1 ]
        check "$name: the lint names rule '$expect'" grep -q "^$name: $expect: " "$work/$name.out"
        others=$(grep -E "^$name: (lock|exclusive|overflow|teardown): " "$work/$name.out" | grep -vc "^$name: $expect: " || true)
        check "$name: no other rule fires ($others)" [ "$others" = 0 ]
    fi
done
summary
