#!/usr/bin/env bash
# Checks the observability assets under infra/ (no server is started, nothing listens):
#   1. promtool check rules   infra/prometheus/rules/*.yml
#   2. promtool test rules    infra/prometheus/tests/*.yml   (each alert fires and stays quiet)
#   3. promtool check config  infra/prometheus/prometheus.yml (on a copy whose TLS paths point
#                             at placeholder files, since promtool insists that they exist)
#   4. node --test test/infra/dashboards.test.ts: every metric named by a Grafana panel or an
#      alert rule is one the code really exports.
#
#   bash scripts/check-infra.sh            # CI and local; idempotent
#
# promtool comes from Debian's `prometheus` package (2.42 in bookworm). Order of preference:
#   $PROMTOOL if set; `promtool` on PATH; <repo>/.tools/bin/promtool; otherwise the package is
#   fetched with `apt-get download prometheus` (running `apt-get update` first if apt does not
#   know it) and only /usr/bin/promtool is unpacked into <repo>/.tools/bin. The package is not
#   installed with `apt-get install` on purpose: its maintainer scripts enable and start a
#   Prometheus server (systemd unit / init script), which a check must not do.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TOOLS_BIN="${ROOT}/.tools/bin"
log() { printf 'check-infra: %s\n' "$*" >&2; }
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
chmod 0755 "$SCRATCH" # apt-get download (as _apt) must reach the deb/ subdirectory

# apt_knows_prometheus → true when apt has an installable candidate for the package.
apt_knows_prometheus() {
  local policy
  policy="$(apt-cache policy prometheus 2>/dev/null || true)"
  [[ "$policy" =~ Candidate:\ [0-9] ]]
}

as_root() {
  if (( EUID == 0 )); then "$@"; else sudo "$@"; fi
}

# find_promtool → prints the path of a working promtool, or nothing.
find_promtool() {
  local candidate
  for candidate in "${PROMTOOL:-}" "$(command -v promtool 2>/dev/null || true)" "${TOOLS_BIN}/promtool"; do
    if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" --version >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
}

install_promtool() {
  command -v apt-get >/dev/null || { log "ERROR: promtool is missing and apt-get is not available; install Prometheus 2.x's promtool and set \$PROMTOOL"; exit 1; }
  if ! apt_knows_prometheus; then
    log "apt does not know the prometheus package yet: apt-get update"
    as_root apt-get update -qq
  fi
  if ! apt_knows_prometheus; then
    log "ERROR: no installable 'prometheus' package in the apt sources (Debian/Ubuntu main has it)"
    exit 1
  fi
  local work="${SCRATCH}/deb"
  mkdir -p "$work"
  # apt-get download runs as the _apt user when it can: let it write into the scratch directory.
  chmod 0777 "$work"
  log "fetching Debian's prometheus package to unpack promtool into ${TOOLS_BIN}"
  (cd "$work" && apt-get download -q prometheus >&2)
  dpkg-deb --fsys-tarfile "$work"/prometheus_*.deb | tar -x -C "$work" ./usr/bin/promtool
  mkdir -p "$TOOLS_BIN"
  install -m 0755 "$work/usr/bin/promtool" "$TOOLS_BIN/promtool.tmp"
  mv -f "$TOOLS_BIN/promtool.tmp" "$TOOLS_BIN/promtool"
}

PROMTOOL_BIN="$(find_promtool || true)"
if [[ -z "$PROMTOOL_BIN" ]]; then
  install_promtool
  PROMTOOL_BIN="$(find_promtool || true)"
  [[ -n "$PROMTOOL_BIN" ]] || { log "ERROR: promtool still not runnable after install"; exit 1; }
fi
log "using $("$PROMTOOL_BIN" --version 2>&1 | head -n1) at ${PROMTOOL_BIN}"

shopt -s nullglob
rules=(infra/prometheus/rules/*.yml)
tests=(infra/prometheus/tests/*.yml)
(( ${#rules[@]} > 0 )) || { log "ERROR: no rule files in infra/prometheus/rules"; exit 1; }
(( ${#tests[@]} > 0 )) || { log "ERROR: no rule unit tests in infra/prometheus/tests"; exit 1; }

log "promtool check rules"
"$PROMTOOL_BIN" check rules "${rules[@]}"

log "promtool test rules"
"$PROMTOOL_BIN" test rules "${tests[@]}"

log "promtool check config (TLS files replaced by placeholders)"
scratch="${SCRATCH}/config"
mkdir -p "$scratch"
mapfile -t tls_files < <(grep -oE '/etc/mcp-gateway/[^"[:space:]]+' infra/prometheus/prometheus.yml | sort -u)
for f in "${tls_files[@]}"; do
  mkdir -p "$scratch$(dirname "$f")"
  : >"$scratch$f"
done
sed "s#/etc/mcp-gateway/#${scratch}/etc/mcp-gateway/#g" infra/prometheus/prometheus.yml >"$scratch/prometheus.yml"
ln -s "$ROOT/infra/prometheus/rules" "$scratch/rules"
"$PROMTOOL_BIN" check config "$scratch/prometheus.yml"

log "dashboards and rules name only exported metrics"
node --import tsx --test test/infra/dashboards.test.ts

log "ok"
