#!/usr/bin/env bash
# The Terraform/OpenTofu checks of infra/terraform (npm test runs this; the bootstrap itself is
# exercised by test/integration/runner-vm.test.ts):
#   1. OpenTofu and the OpenStack provider, built from the Go module proxy (scripts/install-tofu.sh);
#   2. tofu fmt -check; tofu init + validate + test for the runner module and the OpenStack example
#      (mock_provider "openstack" against the provider's real schema: no cloud is contacted);
#   3. refused inputs print the message an operator needs (checked on `tofu plan` output);
#   4. the rendered user-data passes `cloud-init schema` (Debian's cloud-init, in a chroot of a
#      cached Debian root, never on this machine), and a broken one fails it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '\033[1mterraform:\033[0m %s\n' "$*" >&2; }

TOOLS="$(bash scripts/install-tofu.sh)"
export TF_CLI_CONFIG_FILE="$TOOLS/tofurc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
tofu() { "$TOOLS/tofu" "$@"; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log "tofu fmt -check"
tofu fmt -check -recursive -diff infra/terraform

for dir in infra/terraform/modules/runner infra/terraform/examples/openstack; do
  log "$dir: init, validate, test"
  export TF_DATA_DIR="$WORK/$(basename "$dir")/.terraform"
  tofu -chdir="$dir" init -backend=false -input=false -no-color >/dev/null
  tofu -chdir="$dir" validate -no-color
  tofu -chdir="$dir" test -no-color
done

# --- the render fixture: good inputs render; bad ones fail with a useful message ------------------
RENDER=infra/terraform/modules/runner/tests/render
export TF_DATA_DIR="$WORK/render/.terraform"
tofu -chdir="$RENDER" init -backend=false -input=false -no-color >/dev/null
PEM_CERT=$'-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n'
node -e '
const [cert, out, extra] = process.argv.slice(1);
const vars = {
  release_version: "0.1.0",
  release_url: "https://releases.example.com/mcp-gateway-0.1.0-linux-x64.tar.gz",
  release_sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  runner_id_prefix: "rn",
  edges: ["https://edge-a.internal:8444"],
  allowed_edges: ["edge-a"],
  tls_ca_pem: cert,
  tls_fetch_command: "step ca certificate \"$MCPG_RUNNER_ID\" \"$MCPG_TLS_DIR/runner.crt\" \"$MCPG_TLS_DIR/runner.key\"",
  ...JSON.parse(extra),
};
require("node:fs").writeFileSync(out, JSON.stringify(vars));
' -- "$PEM_CERT" "$WORK/good.tfvars.json" '{}'

# expect_refusal <name> <json overrides> <text the message must contain>
expect_refusal() {
  local name="$1" overrides="$2" text="$3" out
  node -e 'const fs=require("node:fs");const [a,b,o]=process.argv.slice(1);fs.writeFileSync(o,JSON.stringify({...JSON.parse(fs.readFileSync(a,"utf8")),...JSON.parse(b)}))' \
    -- "$WORK/good.tfvars.json" "$overrides" "$WORK/$name.tfvars.json"
  if out="$(tofu -chdir="$RENDER" plan -input=false -no-color -var-file="$WORK/$name.tfvars.json" -state="$WORK/$name.tfstate" 2>&1)"; then
    log "FAIL: $name was accepted"
    exit 1
  fi
  # OpenTofu wraps long messages: compare with the whitespace folded.
  if ! tr -s ' \n│' ' ' <<<"$out" | grep -qF -- "$text"; then
    log "FAIL: $name was refused without the message \"$text\":"
    echo "$out" >&2
    exit 1
  fi
  log "refused as expected: $name"
}
expect_refusal short-checksum '{"release_sha256":"abc"}' "must be the 64 hexadecimal digits of the tarball's SHA-256"
expect_refusal http-edge '{"edges":["http://edge-a:8444"]}' "must be an https:// URL of an edge's internal port"
expect_refusal no-edges '{"edges":[]}' "The edges list is empty"
expect_refusal two-cert-sources "{\"tls_cert_pem\":$(node -p 'JSON.stringify(process.argv[1])' -- "$PEM_CERT"),\"tls_key_pem\":\"-----BEGIN PRIVATE KEY-----\\nx\\n-----END PRIVATE KEY-----\\n\"}" "Give the runner's certificate one way"
expect_refusal bad-port '{"port":70000}' "The port must be an integer from 1 to 65535"

log "render: tofu apply (no resources: outputs only)"
tofu -chdir="$RENDER" apply -auto-approve -input=false -no-color -var-file="$WORK/good.tfvars.json" -state="$WORK/good.tfstate" >/dev/null
tofu -chdir="$RENDER" output -state="$WORK/good.tfstate" -raw user_data >"$WORK/user-data.yaml"
head -c 14 "$WORK/user-data.yaml" | grep -qx '#cloud-config' || { log "FAIL: user-data does not start with #cloud-config"; exit 1; }

# --- cloud-init schema, in a chroot of a Debian root with cloud-init -------------------------------
CI_TAR="$(bash scripts/runner-vm-rootfs.sh | sed -n 's/^cloudinit=//p')"
CIROOT="$WORK/cloudinit-root"
mkdir -p "$CIROOT"
tar --numeric-owner -C "$CIROOT" -xf "$CI_TAR"
cp "$WORK/user-data.yaml" "$CIROOT/tmp/user-data.yaml"
# A broken copy must fail: the check is not a formality.
sed 's/^"runcmd":$/"runcmd": 42\n"x_runcmd":/' "$WORK/user-data.yaml" >"$CIROOT/tmp/broken.yaml"
log "cloud-init schema ($(chroot "$CIROOT" cloud-init --version 2>&1 | head -n1))"
chroot "$CIROOT" cloud-init schema --config-file /tmp/user-data.yaml
if chroot "$CIROOT" cloud-init schema --config-file /tmp/broken.yaml >"$WORK/broken.out" 2>&1; then
  log "FAIL: cloud-init schema accepted a user-data whose runcmd is not a list"
  cat "$WORK/broken.out" >&2
  exit 1
fi
log "cloud-init schema refuses a broken user-data, as it should: $(tr '\n' ' ' <"$WORK/broken.out" | cut -c1-160)"
# --- the trial CA script: certificates in the shape the gateway checks ---------------------------
CERTS=infra/terraform/scripts/runner-certs.sh
bash "$CERTS" init "$WORK/pki" >/dev/null
bash "$CERTS" issue "$WORK/pki" runner rn-1 10.0.0.21 runner-1.internal >/dev/null
openssl verify -CAfile "$WORK/pki/ca.crt" "$WORK/pki/runner-rn-1.crt" >/dev/null
ext="$(openssl x509 -in "$WORK/pki/runner-rn-1.crt" -noout -ext subjectAltName,extendedKeyUsage | tr -s ' \n' ' ')"
for want in "URI:spiffe://mcp-gateway/runner/rn-1" "IP Address:10.0.0.21" "DNS:runner-1.internal" "TLS Web Server Authentication" "TLS Web Client Authentication"; do
  grep -qF "$want" <<<"$ext" || { log "FAIL: runner-certs.sh issued a certificate without $want: $ext"; exit 1; }
done
[[ "$(stat -c %a "$WORK/pki/runner-rn-1.key")" == 600 ]] || { log "FAIL: runner-certs.sh left the key readable by others"; exit 1; }
bash "$CERTS" tfvars "$WORK/pki" rn 10.0.0.21 | node -e '
const v = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
if (v.runner_certificates.length !== 1 || !v.runner_certificates[0].key_pem.includes("PRIVATE KEY") || v.runner_fixed_ips[0] !== "10.0.0.21") process.exit(1);
' || { log "FAIL: runner-certs.sh tfvars"; exit 1; }
bash "$CERTS" revoke "$WORK/pki" runner-rn-1 >/dev/null
openssl crl -in "$WORK/pki/ca.crl" -noout -text | grep -q "Serial Number" || { log "FAIL: revoke did not list the certificate in ca.crl"; exit 1; }
log "runner-certs.sh: init, issue (SANs, usages, 0600 key), tfvars, revoke"
log "ok"
