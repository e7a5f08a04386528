/**
 * Which discovered EKS clusters the tenant stack covers, and why not the others: pure, from the cluster assets
 * discovery recorded (scanner.ts eksAsset) and the tenant's targeting. A covered cluster gets an access entry and the
 * agent DaemonSet on its next up; one that needs its owner's hand first is `action_required` with the AWS CLI command
 * that fixes it.
 */
import { type EksCluster, MAX_CLUSTERS_PER_ACCOUNT, type Targeting } from "../../programs/tenant/config";

export const CLUSTER_COVERAGE = ["covered", "excluded", "action_required", "pending"] as const;
export type ClusterCoverage = (typeof CLUSTER_COVERAGE)[number];

export interface ClusterAsset {
  assetId: string;
  region: string;
  tags: Readonly<Record<string, string>>;
  assetData: Readonly<Record<string, unknown>>;
}

export interface ClusterScope {
  name: string;
  region: string;
  arn: string;
  coverage: ClusterCoverage;
  reason?: string;
  fix?: string;
  /** What the stack needs for a covered cluster. */
  cluster?: EksCluster;
}

const text = (value: unknown): string | undefined => (typeof value === "string" && value !== "" ? value : undefined);

/** One cluster's coverage under the tenant's targeting. */
export function clusterScopeOf(asset: ClusterAsset, targeting: Targeting): ClusterScope {
  const name = text(asset.assetData.name) ?? asset.assetId.split("/").at(-1) ?? asset.assetId;
  const base = { name, region: asset.region, arn: asset.assetId };
  const update = `aws eks update-cluster-config --region ${asset.region} --name ${name}`;
  const tagged = (tag: { key: string; value: string }) => asset.tags[tag.key] === tag.value;
  if (targeting.mode === "all_managed" && tagged(targeting.exclusionTag)) {
    return { ...base, coverage: "excluded", reason: `tagged ${targeting.exclusionTag.key}=${targeting.exclusionTag.value}` };
  }
  if (targeting.mode === "tag" && !tagged(targeting.targetTag)) {
    return { ...base, coverage: "excluded", reason: `not tagged ${targeting.targetTag.key}=${targeting.targetTag.value}` };
  }
  const status = text(asset.assetData.status);
  if (status && status !== "ACTIVE") {
    return { ...base, coverage: "pending", reason: `the cluster is ${status}; it is covered on the first up once it is ACTIVE` };
  }
  const mode = text(asset.assetData.authenticationMode);
  if (mode !== "API" && mode !== "API_AND_CONFIG_MAP") {
    return {
      ...base,
      coverage: "action_required",
      reason: "the cluster authenticates through the aws-auth ConfigMap only, so no access entry can let the platform in",
      fix: `${update} --access-config authenticationMode=API_AND_CONFIG_MAP, then run an up`,
    };
  }
  if (asset.assetData.endpointAccess === "private") {
    return {
      ...base,
      coverage: "action_required",
      reason: "the cluster's API server endpoint is private, so the platform cannot reach it to deploy the agent",
      fix: `${update} --resources-vpc-config endpointPublicAccess=true,endpointPrivateAccess=true,publicAccessCidrs=<the platform's egress CIDRs>, then run an up`,
    };
  }
  const endpoint = text(asset.assetData.endpoint);
  const certificateAuthority = text(asset.assetData.certificateAuthority);
  if (!endpoint || !certificateAuthority) {
    return { ...base, coverage: "pending", reason: "the next discovery reads the cluster's endpoint; the up after it covers the cluster" };
  }
  return { ...base, coverage: "covered", cluster: { name, region: asset.region, endpoint, certificateAuthority } };
}

/**
 * Every cluster's coverage, in region and name order; the stack covers at most MAX_CLUSTERS_PER_ACCOUNT clusters of an
 * account (a count the tenant controls), the rest are action_required with the reason.
 */
export function clusterScopes(assets: readonly ClusterAsset[], targeting: Targeting): ClusterScope[] {
  const scopes = assets
    .map((asset) => clusterScopeOf(asset, targeting))
    .sort((a, b) => a.region.localeCompare(b.region) || a.name.localeCompare(b.name));
  let covered = 0;
  return scopes.map((scope) => {
    if (scope.coverage !== "covered") return scope;
    covered += 1;
    if (covered <= MAX_CLUSTERS_PER_ACCOUNT) return scope;
    const { cluster: _dropped, ...rest } = scope;
    return {
      ...rest,
      coverage: "action_required",
      reason: `the account has more than ${MAX_CLUSTERS_PER_ACCOUNT} clusters in scope, the most one account's stack covers`,
      fix: `exclude clusters you do not need covered with the tag ${targeting.exclusionTag.key}=${targeting.exclusionTag.value}`,
    };
  });
}

/** The clusters the stack applies the agent to. */
export function coveredClusters(scopes: readonly ClusterScope[]): EksCluster[] {
  return scopes.flatMap((scope) => (scope.coverage === "covered" && scope.cluster ? [scope.cluster] : []));
}

export const CLUSTER_ROLLOUT_STATUSES = ["protected", "deploying", "up_pending", "excluded", "action_required", "pending"] as const;
export type ClusterRolloutStatus = (typeof CLUSTER_ROLLOUT_STATUSES)[number];

/** What the last successful up applied on a cluster (its `clusters` output): the DaemonSet's desired and ready nodes. */
export interface AppliedClusterAgent {
  desired: number;
  ready: number;
}

export interface ClusterRollout {
  name: string;
  region: string;
  arn: string;
  status: ClusterRolloutStatus;
  reason: string | null;
  fix: string | null;
  desired: number | null;
  ready: number | null;
}

/** A cluster's rollout: its coverage, then what the last up applied on it. */
export function clusterRolloutOf(scope: ClusterScope, applied: AppliedClusterAgent | undefined): ClusterRollout {
  const base = { name: scope.name, region: scope.region, arn: scope.arn, desired: applied?.desired ?? null, ready: applied?.ready ?? null };
  if (scope.coverage !== "covered") return { ...base, status: scope.coverage, reason: scope.reason ?? null, fix: scope.fix ?? null };
  if (!applied) return { ...base, status: "up_pending", reason: "the agent is deployed on the cluster by the next up", fix: "run an up" };
  if (applied.ready >= applied.desired) return { ...base, status: "protected", reason: null, fix: null };
  return { ...base, status: "deploying", reason: `the agent is ready on ${applied.ready} of ${applied.desired} nodes`, fix: null };
}

/** The `clusters` output of an up: `<region>/<name>` -> desired and ready. */
export function appliedClusterAgents(outputs: Readonly<Record<string, unknown>> | undefined): Map<string, AppliedClusterAgent> {
  const clusters = outputs?.clusters;
  const applied = new Map<string, AppliedClusterAgent>();
  if (typeof clusters !== "object" || clusters === null) return applied;
  for (const [key, value] of Object.entries(clusters)) {
    const agent = value as { desired?: unknown; ready?: unknown };
    if (typeof agent?.desired === "number" && typeof agent.ready === "number") applied.set(key, { desired: agent.desired, ready: agent.ready });
  }
  return applied;
}
