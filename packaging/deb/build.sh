#!/usr/bin/env bash
# Builds openshell_<version>_<arch>.deb into OUTDIR with dpkg-buildpackage, from a copy of the
# source tree under OUTDIR/src (the checkout itself stays clean). Needs debhelper and the
# Build-Depends of packaging/deb/debian/control (.ci/install-deps has them all).
#
#   packaging/deb/build.sh OUTDIR [VERSION]
#
# VERSION builds it as that version instead of the changelog's (an entry on top, in the copy):
# how the system test makes an upgrade. The copy is kept and refreshed (unchanged files keep
# their times) and its CMake tree is kept, so a rebuild compiles only what changed.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "${1:?usage: packaging/deb/build.sh OUTDIR [VERSION]}"
out=$(cd "$1" && pwd)
mkdir -p "$out/src"
# Everything but the CMake tree goes: a file deleted here is deleted there too, and debhelper's
# records of what it did (under debian/) go, so that every step runs again.
find "$out/src" -mindepth 1 -maxdepth 1 ! -name 'obj-*' -exec rm -rf {} +
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  # Tracked and new files (not ignored ones, not deleted ones).
  git -C "$src" ls-files -z --cached --others --exclude-standard |
    (cd "$src" && xargs -0 -r ls -d 2>/dev/null) |
    tar -C "$src" -T - -cf - | tar -C "$out/src" -xf -
else
  tar -C "$src" --exclude=./build --exclude=./debian --exclude='./obj-*' -cf - . |
    tar -C "$out/src" -xf -
fi
ln -sfn packaging/deb/debian "$out/src/debian"
cd "$out/src"
if [[ -n ${2:-} ]]; then
  {
    printf 'openshell (%s) unstable; urgency=medium\n\n  * Built as %s.\n\n' "$2" "$2"
    printf ' -- openshell developers <openshell@example.org>  %s\n\n' "$(date -R)"
    cat debian/changelog
  } >debian/changelog.new
  mv debian/changelog.new debian/changelog
fi
version=$(dpkg-parsechangelog -S Version)
rm -f "$out"/openshell_"$version"_*
dpkg-buildpackage -us -uc -b -nc
ls "$out"/openshell_"$version"_*.deb
