/**
 * Shutdown, after the grace period: the stack operations this process still executes are ended cleanly and their runs
 * marked interrupted. The run is marked first (guarded by its status: a run that finished meanwhile keeps its
 * outcome; the executor's own final update is guarded the same way, so it cannot turn `interrupted` into `failed`).
 * Then each of its pulumi CLI processes (children of this process working on the run's stack) gets SIGINT: the CLI
 * cancels, lets the resource operations in flight finish, saves the checkpoint and releases the stack's lock. A CLI
 * that is still there after the cancel window is killed with its plugins, and the stack's lock and pending operations
 * are cleared as recovery does.
 */
import { and, eq, inArray } from "drizzle-orm";
import { cancelTenantStack, clearPendingOperations, openTenantStack, StackNotFoundError, TENANT_STACK_PREFIX, type AutomationSettings } from "../../automation";
import type { DrizzleDatabase } from "../../db/client";
import { runs } from "../../db/schema";
import { isPulumiProcessOf, listProcesses, stopOrphanedPulumiProcesses } from "./orphans";

export interface InterruptOptions {
  /** How long cancelled CLIs get to finish before they are killed. */
  cancelWindowMs: number;
  log(message: string): void;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function ourPulumiProcesses(stackNames: readonly string[]): Promise<number[]> {
  const processes = await listProcesses();
  return processes
    .filter((p) => p.ppid === process.pid && stackNames.some((stackName) => isPulumiProcessOf(p.args, stackName)))
    .map((p) => p.pid);
}

/** Ends the runs of `executing` (run id → the promise of its end); returns the ids it marked interrupted. */
export async function interruptExecutingRuns(
  db: DrizzleDatabase,
  automation: AutomationSettings,
  executing: ReadonlyMap<string, Promise<void>>,
  { cancelWindowMs, log }: InterruptOptions,
): Promise<string[]> {
  if (executing.size === 0) return [];
  const marked = await db
    .update(runs)
    .set({
      status: "interrupted",
      finishedAt: new Date(),
      error: {
        message: "the service shut down before this run finished (SHUTDOWN_GRACE_SECONDS): its stack operation was cancelled; request the run again",
        kind: "Interrupted",
      },
    })
    .where(and(inArray(runs.id, [...executing.keys()]), eq(runs.status, "running")))
    .returning({ id: runs.id, stackName: runs.stackName });
  const stackNames = marked.map((run) => run.stackName);
  log(`shutdown: ${marked.length} run(s) still running after the grace period, marked interrupted and cancelled: ${marked.map((run) => run.id).join(", ")}`);

  // A run may start another CLI command after the first one ended (the Automation API runs several per operation):
  // every new one is asked to cancel too, until the executions end or the window closes.
  const ended = Promise.allSettled(executing.values()).then(() => true);
  const signalled = new Set<number>();
  const deadline = Date.now() + cancelWindowMs;
  let finished = false;
  while (!finished && Date.now() < deadline) {
    for (const pid of await ourPulumiProcesses(stackNames)) {
      if (signalled.has(pid)) continue;
      signalled.add(pid);
      try {
        process.kill(pid, "SIGINT");
      } catch {
        // it ended meanwhile
      }
    }
    finished = await Promise.race([ended, pause(250).then(() => false)]);
  }
  if (finished) return marked.map((run) => run.id);

  for (const stackName of stackNames) {
    const killed = await stopOrphanedPulumiProcesses(stackName);
    if (killed.length === 0) continue;
    log(`shutdown: killed pulumi processes ${killed.join(", ")} of ${stackName} after the cancel window; clearing its lock`);
    try {
      const stack = await openTenantStack(automation, stackName.slice(TENANT_STACK_PREFIX.length), { create: false });
      await cancelTenantStack(stack);
      await clearPendingOperations(stack);
    } catch (error) {
      if (!(error instanceof StackNotFoundError)) log(`shutdown: could not clear the lock of ${stackName}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return marked.map((run) => run.id);
}
