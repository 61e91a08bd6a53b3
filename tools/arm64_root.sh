#!/usr/bin/env bash
# An arm64 Debian 12 root that runs on an x86_64 host under qemu-user, for
# building (tools/build_wheel.sh --arch aarch64) and testing
# (tools/ci_aarch64.sh) roipool's aarch64 wheel. Sourced, not run:
#
#   source tools/arm64_root.sh
#   arm64_root DIR [DEBIAN_PACKAGE...]   # make DIR (or reuse it), mounted
#   arm64_run DIR CMD...                 # CMD inside, as root, with /work = $ARM64_WORK
#   arm64_umount DIR
#
# Needs root, debootstrap and qemu-user-static (installed with apt-get when
# missing). The Debian base is debootstrapped once into $ARM64_CACHE
# (default /var/cache/roipool/arm64-bookworm, outside any checkout) and copied
# for each root, from the Debian mirror of the host's apt sources
# (arm64_host_mirror); a root records its extra packages and is rebuilt when
# they change. pip inside reaches the same registries as the host: the host's CA
# bundle, resolver and pip configuration are copied in.

ARM64_SUITE=bookworm

# The Debian mirror this machine's apt uses: the first source (a deb822
# `URIs:` stanza or a one-line `deb [options] URI SUITE ...`) of the suite
# the root is made of or of the host's own Debian release, so the root is
# fetched from where the host's packages come from (third-party repositories
# name other suites). ARM64_MIRROR overrides it.
arm64_host_mirror() {
    local codename f
    codename=$( . /etc/os-release 2>/dev/null && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}")
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk -v want="$ARM64_SUITE" -v host="$codename" '
            function ours(suites,   n, i, s) {
                n = split(suites, s, " ")
                for (i = 1; i <= n; i++) if (s[i] == want || (host != "" && s[i] == host)) return 1
                return 0
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { uri = ""; suites = ""; next }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { suites = $0; sub(/^[^:]*:/, "", suites) }
            uri != "" && suites != "" && ours(suites) { print uri; exit }
            $1 == "deb" {
                i = 2
                if ($2 ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
                if (ours($(i + 1))) { print $i; exit }
            }' "$f"
    done | head -n 1
}
ARM64_MIRROR=${ARM64_MIRROR:-$(arm64_host_mirror)}
ARM64_CACHE=${ARM64_CACHE:-/var/cache/roipool/arm64-$ARM64_SUITE}
# python3-venv: the venv the wheel goes into; nothing here compiles.
ARM64_BASE_PKGS=python3,python3-venv,ca-certificates
ARM64_PIP_CONFIG=(/etc/pip.conf /etc/xdg/pip /root/.config/pip /root/.pip)

arm64_die() { echo "arm64_root: ERROR: $*" >&2; exit 1; }

arm64_host_tools() {
    [ "$(id -u)" = 0 ] || arm64_die "needs root (debootstrap, mount, chroot)"
    local need=()
    command -v debootstrap >/dev/null || need+=(debootstrap)
    [ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static binfmt-support)
    command -v update-binfmts >/dev/null || need+=(binfmt-support)
    if [ ${#need[@]} -gt 0 ]; then
        echo "   apt-get install ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" \
            >/dev/null || arm64_die "apt-get install ${need[*]} failed"
    fi
    # The kernel runs arm64 binaries through qemu once binfmt_misc knows it.
    [ -e /proc/sys/fs/binfmt_misc/register ] \
        || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
        || arm64_die "cannot mount binfmt_misc"
    [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null \
        || arm64_die "update-binfmts --enable qemu-aarch64 failed"
    grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
        || arm64_die "binfmt_misc has qemu-aarch64 disabled"
}

arm64_base() {  # the cached debootstrap, made once
    [ -f "$ARM64_CACHE/.roipool-base-ok" ] && return 0
    [ -n "$ARM64_MIRROR" ] || arm64_die "no Debian mirror in /etc/apt/sources*; set ARM64_MIRROR"
    echo "   debootstrap --arch=arm64 $ARM64_SUITE -> $ARM64_CACHE (a few minutes, once)"
    rm -rf "$ARM64_CACHE"
    mkdir -p "$(dirname "$ARM64_CACHE")"
    debootstrap --arch=arm64 --variant=minbase --include="$ARM64_BASE_PKGS" \
        "$ARM64_SUITE" "$ARM64_CACHE" "$ARM64_MIRROR" >"$ARM64_CACHE.log" 2>&1 \
        || { tail -20 "$ARM64_CACHE.log" >&2; arm64_die "debootstrap failed (log $ARM64_CACHE.log)"; }
    touch "$ARM64_CACHE/.roipool-base-ok"
}

arm64_mount() {
    local d=$1
    mountpoint -q "$d/proc" || mount -t proc proc "$d/proc"
    # sysfs: what a real machine has (the L2 size query reads it on aarch64)
    mountpoint -q "$d/sys" || mount --bind /sys "$d/sys"
    mountpoint -q "$d/dev" || mount --bind /dev "$d/dev"
    mkdir -p "$d/work"
    if [ -n "${ARM64_WORK:-}" ] && ! mountpoint -q "$d/work"; then
        mount --bind "$ARM64_WORK" "$d/work"
    fi
}

arm64_umount() {
    local d=$1 m
    for m in work dev sys proc; do
        if mountpoint -q "$d/$m"; then umount "$d/$m" || umount -l "$d/$m"; fi
    done
}

arm64_root() {  # DIR [DEBIAN_PACKAGE...]
    local d=$1; shift
    local want="base:$ARM64_BASE_PKGS extra:$*"
    arm64_host_tools
    if [ ! -f "$d/.roipool-root" ] || [ "$(cat "$d/.roipool-root")" != "$want" ]; then
        arm64_base
        arm64_umount "$d" 2>/dev/null || true
        rm -rf "$d"
        mkdir -p "$(dirname "$d")"
        cp -a "$ARM64_CACHE" "$d"
        arm64_mount "$d"
        if [ $# -gt 0 ]; then
            echo "   apt-get install (arm64, emulated): $*"
            cp /etc/resolv.conf "$d/etc/resolv.conf"
            chroot "$d" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq --no-install-recommends $* >/dev/null" \
                || arm64_die "apt-get install $* in $d failed"
            chroot "$d" apt-get clean
        fi
        echo "$want" >"$d/.roipool-root"
    fi
    arm64_mount "$d"
    # What pip needs to reach the registries, refreshed from the host each time.
    cp /etc/resolv.conf "$d/etc/resolv.conf"
    cp /etc/ssl/certs/ca-certificates.crt "$d/etc/ssl/certs/ca-certificates.crt"
    local p
    for p in "${ARM64_PIP_CONFIG[@]}"; do
        if [ -e "$p" ]; then
            mkdir -p "$d$(dirname "$p")"
            rm -rf "${d:?}$p"
            cp -a "$p" "$d$p"
        fi
    done
}

# Run CMD... in the root with the host's pip environment (PIP_*), nothing else.
arm64_run() {
    local d=$1; shift
    local envs=(HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8)
    local v
    while IFS= read -r v; do envs+=("$v"); done < <(env | grep -E '^(PIP_|ROIPOOL_|OMP_)' || true)
    chroot "$d" /usr/bin/env -i "${envs[@]}" "$@"
}
