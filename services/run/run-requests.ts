import { and, count, eq, inArray, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { runs, type RunHold, type RunKind } from "../../db/schema";
import { RateLimitedError } from "../../lib/errors";
import { RunConflictError } from "./run-errors";

export const ACTIVE_RUN_STATUSES = ["queued", "running"] as const;

export interface RunRequest {
  organizationId: number;
  stackName: string;
  kind: RunKind;
  actor: string;
  actorName?: string;
  /** preview: the id (run_plans) to save its update plan under; up: the approved plan it must apply. */
  planRef?: string;
  /** kind up: the drift run it remediates. */
  remediatesRunId?: string;
  fleetRunId?: string;
  /** An organization member account's stack (tenant_aws_accounts); absent: the tenant's home account. */
  awsAccountId?: string;
  /** The tenant's queued runs may not exceed this (checked under the stack's lock); undefined: no cap. */
  maxQueuedRuns?: number;
  /** Recorded but held back from the queue until released (services/integration/bootstrap-versions.ts). */
  heldFor?: RunHold;
}

/** How long a client refused by the queued-run cap is told to wait: about one short run. */
export const QUEUED_RUN_RETRY_AFTER_SECONDS = 60;

/**
 * Records a queued run unless the stack already has an active one (RunConflictError names it). The check and the
 * insert share a transaction holding a per-stack advisory lock, so concurrent requests from several service
 * processes cannot both pass. With queueBehindActive the run waits its turn instead (the queue runs one per stack).
 */
export async function recordRunRequest(
  db: DrizzleDatabase,
  request: RunRequest,
  { queueBehindActive = false }: { queueBehindActive?: boolean } = {},
): Promise<string> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`run:${request.stackName}`}))`);
    const [blocking] = await tx
      .select({ id: runs.id })
      .from(runs)
      .where(and(eq(runs.stackName, request.stackName), inArray(runs.status, [...ACTIVE_RUN_STATUSES])))
      .limit(1);
    if (blocking && !queueBehindActive) throw new RunConflictError(request.stackName, blocking.id);
    const { maxQueuedRuns, ...row } = request;
    if (maxQueuedRuns !== undefined) await refuseOverQueuedCap(tx, request.organizationId, maxQueuedRuns);
    const [created] = await tx
      .insert(runs)
      .values({ ...row, status: "queued" })
      .returning({ id: runs.id });
    return created!.id;
  });
}

/** A tenant has one stack, so the stack's lock (held by the caller) serializes this count with the insert. */
async function refuseOverQueuedCap(tx: Pick<DrizzleDatabase, "select">, organizationId: number, maxQueuedRuns: number): Promise<void> {
  const [queued] = await tx
    .select({ n: count() })
    .from(runs)
    .where(and(eq(runs.organizationId, organizationId), eq(runs.status, "queued")));
  if ((queued?.n ?? 0) >= maxQueuedRuns) {
    throw new RateLimitedError(`this tenant has ${maxQueuedRuns} queued runs, the most it may have; request more when some have started`, {
      code: "queued_run_limit",
      retryAfterSeconds: QUEUED_RUN_RETRY_AFTER_SECONDS,
      details: { max_queued_runs: maxQueuedRuns },
    });
  }
}
