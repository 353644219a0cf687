#!/usr/bin/env bash
# Debian release trees: build modules for a kernel of another Debian release than the host's.
#
# Usage: scripts/release-tree.sh COMMAND ...
#   host-release             print the host's release codename (e.g. bookworm)
#   kver RELEASE             print the ABI of RELEASE's linux-image-amd64 today, from the archive
#                            (e.g. trixie -> 6.12.x+deb13-amd64; never hard-coded)
#   release-of KVER          print the release whose archive has linux-headers-KVER (the host's
#                            own first, then each of $COLLECTD_STAP_RELEASES)
#   ensure RELEASE [--kver KVER] [PKG...]
#                            make or refresh the tree of RELEASE, install linux-headers-KVER and
#                            the PKGs in it, print its path
#   run RELEASE [--bind DIR]... -- CMD...
#                            run CMD as root in the tree (chroot in a private mount namespace with
#                            /dev, /proc, /sys and each DIR bound at the same path; all unmounted
#                            when CMD ends); the tree cannot be refreshed while CMD runs
#
# Layout, under ${XDG_CACHE_HOME:-~/.cache}/collectd-stap/:
#   apt/RELEASE/       a private apt configuration and index of RELEASE (the host's apt setup is
#                      never touched): sources for RELEASE, RELEASE-updates and RELEASE-security,
#                      made from the host's own sources by replacing its codename
#   trees/RELEASE/     the tree: debootstrap --variant=minbase with SystemTap, gcc, make, kmod,
#                      python3 (the module lint) and linux-headers; about 1 GB
#   trees/RELEASE/.collectd-stap-tree   stamp: written last, so a tree without it is incomplete
#   trees/RELEASE.lock flock: exclusive while the tree is made or refreshed, shared while used
#
# When a tree is stale (checked at most every $TREE_CHECK_HOURS, default 6, against the private
# index, which is refreshed then):
#   - the archive's systemtap, linux-headers-amd64 or gcc differs from the tree's: refresh in place
#     (apt-get dist-upgrade in the tree, a minute or two): the module output depends on exactly
#     these, and an in-place upgrade keeps the tree's SystemTap cache (stap keys it on its own
#     version, so nothing stale is reused);
#   - the stamp is older than $TREE_MAX_AGE_DAYS (default 30), has no stamp (interrupted), or
#     TREE_REBUILD=1: made anew (several minutes). This bounds the drift in-place upgrades
#     accumulate (headers of old kernels, packages gone from the archive) at a cost of a few
#     minutes a month.
# Only root can make and enter a tree (debootstrap, chroot, mount); sudo -n is used otherwise.

set -euo pipefail

PROG=release-tree
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/collectd-stap"
TREES=$CACHE_ROOT/trees
APTROOT=$CACHE_ROOT/apt
RELEASES=${COLLECTD_STAP_RELEASES:-bookworm trixie}
TREE_CHECK_HOURS=${TREE_CHECK_HOURS:-6}
TREE_MAX_AGE_DAYS=${TREE_MAX_AGE_DAYS:-30}
# What a module build needs in the tree (linux-headers-KVER is added per kernel).
TREE_PACKAGES="systemtap linux-headers-amd64 gcc make kmod python3 binutils"
TREE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die()  { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
info() { printf '%s: %s\n' "$PROG" "$*" >&2; }
now() { printf '%s' "${EPOCHREALTIME:-$(date +%s.%N)}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }'; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
    else die "making or entering a release tree needs root (or passwordless sudo): run as root"
    fi
}

check_release() {
    case "$1" in
        ''|*[!a-z]*) die "bad release name '$1' (a Debian codename like bookworm or trixie)" ;;
    esac
}

host_release() {
    local c
    # shellcheck disable=SC1091
    c=$(. /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}")
    [ -n "$c" ] || die "cannot tell the host's Debian release (no VERSION_CODENAME in /etc/os-release)"
    printf '%s\n' "$c"
}

