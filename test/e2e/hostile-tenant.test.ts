/**
 * A hostile tenant: the probes of issue 17 (a session's outside test of a8bf70c, as a hostile tenant and as an
 * operator), replayed against the service process (bundled and run as `npm start` does) on 127.0.0.1, over a real
 * PostgreSQL server and moto. Each describe block is one finding; each probe is shown refused. Two tenants share the
 * service: `mallory` (the attacker, with her own tenant token) and `victim`.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeleteRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { openDatabase, type Database } from "../../db/client";
import { createKeyring, encryptJson } from "../../db/crypto";
import { cloudAssets, organizations } from "../../db/schema";
import { activeEnrollmentToken } from "../../services/core/enrollment-tokens";
import { webhookSecretContext } from "../../services/notification/webhook-service";
import { enrollmentBody, signedIdentity, untrustedIdentityAuthority } from "../harness/instance-identity";
import { DEFAULT_LIMITS } from "../../platform/config";
import { createCaller } from "../harness/caller";
import { createBootstrapRole, customerAccountCredentials } from "../harness/customer-account";
import { readEventStream } from "../harness/event-stream-reader";
import { startServer, stopServer, type Server } from "../harness/service-process";
import { serviceUnderTest, startServiceUnderTest } from "../harness/service-under-test";
import { startStsStandIn, type StsStandIn } from "../harness/sts-standin";
import {
  BOOTSTRAP_ROLE_NAME,
  bootstrapRoleArnOf,
  newTenantRecord,
  PLATFORM_PRINCIPAL_ARN,
  tenantExternalIdThroughApi,
  type TenantRecord,
} from "../harness/tenants";
import { waitFor } from "../harness/wait-for";

describe("a hostile tenant", () => {
  const mallory: TenantRecord = newTenantRecord(`mallory-${randomBytes(3).toString("hex")}`);
  const victim: TenantRecord = newTenantRecord(`victim-${randomBytes(3).toString("hex")}`);
  const service = serviceUnderTest({
    name: "hostile",
    workspace: "data-dir",
    setUp: async () => {
      for (const tenant of [mallory, victim]) {
        await service.createTenant(tenant);
        tenant.token = await service.issueToken(tenant.slug, "admin");
      }
    },
  });
  const { call, adminToken } = service;
  const encryptionKey = service.encryptionKey!;

  it("the two tenants exist, each token sees only its own tenant", async () => {
    expect((await call("GET", `/v1/tenants/${mallory.slug}`, { token: mallory.token })).status).toBe(200);
    expect((await call("GET", `/v1/tenants/${victim.slug}`, { token: mallory.token })).status).toBe(404);
  });

  // Each finding of issue 17 adds its describe block below, using `service`, `call`, `mallory` and `victim`.
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
      callWithSts("PUT", `/v1/tenants/${mallory.slug}/integrations/aws`, {
        token: mallory.token,
        body: { bootstrap_role_arn: bootstrapRoleArnOf(mallory.account) },
      });

    it("STS's AccessDenied (naming the platform's principal) and a refused connection reach mallory as codes, not upstream text", async () => {
      sts = await startStsStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, callerPrincipalArn: PLATFORM_PRINCIPAL_ARN });
      const stsPort = new URL(sts.url).port;
      withSts = await startServer(service.serverEnv({ AWS_ENDPOINT_URL_STS: sts.url }));

      const denied = await connectMallory();
      expect(denied.status, denied.text).toBe(422);
      expect(denied.body.error.code).toBe("credentials_rejected");
      expect(denied.text).toContain("could not be assumed with the tenant's external ID");
      expect(sts.calls.some((stsCall) => !stsCall.admitted)).toBe(true);

      await sts.stop();
      sts = undefined;
      const unreachable = await connectMallory();
      // Nothing can be concluded about the role: the tenant is told to try again, with a code.
      expect(unreachable.status, unreachable.text).toBe(502);
      expect(unreachable.body.error.code).toBe("sts_unavailable");

      for (const answer of [denied, unreachable]) {
        for (const upstream of ["AccessDenied", "not authorized", PLATFORM_PRINCIPAL_ARN, "ECONNREFUSED", `127.0.0.1:${stsPort}`, "sts:AssumeRole"]) {
          expect(answer.text).not.toContain(upstream);
        }
      }
    });
  });

  describe("finding 5: agents prove the instance they run on", () => {
    // Mallory holds her tenant's enrollment token (anyone who can read the agent parameter on any of her hosts does).
    const known = "i-0a11ce00000000001";
    let database: Database | undefined;
    let scratchDir = "";
    let enrollmentToken = "";

    beforeAll(async () => {
      scratchDir = await mkdtemp(join(tmpdir(), "mxdr-hostile-agents-"));
      database = await openDatabase({ databaseUrl: service.databaseUrl, dataDir: scratchDir });
      const [org] = await database.db.select().from(organizations).where(eq(organizations.slug, mallory.slug));
      enrollmentToken = await activeEnrollmentToken(database.db, createKeyring({ key: encryptionKey }), org!.id);
      // One instance discovery found in her account (the only one an agent may enroll for).
      await database.db.insert(cloudAssets).values({
        organizationId: org!.id,
        provider: "aws",
        assetType: "ec2",
        assetId: known,
        region: "us-east-1",
        agentCompatible: true,
        assetData: { platform: "linux", state: "running" },
      });
    });
    afterAll(async () => {
      await database?.close();
      await rm(scratchDir, { recursive: true, force: true });
    });

    const mallorys = (instanceId: string) => ({ accountId: mallory.account, region: "us-east-1", instanceId });
    const enroll = (body: Record<string, unknown>) => call("POST", "/v1/agents/enroll", { body, token: null });
    const health = async () => (await call("GET", `/v1/tenants/${mallory.slug}/deployment/health`, { token: mallory.token })).body;

    it("made-up instance ids, another account's document, unsigned or tampered documents are refused with her token, and health does not turn healthy", async () => {
      // The probe as it was: the token and a made-up instance id, nothing proven.
      for (const instanceId of ["i-deadbeef-not-real", "i-0123456789abcdef0", "i-00000000000000001", "i-ffffffffffffffff0"]) {
        const probe = await enroll({ enrollment_token: enrollmentToken, instance_id: instanceId, hostname: "spoof", agent_version: "1.0.0" });
        expect({ instanceId, status: probe.status }).toEqual({ instanceId, status: 400 });
        // Her own signature on a document naming the instance (she has no AWS key).
        const forged = signedIdentity(mallorys(instanceId), untrustedIdentityAuthority());
        const withForgery = await enroll({
          ...enrollmentBody(enrollmentToken, mallorys(instanceId)),
          identity_document: forged.document,
          identity_signature: forged.signature,
        });
        expect({ instanceId, status: withForgery.status, code: withForgery.body.error.code }).toEqual({
          instanceId,
          status: 401,
          code: "invalid_instance_identity",
        });
        // Even a genuine document of an instance of her account that discovery never found (a made-up id) is refused.
        const undiscovered = await enroll(enrollmentBody(enrollmentToken, mallorys(instanceId)));
        expect({ instanceId, status: undiscovered.status, code: undiscovered.body.error.code }).toEqual({
          instanceId,
          status: 409,
          code: "instance_not_discovered",
        });
      }
      // A genuine document of an instance in another account (the victim's), presented with her token.
      const victims = await enroll(enrollmentBody(enrollmentToken, { accountId: victim.account, region: "us-east-1", instanceId: known }));
      expect({ status: victims.status, code: victims.body.error.code }).toEqual({ status: 403, code: "instance_not_of_tenant" });
      // Unsigned, and a signed document with the instance id changed.
      const signed = enrollmentBody(enrollmentToken, mallorys(known));
      const unsigned = await enroll({ ...signed, identity_signature: randomBytes(128).toString("base64") });
      expect({ status: unsigned.status, code: unsigned.body.error.code }).toEqual({ status: 401, code: "invalid_instance_identity" });
      const tamperedDocument = signedIdentity(mallorys(known)).document.replace(known, "i-deadbeef-not-real");
      const tampered = await enroll({ ...signed, identity_document: tamperedDocument });
      expect({ status: tampered.status, code: tampered.body.error.code }).toEqual({ status: 401, code: "invalid_instance_identity" });
      // The enrollment token is no heartbeat credential, and a made-up credential counts for nothing.
      expect(
        (await call("POST", "/v1/agents/heartbeat", { body: { enrollment_token: enrollmentToken, instance_id: known }, token: null })).status,
      ).toBe(400);
      const madeUp = await call("POST", "/v1/agents/heartbeat", {
        body: { agent_credential: `mxdr-agent_${"A".repeat(43)}`, instance_id: known },
        token: null,
      });
      expect(madeUp.status).toBe(401);

      const status = await health();
      expect(status).toMatchObject({ agents_enrolled: 0, agents_healthy: 0 });
      expect(status.status).not.toBe("healthy");
    });

    it("an enrolled instance cannot be re-enrolled without its agent's credential, nor heartbeat for another instance", async () => {
      const first = await enroll(enrollmentBody(enrollmentToken, mallorys(known)));
      expect(first.status, first.text).toBe(201);
      const credential: string = first.body.agent_credential;
      // A replay of the same (genuine) document from elsewhere: no credential, or a made-up one.
      const replay = await enroll(enrollmentBody(enrollmentToken, mallorys(known), { hostname: "attacker" }));
      expect({ status: replay.status, code: replay.body.error.code }).toEqual({ status: 409, code: "agent_already_enrolled" });
      const guessed = await enroll(enrollmentBody(enrollmentToken, mallorys(known), { agentCredential: `mxdr-agent_${"B".repeat(43)}` }));
      expect({ status: guessed.status, code: guessed.body.error.code }).toEqual({ status: 403, code: "agent_credential_mismatch" });
      const elsewhere = await call("POST", "/v1/agents/heartbeat", {
        body: { agent_credential: credential, instance_id: "i-deadbeef-not-real" },
        token: null,
      });
      expect(elsewhere.status).toBe(401);
      expect(await health()).toMatchObject({
        agents_enrolled: 1,
        agents: [expect.objectContaining({ instance_id: known, hostname: `ip-${known}` })],
      });
      // Only an operator resets an enrollment; a tenant token may not.
      expect((await call("DELETE", `/v1/tenants/${mallory.slug}/agents/${known}/enrollment`, { token: mallory.token })).status).toBe(403);
    });
  });

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

    // A URL the schema's pattern refuses (the hex and decimal spellings, IPv6 literals) is a 400; one that is well formed
    // but leads to a refused address is a 422 (code webhook_url_not_allowed). Both name `url`.
    it("every probe address is refused for mallory's webhooks (and for an admin's on her tenant), naming url", async () => {
      for (const url of refusedUrls) {
        for (const token of [mallory.token, adminToken]) {
          const created = await call("POST", `/v1/tenants/${mallory.slug}/webhooks`, { token, body: { url, events: ["run.failed"] } });
          expect([400, 422], `${url}: ${created.text}`).toContain(created.status);
          expect(
            created.body.error.fields.map((field: { field: string }) => field.field),
            url,
          ).toEqual(["url"]);
        }
      }
      expect((await call("GET", `/v1/tenants/${mallory.slug}/webhooks`, { token: mallory.token })).body.webhooks).toEqual([]);
    });

    it("without WEBHOOK_PLATFORM_ALLOW_LOOPBACK not even a platform webhook reaches loopback", async () => {
      for (const url of ["http://127.0.0.1:18499/", "https://127.0.0.1:18499/", "https://localhost:18499/"]) {
        const created = await call("POST", "/v1/webhooks", { body: { url, events: ["run.failed"] } });
        expect(created.status, `${url}: ${created.text}`).toBe(422);
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
      const { sql } = service;
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
        expect(JSON.stringify(deliveries.map((delivery: { attempt_log: unknown }) => delivery.attempt_log))).not.toMatch(
          /ECONN|127\.0\.0\.1|SSL|Error/,
        );
        expect(connections).toBe(0);
        expect(service.server.stderr() + service.server.stdout()).toMatch(/address_refused: .*127\.0\.0\.1=loopback/);
        await sql`update webhooks set deleted_at = now() where id = ${hook!.id}`;
      } finally {
        receiver.close();
      }
    });

    it("mallory may have WEBHOOK_MAX_PER_TENANT (10) webhooks: one more answers 409 webhook_limit_reached, as the schema says", async () => {
      const created: string[] = [];
      try {
        // A public literal address (no DNS), subscribed to fleet events only: a tenant's webhook never gets those.
        for (let index = 0; index < 10; index++) {
          const hook = await call("POST", `/v1/tenants/${mallory.slug}/webhooks`, {
            token: mallory.token,
            body: { url: `https://93.184.215.14/hook-${index}`, events: ["fleet_run.finished"] },
          });
          expect(hook.status, hook.text).toBe(201);
          created.push(hook.body.id);
        }
        const over = await call("POST", `/v1/tenants/${mallory.slug}/webhooks`, {
          token: mallory.token,
          body: { url: "https://93.184.215.14/one-more", events: ["fleet_run.finished"] },
        });
        expect(over.status, over.text).toBe(409);
        expect(over.body.error).toMatchObject({ code: "webhook_limit_reached", limit: 10 });
        // The victim's own allowance is untouched.
        const victimHook = await call("POST", `/v1/tenants/${victim.slug}/webhooks`, {
          token: victim.token,
          body: { url: "https://93.184.215.14/victim", events: ["fleet_run.finished"] },
        });
        expect(victimHook.status, victimHook.text).toBe(201);
        expect((await call("DELETE", `/v1/tenants/${victim.slug}/webhooks/${victimHook.body.id}`, { token: victim.token })).status).toBe(204);
        const doc = await call("GET", "/openapi.json", { token: null });
        expect(doc.body.paths["/v1/tenants/{slug}/webhooks"].post.responses["409"].description).toMatch(/WEBHOOK_MAX_PER_TENANT/);
      } finally {
        for (const id of created) await call("DELETE", `/v1/tenants/${mallory.slug}/webhooks/${id}`, { token: mallory.token });
      }
    });
  });

  describe("runs: the pool never starves requests, and a run can be cancelled only by whom it concerns (findings 1, 6, 7, 12)", () => {
    // The probe needs more runs at once than the request pool has connections: a service of its own.
    const crowd = Array.from({ length: 11 }, (_, index) => newTenantRecord(`crowd${index}-${randomBytes(3).toString("hex")}`));
    const [attacker, target] = crowd as [TenantRecord, TenantRecord];
    const crowded = serviceUnderTest({
      name: "hostile-crowd",
      workspace: "data-dir",
      env: { MAX_CONCURRENT_RUNS: String(crowd.length) },
      setUp: async () => {
        for (const tenant of crowd) {
          await crowded.onboard(tenant);
          tenant.token = await crowded.issueToken(tenant.slug, "own");
        }
      },
    });
    const crowdCall = crowded.call;

    it("11 tenants request previews at once: every request is answered, /healthz keeps answering, every run finishes", async () => {
      const requested = await Promise.all(
        crowd.map((tenant) => crowdCall("POST", `/v1/tenants/${tenant.slug}/runs`, { token: tenant.token, body: { kind: "preview" } })),
      );
      expect(requested.map((answer) => answer.status)).toEqual(crowd.map(() => 202));
      const health = await fetch(`${crowded.server.baseUrl}/healthz`, { signal: AbortSignal.timeout(60_000) });
      expect(health.status).toBe(200);
      const ended = await Promise.all(
        crowd.map((tenant, index) => crowded.settledRun(tenant.slug, requested[index]!.body.run_id, { token: tenant.token })),
      );
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
      expect((await crowded.settledRun(target.slug, targetRun.body.run_id)).status).toBe("succeeded");
      expect((await crowded.settledRun(attacker.slug, first.body.run_id)).status).toBe("succeeded");
    });
  });
  describe("finding 8 and 9: no quotas, no rate limits, tokens that cannot be managed", () => {
    const randomToken = (prefix: string) => `${prefix}_${randomBytes(32).toString("base64url")}`;
    const progressUrl = (slug: string) => `${service.server.baseUrl}/v1/tenants/${slug}/progress/events`;

    /** A call from another loopback address: the limiter counts failed authentications per client address. */
    const callFrom = (localAddress: string, method: string, path: string, { token, body }: { token?: string; body?: unknown } = {}) =>
      new Promise<{ status: number; retryAfter: string | undefined; body: any }>((resolve, reject) => {
        const url = new URL(path, service.server.baseUrl);
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const headers = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { "content-type": "application/json" } : {}) };
        const request = http.request({ host: url.hostname, port: url.port, path: url.pathname, method, localAddress, headers }, (response) => {
          let text = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => (text += chunk));
          response.on("end", () =>
            resolve({
              status: response.statusCode!,
              retryAfter: response.headers["retry-after"] as string | undefined,
              body: text ? JSON.parse(text) : undefined,
            }),
          );
        });
        request.on("error", reject);
        request.end(payload);
      });

    /** `attempts` calls in a row; every answer's status, and the first 429. */
    async function guess(attempts: number, attempt: () => ReturnType<typeof callFrom>) {
      const statuses: number[] = [];
      let limited: Awaited<ReturnType<typeof callFrom>> | undefined;
      for (let i = 0; i < attempts; i++) {
        const answer = await attempt();
        statuses.push(answer.status);
        if (answer.status === 429) limited ??= answer;
      }
      return { statuses, limited };
    }

    const expectLimitedAfter = (limit: number, { statuses, limited }: Awaited<ReturnType<typeof guess>>) => {
      expect(statuses.slice(0, limit)).toEqual(Array(limit).fill(401));
      expect(statuses.slice(limit)).toEqual(Array(statuses.length - limit).fill(429));
      expect(limited!.body.error.code).toBe("too_many_auth_failures");
      expect(Number(limited!.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(limited!.retryAfter)).toBeLessThanOrEqual(DEFAULT_LIMITS.authFailureWindowSeconds);
    };

    it("mallory floods runs: past MAX_QUEUED_RUNS_PER_TENANT queued runs she gets 429 queued_run_limit with Retry-After; the victim still queues", async () => {
      // Runs stay queued only without a worker: a service of its own, on a database of its own.
      const queueing = await startServiceUnderTest({
        name: "hostile-runs",
        workspace: "data-dir",
        env: { RUN_WORKER: "false", MAX_QUEUED_RUNS_PER_TENANT: "3" },
      });
      try {
        const on = queueing.call;
        const flooder = newTenantRecord(`mallory-q-${randomBytes(3).toString("hex")}`);
        const bystander = newTenantRecord(`victim-q-${randomBytes(3).toString("hex")}`);
        for (const tenant of [flooder, bystander]) await queueing.onboard(tenant);
        const issued = await on("POST", `/v1/tenants/${flooder.slug}/tokens`, { body: { name: "mallory" } });
        // All at once: the cap is counted under the tenant stack's lock, so concurrent requests cannot all slip under it.
        const answers = await Promise.all(
          Array.from({ length: 6 }, () =>
            on("POST", `/v1/tenants/${flooder.slug}/runs`, { token: issued.body.token, body: { kind: "preview", queue: true } }),
          ),
        );
        expect(answers.map((answer) => answer.status).sort()).toEqual([202, 202, 202, 429, 429, 429]);
        const refused = answers.find((answer) => answer.status === 429)!;
        expect(refused.body.error).toMatchObject({ code: "queued_run_limit", max_queued_runs: 3 });
        expect(refused.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
        const more = await on("POST", `/v1/tenants/${flooder.slug}/runs`, { token: issued.body.token, body: { kind: "preview", queue: true } });
        expect(more.status).toBe(429);
        const listed = await on("GET", `/v1/tenants/${flooder.slug}/runs`);
        expect(listed.body.runs).toHaveLength(3);
        expect((await on("POST", `/v1/tenants/${bystander.slug}/runs`, { body: { kind: "preview", queue: true } })).status).toBe(202);
      } finally {
        await queueing.close();
      }
    });

    it("mallory opens 60 event streams: past MAX_EVENT_STREAMS_PER_TENANT she gets 429 event_stream_limit with Retry-After; the victim's stream opens", async () => {
      const cap = DEFAULT_LIMITS.maxEventStreamsPerTenant;
      const open = (slug: string, token: string, controller: AbortController) =>
        fetch(progressUrl(slug), { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" }, signal: controller.signal });
      const controllers = Array.from({ length: 60 }, () => new AbortController());
      try {
        const answers = await Promise.all(controllers.map((controller) => open(mallory.slug, mallory.token, controller)));
        const statuses = answers.map((answer) => answer.status);
        expect(statuses.filter((status) => status === 200)).toHaveLength(cap);
        expect(statuses.filter((status) => status === 429)).toHaveLength(60 - cap);
        const refused = answers.find((answer) => answer.status === 429)!;
        expect(refused.headers.get("retry-after")).toMatch(/^[1-9]\d*$/);
        expect((await refused.json()).error.code).toBe("event_stream_limit");

        const victimStream = new AbortController();
        expect((await open(victim.slug, victim.token, victimStream)).status).toBe(200);
        victimStream.abort();
      } finally {
        for (const controller of controllers) controller.abort();
      }
      // Closed streams give their places back.
      await waitFor(
        "a place for mallory's stream again",
        async () => {
          const controller = new AbortController();
          const answer = await open(mallory.slug, mallory.token, controller);
          controller.abort();
          return answer.status === 200;
        },
        { timeoutMs: 30_000, intervalMs: 500 },
      );
    });

    it("mallory's token is revoked: her open event stream ends (event revoked); an expiring token's stream ends at its expiry", async () => {
      const issued = await call("POST", `/v1/tenants/${mallory.slug}/tokens`, { body: { name: "mallory-second" } });
      const reading = readEventStream(progressUrl(mallory.slug), { token: issued.body.token, until: "revoked", timeoutMs: 60_000 });
      // The stream's request authenticated (last use recorded): revoke the token under it.
      await waitFor("the stream to authenticate", async () => {
        const tokens = await call("GET", `/v1/tenants/${mallory.slug}/tokens?limit=200`);
        return tokens.body.tokens.find((token: { id: number }) => token.id === issued.body.id)?.last_used_at !== null;
      });
      expect((await call("DELETE", `/v1/tenants/${mallory.slug}/tokens/${issued.body.id}`)).status).toBe(200);
      const revoked = await reading;
      expect(revoked.status).toBe(200);
      expect(revoked.events.at(-1)).toEqual({ event: "revoked", data: JSON.stringify({ code: "token_revoked" }) });

      const expiring = await call("POST", `/v1/tenants/${mallory.slug}/tokens`, { body: { name: "mallory-expiring", expires_in: 5 } });
      const expired = await readEventStream(progressUrl(mallory.slug), { token: expiring.body.token, until: "revoked", timeoutMs: 60_000 });
      expect(expired.status).toBe(200);
      expect(expired.events[0]!.event).toBe("progress");
      expect(expired.events.at(-1)).toEqual({ event: "revoked", data: JSON.stringify({ code: "token_expired" }) });
    });

    it("mallory guesses 200 bearer tokens: past AUTH_FAILURE_LIMIT failures her address gets 429 with Retry-After, even with her right token; another client's right token is not slowed", async () => {
      const guessed = await guess(200, () => callFrom("127.0.0.2", "GET", `/v1/tenants/${victim.slug}`, { token: randomToken("mxdr-tenant") }));
      expectLimitedAfter(DEFAULT_LIMITS.authFailureLimit, guessed);
      expect((await callFrom("127.0.0.2", "GET", `/v1/tenants/${mallory.slug}`, { token: mallory.token })).status).toBe(429);
      expect((await callFrom("127.0.0.4", "GET", `/v1/tenants/${victim.slug}`, { token: victim.token })).status).toBe(200);
      expect((await call("GET", `/v1/tenants/${victim.slug}`, { token: victim.token })).status).toBe(200);
    });

    it("mallory guesses 200 agent enrollment tokens: past AUTH_FAILURE_LIMIT failures her address gets 429 with Retry-After", async () => {
      const enroll = () =>
        callFrom("127.0.0.3", "POST", "/v1/agents/enroll", {
          body: enrollmentBody(randomToken("mxdr-enroll"), { accountId: mallory.account, region: "us-east-1", instanceId: "i-0123456789abcdef0" }),
        });
      expectLimitedAfter(DEFAULT_LIMITS.authFailureLimit, await guess(200, enroll));
      // Counted apart from API tokens: her API token from that address still works.
      expect((await callFrom("127.0.0.3", "GET", `/v1/tenants/${mallory.slug}`, { token: mallory.token })).status).toBe(200);
    });
  });

  describe("finding 2: the platform is nobody's confused deputy", () => {
    // The service's STS calls go to the STS stand-in startServer() gives it: AssumeRole is answered by the role's
    // trust policy, the caller and the external ID, as AWS does (moto alone grants any).
    const platformAccount = PLATFORM_PRINCIPAL_ARN.split(":")[4]!;
    const put = (tenant: TenantRecord, body: Record<string, unknown>) =>
      call("PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { token: tenant.token, body });
    const assumedRoles = () => service.server.sts!.calls.map((c) => c.roleArn);

    /** A role that trusts the platform's account WITHOUT an sts:ExternalId condition. */
    const openRole = (accountId: string, roleName: string) => createBootstrapRole({ accountId, roleName, externalId: null });

    it("a. mallory cannot choose an external ID, nor reuse the victim's: each tenant has its own, generated by the service", async () => {
      victim.externalId = await tenantExternalIdThroughApi(call, victim.slug);
      mallory.externalId = await tenantExternalIdThroughApi(call, mallory.slug, { token: mallory.token });
      expect(mallory.externalId).not.toBe(victim.externalId);
      expect((await call("GET", `/v1/tenants/${victim.slug}/integrations/aws/external-id`, { token: mallory.token })).status).toBe(404);
      const roleArn = await createBootstrapRole({ accountId: mallory.account, roleName: BOOTSTRAP_ROLE_NAME, externalId: victim.externalId });
      const chosen = await put(mallory, { bootstrap_role_arn: roleArn, external_id: victim.externalId });
      expect(chosen.status, chosen.text).toBe(400);
      expect(chosen.body.error.fields).toEqual([{ field: "external_id", message: expect.stringContaining("is generated by the service") }]);
      const seed = await call("POST", "/api/onboarding/v2/integrations/setup", {
        token: mallory.token,
        body: { provider: "aws", credentials: { role_arn: roleArn, external_id: victim.externalId } },
      });
      // The seed set may echo the tenant's own ID; another one is well formed but refused (422).
      expect(seed.status, seed.text).toBe(422);
      expect(seed.body.error.fields).toEqual([{ field: "credentials.external_id", message: expect.stringContaining("is generated by the service") }]);
      // And a role that trusts the victim's external ID does not answer to hers.
      const rejected = await put(mallory, { bootstrap_role_arn: roleArn });
      expect(rejected.status, rejected.text).toBe(422);
      expect(rejected.body.error.code).toBe("credentials_rejected");
    });

    it("b. mallory cannot hand over a role whose trust policy lacks the ExternalId condition", async () => {
      const roleArn = await openRole(mallory.account, `${BOOTSTRAP_ROLE_NAME}-${mallory.slug}`);
      const refused = await put(mallory, { bootstrap_role_arn: roleArn });
      expect(refused.status, refused.text).toBe(422);
      expect(refused.body.error).toMatchObject({
        code: "external_id_not_required",
        message: "the role's trust policy does not require the external ID",
      });
      expect(refused.text).not.toMatch(/AccessDenied|not authorized/);
      expect((await call("GET", `/v1/tenants/${mallory.slug}/integrations/aws`, { token: mallory.token })).status).toBe(404);
    });

    it("c. mallory cannot point the platform at the platform's own account", async () => {
      const roleArn = await openRole(platformAccount, BOOTSTRAP_ROLE_NAME);
      const patched = await call("PATCH", `/v1/tenants/${mallory.slug}`, {
        token: mallory.token,
        body: { integration_settings: { aws_account_id: platformAccount } },
      });
      // Well formed, refused by the platform's settings: 422 naming the field (400 is for what the schema refuses).
      expect(patched.status, patched.text).toBe(422);
      expect(patched.body.error.fields).toEqual([
        { field: "integration_settings.aws_account_id", message: expect.stringContaining("platform's own") },
      ]);
      const connect = await put(mallory, { bootstrap_role_arn: roleArn });
      expect(connect.status, connect.text).toBe(422);
      expect(connect.body.error.fields).toEqual([{ field: "bootstrap_role_arn", message: expect.stringContaining("platform's own") }]);
      // Nor any role by another name there (or anywhere).
      const admin = await put(mallory, { bootstrap_role_arn: `arn:aws:iam::${mallory.account}:role/OrganizationAccountAccessRole` });
      expect(admin.status, admin.text).toBe(400);
      expect(assumedRoles()).not.toContain(roleArn);
    });

    it("d (after a). mallory cannot point the platform at the victim's account, before or after she is connected", async () => {
      const victimRole = await createBootstrapRole({ accountId: victim.account, roleName: BOOTSTRAP_ROLE_NAME, externalId: victim.externalId });
      const victimOpenRole = await openRole(victim.account, `${BOOTSTRAP_ROLE_NAME}-${mallory.slug}`);
      // Her tenant is in her own account: a role elsewhere is refused outright.
      expect((await put(mallory, { bootstrap_role_arn: victimRole })).status).toBe(422);
      // Not connected yet, she may correct her account; the victim's roles still do not answer to her.
      const moved = await call("PATCH", `/v1/tenants/${mallory.slug}`, {
        token: mallory.token,
        body: { integration_settings: { aws_account_id: victim.account } },
      });
      expect(moved.status, moved.text).toBe(200);
      expect((await put(mallory, { bootstrap_role_arn: victimRole })).body.error.code).toBe("credentials_rejected");
      expect((await put(mallory, { bootstrap_role_arn: victimOpenRole })).body.error.code).toBe("external_id_not_required");
      expect(
        (
          await call("PATCH", `/v1/tenants/${mallory.slug}`, {
            token: mallory.token,
            body: { integration_settings: { aws_account_id: mallory.account } },
          })
        ).status,
      ).toBe(200);

      // Connected to her own account, she may no longer move it: the operator does.
      mallory.externalId = await tenantExternalIdThroughApi(call, mallory.slug, { token: mallory.token });
      const otherName = await createBootstrapRole({ accountId: mallory.account, roleName: "MiniXdrAdmin", externalId: mallory.externalId });
      expect((await put(mallory, { bootstrap_role_arn: otherName })).status, "a role by another name").toBe(400);
      // Her MiniXdrBootstrap trusted the victim's external ID (first test): she recreates it with her own.
      const iam = new IAMClient({ region: "us-east-1", credentials: await customerAccountCredentials(mallory.account) });
      await iam.send(new DeleteRoleCommand({ RoleName: BOOTSTRAP_ROLE_NAME })).finally(() => iam.destroy());
      const ownRole = await createBootstrapRole({ accountId: mallory.account, roleName: BOOTSTRAP_ROLE_NAME, externalId: mallory.externalId });
      const connected = await put(mallory, { bootstrap_role_arn: ownRole });
      expect(connected.status, connected.text).toBe(201);
      const repointed = await call("PATCH", `/v1/tenants/${mallory.slug}`, {
        token: mallory.token,
        body: { integration_settings: { aws_account_id: victim.account } },
      });
      expect(repointed.status, repointed.text).toBe(403);
      expect(repointed.body.error.code).toBe("account_change_forbidden");
      const reconnect = await put(mallory, { bootstrap_role_arn: victimRole });
      expect(reconnect.status, reconnect.text).toBe(403);
      expect((await call("GET", `/v1/tenants/${mallory.slug}`, { token: mallory.token })).body.integration_settings.aws_account_id).toBe(
        mallory.account,
      );
    });
  });

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
      const { sql } = service;
      // Earlier blocks may have given her assets already (an instance her agent enrolled on): they are pages too.
      const earlier = (
        await sql<{ asset_id: string }[]>`
        select asset_id from cloud_assets where organization_id = (select id from organizations where slug = ${mallory.slug})`
      ).map((row) => row.asset_id);
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
      const seen: string[] = [];
      let cursor: number | null = null;
      do {
        const page = await call("GET", `/v1/tenants/${mallory.slug}/assets?limit=7${cursor === null ? "" : `&cursor=${cursor}`}`, {
          token: mallory.token,
        });
        expect(page.status, page.text).toBe(200);
        expect(page.body.assets.length).toBeLessThanOrEqual(7);
        expect(page.body.total).toBe(30 + earlier.length);
        seen.push(...page.body.assets.map((asset: { asset_id: string }) => asset.asset_id));
        cursor = page.body.next_cursor;
      } while (cursor !== null);
      expect(seen).toHaveLength(30 + earlier.length);
      expect(new Set(seen).size).toBe(30 + earlier.length);
      expect(seen.filter((id) => !earlier.includes(id)).every((id) => id.startsWith(`i-${mallory.slug}-`))).toBe(true);
      // A page larger than the maximum is refused, not served whole.
      const huge = await call("GET", `/v1/tenants/${mallory.slug}/assets?limit=1000000`, { token: mallory.token });
      expect(huge.status).toBe(400);
      expect(huge.body.error.fields.map((field: { field: string }) => field.field)).toEqual(["query.limit"]);
    });
  });
});
