/**
 * A hostile tenant: the probes of issue 17 (a session's outside test of a8bf70c, as a hostile tenant and as an
 * operator), replayed against the service process (bundled and run as `npm start` does) on 127.0.0.1, over a real
 * PostgreSQL server and moto. Each describe block is one finding; each probe is shown refused. Two tenants share the
 * service: `mallory` (the attacker, with her own tenant token) and `victim`.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { createCaller, realPostgres, serverEnvFor, startServer, stopServer, type Server } from "../harness/server";
import { setupOrFailEveryTest } from "../harness/suite";
import { createTenantThroughApi, newTenantRecord, PLATFORM_PRINCIPAL_ARN, type TenantRecord } from "../harness/tenants";

describe("a hostile tenant", () => {
  const adminToken = `mxdr-admin_${randomBytes(32).toString("base64url")}`;
  const encryptionKey = randomBytes(32).toString("base64");
  let server: Server | undefined;
  let dataDir = "";
  let cleanupDatabase: (() => Promise<void>) | undefined;
  let databaseUrl = "";
  const mallory: TenantRecord = newTenantRecord(`mallory-${randomBytes(3).toString("hex")}`);
  const victim: TenantRecord = newTenantRecord(`victim-${randomBytes(3).toString("hex")}`);

  setupOrFailEveryTest(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "mxdr-hostile-"));
    const prepared = await realPostgres.prepare();
    cleanupDatabase = prepared.cleanup;
    databaseUrl = prepared.databaseUrl ?? "";
    server = await startServer({
      ...serverEnvFor({ databaseUrl: prepared.databaseUrl, adminToken, encryptionKey, platformPrincipalArn: PLATFORM_PRINCIPAL_ARN }),
      DATA_DIR: dataDir,
    });
    for (const tenant of [mallory, victim]) {
      await createTenantThroughApi(call, tenant);
      const issued = await call("POST", `/v1/tenants/${tenant.slug}/tokens`, { body: { name: "admin" } });
      if (issued.status !== 201) throw new Error(`token for ${tenant.slug}: ${issued.status} ${issued.text}`);
      tenant.token = issued.body.token;
    }
  });

  afterAll(async () => {
    await stopServer(server);
    await cleanupDatabase?.();
    await rm(dataDir, { recursive: true, force: true });
  });

  const call = createCaller({ baseUrl: () => server!.baseUrl, defaultToken: () => adminToken });

  it("the two tenants exist, each token sees only its own tenant", async () => {
    expect((await call("GET", `/v1/tenants/${mallory.slug}`, { token: mallory.token })).status).toBe(200);
    expect((await call("GET", `/v1/tenants/${victim.slug}`, { token: mallory.token })).status).toBe(404);
  });

  // Each finding of issue 17 adds its describe block below, using `call`, `server`, `mallory` and `victim`.

  describe("finding 13: display names and asset pages", () => {
    it.each([
      ["her tenant's name with U+202E (right-to-left override)", "PATCH", () => `/v1/tenants/${mallory.slug}`, { name: "Acme\u202Egnp.exe" }],
      ["her tenant's name with a zero-width space", "PATCH", () => `/v1/tenants/${mallory.slug}`, { name: "vic\u200Btim" }],
      ["a token name with a newline (a forged log line)", "POST", () => `/v1/tenants/${mallory.slug}/tokens`, { name: "ok\nlevel=error admin=true" }],
      ["a token name with U+2066 (left-to-right isolate)", "POST", () => `/v1/tenants/${mallory.slug}/tokens`, { name: "\u2066admin" }],
    ])("refuses %s with 400 naming the field", async (_probe, method, path, body) => {
      const response = await call(method, path(), { body, token: mallory.token });
      expect(response.status, response.text).toBe(400);
      expect(response.body.error.fields).toEqual([{ field: "name", message: expect.stringMatching(/control or format characters/) }]);
    });

    it("honours limit on /assets and pages the rest with next_cursor, her assets only", async () => {
      const sql = postgres(databaseUrl, { max: 1, onnotice: () => undefined });
      try {
        for (const tenant of [mallory, victim]) {
          const [org] = await sql<{ id: number }[]>`select id from organizations where slug = ${tenant.slug}`;
          const rows = Array.from({ length: 30 }, (_, i) => ({
            organization_id: org!.id,
            provider: "aws",
            asset_type: "ec2",
            asset_id: `i-${tenant.slug}-${String(i).padStart(3, "0")}`,
            region: "us-east-1",
          }));
          await sql`insert into cloud_assets ${sql(rows)}`;
        }
      } finally {
        await sql.end();
      }
      const seen: string[] = [];
      let cursor: number | null = null;
      do {
        const page = await call("GET", `/v1/tenants/${mallory.slug}/assets?limit=7${cursor === null ? "" : `&cursor=${cursor}`}`, { token: mallory.token });
        expect(page.status, page.text).toBe(200);
        expect(page.body.assets.length).toBeLessThanOrEqual(7);
        expect(page.body.total).toBe(30);
        seen.push(...page.body.assets.map((asset: { asset_id: string }) => asset.asset_id));
        cursor = page.body.next_cursor;
      } while (cursor !== null);
      expect(seen).toHaveLength(30);
      expect(new Set(seen).size).toBe(30);
      expect(seen.every((id) => id.startsWith(`i-${mallory.slug}-`))).toBe(true);
      // A page larger than the maximum is refused, not served whole.
      const huge = await call("GET", `/v1/tenants/${mallory.slug}/assets?limit=1000000`, { token: mallory.token });
      expect(huge.status).toBe(400);
      expect(huge.body.error.fields.map((field: { field: string }) => field.field)).toEqual(["query.limit"]);
    });
  });
});
