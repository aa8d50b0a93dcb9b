#!/usr/bin/env bash
# `npm run build`: the production build and the release tarball.
#
#   1. setup (npm dependencies, the seccomp helper, the policy bundle) — scripts/setup.sh;
#   2. bundles: dist/mcp-gateway.mjs, dist/runner.mjs (+ shared chunks), minified ESM for
#      Node 20, no tsx at run time; dist/edge.cjs, the edge's loader, and dist/edge-main.cjs, the
#      edge in one CommonJS file (scripts/build/bundle.ts), with its V8 code cache
#      dist/edge-main.cjs.v8cache (scripts/build/code-cache.ts; ADR 0021);
#   3. the release tree dist/release/mcp-gateway-<version>-linux-<arch>/:
#        bin/mcp-gateway             → ../dist/mcp-gateway.mjs
#        dist/*.mjs, dist/*.cjs      the bundles, and the edge's code cache (edge-main.cjs.v8cache)
#        node_modules/better-sqlite3 (+ bindings, file-uri-to-path): the one native addon
#        runner/native/build/…       the seccomp helper and sandbox-init
#        runner/native/etc/…         the sandbox's stub passwd/group/hosts
#        policies/build/bundle.tar.gz
#        console/dist/…              the web console's assets (served at /console)
#        package.json, sbom.cdx.json, README.release.md
#   4. the tarball mcp-gateway-<version>-linux-<arch>.tar.gz (reproducible: sorted, owner 0,
#      mtime of the last commit, gzip -n — except the code cache, whose bytes V8 does not
#      reproduce; ADR 0021), its CycloneDX SBOM, and SHA256SUMS for both.
#
#   5. the container images from that tree (scripts/images/build-images.sh, also
#      `npm run build:images`), offline; skip with MCP_GATEWAY_SKIP_IMAGES=1.
# Skip step 1 with MCP_GATEWAY_SKIP_SETUP=1 (CI runs setup once, before).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '\033[1mbuild:\033[0m %s\n' "$*" >&2; }

if [[ "${MCP_GATEWAY_SKIP_SETUP:-}" != 1 ]]; then bash scripts/setup.sh; fi

VERSION="$(node -p 'require("./package.json").version')"
case "$(uname -m)" in
  x86_64) ARCH=x64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) log "unsupported architecture $(uname -m)"; exit 1 ;;
esac
NAME="mcp-gateway-${VERSION}-linux-${ARCH}"
OUT="dist/release"
STAGE="$OUT/$NAME"
# Reproducible timestamps: the last commit's time (or now outside git).
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH

log "bundling (esbuild) into dist/"
node --import tsx scripts/build/bundle.ts
log "writing the edge's code cache"
node --import tsx scripts/build/code-cache.ts

log "staging $STAGE"
rm -rf "$OUT"
mkdir -p "$STAGE"/{bin,dist,node_modules,runner/native/build,runner/native/etc,policies/build}
cp dist/*.mjs dist/*.cjs dist/edge-main.cjs.v8cache "$STAGE/dist/"
cp dist/*.LEGAL.txt "$STAGE/dist/" 2>/dev/null || true
chmod 0755 "$STAGE"/dist/mcp-gateway.mjs "$STAGE"/dist/edge.cjs "$STAGE"/dist/runner.mjs
ln -s ../dist/mcp-gateway.mjs "$STAGE/bin/mcp-gateway"

# The native addon and its loader, as installed (built from source against this Node's ABI).
SHIPPED=(better-sqlite3 bindings file-uri-to-path)
for pkg in "${SHIPPED[@]}"; do
  src="node_modules/$pkg"
  [[ -d "$src" ]] || { log "$src is missing: run npm ci"; exit 1; }
  mkdir -p "$STAGE/$src"
  # better-sqlite3: its JavaScript and the addon (below), not its C sources; the small loaders whole.
  for f in "$src"/*; do
    case "$(basename "$f")" in build | deps | src | test | binding.gyp) continue ;; esac
    cp -r "$f" "$STAGE/$src/"
  done
done
addon="node_modules/better-sqlite3/build/Release/better_sqlite3.node"
[[ -f "$addon" ]] || { log "$addon is missing: better-sqlite3 was not built"; exit 1; }
mkdir -p "$STAGE/$(dirname "$addon")"
cp "$addon" "$STAGE/$addon"

for f in mcpg-sandbox-helper mcpg-sandbox-init; do
  [[ -x "runner/native/build/$f" ]] || { log "runner/native/build/$f is missing"; exit 1; }
  cp "runner/native/build/$f" "$STAGE/runner/native/build/"
done
cp -r runner/native/etc/. "$STAGE/runner/native/etc/"
# The in-sandbox forwarder of network "restricted" (docs/adr/0017-egress-proxy.md).
mkdir -p "$STAGE/runner/native/egress"
cp runner/native/egress/forwarder.cjs "$STAGE/runner/native/egress/"
cp policies/build/bundle.tar.gz "$STAGE/policies/build/"
# The web console (built by setup), where the edge looks for it: console/dist.
[[ -f console/dist/index.html ]] || { log "console/dist is missing: run scripts/setup.sh"; exit 1; }
mkdir -p "$STAGE/console"
cp -r console/dist "$STAGE/console/dist"

node -e '
const [version, out] = process.argv.slice(1);
const root = require("./package.json");
const pkg = { name: "mcp-gateway", version, private: true, type: "module", license: root.license,
  description: root.description, engines: root.engines, bin: { "mcp-gateway": "bin/mcp-gateway" } };
require("node:fs").writeFileSync(out, JSON.stringify(pkg, null, 2) + "\n");
' "$VERSION" "$STAGE/package.json"
cat >"$STAGE/README.release.md" <<EOF
# mcp-gateway ${VERSION} (linux-${ARCH})

Needs Node.js 20 (the ABI better-sqlite3 was built for) and, on runner hosts, bubblewrap and
libseccomp2. Run from this directory (or put bin/ on PATH):

    node dist/edge.cjs --config edge.json       # the edge
    node dist/runner.mjs --config runner.json   # a runner
    bin/mcp-gateway --help                      # the CLI

Deployment: docs/operations/deploy.md in the source repository. SBOM: sbom.cdx.json.
EOF

log "SBOM (CycloneDX)"
node --import tsx scripts/build/sbom.ts --out "$STAGE/sbom.cdx.json" --version "$VERSION" \
  $(printf -- '--shipped %s ' "${SHIPPED[@]}")
cp "$STAGE/sbom.cdx.json" "$OUT/$NAME.cdx.json"

log "tarball $OUT/$NAME.tar.gz"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  -C "$OUT" -cf - "$NAME" | gzip -n -9 >"$OUT/$NAME.tar.gz"
(cd "$OUT" && sha256sum "$NAME.tar.gz" "$NAME.cdx.json" >SHA256SUMS)
cat "$OUT/SHA256SUMS" >&2
log "done: $OUT/$NAME.tar.gz ($(du -h "$OUT/$NAME.tar.gz" | cut -f1))"

if [[ "${MCP_GATEWAY_SKIP_IMAGES:-}" != 1 ]]; then
  log "container images (scripts/images/build-images.sh; MCP_GATEWAY_SKIP_IMAGES=1 skips them)"
  bash scripts/images/build-images.sh
fi
