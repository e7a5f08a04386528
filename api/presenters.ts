/** Domain objects and database rows -> API shapes (snake_case, ISO timestamps). Nothing secret is ever presented. */
import type { Agent, CloudAsset, ConnectionCheck, DiscoveryScan, IntegrationSettings, Organization, TenantDrift } from "../db/schema";
import type { AssetPage } from "../services/discovery/discovery-service";
import type { RetryResult } from "../services/rollout/retry";
import type { DeploymentHealth, DeploymentSummary } from "../services/rollout/rollout-summary";
import type { AccountClusterRollout } from "../services/rollout/cluster-rollout";
import { describeTargeting, requestedSpecOf, type RolloutSpec } from "../services/core/rollout-spec-fns";
import type { ValidationResult } from "../services/rollout/validation-checks";
import type { OnboardingKpis } from "../services/core/onboarding-kpis-fns";
import type { OnboardingOverview } from "../services/core/onboarding-overview";
import type { TenantProgress } from "../services/onboarding/progress";
import type { SettingsPatch } from "../services/tenant/tenant-service";
import { neutralUpstreamText } from "../lib/upstream-errors";
import { isRoleRefusalReason } from "../services/integration/verify-bootstrap-role";

export function iso(date: Date | null | undefined): string | null {
  return date ? date.toISOString() : null;
}

export interface ApiIntegrationSettings {
  agent_public_base_url?: string;
  regions?: string[];
  home_region?: string;
  aws_account_id?: string;
  targeting_mode?: "all_managed" | "tag";
  target_tag?: { key: string; value: string };
  exclusion_tag?: { key: string; value: string };
  target_all_managed_instances?: boolean;
  association_max_concurrency?: string;
  association_max_errors?: string;
  enable_default_host_management?: boolean;
  require_approval?: boolean;
  auto_remediate?: boolean;
}

export function presentSettings(settings: IntegrationSettings, awsAccountId: string | null): ApiIntegrationSettings {
  const out: ApiIntegrationSettings = {};
  if (settings.agentPublicBaseUrl !== undefined) out.agent_public_base_url = settings.agentPublicBaseUrl;
  if (settings.regions !== undefined) out.regions = settings.regions;
  if (settings.homeRegion !== undefined) out.home_region = settings.homeRegion;
  if (awsAccountId) out.aws_account_id = awsAccountId;
  if (settings.targetingMode !== undefined) out.targeting_mode = settings.targetingMode;
  if (settings.targetTag !== undefined) out.target_tag = settings.targetTag;
  if (settings.exclusionTag !== undefined) out.exclusion_tag = settings.exclusionTag;
  if (settings.targetAllManagedInstances !== undefined) out.target_all_managed_instances = settings.targetAllManagedInstances;
  if (settings.associationMaxConcurrency !== undefined) out.association_max_concurrency = settings.associationMaxConcurrency;
  if (settings.associationMaxErrors !== undefined) out.association_max_errors = settings.associationMaxErrors;
  if (settings.enableDefaultHostManagement !== undefined) out.enable_default_host_management = settings.enableDefaultHostManagement;
  if (settings.requireApproval !== undefined) out.require_approval = settings.requireApproval;
  if (settings.autoRemediate !== undefined) out.auto_remediate = settings.autoRemediate;
  return out;
}

/** The rollout the settings ask for, defaults included: what the next up applies. */
export function presentRolloutSpec(spec: RolloutSpec) {
  return {
    targeting_mode: spec.targeting.mode,
    target_tag: spec.targeting.targetTag,
    exclusion_tag: spec.targeting.exclusionTag,
    description: describeTargeting(spec.targeting),
    regions: spec.regions,
    association_max_concurrency: spec.maxConcurrency,
    association_max_errors: spec.maxErrors,
    enable_default_host_management: spec.defaultHostManagement,
  };
}

