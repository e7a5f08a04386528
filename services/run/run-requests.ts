import { and, eq, inArray, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { runs, type RunKind } from "../../db/schema";
import { RunConflictError } from "./run-errors";

export const ACTIVE_RUN_STATUSES = ["queued", "running"] as const;

export interface RunRequest {
  organizationId: number;
  stackName: string;
  kind: RunKind;
  actor: string;
  /** preview: the id (run_plans) to save its update plan under; up: the approved plan it must apply. */
  planRef?: string;
  /** kind up: the drift run it remediates. */
  remediatesRunId?: string;
  fleetRunId?: string;
}

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
    const [created] = await tx
      .insert(runs)
      .values({ ...request, status: "queued" })
      .returning({ id: runs.id });
    return created!.id;
  });
}
