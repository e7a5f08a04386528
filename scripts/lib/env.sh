# scripts/lib/env.sh — common environment for the project's scripts. Source it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib/env.sh"     (from a script in scripts/)
#
# Sets and exports:
#   REPO_ROOT                  the repository root (computed from this file's location)
#   PATH                       with $REPO_ROOT/.tools/node/bin (when the toolchain installed Node.js there,
#                              scripts/lib/node.sh) and $REPO_ROOT/.tools/bin first (see scripts/toolchain.sh)
#   PULUMI_SKIP_UPDATE_CHECK=true, PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
#   PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=true   a stack config file without secrets-manager state takes the
#                              checkpoint's (as the service does, automation/tenant-stack.ts) instead of a new one
#   MX_DATA_DIR                where the service keeps its data: $DATA_DIR when set (relative to the current
#                              directory, as the service resolves it), else $REPO_ROOT/.data
#   PULUMI_HOME                default $MX_DATA_DIR/pulumi-home
#   PULUMI_BACKEND_URL         exported when set (a file:// directory is created); when unset, the service and
#                              scripts/pulumi.sh use the postgres:// backend next to their database
#                              (automation/state-backend.ts)
#   PULUMI_CONFIG_PASSPHRASE   from the environment if set; else, unless
#                              PULUMI_CONFIG_PASSPHRASE_FILE is set, read from
#                              $MX_DATA_DIR/pulumi-passphrase, which is generated once
#                              (openssl rand -hex 32, mode 600) with a warning on stderr.
# Keep that file: it decrypts the secrets in every stack of the default backend.
# Meant for bash; does not change shell options and never exits the calling shell.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT

case ":$PATH:" in
  *":$REPO_ROOT/.tools/bin:"*) ;;
  *) PATH="$REPO_ROOT/.tools/bin:$PATH" ;;
esac
export PATH
# shellcheck source=node.sh
. "$REPO_ROOT/scripts/lib/node.sh"

export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=true
if [ -n "${DATA_DIR:-}" ]; then
  case "$DATA_DIR" in
    /*) MX_DATA_DIR="$DATA_DIR" ;;
    *) MX_DATA_DIR="$PWD/$DATA_DIR" ;;
  esac
else
  MX_DATA_DIR="$REPO_ROOT/.data"
fi
export MX_DATA_DIR
export PULUMI_HOME="${PULUMI_HOME:-$MX_DATA_DIR/pulumi-home}"
if [ -n "${PULUMI_BACKEND_URL:-}" ]; then
  export PULUMI_BACKEND_URL
  case "$PULUMI_BACKEND_URL" in
    file://*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;;
  esac
fi

__mx_passphrase() {
  local file="$MX_DATA_DIR/pulumi-passphrase" tmp
  if [ ! -s "$file" ]; then
    mkdir -p "$MX_DATA_DIR" || return 1
    tmp="$(umask 077 && mktemp "$MX_DATA_DIR/.pulumi-passphrase.XXXXXX")" || return 1
    if command -v openssl >/dev/null 2>&1; then
      openssl rand -hex 32 >"$tmp"
    else
      od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$tmp" && echo >>"$tmp"
    fi
    chmod 600 "$tmp"
    # `ln` refuses to replace an existing file, so when two processes race here exactly
    # one passphrase wins and both use it.
    if [ -s "$tmp" ] && ln "$tmp" "$file" 2>/dev/null; then
      echo "env.sh: generated a new Pulumi passphrase in $file (keep it: it decrypts the local stacks' secrets)" >&2
    fi
    rm -f "$tmp"
  fi
  PULUMI_CONFIG_PASSPHRASE="$(tr -d '\r\n' <"$file")" || return 1
  export PULUMI_CONFIG_PASSPHRASE
}

if [ -n "${PULUMI_CONFIG_PASSPHRASE+set}" ]; then
  export PULUMI_CONFIG_PASSPHRASE
elif [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  __mx_passphrase || echo "env.sh: warning: could not read or create $MX_DATA_DIR/pulumi-passphrase" >&2
fi
unset -f __mx_passphrase
