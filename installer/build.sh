#!/usr/bin/env bash
# Build the frozen one-folder MedPrint with PyInstaller (Linux; the spec also serves Windows
# and macOS, run there as: python -m PyInstaller --noconfirm installer/medprint.spec).
#
# Usage: installer/build.sh [--archive] [DIST_DIR]   (default dist; the app lands in DIST_DIR/medprint)
#   --archive  also write DIST_DIR/medprint-VERSION-linux-ARCH.tar.gz to hand to IT
# Env:   PYTHON (default .venv/bin/python), MEDPRINT_BUILD_WORK (default build/pyinstaller)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
archive=0
if [ "${1:-}" = --archive ]; then archive=1; shift; fi
dist=${1:-dist}
work=${MEDPRINT_BUILD_WORK:-build/pyinstaller}

if ! "$python" -c "import PyInstaller" 2>/dev/null; then
  echo "build: PyInstaller is missing; install the test extras: $python -m pip install -e '.[test]'" >&2
  exit 2
fi
if [[ "$(uname -s)" == Linux ]] && ! command -v strip >/dev/null; then
  echo "build: 'strip' (binutils) is missing; install it: apt-get install binutils" >&2
  exit 2
fi

start=$(date +%s)
"$python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath "$dist" --workpath "$work" installer/medprint.spec
app="$dist/medprint"
# The desktop entry and icon travel with the app (install them with installer/install-desktop.sh).
cp installer/medprint.desktop installer/medprint.svg installer/medprint.png installer/install-desktop.sh "$app/"
echo "build: $app ($(du -sh "$app" | cut -f1), $(( $(date +%s) - start )) s)"
if [ "$archive" = 1 ]; then
  version=$("$python" -c "import sys; sys.path.insert(0, 'installer'); import buildlib; print(buildlib.app_version())")
  tarball="$dist/medprint-$version-linux-$(uname -m).tar.gz"
  tar -C "$dist" -czf "$tarball" medprint
  echo "build: $tarball ($(du -sh "$tarball" | cut -f1))"
fi
