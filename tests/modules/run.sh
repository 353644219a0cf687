#!/bin/bash
# make modules / modules-lint / modules-force with a list of kernels in KVER (a fleet), and
# scripts/sign-modules.sh for each kernel with that kernel's own sign-file (the host's, or the
# one in the other release's tree).
#   bash tests/modules/run.sh [OUT]     (default OUT: build/modules-test)
# Part 1 needs no stap: fake build and sign scripts record how mk/modules.mk calls them.
# Part 2 signs copies (never the built files) of the modules already built under
# build/modules/ABI/ with a throwaway key, for every ABI whose sign-file can be found, and checks
# the signature with modinfo and openssl; it needs root for a kernel of another release (the
# tree is entered with chroot) and is skipped where nothing is built.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$top/build/modules-test}")
rm -rf "$out"
mkdir -p "$out"
. "$top/tests/assert.sh"

# ---- Part 1: the KVER list in mk/modules.mk -------------------------------------------------
cat >"$out/fake-build.sh" <<'FAKE'
#!/bin/bash
echo "build $*" >>"$FAKE_LOG"
case " $* " in *" --kver bad-"*) echo "fake-build: cannot build $*" >&2; exit 1 ;; esac
FAKE
cat >"$out/fake-sign.sh" <<'FAKE'
#!/bin/bash
echo "sign $*" >>"$FAKE_LOG"
FAKE
log=$out/calls.log
mk() {
  : >"$log"
  FAKE_LOG=$log make -s --no-print-directory -C "$top" -f mk/modules.mk \
    BUILD_MODULES_SH="$out/fake-build.sh" SIGN_MODULES_SH="$out/fake-sign.sh" "$@" \
    >"$out/make.out" 2>"$out/make.err"
}
calls() { cat "$log"; }
k1=6.1.0-57-amd64 k2=6.12.118+deb13-amd64

mk modules KVER="$k1 $k2" MODULES="tcp udp" SIGN_KEY=K SIGN_CERT=C
rc=$?
check "a list: make succeeds" test "$rc" = 0
check "a list: each kernel built in turn, then signed" test "$(calls)" = "build --kver $k1 tcp udp
sign $k1 K C
build --kver $k2 tcp udp
sign $k2 K C"
check "a list: says which kernel it is at" test "$(grep -c '^==> modules for KVER=' "$out/make.out")" = 2

mk modules KVER="bad-1 $k2" SIGN_KEY=K SIGN_CERT=C
rc=$?
check "a failed kernel: make fails" test "$rc" != 0
check "a failed kernel: the others are still built and signed, it is not signed" test "$(calls)" = "build --kver bad-1
build --kver $k2
sign $k2 K C"
check "a failed kernel: the make names it" grep -q "failed for KVER word(s): bad-1 " "$out/make.err"

mk modules KVER="$k1"
check "one kernel: as before (no list header, no signing)" \
  test "$(calls)" = "build --kver $k1" -a ! -s "$out/make.out"
mk modules KVER=bad-2
check "one kernel failing: make fails naming it" grep -q "failed for KVER: bad-2 " "$out/make.err"

mk modules
check "no KVER: the script's default (no --kver)" test "$(calls)" = "build "

mk modules-lint KVER="$k1 $k2" MODULES=tcp SIGN_KEY=K SIGN_CERT=C
check "modules-lint takes a list (and never signs)" test "$(calls)" = "build --lint --kver $k1 tcp
build --lint --kver $k2 tcp"

mk modules-force KVER="$k1 $k2" MODULES=tcp SIGN_KEY=K SIGN_CERT=C
check "modules-force takes a list, rebuilds every group and signs" test "$(calls)" = "build --force --kver $k1
sign $k1 K C
build --force --kver $k2
sign $k2 K C"

mk modules KVER="$k1 $k2" SIGN_KEY=K
rc=$?
check "SIGN_KEY without SIGN_CERT: refused before any build" test "$rc" != 0 -a ! -s "$log"

