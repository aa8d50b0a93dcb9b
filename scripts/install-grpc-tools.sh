#!/usr/bin/env bash
# Installs the pinned gRPC command-line tools the integration tests drive, as a gRPC user
# would: grpcurl (reflection, calls) and grpc-health-probe (what Kubernetes exec probes run).
# Prints the directory holding both binaries on stdout (last line).
#
#   BIN="$(bash scripts/install-grpc-tools.sh)"; "$BIN/grpcurl" -version
#
# Idempotent: nothing is built when <repo>/.tools/bin already has the pinned versions
# (recorded in a stamp file beside each binary, since grpc-health-probe has no version flag).
# Otherwise `go install <module>@<pin>` into <repo>/.tools/bin (gitignored); only the Go
# module proxy is needed and CGO is off, so no C toolchain is required.
set -euo pipefail

GRPCURL_VERSION="v1.9.4"
GRPC_HEALTH_PROBE_VERSION="v0.4.63"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_BIN="${REPO_ROOT}/.tools/bin"

log() { printf 'install-grpc-tools: %s\n' "$*" >&2; }

# install <binary name> <go package> <version>
install() {
  local name="$1" pkg="$2" version="$3"
  local stamp="${TOOLS_BIN}/.${name}.version"
  if [[ -x "${TOOLS_BIN}/${name}" && -f "${stamp}" && "$(cat "${stamp}")" == "${pkg}@${version}" ]]; then
    log "using ${TOOLS_BIN}/${name} (${version})"
    return
  fi
  if ! command -v go >/dev/null 2>&1; then
    log "ERROR: ${name} ${version} is not installed and Go is missing; install Go (>= 1.24)"
    exit 1
  fi
  log "installing ${pkg}@${version} into ${TOOLS_BIN}"
  mkdir -p "${TOOLS_BIN}"
  rm -f "${stamp}"
  GOBIN="${TOOLS_BIN}" CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -trimpath" go install "${pkg}@${version}" >&2
  [[ -x "${TOOLS_BIN}/${name}" ]] || { log "ERROR: go install did not produce ${TOOLS_BIN}/${name}"; exit 1; }
  echo "${pkg}@${version}" >"${stamp}"
}

install grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "${GRPCURL_VERSION}"
install grpc-health-probe github.com/grpc-ecosystem/grpc-health-probe "${GRPC_HEALTH_PROBE_VERSION}"
echo "${TOOLS_BIN}"
