#!/usr/bin/env bash
# Installs the MCP conformance suite and the Node.js 22 it needs into .tools/conformance,
# idempotently. The suite uses fs.globSync (Node >= 22); the gateway itself stays on the
# system Node 20 (ADR 0001). Node 22 comes from the npm `node` package (a binary shipped in a
# registry package), used only to run this test tool.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONFORMANCE_VERSION="0.1.16"
NODE_VERSION="22.23.3"
DIR="${ROOT}/.tools/conformance"
stamp="${DIR}/.stamp-${CONFORMANCE_VERSION}-${NODE_VERSION}"
if [[ -f "${stamp}" ]]; then exit 0; fi
mkdir -p "${DIR}"
echo "install-conformance: @modelcontextprotocol/conformance@${CONFORMANCE_VERSION} with node@${NODE_VERSION}" >&2
npm install --prefix "${DIR}" --engine-strict=false --no-audit --no-fund --loglevel=error --no-save \
  "@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}" "node@${NODE_VERSION}" >&2
"${DIR}/node_modules/.bin/node" --version | grep -q "^v${NODE_VERSION}$" || {
  echo "install-conformance: node ${NODE_VERSION} did not install" >&2
  exit 1
}
touch "${stamp}"
