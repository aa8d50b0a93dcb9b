#!/usr/bin/env bash
# Installs the pinned OPA CLI and prints the absolute path of the binary on stdout (last line).
#
#   OPA="$(bash scripts/install-opa.sh)"
#
# Order of preference (idempotent; nothing is downloaded when a matching binary exists):
#   1. $OPA_BIN if set and its version matches the pin;
#   2. `opa` on PATH if `opa version` matches the pin;
#   3. <repo>/.tools/bin/opa if it matches;
#   4. otherwise `go install github.com/open-policy-agent/opa@v$OPA_VERSION` into <repo>/.tools/bin
#      (only the Go module proxy is needed; CGO is off, so no C toolchain is required).
#
# The pin is chosen so that `opa build -t wasm` emits ABI 1.2 modules, which
# @open-policy-agent/opa-wasm 1.10.0 (node_modules) loads.
set -euo pipefail

OPA_VERSION="1.22.2"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_BIN="${REPO_ROOT}/.tools/bin"

log() { printf 'install-opa: %s\n' "$*" >&2; }

# version_of <binary> → prints the bare version ("1.22.2") or nothing.
version_of() {
  "$1" version 2>/dev/null | awk -F': ' '/^Version:/ { print $2; exit }'
}

matches() {
  [[ -x "$1" ]] && [[ "$(version_of "$1")" == "${OPA_VERSION}" ]]
}

if [[ -n "${OPA_BIN:-}" ]] && matches "${OPA_BIN}"; then
  log "using \$OPA_BIN ${OPA_BIN} (v${OPA_VERSION})"
  echo "${OPA_BIN}"
  exit 0
fi

if on_path="$(command -v opa 2>/dev/null)" && matches "${on_path}"; then
  log "using opa on PATH: ${on_path} (v${OPA_VERSION})"
  echo "${on_path}"
  exit 0
fi

if matches "${TOOLS_BIN}/opa"; then
  log "using ${TOOLS_BIN}/opa (v${OPA_VERSION})"
  echo "${TOOLS_BIN}/opa"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "ERROR: OPA v${OPA_VERSION} is not installed and Go is missing; install Go >= 1.26 or put opa v${OPA_VERSION} on PATH"
  exit 1
fi

log "installing github.com/open-policy-agent/opa@v${OPA_VERSION} into ${TOOLS_BIN} (takes a few minutes the first time)"
mkdir -p "${TOOLS_BIN}"
GOBIN="${TOOLS_BIN}" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath" \
  go install "github.com/open-policy-agent/opa@v${OPA_VERSION}" >&2

if ! matches "${TOOLS_BIN}/opa"; then
  log "ERROR: ${TOOLS_BIN}/opa does not report version ${OPA_VERSION} after go install"
  exit 1
fi
log "installed ${TOOLS_BIN}/opa (v${OPA_VERSION})"
echo "${TOOLS_BIN}/opa"
