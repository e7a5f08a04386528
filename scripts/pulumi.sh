#!/usr/bin/env bash
# scripts/pulumi.sh — run the project's pinned Pulumi CLI: `npm run pulumi -- <args>`.
# Ensures the toolchain (fast and silent when already in place), loads scripts/lib/env.sh
# (local file:// backend under .data/, passphrase, no update checks or plugin downloads)
# and runs `pulumi <args>` from the repository root. Use `--cwd <dir>` for another project.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/toolchain.sh" --quiet
. "$here/lib/env.sh"
cd "$REPO_ROOT"
exec pulumi "$@"