# ---------------------------------------------------------------------------
# The archive: the host's apt for the host's release, a private index for any other.

# Print "URI SUITE" lines for RELEASE: the host's own sources of its release with the codename
# replaced (same mirrors, same -updates/-security split); deb.debian.org if the host has none.
release_sources() {
    local rel=$1 host
    host=$(host_release)
    local lines
    # shellcheck disable=SC2016  # apt's own $(FIELD) placeholders
    lines=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null |
            sort -u | awk -v h="$host" -v r="$rel" '
                $2 == h || index($2, h "-") == 1 { s = $2; sub("^" h, r, s); print $1, s }' | sort -u) || lines=
    if [ -z "$lines" ]; then
        lines="http://deb.debian.org/debian/ $rel
http://deb.debian.org/debian/ $rel-updates
http://deb.debian.org/debian-security/ $rel-security"
    fi
    printf '%s\n' "$lines"
}

# The main archive URI of RELEASE (for debootstrap).
release_mirror() {
    release_sources "$1" | awk -v r="$1" '$2 == r { print $1; exit }'
}

# apt options for RELEASE's private index.
apt_opts() {
    local d=$APTROOT/$1
    printf '%s\n' -o "Dir::Etc::sourcelist=$d/sources.list" -o "Dir::Etc::sourceparts=$d/sources.list.d" \
        -o "Dir::Etc::preferences=$d/preferences" -o "Dir::Etc::preferencesparts=$d/preferences.d" \
        -o "Dir::State=$d/state" -o "Dir::State::status=$d/status" -o "Dir::Cache=$d/cache" \
        -o "APT::Architecture=amd64" -o "APT::Architectures::=amd64" -o "Debug::NoLocking=1" \
        -o "APT::Sandbox::User=root" -o "Dir::Cache::pkgcache=pkgcache.bin" -o "Dir::Cache::srcpkgcache=srcpkgcache.bin"
}

# private_apt RELEASE CMD ARGS...: run apt-get/apt-cache on RELEASE's private index.
private_apt() {
    local rel=$1 cmd=$2
    shift 2
    local opts
    mapfile -t opts < <(apt_opts "$rel")
    LC_ALL=C "$cmd" "${opts[@]}" "$@"
}

# update_index RELEASE [force]: refresh the private index if older than TREE_CHECK_HOURS.
update_index() {
    local rel=$1 force=${2:-} d=$APTROOT/$1
    mkdir -p "$d/sources.list.d" "$d/preferences.d" "$d/state/lists/partial" "$d/cache/archives/partial"
    : >>"$d/status"
    local want uri suite
    want=$(release_sources "$rel" | while read -r uri suite; do
        printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$uri" "$suite"
    done)
    if [ "$(cat "$d/sources.list" 2>/dev/null)" != "$want" ]; then
        printf '%s\n' "$want" >"$d/sources.list"
        force=1
    fi
    if [ -z "$force" ] && [ -f "$d/updated" ] &&
       [ -n "$(find "$d/updated" -mmin -$((TREE_CHECK_HOURS * 60)) 2>/dev/null)" ]; then
        return 0
    fi
    # One updater at a time (apt's own locking is off for this private setup).
    exec 7>"$d.lock"
    flock 7
    if [ -z "$force" ] && [ -n "$(find "$d/updated" -mmin -1 2>/dev/null)" ]; then
        flock -u 7
        return 0
    fi
    info "updating the $rel package index (private apt setup in $d)"
    local log=$d/update.log
    if ! private_apt "$rel" apt-get -q update >"$log" 2>&1 || grep -q '^[WE]: ' "$log"; then
        sed 's/^/    /' "$log" >&2
        # An index that answers is still usable; a first one that failed is not.
        private_apt "$rel" apt-cache show linux-image-amd64 >/dev/null 2>&1 ||
            die "cannot fetch the $rel package index (sources: $d/sources.list)"
        info "warning: the $rel index update had errors; using what it has"
    fi
    touch "$d/updated"
    flock -u 7
}

