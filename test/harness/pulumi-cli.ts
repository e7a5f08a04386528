/** The repo's pinned `pulumi` CLI against a service's workspace, and the CLI processes working on a stack. */
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { isPulumiProcessOf } from "../../services/run/orphans";
import { REPO_ROOT } from "./moto";
import type { ServiceWorkspace } from "./service-workspace";

/** Runs the repo's pinned `pulumi` CLI (.tools/bin) with the given environment; never throws on a non-zero exit. */
export async function pulumiCli(
  args: string[],
  { cwd, env }: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const bin = join(REPO_ROOT, ".tools", "bin", "pulumi");
  const child = spawn(bin, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (exitCode) => resolve(exitCode));
  });
  return { code, stdout, stderr };
}

/** How many updates a stack's history holds (`pulumi stack history`); throws when the CLI fails. */
export async function stackHistoryLength(workspace: ServiceWorkspace, stackName: string): Promise<number> {
  const history = await pulumiCli(["stack", "history", "--stack", stackName, "--json", "--non-interactive"], {
    cwd: workspace.projectDir,
    env: workspace.cliEnv(),
  });
  if (history.code !== 0) throw new Error(`pulumi stack history --stack ${stackName} exited ${history.code}: ${history.stderr}`);
  return (JSON.parse(history.stdout) as unknown[]).length;
}

/** Live `pulumi` CLI processes working on a stack (Linux /proc; zombies left out). */
export async function pulumiProcessesOf(stackName: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const args = await readFile(`/proc/${entry}/cmdline`, "utf8").then(
      (text) => text.split("\0"),
      () => [],
    );
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    if (isPulumiProcessOf(args, stackName) && !/^\d+ \(.*\) Z/.test(stat)) pids.push(Number(entry));
  }
  return pids;
}
