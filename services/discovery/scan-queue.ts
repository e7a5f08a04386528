/**
 * Discovery scans on the shared pg-boss: one active scan per tenant stack (singleton key: the tenant, and the member
 * account for an organization account's stack), requested after a successful `up`, on demand, and by a scheduled sweep
 * over the tenants with auto_discovery_enabled.
 */
import type { PgBoss } from "pg-boss";
import { and, eq, inArray, isNull, lt, sql, type SQL } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { discoveryScans, integrationCredentials, organizations, runs, type DiscoveryTrigger } from "../../db/schema";
import { executeScan, type ScanRunnerDeps } from "./scan-runner";

const SCAN_QUEUE = "discovery-scans";
const SWEEP_QUEUE = "discovery-sweep";

export interface ScanRequest {
  organizationId: number;
  /** An organization member account's stack; none: the tenant's home stack. */
  awsAccountId?: string;
  trigger: DiscoveryTrigger;
  actor: string;
}

export interface ScanQueue {
  /** A scan already queued or running for the tenant is returned instead of a second one. */
  request(request: ScanRequest): Promise<{ scanId: string; alreadyActive: boolean }>;
  /** Requests a scheduled scan of every tenant with auto-discovery on and a provisioned stack. */
  sweep(): Promise<string[]>;
}

export interface ScanQueueOptions {
  work: boolean;
  /** Cron of the sweep (UTC); none: no schedule. */
  schedule?: string;
}

/** A scan queue whose workers start apart: the producer side is needed before what follows a scan exists. */
export interface OpenedScanQueue extends ScanQueue {
  /** Starts this process's workers (options.work) and the sweep's schedule. */
  work(deps: ScanRunnerDeps): Promise<void>;
}

export async function openScanQueue(boss: PgBoss, db: DrizzleDatabase, options: ScanQueueOptions): Promise<OpenedScanQueue> {
  await boss.createQueue(SCAN_QUEUE, { policy: "singleton", retryLimit: 0, expireInSeconds: 1800 });
  await boss.createQueue(SWEEP_QUEUE, { policy: "short", retryLimit: 0 });

  const queue: OpenedScanQueue = {
    async request(request) {
      const { scanId, alreadyActive } = await recordScanRequest(db, request);
      if (!alreadyActive) await boss.send(SCAN_QUEUE, { scanId }, { singletonKey: scanKey(request), retryLimit: 0 });
      return { scanId, alreadyActive };
    },
    async sweep() {
      const due = await db
        .selectDistinct({ id: organizations.id })
        .from(organizations)
        .innerJoin(integrationCredentials, eq(integrationCredentials.organizationId, organizations.id))
        .innerJoin(runs, and(eq(runs.organizationId, organizations.id), isNull(runs.awsAccountId), eq(runs.kind, "up"), eq(runs.status, "succeeded")))
        .where(and(eq(organizations.autoDiscoveryEnabled, true), isNull(organizations.offboardedAt), eq(integrationCredentials.status, "active")));
      const requested: string[] = [];
      for (const org of due) {
        const { scanId, alreadyActive } = await queue.request({ organizationId: org.id, trigger: "schedule", actor: "system:schedule" });
        if (!alreadyActive) requested.push(scanId);
      }
      return requested;
    },
    async work(deps) {
      if (!options.work) return;
      await boss.work<{ scanId: string }>(SCAN_QUEUE, { batchSize: 1, pollingIntervalSeconds: 1 }, async ([job]) => {
        if (job) await executeScan(deps, job.data.scanId);
      });
      await boss.work(SWEEP_QUEUE, { batchSize: 1, pollingIntervalSeconds: 5 }, async () => {
        await queue.sweep();
      });
      if (options.schedule) await boss.schedule(SWEEP_QUEUE, options.schedule, {}, { tz: "UTC" });
    },
  };
  return queue;
}

/** openScanQueue with its workers started at once. */
export async function startScanQueue(boss: PgBoss, deps: ScanRunnerDeps, options: ScanQueueOptions): Promise<ScanQueue> {
  const queue = await openScanQueue(boss, deps.db, options);
  await queue.work(deps);
  return queue;
}

const scanKey = (request: Pick<ScanRequest, "organizationId" | "awsAccountId">) =>
  request.awsAccountId ? `${request.organizationId}:${request.awsAccountId}` : String(request.organizationId);

const ofStack = (request: Pick<ScanRequest, "awsAccountId">): SQL =>
  request.awsAccountId ? eq(discoveryScans.awsAccountId, request.awsAccountId) : isNull(discoveryScans.awsAccountId);

async function recordScanRequest(db: DrizzleDatabase, request: ScanRequest): Promise<{ scanId: string; alreadyActive: boolean }> {
  return db.transaction(async (tx) => {
    await tx.execute(sqlLock(scanKey(request)));
    const [active] = await tx
      .select({ id: discoveryScans.id })
      .from(discoveryScans)
      .where(and(eq(discoveryScans.organizationId, request.organizationId), ofStack(request), inArray(discoveryScans.status, ["queued", "running"])))
      .limit(1);
    if (active) return { scanId: active.id, alreadyActive: true };
    const [created] = await tx
      .insert(discoveryScans)
      .values({ ...request, status: "queued" })
      .returning({ id: discoveryScans.id });
    return { scanId: created!.id, alreadyActive: false };
  });
}

const sqlLock = (key: string) => sql`select pg_advisory_xact_lock(hashtext(${`discovery:${key}`}))`;

/** Scans a crashed process left `running` (older than the queue's expiry, so no live worker owns them) are failed. */
export async function failAbandonedScans(db: DrizzleDatabase, now = new Date()): Promise<number> {
  const abandoned = await db
    .update(discoveryScans)
    .set({ status: "failed", finishedAt: now, error: { message: "the service stopped during this scan", kind: "Interrupted" } })
    .where(and(eq(discoveryScans.status, "running"), lt(discoveryScans.startedAt, new Date(now.getTime() - 1800_000))))
    .returning({ id: discoveryScans.id });
  return abandoned.length;
}
