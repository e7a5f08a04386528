/**
 * The agent rollout of a tenant as stored (refreshAgentStatus writes it): counts for the summary, the per-instance
 * list, and the health of enrolled agents by their heartbeats.
 */
import { and, eq, isNull } from "drizzle-orm";
import { HEARTBEAT_STALE_AFTER_MS } from "./enrollment";
import type { DrizzleDatabase } from "../../db/client";
import { agents, ASSET_PRIORITIES, cloudAssets, organizations, type AgentStatus, type CloudAsset } from "../../db/schema";
import { isTargeted, targetingOf } from "../integration/tenant-aws-session";

export interface DeploymentInstance {
  asset_id: string;
  name: string | null;
  asset_type: string;
  region: string;
  priority: CloudAsset["priority"];
  platform: string | null;
  targeted: boolean;
  agent_status: AgentStatus;
  reason: string | null;
  status_at: string | null;
}

export interface DeploymentSummary {
  targeted: number;
  installed: number;
  failed: number;
  pending: number;
  not_compatible: number;
  not_targeted: number;
  checked_in: number;
  last_checked_at: string | null;
  instances: DeploymentInstance[];
}

const INSTALLED: ReadonlySet<AgentStatus> = new Set(["installed", "checked_in"]);
const priorityRank = (priority: CloudAsset["priority"]) => ASSET_PRIORITIES.indexOf(priority);

/** Highest priority first, then by name: the order rollouts and retries go in. */
export function byPriority(a: CloudAsset, b: CloudAsset): number {
  return priorityRank(a.priority) - priorityRank(b.priority) || (a.tags.Name ?? a.assetId).localeCompare(b.tags.Name ?? b.assetId);
}

async function loadRollout(db: DrizzleDatabase, organizationId: number) {
  const [org] = await db.select({ settings: organizations.integrationSettings }).from(organizations).where(eq(organizations.id, organizationId));
  const targeting = targetingOf(org?.settings ?? {});
  const assets = await db
    .select()
    .from(cloudAssets)
    .where(and(eq(cloudAssets.organizationId, organizationId), isNull(cloudAssets.removedAt)));
  return assets.sort(byPriority).map((asset) => ({ asset, targeted: asset.agentCompatible && isTargeted(asset.tags, targeting) }));
}

export async function deploymentSummary(db: DrizzleDatabase, organizationId: number): Promise<DeploymentSummary> {
  const rollout = await loadRollout(db, organizationId);
  const summary: DeploymentSummary = {
    targeted: 0,
    installed: 0,
    failed: 0,
    pending: 0,
    not_compatible: 0,
    not_targeted: 0,
    checked_in: 0,
    last_checked_at: null,
    instances: [],
  };
  let lastChecked = 0;
  for (const { asset, targeted } of rollout) {
    if (!asset.agentCompatible) summary.not_compatible++;
    else if (!targeted) summary.not_targeted++;
    else {
      summary.targeted++;
      if (INSTALLED.has(asset.agentStatus)) summary.installed++;
      else if (asset.agentStatus === "failed") summary.failed++;
      else summary.pending++;
      if (asset.agentStatus === "checked_in") summary.checked_in++;
    }
    lastChecked = Math.max(lastChecked, asset.agentStatusAt?.getTime() ?? 0);
    summary.instances.push({
      asset_id: asset.assetId,
      name: asset.tags.Name ?? null,
      asset_type: asset.assetType,
      region: asset.region,
      priority: asset.priority,
      platform: typeof asset.assetData.platform === "string" ? asset.assetData.platform : null,
      targeted,
      agent_status: asset.agentStatus,
      reason: typeof asset.agentStatusDetail?.reason === "string" ? asset.agentStatusDetail.reason : null,
      status_at: asset.agentStatusAt?.toISOString() ?? null,
    });
  }
  summary.last_checked_at = lastChecked > 0 ? new Date(lastChecked).toISOString() : null;
  return summary;
}

export interface DeploymentHealth {
  status: "healthy" | "degraded" | "no_agents";
  agents_enrolled: number;
  agents_healthy: number;
  agents_stale: number;
  targeted_without_agent: number;
  stale_after_seconds: number;
  agents: { instance_id: string; hostname: string | null; agent_version: string | null; last_heartbeat_at: string | null; healthy: boolean }[];
}

export async function deploymentHealth(db: DrizzleDatabase, organizationId: number, now = new Date()): Promise<DeploymentHealth> {
  const [rows, rollout] = await Promise.all([
    db.select().from(agents).where(eq(agents.organizationId, organizationId)),
    loadRollout(db, organizationId),
  ]);
  const healthy = (at: Date | null) => at !== null && now.getTime() - at.getTime() <= HEARTBEAT_STALE_AFTER_MS;
  const enrolled = new Set(rows.map((agent) => agent.instanceId));
  const list = rows.map((agent) => ({
    instance_id: agent.instanceId,
    hostname: agent.hostname,
    agent_version: agent.version,
    last_heartbeat_at: agent.lastHeartbeatAt?.toISOString() ?? null,
    healthy: healthy(agent.lastHeartbeatAt),
  }));
  const agentsHealthy = list.filter((agent) => agent.healthy).length;
  const targetedWithoutAgent = rollout.filter(({ asset, targeted }) => targeted && !enrolled.has(asset.assetId)).length;
  return {
    status: list.length === 0 ? "no_agents" : agentsHealthy === list.length && targetedWithoutAgent === 0 ? "healthy" : "degraded",
    agents_enrolled: list.length,
    agents_healthy: agentsHealthy,
    agents_stale: list.length - agentsHealthy,
    targeted_without_agent: targetedWithoutAgent,
    stale_after_seconds: HEARTBEAT_STALE_AFTER_MS / 1000,
    agents: list,
  };
}
