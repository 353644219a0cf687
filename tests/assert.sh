# tests/assert.sh -- counted assertions for the shell test tiers (sourced).
#   ok DESC / bad DESC      count and print a PASS or FAIL line
#   check DESC CMD [ARG...] run CMD: PASS if it succeeds, else FAIL
#   summary                 the "N passed, N failed" line; status 0 if none failed
pass=0
fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() {
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
summary() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
}
