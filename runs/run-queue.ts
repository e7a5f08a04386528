import PgBoss from "pg-boss";
import type { DrizzleDatabase } from "../db/client";
import { executeRun, type RunExecutorDeps } from "./run-executor";
import { recordRunRequest, type RunRequest } from "./run-requests";

const QUEUE = "stack-runs";

export interface RunQueueOptions {
  connectionString: string;
  /** Runs executing at once in this process; per stack it is always one. */
  maxConcurrentRuns: number;
  /** false: this process only enqueues (e.g. an API-only replica). */
  work: boolean;
}

export interface RunQueue {
  request(request: RunRequest): Promise<string>;
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
  const boss = new PgBoss({ connectionString: options.connectionString, max: 4 });
  boss.on("error", (error) => console.error(`run queue: ${error.message}`));
  await boss.start();
  await boss.createQueue(QUEUE, { name: QUEUE, policy: "singleton", retryLimit: 0, expireInSeconds: 3600 });
  if (options.work) {
    for (let worker = 0; worker < options.maxConcurrentRuns; worker++) {
      await boss.work<{ runId: string }>(QUEUE, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => {
        if (job) await executeRun(deps, job.data.runId);
      });
    }
  }
  return {
    async request(request) {
      const runId = await recordRunRequest(db, request);
      await boss.send(QUEUE, { runId }, { singletonKey: request.stackName, retryLimit: 0 });
      return runId;
    },
    async stop() {
      await boss.stop({ graceful: true, wait: true, timeout: 30_000 });
    },
  };
}
