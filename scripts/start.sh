#!/usr/bin/env bash
# scripts/start.sh — `npm start`: the onboarding API on 127.0.0.1:${PORT:-8080} with embedded defaults
# (PGlite and the credentials key under .data/). Configuration: see config/service-config.ts.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
if [ ! -d node_modules ]; then
  echo "start.sh: node_modules missing; running npm ci" >&2
  npm ci >&2
fi
# TOOLCHAIN: the lead adds the Pulumi toolchain step here (scripts/toolchain.sh).
exec node --import tsx api/server.ts
