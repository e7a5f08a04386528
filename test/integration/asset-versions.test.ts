/**
 * The version of a tenant's assets (cloud_asset_versions, bumped by triggers on cloud_assets), on real PostgreSQL:
 * it is what keeps the in-process rollout cache exact, so it must change with every committed write of the tenant's
 * assets, only when committed, never for another tenant's writes, and without making writers wait for each other.
 */
import { eq } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { cloudAssets, cloudAssetVersions, organizations } from "../../db/schema";
import { assetsVersion, compactAssetVersions } from "../../services/rollout/asset-versions";
import { realPostgres } from "../harness/databases";

let database: Database;
let cleanup: () => Promise<void>;
let tenant: number;
let otherTenant: number;
const sessions: postgres.Sql[] = [];

/** A client of its own: one database session, as another replica or pool connection would be. */
function session(): postgres.Sql {
  const client = postgres(database.connectionString, { max: 1, onnotice: () => undefined });
  sessions.push(client);
  return client;
}

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
  const rows = await database.db
    .insert(organizations)
    .values([
      { slug: "versioned", name: "Versioned" },
      { slug: "other", name: "Other" },
    ])
    .returning();
  [tenant, otherTenant] = rows.map((row) => row.id) as [number, number];
  await database.db
    .insert(cloudAssets)
    .values(
      ["i-1", "i-2", "i-3"].map((assetId) => ({ organizationId: tenant, provider: "aws" as const, assetType: "ec2", assetId, region: "eu-west-1" })),
    );
});

afterAll(async () => {
  for (const client of sessions) await client.end({ timeout: 5 });
  await cleanup?.();
});

describe("a tenant's assets version", () => {
  it("changes with every insert, update and delete of the tenant's assets, and not with another tenant's", async () => {
    const seen = [await assetsVersion(database.db, tenant)];
    const otherBefore = await assetsVersion(database.db, otherTenant);
    await database.sql`update cloud_assets set agent_status = 'pending' where organization_id = ${tenant} and asset_id = 'i-1'`;
    seen.push(await assetsVersion(database.db, tenant));
    await database.sql`insert into cloud_assets (organization_id, provider, asset_type, asset_id, region) values (${tenant}, 'aws', 'ec2', 'i-4', 'eu-west-1')`;
    seen.push(await assetsVersion(database.db, tenant));
    await database.sql`delete from cloud_assets where organization_id = ${tenant} and asset_id = 'i-4'`;
    seen.push(await assetsVersion(database.db, tenant));
    expect(new Set(seen).size).toBe(4);
    expect(await assetsVersion(database.db, otherTenant)).toBe(otherBefore);
    // A statement that changes nothing leaves it as it is.
    const unchanged = await assetsVersion(database.db, tenant);
    await database.sql`update cloud_assets set agent_status = 'x' where organization_id = ${tenant} and asset_id = 'i-none'`;
    expect(await assetsVersion(database.db, tenant)).toBe(unchanged);
  });

  it("changes when the writer commits, not before", async () => {
    const writer = session();
    const before = await assetsVersion(database.db, tenant);
    let duringTransaction = "";
    await writer.begin(async (tx) => {
      await tx`update cloud_assets set agent_status = 'installed' where organization_id = ${tenant} and asset_id = 'i-2'`;
      duringTransaction = await assetsVersion(database.db, tenant);
    });
    expect(duringTransaction).toBe(before);
    expect(await assetsVersion(database.db, tenant)).not.toBe(before);
  });

  it("lets two sessions write the same tenant's assets at once: neither waits for the other", async () => {
    const first = session();
    const second = session();
    const before = await assetsVersion(database.db, tenant);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const firstWrite = first.begin(async (tx) => {
      await tx`update cloud_assets set agent_status = 'failed' where organization_id = ${tenant} and asset_id = 'i-1'`;
      await held;
    });
    // While the first transaction is open, the second one writes another asset of the same tenant and commits.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await second.begin(async (tx) => {
      await tx`set local lock_timeout = '2s'`;
      await tx`update cloud_assets set agent_status = 'failed' where organization_id = ${tenant} and asset_id = 'i-3'`;
    });
    const afterSecond = await assetsVersion(database.db, tenant);
    release();
    await firstWrite;
    const afterBoth = await assetsVersion(database.db, tenant);
    expect(new Set([before, afterSecond, afterBoth]).size).toBe(3);
  });

  it("folds the rows of ended sessions into one, keeping the version's sum", async () => {
    const gone = session();
    const pid = (await gone<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
    await gone`update cloud_assets set agent_status = 'pending' where organization_id = ${tenant}`;
    await gone.end({ timeout: 5 });
    const rows = () => database.db.select().from(cloudAssetVersions).where(eq(cloudAssetVersions.organizationId, tenant));
    const sum = (list: { version: number }[]) => list.reduce((total, row) => total + row.version, 0);
    const before = await rows();
    expect(before.map((row) => row.session)).toContain(pid);
    // The server lets the session go shortly after the client has closed it.
    let after = before;
    for (let i = 0; i < 50 && after.some((row) => row.session === pid); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await compactAssetVersions(database.db, tenant);
      after = await rows();
    }
    expect(after.map((row) => row.session)).not.toContain(pid);
    expect(after.map((row) => row.session)).toContain(0);
    // Sessions still open keep their rows.
    for (const open of before.filter((row) => row.session !== pid)) expect(after).toContainEqual(open);
    expect(sum(after)).toBe(sum(before));
    expect(await assetsVersion(database.db, tenant)).toBe(String(sum(before)));
  });
});
