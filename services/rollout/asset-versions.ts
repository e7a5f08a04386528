/**
 * The version of a tenant's assets (table cloud_asset_versions, bumped by triggers on cloud_assets in the writer's
 * transaction; migration 0009): in-process caches of per-asset work compare it on every read, so they are never stale.
 */
import { eq, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { preparedPerDatabase } from "../../db/prepared-query";
import { cloudAssetVersions } from "../../db/schema";

/** Rows of sessions that have ended are folded once a tenant has more than this many. */
const COMPACT_ABOVE_ROWS = 64;

const versionQuery = preparedPerDatabase((db) =>
  db
    .select({
      rows: sql<number>`count(*)`.mapWith(Number),
      sum: sql<string>`coalesce(sum(${cloudAssetVersions.version}), 0)::text`,
    })
    .from(cloudAssetVersions)
    .where(eq(cloudAssetVersions.organizationId, sql.placeholder("organizationId")))
    .prepare("assets_version"),
);

export async function assetsVersion(db: DrizzleDatabase, organizationId: number): Promise<string> {
  const [row] = await versionQuery(db).execute({ organizationId });
  if ((row?.rows ?? 0) > COMPACT_ABOVE_ROWS) await compactAssetVersions(db, organizationId);
  // The sum only grows (every committed statement adds one; compaction moves versions, keeping the sum).
  return row?.sum ?? "0";
}

/**
 * Each database session that ever wrote a tenant's assets has a row (connections are recycled, so they accumulate):
 * the rows of sessions that have ended are folded into the row of session 0, which no session has.
 */
export async function compactAssetVersions(db: DrizzleDatabase, organizationId: number): Promise<void> {
  await db.execute(sql`
    with ended as (
      delete from ${cloudAssetVersions} v
      where v.organization_id = ${organizationId} and v.session <> 0
        and not exists (select 1 from pg_stat_activity a where a.pid = v.session)
      returning v.version
    )
    insert into ${cloudAssetVersions} (organization_id, session, version)
    select ${organizationId}, 0, sum(version) from ended having count(*) > 0
    on conflict (organization_id, session) do update set version = ${cloudAssetVersions}.version + excluded.version`);
}
