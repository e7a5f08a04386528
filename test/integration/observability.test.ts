/**
 * Logs and metrics through the real parts: the app with its access-log middleware and GET /metrics, pino writing JSON
 * lines, prom-client's registry, PostgreSQL for the figures read at scrape time, and the run executor and scan runner
 * reporting their lifecycle through the Telemetry interface (a run and a scan that fail before any cloud call, so no
 * CLI or emulator is needed; test/integration/replicas.test.ts scrapes a real `up` and discovery).
 */
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../api/app";
import type { Database } from "../../db/client";
import { generateToken, hashToken, type Keyring } from "../../db/crypto";
import { agents, apiTokens, auditLog, discoveryScans, organizations, runs } from "../../db/schema";
import { createLogger } from "../../lib/logger";
import { createMetrics } from "../../lib/metrics";
import { executeScan } from "../../services/discovery/scan-runner";
import { opsFigures } from "../../services/core/ops-figures";
import { executeRun } from "../../services/run/run-executor";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { unused } from "../harness/unused";

let database: Database;
let service: TestPlatform | undefined;
let app: ReturnType<typeof createApp>;
const lines: Record<string, unknown>[] = [];
let raw = "";
const admin = generateToken("mxdr-admin");
const tenantToken = generateToken("mxdr-tenant");
const slug = `obs-${randomBytes(3).toString("hex")}`;
let organizationId: number;
let keyring: Keyring;
const logger = createLogger(
  "info",
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw += chunk.toString();
      for (const line of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  }),
);
let metrics: ReturnType<typeof createMetrics>;

beforeAll(async () => {
  service = await startTestPlatform({ env: { PLATFORM_PRINCIPAL_ARN: "arn:aws:iam::999999999999:role/MiniXdrPlatform" } });
  ({ database, keyring } = service.platform);
  metrics = createMetrics(opsFigures(database.db));
  // The platform's app, its log lines and metrics captured here.
  app = createApp({ ...service.platform, log: (message) => expect.fail(message), observability: { log: logger, metrics } });
  await database.db.insert(apiTokens).values({ tokenHash: hashToken(admin), scope: "platform_admin", name: "admin" });
  const [org] = await database.db.insert(organizations).values({ slug, name: "Observed Corp" }).returning();
  organizationId = org!.id;
  await database.db.insert(apiTokens).values({ tokenHash: hashToken(tenantToken), scope: "tenant", organizationId, name: "tenant" });
});

afterAll(async () => {
  await service?.stop();
});

const get = (path: string, token?: string, headers: Record<string, string> = {}) =>
  app.request(path, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });

/** The value of one series in a Prometheus exposition, or undefined. */
function sample(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of exposition.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) return Number(match[4]);
  }
  return undefined;
}

describe("access log lines", () => {
  it("writes one JSON line per request with request id, matched route, status and duration; echoes the request id", async () => {
    const before = lines.length;
    const tenant = await get(`/v1/tenants/${slug}`, tenantToken, { "x-request-id": "req-abc.1" });
    expect(tenant.status).toBe(200);
    expect(tenant.headers.get("x-request-id")).toBe("req-abc.1");
    const missing = await get("/v1/no-such-route?token=abc", admin);
    expect(missing.status).toBe(404);
    const generated = missing.headers.get("x-request-id");
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    const unauthorized = await get(`/v1/tenants/${slug}`, undefined, { "x-request-id": "bad id with spaces" });
    expect(unauthorized.status).toBe(401);

    const access = lines.slice(before).filter((line) => line.event === "http.request");
    expect(access).toHaveLength(3);
    expect(access[0]).toMatchObject({
      level: "info",
      requestId: "req-abc.1",
      method: "GET",
      route: "/v1/tenants/:slug",
      path: `/v1/tenants/${slug}`,
      status: 200,
      durationMs: expect.any(Number),
      time: expect.any(String),
    });
    expect(access[1]).toMatchObject({ requestId: generated, route: "unmatched", path: "/v1/no-such-route", status: 404 });
    expect(access[2]).toMatchObject({ route: "/v1/tenants/:slug", status: 401 });
    expect(access[2]!.requestId).not.toBe("bad id with spaces");
    // No token, not even in the query string, in any line.
    expect(raw).not.toContain(admin);
    expect(raw).not.toContain(tenantToken);
    expect(raw).not.toContain("token=abc");
  });

  it("censors secret-looking fields a caller might pass by mistake", () => {
    logger.info({ event: "test", token: "mxdr-tenant_leak", externalId: "ext-leak" }, "careless");
    const line = lines.at(-1)!;
    expect(line).toMatchObject({ token: "[redacted]", externalId: "[redacted]" });
    expect(raw).not.toContain("mxdr-tenant_leak");
  });
});

