/**
 * The agent rollout as a domain: where it stands (read from SSM with the tenant's own session, the stored state as
 * the fallback), the retry of failed installs, the enrolled agents' health, the validation checks, and what agents
 * themselves call (enrollment, heartbeat).
 */
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import type { Organization } from "../../db/schema";
import { openRolloutSession, TenantAwsAccessError, TenantNotProvisionedError } from "../core/tenant-aws-session";
import { recordAudit } from "../core/audit-store";
import { type Principal, requireAdmin, requireTenantAdmin } from "../core/principal";
import { refreshRollout } from "./rollout-refresh";
import { enrollAgent, recordHeartbeat, resetAgentEnrollment, type EnrollmentRequest, type HeartbeatRequest } from "./enrollment";
import { awsIdentityTrust, type IdentityTrust } from "./instance-identity-fns";
import { retryFailedDeployments } from "./retry";
import { deploymentHealth, deploymentSummary } from "./rollout-summary";
import { validateTenant } from "./validation-checks";
import { neutralUpstreamText } from "../../lib/upstream-errors";

export interface RolloutServiceDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  /** Whose signatures prove an agent's instance (default: AWS's published certificates only). */
  identityTrust?: IdentityTrust;
  /**
   * Told after the rollout may have moved (read from SSM, an agent enrolled, failed installs retried), with why SSM
   * could not be read when it could not: the onboarding moves the tenant's status on (services/onboarding).
   */
  onRolloutChanged?(organizationId: number, details?: { refreshError?: string }): Promise<void>;
}

export function createRolloutService({
  db,
  keyring,
  identityTrust = awsIdentityTrust(),
  onRolloutChanged = async () => undefined,
}: RolloutServiceDeps) {
  return {
    /** The rollout summary, read from SSM first when asked and possible. */
    async deployment(org: Organization, refresh: boolean) {
      let refreshed = false;
      let refreshError: string | undefined;
      if (refresh) {
        try {
          await refreshRollout(db, keyring, org.id);
          refreshed = true;
        } catch (error) {
          if (!(error instanceof TenantNotProvisionedError || error instanceof TenantAwsAccessError)) throw error;
          refreshError = error instanceof TenantAwsAccessError ? neutralUpstreamText(error.cause ?? error.message) : error.message;
          // A role that cannot be used is a reason for action_required; a stack not provisioned yet is no news.
          if (error instanceof TenantAwsAccessError) await onRolloutChanged(org.id, { refreshError });
        }
        if (refreshed) await onRolloutChanged(org.id);
      }
      return { ...(await deploymentSummary(db, org.id)), refreshed, refreshError };
    },

    /** Re-runs the agent document on the failed instances only, highest priority first. */
    async retry(principal: Principal, org: Organization) {
      requireTenantAdmin(principal);
      const session = await openRolloutSession(db, keyring, org.id);
      const result = await retryFailedDeployments(db, session, principal.actor);
      await recordAudit(db, principal, {
        action: "deployment.retry",
        organizationId: org.id,
        details: { retried: result.retried, commands: result.commands.map((command) => command.commandId) },
      });
      await onRolloutChanged(org.id);
      return result;
    },

    /** Enrolled agents and their heartbeats; an offboarded tenant's agents are not monitored, so none is healthy. */
    async health(org: Organization) {
      const health = await deploymentHealth(db, org.id);
      if (org.onboardingStatus !== "offboarded") return health;
      return {
        ...health,
        status: "offboarded" as const,
        agentsHealthy: 0,
        agentsStale: health.agentsEnrolled,
        agents: health.agents.map((agent) => ({ ...agent, healthy: false })),
      };
    },

    async validation(org: Organization) {
      const validation = await validateTenant(db, org.id);
      if (org.onboardingStatus !== "offboarded") return validation;
      const reason = `the tenant was offboarded${org.offboardedAt ? ` on ${org.offboardedAt.toISOString()}` : ""}: nothing is monitored`;
      return { ...validation, checks: validation.checks.map((check) => ({ name: check.name, status: "failed" as const, reason })), passed: 0 };
    },

    async enroll(request: EnrollmentRequest) {
      const enrolled = await enrollAgent(db, identityTrust, request);
      await onRolloutChanged(enrolled.agent.organizationId);
      return enrolled;
    },

    heartbeat: (request: HeartbeatRequest) => recordHeartbeat(db, request),

    /** A platform operator lets an instance enroll again without its agent's credential (a rebuilt or lost agent). */
    async resetEnrollment(principal: Principal, org: Organization, instanceId: string) {
      requireTenantAdmin(principal);
      requireAdmin(principal);
      const agent = await resetAgentEnrollment(db, org.id, instanceId);
      await recordAudit(db, principal, { action: "agent.enrollment_reset", organizationId: org.id, target: instanceId });
      return agent;
    },
  };
}

export type RolloutService = ReturnType<typeof createRolloutService>;
