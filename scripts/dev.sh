#!/usr/bin/env bash
# Quick start: installs what is missing, then runs the edge and one local runner on embedded
# defaults (dev CA, signing key and SQLite store in ./.data, created on first start).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec node "$ROOT/cli/bin/mcp-gateway.js" dev "$@"
