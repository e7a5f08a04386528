/**
 * The named checks that say a tenant is onboarded: each passes, fails (with the reason), or is pending (an earlier
 * step has not finished, so it cannot be judged yet). They read only the database: the stack's runs, the AWS
 * credential, discovery scans, the assets' agent status and the agents' heartbeats.
 */
import { and, desc, eq } from "drizzle-orm";
import { HEARTBEAT_STALE_AFTER_MS } from "./enrollment";
import type { DrizzleDatabase } from "../../db/client";
import { agents, discoveryScans, integrationCredentials, runs } from "../../db/schema";
import { deploymentSummary, type DeploymentSummary } from "./rollout-summary";

export const CHECK_NAMES = [
  "integration_healthy",
  "assets_discovered",
  "agents_targeted",
  "agents_installed",
  "agents_checked_in",
] as const;
export type CheckName = (typeof CHECK_NAMES)[number];
export type CheckStatus = "passed" | "failed" | "pending";

export interface ValidationCheck {
  name: CheckName;
  status: CheckStatus;
  reason?: string;
}

export interface ValidationResult {
  checks: ValidationCheck[];
  passed: number;
  total: number;
  /** Settings not applied yet ("change pending: run an up ..."), or null. */
  changePending: string | null;
}

const passed = (name: CheckName): ValidationCheck => ({ name, status: "passed" });
const failed = (name: CheckName, reason: string): ValidationCheck => ({ name, status: "failed", reason });
const pending = (name: CheckName, reason: string): ValidationCheck => ({ name, status: "pending", reason });

const listNames = (names: string[]) => (names.length > 5 ? `${names.slice(0, 5).join(", ")} and ${names.length - 5} more` : names.join(", "));

