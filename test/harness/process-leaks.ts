import { readFileSync } from "node:fs";
/**
 * The suite fails if any process it started outlives it. Global setup marks the run (MXDR_TEST_RUN=<id> in the
 * environment, which every process the tests start inherits: services, CLIs, provider plugins, servers); at
 * teardown, after moto and PostgreSQL are stopped, every process still carrying the mark is killed and the run fails
 * naming their command lines. vitest's own workers (forked after setup, so marked too) are left out.
 */
import { randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";

export const TEST_RUN_VARIABLE = "MXDR_TEST_RUN";

export interface MarkedProcess {
  pid: number;
  command: string;
}

/** Live (not zombie) processes carrying MXDR_TEST_RUN=<runId>, except this process and vitest's workers. */
export async function processesMarkedWith(runId: string): Promise<MarkedProcess[]> {
  const found: MarkedProcess[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const read = (file: string) => readFile(`/proc/${entry}/${file}`, "utf8").catch(() => "");
    const [environ, stat, cmdline] = await Promise.all([read("environ"), read("stat"), read("cmdline")]);
    if (!environ.split("\0").includes(`${TEST_RUN_VARIABLE}=${runId}`)) continue;
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === undefined) continue;
    const command = cmdline.split("\0").filter(Boolean).join(" ");
    if (Number(fields[1]) === process.pid && /vitest/.test(command)) continue; // a pool worker of this run
    found.push({ pid: Number(entry), command });
  }
  return found;
}

/** Kills the run's leftovers; returns what was found (empty: nothing outlived the suite). */
export async function killProcessesMarkedWith(runId: string): Promise<MarkedProcess[]> {
  // Processes that are ending as the suite ends (a server's last children) get a moment first.
  let left = await processesMarkedWith(runId);
  for (let attempt = 0; attempt < 20 && left.length > 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    left = await processesMarkedWith(runId);
  }
  for (const { pid } of left) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  return left;
}

/** Marks this run; the returned teardown kills whatever is left and throws naming it. Call it last in teardown. */
export function startProcessLeakCheck(): () => Promise<void> {
  const runId = randomUUID();
  process.env[TEST_RUN_VARIABLE] = runId;
  return async () => {
    const left = await killProcessesMarkedWith(runId);
    if (left.length > 0) {
      // vitest reports a global teardown's error but does not fail the run for it.
      process.exitCode = 1;
      throw new Error(
        `${left.length} process(es) started by this test run were still running after it and were killed:\n` +
          left.map(({ pid, command }) => `  ${pid}: ${command.slice(0, 300)}`).join("\n"),
      );
    }
  };
}

/** As a vitest globalSetup on its own (test/fixtures/process-leak uses it so). */
export default function setup(): () => Promise<void> {
  return startProcessLeakCheck();
}

/** Running: present and not a zombie (a killed process stays in the table until its parent reaps it). */
export function processIsRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
