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
import { createServer as createNetServer, type AddressInfo } from "node:net";
import postgres from "postgres";
import { createKeyring, encryptJson } from "../../db/crypto";
import { webhookSecretContext } from "../../services/notification/webhook-service";
import { createCaller, realPostgres, serverEnvFor, startServer, stopServer, waitFor, type Server } from "../harness/server";
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

  describe("findings 3 and 4: webhooks reach no address of the platform's network, show error classes, and are capped", () => {
    // The probe's addresses, in the probe's spellings and more.
    const refusedUrls = [
      "https://169.254.169.254/latest/meta-data/",
      "https://10.0.0.1/",
      "https://192.168.1.1/",
      "https://[fd00::1]/",
      "https://[::ffff:127.0.0.1]/",
      "https://0x7f000001/",
      "https://2130706433/",
      "https://localhost:5432/",
      "https://127.1:18499/",
      "https://0177.0.0.1/",
      "https://[::1]/",
      "https://0.0.0.0:8080/",
      "https://100.64.0.1/",
      "https://[64:ff9b::a9fe:a9fe]/",
      "https://[::ffff:a9fe:a9fe]/",
      "http://127.0.0.1:18499/",
    ];

    it("every probe address is refused for mallory's webhooks (and for an admin's on her tenant) with a 400 naming url", async () => {
      for (const url of refusedUrls) {
        for (const token of [mallory.token, adminToken]) {
          const created = await call("POST", `/v1/tenants/${mallory.slug}/webhooks`, { token, body: { url, events: ["run.failed"] } });
          expect(created.status, `${url}: ${created.text}`).toBe(400);
          expect(created.body.error.fields.map((field: { field: string }) => field.field), url).toEqual(["url"]);
        }
      }
      expect((await call("GET", `/v1/tenants/${mallory.slug}/webhooks`, { token: mallory.token })).body.webhooks).toEqual([]);
    });

    it("without WEBHOOK_PLATFORM_ALLOW_LOOPBACK not even a platform webhook reaches loopback", async () => {
      for (const url of ["http://127.0.0.1:18499/", "https://127.0.0.1:18499/", "https://localhost:18499/"]) {
        const created = await call("POST", "/v1/webhooks", { body: { url, events: ["run.failed"] } });
        expect(created.status, `${url}: ${created.text}`).toBe(400);
        expect(created.body.error.fields.map((field: { field: string }) => field.field)).toEqual(["url"]);
      }
    });

    it("a webhook of mallory's stored before the fix is refused at delivery: the receiver is never contacted, she sees address_refused, not the text", async () => {
      let connections = 0;
      const receiver = createNetServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", () => resolve()));
      const port = (receiver.address() as AddressInfo).port;
      const sql = postgres(databaseUrl, { max: 1, onnotice: () => undefined });
      try {
        const [org] = await sql<{ id: number }[]>`select id from organizations where slug = ${mallory.slug}`;
        const sealed = encryptJson("whsec_from_before_the_fix", webhookSecretContext(org!.id), createKeyring({ key: encryptionKey }));
        const [hook] = await sql<{ id: string }[]>`
          insert into webhooks (organization_id, url, events, secret_sealed, encryption_key_id, actor)
          values (${org!.id}, ${`https://127.0.0.1:${port}/scan`}, ${sql.json(["run.failed"])}, ${sealed.envelope}, ${sealed.keyId}, 'before-the-fix')
          returning id`;
        await sql`insert into webhook_deliveries (webhook_id, event, payload, next_attempt_at)
                  values (${hook!.id}, 'run.failed', ${sql.json({ type: "run.failed" })}, now())`;
        const deliveries = await waitFor(
          "the old webhook's first attempt",
          async () => {
            const answer = await call("GET", `/v1/webhooks/${hook!.id}/deliveries`, { token: mallory.token });
            expect(answer.status, answer.text).toBe(200);
            return answer.body.deliveries[0]?.attempt_log.length > 0 ? answer.body.deliveries : undefined;
          },
          { timeoutMs: 60_000 },
        );
        expect(deliveries[0].attempt_log[0]).toMatchObject({ error: "address_refused", status_code: null });
        expect(JSON.stringify(deliveries.map((delivery: { attempt_log: unknown }) => delivery.attempt_log))).not.toMatch(/ECONN|127\.0\.0\.1|SSL|Error/);
        expect(connections).toBe(0);
        expect(server!.stderr() + server!.stdout()).toMatch(/address_refused: .*127\.0\.0\.1=loopback/);
        await sql`update webhooks set deleted_at = now() where id = ${hook!.id}`;
      } finally {
        await sql.end();
        receiver.close();
      }
    });

    it("mallory may have WEBHOOK_MAX_PER_TENANT (10) webhooks: one more answers 409 webhook_limit_reached, as the schema says", async () => {
      const created: string[] = [];
      try {
        // A public literal address (no DNS), subscribed to fleet events only: a tenant's webhook never gets those.
        for (let index = 0; index < 10; index++) {
          const hook = await call("POST", `/v1/tenants/${mallory.slug}/webhooks`, { token: mallory.token, body: { url: `https://93.184.215.14/hook-${index}`, events: ["fleet_run.finished"] } });
          expect(hook.status, hook.text).toBe(201);
          created.push(hook.body.id);
        }
        const over = await call("POST", `/v1/tenants/${mallory.slug}/webhooks`, { token: mallory.token, body: { url: "https://93.184.215.14/one-more", events: ["fleet_run.finished"] } });
        expect(over.status, over.text).toBe(409);
        expect(over.body.error).toMatchObject({ code: "webhook_limit_reached", limit: 10 });
        // The victim's own allowance is untouched.
        const victimHook = await call("POST", `/v1/tenants/${victim.slug}/webhooks`, { token: victim.token, body: { url: "https://93.184.215.14/victim", events: ["fleet_run.finished"] } });
        expect(victimHook.status, victimHook.text).toBe(201);
        expect((await call("DELETE", `/v1/tenants/${victim.slug}/webhooks/${victimHook.body.id}`, { token: victim.token })).status).toBe(204);
        const doc = await call("GET", "/openapi.json", { token: null });
        expect(doc.body.paths["/v1/tenants/{slug}/webhooks"].post.responses["409"].description).toMatch(/WEBHOOK_MAX_PER_TENANT/);
      } finally {
        for (const id of created) await call("DELETE", `/v1/tenants/${mallory.slug}/webhooks/${id}`, { token: mallory.token });
      }
    });
  });
});
