/**
 * The named checks that say a tenant is onboarded: each passes, fails (with the reason), or is pending (an earlier
 * step has not finished, so it cannot be judged yet). They read only the database: the stack's runs, the AWS
 * credential, discovery scans, the assets' agent status and the agents' heartbeats.
 */
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import { HEARTBEAT_STALE_AFTER_MS } from "./enrollment";
import type { DrizzleDatabase } from "../../db/client";
import { preparedPerDatabase } from "../../db/prepared-query";
import { agents, discoveryScans, integrationCredentials, runs, type DiscoveryScan, type Run } from "../../db/schema";
import { instanceLabel } from "./action-required-fns";
import { deploymentSummary, type DeploymentInstance, type DeploymentSummary } from "./rollout-summary";
import { owesAgent, rolloutStanding } from "./stopped-instances-fns";

export const CHECK_NAMES = [
  "integration_healthy",
  "assets_discovered",
  "agents_targeted",
  "agents_installed",
  "agents_checked_in",
  "clusters_protected",
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

interface InstanceGroups {
  liveAssets: number;
  targeted: DeploymentInstance[];
  /** Targeted and not stopped: stopped instances get the agent when they start; they do not hold onboarding up. */
  running: DeploymentInstance[];
  runningIds: ReadonlySet<string>;
  notInstalled: DeploymentInstance[];
  failedInstalls: DeploymentInstance[];
}

/** Per instance list: the summary shares one list between calls while the tenant's assets are unchanged. */
const groupsOfList = new WeakMap<DeploymentInstance[], InstanceGroups>();

function instanceGroups(instances: DeploymentInstance[]): InstanceGroups {
  let groups = groupsOfList.get(instances);
  if (!groups) {
    const targeted = instances.filter((instance) => instance.targeted);
    const running = targeted.filter(owesAgent);
    const notInstalled = running.filter((instance) => rolloutStanding(instance) !== "installed");
    groups = {
      liveAssets: instances.length,
      targeted,
      running,
      runningIds: new Set(running.map((instance) => instance.assetId)),
      notInstalled,
      failedInstalls: notInstalled.filter((instance) => instance.agentStatus === "failed"),
    };
    groupsOfList.set(instances, groups);
  }
  return groups;
}

/** The first few of `total` names, and how many more. */
const listSome = (shown: string[], total: number) =>
  total > shown.length ? `${shown.join(", ")} and ${total - shown.length} more` : shown.join(", ");
const listNames = (names: string[]) => listSome(names.slice(0, 5), names.length);
const listInstances = (instances: DeploymentInstance[]) => listSome(instances.slice(0, 5).map(instanceLabel), instances.length);

export type LastUp = Pick<Run, "status" | "error">;

/** What the caller has read already (undefined: read here; null: there is none). */
export interface ValidationInputs {
  now?: Date;
  rollout?: DeploymentSummary;
  lastUp?: LastUp | null;
  lastScan?: DiscoveryScan | null;
}

const byTenant = { organizationId: sql.placeholder("organizationId") };

const latestUpQuery = preparedPerDatabase((db) =>
  db
    .select()
    .from(runs)
    .where(and(eq(runs.organizationId, byTenant.organizationId), isNull(runs.awsAccountId), eq(runs.kind, "up")))
    .orderBy(desc(runs.requestedAt))
    .limit(1)
    .prepare("latest_up"),
);

const latestScanQuery = preparedPerDatabase((db) =>
  db
    .select()
    .from(discoveryScans)
    // The home stack's scans: an organization account's scan judges that account (services/onboarding).
    .where(and(eq(discoveryScans.organizationId, byTenant.organizationId), isNull(discoveryScans.awsAccountId)))
    .orderBy(desc(discoveryScans.requestedAt))
    .limit(1)
    .prepare("latest_scan"),
);

const awsCredentialStatusQuery = preparedPerDatabase((db) =>
  db
    .select({ status: integrationCredentials.status })
    .from(integrationCredentials)
    .where(and(eq(integrationCredentials.organizationId, byTenant.organizationId), eq(integrationCredentials.provider, "aws")))
    .prepare("aws_credential_status"),
);

const heartbeatsQuery = preparedPerDatabase((db) =>
  db
    .select({ instanceId: agents.instanceId, lastHeartbeatAt: agents.lastHeartbeatAt })
    .from(agents)
    .where(eq(agents.organizationId, byTenant.organizationId))
    .prepare("agent_heartbeats"),
);

export const latestUp = (db: DrizzleDatabase, organizationId: number) =>
  latestUpQuery(db)
    .execute({ organizationId })
    .then(([run]) => run ?? null);

export const latestScan = (db: DrizzleDatabase, organizationId: number) =>
  latestScanQuery(db)
    .execute({ organizationId })
    .then(([scan]) => scan ?? null);

export async function validateTenant(db: DrizzleDatabase, organizationId: number, inputs: ValidationInputs = {}): Promise<ValidationResult> {
  const now = inputs.now ?? new Date();
  const [[credential], lastUp, lastScan, summary, agentRows] = await Promise.all([
    awsCredentialStatusQuery(db).execute({ organizationId }),
    inputs.lastUp !== undefined ? inputs.lastUp : latestUp(db, organizationId),
    inputs.lastScan !== undefined ? inputs.lastScan : latestScan(db, organizationId),
    inputs.rollout ?? deploymentSummary(db, organizationId),
    heartbeatsQuery(db).execute({ organizationId }),
  ]);
  const { liveAssets, targeted, running, runningIds, notInstalled, failedInstalls } = instanceGroups(summary.instances);

  const checks: ValidationCheck[] = [];

  // Not connected yet is where every onboarding starts, not a failure; a credential that stopped working is.
  if (!credential) checks.push(pending("integration_healthy", "AWS is not connected yet"));
  else if (credential.status === "pending") checks.push(pending("integration_healthy", "waiting for the bootstrap role (the quick-create stack)"));
  else if (credential.status !== "active") checks.push(failed("integration_healthy", `the AWS integration is ${credential.status}`));
  else if (!lastUp) checks.push(pending("integration_healthy", "the tenant's stack has not been applied yet"));
  else if (lastUp.status === "succeeded") checks.push(passed("integration_healthy"));
  else if (lastUp.status === "queued" || lastUp.status === "running") checks.push(pending("integration_healthy", "the stack is being applied"));
  else checks.push(failed("integration_healthy", `the last up ${lastUp.status}${lastUp.error?.message ? `: ${lastUp.error.message}` : ""}`));

  if (!lastScan) checks.push(pending("assets_discovered", "no discovery has run yet"));
  else if (lastScan.status === "queued" || lastScan.status === "running") checks.push(pending("assets_discovered", "discovery is running"));
  else if (lastScan.status === "failed")
    checks.push(failed("assets_discovered", `the last discovery failed: ${lastScan.error?.message ?? "unknown error"}`));
  else if (liveAssets === 0) checks.push(failed("assets_discovered", "discovery found no assets in the configured regions"));
  else if (lastScan.status === "partial") {
    const regions = (lastScan.regions ?? []).filter((region) => region.status === "failed").map((region) => region.region);
    checks.push(failed("assets_discovered", `discovery could not scan ${listNames(regions)}`));
  } else checks.push(passed("assets_discovered"));

  if (liveAssets === 0) checks.push(pending("agents_targeted", "no assets discovered yet"));
  else if (!summary.targeting) checks.push(pending("agents_targeted", "the tenant's stack has not been applied yet"));
  else if (targeted.length === 0) {
    const examples = summary.instances
      .filter((instance) => instance.reason)
      .slice(0, 3)
      .map((instance) => `${instanceLabel(instance)}: ${instance.reason}`);
    checks.push(
      failed(
        "agents_targeted",
        `the applied targeting (${summary.targeting}) covers none of the ${liveAssets} discovered assets${examples.length > 0 ? ` (${examples.join("; ")})` : ""}`,
      ),
    );
  } else checks.push(passed("agents_targeted"));

  if (running.length === 0) checks.push(pending("agents_installed", "no running instance is targeted"));
  else {
    if (notInstalled.length === 0) checks.push(passed("agents_installed"));
    else if (failedInstalls.length > 0) {
      checks.push(
        failed(
          "agents_installed",
          `the install failed on ${failedInstalls.length} of ${running.length} running targeted instances: ${listInstances(failedInstalls)}`,
        ),
      );
    } else if (summary.unmanaged > 0) {
      checks.push(
        failed(
          "agents_installed",
          `${summary.unmanaged} of ${running.length} running targeted instances are not SSM managed: give them an instance profile with AmazonSSMManagedInstanceCore, or turn on Default Host Management`,
        ),
      );
    } else {
      checks.push(
        pending(
          "agents_installed",
          `${notInstalled.length} of ${running.length} running targeted instances have no agent yet: ${listInstances(notInstalled)}`,
        ),
      );
    }
  }

  if (running.length === 0) checks.push(pending("agents_checked_in", "no running instance is targeted"));
  else {
    // Counted from the agents' side: a tenant's running instances can be thousands, its fresh heartbeats as many.
    const fresh = new Set<string>();
    const stale = new Set<string>();
    for (const agent of agentRows) {
      if (!agent.lastHeartbeatAt) continue;
      if (now.getTime() - agent.lastHeartbeatAt.getTime() > HEARTBEAT_STALE_AFTER_MS) stale.add(agent.instanceId);
      else fresh.add(agent.instanceId);
    }
    let freshRunning = 0;
    for (const id of fresh) if (runningIds.has(id)) freshRunning++;
    const silentCount = running.length - freshRunning;
    if (silentCount === 0) checks.push(passed("agents_checked_in"));
    else {
      const examples: string[] = [];
      for (const instance of running) {
        if (examples.length === 5) break;
        if (!fresh.has(instance.assetId)) examples.push(instanceLabel(instance));
      }
      const names = listSome(examples, silentCount);
      const everCheckedIn = [...stale].some((id) => runningIds.has(id) && !fresh.has(id));
      const reason = !everCheckedIn
        ? `${silentCount} of ${running.length} running targeted instances have not checked in: ${names}`
        : `${silentCount} of ${running.length} running targeted instances have not sent a heartbeat in ${HEARTBEAT_STALE_AFTER_MS / 1000} s: ${names}`;
      checks.push((checks.at(-1)?.status === "failed" ? failed : pending)("agents_checked_in", reason));
    }
  }

  // Only for a tenant with EKS clusters the stack covers: each one's agent DaemonSet ready on every node.
  const covered = summary.clusters.filter((cluster) => ["protected", "deploying", "up_pending"].includes(cluster.status));
  if (covered.length > 0) {
    const waiting = covered.filter((cluster) => cluster.status !== "protected");
    if (waiting.length === 0) checks.push(passed("clusters_protected"));
    else {
      const names = listSome(
        waiting.slice(0, 5).map((cluster) => `${cluster.region}/${cluster.name} (${cluster.reason ?? cluster.status})`),
        waiting.length,
      );
      checks.push(pending("clusters_protected", `${waiting.length} of ${covered.length} clusters do not have the agent on every node yet: ${names}`));
    }
  }

  return {
    checks,
    passed: checks.filter((check) => check.status === "passed").length,
    total: checks.length,
    changePending: summary.changePending,
  };
}
