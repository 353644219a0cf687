#!/bin/bash
# make install / uninstall into a DESTDIR: the tree, the operator's edited
# snippet kept (new one as .dist), the types.db path rewritten for PREFIX,
# the man page rendering with man -l, and module signing (SIGN_KEY/SIGN_CERT)
# leaving a signature in the .ko.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
out=$(realpath -m "${1:-$top/build/install-test}")
rm -rf "$out"
mkdir -p "$out"
dest=$out/root
. "$top/tests/assert.sh"
m() { make -s -C "$top" --no-print-directory "$@"; }

# A fake built module for one kernel, so the test needs no stap build.
kdir=$top/build/modules/0.0.0-installtest
mkdir -p "$kdir"
printf 'not a real module\n' >"$kdir/collectd_stap_tcp.ko"
printf 'interval_ms\nmax_ports\n' >"$kdir/collectd_stap_tcp.params"

m install DESTDIR="$dest" >"$out/install.log" 2>&1 || { bad "make install failed"; cat "$out/install.log"; }
conf=$dest/etc/collectd/collectd.conf.d
check "plugin installed" test -f "$dest/usr/lib/collectd/stap.so"
check "types.db installed" test -f "$dest/usr/share/collectd/stap.types.db"
check "stap.conf installed" test -f "$conf/stap.conf"
check "stap-thresholds.conf installed" test -f "$conf/stap-thresholds.conf"
check "module installed in staprun's place" test -f "$dest/lib/modules/0.0.0-installtest/systemtap/collectd_stap_tcp.ko"
check "its parameter list beside it" test -f "$dest/lib/modules/0.0.0-installtest/systemtap/collectd_stap_tcp.params"
check "man page installed" test -f "$dest/usr/share/man/man5/collectd-stap.5.gz"
check "the man page renders with man -l" bash -c "man -l '$dest/usr/share/man/man5/collectd-stap.5.gz' 2>/dev/null | grep -q 'StopTimeout'"
check "stap.conf names the installed types.db" grep -q '"/usr/share/collectd/stap.types.db"' "$conf/stap.conf"

# The operator edits stap.conf; a reinstall keeps it.
echo "# edited by the operator" >>"$conf/stap.conf"
m install DESTDIR="$dest" >"$out/reinstall.log" 2>&1
check "an edited snippet is kept on reinstall" grep -q 'edited by the operator' "$conf/stap.conf"
check "the shipped one is installed beside it as .dist" test -f "$conf/stap.conf.dist"
check "the reinstall says so" grep -q "kept your edited" "$out/reinstall.log"

# Another PREFIX rewrites the types.db path.
m install DESTDIR="$out/local" PREFIX=/usr/local >/dev/null 2>&1
check "PREFIX=/usr/local: snippet names /usr/local/share/collectd/stap.types.db" \
  grep -q '"/usr/local/share/collectd/stap.types.db"' "$out/local/usr/local/etc/collectd/collectd.conf.d/stap.conf"
check "PREFIX=/usr/local: plugin in /usr/local/lib/collectd" test -f "$out/local/usr/local/lib/collectd/stap.so"

m uninstall DESTDIR="$dest" >"$out/uninstall.log" 2>&1
check "uninstall removes the plugin" test ! -e "$dest/usr/lib/collectd/stap.so"
check "uninstall removes the module" test ! -e "$dest/lib/modules/0.0.0-installtest/systemtap/collectd_stap_tcp.ko"
check "uninstall removes its parameter list" test ! -e "$dest/lib/modules/0.0.0-installtest/systemtap/collectd_stap_tcp.params"
check "uninstall removes the unedited snippet" test ! -e "$conf/stap-thresholds.conf"
check "uninstall keeps the edited snippet" test -e "$conf/stap.conf"
rm -rf "$kdir"

# Signing: a throwaway key, a real module if one was built, else skip.
ko=$(ls "$top"/build/modules/*/collectd_stap_tcp.ko 2>/dev/null | grep -v installtest | head -1)
if [ -n "$ko" ] && kver=$(basename "$(dirname "$ko")") && [ -x "/usr/src/linux-headers-$kver/scripts/sign-file" ]; then
  mkdir -p "$out/sign/$kver"
  cp "$ko" "$out/sign/$kver/"
  openssl req -new -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=collectd-stap test/" \
    -keyout "$out/sign/key.pem" -outform DER -out "$out/sign/cert.der" >/dev/null 2>&1
  MODULES_OUT=$out/sign bash "$top/scripts/sign-modules.sh" "$kver" "$out/sign/key.pem" "$out/sign/cert.der" >"$out/sign.log" 2>&1
  check "signed module carries the kernel's signature marker" \
    bash -c "tail -c 28 '$out/sign/$kver/collectd_stap_tcp.ko' | grep -q '~Module signature appended~'"
  check "the signature names the signer" grep -qa "collectd-stap test" "$out/sign/$kver/collectd_stap_tcp.ko"
else
  echo "SKIP: module signing (no built module with headers; make modules first)"
fi
summary
