#!/usr/bin/env bash
# Root filesystems for the runner-VM tests (test/integration/runner-vm.test.ts,
# scripts/test-terraform.sh), as cached tarballs; prints three lines on stdout:
#
#   base=<tar>        Debian bookworm minbase + ca-certificates (shared with the images);
#   vm=<tar>          the base plus systemd and iproute2, as cloud images have: a fresh "VM" with nothing of ours
#                     (no bubblewrap, no libseccomp, no curl, no Node.js) — the bootstrap installs
#                     what it needs from the apt mirror;
#   cloudinit=<tar>   the base plus Debian's cloud-init, to run `cloud-init schema` in a chroot
#                     (never on this machine).
#
# The base is the one scripts/images/build-images.sh builds (same recipe and cache key, in the
# same cache, $MCP_GATEWAY_CACHE or /var/cache/mcp-gateway), so the two share one debootstrap;
# podman is configured by scripts/images/common.sh (runc, cgroupfs, ulimits) and installed by
# scripts/images/install-tools.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/images/common.sh
source scripts/images/common.sh
bash scripts/images/install-tools.sh >&2
log() { printf 'runner-vm-rootfs: %s\n' "$*" >&2; }

case "$(uname -m)" in x86_64) DEB_ARCH=amd64 ;; aarch64) DEB_ARCH=arm64 ;; *) log "unsupported $(uname -m)"; exit 1 ;; esac
MIRROR="$(debian_mirror)"
SUITE=bookworm
# Keep in step with scripts/images/build-images.sh (ROOTFS_RECIPE and BASE_KEY).
ROOTFS_RECIPE=1
hash_of() { printf '%s\n' "$@" | sha256sum | cut -c1-16; }
BASE_KEY="$(hash_of "$ROOTFS_RECIPE" "$SUITE" "$MIRROR" "$DEB_ARCH" minbase ca-certificates)"
BASE_TAR="$IMAGES_CACHE/rootfs/base-$BASE_KEY.tar"
mkdir -p "$IMAGES_CACHE/rootfs"

if [[ ! -f "$BASE_TAR" ]]; then
  log "debootstrap --variant=minbase $SUITE from $MIRROR (cached as $BASE_TAR)"
  work="$(mktemp -d "$IMAGES_CACHE/rootfs/base.XXXXXX")"
  debootstrap --variant=minbase --arch="$DEB_ARCH" --include=ca-certificates "$SUITE" "$work" "$MIRROR" >/dev/null
  printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
  chmod 0755 "$work/usr/sbin/policy-rc.d"
  rm -rf "$work"/var/lib/apt/lists/* "$work"/var/cache/apt/*.bin "$work"/var/cache/apt/archives/*.deb \
    "$work"/var/log/* "$work"/usr/share/doc/* "$work"/usr/share/man/* "$work"/tmp/* 2>/dev/null || true
  tar --numeric-owner -C "$work" -cf "$BASE_TAR.tmp" .
  mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$work"
fi

# derive <name> <packages…>: the base plus Debian packages installed in a chroot (cached tarball).
derive() {
  local name="$1" key tar work
  shift
  key="$(hash_of "$BASE_KEY" "$name" "$@")"
  tar="$IMAGES_CACHE/rootfs/$name-$key.tar"
  if [[ ! -f "$tar" ]]; then
    log "rootfs $name: base + $* (cached as $tar)"
    work="$(mktemp -d "$IMAGES_CACHE/rootfs/$name.XXXXXX")"
    tar --numeric-owner -C "$work" -xf "$BASE_TAR"
    chmod 0755 "$work"
    cp /etc/resolv.conf "$work/etc/resolv.conf"
    chroot "$work" apt-get update -qq >/dev/null
    # policy-rc.d (from the base) keeps services from starting in the chroot.
    DEBIAN_FRONTEND=noninteractive chroot "$work" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    chroot "$work" apt-get clean
    rm -rf "$work"/var/lib/apt/lists/*
    : >"$work/etc/resolv.conf"
    tar --numeric-owner -C "$work" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$work"
  fi
  echo "$tar"
}

# What every cloud image has and minbase lacks: systemd (not running in the test container, but
# its units are what `systemd-analyze verify --root` checks against) and iproute2.
VM_TAR="$(derive vm systemd iproute2)"
CI_TAR="$(derive cloudinit cloud-init)"

echo "base=$BASE_TAR"
echo "vm=$VM_TAR"
echo "cloudinit=$CI_TAR"