# ---- Part 2: signing for each built kernel, with its own sign-file --------------------------
shopt -s nullglob
dirs=("$top"/build/modules/*/collectd_stap_tcp.ko)
signed=0
if [ ${#dirs[@]} = 0 ] || ! command -v openssl >/dev/null; then
  echo "SKIP: signing (no module built under build/modules/, or no openssl; make modules first)"
else
  s=$out/sign
  mkdir -p "$s/keys"
  openssl req -new -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=collectd-stap fleet test/" \
    -keyout "$s/keys/key.pem" -outform DER -out "$s/keys/cert.der" >/dev/null 2>&1
  openssl x509 -inform DER -in "$s/keys/cert.der" -out "$s/keys/cert.pem"
  serial=$(openssl x509 -inform DER -in "$s/keys/cert.der" -noout -serial | sed 's/^serial=//')
  for ko in "${dirs[@]}"; do
    kdir=$(dirname "$ko")
    kver=$(basename "$kdir")
    mkdir -p "$s/mods/$kver"
    cp "$kdir"/collectd_stap_*.ko "$s/mods/$kver/"
    if ! MODULES_OUT=$s/mods bash "$top/scripts/sign-modules.sh" "$kver" "$s/keys/key.pem" "$s/keys/cert.der" \
      >"$s/$kver.log" 2>&1; then
      if grep -q 'sign-file not found' "$s/$kver.log"; then
        echo "SKIP: $kver: $(cat "$s/$kver.log")"
      else
        bad "$kver: sign-modules failed: $(cat "$s/$kver.log")"
      fi
      continue
    fi
    signed=$((signed + 1))
    if [ ! -x "/usr/src/linux-headers-$kver/scripts/sign-file" ]; then
      check "$kver: another release's kernel, signed with the sign-file in its tree" \
        grep -q "is Debian .*'s kernel: signing with .* in the .* tree" "$s/$kver.log"
    fi
    m=$s/mods/$kver/collectd_stap_tcp.ko
    check "$kver: the signature marker is appended" bash -c "tail -c 28 '$m' | grep -q '~Module signature appended~'"
    check "$kver: modinfo reads the signer" bash -c "modinfo -F signer '$m' | grep -qx 'collectd-stap fleet test'"
    check "$kver: modinfo's sig_key is the certificate's serial" \
      bash -c "modinfo -F sig_key '$m' | tr -d ':\n' | grep -qix '$serial'"
    # The PKCS#7 signature verifies against the module's contents with the certificate.
    check "$kver: the signature verifies (openssl cms)" python3 - "$m" "$s" <<'PY'
import struct, subprocess, sys
m, s = sys.argv[1], sys.argv[2]
b = open(m, 'rb').read()
magic = b'~Module signature appended~\n'
end = len(b) - len(magic) - 12
n = struct.unpack('>I', b[end + 8:end + 12])[0]
open(s + '/sig.der', 'wb').write(b[end - n:end])
open(s + '/content', 'wb').write(b[:end - n])
sys.exit(subprocess.run(['openssl', 'cms', '-verify', '-binary', '-inform', 'DER', '-in', s + '/sig.der',
                         '-content', s + '/content', '-certfile', s + '/keys/cert.pem',
                         '-CAfile', s + '/keys/cert.pem', '-out', '/dev/null'],
                        stderr=subprocess.DEVNULL).returncode)
PY
    MODULES_OUT=$s/mods bash "$top/scripts/sign-modules.sh" "$kver" "$s/keys/key.pem" "$s/keys/cert.der" \
      >"$s/$kver.again.log" 2>&1
    check "$kver: a second run leaves signed modules alone" grep -q 'is already signed' "$s/$kver.again.log"
  done
  check "at least one kernel's modules were signed" test "$signed" -gt 0
  # Signing in a tree bound our directories there, leaving empty ones behind: remove them.
  for t in "${XDG_CACHE_HOME:-$HOME/.cache}"/collectd-stap/trees/*/; do
    [ ! -d "${t%/}$out" ] || find "${t%/}$out" -depth -type d -empty -delete
  done
fi

# ---- Part 3: the runtime fixes of the print flush (4.8's header; every version's empty flush) --
# The functions of scripts/build-modules.sh that detect and apply it, on copies of the two files
# it touches: a 4.8-style runtime (a flush whose header does not fit is dropped) gets the call
# that closes the sub-buffer before the header is reserved; a 5.x-style one (it pads and
# retries: "straddle") is left alone. The real proof is the stress scenario on Debian 12's
# kernel (no "transport failures" from staprun).
rt=$out/runtime
mkdir -p "$rt/v48/transport" "$rt/v51/transport"
cat >"$rt/v48/print_flush.c" <<'C'
        /* try to reserve header + len */
        bytes_reserved = _stp_data_write_reserve(hlen+len,
                                                 &entry);
        /* require at least header to fit in its entirety */
        if (likely(entry && bytes_reserved > hlen)) {
C
cat >"$rt/v48/transport/relay_v2.c" <<'C'
static size_t __stp_relay_switch_subbuf(struct rchan_buf *buf, size_t length)
{
}
static unsigned char *_stp_data_entry_data(void *entry)
{
	return entry;
}
C
cp "$rt/v48/transport/relay_v2.c" "$rt/v51/transport/"
sed 's|/\* require|/* Cannot have header straddle sub buffers. */\n&|' "$rt/v48/print_flush.c" >"$rt/v51/print_flush.c"
fixfns=$(sed -n '/^needs_header_fix() {/,/^}/p; /^fix_header() {/,/^}/p;
                /^needs_flush_fix() {/,/^}/p; /^fix_flush() {/,/^}/p' "$top/scripts/build-modules.sh")
rtfix() { # FIX DIR: what the build script says (needs_FIX_fix) and does (fix_FIX) with a runtime at DIR
  (info() { echo "info: $*"; }; warn() { echo "warn: $*"; }
   eval "$fixfns"; STAP_RUNTIME_SRC=$2 # read by the functions eval made
   export STAP_RUNTIME_SRC
   if "needs_$1_fix"; then "fix_$1" "$2" && echo "fixed"; else echo "left alone"; fi)
}
rtfix header "$rt/v48" >"$rt/v48.log" 2>&1
check "4.8 print flush: the fix is applied" grep -qx fixed "$rt/v48.log"
check "4.8 print flush: room for the header is made before it is reserved" \
  test "$(grep -A1 '_stp_data_write_make_room(hlen + 1);' "$rt/v48/print_flush.c" | tail -n 1 | tr -d ' ')" = \
  "bytes_reserved=_stp_data_write_reserve(hlen+len,"
lines_of() { grep -n -e "$2" "$1" | cut -d: -f1 | head -n 1; }
rv=$rt/v48/transport/relay_v2.c
check "4.8 relay: the helper closes the sub-buffer as padding, and is defined before its use" \
  test "$(lines_of "$rv" '^static void _stp_data_write_make_room')" -lt "$(lines_of "$rv" '__stp_relay_switch_subbuf(buf, 0);')" \
  -a "$(lines_of "$rv" '__stp_relay_switch_subbuf(buf, 0);')" -lt "$(lines_of "$rv" '^static unsigned char \*_stp_data_entry_data')"
rtfix header "$rt/v51" >"$rt/v51.log" 2>&1
check "5.x print flush (pads and retries): left alone" grep -qx "left alone" "$rt/v51.log"
check "5.x print flush: unchanged" bash -c '! grep -q make_room "$1/print_flush.c" "$1/transport/relay_v2.c"' _ "$rt/v51"
if cp -a /usr/share/systemtap/runtime "$rt/host" 2>/dev/null; then
  rtfix header "$rt/host" >"$rt/host.log" 2>&1
  check "the host's runtime ($(stap -V 2>&1 | head -n 1 | grep -o 'version [0-9.]*' | head -n 1)): fixed or left alone, never unknown" \
    grep -qx -e fixed -e "left alone" "$rt/host.log"
  check "the host's runtime: no warning" bash -c '! grep -q "^warn" "$1"' _ "$rt/host.log"
fi

# The print flush fix: every probe handler ends with _stp_print_flush(), which takes the print
# lock (atomics on counters all CPUs share) before it finds the buffer empty. 4.8 and 5.1 have
# the same function: the copy returns for an empty buffer before the lock; a function of another
# shape is left alone with a warning (never patched blind).
mkdir -p "$rt/pf/linux" "$rt/pf-other/linux"
cat >"$rt/pf/linux/print.c" <<'C'
static inline void _stp_print_flush(void)
{
	struct _stp_log *log;
	unsigned long flags;

	if (!_stp_print_trylock_irqsave(&flags))
		return;

	log = per_cpu_ptr(_stp_log_pcpu, raw_smp_processor_id());
	__stp_print_flush(log);
	_stp_print_unlock_irqrestore(&flags);
}
C
printf 'static inline void _stp_print_flush(void)\n{\n\tstp_flush_all();\n}\n' >"$rt/pf-other/linux/print.c"
rtfix flush "$rt/pf" >"$rt/pf.log" 2>&1
check "print flush: the fix is applied" grep -qx fixed "$rt/pf.log"
pr=$rt/pf/linux/print.c
check "print flush: an empty buffer returns before the print lock" \
  test "$(lines_of "$pr" 'READ_ONCE(log->len) == 0')" -lt "$(lines_of "$pr" '_stp_print_trylock_irqsave(&flags)')"
check "print flush: the fast path returns, the locked path is unchanged" \
  bash -c 'grep -A1 "READ_ONCE(log->len) == 0" "$1" | tail -n 1 | grep -q "^[[:space:]]*return;" &&
           grep -q "__stp_print_flush(log);" "$1" && grep -q "_stp_print_unlock_irqrestore(&flags);" "$1"' _ "$pr"
rtfix flush "$rt/pf" >"$rt/pf.again.log" 2>&1
check "print flush: a fixed copy is not fixed twice" grep -qx "left alone" "$rt/pf.again.log"
check "print flush: one fast path in the copy" test "$(grep -c 'READ_ONCE(log->len) == 0' "$pr")" = 1
rtfix flush "$rt/pf-other" >"$rt/pf-other.log" 2>&1
check "print flush of another shape: left alone, with a warning naming the file" \
  bash -c 'grep -qx "left alone" "$1" && grep -q "^warn: .*pf-other/linux/print.c: unknown _stp_print_flush" "$1"' _ "$rt/pf-other.log"
if [ -d "$rt/host" ]; then
  rtfix flush "$rt/host" >"$rt/host-flush.log" 2>&1
  check "the host's runtime: the print flush fix applies (4.8 and 5.1 have the same function)" \
    grep -qx fixed "$rt/host-flush.log"
fi

# The error for a kernel whose sign-file is nowhere names the path and what to do.
mkdir -p "$out/nohdr/0.0.0-nohdr"
MODULES_OUT=$out/nohdr bash "$top/scripts/sign-modules.sh" 0.0.0-nohdr /dev/null /dev/null >"$out/nohdr.log" 2>&1
check "no sign-file: fails naming the path and the command" \
  grep -q '/usr/src/linux-headers-0.0.0-nohdr/scripts/sign-file not found.*make modules KVER=0.0.0-nohdr' "$out/nohdr.log"
summary
