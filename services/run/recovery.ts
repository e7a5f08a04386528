import type { PgBoss } from "pg-boss";
import { eq, inArray } from "drizzle-orm";
import {
  cancelTenantStack,
  clearPendingOperations,
  type DroppedOperation,
  openTenantStack,
  StackNotFoundError,
  TENANT_STACK_PREFIX,
  type AutomationSettings,
} from "../../automation";
import type { DrizzleDatabase, SqlClient } from "../../db/client";
import { runs } from "../../db/schema";
import { stopOrphanedPulumiProcesses } from "./orphans";
import { runHasLiveExecutor } from "./run-liveness";
import { RUN_QUEUE } from "./run-queue";

export interface RecoveryOptions {
  /** With a PostgreSQL server: runs whose executor is alive in another service process are left alone. */
  liveness?: SqlClient;
  /** The queue: the crashed run's job is cancelled so that the stack's queue slot frees at once. */
  boss?: PgBoss;
  log?(message: string): void;
}

/**
 * At start-up, before workers run: runs left `running` by a crashed process are marked interrupted, and what the
 * crash left behind is cleaned up: an orphaned `pulumi` child still working on the stack (this host), the stack's
 * lock (cancel), the checkpoint's pending operations, the queue job. Nothing is retried automatically.
 */
export async function recoverInterruptedRuns(
  db: DrizzleDatabase,
  automation: AutomationSettings,
  options: RecoveryOptions = {},
): Promise<string[]> {
  const running = await db.select().from(runs).where(inArray(runs.status, ["running"]));
  const recovered: string[] = [];
  for (const run of running) {
    if (options.liveness && (await runHasLiveExecutor(options.liveness, run.id))) continue;
    const stopped = await stopOrphanedPulumiProcesses(run.stackName);
    if (stopped.length > 0) options.log?.(`recovery: stopped orphaned pulumi processes ${stopped.join(", ")} of ${run.stackName}`);
    let dropped: DroppedOperation[] = [];
    try {
      const stack = await openTenantStack(automation, run.stackName.slice(TENANT_STACK_PREFIX.length), { create: false });
      await cancelTenantStack(stack);
      dropped = await clearPendingOperations(stack);
    } catch (error) {
      if (!(error instanceof StackNotFoundError)) throw error;
    }
    if (run.jobId && options.boss) await options.boss.cancel(RUN_QUEUE, run.jobId).catch(() => undefined);
    await db
      .update(runs)
      .set({
        status: "interrupted",
        finishedAt: new Date(),
        error: {
          message:
            "the service stopped while this run was in progress; its stack lock was cleared" +
            (dropped.length > 0
              ? `; ${dropped.length} unfinished operation(s) were dropped from the state (see diagnostics): a resource whose create was in flight may exist in the account and must be imported or deleted before the next up`
              : ""),
          kind: "Interrupted",
          ...(dropped.length > 0
            ? { diagnostics: dropped.map((operation) => ({ severity: "warning", message: `pending ${operation.type} dropped`, urn: operation.urn })) }
            : {}),
        },
      })
      .where(eq(runs.id, run.id));
    recovered.push(run.id);
  }
  return recovered;
}
