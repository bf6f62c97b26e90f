#!/bin/sh
# deb.sh - "make deb": the Debian package postern_VERSION_ARCH.deb, built
# with Debian's own tools (dpkg-buildpackage, debhelper; "make deps"
# installs them) from debian/, and left in the tree's top folder.
#
# It builds in a copy of the tree (build/deb/postern-VERSION: the files
# as they are, uncommitted changes included, without build/, bin/, run/,
# bench/work/ or .git), so the package is built from nothing with
# Debian's flags and dpkg-buildpackage writes next to the copy, not into
# the tree's parent. The version is POSTERN_VERSION and must be the one
# debian/changelog names. docs/debian.md says what the package holds.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

for t in dpkg-buildpackage dh dpkg-parsechangelog; do
    command -v "$t" >/dev/null 2>&1 || {
        echo "deb: $t not found: run make deps (debhelper, dpkg-dev)" >&2
        exit 1
    }
done

version=$(sed -n 's/^#define POSTERN_VERSION "\(.*\)"/\1/p' common/mail/proto.h)
changelog=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "$version" != "$changelog" ]; then
    echo "deb: POSTERN_VERSION is $version but debian/changelog is at $changelog:" \
        "add an entry for $version to debian/changelog" >&2
    exit 1
fi
arch=$(dpkg-architecture -q DEB_HOST_ARCH)
deb=postern_${version}_$arch.deb

out=$top/build/deb
src=$out/postern-$version
rm -rf "$out"
mkdir -p "$src"
tar -cf - --exclude=./build --exclude=./bin --exclude=./run --exclude=./bench/work \
    --exclude=./.git --exclude='./postern_*.deb' --exclude=./debian/postern --exclude=./debian/.debhelper \
    --exclude=./debian/files --exclude='./debian/*.substvars' --exclude=./debian/debhelper-build-stamp \
    . | tar -xf - -C "$src"

echo "deb: building $deb in $src (log: $out/build.log)"
jobs=$(nproc 2>/dev/null || echo 1)
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1; then
    tail -n 40 "$out/build.log" >&2
    echo "deb: dpkg-buildpackage failed (log: $out/build.log)" >&2
    exit 1
fi
cp "$out/$deb" "$top/$deb"
echo "deb: $deb"
