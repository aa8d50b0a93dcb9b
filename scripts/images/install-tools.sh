#!/usr/bin/env bash
# Installs the offline image toolchain from Debian's packages, idempotently: podman, buildah,
# runc (crun refuses this hybrid-cgroup host), catatonit (the init of `init: true`), debootstrap,
# podman-compose, the CNI dnsname plugin (podman 4.3 here uses CNI: without it compose services
# cannot resolve each other's names), and uidmap, slirp4netns, fuse-overlayfs for podman.
set -euo pipefail
PACKAGES=(podman buildah runc catatonit golang-github-containernetworking-plugin-dnsname debootstrap podman-compose uidmap slirp4netns fuse-overlayfs)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if (( ${#missing[@]} > 0 )); then
  SUDO=""
  if (( EUID != 0 )); then SUDO="sudo"; fi
  echo "images: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
