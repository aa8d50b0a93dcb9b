#!/usr/bin/env bash
# Builds the container images offline (`npm run build:images`; the compose test runs it):
#
#   localhost/mcp-gateway/edge:<version>        distroless-style: node, the libraries it links,
#                                               CA certificates and the app — no shell, no package
#                                               manager; uid 65532; run with a read-only root fs
#   localhost/mcp-gateway/runner:<version>      Debian minbase + bubblewrap + libseccomp2, node,
#                                               the app with its seccomp helper; uid 10001
#   localhost/mcp-gateway/postgres:15           Debian's postgresql-15
#   localhost/mcp-gateway/prometheus:<deb ver>  Debian's prometheus package
#
# No registry is reachable, so nothing is pulled: the base is `debootstrap --variant=minbase
# bookworm` from the apt mirror this machine uses, imported with `podman import`; packages are
# added in a chroot. Node is the host's (the Node 20 the release's better-sqlite3 was built for).
# Root filesystems are cached as tarballs under $MCP_GATEWAY_CACHE (default
# /var/cache/mcp-gateway), keyed by a hash of their inputs, and podman's image store persists, so
# a clean clone rebuilds only the app layers. Each image gets a CycloneDX SBOM and a SHA-256 sum
# under dist/images/.
#
# Needs the release tree from `npm run build` (dist/release/mcp-gateway-<v>-linux-<arch>).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/images/common.sh
source scripts/images/common.sh
bash scripts/images/install-tools.sh

VERSION="$(node -p 'require("./package.json").version')"
case "$(uname -m)" in x86_64) ARCH=x64 DEB_ARCH=amd64 LIBDIR=x86_64-linux-gnu ;; *) images_log "images are built for x86_64 only"; exit 1 ;; esac
RELEASE="dist/release/mcp-gateway-${VERSION}-linux-${ARCH}"
[[ -f "$RELEASE/dist/edge.cjs" ]] || { images_log "$RELEASE is missing: run npm run build first"; exit 1; }
OUT="dist/images"
mkdir -p "$OUT" "$IMAGES_CACHE/rootfs"
MIRROR="$(debian_mirror)"
SUITE=bookworm
# Bump to rebuild every cached root filesystem.
ROOTFS_RECIPE=1

hash_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }

# --- root filesystems (cached tarballs) ------------------------------------------------------
BASE_KEY="$(hash_of "$ROOTFS_RECIPE" "$SUITE" "$MIRROR" "$DEB_ARCH" minbase ca-certificates)"
BASE_TAR="$IMAGES_CACHE/rootfs/base-$BASE_KEY.tar"

