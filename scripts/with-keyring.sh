#!/usr/bin/env bash
# Run a command with a private D-Bus session and an unlocked gnome-keyring (a real Secret Service).
# Usage: scripts/with-keyring.sh CMD [ARGS...]
set -euo pipefail
if [ -z "${MEDPRINT_IN_KEYRING_SESSION:-}" ]; then
  export MEDPRINT_IN_KEYRING_SESSION=1
  exec dbus-run-session -- "$0" "$@"
fi
keyring_home=$(mktemp -d)
export XDG_DATA_HOME="$keyring_home/data" XDG_RUNTIME_DIR="$keyring_home/run"
mkdir -p "$XDG_DATA_HOME" "$XDG_RUNTIME_DIR"; chmod 700 "$XDG_RUNTIME_DIR"
eval "$(printf 'medprint-test\n' | gnome-keyring-daemon --unlock --components=secrets)"
export GNOME_KEYRING_CONTROL
trap 'rm -rf "$keyring_home"' EXIT
"$@"
