#!/usr/bin/env bash
# Runs the Rego unit tests (policies/mcp/**/*_test.rego) with the pinned OPA:
# `opa check --strict`, `opa fmt --diff --fail`, `opa test` and a coverage gate.
#
#   bash scripts/test-policy.sh            # gate 90 %
#   MIN_COVERAGE=95 bash scripts/test-policy.sh
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"

POLICY_DIR="policies/mcp"
DATA_DIR="policies/data"
MIN_COVERAGE="${MIN_COVERAGE:-90}"
OPA="$(bash scripts/install-opa.sh)"

echo "test-policy: opa check --strict" >&2
"${OPA}" check --strict "${POLICY_DIR}" "${DATA_DIR}"

echo "test-policy: opa fmt --diff --fail" >&2
if ! "${OPA}" fmt --diff --fail "${POLICY_DIR}"; then
  echo "test-policy: Rego is not formatted; run: ${OPA} fmt -w ${POLICY_DIR}" >&2
  exit 1
fi

echo "test-policy: opa test" >&2
"${OPA}" test "${POLICY_DIR}" "${DATA_DIR}"

echo "test-policy: opa test --coverage (gate ${MIN_COVERAGE} %)" >&2
"${OPA}" test --coverage --threshold "${MIN_COVERAGE}" "${POLICY_DIR}" "${DATA_DIR}" >/tmp/opa-coverage.$$.json || {
  node -e '
    const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    console.error(`test-policy: coverage ${r.coverage}% is below the gate`);
    for (const [file, f] of Object.entries(r.files ?? {})) {
      for (const n of f.not_covered ?? []) console.error(`  not covered: ${file}:${n.start.row}-${n.end.row}`);
    }' /tmp/opa-coverage.$$.json || true
  rm -f /tmp/opa-coverage.$$.json
  exit 1
}
node -e '
  const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  console.log(`test-policy: coverage ${r.coverage}% (gate ${process.argv[2]} %)`);
' /tmp/opa-coverage.$$.json "${MIN_COVERAGE}"
rm -f /tmp/opa-coverage.$$.json
