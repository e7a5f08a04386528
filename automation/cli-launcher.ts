/**
 * Every CLI command of the Automation API runs in a session (and process group) of its own, so that recovery, a
 * timeout or a cancel can end the operation whole: the CLI and its provider plugins (services/run/orphans.ts).
 *
 * The Automation API spawns `<root>/bin/pulumi` itself and offers no hook on the spawn, so the root it is given is a
 * launcher's: `bin/pulumi` is a two-line script that execs util-linux `setsid` on the real CLI. The Automation API's
 * child is never a process-group leader, so setsid calls setsid(2) without forking: the CLI keeps the child's pid,
 * the Automation API still signals the CLI itself (SIGINT on abort), and the session id is the CLI's pid. Production
 * and tests use this same path (resolvePulumiCli).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { ToolchainMissingError } from "./errors";
import type { AutomationSettings } from "./settings";

/** An executable by absolute path: `name` in one of PATH's folders (the launcher's own folder is never on it yet). */
function findOnPath(name: string): string | undefined {
  for (const folder of (process.env.PATH ?? "").split(delimiter)) {
    if (folder && existsSync(join(folder, name))) return join(folder, name);
  }
  return undefined;
}

const launchers = new Map<string, Promise<string>>();

const shellQuote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;

/** The launcher root (its bin/pulumi runs the real CLI in a new session); written once per process and CLI. */
export function cliLauncherRoot(settings: Pick<AutomationSettings, "pulumiRoot" | "pulumiHome">): Promise<string> {
  const cli = settings.pulumiRoot ? join(settings.pulumiRoot, "bin", "pulumi") : findOnPath("pulumi");
  if (!cli) return Promise.reject(new ToolchainMissingError("pulumi is not on PATH"));
  let launcher = launchers.get(cli);
  if (!launcher) {
    launcher = (async () => {
      const setsid = findOnPath("setsid") ?? ["/usr/bin/setsid", "/bin/setsid"].find((path) => existsSync(path));
      if (!setsid) throw new ToolchainMissingError("setsid (util-linux) is not installed; it starts each stack operation in a session of its own");
      const root = settings.pulumiHome
        ? join(settings.pulumiHome, "launcher", createHash("sha256").update(cli).digest("hex").slice(0, 16))
        : await mkdtemp(join(tmpdir(), "mxdr-pulumi-launcher-"));
      await mkdir(join(root, "bin"), { recursive: true, mode: 0o700 });
      const script = `#!/bin/sh\n# mini-xdr: the CLI in a session of its own (automation/cli-launcher.ts)\nexec ${shellQuote(setsid)} -w ${shellQuote(cli)} "$@"\n`;
      const temporary = join(root, "bin", `.pulumi-${process.pid}`);
      await writeFile(temporary, script, { mode: 0o755 });
      await chmod(temporary, 0o755);
      await rename(temporary, join(root, "bin", "pulumi"));
      return root;
    })();
    launcher.catch(() => launchers.delete(cli));
    launchers.set(cli, launcher);
  }
  return launcher;
}
