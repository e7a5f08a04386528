/**
 * Shutdown, after the grace period: the stack operations this process still executes are stopped as a cancel stops
 * them (services/run/executing-runs.ts: SIGINT to the CLI through the operation's AbortSignal, so pulumi cancels,
 * lets the resource operations in flight finish, saves the checkpoint and releases the stack's lock; whatever of the
 * operation's session is left after RUN_STOP_GRACE_SECONDS is killed, and the executor clears the lock and pending
 * operations), and their runs end `interrupted` (guarded by status, like every run update). An execution still not
 * over after the cancel window is killed here, its run marked interrupted and its stack's lock cleared.
 */
import { and, eq, inArray } from "drizzle-orm";
import { cancelTenantStack, clearPendingOperations, openTenantStack, StackNotFoundError, type AutomationSettings } from "../../automation";
import type { DrizzleDatabase } from "../../db/client";
import { runs } from "../../db/schema";
import { stopExecutingRun } from "./executing-runs";
import { stopOrphanedPulumiProcesses } from "./orphans";

export interface InterruptOptions {
  /** How long stopped operations get to end before they are killed. */
  cancelWindowMs: number;
  log(message: string): void;
}

const SHUTDOWN_MESSAGE =
  "the service shut down before this run finished (SHUTDOWN_GRACE_SECONDS): its stack operation was cancelled; request the run again";

/** Ends the runs of `executing` (run id → the promise of its end); returns the ids of the runs that were still executing. */
export async function interruptExecutingRuns(
  db: DrizzleDatabase,
  automation: AutomationSettings,
  executing: ReadonlyMap<string, Promise<void>>,
  { cancelWindowMs, log }: InterruptOptions,
): Promise<string[]> {
  if (executing.size === 0) return [];
  const runIds = [...executing.keys()];
  log(`shutdown: ${runIds.length} run(s) still running after the grace period are cancelled and marked interrupted: ${runIds.join(", ")}`);
  for (const runId of runIds) stopExecutingRun(runId, { kind: "shutdown", variable: "SHUTDOWN_GRACE_SECONDS" });

  let timer: NodeJS.Timeout | undefined;
  const finished = await Promise.race([
    Promise.allSettled(executing.values()).then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), cancelWindowMs);
    }),
  ]);
  clearTimeout(timer);
  if (finished) return runIds;

  const marked = await db
    .update(runs)
    .set({ status: "interrupted", finishedAt: new Date(), error: { message: SHUTDOWN_MESSAGE, kind: "Interrupted" } })
    .where(and(inArray(runs.id, runIds), eq(runs.status, "running")))
    .returning({ stackName: runs.stackName });
  for (const { stackName } of marked) {
    const killed = await stopOrphanedPulumiProcesses(stackName);
    log(`shutdown: killed pulumi processes ${killed.join(", ") || "(none left)"} of ${stackName} after the cancel window; clearing its lock`);
    try {
      const stack = await openTenantStack(automation, stackName, { create: false });
      await cancelTenantStack(stack);
      await clearPendingOperations(stack);
    } catch (error) {
      if (!(error instanceof StackNotFoundError))
        log(`shutdown: could not clear the lock of ${stackName}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return runIds;
}
