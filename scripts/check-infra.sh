#!/usr/bin/env bash
# Checks the observability assets under infra/ (no server is started, nothing listens):
#   1. promtool check rules   infra/prometheus/rules/*.yml
#   2. promtool test rules    infra/prometheus/tests/*.yml   (each alert fires and stays quiet)
#   3. promtool check config  infra/prometheus/prometheus.yml and infra/compose/prometheus-dev.yml
#                             (on copies whose TLS paths point at placeholder files, since
#                             promtool insists that they exist)
#   4. YAML syntax of infra/compose/*.yml and the Grafana provisioning files (when PyYAML exists)
#   5. node --test test/infra/dashboards.test.ts: every metric named by a Grafana panel or an
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

# check_config <prometheus.yml>: promtool check config on a copy in the scratch directory, with
# /etc/mcp-gateway/… (TLS files) pointed at empty placeholders and rules/ linked beside it.
check_config() {
  local src="$1" dir f
  dir="${SCRATCH}/config/$(basename "$(dirname "$src")")"
  mkdir -p "$dir"
  mapfile -t tls_files < <(grep -oE '/etc/mcp-gateway/[^"[:space:]]+' "$src" | sort -u || true)
  for f in "${tls_files[@]}"; do
    mkdir -p "${SCRATCH}$(dirname "$f")"
    : >"${SCRATCH}$f"
  done
  sed "s#/etc/mcp-gateway/#${SCRATCH}/etc/mcp-gateway/#g" "$src" >"$dir/prometheus.yml"
  ln -sfn "$ROOT/infra/prometheus/rules" "$dir/rules"
  "$PROMTOOL_BIN" check config "$dir/prometheus.yml"
}
log "promtool check config (TLS files replaced by placeholders)"
check_config infra/prometheus/prometheus.yml
check_config infra/compose/prometheus-dev.yml

# The compose file and Grafana provisioning are YAML that no tool here runs (no Docker engine, no
# Grafana); check at least that they parse, when PyYAML is at hand.
yaml_files=(infra/compose/*.yml infra/grafana/provisioning/*/*.yml)
if python3 -c 'import yaml' 2>/dev/null; then
  log "YAML syntax: ${yaml_files[*]}"
  python3 - "${yaml_files[@]}" <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    with open(path) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict):
        sys.exit(f"{path}: expected a mapping at the top level")
    print(f"  ok {path}")
PY
else
  log "NOTE: python3-yaml is not installed; the compose and Grafana provisioning YAML were not parsed (apt-get install python3-yaml)"
fi

log "dashboards and rules name only exported metrics"
node --import tsx --test test/infra/dashboards.test.ts

log "ok"