describe("run and scan lifecycle lines", () => {
  it("an executed run reports started and finished with tenant and run id, and counts in the run metrics", async () => {
    const [run] = await database.db
      .insert(runs)
      .values({ organizationId, stackName: `tenant-${slug}`, kind: "up", actor: "test", requestedAt: new Date(Date.now() - 1500) })
      .returning();
    await executeRun(
      {
        db: database.db,
        automation: unused("automation"),
        tenantConfig: async () => {
          throw new Error("no AWS integration");
        },
        telemetry: { log: logger, metrics },
      },
      run!.id,
    );
    const lifecycle = lines.filter((line) => line.runId === run!.id);
    expect(lifecycle.map((line) => line.event)).toEqual(["run.started", "run.finished"]);
    expect(lifecycle[0]).toMatchObject({ tenantId: organizationId, tenant: slug, kind: "up", queueWaitMs: expect.any(Number) });
    expect(lifecycle[0]!.queueWaitMs as number).toBeGreaterThanOrEqual(1400);
    expect(lifecycle[1]).toMatchObject({ level: "warn", status: "failed", errorKind: "InternalError", durationMs: expect.any(Number) });
  });

  it("an executed scan reports started and finished with tenant and scan id", async () => {
    const [scan] = await database.db
      .insert(discoveryScans)
      .values({ organizationId, trigger: "manual", actor: "test", status: "queued" })
      .returning();
    await executeScan({ db: database.db, keyring, telemetry: { log: logger, metrics } }, scan!.id);
    const lifecycle = lines.filter((line) => line.scanId === scan!.id);
    expect(lifecycle.map((line) => line.event)).toEqual(["scan.started", "scan.finished"]);
    expect(lifecycle[1]).toMatchObject({ tenantId: organizationId, status: "failed", trigger: "manual", durationMs: expect.any(Number) });
  });
});

describe("GET /metrics", () => {
  it("is for platform admins only", async () => {
    expect((await get("/metrics")).status).toBe(401);
    expect((await get("/metrics", tenantToken)).status).toBe(403);
  });

  it("exposes HTTP latency by route and status, runs, queue, discovery, agents and connect-to-completed", async () => {
    // Figures the scrape reads from the database: two queued previews, three agents, one tenant onboarded in 240 s.
    await database.db.insert(runs).values([
      { organizationId, stackName: `tenant-${slug}-a`, kind: "preview", actor: "test" },
      { organizationId, stackName: `tenant-${slug}-b`, kind: "preview", actor: "test" },
    ]);
    await database.db.insert(agents).values(["i-1", "i-2", "i-3"].map((instanceId) => ({ organizationId, instanceId })));
    const connectedAt = new Date(Date.now() - 600_000);
    await database.db.insert(auditLog).values([
      { actor: "test", organizationId, action: "integration.aws.connect", target: "t", at: connectedAt },
      { actor: "test", organizationId, action: "onboarding.completed", target: "t", at: new Date(connectedAt.getTime() + 240_000) },
    ]);
    metrics.discoveryRegionScanned("eu-west-1", "succeeded", 0.4);
    metrics.discoveryRegionScanned("eu-west-1", "failed", 1.2);

    const scraped = await get("/metrics", admin);
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await scraped.text();

    const ok = { method: "GET", route: "/v1/tenants/:slug", status: "200" };
    expect(sample(text, "mxdr_http_request_duration_seconds_count", ok)).toBeGreaterThanOrEqual(1);
    expect(sample(text, "mxdr_http_request_duration_seconds_sum", ok)).toBeGreaterThan(0);
    expect(sample(text, "mxdr_http_request_duration_seconds_count", { route: "/metrics", status: "403" })).toBe(1);
    expect(sample(text, "mxdr_http_request_duration_seconds_bucket", { ...ok, le: "+Inf" })).toBe(
      sample(text, "mxdr_http_request_duration_seconds_count", ok),
    );
    // No raw path (slug, id) becomes a label.
    expect(text).not.toContain(slug);

    expect(sample(text, "mxdr_runs_total", { kind: "up", status: "failed" })).toBe(1);
    expect(sample(text, "mxdr_run_duration_seconds_count", { kind: "up", status: "failed" })).toBe(1);
    expect(sample(text, "mxdr_run_queue_wait_seconds_count", { kind: "up" })).toBe(1);
    expect(sample(text, "mxdr_run_queue_wait_seconds_sum", { kind: "up" })).toBeGreaterThanOrEqual(1.4);
    expect(sample(text, "mxdr_run_queue_depth", { kind: "preview" })).toBe(2);
    expect(sample(text, "mxdr_runs", { kind: "preview", status: "queued" })).toBe(2);
    expect(sample(text, "mxdr_runs", { kind: "up", status: "failed" })).toBe(1);

    expect(sample(text, "mxdr_discovery_region_duration_seconds_count", { region: "eu-west-1", outcome: "failed" })).toBe(1);
    expect(sample(text, "mxdr_discovery_region_duration_seconds_sum", { region: "eu-west-1", outcome: "succeeded" })).toBeCloseTo(0.4);
    expect(sample(text, "mxdr_discovery_region_failures_total", { region: "eu-west-1" })).toBe(1);

    expect(sample(text, "mxdr_agents_enrolled")).toBe(3);
    expect(sample(text, "mxdr_onboarding_connect_to_completed_seconds_count")).toBe(1);
    expect(sample(text, "mxdr_onboarding_connect_to_completed_seconds_sum")).toBe(240);
    expect(sample(text, "mxdr_onboarding_connect_to_completed_seconds_bucket", { le: "180" })).toBe(0);
    expect(sample(text, "mxdr_onboarding_connect_to_completed_seconds_bucket", { le: "300" })).toBe(1);

    expect(sample(text, "mxdr_process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024);
  });
});
