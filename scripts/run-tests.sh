#!/usr/bin/env bash
# The whole test suite: lint, the Qt-free-core import contract, then pytest with a real
# Secret Service (private D-Bus + gnome-keyring) and a virtual display (Xvfb) for tests/ui.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check --quiet . || { echo "ruff format: run '.venv/bin/ruff format .'"; exit 1; }
.venv/bin/lint-imports --no-cache
mkdir -p test-artifacts
export QT_QPA_PLATFORM=xcb PYVISTA_OFF_SCREEN=false
exec scripts/with-keyring.sh xvfb-run -a -s "-screen 0 1600x1000x24" \
  .venv/bin/python -m pytest -p no:cacheprovider "$@"
