#!/bin/sh
# deps.sh - install the Debian packages Postern needs to build and test.
# As root: installs what is missing. Otherwise: prints the apt-get line and
# fails. Add a package here when code or tests start to need it.
set -u

BUILD="gcc make libevent-dev libldns-dev libdb5.3-dev libssl-dev libcrypt-dev"
TEST="perl python3 python3-dkim python3-nacl libnet-dns-perl libio-socket-ssl-perl libnet-ssleay-perl libjson-perl swaks nsd openssl procps iproute2 strace prometheus mandoc man-db ldnsutils dns-root-data"
FUZZ="clang libclang-rt-14-dev"
FORMAT="clang-format"
# make deb (tools/deb.sh) and its check (t/integration/deb_package.t)
DEB="debhelper dpkg-dev lintian"
ALL="$BUILD $TEST $FUZZ $FORMAT $DEB"

missing=""
for p in $ALL; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)
    case "$st" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
    esac
done

if [ -z "$missing" ]; then
    echo "deps: all build and test packages are installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages:$missing"
    echo "deps: run as root:"
    echo "  apt-get update && apt-get install -y --no-install-recommends$missing"
    exit 1
fi

echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q || exit 1
# nsd's and prometheus's packages start system daemons; Postern's tests
# start their own (metrics.t: promtool and a Prometheus on loopback).
apt-get install -y -q --no-install-recommends $missing || exit 1
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now nsd >/dev/null 2>&1 || true
    systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
exit 0
