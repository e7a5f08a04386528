#!/usr/bin/env bash
# scripts/kubernetes-toolchain.sh — a real Kubernetes control plane and the real Pulumi Kubernetes provider for the
# tests (test/harness/kubernetes-cluster.ts, test/integration/kubernetes-agent.test.ts), under <repo>/.tools/kubernetes
# (git-ignored):
#
#   bin/etcd                         etcd $ETCD_VERSION built from tools/etcd-server (KUBERNETES_TOOLCHAIN_ETCD=apt:
#                                    Debian's etcd-server 3.4 instead, apt-get as root; it works, twice as slow)
#   bin/kube-apiserver               Kubernetes $KUBERNETES_VERSION, built from tools/kubernetes-control-plane
#   bin/kube-controller-manager        (k8s.io/kubernetes with its staging modules replaced by the published ones)
#   bin/kube-scheduler
#   bin/kwok                         kwok $KWOK_VERSION (fake nodes and pods), built from tools/kwok, and
#   bin/kwok-stages.yaml               its default stages (what kwokctl configures: nodes Ready, pods Running) from its module
#   bin/pulumi-resource-kubernetes   the Pulumi Kubernetes provider $PROVIDER_VERSION, built from
#                                    tools/pulumi-resource-kubernetes (the version @pulumi/kubernetes in package.json asks for)
#   pulumi-home/plugins/             that provider installed as a Pulumi plugin (`pulumi plugin install --file`) with
#                                    the CLI of scripts/toolchain.sh (run that first); the tests link their PULUMI_HOME's
#                                    plugins here
#
# Everything comes from the Go module proxy, pinned by version and by the wrapper
# modules' go.mod/go.sum. Built binaries are kept in the per-user cache
# ${XDG_CACHE_HOME:-$HOME/.cache}/mini-xdr-toolchain/<name>-<version>/ with a stamp "<origin> <version> <hash>" (the hash
# covers the wrapper module and the link flags), so a second checkout, or a fresh .tools, takes seconds. Cold, on 2
# cores: about 20 minutes of builds (the control plane ~8 min, the provider ~12 min, its link ~5 GB of RAM).
#
# Usage: scripts/kubernetes-toolchain.sh [--quiet]
#   --quiet (or TOOLCHAIN_QUIET=1): print nothing when nothing has to be done. Slow steps always report on stderr.
# Exits non-zero with one message naming what is missing.
set -euo pipefail

KUBERNETES_VERSION="v1.37.2"
ETCD_VERSION="v3.7.3"
KWOK_VERSION="v0.8.0"
PROVIDER_VERSION="4.25.0"
PROVIDER_MODULE="github.com/pulumi/pulumi-kubernetes/provider/v4"
GO_MIN="1.26.0" # the `go` line of tools/kubernetes-control-plane/go.mod

QUIET="${TOOLCHAIN_QUIET:-0}"
for arg in "$@"; do
  case "$arg" in
    -q | --quiet) QUIET=1 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "kubernetes-toolchain: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$REPO_ROOT/.tools"
OUT="$TOOLS/kubernetes"
BIN="$OUT/bin"
PLUGIN_HOME="$OUT/pulumi-home"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/mini-xdr-toolchain"
PULUMI="$TOOLS/bin/pulumi"

say() { [ "$QUIET" = 1 ] || echo "kubernetes-toolchain: $*" >&2; }
work() { echo "kubernetes-toolchain: $*" >&2; } # slow steps: always shown
die() { echo "kubernetes-toolchain: error: $*" >&2; exit 1; }

mkdir -p "$BIN"
BUILD_DIR="" # the build in progress, removed however the script ends
trap '[ -z "$BUILD_DIR" ] || rm -rf "$BUILD_DIR"' EXIT

# One run at a time per checkout (parallel test runners, several terminals).
if command -v flock >/dev/null 2>&1; then
  exec 8>"$OUT/.lock"
  if ! flock -n 8; then
    work "waiting for another kubernetes-toolchain.sh run to finish..."
    flock 8
  fi
fi

# ----------------------------------------------------------------------------------------
# Components. Each: its wrapper module, its binaries, its version, its cache dir and its link flags.

CP_SRC="$REPO_ROOT/tools/kubernetes-control-plane"
CP_TOOLS="kube-apiserver kube-controller-manager kube-scheduler"
CP_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  CP_LDFLAGS+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=$(echo "${KUBERNETES_VERSION#v}" | cut -d. -f1)"
  CP_LDFLAGS+=" -X $pkg.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
