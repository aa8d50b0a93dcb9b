#!/usr/bin/env bash
# Images and the full-stack compose, end to end (scripts/test.sh runs this as its own step):
#
#   1. builds the images offline (scripts/images/build-images.sh; cached root filesystems and
#      podman's store make a warm run rebuild only the app layers);
#   2. checks the edge image is distroless-style: no shell, non-root, read-only root works;
#   3. brings up infra/compose/full-stack.yml with podman-compose (two edges, PostgreSQL, a runner,
#      Prometheus), runs a command through each edge, kills edge-1 and runs one through edge-2,
#      checks Prometheus scraped both edges and the runner;
#   4. tears everything down and fails if a container, volume or network of the project is left.
#
# Needs the release build (npm run build). Prints "N passed, N failed" at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/images/common.sh
source scripts/images/common.sh

passed=0
failed=0
ok() { passed=$((passed + 1)); printf '  ok   %s\n' "$*" >&2; }
fail() { failed=$((failed + 1)); printf '  FAIL %s\n' "$*" >&2; }
check() { # check <name> <command…>
  local name="$1"
  shift
  if "$@"; then ok "$name"; else fail "$name"; fi
}

bash scripts/images/build-images.sh
OUT=dist/images
EDGE_IMAGE="$(cat $OUT/edge.image)"
RUNNER_IMAGE="$(cat $OUT/runner.image)"
POSTGRES_IMAGE="$(cat $OUT/postgres.image)"
PROMETHEUS_IMAGE="$(cat $OUT/prometheus.image)"
VERSION="$(node -p 'require("./package.json").version')"
CLI=(node "dist/release/mcp-gateway-${VERSION}-linux-x64/dist/mcp-gateway.mjs")

printf '\nedge image %s\n' "$EDGE_IMAGE" >&2
check "edge image has no shell" bash -c "! podman run --rm --entrypoint /bin/sh '$EDGE_IMAGE' -c true >/dev/null 2>&1"
check "edge image runs as uid 65532" test "$(podman image inspect --format '{{.Config.User}}' "$EDGE_IMAGE")" = "65532:65532"
check "edge image answers --help with a read-only root filesystem" bash -c \
  "podman run --rm --read-only --entrypoint /usr/bin/node '$EDGE_IMAGE' /app/dist/mcp-gateway.mjs --help | grep -q '^mcp-gateway'"
check "runner image has bubblewrap and the seccomp helper" podman run --rm --entrypoint /bin/sh "$RUNNER_IMAGE" -c \
  'command -v bwrap >/dev/null && /opt/mcp-gateway/runner/native/build/mcpg-sandbox-helper version >/dev/null'
for sbom in edge-"$VERSION" runner-"$VERSION" postgres prometheus; do
  check "SBOM $sbom.cdx.json is CycloneDX with components" node -e '
    const b = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    process.exit(b.bomFormat === "CycloneDX" && b.components.length > 0 ? 0 : 1)' "$OUT/$sbom.cdx.json"
done

# --- the stack -----------------------------------------------------------------------------------
PROJECT="mcpg-ci-$$"
STATE="$(mktemp -d "${TMPDIR:-/tmp}/mcpg-stack.XXXXXX")"
chmod 0755 "$STATE"
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
export MCPG_STATE="$STATE" MCPG_EDGE_IMAGE="$EDGE_IMAGE" MCPG_RUNNER_IMAGE="$RUNNER_IMAGE" \
  MCPG_POSTGRES_IMAGE="$POSTGRES_IMAGE" MCPG_PROMETHEUS_IMAGE="$PROMETHEUS_IMAGE"
MCPG_EDGE1_PORT="$(free_port)"
MCPG_EDGE2_PORT="$(free_port)"
MCPG_PROMETHEUS_PORT="$(free_port)"
export MCPG_EDGE1_PORT MCPG_EDGE2_PORT MCPG_PROMETHEUS_PORT
COMPOSE=(podman-compose --project-name "$PROJECT" -f infra/compose/full-stack.yml)

teardown() {
  "${COMPOSE[@]}" down -v >/dev/null 2>&1 || true
  # podman-compose 1.0 leaves the project's network behind on `down`; remove what carries the label.
  podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT" | xargs -r podman rm -f >/dev/null 2>&1 || true
  podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
  podman network ls -q --filter "label=io.podman.compose.project=$PROJECT" | xargs -r podman network rm -f >/dev/null 2>&1 || true
  rm -rf "$STATE"
}
trap teardown EXIT

