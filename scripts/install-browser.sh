#!/usr/bin/env bash
# Installs a headless-capable Chromium for the browser end-to-end test (test/browser), idempotently.
# Uses Debian's `chromium` package (no Playwright browser download: the test drives the system
# binary through playwright-core with executablePath). Prints the binary path on stdout.
set -euo pipefail

log() { printf '\033[1minstall-browser:\033[0m %s\n' "$*" >&2; }
BIN=/usr/bin/chromium

if [[ -x "$BIN" ]] && dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q "install ok installed"; then
  echo "$BIN"
  exit 0
fi

SUDO=""
if (( EUID != 0 )); then SUDO="sudo"; fi
# The package list may not know chromium yet (fresh images ship without lists).
if ! apt-cache show chromium >/dev/null 2>&1 || [[ -z "$(apt-cache policy chromium | awk '/Candidate:/ {print $2}' | grep -v '(none)')" ]]; then
  log "apt-get update"
  $SUDO apt-get update -qq
fi
log "installing chromium (apt)"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

if [[ ! -x "$BIN" ]]; then
  log "chromium was installed but $BIN is missing"
  exit 1
fi
log "$("$BIN" --version 2>/dev/null || echo "chromium installed")"
echo "$BIN"
