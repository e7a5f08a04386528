/**
 * The agent rollout of a tenant as stored (refreshAgentStatus writes it): counts for the summary, the per-instance
 * list, and the health of enrolled agents by their heartbeats.
 */
import { assetsOfStack } from "../core/account-assets";
import { and, eq, isNull } from "drizzle-orm";
import { assetsVersion } from "./asset-versions";
import { type AccountClusterRollout, clusterRollouts } from "./cluster-rollout";
import { HEARTBEAT_STALE_AFTER_MS } from "./enrollment";
import type { DrizzleDatabase } from "../../db/client";
import { agents, ASSET_PRIORITIES, cloudAssets, organizations, type AgentStatus, type CloudAsset, type IntegrationSettings } from "../../db/schema";
import { appliedStackOutputs } from "../core/applied-outputs";
import { decisionFor } from "./agent-status";
import { INSTALL_FAILURE_CAUSES, type InstallFailure } from "./install-failure-fns";
import { isStoppedState, owesAgent, rolloutStanding } from "./stopped-instances-fns";
import { appliedSpecOf, changePendingMessage, describeTargeting, pendingChanges, requestedSpecOf, type RolloutSpec } from "../core/rollout-spec-fns";

export interface DeploymentInstance {
  assetId: string;
  name: string | null;
  assetType: string;
  region: string;
  priority: CloudAsset["priority"];
  platform: string | null;
  /** EC2 instance state (running, stopped, ...); null for other assets. */
  state: string | null;
  targeted: boolean;
  agentStatus: AgentStatus;
  reason: string | null;
  /** A failed install's cause, fix and last output lines (from what the step printed), when SSM kept them. */
  failure: InstallFailure | null;
  statusAt: Date | null;
}

export interface DeploymentSummary {
  /** What the applied stack targets, in words; null before the first successful up. */
  targeting: string | null;
  /** Settings not applied yet ("change pending: run an up ..."), or null. */
  changePending: string | null;
  /** Targeted instances SSM does not manage yet (they need an instance profile or Default Host Management). */
  unmanaged: number;
  targeted: number;
  /** Targeted instances that are stopped and have no agent: the association reaches them when they start; they do not
   * hold onboarding up, a failed install on them included (stopped-instances-fns.ts). */
  stopped: number;
  installed: number;
  failed: number;
  pending: number;
  notCompatible: number;
  notTargeted: number;
  checkedIn: number;
  lastCheckedAt: Date | null;
  instances: DeploymentInstance[];
  /** Every EKS cluster found: covered or why not, and its agent DaemonSet's desired and ready nodes. */
  clusters: AccountClusterRollout[];
}

/** The failure agent-status.ts stored with a failed install, if it is one. */
function storedFailure(detail: CloudAsset["agentStatusDetail"]): InstallFailure | null {
  const failure = detail?.failure as Partial<InstallFailure> | undefined;
  if (!failure || typeof failure.cause !== "string" || !INSTALL_FAILURE_CAUSES.includes(failure.cause as InstallFailure["cause"])) return null;
  return {
    cause: failure.cause as InstallFailure["cause"],
    reason: String(failure.reason ?? ""),
    fix: String(failure.fix ?? ""),
    lines: Array.isArray(failure.lines) ? failure.lines.map(String) : [],
  };
}

const priorityRank = (priority: CloudAsset["priority"]) => ASSET_PRIORITIES.indexOf(priority);

/** Highest priority first, then by name: the order rollouts and retries go in. */
export function byPriority(a: CloudAsset, b: CloudAsset): number {
  return priorityRank(a.priority) - priorityRank(b.priority) || (a.tags.Name ?? a.assetId).localeCompare(b.tags.Name ?? b.assetId);
}

const NOT_COMPATIBLE_REASON: Record<string, string> = {
  rds: "a managed database (RDS): there is no host to install the agent on; it is monitored through discovery",
  eks: "a Kubernetes cluster (EKS): the agent runs on its nodes as a DaemonSet, not through SSM; the cluster is monitored through discovery",
};

/** Why an asset without an installed agent has none, when nothing more specific was recorded. */
function fallbackReason(asset: CloudAsset, targeted: boolean, applied: RolloutSpec | undefined): string | null {
  if (asset.agentStatus === "installed" || asset.agentStatus === "checked_in") return null;
  if (!asset.agentCompatible) {
    const state = typeof asset.assetData.state === "string" ? asset.assetData.state : undefined;
    return NOT_COMPATIBLE_REASON[asset.assetType] ?? (state ? `${state}: nothing to install` : `a ${asset.assetType} asset takes no agent`);
  }
  if (!applied) return "the tenant's stack is not applied yet: the agent association does not exist";
  if (!targeted) {
    const decision = decisionFor(asset, applied);
    return decision.targeted ? null : decision.message;
  }
  return "not read from SSM yet";
}

