#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and development — never for production.
#
#   scripts/start-postgres.sh [start]   print a DATABASE_URL (last line of stdout)
#   scripts/start-postgres.sh stop      stop the cluster (data kept)
#   scripts/start-postgres.sh restart   restart it on the same port (pg_ctl restart -m fast)
#   scripts/start-postgres.sh destroy   stop it and delete its directory
#   scripts/start-postgres.sh status    exit 0 when running, 3 when not
#
# start: when $DATABASE_URL is set it is printed and nothing else happens. Otherwise PostgreSQL is
# installed when missing (apt-get install postgresql; apt-get update first when the package is
# unknown), and a cluster is created (initdb) and started (pg_ctl) in $MCP_PG_DIR
# (default ${TMPDIR:-/tmp}/mcp-gateway-pg), owned by an unprivileged user: `postgres` when run as
# root (through runuser), the calling user otherwise. It listens on 127.0.0.1 only, on a free port,
# with a generated password (scram-sha-256); its unix socket lives in a 0700 directory inside
# $MCP_PG_DIR (trust there: only the owner can reach it). Running it again reuses the cluster.
# The database is $MCP_PG_DB (default mcp_gateway); the superuser is `postgres`.
#
# stop/restart/destroy/status act on the cluster in $MCP_PG_DIR and ignore $DATABASE_URL.
# Environment: MCP_PG_DIR, MCP_PG_DB, MCP_PG_PORT (fixed port instead of a free one), PG_BIN
# (directory of initdb/pg_ctl, found under /usr/lib/postgresql/<version>/bin by default).
set -euo pipefail

cmd="${1:-start}"
log() { printf '\033[1mpostgres:\033[0m %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

if [[ "$cmd" == "start" && -n "${DATABASE_URL:-}" ]]; then
  log "using \$DATABASE_URL from the environment"
  printf '%s\n' "$DATABASE_URL"
  exit 0
fi

DIR="${MCP_PG_DIR:-${TMPDIR:-/tmp}/mcp-gateway-pg}"
DB="${MCP_PG_DB:-mcp_gateway}"
DATA="$DIR/data"
SOCK="$DIR/sock"
[[ "$DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "MCP_PG_DB must be a plain lower-case identifier, got '$DB'"

# --- binaries (installing PostgreSQL when missing) -----------------------------------------------
find_bin() {
  if [[ -n "${PG_BIN:-}" && -x "$PG_BIN/pg_ctl" ]]; then printf '%s\n' "$PG_BIN"; return 0; fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]]; then printf '%s\n' "$d"; return 0; fi
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"; return 0
  fi
  return 1
}

install_postgres() {
  command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is not available: install PostgreSQL (initdb, pg_ctl) or set DATABASE_URL"
  local sudo=""
  if (( EUID != 0 )); then
    command -v sudo >/dev/null || die "PostgreSQL is not installed: run 'apt-get install postgresql' as root, or set DATABASE_URL"
    sudo="sudo"
  fi
  log "installing PostgreSQL (apt-get install postgresql)"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -qq --no-install-recommends postgresql >&2; then
    log "package not found or lists stale: running apt-get update"
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends postgresql >&2 \
      || die "apt-get install postgresql failed: install PostgreSQL or set DATABASE_URL"
  fi
}

# Runs a command as the cluster owner.
OWNER="$(id -un)"
as_owner() { if (( EUID == 0 )); then runuser -u "$OWNER" -- "$@"; else "$@"; fi; }

need_bin() {
  if ! BIN="$(find_bin)"; then
    [[ "$cmd" == "start" ]] || die "PostgreSQL binaries not found (PG_BIN, /usr/lib/postgresql/*/bin)"
    install_postgres
    BIN="$(find_bin)" || die "PostgreSQL was installed but initdb/pg_ctl were not found: set PG_BIN"
  fi
  if (( EUID == 0 )); then
    OWNER="postgres"
    id -u "$OWNER" >/dev/null 2>&1 || die "user 'postgres' does not exist (it comes with the Debian postgresql package)"
  fi
}

is_running() { [[ -f "$DATA/PG_VERSION" ]] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

# --- commands that act on an existing cluster ----------------------------------------------------
case "$cmd" in
  start) ;;
  status)
    need_bin
    if is_running; then log "running in $DIR"; exit 0; fi
    log "not running ($DIR)"; exit 3 ;;
  stop|destroy)
    need_bin
    if is_running; then
      as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >&2
    else
      log "not running ($DIR)"
    fi
    if [[ "$cmd" == "destroy" ]]; then rm -rf -- "$DIR" "$DIR.lock"; log "removed $DIR"; fi
    exit 0 ;;
  restart)
    need_bin
    [[ -f "$DATA/PG_VERSION" ]] || die "no cluster in $DIR: run start first"
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -m fast -w -t 60 restart >&2
    cat "$DIR/url"
    exit 0 ;;
  *) die "unknown command '$cmd' (start | stop | restart | destroy | status)" ;;
