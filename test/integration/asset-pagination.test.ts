/**
 * Keyset pagination of a tenant's assets through the API (/v1 and the seeds' v2 route), on real PostgreSQL: `limit`
 * is honoured up to its maximum, and paging while discovery inserts more assets still returns every asset that
 * existed at the start exactly once.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { cloudAssets } from "../../db/schema";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { SEEDED_REGION, seedTenant, type SeededTenant } from "../harness/seeded-tenant";

const INITIAL = 230;

let database: Database;
let service: TestPlatform | undefined;
let tenant: SeededTenant;
let inserted = 0;

async function insertAssets(count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => `i-${String(inserted++).padStart(8, "0")}`);
  await database.db.insert(cloudAssets).values(
    ids.map((assetId, index) => ({
      organizationId: tenant.organizationId,
      provider: "aws" as const,
      // Mixed types: a page is not one type.
      assetType: index % 3 === 0 ? "rds" : "ec2",
      assetId,
      region: SEEDED_REGION,
      tags: { Name: assetId },
    })),
  );
  return ids;
}

beforeAll(async () => {
  service = await startTestPlatform();
  database = service.platform.database;
  tenant = await seedTenant(service);
});

afterAll(async () => {
  await service?.stop();
});

describe("assets are paginated with a keyset cursor", () => {
  let initial: string[] = [];

  it("honours limit: a page has at most `limit` assets, next_cursor leads on, total counts every page", async () => {
    initial = await insertAssets(INITIAL);
    const first = await tenant.call("GET", `/v1/tenants/${tenant.slug}/assets?limit=7`);
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.body.assets).toHaveLength(7);
    expect(first.body.total).toBe(INITIAL);
    expect(first.body.next_cursor).toEqual(expect.any(Number));
    const second = await tenant.call("GET", `/v1/tenants/${tenant.slug}/assets?limit=7&cursor=${first.body.next_cursor}`);
    expect(second.body.assets).toHaveLength(7);
    const firstIds = first.body.assets.map((asset: { asset_id: string }) => asset.asset_id);
    for (const asset of second.body.assets) expect(firstIds).not.toContain(asset.asset_id);
    // Without a limit: the default page, not every asset.
    const defaulted = await tenant.call("GET", `/v1/tenants/${tenant.slug}/assets`);
    expect(defaulted.body.assets).toHaveLength(100);
  });

  it("refuses a limit above the maximum, or a cursor that is not one, naming the parameter", async () => {
    const tooMany = await tenant.call("GET", `/v1/tenants/${tenant.slug}/assets?limit=1001`);
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.fields).toEqual([{ field: "query.limit", message: expect.stringMatching(/at most 1000/) }]);
    const badCursor = await tenant.call("GET", `/v1/tenants/${tenant.slug}/assets?cursor=abc`);
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.error.fields.map((field: { field: string }) => field.field)).toEqual(["query.cursor"]);
  });

  it.each([
    ["/v1", () => `/v1/tenants/${tenant.slug}/assets`],
    ["v2 (seed-compatible)", () => "/api/onboarding/v2/assets"],
  ])("%s: pages cover every asset exactly once while new assets are inserted between pages", async (_label, path) => {
    const seen: string[] = [];
    let cursor: number | null = null;
    let pages = 0;
    do {
      const query: string = `limit=25${cursor === null ? "" : `&cursor=${cursor}`}`;
      const page = await tenant.call("GET", `${path()}?${query}`);
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      expect(page.body.assets.length).toBeLessThanOrEqual(25);
      seen.push(...page.body.assets.map((asset: { asset_id: string }) => asset.asset_id));
      cursor = page.body.next_cursor;
      pages++;
      // Discovery goes on meanwhile: three new assets after every page, for the first few pages.
      if (pages <= 4) await insertAssets(3);
    } while (cursor !== null && pages < 100);
    expect(cursor).toBeNull();
    expect(new Set(seen).size, "no asset twice").toBe(seen.length);
    for (const id of initial) expect(seen, id).toContain(id);
    expect(pages).toBeGreaterThan(INITIAL / 25);
  });
});
