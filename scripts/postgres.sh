#!/usr/bin/env bash
# scripts/postgres.sh — a throwaway PostgreSQL server for the tests.
#
#   scripts/postgres.sh [start]   ensure the server runs; print its URL as the ONLY stdout line:
#                                   postgres://postgres:<password>@127.0.0.1:<port>/mini_xdr_test
#   scripts/postgres.sh stop      stop it (keeps the files)
#   scripts/postgres.sh status    exit 0 and print the URL if it runs, exit 3 otherwise
#   scripts/postgres.sh destroy   stop it and delete its files
#
# Uses the Debian `postgresql` package's binaries (/usr/lib/postgresql/<ver>/bin), installing the
# package with apt-get when missing (root only). The cluster lives in $TEST_POSTGRES_DIR (default
# <repo>/.data/test-postgres): data/ (initdb), run/ (unix socket), postgres.log, port, password.
# It listens on 127.0.0.1 only, on a free port chosen at first start, with scram-sha-256 password
# auth over TCP (peer/trust only on its private unix socket). Durability is off: test data only.
# When run as root, the server runs as the `postgres` user (initdb refuses root).
# Idempotent and safe to run concurrently (flock). Everything except the URL goes to stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${TEST_POSTGRES_DIR:-$REPO_ROOT/.data/test-postgres}"
DB_NAME="mini_xdr_test"
DB_USER="postgres"
PGDATA_DIR="$BASE/data"
SOCKET_DIR="$BASE/run"
LOG_FILE="$BASE/postgres.log"
PORT_FILE="$BASE/port"
PASSWORD_FILE="$BASE/password"

log() { echo "postgres.sh: $*" >&2; }
die() { echo "postgres.sh: error: $*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Newest installed server version's bin directory, or nothing.
find_bindir() {
  local dir best=""
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] || continue
    if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$dir" | sort -V | tail -n1)" = "$dir" ]; then best="$dir"; fi
  done
  printf '%s' "$best"
}

ensure_installed() {
  BIN="$(find_bindir)"
  [ -n "$BIN" ] && return 0
  if ! is_root; then
    die "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb) and this script is not root, so it cannot install them. Install them once with: sudo apt-get install -y postgresql"
  fi
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available; install the PostgreSQL server (initdb, pg_ctl) by hand"
  log "installing the Debian postgresql package (apt-get update, apt-get install -y postgresql)"
  apt-get update >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2 || die "apt-get install -y postgresql failed"
  BIN="$(find_bindir)"
  [ -n "$BIN" ] || die "postgresql was installed but no /usr/lib/postgresql/*/bin/initdb was found"
}

# Runs a command as the cluster owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
  if is_root; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close()})'
}

is_running() {
  [ -f "$PGDATA_DIR/PG_VERSION" ] && as_owner "$BIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

url() {
  local port password
  port="$(cat "$PORT_FILE")"
  password="$(cat "$PASSWORD_FILE")"
  printf 'postgres://%s:%s@127.0.0.1:%s/%s\n' "$DB_USER" "$password" "$port" "$DB_NAME"
}

prepare_base() {
  mkdir -p "$BASE"
  if is_root; then
    id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' user to run the server as (is the postgresql package installed?)"
    chown postgres:postgres "$BASE"
  fi
  chmod 700 "$BASE"
  as_owner test -w "$BASE" -a -x "$BASE" ||
    die "$BASE is not writable by the cluster owner ($(is_root && echo postgres || id -un)); check the permissions of its parent directories"
}

init_cluster() {
  [ -f "$PGDATA_DIR/PG_VERSION" ] && return 0
  log "creating a throwaway cluster in $PGDATA_DIR with $BIN/initdb"
  rm -rf "$PGDATA_DIR"
  as_owner sh -c 'umask 077; od -An -tx1 -N24 /dev/urandom | tr -d " \n" > "$1"' sh "$PASSWORD_FILE"
  as_owner "$BIN/initdb" -D "$PGDATA_DIR" -U "$DB_USER" --pwfile="$PASSWORD_FILE" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync >&2 ||
    die "initdb failed"
  as_owner mkdir -p "$SOCKET_DIR"
}

start_server() {
  local attempt port
  for attempt in 1 2 3 4 5; do
    # Keep the previous port when it is still free, so the URL survives a restart.
    port=""
    if [ -s "$PORT_FILE" ] && node -e 'const s=require("net").createServer();s.once("error",()=>process.exit(1));s.listen(+process.argv[1],"127.0.0.1",()=>s.close())' "$(cat "$PORT_FILE")" 2>/dev/null; then
      port="$(cat "$PORT_FILE")"
    fi
    [ -n "$port" ] || port="$(free_port)"
    log "starting PostgreSQL ($BIN) on 127.0.0.1:$port (log: $LOG_FILE)"
    # 9>&-: the server must not inherit the lock's file descriptor (it would hold the lock forever).
    if as_owner "$BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$LOG_FILE" -w -t 60 -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$SOCKET_DIR' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >&2 9>&-; then
      as_owner sh -c 'printf "%s\n" "$2" > "$1"' sh "$PORT_FILE" "$port"
      return 0
    fi
    log "start attempt $attempt failed (port taken?); last log lines:"
    tail -n 5 "$LOG_FILE" >&2 2>/dev/null || true
  done
  die "could not start PostgreSQL; see $LOG_FILE"
}

ensure_database() {
  local port exists
  port="$(cat "$PORT_FILE")"
  exists="$(as_owner "$BIN/psql" -X -q -h "$SOCKET_DIR" -p "$port" -U "$DB_USER" -d postgres -tAc \
    "select 1 from pg_database where datname = '$DB_NAME'")" || die "cannot query the server through $SOCKET_DIR"
  if [ "$exists" != "1" ]; then
    log "creating database $DB_NAME"
    as_owner "$BIN/createdb" -h "$SOCKET_DIR" -p "$port" -U "$DB_USER" "$DB_NAME" >&2 || die "createdb failed"
  fi
}

with_lock() {
  mkdir -p "$(dirname "$BASE")"
  exec 9>"$BASE.lock"
  flock -w 120 9 || die "timed out waiting for another scripts/postgres.sh ($BASE.lock)"
}

cmd="${1:-start}"
case "$cmd" in
  start)
    with_lock
    ensure_installed
    prepare_base
    if ! is_running; then
      init_cluster
      start_server
    fi
    ensure_database
    url
    ;;
  stop)
    with_lock
    BIN="$(find_bindir)"
    if [ -n "$BIN" ] && is_running; then
      log "stopping PostgreSQL in $PGDATA_DIR"
      as_owner "$BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w >&2
    else
      log "not running"
    fi
    ;;
  status)
    BIN="$(find_bindir)"
    if [ -n "$BIN" ] && is_running && [ -s "$PORT_FILE" ]; then url; else log "not running"; exit 3; fi
    ;;
  destroy)
    with_lock
    BIN="$(find_bindir)"
    if [ -n "$BIN" ] && is_running; then as_owner "$BIN/pg_ctl" stop -D "$PGDATA_DIR" -m immediate -w >&2 || true; fi
    rm -rf "$BASE"
    log "removed $BASE"
    ;;
  *)
    echo "usage: scripts/postgres.sh [start|stop|status|destroy]" >&2
    exit 2
    ;;
esac
