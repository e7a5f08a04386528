/**
 * Stack runs and the database's connections, through the service process (issue 17, finding 1): runs' liveness
 * locks never take connections from the pool that serves requests, so with more runs executing at once than that
 * pool has connections, /healthz and the API still answer; and a configuration whose connections the server cannot
 * hold is refused at start-up with one message naming the variables. The runs are held at their provider's first
 * AWS call by a proxy in front of moto, then cancelled through the API.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { stackProcesses } from "../../services/run/orphans";
import { createCaller } from "../harness/caller";
import { startHoldingProxy, type HoldingProxy } from "../harness/holding-proxy";
import { scratchDatabase } from "../harness/scratch-database";
import { serverEnvFor, startServer, stopServer, type Server } from "../harness/service-process";
import { temporaryServiceWorkspace, type ServiceWorkspace } from "../harness/service-workspace";
import { waitFor } from "../harness/wait-for";
import { setupOrFailEveryTest } from "../harness/suite";
import { newTenantRecord, onboardThroughApi, PLATFORM_PRINCIPAL_ARN, waitForRunToSettle, type TenantRecord } from "../harness/tenants";

/** More runs at once than the request pool's DATABASE_POOL_MAX (10) connections. */
const RUNS = 12;
const adminToken = `mxdr-admin_${randomBytes(32).toString("base64url")}`;
const encryptionKey = randomBytes(32).toString("base64");

/** A GET that must answer: a hang fails it (never a duration assertion). */
async function answers(url: string, token?: string): Promise<number> {
  const response = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(60_000) });
  await response.text();
  return response.status;
}

describe("stack runs and the database's connections", () => {
  let server: Server | undefined;
  let workspace: ServiceWorkspace | undefined;
  let proxy: HoldingProxy | undefined;
  let cleanupDatabase: (() => Promise<void>) | undefined;
  let databaseUrl = "";
  const tenants: TenantRecord[] = Array.from({ length: RUNS }, (_, index) => newTenantRecord(`cap${index}-${randomBytes(3).toString("hex")}`));
  const call = createCaller({ baseUrl: () => server!.baseUrl, defaultToken: () => adminToken });

  setupOrFailEveryTest(async () => {
    const prepared = await scratchDatabase();
    cleanupDatabase = prepared.cleanup;
    databaseUrl = prepared.databaseUrl;
    workspace = await temporaryServiceWorkspace(undefined, { defaultBackendOf: databaseUrl });
    proxy = await startHoldingProxy(process.env.AWS_ENDPOINT_URL!);
    server = await startServer({
      ...serverEnvFor({ databaseUrl, adminToken, encryptionKey, platformPrincipalArn: PLATFORM_PRINCIPAL_ARN }),
      ...workspace.serverEnv(),
      MAX_CONCURRENT_RUNS: String(RUNS),
      AWS_ENDPOINT_URL: proxy.url,
    });
    for (const tenant of tenants) await onboardThroughApi(call, tenant);
  });

  afterAll(async () => {
    await stopServer(server);
    await proxy?.close();
    await workspace?.cleanup();
    await cleanupDatabase?.();
  });

  it(`${RUNS} runs executing at once (more than the request pool's connections): /healthz and the API keep answering; each is cancelled through the API`, async () => {
    // Every AWS call is held: each preview stops at its provider's first call (STS), running, its liveness lock held.
    proxy!.hold(() => true);
    const requested = await Promise.all(tenants.map((tenant) => call("POST", `/v1/tenants/${tenant.slug}/runs`, { body: { kind: "preview" } })));
    expect(requested.map((answer) => answer.status)).toEqual(tenants.map(() => 202));
    const sql = postgres(databaseUrl, { max: 1, onnotice: () => undefined });
    try {
      await waitFor(
        `${RUNS} runs running at once`,
        async () => {
          const [row] = await sql<{ running: number }[]>`select count(*)::int as running from runs where status = 'running'`;
          return row?.running === RUNS;
        },
        { timeoutMs: 240_000 },
      );
    } finally {
      await sql.end();
    }

    expect(await answers(`${server!.baseUrl}/healthz`)).toBe(200);
    expect(await answers(`${server!.baseUrl}/v1/tenants`, adminToken)).toBe(200);
    expect(await answers(`${server!.baseUrl}/v1/tenants/${tenants[0]!.slug}/runs`, adminToken)).toBe(200);

    const cancels = await Promise.all(
      tenants.map((tenant, index) => call("POST", `/v1/tenants/${tenant.slug}/runs/${requested[index]!.body.run_id}/cancel`)),
    );
    expect(cancels.map((answer) => answer.body)).toEqual(requested.map((answer) => ({ run_id: answer.body.run_id, status: "cancelling" })));
    const ended = await Promise.all(tenants.map((tenant, index) => waitForRunToSettle(call, tenant.slug, requested[index]!.body.run_id)));
    expect(ended.map((run) => run.status)).toEqual(tenants.map(() => "cancelled"));
    for (const tenant of tenants) expect(await stackProcesses(`tenant-${tenant.slug}`)).toEqual([]);
    proxy!.hold(null);
  });

  it("a configuration whose connections the server cannot hold is refused at start-up, with one message naming the variables", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "mxdr-capacity-"));
    try {
      const refused = await startServer({
        ...serverEnvFor({ databaseUrl, adminToken, encryptionKey, platformPrincipalArn: PLATFORM_PRINCIPAL_ARN }),
        DATA_DIR: dataDir,
        MAX_CONCURRENT_RUNS: "64",
        DATABASE_POOL_MAX: "150",
      }).then(
        (started) => stopServer(started).then(() => "started"),
        (error: Error) => error.message,
      );
      expect(refused).toMatch(/exited \(1\) before listening/);
      expect(refused.match(/invalid service configuration/g)).toHaveLength(1);
      expect(refused).toMatch(
        /- MAX_CONCURRENT_RUNS, DATABASE_POOL_MAX: this process needs up to \d+ connections to the PostgreSQL server .* but the server allows \d+ \(max_connections \d+/,
      );
      expect(refused).not.toContain("failed to start");
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