# kver_of RELEASE: the ABI of RELEASE's linux-image-amd64 (same rule as vm_resolve_kver).
kver_of() {
    local rel=$1 k=
    check_release "$rel"
    if [ "$rel" = "$(host_release)" ]; then
        k=$(LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null |
            sed -n 's/^ *Depends: <\{0,1\}linux-image-\([0-9][^ >]*\)>\{0,1\}$/\1/p' | head -n 1)
        if [ -z "$k" ]; then
            as_root apt-get -q update >/dev/null 2>&1 || true
            k=$(LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null |
                sed -n 's/^ *Depends: <\{0,1\}linux-image-\([0-9][^ >]*\)>\{0,1\}$/\1/p' | head -n 1)
        fi
    else
        update_index "$rel"
        k=$(private_apt "$rel" apt-cache depends linux-image-amd64 2>/dev/null |
            sed -n 's/^ *Depends: <\{0,1\}linux-image-\([0-9][^ >]*\)>\{0,1\}$/\1/p' | head -n 1)
    fi
    [ -n "$k" ] || die "cannot resolve $rel's kernel: its linux-image-amd64 names no linux-image-VERSION"
    printf '%s\n' "$k"
}

# release_of KVER: which release's archive has linux-headers-KVER.
release_of() {
    local kver=$1 host rel
    host=$(host_release)
    if [ -e "/lib/modules/$kver/build/Makefile" ] ||
       apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
        printf '%s\n' "$host"
        return 0
    fi
    for rel in $RELEASES; do
        [ "$rel" = "$host" ] && continue
        update_index "$rel"
        if private_apt "$rel" apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
            printf '%s\n' "$rel"
            return 0
        fi
    done
    # Maybe the host's index is only old (a new kernel of its own release).
    info "linux-headers-$kver is in none of the indexes; updating the host's ($host)"
    as_root apt-get -q update >/dev/null 2>&1 || true
    if apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
        printf '%s\n' "$host"
        return 0
    fi
    return 1
}

# ---------------------------------------------------------------------------
# The tree

# in_tree DIR [--bind D]... -- CMD...: run CMD chrooted in DIR (private mount namespace).
in_tree() {
    local dir=$1
    shift
    local binds=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --bind) binds+=("$2"); shift 2 ;;
            --) shift; break ;;
            *) die "in_tree: unexpected '$1'" ;;
        esac
    done
    # Bind targets are created as empty directories in the tree (and stay, empty).
    local b
    for b in "${binds[@]}"; do
        [ -d "$b" ] || die "cannot bind $b into the tree: not a directory"
        mkdir -p "$dir$b"
    done
    cp -fL /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
    # shellcheck disable=SC2016
    as_root unshare --mount --propagation private -- bash -c '
        set -e
        dir=$1; shift
        mount --rbind /dev "$dir/dev"
        mount -t proc proc "$dir/proc"
        mount --rbind /sys "$dir/sys"
        while [ "$1" != -- ]; do mount --bind "$1" "$dir$1"; shift; done
        shift
        exec chroot "$dir" "$@"' in-tree "$dir" "${binds[@]}" -- \
        env -i PATH="$TREE_PATH" HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"
}

# installed_versions DIR PKG...: "PKG=VERSION" for each PKG installed in the tree.
installed_versions() {
    local dir=$1
    shift
    dpkg-query --admindir="$dir/var/lib/dpkg" -W -f '${Package}=${Version}\n' "$@" 2>/dev/null | sort
}

# candidate_versions RELEASE PKG...: "PKG=VERSION" the archive has now.
candidate_versions() {
    local rel=$1
    shift
    private_apt "$rel" apt-cache policy "$@" 2>/dev/null |
        awk '/^[^ ]/ { p = $1; sub(/:$/, "", p) } $1 == "Candidate:" { print p "=" ($2 == "(none)" ? "" : $2) }' | sort
}

