#!/usr/bin/env bash
# Build the collectd-stap SystemTap modules (modules/*.stp) for one kernel.
#
# Usage: scripts/build-modules.sh [--lint] [--force] [--kver KVER] [GROUP...]
#        (or KVER=... in the environment; `make modules KVER=...` passes it)
#
#   --lint    only translate each module (`stap -p3`) and run the module lint
#             (scripts/module-lint.py) on the generated C; no compile.
#   --force   rebuild (and re-lint) even if the module's build key is unchanged (see below).
#   GROUP     build only modules/GROUP.stp (default: every modules/*.stp).
#   KVER      a kernel ABI (6.1.0-57-amd64, 6.12.118+deb13-amd64) or a Debian release name
#             (bookworm, trixie): that release's linux-image-amd64 ABI today, from the archive.
#
# Output: build/modules/KVER/collectd_stap_GROUP.ko and collectd_stap_GROUP.params (the
# module's public parameters, one a line: the plugin refuses any other Param)
#
# Why it looks like this:
#  - Modules are built for a target kernel, usually not the one running here, so KVER
#    defaults to the running kernel only if its build tree exists, else to the kernel
#    ABI Debian's linux-image-amd64 metapackage currently points at (never hard-coded).
#  - A kernel of another Debian release than the host's (found in that release's archive) is
#    built in a tree of that release (scripts/release-tree.sh: debootstrap, cached under
#    ~/.cache/collectd-stap/trees/RELEASE, refreshed when the archive's SystemTap, headers or
#    gcc change): this script runs again inside it, chrooted, with that release's SystemTap,
#    gcc and headers, the repository and the cache bound at the same paths (same lock, same
#    output directory). Everything below then applies unchanged inside the tree.
#  - Warm builds take seconds: each module's inputs (script, tapsets, stap version, its tapset
#    and runtime, flags, kernel headers, debuginfo and System.map identity, the lint and this
#    script) are hashed into a build key kept beside the .ko; an unchanged key skips stap and the
#    lint (which passed on the same inputs). stap's own cache cannot help: with -m it recompiles
#    pass 4 every time (20-23 s a module), and without -m the module would be named stap_HASH
#    (the name is inside the .ko, which staprun and the runtime use). Before a cold build the
#    script says how long it will take, from the times it measured here (build-times file).
#  - SystemTap 4.8's runtime needs two fixes, each applied only when detected: it does not
#    compile against kernels that backported the task_work_cancel() -> task_work_cancel_func()
#    rename (Debian 6.1.0-5x; detected from the target headers), and its print flush drops a
#    flush whose header would straddle two relay sub-buffers, leaving bytes that make stapio
#    lose its place (fixed in 5.x; detected from print_flush.c). The build then uses a patched
#    copy of the runtime kept at a stable cache path (a changing -R path would defeat stap's
#    cache).
#  - stap builds are CPU- and memory-heavy: one at a time, serialised with a lock.
#  - Every module is linted before it is compiled: `stap -p3` translates it to C and
#    scripts/module-lint.py rejects global accesses outside SystemTap's lock, exclusive locks on
#    per-event probes (modules/event-probes.txt) and arrays that can overflow fatally.
#  - Shared code (tick, batches, health, latency, stamps) is the tapset modules/tapset/; each
#    module also gets a generated tapset saying which of its optional probe points resolve on
#    KVER (lines `// optional: NAME POINT` in the script): the answer is compiled in, so no
#    handler has to ask pp() at run time (which is what made SystemTap 4.8 misplace its lock).
#    A module that uses the tapset's per-CPU counters says how many (`// counters: N`, 1..1024):
#    built with -DCS_COUNTERS=N, the size of the per-CPU block it allocates; one that has latency
#    distributions says how many ids (`// latency: N`, 1..1024): built with -DCS_LAT_IDS=N.
#  - Overload policy (modules/PROTOCOL.md, "Module safety"): --suppress-handler-errors (a handler
#    error or a skipped probe is counted, reported every batch, never fatal) and
#    -DSTP_NO_OVERLOAD (a busy host never makes the module stop itself), and
#    -DINTERRUPTIBLE=0 -DMAXACTION=10000: handlers run with interrupts off, so an interrupt
#    cannot land in a handler and have its own probe hit lost where nobody counts it (kprobe
#    "nmissed", added to the skipped count only at unload; an interruptible runtime does not
#    count a reentrant hit at all); same 10000-action budget per handler as before.
#  - Kernel debuginfo only where needed: a module whose .stp has a line `// needs: debuginfo`
#    (tapsets tcp.*, udp.*, socket.*, ipmib.*, netdev.transmit, kernel.function with $vars)
#    is built with SYSTEMTAP_DEBUGINFO_PATH pointing at a cached, shrunken vmlinux (see
#    ensure_debuginfo). A module that fails with "missing ... debuginfo" without declaring
#    it gets the debuginfo fetched and one retry, with a warning to add the line.
#    Other modules are built exactly as before (no debuginfo, same stap cache keys).
#  - A module whose .stp has `// needs: system.map` (kprobe.function, syscall.*) is built with
#    -r pointing at a tree of links to the headers plus the real System.map from the -dbg
#    package (the linux-image package ships a placeholder), never by writing to /boot.
#    SystemTap 5 reads it only from /usr/lib/debug/boot/ or /boot/ ("Kernel function symbol
#    table missing", then "no match" for every kprobe.function): in a release tree, ours, a
#    link to the real one goes to /usr/lib/debug/boot/, where the -dbg package would put it.
#  - SystemTap 5.1's tracepoint queries break on Linux 6.12.y's COUNT_ARGS under -Werror: where
#    the kernel's definition differs from SystemTap's, -B CFLAGS_MODULE=-Wno-error (prepare_kbuild).
#
# Environment:
#   KVER               target kernel release (e.g. 6.1.0-56-amd64)
#   STAP               stap binary (default: stap)
#   MODULES_OUT        output root (default: <repo>/build/modules)
#   STAP_EXTRA_FLAGS   extra flags for stap (e.g. "-DMAXMAPENTRIES=4096")
#   SYSTEMTAP_DIR      stap's cache/state dir (default ~/.systemtap); keep it stable
#   XDG_CACHE_HOME     the patched runtime lives under ${XDG_CACHE_HOME:-~/.cache}/collectd-stap,
#                      kernel debuginfo under .../collectd-stap/debuginfo/KVER/
#   COLLECTD_STAP_RELEASES  releases whose archives name a KVER (default: bookworm trixie)
#   KEEP_DEBUGINFO_DEB 1 = keep the downloaded linux-image-KVER-dbg .deb (858 MB for 6.1.0-56)
#                      in .../debuginfo/ (reused if the cache is wiped); default: delete it
#                      once extracted. First fetch ~50 s here (download 12 s, extract 8 s,
#                      objcopy 29 s), 146 MB kept; later builds reuse it at no cost.

set -euo pipefail

PROG=build-modules
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$TOP/scripts/build-modules.sh"
STAP=${STAP:-stap}
OUT_ROOT=${MODULES_OUT:-$TOP/build/modules}
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/collectd-stap"
STAP_RUNTIME_SRC=/usr/share/systemtap/runtime

mode=build
force=0
groups=()

die()  { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
info() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }

now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --lint) mode=lint ;;
        --force) force=1 ;;
        --kver) [ $# -ge 2 ] || die "--kver needs a value"; KVER=$2; shift ;;
        --kver=*) KVER=${1#--kver=} ;;
        KVER=*) KVER=${1#KVER=} ;;
        -h|--help) sed -n '2,/^# Why it looks like this/p' "$SELF" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option '$1' (try --help)" ;;
        *) groups+=("${1%.stp}") ;;
    esac
    shift
done

# ---------------------------------------------------------------------------
# Package installation

# Run a command as root (directly, or through non-interactive sudo).
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        return 126
    fi
}

apt_updated=0
apt_has_lists() {
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null
}
apt_update_once() {
    [ "$apt_updated" = 1 ] && return 0
    apt_updated=1
    command -v apt-get >/dev/null 2>&1 || return 1
    info "running apt-get update"
    as_root apt-get update -qq >/dev/null || return 1
}

