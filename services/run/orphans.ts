/**
 * A service killed mid-operation leaves its `pulumi` child (and that child's plugins) running on this host, still
 * working on the stack. Recovery stops them before it clears the stack's lock. Linux /proc only; elsewhere nothing
 * is found and the lock-clearing step reports a busy stack if an orphan is really there.
 */
import { readdir, readFile } from "node:fs/promises";

export interface ProcessInfo {
  pid: number;
  ppid: number;
  args: string[];
}

export async function listProcesses(): Promise<ProcessInfo[]> {
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return [];
  }
  const processes: ProcessInfo[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const [cmdline, stat] = await Promise.all([readFile(`/proc/${entry}/cmdline`, "utf8"), readFile(`/proc/${entry}/stat`, "utf8")]);
      // stat: "pid (comm) state ppid ..."; comm may hold spaces, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      processes.push({ pid: Number(entry), ppid, args: cmdline.split("\0").filter(Boolean) });
    } catch {
      // the process ended while we looked
    }
  }
  return processes;
}

/** A pulumi CLI process operating on the stack: `pulumi <op> ... --stack <name>`. */
export function isPulumiProcessOf(args: readonly string[], stackName: string): boolean {
  const executable = args[0]?.split("/").pop();
  if (executable !== "pulumi") return false;
  const at = args.indexOf("--stack");
  const value = at >= 0 ? args[at + 1] : args.find((arg) => arg.startsWith("--stack="))?.slice("--stack=".length);
  return value !== undefined && (value === stackName || value.endsWith(`/${stackName}`));
}

/** Kills every pulumi process working on the stack, with its descendants; returns their pids. */
export async function stopOrphanedPulumiProcesses(stackName: string): Promise<number[]> {
  const processes = await listProcesses();
  const roots = processes.filter((p) => p.pid !== process.pid && isPulumiProcessOf(p.args, stackName)).map((p) => p.pid);
  const doomed = new Set(roots);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of processes) {
      if (doomed.has(p.ppid) && !doomed.has(p.pid)) {
        doomed.add(p.pid);
        grew = true;
      }
    }
  }
  for (const pid of doomed) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  return [...doomed];
}
