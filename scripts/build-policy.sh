#!/usr/bin/env bash
# Builds the policy bundle policies/build/bundle.tar.gz (wasm target) from
# policies/mcp/**/*.rego and policies/data/*.json.
#
#   bash scripts/build-policy.sh            # check, format-check and build
#   OUT=/tmp/b.tar.gz bash scripts/build-policy.sh
#
# Steps:
#   1. installs/locates the pinned OPA CLI (scripts/install-opa.sh);
#   2. writes policies/build/capabilities.json: the builtins that
#      @open-policy-agent/opa-wasm (node_modules) can run, plus the language
#      features of the pinned OPA, so a policy using an unsupported builtin
#      fails here, at build time, not at run time;
#   3. `opa check --strict` and `opa fmt --diff --fail` (fails on any diff);
#   4. `opa build -t wasm -e mcp/authz/decision --revision <sha256 of sources>`.
# The revision is a hash of every source file (rego + data), so the edge and the
# runner can tell whether they hold the same bundle.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${REPO_ROOT}"

POLICY_DIR="policies/mcp"
DATA_DIR="policies/data"
BUILD_DIR="policies/build"
OUT="${OUT:-${BUILD_DIR}/bundle.tar.gz}"
ENTRYPOINTS=("mcp/authz/decision")
SDK_CAPS="node_modules/@open-policy-agent/opa-wasm/capabilities.json"

OPA="$(bash scripts/install-opa.sh)"
mkdir -p "${BUILD_DIR}" "$(dirname "${OUT}")"

if [[ ! -f "${SDK_CAPS}" ]]; then
  echo "build-policy: ${SDK_CAPS} is missing; run npm ci first" >&2
  exit 1
fi

# Capabilities = SDK builtins + current OPA language features.
CAPS="${BUILD_DIR}/capabilities.json"
"${OPA}" capabilities --current >"${BUILD_DIR}/opa-current-capabilities.json"
node -e '
const fs = require("node:fs");
const [sdkPath, curPath, outPath] = process.argv.slice(1);
const sdk = JSON.parse(fs.readFileSync(sdkPath, "utf8"));
const cur = JSON.parse(fs.readFileSync(curPath, "utf8"));
const out = {
  builtins: sdk.builtins,
  future_keywords: cur.future_keywords ?? [],
  features: cur.features ?? [],
  wasm_abi_versions: sdk.wasm_abi_versions,
};
fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + "\n");
' "${SDK_CAPS}" "${BUILD_DIR}/opa-current-capabilities.json" "${CAPS}"

echo "build-policy: opa check --strict" >&2
"${OPA}" check --strict --capabilities "${CAPS}" --ignore '*_test.rego' "${POLICY_DIR}" "${DATA_DIR}"

echo "build-policy: opa fmt --diff --fail" >&2
if ! "${OPA}" fmt --diff --fail "${POLICY_DIR}"; then
  echo "build-policy: Rego is not formatted; run: ${OPA} fmt -w ${POLICY_DIR}" >&2
  exit 1
fi

# Revision: sha256 over the sorted source files (names and contents).
REVISION="$(
  find "${POLICY_DIR}" "${DATA_DIR}" -type f \( -name '*.rego' -o -name '*.json' \) ! -name '*_test.rego' -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
)"

echo "build-policy: opa build -t wasm (revision ${REVISION})" >&2
ep_flags=()
for ep in "${ENTRYPOINTS[@]}"; do ep_flags+=(-e "${ep}"); done
"${OPA}" build -t wasm "${ep_flags[@]}" \
  --capabilities "${CAPS}" \
  --revision "${REVISION}" \
  --ignore '*_test.rego' \
  -o "${OUT}" \
  "${POLICY_DIR}" "${DATA_DIR}"

echo "build-policy: wrote ${OUT} (revision ${REVISION})" >&2
echo "${OUT}"
