#!/usr/bin/env bash
# Debian's Chromium, the browser the UI tests drive through Playwright (never a downloaded one).
#   scripts/chromium.sh install    install it when missing (root or sudo, once)
#   scripts/chromium.sh path       print the executable's path; exit 1 when it is not installed
set -euo pipefail

path() {
  local candidate
  for candidate in "${CHROMIUM_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    [[ -n "$candidate" && -x "$candidate" ]] && { echo "$candidate"; return 0; }
  done
  return 1
}

install() {
  path >/dev/null && return 0
  echo "installing Debian's chromium" >&2
  local sudo=()
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
  path >/dev/null
}

case "${1:-}" in
  install) install ;;
  path) path ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
