/**
 * One tenant's onboarding progress: the stack (its latest `up`), discovery (its latest scan), the agent deployment
 * (targeted assets and their agent status) and validation (the named checks), each as a status and a percentage,
 * and an overall percentage weighted by how long each phase takes.
 */
import { openPermissionFindings } from "../core/permission-findings";
import { missingPermissionOf, type MissingPermission } from "../core/permission-findings-fns";
import { eq, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { preparedPerDatabase } from "../../db/prepared-query";
import {
  organizations,
  runEvents,
  type Organization,
  type DiscoveryScan,
  type OnboardingStatus,
  type Run,
  type StatusReason,
  type DriftedResource,
} from "../../db/schema";
import { accountBreakdown, type AccountBreakdown } from "../organization/coverage";
import type { AccountClusterRollout } from "../rollout/cluster-rollout";
import { deploymentSummary, type DeploymentSummary } from "../rollout/rollout-summary";
import { latestScan, latestUp, validateTenant } from "../rollout/validation-checks";
import { owesAgent, rolloutStanding } from "../rollout/stopped-instances-fns";

export type PhaseStatus = "pending" | "in_progress" | "completed" | "failed";

export interface PhaseProgress {
  status: PhaseStatus;
  progress: number;
}

export interface TenantProgress {
  stack: PhaseProgress & { runId: string | null; resourcesDone: number; resourcesTotal: number };
  discovery: PhaseProgress & { scanId: string | null; assetsFound: number; regionsFailed: string[]; regionsExcluded: string[] };
  deployment: PhaseProgress & { targeted: number; agentsDeployed: number; failed: number; clusters: AccountClusterRollout[] };
  validation: PhaseProgress & { checksPassed: number; checksTotal: number };
  overallProgress: number;
  onboardingStatus: OnboardingStatus;
  /** With action_required: what a person has to do. */
  actionRequired: StatusReason[];
  /** What AWS refused the platform in the tenant's accounts, each with its fix (services/core/permission-findings.ts). */
  missingPermissions: MissingPermission[];
  /** Settings not applied yet ("change pending: run an up ..."), or null. */
  changePending: string | null;
  /** The last drift check found the cloud changed outside the stack: which resources and properties; else null. */
  drift: { status: "drifted"; runId: string; checkedAt: string; resources: DriftedResource[] } | null;
  /**
   * A tenant with organization accounts: each account's status and progress, and their sum (overallProgress is then
   * the mean over the live accounts); null for a tenant of one account.
   */
  accounts: AccountBreakdown | null;
}

const WEIGHTS = { stack: 0.3, discovery: 0.2, deployment: 0.3, validation: 0.2 };

const pct = (done: number, total: number) => (total <= 0 ? 0 : Math.min(100, Math.round((done / total) * 100)));

const resourceCountsQuery = preparedPerDatabase((db) =>
  db
    .select({
      planned: sql<number>`count(*) filter (where ${runEvents.event} ? 'resourcePreEvent')`.mapWith(Number),
      done: sql<number>`count(*) filter (where ${runEvents.event} ? 'resOutputsEvent')`.mapWith(Number),
    })
    .from(runEvents)
    .where(eq(runEvents.runId, sql.placeholder("runId")))
    .prepare("run_resource_counts"),
);

const tenantStateQuery = preparedPerDatabase((db) =>
  db
    .select({
      status: organizations.onboardingStatus,
      reasons: organizations.statusReasons,
      drift: organizations.drift,
      settings: organizations.integrationSettings,
    })
    .from(organizations)
    .where(eq(organizations.id, sql.placeholder("organizationId")))
    .prepare("tenant_progress_state"),
);

async function stackProgress(db: DrizzleDatabase, run: Run | null): Promise<TenantProgress["stack"]> {
  if (!run) return { status: "pending", progress: 0, runId: null, resourcesDone: 0, resourcesTotal: 0 };
  const [counts] = await resourceCountsQuery(db).execute({ runId: run.id });
  const planned = counts?.planned ?? 0;
  const done = counts?.done ?? 0;
  const base = { runId: run.id, resourcesDone: done, resourcesTotal: planned };
  if (run.status === "succeeded") return { status: "completed", progress: 100, ...base };
  if (run.status === "queued") return { status: "in_progress", progress: 0, ...base };
  if (run.status === "running") return { status: "in_progress", progress: Math.min(95, pct(done, Math.max(planned, 1))), ...base };
  return { status: "failed", progress: pct(done, Math.max(planned, 1)), ...base };
}

function discoveryProgress(scan: DiscoveryScan | null, assetsFound: number): TenantProgress["discovery"] {
  if (!scan) return { status: "pending", progress: 0, scanId: null, assetsFound, regionsFailed: [], regionsExcluded: [] };
  const regionsWhere = (status: string) => (scan.regions ?? []).filter((region) => region.status === status).map((region) => region.region);
  const base = { scanId: scan.id, assetsFound, regionsFailed: regionsWhere("failed"), regionsExcluded: regionsWhere("excluded_by_organization") };
  switch (scan.status) {
    case "queued":
      return { status: "in_progress", progress: 10, ...base };
    case "running":
      return { status: "in_progress", progress: 50, ...base };
    case "failed":
      return { status: "failed", progress: 0, ...base };
    default:
      return { status: "completed", progress: 100, ...base };
  }
}

function deploymentPhase({ targeted, installed, failed, instances, clusters }: DeploymentSummary): TenantProgress["deployment"] {
  // Stopped instances get the agent when they start (stopped-instances-fns.ts): the phase is done when every
  // instance that owes an agent has it.
  const owing = instances.filter(owesAgent);
  const done = owing.filter((instance) => rolloutStanding(instance) === "installed").length;
  const due = owing.length;
  const status: PhaseStatus = due === 0 ? "pending" : done === due ? "completed" : failed > 0 ? "failed" : "in_progress";
  return { status, progress: pct(done, due), targeted, agentsDeployed: installed, failed, clusters };
}

export async function tenantProgress(db: DrizzleDatabase, tenant: Organization, now = new Date()): Promise<TenantProgress> {
  const organizationId = tenant.id;
  const [[org], lastUp, lastScan, findings] = await Promise.all([
    tenantStateQuery(db).execute({ organizationId }),
    latestUp(db, organizationId),
    latestScan(db, organizationId),
    openPermissionFindings(db, organizationId),
  ]);
  const rollout = await deploymentSummary(db, organizationId, org?.settings ?? {});
  const [stack, validation] = await Promise.all([stackProgress(db, lastUp), validateTenant(db, organizationId, { now, rollout, lastUp, lastScan })]);
  const discovery = discoveryProgress(lastScan, rollout.instances.length);
  const deployment = deploymentPhase(rollout);
  const validationPhase: TenantProgress["validation"] = {
    status:
      validation.passed === validation.total ? "completed" : validation.checks.some((check) => check.status === "failed") ? "failed" : "in_progress",
    progress: pct(validation.passed, validation.total),
    checksPassed: validation.passed,
    checksTotal: validation.total,
  };
  const overall = Math.round(
    stack.progress * WEIGHTS.stack +
      discovery.progress * WEIGHTS.discovery +
      deployment.progress * WEIGHTS.deployment +
      validationPhase.progress * WEIGHTS.validation,
  );
  const status = org?.status ?? "not_started";
  return withAccounts(db, tenant, {
    stack,
    discovery,
    deployment,
    validation: validationPhase,
    // An offboarded tenant is monitored nowhere: nothing of it counts as done.
    overallProgress: status === "offboarded" ? 0 : overall,
    onboardingStatus: status,
    actionRequired: status === "action_required" ? (org?.reasons ?? []) : [],
    missingPermissions: findings.map(missingPermissionOf),
    changePending: rollout.changePending,
    drift:
      org?.drift?.status === "drifted"
        ? { status: "drifted" as const, runId: org.drift.runId, checkedAt: org.drift.checkedAt, resources: org.drift.resources }
        : null,
  });
}

async function withAccounts(db: DrizzleDatabase, tenant: Organization, progress: Omit<TenantProgress, "accounts">): Promise<TenantProgress> {
  const breakdown = await accountBreakdown(db, tenant, {
    status: progress.onboardingStatus,
    reasons: progress.actionRequired,
    progress: progress.overallProgress,
  });
  if (!breakdown) return { ...progress, accounts: null };
  const live = breakdown.accounts.filter((account) => account.status !== "offboarded");
  const overall = live.length === 0 ? 0 : Math.round(live.reduce((sum, account) => sum + account.progress, 0) / live.length);
  return { ...progress, overallProgress: overall, accounts: breakdown };
}
