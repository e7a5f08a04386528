#!/usr/bin/env bash
# scripts/start.sh — `npm start`: the onboarding API on 127.0.0.1:${PORT:-8080} with embedded defaults: PGlite, the
# credentials key, the Pulumi file state backend and passphrase, all under .data/ (generated once, with a warning).
# Configuration: see config/service-config.ts. Stack runs use the pinned Pulumi CLI in .tools/ (scripts/toolchain.sh).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "start: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
bash scripts/toolchain.sh --quiet --pulumi-only
# shellcheck source=lib/env.sh
. scripts/lib/env.sh
exec node --import tsx api/server.ts
