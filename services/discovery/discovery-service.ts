/** Discovery as a domain: request a scan, read the assets and the scans. Scans run on the queue (scan-queue.ts). */
import { and, asc, count, desc, eq, gt, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { cloudAssets, discoveryScans, type CloudAsset, type DiscoveryScan, type Organization } from "../../db/schema";
import { appliedStackOutputs } from "../core/applied-outputs";
import { TenantNotProvisionedError } from "../core/tenant-aws-session";
import { recordAudit } from "../core/audit-store";
import { type Principal, requireTenantAdmin } from "../core/principal";
import type { ScanQueue } from "./scan-queue";

export interface DiscoveryServiceDeps {
  db: DrizzleDatabase;
  scans: Pick<ScanQueue, "request">;
}

export interface AssetQuery {
  type?: string;
  includeRemoved: boolean;
}

/** A page of assets in a stable order (their row id, the order discovery first found them). */
export interface AssetPageQuery extends AssetQuery {
  limit: number;
  /** The last row id of the previous page (its nextCursor); none: the first page. */
  after?: number;
}

export interface AssetPage {
  assets: CloudAsset[];
  /** The cursor of the next page; null on the last page. */
  nextCursor: number | null;
  /** Every asset the query matches, over all pages. */
  total: number;
}

export function createDiscoveryService({ db, scans }: DiscoveryServiceDeps) {
  return {
    /** Requests a scan, or returns the one already queued or running; a conflict before the stack exists. */
    async requestScan(principal: Principal, org: Organization): Promise<{ scanId: string; alreadyActive: boolean }> {
      requireTenantAdmin(principal);
      if (typeof (await appliedStackOutputs(db, org.id))?.roleArn !== "string") {
        throw new TenantNotProvisionedError("discovery needs the tenant's stack applied first (a successful up run)");
      }
      const requested = await scans.request({ organizationId: org.id, trigger: "manual", actor: principal.actor });
      await recordAudit(db, principal, { action: "discovery.request", organizationId: org.id, target: `scan:${requested.scanId}` });
      return requested;
    },

    /**
     * Keyset pagination on the row id: an asset inserted while a client pages gets a higher id than any before it, so
     * the pages still cover every asset that existed when the first one was read, each exactly once.
     */
    async assets(org: Organization, query: AssetPageQuery): Promise<AssetPage> {
      const matching = and(
        eq(cloudAssets.organizationId, org.id),
        query.type ? eq(cloudAssets.assetType, query.type) : undefined,
        query.includeRemoved ? undefined : isNull(cloudAssets.removedAt),
      );
      const [rows, [counted]] = await Promise.all([
        db
          .select()
          .from(cloudAssets)
          .where(and(matching, query.after === undefined ? undefined : gt(cloudAssets.id, query.after)))
          .orderBy(asc(cloudAssets.id))
          .limit(query.limit + 1),
        db.select({ total: count() }).from(cloudAssets).where(matching),
      ]);
      const more = rows.length > query.limit;
      const assets = more ? rows.slice(0, query.limit) : rows;
      return { assets, nextCursor: more ? assets.at(-1)!.id : null, total: counted?.total ?? 0 };
    },

    async scans(org: Organization, limit = 50): Promise<DiscoveryScan[]> {
      return db.select().from(discoveryScans).where(eq(discoveryScans.organizationId, org.id)).orderBy(desc(discoveryScans.requestedAt)).limit(limit);
    },
  };
}

export type DiscoveryService = ReturnType<typeof createDiscoveryService>;
