#!/usr/bin/env bash
# scripts/pulumi.sh — run the project's pinned Pulumi CLI: `npm run pulumi -- <args>`.
# Ensures the toolchain (fast and silent when already in place), loads scripts/lib/env.sh (the project's Node.js
# and CLI first on PATH, passphrase, no update checks or plugin downloads) and runs `pulumi <args>` from the
# repository root, on the same state backend as the service (same configuration: PULUMI_BACKEND_URL, else the
# postgres:// backend in DATABASE_URL's server or in the embedded server under DATA_DIR, database `<name>_state`).
# When the embedded server is not running, it is started for the command and stopped afterwards unless something
# else (`npm start`) connected meanwhile. Use `--cwd <dir>` for another project.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/toolchain.sh" --quiet --pulumi-only
. "$here/lib/env.sh"
cd "$REPO_ROOT"

started=""
if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
  backend="$(node --import tsx scripts/embedded-postgres.ts state-url)"
  PULUMI_BACKEND_URL="$(sed -n 1p <<<"$backend")"
  export PULUMI_BACKEND_URL
  [ "$(sed -n 2p <<<"$backend")" = started ] && started=1
fi
if [ -z "$started" ]; then exec pulumi "$@"; fi

status=0
pulumi "$@" || status=$?
node --import tsx scripts/embedded-postgres.ts stop --if-idle --dir "${DATA_DIR:-$REPO_ROOT/.data}/postgres" >/dev/null 2>&1 || true
exit "$status"
