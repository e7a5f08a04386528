/**
 * The suite's own guard (issue 17, finding 12): a test run fails when a process it started outlives it, names that
 * process's command line, and kills it. A nested vitest run of a fixture whose test leaves a process behind shows it.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../harness/moto";
import { TEST_RUN_VARIABLE } from "../harness/process-leaks";

/** Live processes whose command line holds `token`. */
async function processesNaming(token: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    if (cmdline.split("\0").includes(token) && !/^\d+ \(.*\) Z/.test(stat)) pids.push(Number(entry));
  }
  return pids;
}

describe("the suite's process-leak check", () => {
  it("fails a test run that leaves a process running, names its command line, and kills it", async () => {
    const token = `leak-${randomBytes(6).toString("hex")}`;
    const env: NodeJS.ProcessEnv = { ...process.env, LEAK_TOKEN: token };
    delete env[TEST_RUN_VARIABLE];
    const vitest = join(REPO_ROOT, "node_modules", "vitest", "vitest.mjs");
    const child = spawn(process.execPath, [vitest, "run", "--config", "test/fixtures/process-leak/vitest.config.ts"], {
      cwd: REPO_ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));

    expect(output).toContain("1 passed"); // the fixture's test itself passed
    expect(code, output).not.toBe(0);
    expect(output).toMatch(/1 process\(es\) started by this test run were still running after it and were killed/);
    expect(output).toContain(token);
    expect(await processesNaming(token)).toEqual([]);
  });
});
