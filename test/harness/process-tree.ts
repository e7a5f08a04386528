/** A live process's memory and descendants, from Linux /proc (benchmarks, and the npm start test). */
import { readdir, readFile } from "node:fs/promises";

/** VmHWM (peak resident set, KiB) and VmRSS of a live process, from /proc; undefined when it is gone. */
export async function processMemory(pid: number): Promise<{ hwmKiB: number; rssKiB: number } | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
    return { hwmKiB: field("VmHWM"), rssKiB: field("VmRSS") };
  } catch {
    return undefined;
  }
}

/** Every live descendant of `pid` (children, grandchildren, ...), from /proc. */
export async function descendantsOf(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
    const after = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(after[1]);
    if (!Number.isInteger(ppid)) continue;
    const list = parents.get(ppid) ?? [];
    list.push(Number(entry));
    parents.set(ppid, list);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of parents.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}