done
KWOK_SRC="$REPO_ROOT/tools/kwok"
KWOK_LDFLAGS="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
# kwok simulates nothing without stages. These are the defaults kwokctl gives it (kwok's lease on: the heartbeat
# with lease), from kwok's module: nodes become Ready, pods Running and Ready, deleted pods go.
KWOK_STAGES="node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete"
PROVIDER_SRC="$REPO_ROOT/tools/pulumi-resource-kubernetes"
PROVIDER_LDFLAGS="-s -w -X $PROVIDER_MODULE/pkg/version.Version=$PROVIDER_VERSION"
ETCD_SRC="$REPO_ROOT/tools/etcd-server"
ETCD_LDFLAGS="-s -w"

src_hash() { # <module dir> <ldflags>: hash of what the build depends on (tests excluded)
  {
    (cd "$1" && find . -maxdepth 1 -type f \( -name go.mod -o -name go.sum -o -name '*.go' \) ! -name '*_test.go' |
      LC_ALL=C sort | xargs sha256sum)
    echo "$2"
  } | sha256sum | cut -c1-16
}

stamp_ok() { # <dir> <tool> <version> <hash>: is <dir>/<tool> present and right for this checkout?
  local dir="$1" tool="$2" origin version hash
  [ -f "$dir/$tool" ] && [ -r "$dir/.stamp-$tool" ] || return 1
  case "$tool" in *.yaml) ;; *) [ -x "$dir/$tool" ] || return 1 ;; esac
  read -r origin version hash <"$dir/.stamp-$tool" || return 1
  [ "$version" = "$3" ] || return 1
  case "$origin" in
    apt) return 0 ;;
    source) [ "$hash" = "$4" ] ;;
    *) return 1 ;;
  esac
}

all_ok() { # <dir> <version> <hash> <tool>...
  local dir="$1" version="$2" hash="$3" tool
  shift 3
  for tool in "$@"; do stamp_ok "$dir" "$tool" "$version" "$hash" || return 1; done
}

install_file() { # <src> <dest dir> <tool> <stamp line>: atomic copy + stamp
  local tmp="$2/.$3.tmp.$$"
  cp "$1" "$tmp" && chmod "$(case "$3" in *.yaml) echo 644 ;; *) echo 755 ;; esac)" "$tmp" && mv -f "$tmp" "$2/$3"
  echo "$4" >"$2/.stamp-$3"
}

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

require_go() { # <what>
  go_usable || die "building $1 needs Go >= $GO_MIN ($GO_ERR) and the Go module proxy; or put the built binaries in the cache $CACHE_ROOT"
}

