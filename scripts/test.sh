#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls `npm test`, which runs this):
# installs what is missing, then static checks, schema checks, policy tests, and every
# node:test suite (unit, attack, integration) in one run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

# Setup and the release build must leave `git status` as it was (generated files are ignored,
# the lock file is never rewritten).
status_before="$(git status --porcelain)"

step "setup"
bash scripts/setup.sh

step "release build: bundles, tarball, CycloneDX SBOM, SHA-256 sums (npm run build)"
# (the images are built by their own step below, with the compose test)
MCP_GATEWAY_SKIP_SETUP=1 MCP_GATEWAY_SKIP_IMAGES=1 bash scripts/build.sh
status_after="$(git status --porcelain)"
if [[ "$status_before" != "$status_after" ]]; then
  echo "setup or the build changed the work tree (git status):" >&2
  diff <(echo "$status_before") <(echo "$status_after") >&2 || true
  exit 1
fi

step "dependency vulnerability gate (npm audit --omit=dev; accepted findings in security/vuln-allowlist.json)"
node --import tsx scripts/build/vuln-gate.ts

step "schema: buf lint, generated code up to date, buf breaking"
npx buf lint
npx buf generate
git diff --exit-code --stat -- proto/gen || { echo "proto/gen is stale: run npm run generate and commit" >&2; exit 1; }
if git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
  npx buf breaking --against ".git#ref=HEAD~1"
fi

step "API reference generated from the proto is up to date (docs/api/reference.md)"
bash scripts/gen-api-docs.sh --check

step "lint (biome) and type check (tsc --strict)"
npx biome check --error-on-warnings .
npx tsc -p tsconfig.json --noEmit
npx tsc -p console/tsconfig.json --noEmit   # the browser console (DOM types)

step "policy: opa check, fmt, test, coverage"
bash scripts/test-policy.sh

step "infra: promtool check/test rules, dashboards name real metrics"
bash scripts/check-infra.sh

step "infra/terraform: OpenTofu fmt/validate/test (module, OpenStack example), refusal messages, cloud-init schema"
bash scripts/test-terraform.sh

step "browser for the gRPC-Web end-to-end test (Debian chromium)"
bash scripts/install-browser.sh >/dev/null

step "python3 + cryptography for the independent audit verifier (scripts/audit/verify_chain.py)"
bash scripts/install-audit-verifier.sh

step "gRPC tools for the integration tests (pinned grpcurl and grpc-health-probe, from the Go module proxy)"
bash scripts/install-grpc-tools.sh >/dev/null

step "MCP conformance (server mode, @modelcontextprotocol/conformance against /mcp, with its baseline)"
bash scripts/install-conformance.sh
node --import tsx test/conformance/mcp-conformance.ts
# server-everything directly and as an upstream of the gateway: the gateway adds no failures
# beyond the gaps listed with their reasons in test/conformance/proxy-gaps.yml
node --import tsx test/conformance/proxy-conformance.ts

step "images (offline: debootstrap + podman) and the full-stack compose (podman-compose)"
bash scripts/test-compose.sh

step "node:test — unit, attack, integration and browser suites"
shopt -s globstar nullglob
files=(common/src/**/*.test.ts edge/src/**/*.test.ts runner/src/**/*.test.ts client/src/**/*.test.ts console/src/**/*.test.ts \
       cli/src/**/*.test.ts scripts/build/**/*.test.ts test/release/**/*.test.ts \
       test/attacks/**/*.test.ts test/integration/**/*.test.ts test/browser/**/*.test.ts)
node --import tsx --test --test-concurrency=1 --test-reporter=spec "${files[@]}"

step "attack suite again without prepared sandboxes (cold and prepared-launcher starts, ADR 0028)"
MCPG_ATTACKS_PREPARED_SANDBOXES=off node --import tsx --test --test-concurrency=1 --test-reporter=dot test/attacks/**/*.test.ts