export interface RolloutState {
  settings: IntegrationSettings;
  applied: RolloutSpec | undefined;
  /** The counts and the per-instance list; shared with other callers while the assets are unchanged: read only. */
  tally: RolloutTally;
}

/** The part of the summary that depends only on the assets and the applied spec. */
export type RolloutTally = Omit<DeploymentSummary, "targeting" | "changePending" | "clusters">;

interface RolloutCacheEntry {
  version: string;
  appliedKey: string;
  tally: RolloutTally;
}

/**
 * The per-asset part of a tenant's rollout (every asset read, its targeting decided, the counts and the instance
 * list built: tens of milliseconds at 10,000 assets), kept per tenant while the tenant's assets and applied spec are
 * unchanged. The assets' version (asset-versions.ts) is read on every call, so a cached answer is never stale. The
 * cache holds at most ROLLOUT_CACHE_INSTANCES instances in all (least recently used tenants go first), and always the
 * tenant just read.
 */
const rolloutCache = new Map<number, RolloutCacheEntry>();
const ROLLOUT_CACHE_INSTANCES = 50_000;

function cacheRollout(organizationId: number, entry: RolloutCacheEntry): void {
  rolloutCache.delete(organizationId);
  let cached = 0;
  for (const other of rolloutCache.values()) cached += other.tally.instances.length;
  for (const [id, other] of rolloutCache) {
    if (cached + entry.tally.instances.length <= ROLLOUT_CACHE_INSTANCES) break;
    rolloutCache.delete(id);
    cached -= other.tally.instances.length;
  }
  rolloutCache.set(organizationId, entry);
}

/** `knownSettings`: the tenant's integration settings when the caller has just read them. */
export async function loadRollout(db: DrizzleDatabase, organizationId: number, knownSettings?: IntegrationSettings): Promise<RolloutState> {
  const [settings, outputs, version] = await Promise.all([
    knownSettings ??
      db
        .select({ settings: organizations.integrationSettings })
        .from(organizations)
        .where(eq(organizations.id, organizationId))
        .then(([org]) => org?.settings ?? {}),
    appliedStackOutputs(db, organizationId),
    assetsVersion(db, organizationId),
  ]);
  const applied = appliedSpecOf(outputs, settings);
  const appliedKey = JSON.stringify(applied ?? null);
  let entry = rolloutCache.get(organizationId);
  if (!entry || entry.version !== version || entry.appliedKey !== appliedKey) {
    entry = { version, appliedKey, tally: tallyRows(await rolloutRows(db, organizationId, applied)) };
  }
  cacheRollout(organizationId, entry);
  return { settings, applied, tally: entry.tally };
}

type RolloutRow = { asset: CloudAsset; targeted: boolean; reason: string | null };

async function rolloutRows(db: DrizzleDatabase, organizationId: number, applied: RolloutSpec | undefined): Promise<RolloutRow[]> {
  const assets = await db
    .select()
    .from(cloudAssets)
    // The home stack's assets: each organization account's rollout is its own (services/onboarding/account-onboarding.ts).
    .where(and(assetsOfStack(organizationId, { kind: "home", awsAccountId: null }), isNull(cloudAssets.removedAt)));
  return assets.sort(byPriority).map((asset) => {
    const decision = applied && asset.agentCompatible ? decisionFor(asset, applied) : undefined;
    const targeted = decision?.targeted === true || (asset.agentCompatible && asset.agentStatus === "checked_in");
    const stored = typeof asset.agentStatusDetail?.reason === "string" ? asset.agentStatusDetail.reason : null;
    // A stored reason from an older targeting is stale once the applied targeting leaves the instance out.
    const reason =
      decision && !decision.targeted && asset.agentStatus !== "checked_in" ? decision.message : (stored ?? fallbackReason(asset, targeted, applied));
    return { asset, targeted, reason };
  });
}

