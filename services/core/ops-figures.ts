/** The figures the metrics read from the database at scrape time (lib/metrics.ts MetricsSources). */
import { count, inArray, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { agents, auditLog, runs } from "../../db/schema";
import type { MetricsSources } from "../../lib/metrics";
import { secondsToOnboard } from "./onboarding-kpis-fns";
import { COMPLETED_ACTION, CONNECTED_ACTION } from "./onboarding-overview";

export function opsFigures(db: DrizzleDatabase): MetricsSources {
  return {
    async runsByStatus() {
      const rows = await db.select({ kind: runs.kind, status: runs.status, count: count() }).from(runs).groupBy(runs.kind, runs.status);
      return rows.map((row) => ({ kind: row.kind, status: row.status, count: Number(row.count) }));
    },
    async agentsEnrolled() {
      const [row] = await db.select({ count: count() }).from(agents);
      return Number(row?.count ?? 0);
    },
    async secondsToOnboard() {
      const marks = await db
        .select({
          organizationId: auditLog.organizationId,
          action: auditLog.action,
          at: sql<Date>`min(${auditLog.at})`.mapWith((value) => new Date(value)),
        })
        .from(auditLog)
        .where(inArray(auditLog.action, [CONNECTED_ACTION, COMPLETED_ACTION]))
        .groupBy(auditLog.organizationId, auditLog.action);
      const byTenant = new Map<number, { connectedAt: Date | null; completedAt: Date | null }>();
      for (const mark of marks) {
        if (mark.organizationId === null) continue;
        const milestones = byTenant.get(mark.organizationId) ?? { connectedAt: null, completedAt: null };
        if (mark.action === CONNECTED_ACTION) milestones.connectedAt = mark.at;
        else milestones.completedAt = mark.at;
        byTenant.set(mark.organizationId, milestones);
      }
      return [...byTenant.values()].map(secondsToOnboard).filter((seconds): seconds is number => seconds !== null);
    },
  };
}
