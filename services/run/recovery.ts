import type { PgBoss } from "pg-boss";
import { and, eq } from "drizzle-orm";
import type { AutomationSettings } from "../../automation";
import type { DrizzleDatabase } from "../../db/client";
import { runs } from "../../db/schema";
import { isExecutingHere } from "./executing-runs";
import { tryHoldRunLiveness, type LockConnections } from "../core/run-liveness";
import { RUN_QUEUE } from "./run-queue";
import { droppedDiagnostics, releaseStack } from "./stack-release";

export interface RecoveryOptions {
  /** With a PostgreSQL server: runs whose executor is alive in another service process are left alone. */
  liveness?: LockConnections;
  /** The queue: the crashed run's job is cancelled so that the stack's queue slot frees at once. */
  boss?: PgBoss;
  log?(message: string): void;
}

/**
 * At start-up, before workers run, and then periodically in every running replica (startRecoverySweep): runs left
 * `running` by a crashed process are marked interrupted, and what the crash left behind is cleaned up: an orphaned
 * `pulumi` child still working on the stack and its plugins (only on this host: see orphans.ts), the stack's lock
 * (cancel), the checkpoint's pending operations, the queue job. Nothing is retried automatically. Runs this process
 * executes are never touched, even when their liveness session dropped (executing-runs.ts).
 */
export async function recoverInterruptedRuns(db: DrizzleDatabase, automation: AutomationSettings, options: RecoveryOptions = {}): Promise<string[]> {
  const running = await db.select({ id: runs.id }).from(runs).where(eq(runs.status, "running"));
  const recovered: string[] = [];
  for (const { id } of running) {
    // This process executes it: alive, whatever its liveness session says (that session may have dropped).
    if (isExecutingHere(id)) continue;
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
  const [run] = await db
    .select()
    .from(runs)
    .where(and(eq(runs.id, runId), eq(runs.status, "running")));
  if (!run) return false;
  const dropped = await releaseStack(automation, run.stackName, { log: options.log && ((message) => options.log!(`recovery: ${message}`)) });
  if (run.jobId && options.boss) await options.boss.cancel(RUN_QUEUE, run.jobId).catch(() => undefined);
  const [marked] = await db
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
        ...(dropped.length > 0 ? { diagnostics: droppedDiagnostics(dropped) } : {}),
      },
    })
    .where(and(eq(runs.id, run.id), eq(runs.status, "running")))
    .returning({ id: runs.id });
  if (!marked) options.log?.(`recovery: run ${run.id} left running before it could be marked interrupted; left as it is`);
  return marked !== undefined;
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