function tallyRows(rows: RolloutRow[]): RolloutTally {
  const tally: RolloutTally = {
    unmanaged: 0,
    targeted: 0,
    stopped: 0,
    installed: 0,
    failed: 0,
    pending: 0,
    notCompatible: 0,
    notTargeted: 0,
    checkedIn: 0,
    lastCheckedAt: null,
    instances: [],
  };
  let lastChecked = 0;
  for (const { asset, targeted, reason } of rows) {
    if (!asset.agentCompatible) tally.notCompatible++;
    else if (!targeted) tally.notTargeted++;
    else {
      tally.targeted++;
      tally[rolloutStanding({ agentStatus: asset.agentStatus, state: asset.assetData.state })]++;
      if (asset.agentStatus === "checked_in") tally.checkedIn++;
      if (asset.agentStatusDetail?.notTargeted === "not_managed") tally.unmanaged++;
    }
    lastChecked = Math.max(lastChecked, asset.agentStatusAt?.getTime() ?? 0);
    tally.instances.push({
      assetId: asset.assetId,
      name: asset.tags.Name ?? null,
      assetType: asset.assetType,
      region: asset.region,
      priority: asset.priority,
      platform: typeof asset.assetData.platform === "string" ? asset.assetData.platform : null,
      state: asset.assetType === "ec2" && typeof asset.assetData.state === "string" ? asset.assetData.state : null,
      targeted,
      agentStatus: !asset.agentCompatible
        ? "not_applicable"
        : targeted
          ? asset.agentStatus
          : asset.agentStatus === "unknown"
            ? "not_targeted"
            : asset.agentStatus,
      reason,
      failure: asset.agentStatus === "failed" ? storedFailure(asset.agentStatusDetail) : null,
      statusAt: asset.agentStatusAt ?? null,
    });
  }
  tally.lastCheckedAt = lastChecked > 0 ? new Date(lastChecked) : null;
  return tally;
}

/** The tenant's rollout; its `instances` list is shared with other callers while the assets are unchanged: read only. */
export async function deploymentSummary(
  db: DrizzleDatabase,
  organizationId: number,
  knownSettings?: IntegrationSettings,
): Promise<DeploymentSummary> {
  const { settings, applied, tally } = await loadRollout(db, organizationId, knownSettings);
  return {
    targeting: applied ? describeTargeting(applied.targeting) : null,
    changePending: applied ? changePendingMessage(pendingChanges(applied, requestedSpecOf(settings))) : null,
    ...tally,
    clusters: await clusterRollouts(db, organizationId, settings),
  };
}

export interface DeploymentHealth {
  status: "healthy" | "degraded" | "no_agents" | "offboarded";
  agentsEnrolled: number;
  agentsHealthy: number;
  agentsStale: number;
  targetedWithoutAgent: number;
  staleAfterSeconds: number;
  agents: { instanceId: string; hostname: string | null; agentVersion: string | null; lastHeartbeatAt: Date | null; healthy: boolean }[];
}

export async function deploymentHealth(db: DrizzleDatabase, organizationId: number, now = new Date()): Promise<DeploymentHealth> {
  const [rows, { tally }] = await Promise.all([
    db.select().from(agents).where(eq(agents.organizationId, organizationId)),
    loadRollout(db, organizationId),
  ]);
  const healthy = (at: Date | null) => at !== null && now.getTime() - at.getTime() <= HEARTBEAT_STALE_AFTER_MS;
  const enrolled = new Set(rows.map((agent) => agent.instanceId));
  const list = rows.map((agent) => ({
    instanceId: agent.instanceId,
    hostname: agent.hostname,
    agentVersion: agent.version,
    lastHeartbeatAt: agent.lastHeartbeatAt,
    healthy: healthy(agent.lastHeartbeatAt),
  }));
  const agentsHealthy = list.filter((agent) => agent.healthy).length;
  // Stopped instances owe nothing (stopped-instances-fns.ts): neither an agent nor the heartbeats of the one they have.
  const stoppedIds = new Set(tally.instances.filter((instance) => isStoppedState(instance.state)).map((instance) => instance.assetId));
  const targetedWithoutAgent = tally.instances.filter((instance) => owesAgent(instance) && !enrolled.has(instance.assetId)).length;
  const silentOwing = list.filter((agent) => !agent.healthy && !stoppedIds.has(agent.instanceId)).length;
  return {
    status: list.length === 0 ? "no_agents" : silentOwing === 0 && targetedWithoutAgent === 0 ? "healthy" : "degraded",
    agentsEnrolled: list.length,
    agentsHealthy,
    agentsStale: list.length - agentsHealthy,
    targetedWithoutAgent,
    staleAfterSeconds: HEARTBEAT_STALE_AFTER_MS / 1000,
    agents: list,
  };
}
