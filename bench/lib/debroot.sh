# bench/lib/debroot.sh - a fresh Debian 12 root to run a check in, for
# bench/newcomer and bench/deb-install (sourced: ". bench/lib/debroot.sh").
#
#   debroot_init NAME     as root: debootstrap and friends installed, the
#                         mirror found; sets DEBROOT_WORK (bench/work/NAME,
#                         for logs) and DEBROOT (DEBROOT_WORK/root)
#   debroot_fresh         DEBROOT unpacked fresh from the cached tarball
#                         (made once by debootstrap --variant=minbase),
#                         resolv.conf copied, proc sys dev dev/pts mounted;
#                         debroot_cleanup runs on exit
#   debroot_no_daemons    a policy-rc.d that keeps packages' maintainer
#                         scripts from starting daemons (on the host's
#                         network) while they are installed
#   debroot_cleanup       kills what still runs inside (by PID), unmounts,
#                         removes DEBROOT
#
# The mirror is the one this machine's apt uses (its sources, read at run
# time). The tarball is bench/work/debroot/SUITE.tgz, shared by the checks:
# every run starts from an untouched system.
DEBROOT_SUITE=${DEBROOT_SUITE:-bookworm}
DEBROOT_BENCH=$(cd "$(dirname "$0")" && pwd)
DEBROOT_MOUNTED=""

debroot_die() {
    echo "$DEBROOT_NAME: $*" >&2
    exit 1
}

debroot_init() {
    DEBROOT_NAME=$1
    DEBROOT_WORK=$DEBROOT_BENCH/work/$1
    DEBROOT=$DEBROOT_WORK/root
    [ "$(id -u)" -eq 0 ] || debroot_die "run as root (debootstrap, chroot)"
    export DEBIAN_FRONTEND=noninteractive
    for p in debootstrap util-linux iproute2; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "$p" >/dev/null; }
    done
    # the mirror this machine's apt uses (deb822 or one-line sources)
    DEBROOT_MIRROR=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [ -n "$DEBROOT_MIRROR" ] || DEBROOT_MIRROR=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit} $1 == "deb" && $2 ~ /^\[/ {print $3; exit}' /etc/apt/sources.list 2>/dev/null)
    [ -n "$DEBROOT_MIRROR" ] || debroot_die "cannot tell which Debian mirror apt uses"
    mkdir -p "$DEBROOT_WORK" "$DEBROOT_BENCH/work/debroot"
}

debroot_fresh() {
    tgz=$DEBROOT_BENCH/work/debroot/$DEBROOT_SUITE.tgz
    log=$DEBROOT_WORK/debootstrap.log
    trap debroot_cleanup EXIT
    trap 'exit 1' INT TERM
    if [ ! -s "$tgz" ]; then
        echo "$DEBROOT_NAME: debootstrap $DEBROOT_SUITE (once; kept as $tgz)"
        rm -rf "$DEBROOT"
        debootstrap --variant=minbase --make-tarball="$tgz.tmp" "$DEBROOT_SUITE" "$DEBROOT" "$DEBROOT_MIRROR" >"$log" 2>&1 ||
            { tail -n 20 "$log"; rm -f "$tgz.tmp"; exit 1; }
        mv "$tgz.tmp" "$tgz"
    fi
    echo "$DEBROOT_NAME: a fresh $DEBROOT_SUITE root"
    rm -rf "$DEBROOT"
    debootstrap --variant=minbase --unpack-tarball="$tgz" "$DEBROOT_SUITE" "$DEBROOT" "$DEBROOT_MIRROR" >"$log" 2>&1 ||
        { tail -n 20 "$log"; exit 1; }
    cp /etc/resolv.conf "$DEBROOT/etc/resolv.conf"
    for m in proc sys dev dev/pts; do
        mkdir -p "$DEBROOT/$m"
        case $m in
        proc) mount -t proc proc "$DEBROOT/proc" ;;
        *) mount --bind "/$m" "$DEBROOT/$m" ;;
        esac
        DEBROOT_MOUNTED="$DEBROOT/$m $DEBROOT_MOUNTED"
    done
}

debroot_no_daemons() {
    printf '#!/bin/sh\n# bench: no daemons started by maintainer scripts in this root\nexit 101\n' \
        >"$DEBROOT/usr/sbin/policy-rc.d"
    chmod 755 "$DEBROOT/usr/sbin/policy-rc.d"
}

# Processes whose root is DEBROOT were started by the check: end them.
debroot_kill_inside() {
    [ -n "${DEBROOT:-}" ] && [ -d "$DEBROOT" ] || return 0
    real=$(cd "$DEBROOT" && pwd -P)
    for sig in TERM KILL; do
        found=0
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/root" 2>/dev/null)" = "$real" ] || continue
            kill -"$sig" "${p#/proc/}" 2>/dev/null && found=1
        done
        [ $found -eq 0 ] && return 0
        sleep 1
    done
}

debroot_cleanup() {
    debroot_kill_inside
    for m in $DEBROOT_MOUNTED; do umount -l "$m" 2>/dev/null || true; done
    DEBROOT_MOUNTED=""
    [ "${DEBROOT_KEEP:-0}" = 1 ] && { echo "$DEBROOT_NAME: kept $DEBROOT"; return 0; }
    [ -n "${DEBROOT:-}" ] && [ -d "$DEBROOT" ] || return 0
    # never remove through a mount that is still there (the host's /dev)
    if grep -q " $DEBROOT/" /proc/mounts; then
        echo "$DEBROOT_NAME: $DEBROOT still has mounts; not removed" >&2
        return 0
    fi
    rm -rf --one-file-system "$DEBROOT"
}
