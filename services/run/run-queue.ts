import type { PgBoss } from "pg-boss";
import { eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { runs } from "../../db/schema";
import { startBoss } from "../../lib/boss";
import { executeRun, type RunExecutorDeps } from "./run-executor";
import { recordRunRequest, type RunRequest } from "./run-requests";

export const RUN_QUEUE = "stack-runs";
const QUEUE = RUN_QUEUE;

export interface RunQueueOptions {
  connectionString: string;
  /** A running pg-boss to share (its owner stops it); without it the queue starts and stops its own. */
  boss?: PgBoss;
  /** Runs executing at once in this process; per stack it is always one. */
  maxConcurrentRuns: number;
  /** false: this process only enqueues (e.g. an API-only replica). */
  work: boolean;
}

export interface RunQueue {
  /** Records and enqueues a run; RunConflictError when the stack has an active run, unless queueBehindActive. */
  request(request: RunRequest, options?: { queueBehindActive?: boolean }): Promise<string>;
  /** The runs this process is executing now, each with the promise of its end (shutdown waits on them). */
  executing(): ReadonlyMap<string, Promise<void>>;
  stop(): Promise<void>;
}

/**
 * Stack runs on pg-boss: a `singleton` queue keyed by stack name allows one active job per stack across every
 * service process sharing the database; each process runs at most `maxConcurrentRuns` jobs.
 */
export async function startRunQueue(
  db: DrizzleDatabase,
  deps: RunExecutorDeps,
  options: RunQueueOptions,
): Promise<RunQueue> {
  const boss = options.boss ?? (await startBoss(options.connectionString));
  await boss.createQueue(QUEUE, { policy: "singleton", retryLimit: 0, expireInSeconds: 3600 });
  const workers: string[] = [];
  const executing = new Map<string, Promise<void>>();
  if (options.work) {
    for (let worker = 0; worker < options.maxConcurrentRuns; worker++) {
      workers.push(
        await boss.work<{ runId: string }>(QUEUE, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => {
          if (!job) return;
          const execution = executeRun(deps, job.data.runId);
          executing.set(job.data.runId, execution);
          try {
            await execution;
          } finally {
            executing.delete(job.data.runId);
          }
        }),
      );
    }
  }
  return {
    async request(request, { queueBehindActive = false } = {}) {
      const runId = await recordRunRequest(db, request, { queueBehindActive });
      const jobId = await boss.send(QUEUE, { runId }, { singletonKey: request.stackName, retryLimit: 0 });
      if (jobId) await db.update(runs).set({ jobId }).where(eq(runs.id, runId));
      // Wake this process's idle workers now instead of at their next poll; other replicas pick it up by polling.
      for (const worker of workers) boss.notifyWorker(worker);
      return runId;
    },
    executing: () => executing,
    async stop() {
      if (!options.boss) await boss.stop({ graceful: true, timeout: 30_000 });
    },
  };
}