# Progress of debootstrap (it logs every package): a line per phase and per 50 packages in it.
debootstrap_progress() {
    local t0=$1 line phase='' last='' n=0
    while IFS= read -r line; do
        printf '%s\n' "$line" >>"$2"
        case "$line" in
            I:\ Retrieving\ *|I:\ Validating\ *) phase="downloading packages" ;;
            I:\ Extracting\ *) phase="extracting the essential packages" ;;
            I:\ Unpacking\ *) phase="unpacking packages" ;;
            I:\ Configuring\ *) phase="configuring packages" ;;
            I:\ Base\ system\ installed*) phase="base system installed" ;;
            E:*|W:*) printf '  %s\n' "$line" >&2; continue ;;
            *) continue ;;
        esac
        if [ "$phase" != "$last" ]; then
            n=0
            last=$phase
        fi
        n=$((n + 1))
        [ "$n" = 1 ] || [ $((n % 50)) = 0 ] || continue
        printf '  [tree %4ss] %s (%d)\n' "$(elapsed "$t0")" "$phase" "$n" >&2
    done
}

make_tree() {
    local rel=$1 dir=$2 t0 log mirror
    t0=$(now)
    command -v debootstrap >/dev/null 2>&1 || {
        info "installing debootstrap (to make the $rel tree)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null ||
            die "could not install debootstrap: apt-get install debootstrap"
    }
    [ -e "/usr/share/debootstrap/scripts/$rel" ] ||
        die "this debootstrap does not know '$rel' (/usr/share/debootstrap/scripts/$rel): install a newer debootstrap (e.g. from $(host_release)-backports)"
    mirror=$(release_mirror "$rel")
    [ -n "$mirror" ] || die "no archive URI for $rel"
    info "making the $rel tree in $dir: debootstrap --variant=minbase $rel from $mirror"
    info "  (about 1 GB, usually 5-10 min; progress below; log: $dir.log)"
    as_root rm -rf "$dir"
    mkdir -p "$TREES"
    log=$dir.log
    : >"$log"
    local inc
    inc=$(printf '%s' "$TREE_PACKAGES" | tr ' ' ',')
    set +e
    as_root debootstrap --variant=minbase --include="$inc" \
        --keyring=/usr/share/keyrings/debian-archive-keyring.gpg "$rel" "$dir" "$mirror" 2>&1 |
        debootstrap_progress "$t0" "$log"
    local rc=${PIPESTATUS[0]}
    set -e
    if [ "$rc" != 0 ]; then
        tail -n 30 "$log" | sed 's/^/    /' >&2
        tail -n 30 "$dir/debootstrap/debootstrap.log" 2>/dev/null | sed 's/^/    /' >&2
        die "debootstrap of $rel failed (exit $rc; log $log). Retry, or TREE_REBUILD=1"
    fi
    info "  [tree $(elapsed "$t0")s] base tree made ($(du -sm "$dir" | cut -f1) MB); adding $rel-updates/-security"
    write_tree_sources "$rel" "$dir"
    tree_apt "$rel" "$dir" update
    tree_apt "$rel" "$dir" dist-upgrade
    tree_apt "$rel" "$dir" autoremove --purge
    rm -f "$dir/var/cache/apt/archives/"*.deb
    info "  [tree $(elapsed "$t0")s] $rel tree ready ($(du -sm "$dir" | cut -f1) MB)"
}

write_tree_sources() {
    local rel=$1 dir=$2 uri suite
    release_sources "$rel" | while read -r uri suite; do
        printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' "$uri" "$suite"
    done >"$dir/etc/apt/sources.list"
    # The tree's own keyring package carries its release's keys; the host's is used to bootstrap.
    [ -s "$dir/usr/share/keyrings/debian-archive-keyring.gpg" ] ||
        cp /usr/share/keyrings/debian-archive-keyring.gpg "$dir/usr/share/keyrings/"
    # No daemons started by package scripts in the tree.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
}