export function presentTenant(org: Organization) {
  return {
    slug: org.slug,
    name: org.name,
    onboarding_flow_version: org.onboardingFlowVersion,
    auto_discovery_enabled: org.autoDiscoveryEnabled,
    onboarding_status: org.onboardingStatus,
    action_required: org.onboardingStatus === "action_required" ? (org.statusReasons ?? []) : [],
    drift: presentDrift(org.drift),
    integration_settings: presentSettings(org.integrationSettings, org.awsAccountId),
    effective_rollout: presentRolloutSpec(requestedSpecOf(org.integrationSettings)),
    created_at: org.createdAt.toISOString(),
    updated_at: org.updatedAt.toISOString(),
    offboarded_at: iso(org.offboardedAt),
  };
}

/** The last drift check: `drifted` with the resources and properties, `in_sync`, or `not_checked`. */
export function presentDrift(drift: TenantDrift | null) {
  type Resource = { urn: string; type: string; op: string; properties: string[] };
  if (!drift) return { status: "not_checked" as const, run_id: null, checked_at: null, resources: [] as Resource[], remediation_run_id: null };
  return {
    status: drift.status,
    run_id: drift.runId,
    checked_at: drift.checkedAt,
    resources: drift.resources.map((resource) => ({ urn: resource.urn, type: resource.type, op: resource.op, properties: resource.properties })),
    remediation_run_id: drift.remediationRunId ?? null,
  };
}

/** `****abcd`: enough to recognise a value, never enough to use it. */
export function maskSecret(value: string): string {
  return `****${value.length > 8 ? value.slice(-4) : ""}`;
}

export function presentAsset(asset: CloudAsset) {
  return {
    asset_id: asset.assetId,
    asset_type: asset.assetType,
    provider: asset.provider,
    region: asset.region,
    aws_account_id: asset.awsAccountId,
    name: asset.tags.Name ?? (typeof asset.assetData.name === "string" ? asset.assetData.name : null),
    tags: asset.tags,
    priority: asset.priority,
    agent_compatible: asset.agentCompatible,
    agent_status: asset.agentStatus,
    discovered_at: asset.discoveredAt.toISOString(),
    last_seen_at: asset.lastSeenAt.toISOString(),
    removed_at: iso(asset.removedAt),
    data: asset.assetData,
  };
}

export function presentAssetPage(page: AssetPage) {
  return { assets: page.assets.map(presentAsset), next_cursor: page.nextCursor, total: page.total };
}

export function presentScan(scan: DiscoveryScan) {
  return {
    id: scan.id,
    trigger: scan.trigger,
    status: scan.status,
    requested_at: scan.requestedAt.toISOString(),
    started_at: iso(scan.startedAt),
    finished_at: iso(scan.finishedAt),
    assets_found: scan.assetsFound,
    changes: scan.changes,
    // What AWS said about a region is the operator's (service log); the tenant sees the neutral reason.
    regions:
      scan.regions?.map(({ clustersError, ...region }) => ({
        ...region,
        ...(region.error ? { error: neutralUpstreamText(region.error) } : {}),
        ...(clustersError ? { clusters_error: neutralUpstreamText(clustersError) } : {}),
      })) ?? scan.regions,
    error: scan.error,
    aws_account_id: scan.awsAccountId,
  };
}

export function presentAgent(agent: Agent, heartbeatIntervalSeconds: number) {
  return {
    agent_id: agent.id,
    instance_id: agent.instanceId,
    hostname: agent.hostname,
    agent_version: agent.version,
    enrolled_at: agent.enrolledAt.toISOString(),
    last_heartbeat_at: agent.lastHeartbeatAt?.toISOString() ?? null,
    heartbeat_interval_seconds: heartbeatIntervalSeconds,
  };
}

