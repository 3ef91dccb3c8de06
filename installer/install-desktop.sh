#!/usr/bin/env bash
# Register a frozen MedPrint with the Linux desktop: menu entry and icon.
#
# Usage: installer/install-desktop.sh APP_DIR [--system]
#   APP_DIR   the built one-folder app (the folder holding the `medprint` executable),
#             e.g. /opt/medprint after copying dist/medprint there
#   --system  install for every user (/usr/share; needs root) instead of ~/.local/share
# Env: XDG_DATA_HOME overrides ~/.local/share for a per-user install.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
app_dir=${1:?usage: install-desktop.sh APP_DIR [--system]}
app_dir=$(cd "$app_dir" && pwd)
[ -x "$app_dir/medprint" ] || { echo "install-desktop: $app_dir/medprint not found; build it first (installer/build.sh)" >&2; exit 2; }
if [ "${2:-}" = --system ]; then
  share=/usr/share
else
  share=${XDG_DATA_HOME:-$HOME/.local/share}
fi
# The desktop entry and icons ship inside the app folder; fall back to the source tree.
src=$app_dir; [ -f "$src/medprint.desktop" ] || src=$here

mkdir -p "$share/applications" "$share/icons/hicolor/scalable/apps" "$share/icons/hicolor/256x256/apps"
case "$app_dir" in *[\"\`\$\\\|\&]*) echo "install-desktop: move the app to a folder whose path has no quotes, \$, \\, | or &" >&2; exit 2;; esac
sed -e "s|^Exec=.*|Exec=\"$app_dir/medprint\"|" -e "s|^TryExec=.*|TryExec=$app_dir/medprint|" \
  "$src/medprint.desktop" > "$share/applications/medprint.desktop"
install -m 644 "$src/medprint.svg" "$share/icons/hicolor/scalable/apps/medprint.svg"
install -m 644 "$src/medprint.png" "$share/icons/hicolor/256x256/apps/medprint.png"
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$share/applications/medprint.desktop"
fi
command -v update-desktop-database >/dev/null && update-desktop-database -q "$share/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
echo "install-desktop: MedPrint added to the applications menu ($share/applications/medprint.desktop)"