# tree_apt RELEASE DIR update|dist-upgrade|install PKG...: apt-get in the tree, progress shown.
tree_apt() {
    local rel=$1 dir=$2 what=$3 t0 log rc=0
    shift 3
    t0=$(now)
    log=$dir.apt.log
    info "  $rel tree: apt-get $what $*"
    local args=(-q -y -o Dpkg::Options::=--force-confold -o APT::Install-Recommends=false)
    in_tree "$dir" -- env DEBIAN_FRONTEND=noninteractive apt-get "${args[@]}" "$what" "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" != 0 ]; then
        tail -n 30 "$log" | sed 's/^/    /' >&2
        die "apt-get $what $* in the $rel tree failed (exit $rc; log $log)"
    fi
    [ "$what" != update ] || touch "$dir/.collectd-stap-apt-updated"
    local n
    n=$(grep -c '^Unpacking ' "$log") || n=0
    info "  $rel tree: apt-get $what done in $(elapsed "$t0")s ($n packages unpacked)"
}

# tree_ok RELEASE KVER PKG...: the tree is complete, young enough, current with the archive and
# has everything asked for (then ensure_tree has nothing to do).
tree_ok() {
    local rel=$1 kver=$2 dir=$TREES/$1
    shift 2
    local stamp=$dir/.collectd-stap-tree p
    [ -f "$stamp" ] && [ "${TREE_REBUILD:-0}" != 1 ] || return 1
    [ -z "$(find "$stamp" -mtime +"$TREE_MAX_AGE_DAYS" 2>/dev/null)" ] || return 1
    [ -n "$(find "$dir/.collectd-stap-apt-updated" -mmin -$((TREE_CHECK_HOURS * 60)) 2>/dev/null)" ] || return 1
    [ "$(installed_versions "$dir" systemtap linux-headers-amd64 gcc)" = \
      "$(candidate_versions "$rel" systemtap linux-headers-amd64 gcc)" ] || return 1
    [ -z "$kver" ] || [ -e "$dir/lib/modules/$kver/build/Makefile" ] || return 1
    for p in $TREE_PACKAGES "$@"; do
        dpkg-query --admindir="$dir/var/lib/dpkg" -W -f '${Status}' "$p" 2>/dev/null | grep -q ' installed$' || return 1
    done
}

