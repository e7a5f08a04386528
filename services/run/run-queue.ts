import type { PgBoss } from "pg-boss";
import { and, eq, isNotNull, sql as sqlText } from "drizzle-orm";
import type { DrizzleDatabase, SqlClient } from "../../db/client";
import { runs } from "../../db/schema";
import { startBoss } from "../../db/boss";
import { stopExecutingRun } from "./executing-runs";
import { executeRun, type RunExecutorDeps } from "./run-executor";
import { DEFAULT_RUN_TIMEOUT_SECONDS, DEFAULT_STOP_GRACE_SECONDS } from "./run-timeouts";
import { recordRunRequest, type RunRequest } from "./run-requests";

export const RUN_QUEUE = "stack-runs";
const QUEUE = RUN_QUEUE;
/** NOTIFY channel: a run to cancel (JSON {runId, actor}); the replica executing it stops it. */
export const RUN_CANCEL_CHANNEL = "mxdr_run_cancel";

export interface RunQueueOptions {
  connectionString: string;
  /** A running pg-boss to share (its owner stops it); without it the queue starts and stops its own. */
  boss?: PgBoss;
  /** Runs executing at once in this process; per stack it is always one. */
  maxConcurrentRuns: number;
  /** false: this process only enqueues (e.g. an API-only replica). */
  work: boolean;
  /** Where a worker LISTENs for cancels of runs it executes (postgres.js opens a connection of its own for it). */
  listen?: SqlClient;
}

/** What a cancel did: a queued run is cancelled at once; a running one is being stopped by its executor. */
export type CancelOutcome = "cancelled" | "cancelling" | "finished";

export interface RunQueue {
  /** Records and enqueues a run; RunConflictError when the stack has an active run, unless queueBehindActive. */
  request(request: RunRequest, options?: { queueBehindActive?: boolean }): Promise<string>;
  /** Sends a held run to the queue (it was recorded with heldFor); false when it is no longer held and queued. */
  release(runId: string): Promise<boolean>;
  /** The runs this process is executing now, each with the promise of its end (shutdown waits on them). */
  executing(): ReadonlyMap<string, Promise<void>>;
  /** Cancels a queued run, or asks the replica executing a running one to stop it (the run ends `cancelled`). */
  cancel(runId: string, actor: string): Promise<CancelOutcome>;
  stop(): Promise<void>;
}

/** A run queue whose workers start apart: the producer side is needed before what the workers call after a run exists. */
export interface OpenedRunQueue extends RunQueue {
  /** Starts this process's workers (options.work) with what executes a run and what follows it. */
  work(deps: RunExecutorDeps): Promise<void>;
}

/**
 * Stack runs on pg-boss: a `singleton` queue keyed by stack name allows one active job per stack across every
 * service process sharing the database; each process runs at most `maxConcurrentRuns` jobs. A job expires only after
 * its run's own timeout and the stop grace: the executor's timeout ends the run (and frees the stack) first.
 */
export async function openRunQueue(
  db: DrizzleDatabase,
  options: RunQueueOptions & Pick<RunExecutorDeps, "timeoutSeconds" | "stopGraceSeconds">,
): Promise<OpenedRunQueue> {
  const boss = options.boss ?? (await startBoss(options.connectionString));
  await boss.createQueue(QUEUE, { policy: "singleton", retryLimit: 0, expireInSeconds: 3600 });
  const workers: string[] = [];
  const executing = new Map<string, Promise<void>>();
  let unlisten: (() => Promise<void>) | undefined;
  const expireInSeconds = (run: Pick<RunRequest, "kind">) =>
    (options.timeoutSeconds?.[run.kind] ?? DEFAULT_RUN_TIMEOUT_SECONDS[run.kind]) + (options.stopGraceSeconds ?? DEFAULT_STOP_GRACE_SECONDS) + 300;

  async function send(run: { runId: string; stackName: string; kind: RunRequest["kind"] }): Promise<void> {
    const jobId = await boss.send(QUEUE, { runId: run.runId }, { singletonKey: run.stackName, retryLimit: 0, expireInSeconds: expireInSeconds(run) });
    if (jobId) await db.update(runs).set({ jobId }).where(eq(runs.id, run.runId));
    // Wake this process's idle workers now instead of at their next poll; other replicas pick it up by polling.
    for (const worker of workers) boss.notifyWorker(worker);
  }

  return {
    async work(deps) {
      if (!options.work) return;
      for (let worker = 0; worker < options.maxConcurrentRuns; worker++) {
        workers.push(
          await boss.work<{ runId: string }>(QUEUE, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => {
            if (!job) return;
            const execution = executeRun(deps, job.data.runId, { jobSignal: job.signal });
            executing.set(job.data.runId, execution);
            try {
              await execution;
            } finally {
              executing.delete(job.data.runId);
            }
          }),
        );
      }
      if (options.listen) {
        const listening = await options.listen.listen(RUN_CANCEL_CHANNEL, (payload) => {
          try {
            const { runId, actor } = JSON.parse(payload) as { runId: string; actor: string };
            stopExecutingRun(runId, { kind: "cancelled", actor });
          } catch {
            // not ours
          }
        });
        unlisten = () => listening.unlisten();
      }
    },
    async request(request, { queueBehindActive = false } = {}) {
      const runId = await recordRunRequest(db, request, { queueBehindActive });
      if (!request.heldFor) await send({ runId, ...request });
      return runId;
    },
    async release(runId) {
      const [released] = await db
        .update(runs)
        .set({ heldFor: null })
        .where(and(eq(runs.id, runId), eq(runs.status, "queued"), isNotNull(runs.heldFor)))
        .returning({ runId: runs.id, stackName: runs.stackName, kind: runs.kind });
      if (released) await send(released);
      return released !== undefined;
    },
    executing: () => executing,
    async cancel(runId, actor) {
      const [cancelled] = await db
        .update(runs)
        .set({ status: "cancelled", finishedAt: new Date(), error: { kind: "Cancelled", message: `cancelled by ${actor} before it started` } })
        .where(and(eq(runs.id, runId), eq(runs.status, "queued")))
        .returning();
      if (cancelled) {
        // Its job frees the stack's queue slot; the executor never claims a cancelled run anyway.
        if (cancelled.jobId) await boss.cancel(QUEUE, cancelled.jobId).catch(() => undefined);
        return "cancelled";
      }
      const [run] = await db.select({ status: runs.status }).from(runs).where(eq(runs.id, runId));
      if (run?.status !== "running") return "finished";
      if (!stopExecutingRun(runId, { kind: "cancelled", actor })) {
        await db.execute(sqlText`select pg_notify(${RUN_CANCEL_CHANNEL}, ${JSON.stringify({ runId, actor })})`);
      }
      return "cancelling";
    },
    async stop() {
      await unlisten?.().catch(() => undefined);
      if (!options.boss) await boss.stop({ graceful: true, timeout: 30_000 });
    },
  };
}

/** openRunQueue with its workers started at once (a process whose follow-ups need nothing from the queue). */
export async function startRunQueue(db: DrizzleDatabase, deps: RunExecutorDeps, options: RunQueueOptions): Promise<RunQueue> {
  const queue = await openRunQueue(db, { ...options, timeoutSeconds: deps.timeoutSeconds, stopGraceSeconds: deps.stopGraceSeconds });
  await queue.work(deps);
  return queue;
}