# pkg_install PKG WHY: install a Debian package or fail naming it and the exact command.
pkg_install() {
    local pkg=$1 why=$2 cmd="apt-get install -y --no-install-recommends $1"
    command -v apt-get >/dev/null 2>&1 ||
        die "missing $pkg ($why), and apt-get is not available. Install package $pkg by other means."
    apt_has_lists || apt_update_once || true
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
        apt_update_once || true
    fi
    apt-cache show "$pkg" >/dev/null 2>&1 ||
        die "missing package $pkg ($why) and apt does not know it. Run: apt-get update && $cmd
  (if it still is unknown, that kernel's packages are gone from the archive: pick another KVER)"
    info "installing $pkg ($why): $cmd"
    local rc=0
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "$pkg" \
        >"${TMPDIR:-/tmp}/$PROG-apt.$$.log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        tail -n 20 "${TMPDIR:-/tmp}/$PROG-apt.$$.log" >&2 || true
        rm -f "${TMPDIR:-/tmp}/$PROG-apt.$$.log"
        if [ "$rc" = 126 ]; then
            die "missing package $pkg ($why) and not root (no passwordless sudo). Run: sudo $cmd"
        fi
        die "could not install package $pkg ($why). Run: $cmd"
    fi
    rm -f "${TMPDIR:-/tmp}/$PROG-apt.$$.log"
}

ensure_tools() {
    if ! command -v "$STAP" >/dev/null 2>&1; then
        pkg_install systemtap "the stap translator"
        command -v "$STAP" >/dev/null 2>&1 || die "stap still not found after installing systemtap"
    fi
    [ -d "$STAP_RUNTIME_SRC" ] || pkg_install systemtap-runtime "SystemTap runtime sources"
    command -v gcc >/dev/null 2>&1 || pkg_install gcc "C compiler for kernel modules"
    command -v make >/dev/null 2>&1 || pkg_install make "kbuild"
}

# ---------------------------------------------------------------------------
# Kernel release

RELEASE_TREE=$TOP/scripts/release-tree.sh
KVER_RELEASE=

resolve_kver() {
    case "${KVER:-}" in
        [a-z]*)
            # A release name: the ABI its linux-image-amd64 points at today.
            local rel=$KVER
            KVER=$(bash "$RELEASE_TREE" kver "$rel") || die "cannot resolve KVER=$rel (see above)"
            KVER_RELEASE=$rel
            info "KVER=$KVER (Debian $rel's linux-image-amd64 today)"
            return 0 ;;
    esac
    if [ -n "${KVER:-}" ]; then
        return 0
    fi
    local running
    running=$(uname -r)
    if [ -e "/lib/modules/$running/build" ]; then
        KVER=$running
        info "KVER=$KVER (the running kernel; its build tree exists)"
        return 0
    fi
    command -v apt-cache >/dev/null 2>&1 ||
        die "no build tree for the running kernel $running and no apt-cache to find Debian's kernel: pass KVER=..."
    apt_has_lists || apt_update_once || true
    local dep
    dep=$(apt-cache depends linux-image-amd64 2>/dev/null |
          awk '$1 ~ /^\|?Depends:$/ && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    if [ -z "$dep" ]; then
        apt_update_once || true
        dep=$(apt-cache depends linux-image-amd64 2>/dev/null |
              awk '$1 ~ /^\|?Depends:$/ && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    fi
    [ -n "$dep" ] ||
        die "cannot resolve Debian's current kernel from the linux-image-amd64 metapackage. Run: apt-get update, or pass KVER=..."
    KVER=${dep#linux-image-}
    info "KVER=$KVER (from linux-image-amd64 -> $dep; the running kernel $running has no build tree)"
}

# KVER of another Debian release than the host's: build in that release's tree (see the
# header comment). Returns only if KVER is the host's own (or we already are in a tree).
route_release() {
    [ -z "${COLLECTD_STAP_IN_TREE:-}" ] || return 0
    [ -e "/lib/modules/$KVER/build/Makefile" ] && return 0
    local rel host
    host=$(bash "$RELEASE_TREE" host-release)
    rel=$KVER_RELEASE
    [ -n "$rel" ] || rel=$(bash "$RELEASE_TREE" release-of "$KVER") || die "cannot tell which Debian release KVER=$KVER belongs to (see above); pass a KVER Debian's archive has headers for"
    [ "$rel" = "$host" ] && return 0
    info "KVER=$KVER is Debian $rel's kernel (this host is $host): building in the $rel tree"
    local tree
    tree=$(bash "$RELEASE_TREE" ensure "$rel" --kver "$KVER") || die "the $rel tree could not be made (see above)"
    info "$rel tree: $tree ($(dpkg-query --admindir="$tree/var/lib/dpkg" -W -f '${Package} ${Version}' systemtap 2>/dev/null))"
    local binds=(--bind "$TOP" --bind "$CACHE_ROOT") args=()
    mkdir -p "$OUT_ROOT"
    case "$OUT_ROOT/" in "$TOP"/*) ;; *) binds+=(--bind "$OUT_ROOT") ;; esac
    [ "$mode" = lint ] && args+=(--lint)
    [ "$force" = 1 ] && args+=(--force)
    local rc=0
    bash "$RELEASE_TREE" run "$rel" "${binds[@]}" -- \
        env COLLECTD_STAP_IN_TREE="$rel" XDG_CACHE_HOME="$(dirname "$CACHE_ROOT")" MODULES_OUT="$OUT_ROOT" \
            STAP_EXTRA_FLAGS="${STAP_EXTRA_FLAGS:-}" KEEP_DEBUGINFO_DEB="${KEEP_DEBUGINFO_DEB:-0}" \
            bash "$SELF" "${args[@]}" --kver "$KVER" "${groups[@]}" || rc=$?
    exit "$rc"
}

ensure_headers() {
    BUILD_TREE=/lib/modules/$KVER/build
    if [ ! -e "$BUILD_TREE/Makefile" ]; then
        pkg_install "linux-headers-$KVER" "kernel headers for $KVER"
    fi
    [ -e "$BUILD_TREE/Makefile" ] ||
        die "no kernel build tree at $BUILD_TREE even after installing linux-headers-$KVER. Run: apt-get install --reinstall linux-headers-$KVER"
    BUILD_TREE=$(readlink -f "$BUILD_TREE")
}

# ---------------------------------------------------------------------------
# SystemTap 4.8 runtime fixes (see header comment)

# Print the path of the target kernel's include/linux/task_work.h (Debian splits the
# headers into an arch tree and a -common tree that the arch Makefile points to).
find_task_work_h() {
    local d
    for d in "$BUILD_TREE" "$(readlink -f "$BUILD_TREE/source" 2>/dev/null || true)" \
             $(sed -n 's/^[[:space:]]*include[[:space:]]\{1,\}\(\/[^[:space:]]*\)\/Makefile.*/\1/p;
                       s/.*MAKEARGS[[:space:]]*:\{0,1\}=.*-C[[:space:]]*\([^[:space:]]*\).*/\1/p' \
                   "$BUILD_TREE/Makefile" 2>/dev/null); do
        [ -n "$d" ] && [ -f "$d/include/linux/task_work.h" ] && { printf '%s\n' "$d/include/linux/task_work.h"; return 0; }
    done
    d=$(find "$BUILD_TREE/" /usr/src -maxdepth 4 -path "*${KVER%-*}*/include/linux/task_work.h" 2>/dev/null | head -n 1)
    [ -n "$d" ] && { printf '%s\n' "$d"; return 0; }
    return 1
}

# needs_task_work_fix: the target kernel has task_work_cancel_func() and not the old
# task_work_cancel(), and the runtime still calls the old one (a 4.8 runtime on Debian 6.1.0-5x).
needs_task_work_fix() {
    local twh rt_file=$STAP_RUNTIME_SRC/stp_task_work.c
    twh=$(find_task_work_h) || { warn "cannot find include/linux/task_work.h for $KVER; no task_work fix"; return 1; }
    [ -f "$rt_file" ] || { warn "$rt_file not found; no task_work fix"; return 1; }

    local has_func=0 has_old=0 rt_uses_old=0
    grep -q 'task_work_cancel_func[[:space:]]*(' "$twh" && has_func=1
    # The old API: struct callback_head *task_work_cancel(struct task_struct *, task_work_func_t)
    tr '\n' ' ' <"$twh" | grep -Eq '\*[[:space:]]*task_work_cancel[[:space:]]*\([^)]*task_work_func_t' && has_old=1
    grep -q 'typeof(&task_work_cancel)' "$rt_file" &&
        ! grep -q 'task_work_cancel_func' "$rt_file" && rt_uses_old=1
    if [ "$has_func" = 1 ] && [ "$has_old" = 0 ] && [ "$rt_uses_old" = 1 ]; then
        info "runtime fix needed: $KVER renamed task_work_cancel() to task_work_cancel_func()"
        return 0
    fi
    info "task_work fix not needed ($twh: task_work_cancel_func=$has_func, old task_work_cancel=$has_old; runtime uses old API=$rt_uses_old)"
    return 1
}

# needs_header_fix: the runtime's print flush still drops a flush whose 8-byte header does not
# fit in what is left of the relay sub-buffer, and leaves the bytes it reserved there (SystemTap
# 4.8; 5.x pads and retries). stapio then reads those stale bytes as the next header, loses its
# place ("bufhdr read error, attempting resync") and discards what it has read. A batch has the
# same layout every interval (the reader starts a fresh sub-buffer at each read), so once a batch
# hits it every batch does: seen in the stress scenario as "N transport failures" and every
# netdev batch cut until the plugin restarted the module.
needs_header_fix() {
    local pf=$STAP_RUNTIME_SRC/print_flush.c rv=$STAP_RUNTIME_SRC/transport/relay_v2.c
    [ -f "$pf" ] && [ -f "$rv" ] || return 1
    grep -q 'straddle' "$pf" && return 1
    grep -q 'bytes_reserved > hlen' "$pf" && grep -q '^static size_t __stp_relay_switch_subbuf' "$rv" ||
        { warn "$pf: unknown print flush (neither 4.8's nor the fixed one); no header fix"; return 1; }
    info "runtime fix needed: SystemTap's print flush drops a flush whose header straddles relay sub-buffers"
    return 0
}

# needs_flush_fix: the runtime's _stp_print_flush() takes its print lock before it looks for
# anything to send (SystemTap 4.8 and 5.1 alike). The translator ends every probe handler with a
# flush, printing or not, so every hit of an event probe paid for that lock although our event
# handlers never print: two atomic read-modify-writes on a counter all CPUs share
# (_stp_print_ctr), two more on another (_stp_contexts_busy_ctr, in the reentrancy check) and an
# interrupt save and restore. On a host with many CPUs the shared counters' cache lines move
# between CPUs at every packet, which eBPF at the same probe points never pays.
needs_flush_fix() {
    local pr=$STAP_RUNTIME_SRC/linux/print.c
    [ -f "$pr" ] || { warn "$pr not found; no print flush fix"; return 1; }
    awk '/^static inline void _stp_print_flush\(void\)/ { f = 1 } f && /_stp_print_trylock_irqsave\(&flags\)/ { ok = 1; exit }
         f && /^}/ { exit } END { exit !ok }' "$pr" ||
        { warn "$pr: unknown _stp_print_flush(); no print flush fix"; return 1; }
    grep -q 'collectd-stap runtime fix: an empty buffer' "$pr" && return 1
    info "runtime fix needed: every probe's closing print flush takes the print lock even with nothing to print"
    return 0
}

# fix_flush DIR: _stp_print_flush() returns at once when this CPU's print buffer is empty, before
# the lock. The same outcome as before (__stp_print_flush() returns at once for an empty buffer,
# and a CPU without a buffer made the lock fail), without the lock. It reads what the locked
# path reads first too, unlocked (the per-CPU log and its buffer pointer; the callers run on
# one CPU with preemption off, which the locked path needs as well); output a handler printed
# is in its own CPU's buffer and so is seen, and anything an NMI adds later is flushed by that
# NMI's own probe.
fix_flush() {
    local pr=$1/linux/print.c
    # shellcheck disable=SC2016
    awk '
        /^static inline void _stp_print_flush\(void\)/ { f = 1 }
        f && /_stp_print_trylock_irqsave\(&flags\)/ && !done {
            print "\t/* collectd-stap runtime fix: an empty buffer has nothing to flush; return before"
            print "\t   the print lock (atomic operations on counters shared by all CPUs), which every"
            print "\t   probe handler would otherwise take at its end, printing or not. */"
            print "\tlog = per_cpu_ptr(_stp_log_pcpu, raw_smp_processor_id());"
            print "\tif (likely(log->buf == NULL || READ_ONCE(log->len) == 0))"
            print "\t\treturn;"
            print ""
            done = 1
        }
        { print }' "$pr" >"$pr.new" && mv "$pr.new" "$pr"
    grep -q 'collectd-stap runtime fix: an empty buffer' "$pr" &&
        grep -q 'if (likely(log->buf == NULL || READ_ONCE(log->len) == 0))' "$pr"
}

# fix_task_work DIR: the copy calls task_work_cancel_func().
fix_task_work() {
    sed -i \
        -e 's/typeof(&task_work_cancel)/typeof(\&task_work_cancel_func)/' \
        -e 's/kallsyms_lookup_name("task_work_cancel")/kallsyms_lookup_name("task_work_cancel_func")/' \
        "$1/stp_task_work.c"
    grep -q 'typeof(&task_work_cancel_func)' "$1/stp_task_work.c" &&
        grep -q 'kallsyms_lookup_name("task_work_cancel_func")' "$1/stp_task_work.c"
}

# fix_header DIR: before a flush reserves its header, a sub-buffer with no room for the header
# and one byte is closed as padding (relay's own way: the reader skips it), so the header always
# lands whole in a fresh sub-buffer.
fix_header() {
    local rv=$1/transport/relay_v2.c pf=$1/print_flush.c
    # shellcheck disable=SC2016
    awk '
        /^static unsigned char \*_stp_data_entry_data\(void \*entry\)/ && !done {
            print "/* collectd-stap runtime fix: close the current sub-buffer as padding when fewer"
            print "   than NEED bytes are left in it, so that a flush header never straddles two. */"
            print "static void _stp_data_write_make_room(size_t need)"
            print "{"
            print "\tstruct rchan_buf *buf;"
            print ""
            print "\tif (unlikely(_stp_relay_data.rchan == NULL))"
            print "\t\treturn;"
            print "\tbuf = _stp_get_rchan_subbuf(_stp_relay_data.rchan->buf, smp_processor_id());"
            print "\tif (unlikely(buf == NULL))"
            print "\t\treturn;"
            print "\tif (buf->offset < buf->chan->subbuf_size &&"
            print "\t    buf->chan->subbuf_size - buf->offset < need)"
            print "\t\t__stp_relay_switch_subbuf(buf, 0);"
            print "}"
            print ""
            done = 1
        }
        { print }' "$rv" >"$rv.new" && mv "$rv.new" "$rv"
    awk '
        /bytes_reserved = _stp_data_write_reserve\(hlen\+len,/ && !done {
            print "        /* collectd-stap runtime fix: the header and a byte fit in one sub-buffer. */"
            print "        _stp_data_write_make_room(hlen + 1);"
            done = 1
        }
        { print }' "$pf" >"$pf.new" && mv "$pf.new" "$pf"
    grep -q '^static void _stp_data_write_make_room' "$rv" && grep -q '_stp_data_write_make_room(hlen + 1);' "$pf"
}

# Sets RUNTIME_FLAGS (array) to the -R option when the runtime needs a fix for this kernel:
# a patched copy of the runtime, made once, at a stable cache path named after its fixes (a
# changing -R path would defeat stap's cache).
RUNTIME_FLAGS=()
RUNTIME_NOTE="stock runtime"
prepare_runtime() {
    local fixes=() f
    needs_task_work_fix && fixes+=(task_work)
    needs_header_fix && fixes+=(header)
    needs_flush_fix && fixes+=(flush)
    [ ${#fixes[@]} -gt 0 ] || return 0

    local stapver dir tag
    stapver=$("$STAP" -V 2>&1 | sed -n 's/.*version \([0-9][0-9.]*\).*/\1/p' | head -n 1)
    [ -n "$stapver" ] || stapver=unknown
    tag=$(IFS=+; echo "${fixes[*]}")
    dir="$CACHE_ROOT/stap-runtime-$stapver-fixed-$tag"
    if [ ! -f "$dir/.collectd-stap-fixed" ]; then
        info "creating a fixed runtime copy ($tag) at $dir"
        mkdir -p "$CACHE_ROOT"
        local tmp
        tmp=$(mktemp -d "$CACHE_ROOT/.runtime.XXXXXX")
        cp -a "$STAP_RUNTIME_SRC/." "$tmp/"
        chmod -R u+w "$tmp"
        for f in "${fixes[@]}"; do
            "fix_$f" "$tmp" || { rm -rf "$tmp"; die "runtime fix $f failed on a copy of $STAP_RUNTIME_SRC (did SystemTap change it?). Check fix_$f in $SELF"; }
        done
        printf 'source=%s\nkernel=%s\nfixes=%s\n' "$STAP_RUNTIME_SRC" "$KVER" "$tag" >"$tmp/.collectd-stap-fixed"
        # Another build may have made it meanwhile (this runs before the build lock).
        [ ! -e "$dir" ] || [ -f "$dir/.collectd-stap-fixed" ] || rm -rf "$dir"
        mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
        [ -f "$dir/.collectd-stap-fixed" ] || die "could not create $dir"
    fi
    RUNTIME_FLAGS=(-R "$dir")
    RUNTIME_NOTE="fixed runtime $dir"
    info "building with -R $dir"
}

# ---------------------------------------------------------------------------
# SystemTap 5.1 vs. the kernel's COUNT_ARGS (Linux 6.12.y: include/linux/args.h)
#
# stap compiles its tracepoint query modules (pass 2) and the tracepoint glue of a module
# (pass 4) with -Werror after including the kernel's headers, and then defines its own
# __COUNT_ARGS/COUNT_ARGS (12 arguments). Linux 6.12.y's args.h has a 16-argument one, so every
# tracepoint query fails with '"__COUNT_ARGS" redefined [-Werror]', stap caches the failure as
# an empty object, and every kernel.trace probe is "no match" (an optional one silently "no").
# Only then (the kernel's definition differs from the one inside the stap binary) the build
# gets -B CFLAGS_MODULE=-Wno-error: kbuild puts CFLAGS_MODULE after stap's -Werror, the
# redefinition stays a warning and stap's definition (the later one) is what its code uses.
KBUILD_FLAGS=()
prepare_kbuild() {
    local twh inc kdef sdef stap_bin
    twh=$(find_task_work_h) || return 0
    inc=${twh%/linux/task_work.h}
    kdef=$(cat "$inc/linux/args.h" "$inc/linux/kernel.h" 2>/dev/null |
           grep -m 1 -o '^#define __COUNT_ARGS([^)]*)' || true)
    stap_bin=$(command -v "$STAP")
    sdef=$(grep -a -m 1 -o '#define __COUNT_ARGS([^)]*)' "$stap_bin" 2>/dev/null || true)
    if [ -n "$kdef" ] && [ -n "$sdef" ] && [ "$kdef" != "$sdef" ]; then
        KBUILD_FLAGS=(-B CFLAGS_MODULE=-Wno-error)
        info "kbuild fix needed: the kernel's __COUNT_ARGS differs from SystemTap's (tracepoint queries would fail with -Werror); building with ${KBUILD_FLAGS[*]}"
    fi
    # Linux 6.12 split uprobe_unregister() into _nosync/_sync. SystemTap 5.1's runtime looks the
    # old name up in the kernel's symbols when any module starts (uprobes or not), so staprun
    # fails with "Can't resolve uprobe_unregister!" (seen in the Debian 13 VM). Our modules have
    # no uprobes: telling the runtime the symbol is exported skips that lookup.
    if grep -q 'uprobe_unregister_nosync' "$inc/linux/uprobes.h" 2>/dev/null &&
        ! grep -q 'void uprobe_unregister(' "$inc/linux/uprobes.h"; then
        KBUILD_FLAGS+=(-DSTAPCONF_UPROBE_UNREGISTER_EXPORTED)
        info "runtime fix needed: this kernel has no uprobe_unregister(); building with -DSTAPCONF_UPROBE_UNREGISTER_EXPORTED"
    fi
}

# ---------------------------------------------------------------------------
# Kernel debuginfo for modules that need it
#
# Layout (stable paths, so stap's cache keeps working across builds):
#   $CACHE_ROOT/debuginfo/KVER/usr/lib/debug/boot/vmlinux-KVER     shrunken: debug sections
#                                                                  (zlib) + symbols, no code
#   $CACHE_ROOT/debuginfo/KVER/usr/lib/debug/boot/System.map-KVER  the real one
#   $CACHE_ROOT/debuginfo/KVER/.collectd-stap-debuginfo            marker: complete
# stap finds vmlinux-KVER as <SYSTEMTAP_DEBUGINFO_PATH>/boot/vmlinux-KVER. Only the two files
# are extracted from the -dbg package (never installed: 5.6 GB unpacked); objcopy drops the
# relocation sections and compresses the DWARF (633 MB -> 154 MB for 6.1.0-56) with the same
# stap output.

# needs_debuginfo FILE.stp: the script declares `// needs: debuginfo` on a line of its own.
needs_debuginfo() {
    grep -Eq '^[[:space:]]*//[[:space:]]*needs:[[:space:]]*([a-z,[:space:]]*[,[:space:]])?debuginfo([[:space:],]|$)' "$1"
}

# needs_symbols FILE.stp: the script declares `// needs: system.map`: it uses
# kprobe.function or syscall probes, which stap resolves from the kernel's symbol table
# at build time. The System.map in Debian's linux-image package is a placeholder, so the
# real one comes from the -dbg package (ensure_debuginfo) and is given to stap in a tree of
# links to the headers (ensure_ktree), never written to /boot.
needs_symbols() {
    grep -Eq '^[[:space:]]*//[[:space:]]*needs:.*system\.map' "$1"
}

KTREE=
ensure_ktree() {
    [ -z "$KTREE" ] || return 0
    local hdr=/usr/src/linux-headers-$KVER
    local map=$DEBUGINFO_DIR/usr/lib/debug/boot/System.map-$KVER
    local tree=$CACHE_ROOT/ktree/$KVER
    [ -f "$map" ] || die "no System.map in $DEBUGINFO_DIR (remove that directory and rebuild)"
    if [ ! -e "$tree/Makefile" ] || [ ! -e "$tree/source" ] ||
        [ "$(readlink "$tree/System.map" 2>/dev/null)" != "$map" ]; then
        info "kernel tree with the real System.map: $tree (links to $hdr)"
        rm -rf "$tree"
        mkdir -p "$tree"
        find "$hdr" -mindepth 1 -maxdepth 1 -exec ln -s {} "$tree/" \;
        rm -f "$tree/System.map"
        ln -s "$map" "$tree/System.map"
        # stap takes the kernel's source tree (tracepoint definitions) from TREE/source.
        # Debian splits it into the -common headers package, which the arch Makefile includes.
        local src
        src=$(sed -n 's|^include \(/.*\)/Makefile$|\1|p' "$hdr/Makefile" | head -n 1)
        [ -n "$src" ] && [ -d "$src" ] || src=$(readlink -f "/lib/modules/$KVER/source" 2>/dev/null || true)
        [ -n "$src" ] && [ -d "$src" ] || die "cannot find the kernel source headers of $KVER (linux-headers-*-common)"
        ln -s "$src" "$tree/source"
    fi
    # SystemTap 5 no longer reads the build tree's System.map: only /usr/lib/debug/boot/ and
    # /boot/System.map-KVER (the placeholder), hence "Kernel function symbol table missing" and
    # no kprobe.function match. In a release tree (ours, see route_release) the real one goes
    # where the -dbg package would put it; on a host nothing is written outside the cache.
    local dbgmap=/usr/lib/debug/boot/System.map-$KVER
    if [ -n "${COLLECTD_STAP_IN_TREE:-}" ] && [ "$(readlink "$dbgmap" 2>/dev/null)" != "$map" ]; then
        mkdir -p "${dbgmap%/*}"
        ln -sfn "$map" "$dbgmap"
        info "$COLLECTD_STAP_IN_TREE tree: $dbgmap -> $map (SystemTap 5 reads the symbol table there)"
    fi
    KTREE=$tree
}

DEBUGINFO_ENV=()
DEBUGINFO_DIR=
ensure_debuginfo() {
    [ ${#DEBUGINFO_ENV[@]} -eq 0 ] || return 0
    local root="$CACHE_ROOT/debuginfo" pkg="linux-image-$KVER-dbg"
    local dir="$root/$KVER" rel="usr/lib/debug/boot"
    local vml="$dir/$rel/vmlinux-$KVER" t0 ts
    t0=$(now)
    if [ -f "$dir/.collectd-stap-debuginfo" ] && [ -s "$vml" ]; then
        info "debuginfo: cached $vml ($(du -m "$vml" | cut -f1) MB)"
    else
        mkdir -p "$root"
        local cmd="cd $root && apt-get download $pkg"
        command -v apt-get >/dev/null 2>&1 ||
            die "kernel debuginfo for $KVER is needed and apt-get is not available. Get $pkg and extract ./$rel/vmlinux-$KVER and ./$rel/System.map-$KVER into $dir"
        command -v objcopy >/dev/null 2>&1 || pkg_install binutils "objcopy, to shrink the debuginfo"
        apt_has_lists || apt_update_once || true
        apt-cache show "$pkg" >/dev/null 2>&1 || apt_update_once || true
        apt-cache show "$pkg" >/dev/null 2>&1 ||
            die "kernel debuginfo package $pkg is unknown to apt. Run: apt-get update && $cmd
  (Debian ships it from the main archive, or debian-security for updates; if it is gone, pick another KVER)"
        local tmp deb rc=0
        tmp=$(mktemp -d "$root/.$KVER.XXXXXX")
        # shellcheck disable=SC2064
        trap "rm -rf '$tmp'" EXIT
        deb=$(compgen -G "$root/${pkg}_*.deb" | head -n 1) || deb=
        if [ -n "$deb" ]; then
            info "debuginfo: using the kept package $deb"
        else
            info "debuginfo: step 1/3 downloading $pkg (about 860 MB): $cmd"
            ts=$(now)
            (cd "$tmp" && apt-get download -q "$pkg") >"$tmp/apt.log" 2>&1 || rc=$?
            deb=$(compgen -G "$tmp/${pkg}_*.deb" | head -n 1) || deb=
            if [ "$rc" != 0 ] || [ -z "$deb" ]; then
                tail -n 20 "$tmp/apt.log" | sed 's/^/    /' >&2
                die "downloading $pkg failed (exit $rc). Run: $cmd"
            fi
            info "debuginfo: downloaded $(du -m "$deb" | cut -f1) MB in $(elapsed "$ts")s"
        fi
        info "debuginfo: step 2/3 extracting ./$rel/vmlinux-$KVER and System.map-$KVER only"
        ts=$(now)
        # --occurrence: tar stops reading once it has both members (they sit early in the
        # archive); dpkg-deb then dies of SIGPIPE, which is fine if tar got both.
        local st
        set +e
        dpkg-deb --fsys-tarfile "$deb" 2>/dev/null |
            tar -x -C "$tmp" --occurrence=1 "./$rel/vmlinux-$KVER" "./$rel/System.map-$KVER" 2>"$tmp/tar.log"
        st=("${PIPESTATUS[@]}")
        set -e
        if [ "${st[1]}" != 0 ] || [ ! -s "$tmp/$rel/vmlinux-$KVER" ]; then
            sed 's/^/    /' "$tmp/tar.log" >&2
            die "extracting vmlinux-$KVER from $deb failed (dpkg-deb ${st[0]}, tar ${st[1]}). Retry: $cmd, then
  dpkg-deb --fsys-tarfile ${pkg}_*.deb | tar -x ./$rel/vmlinux-$KVER ./$rel/System.map-$KVER"
        fi
        info "debuginfo: extracted $(du -m "$tmp/$rel/vmlinux-$KVER" | cut -f1) MB vmlinux in $(elapsed "$ts")s"
        info "debuginfo: step 3/3 shrinking: objcopy --only-keep-debug -R '.rela*' --compress-debug-sections=zlib"
        ts=$(now)
        objcopy --only-keep-debug -R '.rela*' --compress-debug-sections=zlib \
            "$tmp/$rel/vmlinux-$KVER" "$tmp/$rel/vmlinux-$KVER.small" ||
            die "objcopy failed on $tmp/$rel/vmlinux-$KVER (binutils too old for --compress-debug-sections?)"
        mv -f "$tmp/$rel/vmlinux-$KVER.small" "$tmp/$rel/vmlinux-$KVER"
        info "debuginfo: shrunk to $(du -m "$tmp/$rel/vmlinux-$KVER" | cut -f1) MB in $(elapsed "$ts")s"
        if [ "${KEEP_DEBUGINFO_DEB:-0}" = 1 ] && [ "${deb#"$tmp"/}" != "$deb" ]; then
            mv -f "$deb" "$root/"
            info "debuginfo: kept $root/$(basename "$deb") (KEEP_DEBUGINFO_DEB=1)"
        elif [ "${deb#"$tmp"/}" = "$deb" ] && [ "${KEEP_DEBUGINFO_DEB:-0}" != 1 ]; then
            rm -f "$deb"
        fi
        rm -f "$tmp"/*.deb "$tmp/apt.log" "$tmp/tar.log"
        printf 'package=%s\nsource=%s\nshrunk=objcopy --only-keep-debug -R .rela* --compress-debug-sections=zlib\n' \
            "$pkg" "$(basename "$deb")" >"$tmp/.collectd-stap-debuginfo"
        chmod 755 "$tmp"    # mktemp made it 0700
        rm -rf "$dir"
        mv "$tmp" "$dir"
        trap - EXIT
        info "debuginfo: ready in $(elapsed "$t0")s: $vml ($(du -m "$vml" | cut -f1) MB; the .deb was $( [ "${KEEP_DEBUGINFO_DEB:-0}" = 1 ] && echo kept || echo deleted))"
    fi
    DEBUGINFO_DIR=$dir
    DEBUGINFO_ENV=("SYSTEMTAP_DEBUGINFO_PATH=$dir/usr/lib/debug")
}

# missing_debuginfo LOG: stap failed for want of kernel debuginfo.
missing_debuginfo() {
    grep -Eq 'missing .*(kernel|module).* debuginfo|debuginfo.*not found|No DWARF information found' "$1"
}

# ---------------------------------------------------------------------------
# Building

# Run stap, show its "Pass N" lines with elapsed time, keep everything in $log.
run_stap() {
    local label=$1 log=$2 t0=$3
    shift 3
    local rc=0 line hb
    : >"$log"
    # Heartbeat: stap -v reports a pass only when it ends, and a cold pass 2 or 4 is silent
    # for minutes.
    (
        sp=
        trap '[ -n "$sp" ] && kill "$sp" 2>/dev/null; exit 0' TERM
        while :; do
            sleep 20 >/dev/null 2>&1 &
            sp=$!
            wait "$sp"
            n=$(grep -c '^Pass [0-9]:' "$log" 2>/dev/null) || n=0
            case $((n + 1)) in
                1) what="pass 1 (parse)" ;;
                2) what="pass 2 (resolve probes; a cold cache compiles tracepoint/type query modules)" ;;
                3) what="pass 3 (translate)" ;;
                4) what="pass 4 (compile the module with kbuild)" ;;
                *) what="finishing" ;;
            esac
            printf '  [%s] %6ss  ... still in %s\n' "$label" "$(elapsed "$t0")" "$what"
        done
    ) &
    hb=$!
    set +e
    "$@" 2>&1 | while IFS= read -r line; do
        printf '%s\n' "$line" >>"$log"
        case "$line" in
            Pass\ [0-9]:*)
                printf '  [%s] %6ss  %s\n' "$label" "$(elapsed "$t0")" \
                    "$(printf '%s' "$line" | sed -e 's/ using [0-9]*virt\/[^ ]* kb,/,/' -e 's/\(.\{0,110\}\).*/\1/')" ;;
        esac
    done
    rc=${PIPESTATUS[0]}
    kill "$hb" 2>/dev/null
    wait "$hb" 2>/dev/null
    set -e
    return "$rc"
}

show_failure() {
    local label=$1 log=$2 what=$3
    printf '%s: error: %s failed for %s; stap said:\n' "$PROG" "$what" "$label" >&2
    grep -v '^Pass [0-9]:' "$log" | head -n 80 | sed 's/^/    /' >&2
    [ "$(grep -vc '^Pass [0-9]:' "$log")" -le 80 ] || printf '    ... (full log: %s)\n' "$log" >&2
    cat >&2 <<EOF
  What to do:
    - "semantic error" / "parse error": fix the script; \`make modules-lint KVER=$KVER\` is a fast check.
    - errors in generated C or in the runtime (e.g. task_work): the kernel and SystemTap disagree;
      see the runtime-fix logic in scripts/build-modules.sh (now using: $RUNTIME_NOTE${KBUILD_FLAGS[*]:+, ${KBUILD_FLAGS[*]}}).
    - "no match" for a kernel.trace point that exists: SystemTap's tracepoint query modules did not
      compile (see prepare_kbuild; \`stap -p2 -vvv\` shows the compiler errors).
    - "missing ... debuginfo": the script uses a probe that needs kernel debuginfo: prefer a
      tracepoint, or declare it with a line '// needs: debuginfo' (now: ${DEBUGINFO_DIR:-not used}).
    - Full stap output: $log
EOF
}

# Overload policy and shared tapset (see the header comment).
POLICY_FLAGS=(--suppress-handler-errors -DSTP_NO_OVERLOAD -DINTERRUPTIBLE=0 -DMAXACTION=10000)
TAPSET_DIR=$TOP/modules/tapset
LINT=$TOP/scripts/module-lint.py

# optional_probes FILE.stp: the lines `// optional: NAME POINT...` as "NAME<TAB>POINT...".
optional_probes() {
    sed -n 's|^[[:space:]]*//[[:space:]]*optional:[[:space:]]*\([a-z0-9_]\{1,\}\)[[:space:]]\{1,\}\(.*[^[:space:]]\)[[:space:]]*$|\1\t\2|p' "$1"
}

# size_flags FILE.stp: the -D flags that size the tapset's blocks for a script, on one line:
# -DCS_COUNTERS=N for a line `// counters: N` (its per-CPU counters, 1..1024: 8 bytes each a CPU,
# allocated when the module starts) and -DCS_LAT_IDS=N for a line `// latency: N` (its latency
# distribution ids, 1..1024, about 2 KB each).
size_flags() {
    local flags=() n
    n=$(header_number "$1" counters 1024) || exit 1
    [ -z "$n" ] || flags+=("-DCS_COUNTERS=$n")
    n=$(header_number "$1" latency 1024) || exit 1
    [ -z "$n" ] || flags+=("-DCS_LAT_IDS=$n")
    echo "${flags[*]}"
}

# header_number FILE.stp KEY MAX: N of the script's first line `// KEY: N` (1..MAX), nothing
# without such a line; dies on a line that gives no number in that range.
header_number() {
    local n
    grep -Eq "^[[:space:]]*//[[:space:]]*$2:" "$1" || return 0
    n=$(sed -n "s|^[[:space:]]*//[[:space:]]*$2:[[:space:]]*\([1-9][0-9]\{0,3\}\)[[:space:]]*\$|\1|p" "$1" | head -n 1)
    [ -n "$n" ] && [ "$n" -le "$3" ] ||
        die "$(basename "$1"): its '// $2:' line must give a number from 1 to $3"
    echo "$n"
}

# resolve_optional GROUP FILE.stp GENDIR RTREE ENV...: writes GENDIR/resolved.stp with
# have_NAME() (1 or 0) for each optional probe point of FILE.stp on this kernel, and
# cs_probes_info() for the module's `info probes` line. One `stap -p2` over a script that gives
# each optional point its own marker function: the translator keeps only the functions of the
# probes that resolved. The file is rewritten only when its content changes (stap's cache).
resolve_optional() {
    local group=$1 stp=$2 gen=$3 rtree=$4
    shift 4
    local chk="$gen/check.stp" out="$gen/resolved.stp" tmp="$gen/resolved.stp.new" name point
    mkdir -p "$gen"
    {
        echo "global cs_probe_check"
        local i=0
        while IFS=$'\t' read -r name point; do
            # Distinct bodies: the translator merges identical functions into one name.
            i=$((i + 1))
            echo "function cs_resolved_$name() { cs_probe_check = $i }"
            echo "probe $point ? { cs_resolved_$name() }"
        done < <(optional_probes "$stp")
        echo "probe begin { cs_probe_check = 0 }"
    } >"$chk"
    local found
    if ! found=$(env "$@" "$STAP" -p2 -r "$rtree" "${RUNTIME_FLAGS[@]}" "${KBUILD_FLAGS[@]}" "$chk" 2>"$gen/check.log"); then
        sed 's/^/    /' "$gen/check.log" >&2
        die "[$group] resolving the optional probe points failed (script: $chk)"
    fi
    found=$(printf '%s\n' "$found" | sed -n 's/^cs_resolved_\([a-z0-9_]*\):.*/\1/p')
    local info="" yes
    {
        echo "// Generated by scripts/build-modules.sh for $group on $KVER: which optional probe"
        echo "// points resolved (// optional: lines of modules/$group.stp). Do not edit."
        while IFS=$'\t' read -r name point; do
            yes=0
            grep -qx "$name" <<<"$found" && yes=1
            echo "function have_$name:long () { return $yes }"
            info="$info $name=$( [ "$yes" = 1 ] && echo yes || echo no)"
        done < <(optional_probes "$stp")
        echo "function cs_probes_info:string () { return \"${info# }\" }"
    } >"$tmp"
    if cmp -s "$tmp" "$out"; then rm -f "$tmp"; else mv -f "$tmp" "$out"; fi
    info "[$group] optional probes on $KVER:${info:- none}"
}

# write_params FILE.stp OUT.params: the module's public parameters, one name a line, for the
# plugin, which refuses any other `Param` (script globals are all settable at load time,
# internal state included). They are the globals declared with a value in the section that
# starts with a line `// ---- load-time parameters` and ends at the next `// ----` line, plus
# the tapset's interval_ms.
write_params() {
    local stp=$1 out=$2 tmp
    tmp="$out.new"
    {
        echo "# Public parameters of $(basename "$stp" .stp) (scripts/build-modules.sh, from $(basename "$stp"))."
        echo "interval_ms"
        awk '/^\/\/ ---- load-time parameters/ { on = 1; next }
             on && /^\/\/ ----/ { on = 0 }
             on && /^global / {
                 sub(/^global[ \t]+/, ""); sub(/\/\/.*/, "")
                 n = split($0, decl, ",")
                 for (i = 1; i <= n; i++) {
                     if (decl[i] !~ /=/) continue
                     name = decl[i]; sub(/=.*/, "", name); gsub(/[ \t]/, "", name)
                     if (name ~ /^[a-z_][a-z0-9_]*$/ && name != "interval_ms") print name
                 }
             }' "$stp"
    } >"$tmp"
    mv -f "$tmp" "$out"
}

# lint_module GROUP NAME FILE.stp GENDIR RTREE LOG SIZES ENV...: stap -p3, then the module
# lint. SIZES: the script's size_flags (the same -D flags as its build, one word each), or empty.
lint_module() {
    local group=$1 name=$2 stp=$3 gen=$4 rtree=$5 log=$6 sizes=$7
    shift 7
    local c="$gen/$name.c"
    # -p3 prints the C on stdout; a cold pass 2 can take minutes (no heartbeat needed: the
    # -p4 build that follows reuses it).
    if ! env "$@" "$STAP" -p3 -m "$name" -r "$rtree" -I "$TAPSET_DIR" -I "$gen" \
            "${POLICY_FLAGS[@]}" "${RUNTIME_FLAGS[@]}" "${KBUILD_FLAGS[@]}" "${extra[@]}" $sizes "$stp" >"$c" 2>"$log"; then
        show_failure "$group" "$log" "stap -p3 (translate)"
        return 1
    fi
    if ! python3 "$LINT" --name "$group" "$c" | sed 's/^/    /'; then
        printf '%s: error: [%s] module lint failed: fix modules/%s.stp (generated C: %s; rules: scripts/module-lint.py)\n' \
            "$PROG" "$group" "$group" "$c" >&2
        return 1
    fi
}

# ---------------------------------------------------------------------------
# Build keys (see the header comment): everything a module's .ko and its lint depend on.

# dir_hash DIR...: the content of every file under DIR (names and bytes).
dir_hash() {
    local d
    for d in "$@"; do
        [ -d "$d" ] || { echo "missing $d"; continue; }
        (cd "$d" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
    done | sha256sum | cut -c1-64
}

# ENV_KEY: what every module of this run shares.
ENV_KEY=
compute_env_key() {
    local rt=$STAP_RUNTIME_SRC t0
    t0=$(now)
    [ ${#RUNTIME_FLAGS[@]} -eq 0 ] || rt=${RUNTIME_FLAGS[1]}
    local stap_tapsets
    stap_tapsets=$(dirname "$STAP_RUNTIME_SRC")/tapset
    ENV_KEY=$(
        echo "kver=$KVER"
        "$STAP" -V 2>&1 | head -n 1
        echo "policy=${POLICY_FLAGS[*]}"
        echo "runtime=${RUNTIME_FLAGS[*]} kbuild=${KBUILD_FLAGS[*]} extra=${extra[*]}"
        echo "runtime-content=$(dir_hash "$rt")"
        echo "stap-tapsets=$(dir_hash "$stap_tapsets")"
        echo "our-tapsets=$(dir_hash "$TAPSET_DIR")"
        # The kernel: headers package, its configuration and exports; the compiler and kbuild.
        dpkg-query -W -f '${Package}=${Version}\n' "linux-headers-$KVER" 'linux-kbuild-*' 'gcc-[0-9]*' \
            binutils 'systemtap*' 2>/dev/null | LC_ALL=C sort
        sha256sum "$BUILD_TREE/.config" "$BUILD_TREE/Module.symvers" 2>&1 | cut -c1-64
        # This script (flags, the generated tapset), the lint and its list of per-event probes.
        sha256sum "$SELF" "$LINT" "$TOP/modules/event-probes.txt" 2>&1 | cut -c1-64
    )
    ENV_KEY=$(printf '%s\n' "$ENV_KEY" | sha256sum | cut -c1-64)
    info "build key inputs hashed in $(elapsed "$t0")s"
}

# key_of FILE.stp NAME DEBUGINFO(0|1) SYSTEM_MAP(0|1): the module's build key; fails if the
# debuginfo or System.map it needs is not cached yet (then it is built anyway).
key_of() {
    local stp=$1 name=$2 dbg=$3 map=$4
    local ddir="$CACHE_ROOT/debuginfo/$KVER" rel=usr/lib/debug/boot
    if [ "$dbg" = 1 ] || [ "$map" = 1 ]; then
        [ -f "$ddir/.collectd-stap-debuginfo" ] && [ -s "$ddir/$rel/vmlinux-$KVER" ] || return 1
    fi
    {
        echo "env=$ENV_KEY name=$name"
        echo "script=$(sha256sum <"$stp" | cut -c1-64)"
        if [ "$dbg" = 1 ]; then
            echo "debuginfo=$(tr '\n' ' ' <"$ddir/.collectd-stap-debuginfo") $(stat -c '%s %Y' "$ddir/$rel/vmlinux-$KVER")"
        fi
        if [ "$map" = 1 ]; then
            echo "system.map=$(sha256sum <"$ddir/$rel/System.map-$KVER" | cut -c1-64)"
        fi
    } | sha256sum | cut -c1-64
}

# module_key FILE.stp NAME: the key from what the script declares (phase 1).
module_key() {
    local dbg=0 map=0
    needs_debuginfo "$1" && dbg=1
    needs_symbols "$1" && map=1
    key_of "$1" "$2" "$dbg" "$map"
}

# key_used FILE.stp NAME N: the key of what the build used (N: number of debuginfo env entries).
key_used() {
    local dbg=0 map=0
    [ "$3" -gt 0 ] && dbg=1
    needs_symbols "$1" && map=1
    key_of "$1" "$2" "$dbg" "$map"
}

# Measured build times, to say up front how long a build will take:
#   $CACHE_ROOT/build-times: STAPVERSION KVER GROUP KIND SECONDS, KIND = MODE-first (no earlier
#   build of GROUP for KVER: stap's per-kernel caches are cold) or MODE-again.
TIMES_FILE=$CACHE_ROOT/build-times
stap_version() { "$STAP" -V 2>&1 | sed -n 's/.*version \([0-9][0-9.]*\).*/\1/p' | head -n 1; }
record_time() {
    local group=$1 kind=$2 t=$3
    printf '%s %s %s %s %s\n' "$(stap_version)" "$KVER" "$group" "$kind" "$(elapsed "$t")" >>"$TIMES_FILE" 2>/dev/null || true
}

# estimate_time FILE.stp...: print how long building them will take, from earlier measurements
# on this machine (same SystemTap version and kind of build; else any group's; else a default).
estimate_time() {
    local ver total=0 n=0 src=measured stp group name kind s
    ver=$(stap_version)
    for stp in "$@"; do
        group=$(basename "$stp" .stp)
        name=collectd_stap_$group
        # First build of GROUP for KVER here: stap's per-kernel caches are probably cold.
        kind="$mode-again"
        [ -f "$OUT_ROOT/$KVER/$name.ko" ] || [ -f "$OUT_ROOT/$KVER/.$name.lint-key" ] || kind="$mode-first"
        s=$(awk -v v="$ver" -v g="$group" -v k="$kind" '
                $1 == v && $4 == k { all += $5; na++; if ($3 == g) last = $5 }
                END { if (last != "") print last; else if (na) printf "%.0f\n", all / na }' "$TIMES_FILE" 2>/dev/null) || s=
        if [ -z "$s" ]; then
            # Defaults from the project's 2-core build machine, shared with other builds and a VM
            # (first: SystemTap 5.1 on 6.12 took 544 s for nine modules with a cold cache).
            case "$kind" in
                build-first) s=100 ;; build-again) s=30 ;; lint-first) s=60 ;; *) s=15 ;;
            esac
            src="partly a default guess: nothing measured yet for SystemTap $ver"
        fi
        total=$((total + ${s%.*}))
        n=$((n + 1))
    done
    local what="building"
    [ "$mode" = lint ] && what="linting"
    info "$what $n module(s) for $KVER: about $(( (total + 59) / 60 )) min on this machine, if no other build holds the lock ($src; times in $TIMES_FILE)"
}

# module_current FILE.stp OUT_DIR: true (and says so) if the module of FILE.stp in OUT_DIR was
# built (or, in lint mode, linted) from exactly its current inputs (the build key).
module_current() {
    local stp=$1 out_dir=$2 group name ko key
    group=$(basename "$stp" .stp)
    name="collectd_stap_$group"
    ko="$out_dir/$name.ko"
    key=$(module_key "$stp" "$name") || return 1
    if [ "$mode" = lint ]; then
        [ "$(cat "$out_dir/.$name.lint-key" 2>/dev/null)" = "$key" ] || return 1
        info "[$group] lint ok (cached: its inputs are those of the lint that passed)"
    else
        [ -f "$ko" ] && [ "$(cat "$out_dir/.$name.key" 2>/dev/null)" = "$key" ] || return 1
        [ -f "${ko%.ko}.params" ] || write_params "$stp" "${ko%.ko}.params"
        info "[$group] up to date: $ko"
    fi
}

main() {
    T_START=$(now)
    resolve_kver
    case "$KVER" in
        */*|'') die "bad KVER '$KVER'" ;;
    esac
    route_release
    ensure_tools
    ensure_headers

    local out_dir="$OUT_ROOT/$KVER"
    mkdir -p "$out_dir" "$CACHE_ROOT"

    local stps=() g
    if [ ${#groups[@]} -eq 0 ]; then
        shopt -s nullglob
        stps=("$TOP"/modules/*.stp)
        shopt -u nullglob
        [ ${#stps[@]} -gt 0 ] || die "no modules/*.stp found under $TOP"
    else
        for g in "${groups[@]}"; do
            [ -f "$TOP/modules/$g.stp" ] || die "no such module script: modules/$g.stp"
            stps+=("$TOP/modules/$g.stp")
        done
    fi
    # shellcheck disable=SC2206
    local extra=(${STAP_EXTRA_FLAGS:-})

    # Phase 1, without the lock: which modules are up to date (build key unchanged)?
    prepare_runtime
    prepare_kbuild
    compute_env_key
    local todo=() skipped=0 failed=0 stp group name ko key
    for stp in "${stps[@]}"; do
        group=$(basename "$stp" .stp)
        case "$group" in
            *[!a-z0-9_]*) warn "skipping $stp: group name must be [a-z0-9_]"; failed=1; continue ;;
        esac
        name="collectd_stap_$group"
        ko="$out_dir/$name.ko"
        if [ "$force" = 0 ] && module_current "$stp" "$out_dir"; then
            skipped=$((skipped + 1))
            continue
        fi
        todo+=("$stp")
    done
    if [ ${#todo[@]} -eq 0 ]; then
        info "KVER=$KVER: all ${#stps[@]} $( [ "$mode" = lint ] && echo linted || echo up to date) (build keys unchanged; --force or make modules-force rebuilds)"
        [ "$failed" = 0 ] || die "some modules failed (see above)"
        return 0
    fi
    estimate_time "${todo[@]}"

    # Phase 2: one stap at a time on this host (they each want a full CPU and lots of memory).
    exec 9>"$CACHE_ROOT/build.lock"
    if ! flock -n 9; then
        info "another module build is running; waiting for it"
        flock 9
        # It may have built some of ours meanwhile (`make check` builds ahead in the background).
        local still=()
        for stp in "${todo[@]}"; do
            if [ "$force" = 0 ] && module_current "$stp" "$out_dir"; then
                skipped=$((skipped + 1))
            else
                still+=("$stp")
            fi
        done
        todo=("${still[@]}")
        if [ ${#todo[@]} -eq 0 ]; then
            info "KVER=$KVER: all ${#stps[@]} $( [ "$mode" = lint ] && echo linted || echo up to date) (the other build made them)"
            [ "$failed" = 0 ] || die "some modules failed (see above)"
            return 0
        fi
    fi

    info "SystemTap cache: ${SYSTEMTAP_DIR:-$HOME/.systemtap}${COLLECTD_STAP_IN_TREE:+ in the $COLLECTD_STAP_IN_TREE tree} (keep it stable for fast rebuilds)"
    local built=0 t0 t1 log tmp kind
    for stp in "${todo[@]}"; do
        group=$(basename "$stp" .stp)
        name="collectd_stap_$group"
        ko="$out_dir/$name.ko"
        log="$out_dir/.$name.$mode.log"
        t1=$(now)
        kind=again
        [ -f "$ko" ] || [ -f "$out_dir/.$name.lint-key" ] || kind=first

        local denv=() dnote='' attempt ok rtree=$KVER sizes
        # -D flags without spaces: split into words where they are passed ($sizes unquoted).
        sizes=$(size_flags "$stp") || exit 1
        if needs_debuginfo "$stp"; then
            ensure_debuginfo
            denv=("${DEBUGINFO_ENV[@]}")
            dnote=" with kernel debuginfo"
        fi
        if needs_symbols "$stp"; then
            ensure_debuginfo
            ensure_ktree
            rtree=$KTREE
            dnote="$dnote with the kernel's System.map"
        fi

        for attempt in 1 2; do
            ok=0
            t0=$(now)
            local gen="$out_dir/.tapset/$group" ukey
            # The key of the inputs as they are before stap reads them: an edit during the
            # build makes the next run rebuild.
            ukey=$(key_used "$stp" "$name" ${#denv[@]}) || ukey=none
            resolve_optional "$group" "$stp" "$gen" "$rtree" "${denv[@]}"
            info "[$group] lint: stap -p3 -r $KVER $(basename "$stp")$dnote, then scripts/module-lint.py"
            if ! lint_module "$group" "$name" "$stp" "$gen" "$rtree" "$log" "$sizes" "${denv[@]}"; then
                :
            elif [ "$mode" = lint ]; then
                info "[$group] lint ok in $(elapsed "$t0")s"
                grep -E '^WARNING' "$log" | grep -v 'Kernel function symbol table missing' |
                    sed 's/^/    /' || true
                printf '%s\n' "$ukey" >"$out_dir/.$name.lint-key"
                record_time "$group" "$mode-$kind" "$t1"
                ok=1
            else
                info "[$group] building $name.ko for $KVER$dnote (stap -p4; a cold build takes minutes, a warm one seconds)"
                tmp=$(mktemp -d "$out_dir/.build.XXXXXX")
                if (cd "$tmp" && run_stap "$group" "$log" "$t0" env "${denv[@]}" "$STAP" -v -p4 -m "$name" -r "$rtree" \
                        -I "$TAPSET_DIR" -I "$gen" "${POLICY_FLAGS[@]}" "${RUNTIME_FLAGS[@]}" "${KBUILD_FLAGS[@]}" "${extra[@]}" \
                        $sizes "$stp") &&
                        [ -f "$tmp/$name.ko" ]; then
                    mv -f "$tmp/$name.ko" "$ko"
                    chmod 0644 "$ko"    # a .ko from stap's cache can be 0666; staprun refuses that
                    write_params "$stp" "${ko%.ko}.params"
                    rm -rf "$tmp"
                    local vm
                    vm=$(modinfo -F vermagic "$ko" 2>/dev/null | awk '{print $1}') || vm=
                    if [ -n "$vm" ] && [ "$vm" != "$KVER" ]; then
                        warn "[$group] $ko has vermagic '$vm', expected '$KVER'"
                    fi
                    printf '%s\n' "$ukey" >"$out_dir/.$name.key"
                    cp -f "$out_dir/.$name.key" "$out_dir/.$name.lint-key"
                    record_time "$group" "$mode-$kind" "$t1"
                    info "[$group] done in $(elapsed "$t0")s: $ko ($(du -k "$ko" | cut -f1) KB)"
                    built=$((built + 1))
                    ok=1
                else
                    rm -rf "$tmp"
                    show_failure "$group" "$log" "stap -p4 (build)"
                fi
            fi
            [ "$ok" = 1 ] && break
            if [ "$attempt" = 1 ] && [ ${#denv[@]} -eq 0 ] && missing_debuginfo "$log"; then
                warn "[$group] $(basename "$stp") needs kernel debuginfo but does not say so; add a line '// needs: debuginfo' to it. Fetching debuginfo and retrying."
                ensure_debuginfo
                denv=("${DEBUGINFO_ENV[@]}")
                dnote=" with kernel debuginfo"
                continue
            fi
            failed=1
            break
        done
    done

    if [ "$mode" = build ]; then
        info "KVER=$KVER: $built built, $skipped up to date in $(elapsed "$T_START")s, runtime: $RUNTIME_NOTE${DEBUGINFO_DIR:+, debuginfo: $DEBUGINFO_DIR}"
    else
        info "KVER=$KVER: lint done in $(elapsed "$T_START")s ($skipped cached)"
    fi
    [ "$failed" = 0 ] || die "some modules failed (see above)"
}

main
