/**
 * A run's life in the process that executes it (issue 17, findings 6, 7 and 12): recovery never touches a run this
 * process executes, even after its liveness session dropped; every status change is guarded by the status it
 * expects; a run past its kind's timeout is really stopped, CLI and plugins; a queued run is cancelled at once and
 * a running one is stopped, its lock and pending operations cleared, and the stack works again. The service's AWS
 * calls go through a proxy in front of moto that can hold them, so an operation stays in flight as long as a test
 * needs.
 */
import { randomBytes } from "node:crypto";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { processIsRunning } from "../harness/process-leaks";
import { openTenantStack, stackNameFor, type AutomationSettings } from "../../automation";
import type { Database } from "../../db/client";
import { organizations, runs, type Run } from "../../db/schema";
import { resolveStateBackend } from "../../automation/state-backend";
import { stackProcesses } from "../../services/run/orphans";
import { recoverInterruptedRuns } from "../../services/run/recovery";
import { createLockConnections, type LockConnections } from "../../services/core/run-liveness";
import { RUN_CANCEL_CHANNEL, startRunQueue, type RunQueue } from "../../services/run/run-queue";
import type { RunKind } from "../../db/schema";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";
import { realPostgres } from "../harness/databases";
import { temporaryAutomationSettings } from "../harness/pulumi-project";
import { startHoldingProxy, type HoldingProxy } from "../harness/holding-proxy";
import { waitFor } from "../harness/wait-for";

const slug = `life-${randomBytes(3).toString("hex")}`;
const config = miniCorpTenantConfig({ tenantSlug: slug });
const stackName = stackNameFor(slug);
/** The liveness locks' key space (services/core/run-liveness.ts). */
const LIVENESS_LOCK_SPACE = 0x6d786472;

let database: Database;
let cleanup: () => Promise<void>;
let automation: AutomationSettings;
let liveness: LockConnections;
let queue: RunQueue;
let proxy: HoldingProxy;
let organizationId: number;
const motoEndpoint = process.env.AWS_ENDPOINT_URL!;
const logs: string[] = [];
const timeouts: Partial<Record<RunKind, number>> = {};

const runRow = async (runId: string): Promise<Run> => (await database.db.select().from(runs).where(eq(runs.id, runId)))[0]!;

const settled = (runId: string) =>
  waitFor(
    `run ${runId} to finish`,
    async () => {
      const run = await runRow(runId);
      return ["queued", "running"].includes(run.status) ? undefined : run;
    },
    { timeoutMs: 240_000 },
  );

/** Requests a run and waits until it is running with an AWS call held by the proxy (its plugin is up). */
async function runningWithHeldCall(kind: RunKind): Promise<string> {
  const heldBefore = proxy.held;
  const runId = await queue.request({ organizationId, stackName, kind, actor: "test" });
  await waitFor(
    `run ${runId} to be running with an AWS call held`,
    async () => (await runRow(runId)).status === "running" && proxy.held > heldBefore,
    {
      timeoutMs: 180_000,
    },
  );
  return runId;
}

const alive = processIsRunning;

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
  proxy = await startHoldingProxy(motoEndpoint);
  // The CLIs and plugins the runs start inherit this process's environment: their AWS calls go through the proxy.
  process.env.AWS_ENDPOINT_URL = proxy.url;
  automation = await temporaryAutomationSettings({ backendUrl: await resolveStateBackend(undefined, database.connectionString) });
  const [org] = await database.db.insert(organizations).values({ slug, name: "Lifecycle Corp" }).returning();
  organizationId = org!.id;
  liveness = createLockConnections(database.connectionString, { max: 4 });
  queue = await startRunQueue(
    database.db,
    {
      db: database.db,
      automation,
      tenantConfig: async () => config,
      liveness,
      timeoutSeconds: timeouts,
      stopGraceSeconds: 2,
      log: (line) => logs.push(line),
    },
    { connectionString: database.connectionString, maxConcurrentRuns: 2, work: true, listen: database.sql },
  );
});

afterAll(async () => {
  process.env.AWS_ENDPOINT_URL = motoEndpoint;
  await queue?.stop();
  await liveness?.end();
  await proxy?.close();
  await cleanup?.();
});

