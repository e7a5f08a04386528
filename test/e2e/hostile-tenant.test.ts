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
  const mallory: TenantRecord = newTenantRecord(`mallory-${randomBytes(3).toString("hex")}`);
  const victim: TenantRecord = newTenantRecord(`victim-${randomBytes(3).toString("hex")}`);

  setupOrFailEveryTest(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "mxdr-hostile-"));
    const prepared = await realPostgres.prepare();
    cleanupDatabase = prepared.cleanup;
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
});