/** `rollout`: the tenant's deployment summary when the caller has it already. */
export async function validateTenant(
  db: DrizzleDatabase,
  organizationId: number,
  now = new Date(),
  rollout?: DeploymentSummary,
): Promise<ValidationResult> {
  const [[credential], [lastUp], [lastScan], summary, agentRows] = await Promise.all([
    db
      .select({ status: integrationCredentials.status })
      .from(integrationCredentials)
      .where(and(eq(integrationCredentials.organizationId, organizationId), eq(integrationCredentials.provider, "aws"))),
    db
      .select({ status: runs.status, error: runs.error })
      .from(runs)
      .where(and(eq(runs.organizationId, organizationId), eq(runs.kind, "up")))
      .orderBy(desc(runs.requestedAt))
      .limit(1),
    db
      .select()
      .from(discoveryScans)
      .where(eq(discoveryScans.organizationId, organizationId))
      .orderBy(desc(discoveryScans.requestedAt))
      .limit(1),
    rollout ?? deploymentSummary(db, organizationId),
    db.select().from(agents).where(eq(agents.organizationId, organizationId)),
  ]);

  const checks: ValidationCheck[] = [];

  // Not connected yet is where every onboarding starts, not a failure; a credential that stopped working is.
  if (!credential) checks.push(pending("integration_healthy", "AWS is not connected yet"));
  else if (credential.status === "pending") checks.push(pending("integration_healthy", "waiting for the bootstrap role (the quick-create stack)"));
  else if (credential.status !== "active") checks.push(failed("integration_healthy", `the AWS integration is ${credential.status}`));
  else if (!lastUp) checks.push(pending("integration_healthy", "the tenant's stack has not been applied yet"));
  else if (lastUp.status === "succeeded") checks.push(passed("integration_healthy"));
  else if (lastUp.status === "queued" || lastUp.status === "running") checks.push(pending("integration_healthy", "the stack is being applied"));
  else checks.push(failed("integration_healthy", `the last up ${lastUp.status}${lastUp.error?.message ? `: ${lastUp.error.message}` : ""}`));

  const liveAssets = summary.instances.length;
  if (!lastScan) checks.push(pending("assets_discovered", "no discovery has run yet"));
  else if (lastScan.status === "queued" || lastScan.status === "running") checks.push(pending("assets_discovered", "discovery is running"));
  else if (lastScan.status === "failed") checks.push(failed("assets_discovered", `the last discovery failed: ${lastScan.error?.message ?? "unknown error"}`));
  else if (liveAssets === 0) checks.push(failed("assets_discovered", "discovery found no assets in the configured regions"));
  else if (lastScan.status === "partial") {
    const regions = (lastScan.regions ?? []).filter((region) => region.status === "failed").map((region) => region.region);
    checks.push(failed("assets_discovered", `discovery could not scan ${listNames(regions)}`));
  } else checks.push(passed("assets_discovered"));

  const targeted = summary.instances.filter((instance) => instance.targeted);
  if (liveAssets === 0) checks.push(pending("agents_targeted", "no assets discovered yet"));
  else if (!summary.targeting) checks.push(pending("agents_targeted", "the tenant's stack has not been applied yet"));
  else if (targeted.length === 0) {
    const examples = summary.instances.filter((instance) => instance.reason).slice(0, 3).map((instance) => `${instance.name ?? instance.asset_id}: ${instance.reason}`);
    checks.push(
      failed(
        "agents_targeted",
        `the applied targeting (${summary.targeting}) covers none of the ${liveAssets} discovered assets${examples.length > 0 ? ` (${examples.join("; ")})` : ""}`,
      ),
    );
  } else checks.push(passed("agents_targeted"));

  const label = (instance: (typeof targeted)[number]) => instance.name ?? instance.asset_id;
  // Stopped instances get the agent when they start; they do not hold onboarding up.
  const running = targeted.filter((instance) => instance.state !== "stopped" && instance.state !== "stopping");
  if (running.length === 0) checks.push(pending("agents_installed", "no running instance is targeted"));
  else {
    const notInstalled = running.filter((instance) => instance.agent_status !== "installed" && instance.agent_status !== "checked_in");
    const failedInstalls = notInstalled.filter((instance) => instance.agent_status === "failed");
    if (notInstalled.length === 0) checks.push(passed("agents_installed"));
    else if (failedInstalls.length > 0) {
      checks.push(failed("agents_installed", `the install failed on ${failedInstalls.length} of ${running.length} running targeted instances: ${listNames(failedInstalls.map(label))}`));
    } else if (summary.unmanaged > 0) {
      checks.push(
        failed(
          "agents_installed",
          `${summary.unmanaged} of ${running.length} running targeted instances are not SSM managed: give them an instance profile with AmazonSSMManagedInstanceCore, or turn on Default Host Management`,
        ),
      );
    } else {
      checks.push(pending("agents_installed", `${notInstalled.length} of ${running.length} running targeted instances have no agent yet: ${listNames(notInstalled.map(label))}`));
    }
  }

  if (running.length === 0) checks.push(pending("agents_checked_in", "no running instance is targeted"));
  else {
    const lastHeartbeat = new Map(agentRows.map((agent) => [agent.instanceId, agent.lastHeartbeatAt]));
    const silent = running.filter((instance) => {
      const at = lastHeartbeat.get(instance.asset_id);
      return !at || now.getTime() - at.getTime() > HEARTBEAT_STALE_AFTER_MS;
    });
    if (silent.length === 0) checks.push(passed("agents_checked_in"));
    else {
      const never = silent.filter((instance) => !lastHeartbeat.get(instance.asset_id));
      const reason =
        never.length === silent.length
          ? `${silent.length} of ${running.length} running targeted instances have not checked in: ${listNames(silent.map(label))}`
          : `${silent.length} of ${running.length} running targeted instances have not sent a heartbeat in ${HEARTBEAT_STALE_AFTER_MS / 1000} s: ${listNames(silent.map(label))}`;
      checks.push((checks.at(-1)?.status === "failed" ? failed : pending)("agents_checked_in", reason));
    }
  }

  return {
    checks,
    passed: checks.filter((check) => check.status === "passed").length,
    total: checks.length,
    changePending: summary.change_pending,
  };
}
