#!/usr/bin/env bash
# Installs whatever is missing for the gateway on Debian/Ubuntu, idempotently:
#   - system packages: bubblewrap, libseccomp (dev files to build the seccomp helper), a C toolchain;
#   - npm dependencies (locked versions; install scripts limited to package.json#allowScripts);
#   - the runner's native sandbox helper, built from runner/native against libseccomp;
#   - the pinned OPA CLI (from the Go module proxy) and the policy bundle (opa build -t wasm);
#   - the web console's assets (console/dist, content-hashed; the edge serves them at /console).
# Extra apt packages for the test suite can be passed in $EXTRA_APT_PACKAGES.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

# --- runtime checks -----------------------------------------------------------------------------
command -v node >/dev/null || { log "Node.js 20 (or newer) is required: apt-get install nodejs npm"; exit 1; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then log "Node.js $(node --version) is too old: 20 or newer is required"; exit 1; fi
command -v go >/dev/null || { log "Go is required to install the pinned OPA CLI: apt-get install golang"; exit 1; }

# --- system packages ----------------------------------------------------------------------------
# e2fsprogs (mkfs.ext4, e2fsck) and mount (losetup, mount): per-workspace quota images.
# curl, openssl and python3: the egress attack suite runs them in the sandbox (test/attacks/egress.test.ts).
APT_PACKAGES=(bubblewrap libseccomp-dev pkg-config gcc make e2fsprogs mount curl openssl python3 ${EXTRA_APT_PACKAGES:-})
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} > 0 )); then
  SUDO=""
  if (( EUID != 0 )); then SUDO="sudo"; fi
  log "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- npm dependencies ---------------------------------------------------------------------------
stamp="node_modules/.setup-stamp"
if [[ ! -f "$stamp" || package-lock.json -nt "$stamp" || package.json -nt "$stamp" ]]; then
  if [[ ! -d node_modules ]]; then
    # A fresh clone (and CI): npm ci installs exactly the locked versions and never rewrites the
    # lock file, so `npm start` and `npm test` leave `git status` clean. The lock lists every
    # platform's optional binaries (biome, buf, esbuild); npm installs only this host's.
    # test/release/lockfile.test.ts checks the lock stays complete.
    log "installing npm dependencies (npm ci from package-lock.json)"
    npm ci --no-audit --no-fund --loglevel=error
  else
    # An existing tree whose package.json or lock changed: npm install updates node_modules in
    # place (npm ci would delete it under any process using it) from the same lock.
    log "updating npm dependencies (npm install from package-lock.json)"
    npm install --no-audit --no-fund --loglevel=error
  fi
  touch "$stamp"
fi

# --- native sandbox helper, OPA, policy bundle --------------------------------------------------
log "building the seccomp helper (runner/native)"
bash scripts/build-native.sh >/dev/null
log "building the policy bundle (opa build -t wasm)"
bash scripts/build-policy.sh >/dev/null
log "building the web console (console/dist)"
node --import tsx scripts/build/console.ts
log "ready"
