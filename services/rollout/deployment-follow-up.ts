/**
 * Keeps a tenant's rollout and onboarding status current: reads the agent rollout from SSM into the assets, then
 * moves the onboarding status on as validation allows (deploying -> validating once every targeted instance has
 * the agent -> completed once every check passes).
 */
import { and, eq, inArray } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { auditLog, organizations, type OnboardingStatus } from "../../db/schema";
import { refreshAgentStatus, type StatusRefresh } from "./agent-status";
import { openRolloutSession } from "../integration/tenant-aws-session";
import { validateTenant } from "./validation-checks";

const IN_ROLLOUT: OnboardingStatus[] = ["discovering", "deploying", "validating"];

export async function advanceOnboardingStatus(db: DrizzleDatabase, organizationId: number, now = new Date()): Promise<void> {
  // Called on every enrollment: a tenant past its rollout (or not in it yet) costs one row read, not a validation.
  const [org] = await db.select({ status: organizations.onboardingStatus }).from(organizations).where(eq(organizations.id, organizationId));
  if (!org || !IN_ROLLOUT.includes(org.status)) return;
  const validation = await validateTenant(db, organizationId, now);
  const installed = validation.checks.find((check) => check.name === "agents_installed")?.status === "passed";
  const next: OnboardingStatus | undefined =
    validation.passed === validation.total ? "completed" : installed ? "validating" : undefined;
  if (!next) return;
  const moved = await db
    .update(organizations)
    .set({ onboardingStatus: next })
    .where(and(eq(organizations.id, organizationId), inArray(organizations.onboardingStatus, IN_ROLLOUT)))
    .returning({ id: organizations.id });
  // The milestone the onboarding KPIs measure to (services/tenant/onboarding-overview.ts).
  if (next === "completed" && moved.length > 0) {
    await db.insert(auditLog).values({ actor: "system:validation", organizationId, action: "onboarding.completed", target: `tenant:${organizationId}` });
  }
}

export async function refreshDeployment(db: DrizzleDatabase, keyring: Keyring, organizationId: number, now = new Date()): Promise<StatusRefresh> {
  const session = await openRolloutSession(db, keyring, organizationId);
  const refresh = await refreshAgentStatus(db, session, now);
  await advanceOnboardingStatus(db, organizationId, now);
  return refresh;
}