# Cleans a root filesystem of what an image does not need (apt lists and caches, docs, logs).
slim() {
  local dir="$1"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/var/cache/debconf/*-old "$dir"/var/log/* "$dir"/usr/share/doc/* "$dir"/usr/share/man/* \
    "$dir"/usr/share/info/* "$dir"/tmp/* "$dir"/root/.cache 2>/dev/null || true
}

if [[ ! -f "$BASE_TAR" ]]; then
  images_log "debootstrap --variant=minbase $SUITE from $MIRROR (cached as $BASE_TAR)"
  work="$(mktemp -d "$IMAGES_CACHE/rootfs/base.XXXXXX")"
  chmod 0755 "$work" # the image's / (mktemp makes it 0700)
  debootstrap --variant=minbase --arch="$DEB_ARCH" --include=ca-certificates "$SUITE" "$work" "$MIRROR" >/dev/null
  # Packages installed later in a chroot must not start services.
  printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
  chmod 0755 "$work/usr/sbin/policy-rc.d"
  slim "$work"
  tar --numeric-owner -C "$work" -cf "$BASE_TAR.tmp" .
  mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$work"
fi

# derive <name> <packages…>: the base plus Debian packages, installed in a chroot; prints the tarball.
derive() {
  local name="$1"
  shift
  local key tar work
  key="$(hash_of "$BASE_KEY" "$name" "$@")"
  tar="$IMAGES_CACHE/rootfs/$name-$key.tar"
  if [[ ! -f "$tar" ]]; then
    images_log "rootfs $name: base + $* (cached as $tar)"
    work="$(mktemp -d "$IMAGES_CACHE/rootfs/$name.XXXXXX")"
    tar --numeric-owner -C "$work" -xf "$BASE_TAR"
    chmod 0755 "$work" # the image's / (mktemp makes it 0700)
    cp /etc/resolv.conf "$work/etc/resolv.conf"
    if [[ "$name" == postgres ]]; then
      # The image initialises its cluster at first start (entrypoint), not at install.
      mkdir -p "$work/etc/postgresql-common"
      echo "create_main_cluster = false" >"$work/etc/postgresql-common/createcluster.conf"
    fi
    chroot "$work" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive chroot "$work" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    chroot "$work" apt-get clean
    : >"$work/etc/resolv.conf"
    slim "$work"
    tar --numeric-owner -C "$work" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$work"
  fi
  echo "$tar"
}

RUNNER_TAR="$(derive runner bubblewrap libseccomp2)"
POSTGRES_TAR="$(derive postgres postgresql-15)"
PROMETHEUS_TAR="$(derive prometheus prometheus)"

# import <tar> <image>: podman import unless the image already exists (the store persists).
import_rootfs() {
  local tar="$1" image="$2"
  if ! podman image exists "$image"; then
    images_log "podman import $image"
    podman import --quiet "$tar" "$image" >/dev/null
  fi
}

# --- the app tree, shared by the edge and runner images ------------------------------------
APP_KEY="$(sha256sum "dist/release/mcp-gateway-${VERSION}-linux-${ARCH}.tar.gz" | cut -c1-16)"
NODE_BIN="$(readlink -f "$(command -v node)")"
NODE_DEB="$(dpkg -S "$NODE_BIN" 2>/dev/null | cut -d: -f1 || true)"
NODE_DEB_VERSION="$(dpkg-query -W -f='${Version}' "${NODE_DEB:-nodejs}" 2>/dev/null || node -p process.version)"

# --- edge: distroless-style tree -------------------------------------------------------------
EDGE_IMAGE="$IMAGE_PREFIX/edge:$VERSION"
EDGE_KEY="$(hash_of "$BASE_KEY" "$APP_KEY" "$(sha256sum "$NODE_BIN" | cut -c1-16)" edge-3)"
# (Rebuilt when its inputs changed, or when this checkout has no SBOM of it yet.)
if [[ "$(podman image inspect --format '{{ index .Labels "mcp-gateway.key" }}' "$EDGE_IMAGE" 2>/dev/null || true)" != "$EDGE_KEY" ||
  ! -f "$OUT/edge-$VERSION.cdx.json" ]]; then
  images_log "edge image $EDGE_IMAGE (distroless-style)"
  work="$(mktemp -d)"
  base="$work/base"
  root="$work/root"
  mkdir -p "$base" "$root"/{app,tmp,etc/ssl/certs,usr/bin,var/lib/mcp-gateway,lib64,"lib/$LIBDIR"}
  tar --numeric-owner -C "$base" -xf "$BASE_TAR" ./lib ./lib64 ./usr/lib ./etc/ssl ./usr/share/ca-certificates ./var/lib/dpkg 2>/dev/null ||
    tar --numeric-owner -C "$base" -xf "$BASE_TAR"
  # node and the native addon: the Debian libraries they link against, from the minbase tree.
  cp "$NODE_BIN" "$root/usr/bin/node"
  cp -a "$RELEASE"/. "$root/app/"
  libs="$( (ldd "$NODE_BIN"; ldd "$RELEASE/node_modules/better-sqlite3/build/Release/better_sqlite3.node") |
    awk '/=>/ {print $1} /ld-linux/ {print $1}' | sort -u)"
  for lib in $libs; do
    name="$(basename "$lib")"
    src="$(find "$base/lib/$LIBDIR" "$base/usr/lib/$LIBDIR" "$base/lib64" -maxdepth 1 -name "$name" 2>/dev/null | head -1)"
    [[ -n "$src" ]] || { images_log "edge: $name not found in the base rootfs"; exit 1; }
    if [[ "$name" == ld-linux* ]]; then cp -L "$src" "$root/lib64/$name"; else cp -L "$src" "$root/lib/$LIBDIR/$name"; fi
  done
  cp -L "$base/etc/ssl/certs/ca-certificates.crt" "$root/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/var/lib/mcp-gateway"
  # SBOM: the Debian packages whose files are in the tree, node, and the app's components.
  pkgs="$(for lib in $libs; do { dpkg-query --admindir="$base/var/lib/dpkg" -S "$(basename "$lib")" 2>/dev/null || true; } | cut -d: -f1 | cut -d, -f1; done | sort -u | tr '\n' ' ')"
  node --import tsx scripts/build/sbom.ts --out "$OUT/edge-$VERSION.cdx.json" --name mcp-gateway-edge-image --version "$VERSION" \
    --deb-admindir "$base/var/lib/dpkg" --deb-only "$pkgs ca-certificates" --extra-deb "nodejs=$NODE_DEB_VERSION" \
    $(printf -- '--shipped %s ' better-sqlite3 bindings file-uri-to-path)
  cp "$OUT/edge-$VERSION.cdx.json" "$root/app/sbom.image.cdx.json"
  # Owners as created: root, except the data directory (65532).
  tar --numeric-owner -C "$root" -cf "$work/edge.tar" .
  podman rmi --force "$EDGE_IMAGE" >/dev/null 2>&1 || true
  podman import --quiet \
    --change 'USER 65532:65532' \
    --change 'WORKDIR /app' \
    --change 'ENV NODE_ENV=production MCP_GATEWAY_DATA_DIR=/var/lib/mcp-gateway' \
    --change 'ENTRYPOINT ["/usr/bin/node", "/app/dist/edge.cjs"]' \
    --change 'EXPOSE 8081' \
    --change "LABEL mcp-gateway.key=$EDGE_KEY org.opencontainers.image.version=$VERSION" \
    "$work/edge.tar" "$EDGE_IMAGE" >/dev/null
  rm -rf "$work"
fi

# --- runner: minbase + bubblewrap + libseccomp2 + node + app --------------------------------
RUNNER_BASE="$IMAGE_PREFIX/rootfs-runner:$(basename "$RUNNER_TAR" .tar | sed 's/^runner-//')"
import_rootfs "$RUNNER_TAR" "$RUNNER_BASE"
RUNNER_IMAGE="$IMAGE_PREFIX/runner:$VERSION"
RUNNER_KEY="$(hash_of "$RUNNER_BASE" "$APP_KEY" "$(sha256sum "$NODE_BIN" | cut -c1-16)" runner-2)"
if [[ "$(podman image inspect --format '{{ index .Labels "mcp-gateway.key" }}' "$RUNNER_IMAGE" 2>/dev/null || true)" != "$RUNNER_KEY" ||
  ! -f "$OUT/runner-$VERSION.cdx.json" ]]; then
  images_log "runner image $RUNNER_IMAGE"
  ctx="$(mktemp -d)"
  cp -a "$RELEASE" "$ctx/app"
  cp "$NODE_BIN" "$ctx/node"
  work="$(mktemp -d)"
  tar --numeric-owner -C "$work" -xf "$RUNNER_TAR" ./var/lib/dpkg
  node --import tsx scripts/build/sbom.ts --out "$OUT/runner-$VERSION.cdx.json" --name mcp-gateway-runner-image --version "$VERSION" \
    --deb-admindir "$work/var/lib/dpkg" --extra-deb "nodejs=$NODE_DEB_VERSION" \
    $(printf -- '--shipped %s ' better-sqlite3 bindings file-uri-to-path)
  cp "$OUT/runner-$VERSION.cdx.json" "$ctx/app/sbom.image.cdx.json"
  rm -rf "$work"
  podman build --quiet --pull=never --build-arg "BASE=$RUNNER_BASE" --label "mcp-gateway.key=$RUNNER_KEY" \
    --label "org.opencontainers.image.version=$VERSION" \
    -f infra/images/runner/Containerfile -t "$RUNNER_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
fi

# --- PostgreSQL and Prometheus from Debian's packages ---------------------------------------
for svc in postgres prometheus; do
  tarvar="${svc^^}_TAR"
  tar="${!tarvar}"
  base_image="$IMAGE_PREFIX/rootfs-$svc:$(basename "$tar" .tar | sed "s/^$svc-//")"
  import_rootfs "$tar" "$base_image"
  case "$svc" in
    postgres) image="$IMAGE_PREFIX/postgres:15" ;;
    prometheus)
      work="$(mktemp -d)"
      tar --numeric-owner -C "$work" -xf "$tar" ./var/lib/dpkg
      image="$IMAGE_PREFIX/prometheus:$(dpkg-query --admindir="$work/var/lib/dpkg" -W -f='${Version}' prometheus | sed 's/[^A-Za-z0-9_.-]/_/g')"
      rm -rf "$work"
      ;;
  esac
  key="$(hash_of "$base_image" "$(sha256sum "infra/images/$svc/Containerfile" | cut -c1-16)" "$(cat infra/images/"$svc"/* | sha256sum | cut -c1-16)")"
  if [[ "$(podman image inspect --format '{{ index .Labels "mcp-gateway.key" }}' "$image" 2>/dev/null || true)" != "$key" ||
    ! -f "$OUT/$svc.cdx.json" ]]; then
    images_log "$svc image $image"
    work="$(mktemp -d)"
    tar --numeric-owner -C "$work" -xf "$tar" ./var/lib/dpkg
    node --import tsx scripts/build/sbom.ts --out "$OUT/$svc.cdx.json" --name "mcp-gateway-$svc-image" \
      --version "$(echo "$image" | cut -d: -f2)" --deb-admindir "$work/var/lib/dpkg" --meta /dev/null
    rm -rf "$work"
    podman build --quiet --pull=never --build-arg "BASE=$base_image" --label "mcp-gateway.key=$key" \
      -f "infra/images/$svc/Containerfile" -t "$image" "infra/images/$svc" >/dev/null
  fi
  echo "$image" >"$OUT/$svc.image"
done
echo "$EDGE_IMAGE" >"$OUT/edge.image"
echo "$RUNNER_IMAGE" >"$OUT/runner.image"

# Earlier builds of these tags, now untagged, go (the store persists across CI runs).
podman image prune -f --filter label=mcp-gateway.key >/dev/null 2>&1 || true

# SHA-256 of every image (its config digest, i.e. the image id) and of every SBOM.
(
  cd "$OUT"
  for f in edge runner postgres prometheus; do
    echo "$(podman image inspect --format '{{.Id}}' "$(cat "$f.image")")  $(cat "$f.image")"
  done >IMAGES.sha256
  sha256sum ./*.cdx.json >SBOM.SHA256SUMS
)
images_log "built: $(tr '\n' ' ' <"$OUT/IMAGES.sha256" | sed 's/  / /g')"
