# tests/assert.sh -- counted assertions for the shell test tiers (sourced).
#   ok DESC / bad DESC      count and print a PASS or FAIL line
#   check DESC CMD [ARG...] run CMD: PASS if it succeeds, else FAIL
#   summary                 the "N passed, N failed" line; status 0 if none failed
#   trusted DIR             DIR and every directory above it would pass the plugin's trust check
#   pid_gone PID            PID no longer runs (no such process, or a zombie not reaped yet)
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

# trusted DIR: DIR and every directory above it are owned by root (or us) and
# not writable by group or others, as the plugin demands of what it loads.
trusted() {
  local d uid mode
  d=$(realpath -m "$1")
  while :; do
    read -r uid mode < <(stat -c '%u %a' "$d" 2>/dev/null) || return 1
    { [ "$uid" = 0 ] || [ "$uid" = "$(id -u)" ]; } || return 1
    (((8#$mode & 8#022) == 0)) || return 1
    [ "$d" = / ] && return 0
    d=$(dirname "$d")
  done
}

# pid_gone PID: PID no longer runs. kill -0 succeeds on a zombie, and a
# process that was not our child (a stray whose parent died) stays one until
# init, or whichever process adopted it, gets round to reaping it.
pid_gone() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  case ${stat%% *} in Z | X) return 0 ;; *) return 1 ;; esac
}
