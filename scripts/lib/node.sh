# scripts/lib/node.sh — put the project's Node.js first on PATH. Source it (env.sh does):
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib/node.sh"
#
# When scripts/toolchain.sh installed Node.js under .tools/node (the machine's node being older than
# 22.12), $REPO_ROOT/.tools/node/bin goes first on PATH, so `node`, `npx`, vitest, the Pulumi language
# host and the service all run on it. Otherwise PATH is left as it is. Never exits the calling shell.

__mx_node_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -x "$__mx_node_root/.tools/node/bin/node" ]; then
  case ":$PATH:" in
    ":$__mx_node_root/.tools/node/bin:"*) ;;
    *) PATH="$__mx_node_root/.tools/node/bin:$PATH" ;;
  esac
  export PATH
fi
unset __mx_node_root