ensure_tree() {
    local rel=$1 kver=$2
    shift 2
    local extra=("$@") dir=$TREES/$rel stamp
    check_release "$rel"
    stamp=$dir/.collectd-stap-tree
    mkdir -p "$TREES"
    update_index "$rel"
    # Usually nothing is to be done: checked under a shared lock (builds in the tree hold one).
    exec 8>"$TREES/$rel.lock"
    if ! flock -s -n 8; then
        info "the $rel tree is being made or refreshed; waiting for it"
        flock -s 8
    fi
    if tree_ok "$rel" "$kver" "${extra[@]}"; then
        flock -u 8
        printf '%s\n' "$dir"
        return 0
    fi
    # Work to do: exclusively (waits for the builds using the tree to end).
    if ! flock -x -n 8; then
        info "the $rel tree needs work and is in use; waiting for the builds in it to end"
        flock -x 8
    fi

    local why=
    if [ ! -f "$stamp" ]; then
        [ -d "$dir" ] && why="incomplete (no stamp: an earlier make was interrupted)" || why="not made yet"
    elif [ "${TREE_REBUILD:-0}" = 1 ]; then
        why="TREE_REBUILD=1"
    elif [ -n "$(find "$stamp" -mtime +"$TREE_MAX_AGE_DAYS" 2>/dev/null)" ]; then
        why="older than $TREE_MAX_AGE_DAYS days (TREE_MAX_AGE_DAYS)"
    fi
    if [ -n "$why" ]; then
        info "the $rel tree is $why"
        make_tree "$rel" "$dir"
        date -u +%FT%TZ >"$dir/.collectd-stap-made"
    else
        # Stale against the archive? Compare what the output depends on.
        local pkgs=(systemtap linux-headers-amd64 gcc) have want
        have=$(installed_versions "$dir" "${pkgs[@]}")
        want=$(candidate_versions "$rel" "${pkgs[@]}")
        if [ "$have" != "$want" ] && ! grep -q '=$' <<<"$want"; then
            info "the $rel tree is behind the archive (tree: $(tr '\n' ' ' <<<"$have"); archive: $(tr '\n' ' ' <<<"$want")); refreshing it in place"
            write_tree_sources "$rel" "$dir"
            tree_apt "$rel" "$dir" update
            tree_apt "$rel" "$dir" dist-upgrade
            # Headers of kernels the metapackage left behind (an explicit KVER's stay: manual).
            tree_apt "$rel" "$dir" autoremove --purge
            rm -f "$dir/var/cache/apt/archives/"*.deb
        elif [ -z "$(find "$dir/.collectd-stap-apt-updated" -mmin -$((TREE_CHECK_HOURS * 60)) 2>/dev/null)" ]; then
            # Keep the tree's own index fresh enough for apt-get download (debuginfo).
            tree_apt "$rel" "$dir" update
        fi
    fi

    local need=() p
    [ -n "$kver" ] && need+=("linux-headers-$kver")
    for p in $TREE_PACKAGES "${extra[@]}"; do need+=("$p"); done
    local missing=()
    for p in "${need[@]}"; do
        dpkg-query --admindir="$dir/var/lib/dpkg" -W -f '${Status}' "$p" 2>/dev/null | grep -q ' installed$' ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        tree_apt "$rel" "$dir" install "${missing[@]}"
        rm -f "$dir/var/cache/apt/archives/"*.deb
    fi
    [ -z "$kver" ] || [ -e "$dir/lib/modules/$kver/build/Makefile" ] ||
        die "the $rel tree has no kernel build tree for $kver after installing linux-headers-$kver"
    if [ ! -f "$stamp" ]; then
        {
            printf 'release=%s\nmade=%s\n' "$rel" "$(cat "$dir/.collectd-stap-made" 2>/dev/null)"
            installed_versions "$dir" systemtap linux-headers-amd64 gcc
        } >"$stamp.new"
        mv -f "$stamp.new" "$stamp"
        # The stamp's mtime is the tree's age (TREE_MAX_AGE_DAYS): refreshes do not rewrite it.
    fi
    flock -u 8
    printf '%s\n' "$dir"
}

run_tree() {
    local rel=$1 dir=$TREES/$1
    shift
    check_release "$rel"
    [ -f "$dir/.collectd-stap-tree" ] || die "no $rel tree at $dir: run '$0 ensure $rel' first"
    exec 8>"$TREES/$rel.lock"
    flock -s 8
    in_tree "$dir" "$@"
}

[ $# -ge 1 ] || { sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
cmd=$1
shift
case "$cmd" in
    host-release) host_release ;;
    kver) [ $# = 1 ] || die "usage: kver RELEASE"; kver_of "$1" ;;
    release-of)
        [ $# = 1 ] || die "usage: release-of KVER"
        release_of "$1" || die "no archive among the host's ($(host_release)) and ${RELEASES// /, } has linux-headers-$1 (set COLLECTD_STAP_RELEASES to look in others)" ;;
    ensure)
        [ $# -ge 1 ] || die "usage: ensure RELEASE [--kver KVER] [PKG...]"
        rel=$1; shift; kver=
        if [ "${1:-}" = --kver ]; then kver=$2; shift 2; fi
        ensure_tree "$rel" "$kver" "$@" ;;
    run)
        [ $# -ge 1 ] || die "usage: run RELEASE [--bind DIR]... -- CMD..."
        run_tree "$@" ;;
    -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (try --help)" ;;
esac
