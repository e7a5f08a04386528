/**
 * The processes of a stack operation on this host: the `pulumi` CLI and its provider plugins. Each operation's CLI
 * runs in a session of its own (automation/cli-launcher.ts), so its id is the CLI's pid, and carries the stack's name
 * in its environment (MXDR_STACK, inherited by every plugin). Pulumi puts each plugin in a process group of its own
 * (cmdutil.RegisterProcessGroup), so the CLI's process group does not hold them, but its session does, and keeps them
 * after the CLI died and they were re-parented. Recovery, timeouts and cancel end the whole session. Linux /proc only;
 * elsewhere nothing is found and the lock-clearing step reports a busy stack if an orphan is really there.
 */
import { readdir, readFile } from "node:fs/promises";
import { STACK_MARKER_VARIABLE } from "../../automation/stack-name";

interface ProcessInfo {
  pid: number;
  ppid: number;
  session: number;
  args: string[];
}

async function processInfo(pid: number): Promise<ProcessInfo | undefined> {
  try {
    const [cmdline, stat] = await Promise.all([readFile(`/proc/${pid}/cmdline`, "utf8"), readFile(`/proc/${pid}/stat`, "utf8")]);
    // stat: "pid (comm) state ppid pgrp session ..."; comm may hold spaces, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z") return undefined; // a zombie holds nothing; its parent reaps it
    return { pid, ppid: Number(fields[1]), session: Number(fields[3]), args: cmdline.split("\0").filter(Boolean) };
  } catch {
    return undefined; // the process ended while we looked
  }
}

async function listProcesses(): Promise<ProcessInfo[]> {
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return [];
  }
  const found = await Promise.all(entries.filter((entry) => /^\d+$/.test(entry)).map((entry) => processInfo(Number(entry))));
  return found.filter((info): info is ProcessInfo => info !== undefined);
}

async function carriesMarker(pid: number, stackName: string): Promise<boolean> {
  const environ = await readFile(`/proc/${pid}/environ`, "utf8").catch(() => "");
  return environ.split("\0").includes(`${STACK_MARKER_VARIABLE}=${stackName}`);
}

/** A pulumi CLI process operating on the stack: `pulumi <op> ... --stack <name>`. */
export function isPulumiProcessOf(args: readonly string[], stackName: string): boolean {
  const executable = args[0]?.split("/").pop();
  if (executable !== "pulumi") return false;
  const at = args.indexOf("--stack");
  const value = at >= 0 ? args[at + 1] : args.find((arg) => arg.startsWith("--stack="))?.slice("--stack=".length);
  return value !== undefined && (value === stackName || value.endsWith(`/${stackName}`));
}

/**
 * Every live process of the stack's operations on this host: pulumi CLIs of the stack (by command line), whatever
 * carries the stack's marker, every process of their sessions (plugins re-parented after the CLI died), and their
 * descendants. Never this process, nor every process of its session.
 */
export async function stackProcesses(stackName: string): Promise<{ pid: number; args: string[] }[]> {
  const processes = await listProcesses();
  const self = processes.find((p) => p.pid === process.pid);
  const notSelf = (p: ProcessInfo) => p.pid !== process.pid;
  const marked = await Promise.all(
    processes.map(async (p) => notSelf(p) && (isPulumiProcessOf(p.args, stackName) || (await carriesMarker(p.pid, stackName)))),
  );
  const roots = processes.filter((_, index) => marked[index]);
  // A session is the operation's when the CLI launcher made its CLI the leader (or its leader is gone); never ours.
  const sessions = new Set(
    roots.filter((p) => p.session !== self?.session && (p.session === p.pid || !processes.some((q) => q.pid === p.session))).map((p) => p.session),
  );
  const doomed = new Set(roots.map((p) => p.pid));
  for (const p of processes) if (sessions.has(p.session) && notSelf(p)) doomed.add(p.pid);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of processes) {
      if (doomed.has(p.ppid) && !doomed.has(p.pid) && notSelf(p)) {
        doomed.add(p.pid);
        grew = true;
      }
    }
  }
  return processes.filter((p) => doomed.has(p.pid)).map((p) => ({ pid: p.pid, args: p.args }));
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** Kills every process of the stack's operations (CLI, plugins, their children; see stackProcesses); returns their pids. */
export async function stopOrphanedPulumiProcesses(stackName: string): Promise<number[]> {
  const killed: number[] = [];
  // A process may fork while we kill its siblings: look again until nothing is left (bounded).
  for (let round = 0; round < 5; round++) {
    const doomed = await stackProcesses(stackName);
    if (doomed.length === 0) break;
    for (const { pid } of doomed) {
      signal(pid, "SIGKILL");
      if (!killed.includes(pid)) killed.push(pid);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return killed;
}
