# Sourced by the image scripts: the cache directory outside the repository, and podman's
# configuration for this host, written here and selected with CONTAINERS_CONF — the machine's
# own /etc/containers files are never edited.
#
#   runtime = "runc"            crun refuses this host's hybrid cgroup (v1 + v2) layout.
#   cgroup_manager = "cgroupfs" no systemd cgroup manager inside this machine.
#   default_ulimits             podman's defaults exceed what this host grants (nofile 1048576).
#   events_logger = "file"      no journald.
# shellcheck shell=bash
IMAGES_CACHE="${MCP_GATEWAY_CACHE:-/var/cache/mcp-gateway}"
mkdir -p "$IMAGES_CACHE"
export CONTAINERS_CONF="$IMAGES_CACHE/containers.conf"
cat >"$CONTAINERS_CONF.tmp" <<'CONF'
# Written by scripts/images/common.sh (mcp-gateway); selected with CONTAINERS_CONF.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
init_path = "/usr/bin/catatonit"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"

# Image names and tags: everything is built here, nothing is pulled.
IMAGE_PREFIX="localhost/mcp-gateway"
images_log() { printf '\033[1mimages:\033[0m %s\n' "$*" >&2; }

# The Debian mirror this machine's apt uses (the first URIs line of its deb822 sources, or the
# first deb line of sources.list), so debootstrap reads from the same place apt does.
debian_mirror() {
  local uri
  uri="$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/debian.sources 2>/dev/null | awk '{print $2}' || true)"
  if [[ -z "$uri" ]]; then
    uri="$(grep -h -m1 -E '^deb [^ ]+ bookworm ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true)"
  fi
  [[ -n "$uri" ]] || { images_log "cannot find the Debian mirror in the apt sources"; return 1; }
  echo "$uri"
}
