/** Discovery as a domain: request a scan, read the assets and the scans. Scans run on the queue (scan-queue.ts). */
import { and, asc, desc, eq, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { cloudAssets, discoveryScans, type CloudAsset, type DiscoveryScan, type Organization } from "../../db/schema";
import { appliedStackOutputs } from "../run/applied-outputs";
import { TenantNotProvisionedError } from "../integration/tenant-aws-session";
import { recordAudit } from "../tenant/audit-store";
import type { Principal } from "../tenant/principal";
import type { ScanQueue } from "./scan-queue";

export interface DiscoveryServiceDeps {
  db: DrizzleDatabase;
  scans: () => ScanQueue;
}

export interface AssetQuery {
  type?: string;
  includeRemoved: boolean;
}

export function createDiscoveryService({ db, scans }: DiscoveryServiceDeps) {
  return {
    /** Requests a scan, or returns the one already queued or running; a conflict before the stack exists. */
    async requestScan(principal: Principal, org: Organization): Promise<{ scanId: string; alreadyActive: boolean }> {
      if (typeof (await appliedStackOutputs(db, org.id))?.roleArn !== "string") {
        throw new TenantNotProvisionedError("discovery needs the tenant's stack applied first (a successful up run)");
      }
      const requested = await scans().request({ organizationId: org.id, trigger: "manual", actor: principal.actor });
      await recordAudit(db, principal, { action: "discovery.request", organizationId: org.id, target: `scan:${requested.scanId}` });
      return requested;
    },

    async assets(org: Organization, query: AssetQuery): Promise<CloudAsset[]> {
      return db
        .select()
        .from(cloudAssets)
        .where(
          and(
            eq(cloudAssets.organizationId, org.id),
            query.type ? eq(cloudAssets.assetType, query.type) : undefined,
            query.includeRemoved ? undefined : isNull(cloudAssets.removedAt),
          ),
        )
        .orderBy(asc(cloudAssets.assetType), asc(cloudAssets.assetId));
    },

    async scans(org: Organization, limit = 50): Promise<DiscoveryScan[]> {
      return db
        .select()
        .from(discoveryScans)
        .where(eq(discoveryScans.organizationId, org.id))
        .orderBy(desc(discoveryScans.requestedAt))
        .limit(limit);
    },
  };
}

export type DiscoveryService = ReturnType<typeof createDiscoveryService>;
