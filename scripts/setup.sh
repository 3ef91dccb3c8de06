#!/usr/bin/env bash
# Set up MedPrint on a fresh Debian machine: system packages (when missing), .venv, the package.
# Usage: scripts/setup.sh [app|test]   (test also installs the test extras and the test peers)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-app}

apt_packages=(
  python3-venv libgl1 libegl1 libglu1-mesa libxrender1 libxkbcommon-x11-0 libxcb-cursor0
  libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0
  libxcb-randr0 libxcb-xfixes0 libxcb-xkb1 libfontconfig1 libdbus-1-3 fonts-dejavu-core
  gnome-keyring dbus
)
if [ "$mode" = test ]; then
  # passwd (useradd), dbus-bin (dbus-send), util-linux (runuser): tests/multiuser
  apt_packages+=(xvfb xauth prusa-slicer binutils desktop-file-utils passwd dbus-bin util-linux)
  # a real PACS and the DICOM reference client: tests/pacs, benchmarks/bench_pacs.py
  apt_packages+=(orthanc orthanc-dicomweb dcmtk)
  # PDF rendering and text for the review report tests (tests/review)
  apt_packages+=(poppler-utils)
  # a real headless browser renders the package's HTML QA report (tests/review)
  apt_packages+=(chromium)
fi

missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "setup: installing system packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.medprint-$mode-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$mode" = test ]; then
    .venv/bin/python -m pip install -q -e '.[test,dev]'
  else
    .venv/bin/python -m pip install -q -e .
  fi
  touch "$stamp"
fi