esac

# --- start ---------------------------------------------------------------------------------------
need_bin
mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
# Two test processes starting at once wait for each other (the server must not inherit fd 9).
if command -v flock >/dev/null; then flock -w 120 9 || die "timed out waiting for $DIR.lock"; fi

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  if [[ -n "${MCP_PG_PORT:-}" ]]; then printf '%s\n' "$MCP_PG_PORT"; return; fi
  local p i
  for i in $(seq 1 50); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_busy "$p" || { printf '%s\n' "$p"; return; }
  done
  die "no free port found"
}
psql_owner() { as_owner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$(cat "$DIR/port")" -U postgres "$@"; }

if ! [[ -f "$DATA/PG_VERSION" ]]; then
  log "creating a throwaway cluster in $DIR (owner $OWNER, $("$BIN/postgres" --version))"
  rm -rf -- "$DIR"
  mkdir -p "$DIR" "$SOCK"
  chmod 0700 "$DIR" "$SOCK"
  chown "$OWNER" "$DIR" "$SOCK"
  password="$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  printf '%s\n' "$password" >"$DIR/pwfile"
  chown "$OWNER" "$DIR/pwfile"; chmod 0600 "$DIR/pwfile"
  as_owner "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$DIR/pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  rm -f "$DIR/pwfile"
  cat >>"$DATA/postgresql.conf" <<EOF

# --- mcp-gateway throwaway cluster (scripts/start-postgres.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 64MB
EOF
  # Only loopback over TCP, with the password; the socket directory is private to the owner.
  cat >"$DATA/pg_hba.conf" <<EOF
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
EOF
  printf 'postgres://postgres:%s@127.0.0.1:PORT/%s\n' "$password" "$DB" >"$DIR/url.template"
  chmod 0600 "$DIR/url.template"
fi

if is_running; then
  log "reusing the running cluster in $DIR"
else
  port="$(cat "$DIR/port" 2>/dev/null || true)"
  if [[ -z "$port" ]] || port_busy "$port"; then port="$(pick_port)"; fi
  for attempt in 1 2 3; do
    printf '%s\n' "$port" >"$DIR/port"
    if as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -o "-p $port" -w -t 60 start >&2 9>&-; then break; fi
    (( attempt < 3 )) || { tail -n 20 "$DIR/postgres.log" >&2 || true; die "pg_ctl start failed (log: $DIR/postgres.log)"; }
    log "start failed on port $port, trying another"
    port="$(pick_port)"
  done
  sed "s/:PORT\//:$port\//" "$DIR/url.template" >"$DIR/url"
  chmod 0600 "$DIR/url"
fi

if [[ "$(psql_owner -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]]; then
  psql_owner -d postgres -c "CREATE DATABASE $DB" >&2
fi
cat "$DIR/url"
