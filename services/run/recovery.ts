import type { PgBoss } from "pg-boss";
import { and, eq } from "drizzle-orm";
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
import { tryHoldRunLiveness } from "./run-liveness";
import { RUN_QUEUE } from "./run-queue";

export interface RecoveryOptions {
  /** With a PostgreSQL server: runs whose executor is alive in another service process are left alone. */
  liveness?: SqlClient;
  /** The queue: the crashed run's job is cancelled so that the stack's queue slot frees at once. */
  boss?: PgBoss;
  log?(message: string): void;
}

/**
 * At start-up, before workers run, and then periodically in every running replica (startRecoverySweep): runs left
 * `running` by a crashed process are marked interrupted, and what the crash left behind is cleaned up: an orphaned
 * `pulumi` child still working on the stack (only on this host: see orphans.ts), the stack's lock (cancel), the
 * checkpoint's pending operations, the queue job. Nothing is retried automatically.
 */
export async function recoverInterruptedRuns(
  db: DrizzleDatabase,
  automation: AutomationSettings,
  options: RecoveryOptions = {},
): Promise<string[]> {
  const running = await db.select({ id: runs.id }).from(runs).where(eq(runs.status, "running"));
  const recovered: string[] = [];
  for (const { id } of running) {
    // While we hold the run's liveness lock no other replica recovers it, and no executor can be alive.
    const release = options.liveness ? await tryHoldRunLiveness(options.liveness, id) : undefined;
    if (options.liveness && !release) continue;
    try {
      if (await recoverRun(db, automation, options, id)) recovered.push(id);
    } finally {
      await release?.();
    }
  }
  return recovered;
}

async function recoverRun(db: DrizzleDatabase, automation: AutomationSettings, options: RecoveryOptions, runId: string): Promise<boolean> {
  // It may have finished between the listing and the lock.
  const [run] = await db.select().from(runs).where(and(eq(runs.id, runId), eq(runs.status, "running")));
  if (!run) return false;
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
    .where(and(eq(runs.id, run.id), eq(runs.status, "running")));
  return true;
}

export interface RecoverySweep {
  stop(): Promise<void>;
}

/**
 * Recovery while the service runs: every `intervalMs`, runs whose executor died in another replica (its session, and
 * so its liveness lock, gone) are recovered as at start-up. One sweep at a time per process; failures are logged and
 * the next sweep tries again.
 */
export function startRecoverySweep(
  db: DrizzleDatabase,
  automation: AutomationSettings,
  options: RecoveryOptions & { intervalMs: number; onRecovered?(runIds: string[]): void },
): RecoverySweep {
  let current: Promise<void> | undefined;
  const sweep = () => {
    if (current) return;
    current = recoverInterruptedRuns(db, automation, options)
      .then((recovered) => {
        if (recovered.length > 0) options.onRecovered?.(recovered);
      })
      .catch((error: unknown) => options.log?.(`recovery sweep failed: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => {
        current = undefined;
      });
  };
  const timer = setInterval(sweep, options.intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await current;
    },
  };
}
