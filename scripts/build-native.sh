#!/usr/bin/env bash
# Builds the runner's native sandbox helpers (runner/native) into
# runner/native/build/. Idempotent: make rebuilds only what changed.
# Needs: a C compiler, make, pkg-config and libseccomp-dev
#   (Debian/Ubuntu: apt-get install -y gcc make pkg-config libseccomp-dev bubblewrap).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
native="$here/runner/native"

missing=()
command -v "${CC:-cc}" >/dev/null 2>&1 || missing+=("a C compiler (${CC:-cc}; apt-get install gcc)")
command -v make >/dev/null 2>&1 || missing+=("make (apt-get install make)")
command -v pkg-config >/dev/null 2>&1 || missing+=("pkg-config (apt-get install pkg-config)")
if command -v pkg-config >/dev/null 2>&1 && ! pkg-config --exists libseccomp; then
  missing+=("libseccomp development files (apt-get install libseccomp-dev)")
fi
if ((${#missing[@]} > 0)); then
  echo "build-native: cannot build the sandbox helpers; missing:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  echo "Install them (e.g. apt-get install -y gcc make pkg-config libseccomp-dev) and re-run $0" >&2
  exit 1
fi

make -s -C "$native" BUILD="$native/build"
# Smoke test: the seccomp compiler must produce a program.
"$native/build/mcpg-sandbox-helper" bpf main >/dev/null
"$native/build/mcpg-sandbox-helper" version
echo "build-native: built $native/build/mcpg-sandbox-helper and $native/build/mcpg-sandbox-init"
