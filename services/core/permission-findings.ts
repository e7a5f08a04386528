/**
 * Permission health: every AccessDenied a run, a discovery, a rollout read or a permission check meets in a tenant's
 * account is kept per account, region and action until a later call shows it allowed. The tenant's answer and the
 * console list the open ones, each with its fix.
 */
import { and, asc, eq, inArray, isNull, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { organizations, permissionFindings, type PermissionFinding, type PermissionFindingSource, type Run } from "../../db/schema";
import { deniedCallsIn, type DeniedCall } from "./permission-findings-fns";

/** Findings kept per tenant (open and resolved); resolved ones make room first, then new denials are dropped. */
export const MAX_PERMISSION_FINDINGS_PER_TENANT = 200;

export interface PermissionObservation {
  organizationId: number;
  /** The account the calls were made in; null when the tenant's role names none yet. */
  awsAccountId: string | null;
  source: PermissionFindingSource;
  denied: readonly DeniedCall[];
  /** Which open findings the calls just made show allowed now (not called for findings denied again). */
  allowed(finding: PermissionFinding): boolean;
}

const accountKey = (awsAccountId: string | null) => (awsAccountId && /^\d{12}$/.test(awsAccountId) ? awsAccountId : "unknown");

export async function recordPermissionObservation(db: DrizzleDatabase, observation: PermissionObservation): Promise<void> {
  const { organizationId, source } = observation;
  const awsAccountId = accountKey(observation.awsAccountId);
  const deniedKeys = new Set(observation.denied.map((call) => `${call.region} ${call.action}`));
  await db.transaction(async (tx) => {
    const rows = await tx.select().from(permissionFindings).where(eq(permissionFindings.organizationId, organizationId));
    const resolved = rows.filter(
      (row) =>
        row.awsAccountId === awsAccountId && row.resolvedAt === null && !deniedKeys.has(`${row.region} ${row.action}`) && observation.allowed(row),
    );
    if (resolved.length > 0)
      await tx
        .update(permissionFindings)
        .set({ resolvedAt: new Date() })
        .where(
          inArray(
            permissionFindings.id,
            resolved.map((row) => row.id),
          ),
        );
    if (observation.denied.length === 0) return;

    const existing = new Set(rows.filter((row) => row.awsAccountId === awsAccountId).map((row) => `${row.region} ${row.action}`));
    const fresh = observation.denied.filter((call) => !existing.has(`${call.region} ${call.action}`));
    let room = MAX_PERMISSION_FINDINGS_PER_TENANT - rows.length;
    if (fresh.length > room) {
      const stale = await tx
        .select({ id: permissionFindings.id })
        .from(permissionFindings)
        .where(and(eq(permissionFindings.organizationId, organizationId), sql`${permissionFindings.resolvedAt} is not null`))
        .orderBy(asc(permissionFindings.resolvedAt))
        .limit(fresh.length - room);
      if (stale.length > 0)
        await tx.delete(permissionFindings).where(
          inArray(
            permissionFindings.id,
            stale.map((row) => row.id),
          ),
        );
      room += stale.length;
    }
    const kept = new Set(fresh.slice(0, Math.max(0, room)));
    const toWrite = observation.denied.filter((call) => !fresh.includes(call) || kept.has(call));
    if (toWrite.length === 0) return;
    const now = new Date();
    await tx
      .insert(permissionFindings)
      .values(toWrite.map((call) => ({ organizationId, awsAccountId, source, ...call, firstSeenAt: now, lastSeenAt: now })))
      .onConflictDoUpdate({
        target: [permissionFindings.organizationId, permissionFindings.awsAccountId, permissionFindings.region, permissionFindings.action],
        set: {
          resource: sql`excluded.resource`,
          cause: sql`excluded.cause`,
          source: sql`excluded.source`,
          lastSeenAt: now,
          occurrences: sql`${permissionFindings.occurrences} + 1`,
          resolvedAt: null,
          // A finding that was resolved and is denied again starts over.
          firstSeenAt: sql`case when ${permissionFindings.resolvedAt} is null then ${permissionFindings.firstSeenAt} else excluded.first_seen_at end`,
        },
      });
  });
}

/** The tenant's open findings, newest first. */
export function openPermissionFindings(db: DrizzleDatabase, organizationId: number): Promise<PermissionFinding[]> {
  return db
    .select()
    .from(permissionFindings)
    .where(and(eq(permissionFindings.organizationId, organizationId), isNull(permissionFindings.resolvedAt)))
    .orderBy(sql`${permissionFindings.lastSeenAt} desc`, asc(permissionFindings.id));
}

/**
 * What a finished run says about permissions: a failed one's denials (its error and the engine's diagnostics), in
 * the run's account; a succeeded up applied everything, so the denials runs met in that account are resolved.
 */
export async function recordRunPermissions(db: DrizzleDatabase, run: Run): Promise<void> {
  const text =
    run.status === "failed" ? [run.error?.message ?? "", ...(run.error?.diagnostics ?? []).map((d) => `${d.urn ?? ""} ${d.message}`)].join("\n") : "";
  const denied = deniedCallsIn(text);
  const applied = run.status === "succeeded" && run.kind === "up";
  if (denied.length === 0 && !applied) return;
  const awsAccountId =
    run.awsAccountId ??
    (await db.select({ id: organizations.awsAccountId }).from(organizations).where(eq(organizations.id, run.organizationId)))[0]?.id ??
    null;
  await recordPermissionObservation(db, {
    organizationId: run.organizationId,
    awsAccountId,
    source: "run",
    denied,
    allowed: (finding) => applied && finding.source === "run",
  });
}
