/**
 * The agent on a tenant's EKS clusters: every cluster discovery found, whether the stack covers it (and if not, why
 * and the fix), and the DaemonSet's desired and ready nodes as the last successful up of its account's stack left them.
 */
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { cloudAssets, runs, tenantAwsAccounts, type IntegrationSettings } from "../../db/schema";
import { appliedClusterAgents, type ClusterRollout, clusterRolloutOf, clusterScopes } from "../core/cluster-scope-fns";
import { requestedSpecOf } from "../core/rollout-spec-fns";

export type AccountClusterRollout = ClusterRollout & {
  awsAccountId: string | null;
  /** The organization member account whose own stack covers the cluster; null: the tenant's home stack. */
  stackAccountId: string | null;
};

export async function clusterRollouts(db: DrizzleDatabase, organizationId: number, settings: IntegrationSettings): Promise<AccountClusterRollout[]> {
  const assets = await db
    .select({
      assetId: cloudAssets.assetId,
      region: cloudAssets.region,
      tags: cloudAssets.tags,
      assetData: cloudAssets.assetData,
      awsAccountId: cloudAssets.awsAccountId,
    })
    .from(cloudAssets)
    .where(and(eq(cloudAssets.organizationId, organizationId), eq(cloudAssets.assetType, "eks"), isNull(cloudAssets.removedAt)));
  if (assets.length === 0) return [];
  const [ups, members] = await Promise.all([
    db
      .selectDistinctOn([runs.awsAccountId], { awsAccountId: runs.awsAccountId, outputs: runs.outputs })
      .from(runs)
      .where(and(eq(runs.organizationId, organizationId), eq(runs.kind, "up"), eq(runs.status, "succeeded")))
      .orderBy(runs.awsAccountId, desc(runs.finishedAt)),
    db
      .select({ accountId: tenantAwsAccounts.accountId })
      .from(tenantAwsAccounts)
      .where(and(eq(tenantAwsAccounts.organizationId, organizationId), sql`${tenantAwsAccounts.source} = 'organization'`)),
  ]);
  const memberAccounts = new Set(members.map((member) => member.accountId));
  const appliedOf = new Map(ups.map((up) => [up.awsAccountId ?? "home", appliedClusterAgents(up.outputs ?? undefined)]));
  const spec = requestedSpecOf(settings);
  // An organization member account's clusters are its own stack's; every other cluster is the home stack's.
  const stackOf = (awsAccountId: string | null) => (awsAccountId && memberAccounts.has(awsAccountId) ? awsAccountId : "home");
  const rollouts: AccountClusterRollout[] = [];
  for (const stack of new Set(assets.map((asset) => stackOf(asset.awsAccountId)))) {
    const ofStack = assets.filter((asset) => stackOf(asset.awsAccountId) === stack);
    const inRegions = ofStack.filter((asset) => spec.regions.includes(asset.region));
    const accountOf = new Map(ofStack.map((asset) => [asset.assetId, asset.awsAccountId]));
    const stackAccountId = stack === "home" ? null : stack;
    for (const scope of clusterScopes(inRegions, spec.targeting)) {
      const applied = appliedOf.get(stack)?.get(`${scope.region}/${scope.name}`);
      rollouts.push({ ...clusterRolloutOf(scope, applied), awsAccountId: accountOf.get(scope.arn) ?? null, stackAccountId });
    }
    for (const asset of ofStack.filter((candidate) => !spec.regions.includes(candidate.region))) {
      const [scope] = clusterScopes([asset], spec.targeting);
      rollouts.push({
        ...clusterRolloutOf(scope!, undefined),
        status: "excluded",
        reason: `${asset.region} is not one of the tenant's regions`,
        fix: null,
        awsAccountId: asset.awsAccountId,
        stackAccountId,
      });
    }
  }
  return rollouts.sort(
    (a, b) => (a.awsAccountId ?? "").localeCompare(b.awsAccountId ?? "") || a.region.localeCompare(b.region) || a.name.localeCompare(b.name),
  );
}
