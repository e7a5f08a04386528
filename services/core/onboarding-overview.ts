/**
 * The platform operator's overview: every tenant with its status, its onboarding milestones (from the audit trail),
 * its last run, and the KPIs over all of them (onboarding-kpis-fns.ts says how they are defined).
 */
import { desc, inArray, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { auditLog, organizations, runs, type OnboardingStatus, type RunKind, type RunStatus } from "../../db/schema";
import { onboardingKpis, secondsToOnboard, type OnboardingKpis } from "./onboarding-kpis-fns";

export const CONNECTED_ACTION = "integration.aws.connect";
/** Connecting an AWS Organization enters the cohort as connecting one account does. */
export const ORGANIZATION_CONNECTED_ACTION = "integration.aws.organization.connect";
export const COMPLETED_ACTION = "onboarding.completed";

export interface TenantOverview {
  slug: string;
  name: string;
  onboardingStatus: OnboardingStatus;
  /** The last drift check found the cloud changed outside the stack (services/fleet/drift.ts). */
  drifted: boolean;
  connectedAt: Date | null;
  completedAt: Date | null;
  secondsToOnboard: number | null;
  lastRun: { id: string; kind: RunKind; status: RunStatus; requestedAt: Date; finishedAt: Date | null } | null;
}

export interface OnboardingOverview {
  kpis: OnboardingKpis;
  /** action_required first, then the newest tenants. */
  tenants: TenantOverview[];
}

export async function onboardingOverview(db: DrizzleDatabase): Promise<OnboardingOverview> {
  const [orgs, marks, lastRuns] = await Promise.all([
    db.select().from(organizations).orderBy(desc(organizations.createdAt)),
    db
      .select({
        organizationId: auditLog.organizationId,
        action: auditLog.action,
        at: sql<Date>`min(${auditLog.at})`.mapWith((value) => new Date(value)),
      })
      .from(auditLog)
      .where(inArray(auditLog.action, [CONNECTED_ACTION, ORGANIZATION_CONNECTED_ACTION, COMPLETED_ACTION]))
      .groupBy(auditLog.organizationId, auditLog.action),
    db.selectDistinctOn([runs.organizationId]).from(runs).orderBy(runs.organizationId, desc(runs.requestedAt)),
  ]);
  const milestone = (organizationId: number, ...actions: string[]) =>
    marks
      .filter((mark) => mark.organizationId === organizationId && actions.includes(mark.action))
      .map((mark) => mark.at)
      .sort((a, b) => a.getTime() - b.getTime())[0] ?? null;

  const rows = orgs.map((org) => {
    const milestones = {
      connectedAt: milestone(org.id, CONNECTED_ACTION, ORGANIZATION_CONNECTED_ACTION),
      completedAt: milestone(org.id, COMPLETED_ACTION),
    };
    const run = lastRuns.find((candidate) => candidate.organizationId === org.id);
    const overview: TenantOverview = {
      slug: org.slug,
      name: org.name,
      onboardingStatus: org.onboardingStatus,
      drifted: org.drift?.status === "drifted" && org.onboardingStatus !== "offboarded",
      connectedAt: milestones.connectedAt,
      completedAt: milestones.completedAt,
      secondsToOnboard: secondsToOnboard(milestones),
      lastRun: run ? { id: run.id, kind: run.kind, status: run.status, requestedAt: run.requestedAt, finishedAt: run.finishedAt } : null,
    };
    return { overview, milestones };
  });
  const needsAction = (row: TenantOverview) => (row.onboardingStatus === "action_required" ? 0 : 1);
  return {
    kpis: onboardingKpis(rows.map((row) => row.milestones)),
    tenants: rows.map((row) => row.overview).sort((a, b) => needsAction(a) - needsAction(b)),
  };
}
