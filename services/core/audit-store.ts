/**
 * The audit trail: one audit_log row per mutating call, with the actor (token id, and its name in
 * the details). Details are scrubbed: keys that name secrets are replaced by a marker, so a caller
 * passing a whole request body cannot write a token or external ID into the log.
 */
import { and, desc, eq, lt } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { auditLog } from "../../db/schema";
import { actorDetails, type Principal } from "./principal";

const SECRET_KEY = /(secret|token|password|passphrase|external_?id|credential|private|kubeconfig|key$)/i;
export const REDACTED = "[redacted]";

export function scrubDetails(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(scrubDetails);
  if (value && typeof value === "object" && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([key, inner]) => [key, SECRET_KEY.test(key) ? REDACTED : scrubDetails(inner)]),
    );
  }
  return value;
}

export interface AuditEntry {
  action: string;
  organizationId?: number | null;
  target?: string;
  details?: Record<string, unknown>;
}

/** Anything with drizzle's insert (the database or a transaction). */
type Writer = Pick<DrizzleDatabase, "insert">;

export async function recordAudit(db: Writer, principal: Principal, entry: AuditEntry): Promise<void> {
  await db.insert(auditLog).values({
    actor: principal.actor,
    organizationId: entry.organizationId ?? null,
    action: entry.action,
    target: entry.target ?? null,
    details: { ...actorDetails(principal), ...(scrubDetails(entry.details ?? {}) as Record<string, unknown>) },
  });
}

/** One audited action as people read it: what, on what, when, and who (named, as recordAudit wrote them). */
export interface AuditEntryView {
  id: number;
  at: Date;
  action: string;
  target: string | null;
  actor: string;
  actorName: string | null;
  actorIssuer: string | null;
  actorSubject: string | null;
}

const text = (value: unknown) => (typeof value === "string" ? value : null);

/** The tenant's audit trail, newest first, a page before `beforeId`. */
export async function tenantAuditTrail(
  db: Pick<DrizzleDatabase, "select">,
  organizationId: number,
  page: { limit: number; beforeId?: number },
): Promise<AuditEntryView[]> {
  const rows = await db
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.organizationId, organizationId), page.beforeId === undefined ? undefined : lt(auditLog.id, page.beforeId)))
    .orderBy(desc(auditLog.id))
    .limit(page.limit);
  return rows.map((row) => ({
    id: row.id,
    at: row.at,
    action: row.action,
    target: row.target,
    actor: row.actor,
    actorName: text(row.details.actorName),
    actorIssuer: text(row.details.actorIssuer),
    actorSubject: text(row.details.actorSubject),
  }));
}
