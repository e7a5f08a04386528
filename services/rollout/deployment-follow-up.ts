/**
 * Keeps a tenant's rollout and onboarding status current: reads the agent rollout from SSM into the assets, then
 * moves the onboarding status on as validation allows (deploying -> validating once every targeted instance has the
 * agent -> completed once every check passes), or to action_required with the reasons and fixes when it cannot go on
 * without a person. It comes back by itself once the causes are gone.
 */
import { and, eq, inArray } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { auditLog, integrationCredentials, organizations, type OnboardingStatus, type StatusReason } from "../../db/schema";
import { openRolloutSession, TenantAwsAccessError } from "../core/tenant-aws-session";
import { emitNotification } from "../core/notification-events";
import { actionRequiredReasons } from "./action-required-fns";
import { refreshAgentStatus, type StatusRefresh } from "./agent-status";
import { deploymentSummary } from "./rollout-summary";
import { latestScan, latestUp, validateTenant } from "./validation-checks";
import { neutralUpstreamText } from "../../lib/upstream-errors";

const ADVANCING: OnboardingStatus[] = ["discovering", "deploying", "validating", "action_required"];

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
  const installed = validation.checks.find((check) => check.name === "agents_installed")?.status === "passed";
  const next: OnboardingStatus | undefined =
    reasons.length > 0
      ? "action_required"
      : validation.passed === validation.total
        ? "completed"
        : installed
          ? "validating"
          : org.status === "action_required"
            ? "deploying"
            : undefined;
  if (!next) return;
  const moved = await db
    .update(organizations)
    .set({ onboardingStatus: next, statusReasons: next === "action_required" ? reasons : null })
    .where(and(eq(organizations.id, organizationId), inArray(organizations.onboardingStatus, ADVANCING)))
    .returning({ id: organizations.id });
  // The milestone the onboarding KPIs measure to (services/tenant/onboarding-overview.ts); written once.
  if (next === "completed" && org.status !== "completed" && moved.length > 0) {
    await db.insert(auditLog).values({ actor: "system:validation", organizationId, action: "onboarding.completed", target: `tenant:${organizationId}` });
  }
  if (moved.length > 0 && next !== org.status && (next === "completed" || next === "action_required")) {
    await emitNotification(db, {
      type: next === "completed" ? "onboarding.completed" : "onboarding.action_required",
      organizationId,
      data: { onboarding_status: next, previous_status: org.status, action_required: next === "action_required" ? reasons : [] },
    });
  }
}

export async function refreshDeployment(db: DrizzleDatabase, keyring: Keyring, organizationId: number, now = new Date()): Promise<StatusRefresh> {
  const session = await openRolloutSession(db, keyring, organizationId);
  let refresh: StatusRefresh;
  try {
    refresh = await refreshAgentStatus(db, session, now);
  } catch (error) {
    if (error instanceof TenantAwsAccessError) {
      await advanceOnboardingStatus(db, organizationId, now, { refreshError: neutralUpstreamText(error.cause ?? error.message) });
    }
    throw error;
  }
  await advanceOnboardingStatus(db, organizationId, now);
  return refresh;
}
