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
import { startStsStandIn, type StsStandIn } from "../harness/sts-standin";
import { bootstrapRoleArnOf, createTenantThroughApi, newTenantRecord, PLATFORM_PRINCIPAL_ARN, type TenantRecord } from "../harness/tenants";

describe("a hostile tenant", () => {
  const adminToken = `mxdr-admin_${randomBytes(32).toString("base64url")}`;
  const encryptionKey = randomBytes(32).toString("base64");
  let server: Server | undefined;
  let dataDir = "";
  let databaseUrl = "";
  let cleanupDatabase: (() => Promise<void>) | undefined;
  const mallory: TenantRecord = newTenantRecord(`mallory-${randomBytes(3).toString("hex")}`);
  const victim: TenantRecord = newTenantRecord(`victim-${randomBytes(3).toString("hex")}`);

  setupOrFailEveryTest(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "mxdr-hostile-"));
    const prepared = await realPostgres.prepare();
    cleanupDatabase = prepared.cleanup;
    databaseUrl = prepared.databaseUrl!;
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
  describe("finding 11: what a tenant can observe of upstream failures", () => {
    // A second service on the same database whose STS is the stand-in that refuses as AWS does (moto grants every
    // AssumeRole), then nothing at all (the stand-in stopped: a refused connection).
    let sts: StsStandIn | undefined;
    let withSts: Server | undefined;
    const callWithSts = createCaller({ baseUrl: () => withSts!.baseUrl, defaultToken: () => adminToken });

    afterAll(async () => {
      await stopServer(withSts);
      await sts?.stop();
    });

    // The role is named as ours, in her own account, but was never created there: STS refuses it.
    const connectMallory = () =>
      callWithSts("PUT", `/v1/tenants/${mallory.slug}/integrations/aws`, { token: mallory.token, body: { bootstrap_role_arn: bootstrapRoleArnOf(mallory.account) } });

    it("STS's AccessDenied (naming the platform's principal) and a refused connection reach mallory as codes, not upstream text", async () => {
      sts = await startStsStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, callerPrincipalArn: PLATFORM_PRINCIPAL_ARN });
      const stsPort = new URL(sts.url).port;
      withSts = await startServer({
        ...serverEnvFor({ databaseUrl, adminToken, encryptionKey, platformPrincipalArn: PLATFORM_PRINCIPAL_ARN }),
        DATA_DIR: dataDir,
        AWS_ENDPOINT_URL_STS: sts.url,
      });

      const denied = await connectMallory();
      expect(denied.status, denied.text).toBe(422);
      expect(denied.body.error.code).toBe("credentials_rejected");
      expect(denied.text).toContain("(upstream_access_denied)");
      expect(sts.calls.some((stsCall) => !stsCall.admitted)).toBe(true);

      await sts.stop();
      sts = undefined;
      const unreachable = await connectMallory();
      expect(unreachable.status, unreachable.text).toBe(422);
      expect(unreachable.text).toContain("(upstream_unreachable)");

      for (const answer of [denied, unreachable]) {
        for (const upstream of ["AccessDenied", "not authorized", PLATFORM_PRINCIPAL_ARN, "ECONNREFUSED", `127.0.0.1:${stsPort}`, "sts:AssumeRole"]) {
          expect(answer.text).not.toContain(upstream);
        }
      }
    });
  });
});