PROM_UID="$(podman run --rm --entrypoint /usr/bin/id "$PROMETHEUS_IMAGE" -u)"
node --import tsx scripts/images/stack-state.ts --dir "$STATE" --prometheus-uid "$PROM_UID"

printf '\ncompose project %s (edges on :%s and :%s, Prometheus on :%s)\n' "$PROJECT" \
  "$MCPG_EDGE1_PORT" "$MCPG_EDGE2_PORT" "$MCPG_PROMETHEUS_PORT" >&2
# PostgreSQL first (an edge exits when its store is unreachable at start), then the rest.
"${COMPOSE[@]}" up -d postgres >/dev/null 2>&1 || { "${COMPOSE[@]}" logs >&2 || true; exit 1; }
deadline=$((SECONDS + 120))
until podman exec "${PROJECT}_postgres_1" pg_isready -q -h 127.0.0.1 -d mcp -U postgres 2>/dev/null; do
  ((SECONDS < deadline)) || { fail "PostgreSQL accepts connections"; podman logs "${PROJECT}_postgres_1" >&2; exit 1; }
  sleep 1
done
"${COMPOSE[@]}" up -d >/dev/null 2>&1 || { "${COMPOSE[@]}" logs >&2 || true; exit 1; }

wait_ready() { # wait_ready <port> <seconds>
  local deadline=$((SECONDS + $2))
  until curl -sf "http://127.0.0.1:$1/health/ready" >/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}
if ! wait_ready "$MCPG_EDGE1_PORT" 120 || ! wait_ready "$MCPG_EDGE2_PORT" 60; then
  fail "both edges ready"
  for svc in postgres runner-1 edge-1 edge-2; do
    echo "--- $svc" >&2
    podman logs --tail 30 "${PROJECT}_${svc}_1" >&2 2>&1 || true
  done
  echo "$passed passed, $failed failed"
  exit 1
fi
ok "both edges ready (PostgreSQL store, runner over mTLS)"

TOKEN="$(MCP_GATEWAY_DATA_DIR="$STATE" "${CLI[@]}" token --sub ci --roles developer --ttl 10m)"
run_via() { # run_via <port> <word>
  MCP_GATEWAY_TOKEN="$TOKEN" "${CLI[@]}" exec --url "http://127.0.0.1:$1" -- echo "$2" 2>/dev/null
}
check "edge-1 started from the build's V8 code cache" bash -c "podman logs '${PROJECT}_edge-1_1' 2>&1 | grep -q 'code cache: used'"
check "a command through edge-1" test "$(run_via "$MCPG_EDGE1_PORT" via-edge-1)" = via-edge-1
check "a command through edge-2" test "$(run_via "$MCPG_EDGE2_PORT" via-edge-2)" = via-edge-2

prom_up() { # prom_up <job> <count>: that many targets of the job are up
  curl -sf "http://127.0.0.1:$MCPG_PROMETHEUS_PORT/api/v1/query?query=sum(up%7Bjob%3D%22$1%22%7D)" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const r=JSON.parse(s).data.result[0];process.exit(r&&Number(r.value[1])===Number(process.argv[1])?0:1)})' "$2"
}
wait_prom() {
  local deadline=$((SECONDS + 60))
  until prom_up "$1" "$2"; do
    ((SECONDS < deadline)) || return 1
    sleep 2
  done
}
check "Prometheus scrapes both edges" wait_prom mcp-edge 2
check "Prometheus scrapes the runner over mTLS" wait_prom mcp-runner 1

podman kill "${PROJECT}_edge-1_1" >/dev/null
check "edge-1 is gone" bash -c "! curl -sf -m 2 http://127.0.0.1:$MCPG_EDGE1_PORT/health/live >/dev/null"
check "edge-2 still serves after edge-1 was killed" test "$(run_via "$MCPG_EDGE2_PORT" still-here)" = still-here

trap - EXIT
teardown
leftovers="$(
  podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT"
  podman volume ls -q --filter "label=io.podman.compose.project=$PROJECT"
  podman network ls -q --filter "label=io.podman.compose.project=$PROJECT"
)"
check "torn down without leftovers (containers, volumes, networks)" test -z "$leftovers"

echo "$passed passed, $failed failed"
((failed == 0))
