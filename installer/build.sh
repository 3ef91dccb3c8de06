#!/usr/bin/env bash
# Build the frozen one-folder MedPrint with PyInstaller (Linux; the spec also serves Windows
# and macOS, run there as: python -m PyInstaller --noconfirm installer/medprint.spec).
#
# Usage: installer/build.sh [DIST_DIR]       (default: dist; the app lands in DIST_DIR/medprint)
# Env:   PYTHON (default .venv/bin/python), MEDPRINT_BUILD_WORK (default build/pyinstaller)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
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
cp installer/medprint.desktop installer/medprint.svg installer/medprint.png "$app/" 2>/dev/null || true
echo "build: $app ($(du -sh "$app" | cut -f1), $(( $(date +%s) - start )) s)"
