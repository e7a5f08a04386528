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
import {
  createTenantThroughApi,
  newTenantRecord,
  onboardThroughApi,
  PLATFORM_PRINCIPAL_ARN,
  waitForRunToSettle,
  type TenantRecord,
} from "../harness/tenants";

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

  describe("runs: the pool never starves requests, and a run can be cancelled only by whom it concerns (findings 1, 6, 7, 12)", () => {
    // The probe needs more runs at once than the request pool has connections: a service of its own.
    const crowd = Array.from({ length: 11 }, (_, index) => newTenantRecord(`crowd${index}-${randomBytes(3).toString("hex")}`));
    const [attacker, target] = crowd as [TenantRecord, TenantRecord];
    let crowdServer: Server | undefined;
    const undo: (() => Promise<unknown>)[] = [];
    const crowdCall = createCaller({ baseUrl: () => crowdServer!.baseUrl, defaultToken: () => adminToken });

    setupOrFailEveryTest(async () => {
      const scratch = await realPostgres.prepare();
      const folder = await mkdtemp(join(tmpdir(), "mxdr-hostile-crowd-"));
      undo.push(scratch.cleanup, () => rm(folder, { recursive: true, force: true }));
      const env = serverEnvFor({ databaseUrl: scratch.databaseUrl, adminToken, encryptionKey, platformPrincipalArn: PLATFORM_PRINCIPAL_ARN });
      crowdServer = await startServer({ ...env, DATA_DIR: folder, MAX_CONCURRENT_RUNS: String(crowd.length) });
      undo.unshift(() => stopServer(crowdServer));
      for (const tenant of crowd) {
        await onboardThroughApi(crowdCall, tenant);
        const own = await crowdCall("POST", `/v1/tenants/${tenant.slug}/tokens`, { body: { name: "own" } });
        tenant.token = own.status === 201 ? own.body.token : "";
      }
      expect(crowd.filter((tenant) => !tenant.token)).toEqual([]);
    });

    afterAll(async () => {
      for (const step of undo) await step();
    });

    it("11 tenants request previews at once: every request is answered, /healthz keeps answering, every run finishes", async () => {
      const requested = await Promise.all(
        crowd.map((tenant) => crowdCall("POST", `/v1/tenants/${tenant.slug}/runs`, { token: tenant.token, body: { kind: "preview" } })),
      );
      expect(requested.map((answer) => answer.status)).toEqual(crowd.map(() => 202));
      const health = await fetch(`${crowdServer!.baseUrl}/healthz`, { signal: AbortSignal.timeout(60_000) });
      expect(health.status).toBe(200);
      const ended = await Promise.all(crowd.map((tenant, index) => waitForRunToSettle(crowdCall, tenant.slug, requested[index]!.body.run_id, { token: tenant.token })));
      expect(ended.map((run) => run.status)).toEqual(crowd.map(() => "succeeded"));
    });

    it("a tenant cannot cancel another tenant's run (404); it cancels its own queued run (202 cancelled); a finished run answers 409", async () => {
      const targetRun = await crowdCall("POST", `/v1/tenants/${target.slug}/runs`, { token: target.token, body: { kind: "preview" } });
      expect(targetRun.status).toBe(202);
      const foreign = await crowdCall("POST", `/v1/tenants/${target.slug}/runs/${targetRun.body.run_id}/cancel`, { token: attacker.token });
      expect(foreign.status).toBe(404);
      const first = await crowdCall("POST", `/v1/tenants/${attacker.slug}/runs`, { token: attacker.token, body: { kind: "preview" } });
      const second = await crowdCall("POST", `/v1/tenants/${attacker.slug}/runs`, { token: attacker.token, body: { kind: "preview", queue: true } });
      expect([first.status, second.status]).toEqual([202, 202]);
      const cancelled = await crowdCall("POST", `/v1/tenants/${attacker.slug}/runs/${second.body.run_id}/cancel`, { token: attacker.token });
      expect(cancelled.status, cancelled.text).toBe(202);
      expect(cancelled.body).toEqual({ run_id: second.body.run_id, status: "cancelled" });
      const again = await crowdCall("POST", `/v1/tenants/${attacker.slug}/runs/${second.body.run_id}/cancel`, { token: attacker.token });
      expect(again.status).toBe(409);
      expect(again.body.error.code).toBe("run_finished");
      expect((await waitForRunToSettle(crowdCall, target.slug, targetRun.body.run_id)).status).toBe("succeeded");
      expect((await waitForRunToSettle(crowdCall, attacker.slug, first.body.run_id)).status).toBe("succeeded");
    });
  });
});
