/** The EKS clusters a stack covers, read from what discovery recorded in its account (cluster-scope-fns.ts decides). */
import { and, eq, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { cloudAssets, type Organization } from "../../db/schema";
import type { EksCluster } from "../../programs/tenant/config";
import { assetsOfStack, type StackOfSession } from "./account-assets";
import { clusterScopes, coveredClusters } from "./cluster-scope-fns";
import { requestedSpecOf } from "./rollout-spec-fns";

export async function clustersInScope(
  db: DrizzleDatabase,
  org: Pick<Organization, "id" | "integrationSettings">,
  stack: StackOfSession,
): Promise<EksCluster[]> {
  const spec = requestedSpecOf(org.integrationSettings);
  const rows = await db
    .select({ assetId: cloudAssets.assetId, region: cloudAssets.region, tags: cloudAssets.tags, assetData: cloudAssets.assetData })
    .from(cloudAssets)
    .where(and(assetsOfStack(org.id, stack), eq(cloudAssets.assetType, "eks"), isNull(cloudAssets.removedAt)));
  return coveredClusters(
    clusterScopes(
      rows.filter((row) => spec.regions.includes(row.region)),
      spec.targeting,
    ),
  );
}
