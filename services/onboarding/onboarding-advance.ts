/**
 * Moves a tenant's onboarding status on as the rollout's validation allows (deploying -> validating once every targeted
 * instance has the agent -> completed once every check passes), or to action_required with the reasons and fixes when
 * it cannot go on without a person. It comes back by itself once the causes are gone.
 */
import { and, eq, isNull, ne } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { auditLog, integrationCredentials, organizations, tenantAwsAccounts, type StatusReason } from "../../db/schema";
import { emitNotification } from "../core/notification-events";
import { actionRequiredReasons } from "../rollout/action-required-fns";
import { deploymentSummary } from "../rollout/rollout-summary";
import { latestScan, latestUp, validateTenant } from "../rollout/validation-checks";
import { ADVANCING, statusAfterValidation } from "./onboarding-status-fns";
import { moveOnboardingStatus } from "./onboarding-status-store";

export async function advanceOnboardingStatus(
  db: DrizzleDatabase,
  organizationId: number,
  now = new Date(),
  options: { refreshError?: string } = {},
): Promise<void> {
  // Called on every enrollment: a tenant past its rollout (or not in it yet) costs one row read, not a validation.
  const [org] = await db.select({ status: organizations.onboardingStatus }).from(organizations).where(eq(organizations.id, organizationId));
  if (!org || !ADVANCING.includes(org.status)) return;
  const [lastUp, lastScan, [credential]] = await Promise.all([
    latestUp(db, organizationId),
    latestScan(db, organizationId),
    db
      .select({ connectionCheck: integrationCredentials.connectionCheck })
      .from(integrationCredentials)
      .where(and(eq(integrationCredentials.organizationId, organizationId), eq(integrationCredentials.provider, "aws"))),
  ]);
  // Before the stack is applied there is no rollout to judge (the run's own follow-up moves the status then).
  if (lastUp?.status !== "succeeded" && org.status !== "action_required") return;
  const rollout = await deploymentSummary(db, organizationId);
  const validation = await validateTenant(db, organizationId, { now, rollout, lastUp, lastScan });
  const reasons: StatusReason[] = actionRequiredReasons({
    rollout,
    lastUp,
    lastScan,
    connectionCheck: credential?.connectionCheck,
    refreshError: options.refreshError,
  });
  const next = statusAfterValidation({
    current: org.status,
    reasons: reasons.length,
    checksPassed: validation.passed,
    checksTotal: validation.total,
    agentsInstalled: validation.checks.find((check) => check.name === "agents_installed")?.status === "passed",
  });
  if (!next) return;
  const moved = await moveOnboardingStatus(db, organizationId, next, { from: ADVANCING, reasons: next === "action_required" ? reasons : null });
  // The milestone the onboarding KPIs measure to (services/core/onboarding-overview.ts); written once, and for a tenant
  // with organization accounts only when every one of them is completed too (the last to complete writes it).
  if (next === "completed" && org.status !== "completed" && moved && !(await organizationAccountsPending(db, organizationId))) {
    await db
      .insert(auditLog)
      .values({ actor: "system:validation", organizationId, action: "onboarding.completed", target: `tenant:${organizationId}` });
  }
  if (moved && next !== org.status && (next === "completed" || next === "action_required")) {
    await emitNotification(db, {
      type: next === "completed" ? "onboarding.completed" : "onboarding.action_required",
      organizationId,
      data: { onboarding_status: next, previous_status: org.status, action_required: next === "action_required" ? reasons : [] },
    });
  }
}

async function organizationAccountsPending(db: DrizzleDatabase, organizationId: number): Promise<boolean> {
  const [pending] = await db
    .select({ id: tenantAwsAccounts.id })
    .from(tenantAwsAccounts)
    .where(
      and(
        eq(tenantAwsAccounts.organizationId, organizationId),
        eq(tenantAwsAccounts.source, "organization"),
        isNull(tenantAwsAccounts.offboardedAt),
        ne(tenantAwsAccounts.status, "completed"),
      ),
    )
    .limit(1);
  return pending !== undefined;
}
