#!/usr/bin/env bash
# scripts/node.sh — run the project's Node.js (.tools/node when the machine's is older than 22.12) with the given
# arguments; what npm scripts use, since npm runs them with sh.
set -euo pipefail
# shellcheck source=lib/node.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/node.sh"
exec node "$@"
