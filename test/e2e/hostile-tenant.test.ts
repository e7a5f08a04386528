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
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS } from "../../lib/config";
import { createCaller, readEventStream, realPostgres, serverEnvFor, startServer, stopServer, waitFor, type Server } from "../harness/server";
import { setupOrFailEveryTest } from "../harness/suite";
import { createTenantThroughApi, newTenantRecord, onboardThroughApi, PLATFORM_PRINCIPAL_ARN, type TenantRecord } from "../harness/tenants";

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
  describe("finding 8 and 9: no quotas, no rate limits, tokens that cannot be managed", () => {
    const randomToken = (prefix: string) => `${prefix}_${randomBytes(32).toString("base64url")}`;
    const progressUrl = (slug: string) => `${server!.baseUrl}/v1/tenants/${slug}/progress/events`;

    /** A call from another loopback address: the limiter counts failed authentications per client address. */
    const callFrom = (localAddress: string, method: string, path: string, { token, body }: { token?: string; body?: unknown } = {}) =>
      new Promise<{ status: number; retryAfter: string | undefined; body: any }>((resolve, reject) => {
        const url = new URL(path, server!.baseUrl);
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const headers = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(payload ? { "content-type": "application/json" } : {}) };
        const request = http.request({ host: url.hostname, port: url.port, path: url.pathname, method, localAddress, headers }, (response) => {
          let text = "";
          response.setEncoding("utf8");
          response.on("data", (chunk: string) => (text += chunk));
          response.on("end", () =>
            resolve({ status: response.statusCode!, retryAfter: response.headers["retry-after"] as string | undefined, body: text ? JSON.parse(text) : undefined }),
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
      const prepared = await realPostgres.prepare();
      const dir = await mkdtemp(join(tmpdir(), "mxdr-hostile-runs-"));
      const queueing = await startServer({
        ...serverEnvFor({ databaseUrl: prepared.databaseUrl, adminToken, encryptionKey, platformPrincipalArn: PLATFORM_PRINCIPAL_ARN }),
        DATA_DIR: dir,
        RUN_WORKER: "false",
        MAX_QUEUED_RUNS_PER_TENANT: "3",
      });
      try {
        const on = createCaller({ baseUrl: () => queueing.baseUrl, defaultToken: () => adminToken });
        const flooder = newTenantRecord(`mallory-q-${randomBytes(3).toString("hex")}`);
        const bystander = newTenantRecord(`victim-q-${randomBytes(3).toString("hex")}`);
        for (const tenant of [flooder, bystander]) await onboardThroughApi(on, tenant);
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
        await stopServer(queueing);
        await prepared.cleanup();
        await rm(dir, { recursive: true, force: true });
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
          body: { enrollment_token: randomToken("mxdr-enroll"), instance_id: "i-0123456789abcdef0", hostname: "web-1", agent_version: "1.0.0" },
        });
      expectLimitedAfter(DEFAULT_LIMITS.authFailureLimit, await guess(200, enroll));
      // Counted apart from API tokens: her API token from that address still works.
      expect((await callFrom("127.0.0.3", "GET", `/v1/tenants/${mallory.slug}`, { token: mallory.token })).status).toBe(200);
    });
  });
});