/** API settings input (snake_case, null removes) -> the tenant service's patch. */
export function settingsPatchOf(
  input: {
    agent_public_base_url?: string | null;
    regions?: string[] | null;
    home_region?: string | null;
    aws_account_id?: string | null;
    targeting_mode?: "all_managed" | "tag" | null;
    target_tag?: { key: string; value: string } | null;
    exclusion_tag?: { key: string; value: string } | null;
    target_all_managed_instances?: boolean | null;
    association_max_concurrency?: string | null;
    association_max_errors?: string | null;
    enable_default_host_management?: boolean | null;
    require_approval?: boolean | null;
    auto_remediate?: boolean | null;
  } = {},
): SettingsPatch {
  return {
    agentPublicBaseUrl: input.agent_public_base_url,
    regions: input.regions,
    homeRegion: input.home_region,
    awsAccountId: input.aws_account_id,
    targetingMode: input.targeting_mode,
    targetTag: input.target_tag,
    exclusionTag: input.exclusion_tag,
    targetAllManagedInstances: input.target_all_managed_instances,
    associationMaxConcurrency: input.association_max_concurrency,
    associationMaxErrors: input.association_max_errors,
    enableDefaultHostManagement: input.enable_default_host_management,
    requireApproval: input.require_approval,
    autoRemediate: input.auto_remediate,
  };
}

export function presentConnectionCheck(check: ConnectionCheck | null | undefined) {
  if (!check) return { status: "not_started" as const, attempts: 0, started_at: null, deadline: null, last_checked_at: null, last_error: null };
  return {
    status: check.status,
    attempts: check.attempts,
    started_at: check.startedAt,
    deadline: check.deadline,
    last_checked_at: check.lastCheckedAt ?? null,
    // Rows written before the reasons were neutral still hold STS's text.
    // Rows written before the role probe may still hold STS's words: only the service's own reasons are shown as they are.
    last_error: check.lastError ? (isRoleRefusalReason(check.lastError) ? check.lastError : neutralUpstreamText(check.lastError)) : null,
  };
}

export function presentRetry(result: RetryResult) {
  return {
    retried: result.retried,
    commands: result.commands.map((command) => ({ command_id: command.commandId, region: command.region, instance_ids: command.instanceIds })),
  };
}

export function presentHealth(health: DeploymentHealth) {
  return {
    status: health.status,
    agents_enrolled: health.agentsEnrolled,
    agents_healthy: health.agentsHealthy,
    agents_stale: health.agentsStale,
    targeted_without_agent: health.targetedWithoutAgent,
    stale_after_seconds: health.staleAfterSeconds,
    agents: health.agents.map((agent) => ({
      instance_id: agent.instanceId,
      hostname: agent.hostname,
      agent_version: agent.agentVersion,
      last_heartbeat_at: iso(agent.lastHeartbeatAt),
      healthy: agent.healthy,
    })),
  };
}

export function presentValidation(validation: ValidationResult) {
  return { checks: validation.checks, passed: validation.passed, total: validation.total, change_pending: validation.changePending };
}

/** The rollout with whether SSM was read for it; its instance list can be 10,000 long. */
export function presentDeployment(deployment: DeploymentSummary & { refreshed: boolean; refreshError?: string }) {
  return {
    targeting: deployment.targeting,
    change_pending: deployment.changePending,
    unmanaged: deployment.unmanaged,
    targeted: deployment.targeted,
    stopped: deployment.stopped,
    installed: deployment.installed,
    failed: deployment.failed,
    pending: deployment.pending,
    not_compatible: deployment.notCompatible,
    not_targeted: deployment.notTargeted,
    checked_in: deployment.checkedIn,
    last_checked_at: iso(deployment.lastCheckedAt),
    refreshed: deployment.refreshed,
    ...(deployment.refreshError ? { refresh_error: deployment.refreshError } : {}),
    instances: deployment.instances.map((instance) => ({
      asset_id: instance.assetId,
      name: instance.name,
      asset_type: instance.assetType,
      region: instance.region,
      priority: instance.priority,
      platform: instance.platform,
      state: instance.state,
      targeted: instance.targeted,
      agent_status: instance.agentStatus,
      reason: instance.reason,
      failure: instance.failure
        ? { cause: instance.failure.cause, reason: instance.failure.reason, fix: instance.failure.fix, output_lines: instance.failure.lines }
        : null,
      status_at: iso(instance.statusAt),
    })),
    clusters: deployment.clusters.map(presentClusterRollout),
  };
}

