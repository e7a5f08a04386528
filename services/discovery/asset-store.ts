/**
 * Persisting a scan into `cloud_assets` (unique per organization, provider, asset id):
 *
 * - seen assets are upserted; an existing row is only written when something about it changed
 *   (type, region, data, tags, priority, compatibility), when it had been marked removed (it
 *   reappeared: removed_at is cleared), or when its last_seen_at is older than
 *   `lastSeenResolutionMs` (default 1 h). So an unchanged estate scanned again writes no rows,
 *   and last_seen_at stays accurate to within that resolution.
 * - rows of the organization in a region that was scanned successfully, but not seen, get
 *   removed_at (never deleted). Regions that failed are left alone: a failure is not an absence.
 *
 * The comparison happens in PostgreSQL (`ON CONFLICT ... DO UPDATE ... WHERE ... IS DISTINCT
 * FROM`), in one transaction, so concurrent scans cannot lose an update.
 */
import { and, eq, inArray, isNull, notInArray, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { cloudAssets, type AssetPriority, type CloudProvider } from "../../db/schema";
import { assetsOfStack, type StackOfSession } from "../core/account-assets";

export const DEFAULT_LAST_SEEN_RESOLUTION_MS = 60 * 60_000;
const BATCH = 500;

export interface AssetRecord {
  assetType: string;
  assetId: string;
  region: string;
  tags: Record<string, string>;
  assetData: Record<string, unknown>;
  priority: AssetPriority;
  agentCompatible: boolean;
}

export interface StoreScanInput {
  organizationId: number;
  /** The stack whose scan this is: the assets are recorded in its account, and only its assets can be found gone. */
  stack?: StackOfSession;
  provider?: CloudProvider;
  assets: readonly AssetRecord[];
  /** Regions scanned successfully: absence there means removed. */
  scannedRegions: readonly string[];
  /** Asset types a scanned region could not list (EKS clusters there): absence of those is not removal. */
  unlistedTypes?: ReadonlyMap<string, readonly string[]>;
  seenAt?: Date;
  lastSeenResolutionMs?: number;
}

export interface StoreScanResult {
  inserted: number;
  updated: number;
  removed: number;
  /** inserted + updated + removed: rows the scan wrote. */
  written: number;
}

export async function storeScan(db: DrizzleDatabase, input: StoreScanInput): Promise<StoreScanResult> {
  const provider = input.provider ?? "aws";
  const seenAt = input.seenAt ?? new Date();
  const resolutionMs = input.lastSeenResolutionMs ?? DEFAULT_LAST_SEEN_RESOLUTION_MS;
  const staleBefore = new Date(seenAt.getTime() - resolutionMs);

  // A duplicate id in one scan would make ON CONFLICT touch a row twice; the last one wins.
  const unique = [...new Map(input.assets.map((a) => [a.assetId, a])).values()];

  return db.transaction(async (tx) => {
    let inserted = 0;
    let updated = 0;
    for (let i = 0; i < unique.length; i += BATCH) {
      const rows = unique.slice(i, i + BATCH).map((asset) => ({
        organizationId: input.organizationId,
        provider,
        assetType: asset.assetType,
        assetId: asset.assetId,
        region: asset.region,
        tags: asset.tags,
        assetData: asset.assetData,
        priority: asset.priority,
        agentCompatible: asset.agentCompatible,
        agentStatus: asset.agentCompatible ? ("unknown" as const) : ("not_applicable" as const),
        discoveredAt: seenAt,
        lastSeenAt: seenAt,
        awsAccountId: input.stack?.awsAccountId ?? null,
      }));
      const written = await tx
        .insert(cloudAssets)
        .values(rows)
        .onConflictDoUpdate({
          target: [cloudAssets.organizationId, cloudAssets.provider, cloudAssets.assetId],
          set: {
            assetType: sql`excluded.asset_type`,
            region: sql`excluded.region`,
            tags: sql`excluded.tags`,
            assetData: sql`excluded.asset_data`,
            priority: sql`excluded.priority`,
            agentCompatible: sql`excluded.agent_compatible`,
            lastSeenAt: sql`excluded.last_seen_at`,
            awsAccountId: sql`coalesce(excluded.aws_account_id, ${cloudAssets.awsAccountId})`,
            removedAt: null,
          },
          setWhere: sql`${cloudAssets.assetType} is distinct from excluded.asset_type
            or ${cloudAssets.region} is distinct from excluded.region
            or ${cloudAssets.tags} is distinct from excluded.tags
            or ${cloudAssets.assetData} is distinct from excluded.asset_data
            or ${cloudAssets.priority} is distinct from excluded.priority
            or ${cloudAssets.agentCompatible} is distinct from excluded.agent_compatible
            or ${cloudAssets.removedAt} is not null
            or (excluded.aws_account_id is not null and ${cloudAssets.awsAccountId} is distinct from excluded.aws_account_id)
            or ${cloudAssets.lastSeenAt} < ${staleBefore.toISOString()}::timestamptz`,
        })
        // xmax = 0 only for a freshly inserted row version.
        .returning({ inserted: sql<boolean>`(xmax = 0)` });
      for (const row of written) row.inserted ? inserted++ : updated++;
    }

    let removed = 0;
    if (input.scannedRegions.length > 0) {
      const seenIds = unique.map((a) => a.assetId);
      const gone = await tx
        .update(cloudAssets)
        .set({ removedAt: seenAt })
        .where(
          and(
            input.stack ? assetsOfStack(input.organizationId, input.stack) : eq(cloudAssets.organizationId, input.organizationId),
            eq(cloudAssets.provider, provider),
            inArray(cloudAssets.region, [...input.scannedRegions]),
            isNull(cloudAssets.removedAt),
            seenIds.length > 0 ? notInArray(cloudAssets.assetId, seenIds) : undefined,
            ...[...(input.unlistedTypes ?? [])].map(
              ([region, types]) => sql`not (${cloudAssets.region} = ${region} and ${inArray(cloudAssets.assetType, [...types])})`,
            ),
          ),
        )
        .returning({ id: cloudAssets.id });
      removed = gone.length;
    }
    return { inserted, updated, removed, written: inserted + updated + removed };
  });
}
