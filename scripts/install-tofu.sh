#!/usr/bin/env bash
# Installs the pinned OpenTofu CLI and the OpenStack provider for the Terraform tests, both built
# from the Go module proxy (no Terraform/OpenTofu registry is needed), and prints the directory
# holding `tofu` and `tofurc` on stdout (last line):
#
#   TOOLS="$(bash scripts/install-tofu.sh)"
#   TF_CLI_CONFIG_FILE="$TOOLS/tofurc" "$TOOLS/tofu" -chdir=infra/terraform/examples/openstack init
#
#   - OpenTofu: `go mod download github.com/opentofu/opentofu@v$TOFU_VERSION`, then `go build
#     ./cmd/tofu` inside that module directory (`go install` refuses the module: its go.mod has
#     replace directives). About 3 minutes on 2 cores the first time.
#   - terraform-provider-openstack v$OPENSTACK_VERSION the same way (about 40 s), laid out as a
#     filesystem mirror for registry.opentofu.org and registry.terraform.io; `tofurc` is a CLI
#     configuration whose provider_installation uses only that mirror.
#
# Builds are cached outside the repository, keyed by version, so fresh clones (CI) reuse them:
# ${MCP_GATEWAY_CACHE:-~/.cache/mcp-gateway}/tofu-<version>/ and .../terraform-provider-openstack-<version>/.
# <repo>/.tools/ (gitignored) gets symlinks and the CLI configuration.
set -euo pipefail

TOFU_VERSION="1.10.10"
OPENSTACK_VERSION="3.4.0"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${MCP_GATEWAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mcp-gateway}"
TOOLS="${REPO_ROOT}/.tools/terraform"

log() { printf 'install-tofu: %s\n' "$*" >&2; }
command -v go >/dev/null 2>&1 || { log "ERROR: Go is required to build OpenTofu (apt-get install golang, or Go >= 1.24)"; exit 1; }

case "$(go env GOARCH)" in
  amd64 | arm64) PLATFORM="linux_$(go env GOARCH)" ;;
  *) log "ERROR: unsupported architecture $(go env GOARCH)"; exit 1 ;;
esac

# module_dir <module@version>: downloads the module (cached in GOMODCACHE) and prints its directory.
module_dir() {
  go mod download -json "$1" | awk -F'"' '/"Dir":/ { print $4; exit }'
}

# --- OpenTofu ------------------------------------------------------------------------------------
TOFU_DIR="${CACHE}/tofu-${TOFU_VERSION}"
if [[ "$(TF_CLI_CONFIG_FILE=/dev/null "${TOFU_DIR}/tofu" version 2>/dev/null | head -n1)" != "OpenTofu v${TOFU_VERSION}" ]]; then
  log "building OpenTofu v${TOFU_VERSION} from the Go module proxy into ${TOFU_DIR} (about 3 minutes once)"
  src="$(module_dir "github.com/opentofu/opentofu@v${TOFU_VERSION}")"
  [[ -d "$src" ]] || { log "ERROR: go mod download github.com/opentofu/opentofu@v${TOFU_VERSION} failed"; exit 1; }
  mkdir -p "${TOFU_DIR}"
  # version.dev=no: report "v1.10.10" like a release build rather than "v1.10.10-dev".
  (cd "$src" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
    -o "${TOFU_DIR}/tofu.new" ./cmd/tofu) >&2
  mv -f "${TOFU_DIR}/tofu.new" "${TOFU_DIR}/tofu"
fi
log "OpenTofu: $(TF_CLI_CONFIG_FILE=/dev/null "${TOFU_DIR}/tofu" version | head -n1) (${TOFU_DIR}/tofu)"

# --- terraform-provider-openstack ----------------------------------------------------------------
PROVIDER_DIR="${CACHE}/terraform-provider-openstack-${OPENSTACK_VERSION}"
BIN_NAME="terraform-provider-openstack_v${OPENSTACK_VERSION}"
stamp="${PROVIDER_DIR}/.built"
if [[ ! -x "${PROVIDER_DIR}/${BIN_NAME}" || "$(cat "$stamp" 2>/dev/null)" != "${OPENSTACK_VERSION} ${PLATFORM}" ]]; then
  log "building terraform-provider-openstack v${OPENSTACK_VERSION} into ${PROVIDER_DIR} (about 40 s once)"
  src="$(module_dir "github.com/terraform-provider-openstack/terraform-provider-openstack/v3@v${OPENSTACK_VERSION}")"
  [[ -d "$src" ]] || { log "ERROR: go mod download of terraform-provider-openstack v${OPENSTACK_VERSION} failed"; exit 1; }
  mkdir -p "${PROVIDER_DIR}"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${PROVIDER_DIR}/${BIN_NAME}.new" .) >&2
  mv -f "${PROVIDER_DIR}/${BIN_NAME}.new" "${PROVIDER_DIR}/${BIN_NAME}"
  echo "${OPENSTACK_VERSION} ${PLATFORM}" >"$stamp"
fi

# --- .tools/terraform: tofu, the filesystem mirror, the CLI configuration --------------------------
mkdir -p "${TOOLS}"
ln -sfn "${TOFU_DIR}/tofu" "${TOOLS}/tofu"
for host in registry.opentofu.org registry.terraform.io; do
  dir="${TOOLS}/plugins/${host}/terraform-provider-openstack/openstack/${OPENSTACK_VERSION}/${PLATFORM}"
  mkdir -p "$dir"
  ln -sfn "${PROVIDER_DIR}/${BIN_NAME}" "${dir}/${BIN_NAME}"
done
cat >"${TOOLS}/tofurc" <<EOF
# Written by scripts/install-tofu.sh: providers come only from the local filesystem mirror
# (built from the Go module proxy); no registry is contacted.
provider_installation {
  filesystem_mirror {
    path    = "${TOOLS}/plugins"
    include = ["registry.opentofu.org/terraform-provider-openstack/openstack", "registry.terraform.io/terraform-provider-openstack/openstack"]
  }
}
disable_checkpoint = true
EOF
log "provider mirror: ${TOOLS}/plugins (terraform-provider-openstack v${OPENSTACK_VERSION}, ${PLATFORM})"
echo "${TOOLS}"
