#!/bin/bash
# Kernel scenario "install": `make install` for real inside the VM (its root
# is a writable overlay of this machine's), then collectd runs from the
# installed files only -- its plugin directory, the installed types.db and
# the snippets in /etc/collectd/collectd.conf.d/, which enable every group
# with the modules in /lib/modules/KVER/systemtap/ -- and every group's
# module comes up; then `make uninstall` removes it all again.
. "$(dirname "$0")/../scenario.sh"
groups=$(sed -n 's/^ *<Group "\([a-z]*\)">.*/\1/p' "$top/collectd.conf.d/stap.conf" | tr '\n' ' ')
for g in $groups; do kt_require_module "$g"; done
make -s -C "$top" --no-print-directory install >"$out/install.log" 2>&1 ||
  bad "make install failed: $(tail -3 "$out/install.log")"
check "plugin installed in collectd's plugin directory" test -f /usr/lib/collectd/stap.so
check "snippets installed" test -f /etc/collectd/collectd.conf.d/stap.conf
check "types.db installed" test -f /usr/share/collectd/stap.types.db
check "man page installed" test -f /usr/share/man/man5/collectd-stap.5.gz
for g in $groups; do
  check "module $g installed in staprun's place" test -f "/lib/modules/$kver/systemtap/collectd_stap_$g.ko"
done

mkdir -p /etc/collectd /var/lib/collectd
cat >/etc/collectd/collectd.conf <<CONF
Hostname "$host"
FQDNLookup false
Interval 2
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "$out/collectd.log"
  Timestamp true
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "$csv_root"
  StoreRates false
</Plugin>
<Include "/etc/collectd/collectd.conf.d">
  Filter "*.conf"
</Include>
CONF
cp /etc/collectd/collectd.conf "$out/collectd.conf"
rm -rf "$out/csv" "$csv_root"
: >"$out/collectd.log"
collectd -f -C /etc/collectd/collectd.conf >"$out/collectd.stdout" 2>&1 &
kt_cpid=$!
all_up() {
  local g
  for g in $groups; do
    grep -q "group $g: module /lib/modules/$kver/systemtap/collectd_stap_$g.ko is up" "$out/collectd.log" || return 1
  done
}
if wait_for 240 all_up; then
  ok "every group's installed module is up: $groups"
else
  bad "not every group came up within 240 s"
  grep -E 'stap plugin: .*(ERROR|error|exited|not)' "$out/collectd.log" | head -20
fi
"$top/tests/kernel/tcp_load.py" 5301 5 2 20000 0.05 >/dev/null
running() { kt_csv "$csv/stap-$1/stap_running" | grep -qE '^1(\.0+)?$'; }
all_running() { local g; for g in $groups; do running "$g" || return 1; done; }
wait_for 60 all_running
for g in $groups; do
  check "group $g dispatched values (stap_running = 1)" running "$g"
done
no_refusals() { ! grep -q 'not dispatched' "$out/collectd.log"; }
check "no value refused (types from the installed types.db)" no_refusals
kt_collectd_stop

make -s -C "$top" --no-print-directory uninstall >"$out/uninstall.log" 2>&1
check "uninstall removed the plugin" test ! -e /usr/lib/collectd/stap.so
check "uninstall removed the modules" test -z "$(ls /lib/modules/$kver/systemtap/collectd_stap_* 2>/dev/null)"
kt_done
