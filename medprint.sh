#!/usr/bin/env bash
# MedPrint on a fresh Debian machine, in one command:
#   ./medprint.sh          set up (system packages, .venv) and start the app
#   ./medprint.sh test     set up with the test extras and run the whole test suite
#   ./medprint.sh ARGS...  set up and run `medprint ARGS...` (e.g. ./medprint.sh demo out/)
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = test ]; then
  shift
  exec scripts/run-tests.sh "$@"
fi
scripts/setup.sh app
exec .venv/bin/medprint "$@"