function presentClusterRollout(cluster: AccountClusterRollout) {
  return {
    aws_account_id: cluster.awsAccountId,
    region: cluster.region,
    name: cluster.name,
    arn: cluster.arn,
    status: cluster.status,
    reason: cluster.reason,
    fix: cluster.fix,
    desired: cluster.desired,
    ready: cluster.ready,
  };
}

export function presentProgress(progress: TenantProgress) {
  const { stack, discovery, deployment, validation, drift } = progress;
  return {
    stack: {
      status: stack.status,
      progress: stack.progress,
      run_id: stack.runId,
      resources_done: stack.resourcesDone,
      resources_total: stack.resourcesTotal,
    },
    discovery: {
      status: discovery.status,
      progress: discovery.progress,
      scan_id: discovery.scanId,
      assets_found: discovery.assetsFound,
      regions_failed: discovery.regionsFailed,
      regions_excluded_by_organization: discovery.regionsExcluded,
    },
    deployment: {
      status: deployment.status,
      progress: deployment.progress,
      targeted: deployment.targeted,
      agents_deployed: deployment.agentsDeployed,
      failed: deployment.failed,
      clusters: deployment.clusters.map(presentClusterRollout),
    },
    validation: {
      status: validation.status,
      progress: validation.progress,
      checks_passed: validation.checksPassed,
      checks_total: validation.checksTotal,
    },
    overall_progress: progress.overallProgress,
    onboarding_status: progress.onboardingStatus,
    action_required: progress.actionRequired,
    missing_permissions: progress.missingPermissions.map((missing) => ({
      aws_account_id: missing.awsAccountId,
      region: missing.region,
      action: missing.action,
      resource: missing.resource,
      cause: missing.cause,
      source: missing.source,
      reason: missing.reason,
      fix: missing.fix,
      excluded_by_organization: missing.excludedByOrganization,
      first_seen_at: missing.firstSeenAt.toISOString(),
      last_seen_at: missing.lastSeenAt.toISOString(),
      occurrences: missing.occurrences,
    })),
    change_pending: progress.changePending,
    drift: drift ? { status: drift.status, run_id: drift.runId, checked_at: drift.checkedAt, resources: drift.resources } : null,
    accounts: progress.accounts
      ? {
          status: progress.accounts.summary.status,
          total: progress.accounts.summary.total,
          by_status: progress.accounts.summary.byStatus as Record<string, number>,
          accounts: progress.accounts.accounts.map((account) => ({
            account_id: account.accountId,
            name: account.name,
            source: account.source,
            status: account.status,
            progress: account.progress,
            instances_discovered: account.instances.discovered,
            agents_installed: account.instances.installed,
            reasons: account.reasons,
          })),
        }
      : null,
  };
}

export function presentKpis(kpis: OnboardingKpis) {
  return {
    tenants_connected: kpis.tenantsConnected,
    tenants_completed: kpis.tenantsCompleted,
    completion_rate: kpis.completionRate,
    median_seconds_to_onboard: kpis.medianSecondsToOnboard,
    p90_seconds_to_onboard: kpis.p90SecondsToOnboard,
  };
}

export function presentOverview(overview: OnboardingOverview) {
  return {
    kpis: presentKpis(overview.kpis),
    tenants: overview.tenants.map((tenant) => ({
      slug: tenant.slug,
      name: tenant.name,
      onboarding_status: tenant.onboardingStatus,
      drifted: tenant.drifted,
      connected_at: iso(tenant.connectedAt),
      completed_at: iso(tenant.completedAt),
      seconds_to_onboard: tenant.secondsToOnboard,
      last_run: tenant.lastRun
        ? {
            id: tenant.lastRun.id,
            kind: tenant.lastRun.kind,
            status: tenant.lastRun.status,
            requested_at: iso(tenant.lastRun.requestedAt)!,
            finished_at: iso(tenant.lastRun.finishedAt),
          }
        : null,
    })),
  };
}