describe("a run in the process that executes it", () => {
  it("recovery leaves a run this process executes alone after its liveness session dropped, and the run's result is recorded", async () => {
    proxy.hold(() => true);
    const runId = await runningWithHeldCall("up");
    const before = await stackProcesses(stackName);
    expect(before.length).toBeGreaterThan(1); // the CLI and its plugin

    // A PostgreSQL restart or failover, as far as this run is concerned: its liveness session is gone.
    const terminated = await database.sql<{ pid: number }[]>`
      select pid from pg_locks where locktype = 'advisory' and classid = ${LIVENESS_LOCK_SPACE} and database = (select oid from pg_database where datname = current_database())`;
    expect(terminated.length).toBeGreaterThan(0);
    for (const { pid } of terminated) await database.sql`select pg_terminate_backend(${pid})`;

    expect(await recoverInterruptedRuns(database.db, automation, { liveness })).toEqual([]);
    for (const { pid } of before) expect(alive(pid)).toBe(true);
    expect((await runRow(runId)).status).toBe("running");

    proxy.hold(null);
    proxy.release();
    const run = await settled(runId);
    expect(run.error).toBeNull();
    expect(run.status).toBe("succeeded");
  });

  it("a run whose status another process changed while it executed keeps that status, and the lost guard is logged", async () => {
    proxy.hold(() => true);
    const runId = await runningWithHeldCall("up");
    // Another replica decided the run was dead (as its recovery would) while it still ran here.
    await database.db.update(runs).set({ status: "interrupted", finishedAt: new Date() }).where(eq(runs.id, runId));
    proxy.hold(null);
    proxy.release();
    await waitFor(
      "the executor to log the lost guard",
      async () => logs.some((line) => line.includes(runId) && line.includes("changed to interrupted")),
      {
        timeoutMs: 180_000,
      },
    );
    expect((await runRow(runId)).status).toBe("interrupted");
    expect(await stackProcesses(stackName)).toEqual([]);
  });

  it("a run past its kind's timeout is stopped, CLI and plugins, fails with kind Timeout, its lock and pending operations are cleared, and the next run succeeds", async () => {
    timeouts.up = 45;
    proxy.hold((request) => !/Action=(AssumeRole|GetCallerIdentity)/.test(request.body));
    const agentVersion = config.agentVersion;
    config.agentVersion = "9.9.9"; // a change, so the up has an AWS call to make
    try {
      const runId = await runningWithHeldCall("up");
      const seen = new Set((await stackProcesses(stackName)).map((p) => p.pid));
      expect(seen.size).toBeGreaterThan(1);
      const run = await settled(runId);
      expect(run.status).toBe("failed");
      expect(run.error).toMatchObject({ kind: "Timeout" });
      expect(run.error!.message).toMatch(/exceeded its timeout of 45 s \(RUN_TIMEOUT_UP_SECONDS\)/);
      for (const pid of seen) expect(alive(pid), `process ${pid} of the stopped up`).toBe(false);
      expect(await stackProcesses(stackName)).toEqual([]);
      const stack = await openTenantStack(automation, stackNameFor(slug), { create: false });
      expect((await stack.exportStack()).deployment.pending_operations ?? []).toEqual([]);
    } finally {
      delete timeouts.up;
      config.agentVersion = agentVersion;
      proxy.hold(null);
    }
    const next = await settled(await queue.request({ organizationId, stackName, kind: "up", actor: "test" }));
    expect(next.error).toBeNull();
    expect(next.status).toBe("succeeded");
  });

  it("a queued run is cancelled at once; a running one is stopped (cancel sent to its executor over NOTIFY), its lock and pending operations cleared, and the next run succeeds", async () => {
    proxy.hold((request) => !/Action=(AssumeRole|GetCallerIdentity)/.test(request.body));
    const agentVersion = config.agentVersion;
    config.agentVersion = "8.8.8";
    try {
      const runningId = await runningWithHeldCall("up");
      const queuedId = await queue.request({ organizationId, stackName, kind: "refresh", actor: "test" }, { queueBehindActive: true });
      expect(await queue.cancel(queuedId, "token:7")).toBe("cancelled");
      expect(await runRow(queuedId)).toMatchObject({ status: "cancelled", error: { kind: "Cancelled" } });

      const seen = new Set((await stackProcesses(stackName)).map((p) => p.pid));
      // As another replica's cancel reaches this one.
      await database.db.execute(sql`select pg_notify(${RUN_CANCEL_CHANNEL}, ${JSON.stringify({ runId: runningId, actor: "token:7" })})`);
      const run = await settled(runningId);
      expect(run.status).toBe("cancelled");
      expect(run.error).toMatchObject({ kind: "Cancelled", message: expect.stringMatching(/^cancelled by token:7 while running/) });
      for (const pid of seen) expect(alive(pid), `process ${pid} of the cancelled up`).toBe(false);
      expect(await stackProcesses(stackName)).toEqual([]);
      const stack = await openTenantStack(automation, stackNameFor(slug), { create: false });
      expect((await stack.exportStack()).deployment.pending_operations ?? []).toEqual([]);
      expect(await queue.cancel(runningId, "token:7")).toBe("finished");
    } finally {
      config.agentVersion = agentVersion;
      proxy.hold(null);
    }
    const next = await settled(await queue.request({ organizationId, stackName, kind: "up", actor: "test" }));
    expect(next.error).toBeNull();
    expect(next.status).toBe("succeeded");
    expect((await settled(await queue.request({ organizationId, stackName, kind: "destroy", actor: "test" }))).status).toBe("succeeded");
  });
});
