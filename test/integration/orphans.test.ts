/**
 * Crash recovery stops the `pulumi` processes a killed service left working on a stack, with their children, and
 * nothing else. The orphans here are real processes whose command line is the CLI's (argv[0] `pulumi`, `--stack`).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { describe, expect, it } from "vitest";
import { processIsRunning } from "../harness/process-leaks";
import { isPulumiProcessOf, stopOrphanedPulumiProcesses } from "../../services/run/orphans";

/** A long-lived process whose /proc cmdline reads like `pulumi up ... --stack <stack>`; it starts a child of its own. */
function fakePulumi(stack: string): ChildProcess {
  const program =
    "require('node:child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' }); setTimeout(() => {}, 60000)";
  return spawn(process.execPath, ["-e", program, "up", "--yes", "--stack", stack, "--non-interactive"], {
    argv0: "/opt/tools/bin/pulumi",
    stdio: "ignore",
  });
}

const alive = processIsRunning;

describe("orphaned pulumi processes", () => {
  it("recognises the CLI's command line for a stack, and only that stack", () => {
    const args = [
      "/work/.tools/bin/pulumi",
      "up",
      "--yes",
      "--skip-preview",
      "--client=127.0.0.1:43175",
      "--exec-kind",
      "auto.inline",
      "--stack",
      "tenant-acme",
      "--non-interactive",
    ];
    expect(isPulumiProcessOf(args, "tenant-acme")).toBe(true);
    expect(isPulumiProcessOf(args, "tenant-acme-2")).toBe(false);
    expect(isPulumiProcessOf(["pulumi", "preview", "--stack=org/mini-xdr-tenant/tenant-acme"], "tenant-acme")).toBe(true);
    expect(isPulumiProcessOf(["/usr/bin/node", "--stack", "tenant-acme"], "tenant-acme")).toBe(false);
  });

  it("kills the stack's orphans and their children, and leaves another stack's process alone", async () => {
    const orphan = fakePulumi("tenant-orphan-test");
    const bystander = fakePulumi("tenant-bystander-test");
    await new Promise((resolve) => setTimeout(resolve, 500)); // let the orphan start its child
    try {
      const stopped = await stopOrphanedPulumiProcesses("tenant-orphan-test");
      expect(stopped).toContain(orphan.pid);
      expect(stopped.length).toBe(2); // the orphan and its child
      await new Promise((resolve) => (orphan.exitCode !== null || orphan.signalCode ? resolve(null) : orphan.on("exit", resolve)));
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (const pid of stopped) expect(alive(pid)).toBe(false);
      expect(alive(bystander.pid!)).toBe(true);
    } finally {
      // With their children: the suite fails on any process it leaves behind.
      await stopOrphanedPulumiProcesses("tenant-orphan-test");
      await stopOrphanedPulumiProcesses("tenant-bystander-test");
    }
  });
});