# Go builds: the local toolchain only (no toolchain download), no cgo, at low priority (the machine stays usable).
gobuild() { # <module dir> <log> <ldflags> <output> <package>...
  local dir="$1" log="$2" ldflags="$3" output="$4"
  shift 4
  (cd "$dir" && GOTOOLCHAIN=local CGO_ENABLED=0 nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$output" "$@") >>"$log" 2>&1
}

module_dir_of() { # <module dir> <required module> <log>: where the Go module cache holds it (downloaded if needed)
  local dir
  dir="$(cd "$1" && GOTOOLCHAIN=local go mod download -json "$2" 2>>"$3" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] && [ -d "$dir" ] || build_failed "$2 (module download)" "$3"
  echo "$dir"
}

build_failed() { # <what> <log>
  tail -n 20 "$2" >&2
  die "go build of $1 failed (full log: $2)"
}

# ensure <name> <version> <hash> <builder> <tool>...: .tools/kubernetes/bin, else the cache, else <builder> (which
# leaves the binaries in the directory it is given).
ensure() {
  local name="$1" version="$2" hash="$3" builder="$4" cache tool tmp started
  shift 4
  cache="$CACHE_ROOT/$name-$version"
  if all_ok "$BIN" "$version" "$hash" "$@"; then
    say "$name $version: ok"
    return 0
  fi
  if all_ok "$cache" "$version" "$hash" "$@"; then
    for tool in "$@"; do install_file "$cache/$tool" "$BIN" "$tool" "$(cat "$cache/.stamp-$tool")"; done
    say "$name $version: copied from $cache"
    return 0
  fi
  tmp="$(mktemp -d "$OUT/.build-$name.XXXXXX")"
  BUILD_DIR="$tmp"
  started=$SECONDS
  "$builder" "$tmp"
  for tool in "$@"; do
    [ -f "$tmp/$tool" ] || die "the build of $name left no $tool (see $OUT/build-$name.log)"
    install_file "$tmp/$tool" "$BIN" "$tool" "source $version $hash"
  done
  rm -rf "$tmp"
  BUILD_DIR=""
  if mkdir -p "$cache" 2>/dev/null; then
    for tool in "$@"; do
      install_file "$BIN/$tool" "$cache" "$tool" "source $version $hash" 2>/dev/null || say "could not write the cache $cache (continuing)"
    done
  else
    say "could not write the cache $cache (continuing)"
  fi
  work "$name $version: built in $((SECONDS - started)) s"
}

# ----------------------------------------------------------------------------------------
# Builders.

build_control_plane() { # <out dir>
  local log="$OUT/build-kubernetes.log"
  require_go "Kubernetes $KUBERNETES_VERSION"
  : >"$log"
  work "building kube-apiserver, kube-controller-manager, kube-scheduler $KUBERNETES_VERSION with Go (~6 min and ~3 GB of RAM on a cold Go cache; log: $log)..."
  gobuild "$CP_SRC" "$log" "$CP_LDFLAGS" "$1/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler ||
    build_failed "Kubernetes $KUBERNETES_VERSION" "$log"
  local version
  version="$("$1/kube-apiserver" --version 2>/dev/null || true)"
  [ "$version" = "Kubernetes $KUBERNETES_VERSION" ] || die "the built kube-apiserver says '$version', not 'Kubernetes $KUBERNETES_VERSION'"
}

build_kwok() { # <out dir>
  local log="$OUT/build-kwok.log"
  require_go "kwok $KWOK_VERSION"
  : >"$log"
  work "building kwok $KWOK_VERSION with Go (~1-2 min on a cold Go cache; log: $log)..."
  gobuild "$KWOK_SRC" "$log" "$KWOK_LDFLAGS" "$1/kwok" sigs.k8s.io/kwok/cmd/kwok || build_failed "kwok $KWOK_VERSION" "$log"
  local module_dir stage
  module_dir="$(module_dir_of "$KWOK_SRC" sigs.k8s.io/kwok "$log")"
  for stage in $KWOK_STAGES; do
    [ -r "$module_dir/kustomize/stage/$stage.yaml" ] || die "kwok's module has no kustomize/stage/$stage.yaml"
    echo "---"
    cat "$module_dir/kustomize/stage/$stage.yaml"
  done >"$1/kwok-stages.yaml"
}

build_etcd() { # <out dir>
  local log="$OUT/build-etcd.log"
  require_go "etcd $ETCD_VERSION"
  : >"$log"
  work "building etcd $ETCD_VERSION with Go (~1 min on a cold Go cache; log: $log)..."
  gobuild "$ETCD_SRC" "$log" "$ETCD_LDFLAGS" "$1/etcd" go.etcd.io/etcd/server/v3 || build_failed "etcd $ETCD_VERSION" "$log"
}

# The provider's main package embeds schema-embed.json and terraform-mapping-embed.json, which upstream makes with
# `go generate` (generate.go, copied here) and its module zip lacks: they are made in a build copy of the wrapper from
# the zip's schema.json (its version set to $PROVIDER_VERSION) and terraform-mapping.json.
build_provider() { # <out dir>
  local log="$OUT/build-pulumi-resource-kubernetes.log" work_dir module_dir
  require_go "pulumi-resource-kubernetes $PROVIDER_VERSION"
  : >"$log"
  work_dir="$1/src"
  mkdir -p "$work_dir"
  cp "$PROVIDER_SRC"/go.mod "$PROVIDER_SRC"/go.sum "$PROVIDER_SRC"/*.go "$work_dir/"
  module_dir="$(module_dir_of "$work_dir" "$PROVIDER_MODULE" "$log")"
  [ -r "$module_dir/cmd/pulumi-resource-kubernetes/schema.json" ] || die "$PROVIDER_MODULE has no cmd/pulumi-resource-kubernetes/schema.json"
  cp "$module_dir/cmd/pulumi-resource-kubernetes/schema.json" "$module_dir/cmd/pulumi-resource-kubernetes/terraform-mapping.json" "$work_dir/"
  chmod u+w "$work_dir"/*
  work "generating the provider's embedded schema (version $PROVIDER_VERSION)..."
  (cd "$work_dir" && VERSION="$PROVIDER_VERSION" GOTOOLCHAIN=local CGO_ENABLED=0 nice -n 10 go run generate.go) >>"$log" 2>&1 ||
    build_failed "the provider's schema generator" "$log"
  [ -s "$work_dir/schema-embed.json" ] && [ -s "$work_dir/terraform-mapping-embed.json" ] ||
    die "the schema generator made no schema-embed.json/terraform-mapping-embed.json (see $log)"
  work "building pulumi-resource-kubernetes $PROVIDER_VERSION with Go (~9 min and ~5 GB of RAM on a cold Go cache; log: $log)..."
  gobuild "$work_dir" "$log" "$PROVIDER_LDFLAGS" "$1/pulumi-resource-kubernetes" . ||
    build_failed "pulumi-resource-kubernetes $PROVIDER_VERSION" "$log"
}

# ----------------------------------------------------------------------------------------
# etcd: our build of $ETCD_VERSION (about 30 s once the Kubernetes build filled the Go cache), or with
# KUBERNETES_TOOLCHAIN_ETCD=apt Debian's etcd-server. Debian's is 3.4, older than what Kubernetes $KUBERNETES_VERSION
# expects (the API server logs that RequestWatchProgress is not supported); it works, but the agent test ran about
# twice as long on it.

apt_etcd_version() { # the version of /usr/bin/etcd, e.g. 3.4.23; empty when absent or broken
  [ -x /usr/bin/etcd ] || return 0
  timeout 10 /usr/bin/etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p'
}

from_apt_etcd() {
  local version
  version="$(apt_etcd_version)"
  if [ -z "$version" ]; then
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 1
    work "installing Debian's etcd-server (apt-get)..."
    local log="$OUT/apt-etcd.log"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >"$log" 2>&1; then
      apt-get update -qq >>"$log" 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >>"$log" 2>&1 || {
        work "apt-get install etcd-server failed (see $log); building etcd instead"
        return 1
      }
    fi
    version="$(apt_etcd_version)"
    [ -n "$version" ] || return 1
  fi
  if [ "$(readlink "$BIN/etcd" 2>/dev/null)" != /usr/bin/etcd ] || ! stamp_ok "$BIN" etcd "$version" -; then
    ln -sfn /usr/bin/etcd "$BIN/etcd"
    echo "apt $version -" >"$BIN/.stamp-etcd"
  fi
  say "etcd $version (Debian's etcd-server): ok"
}

ensure_etcd() {
  if [ "${KUBERNETES_TOOLCHAIN_ETCD:-source}" = apt ] && from_apt_etcd; then return 0; fi
  # A symlink to Debian's etcd would be written through by install_file: drop it first.
  [ -L "$BIN/etcd" ] && rm -f "$BIN/etcd" "$BIN/.stamp-etcd"
  ensure etcd "$ETCD_VERSION" "$(src_hash "$ETCD_SRC" "$ETCD_LDFLAGS")" build_etcd etcd
}

# ----------------------------------------------------------------------------------------
# The provider as a Pulumi plugin, installed with the pinned CLI into .tools/kubernetes/pulumi-home.

ensure_plugin() {
  local plugin_dir="$PLUGIN_HOME/plugins/resource-kubernetes-v$PROVIDER_VERSION" stamp
  stamp="$(cat "$BIN/.stamp-pulumi-resource-kubernetes")"
  if [ -x "$plugin_dir/pulumi-resource-kubernetes" ] && [ "$(cat "$PLUGIN_HOME/.stamp-plugin" 2>/dev/null)" = "$stamp" ] &&
    [ "$(stat -c %s "$plugin_dir/pulumi-resource-kubernetes")" = "$(stat -c %s "$BIN/pulumi-resource-kubernetes")" ]; then
    say "plugin resource kubernetes $PROVIDER_VERSION in $PLUGIN_HOME: ok"
    return 0
  fi
  [ -x "$PULUMI" ] || die "no Pulumi CLI at $PULUMI to install the provider plugin with: run scripts/toolchain.sh first"
  work "installing the provider as plugin resource kubernetes $PROVIDER_VERSION into $PLUGIN_HOME..."
  mkdir -p "$PLUGIN_HOME"
  local log="$OUT/plugin-install.log"
  if ! PULUMI_HOME="$PLUGIN_HOME" PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true \
    "$PULUMI" plugin install resource kubernetes "$PROVIDER_VERSION" --file "$BIN/pulumi-resource-kubernetes" --reinstall \
    --non-interactive >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "pulumi plugin install resource kubernetes $PROVIDER_VERSION failed (full log: $log)"
  fi
  [ -x "$plugin_dir/pulumi-resource-kubernetes" ] || die "pulumi plugin install put no binary in $plugin_dir (see $log)"
  echo "$stamp" >"$PLUGIN_HOME/.stamp-plugin"
}

ensure_etcd
ensure kwok "$KWOK_VERSION" "$(src_hash "$KWOK_SRC" "$KWOK_LDFLAGS $KWOK_STAGES")" build_kwok kwok kwok-stages.yaml
# shellcheck disable=SC2086 # the tool list
ensure kubernetes "$KUBERNETES_VERSION" "$(src_hash "$CP_SRC" "$CP_LDFLAGS")" build_control_plane $CP_TOOLS
ensure pulumi-resource-kubernetes "$PROVIDER_VERSION" "$(src_hash "$PROVIDER_SRC" "$PROVIDER_LDFLAGS")" build_provider \
  pulumi-resource-kubernetes
ensure_plugin
