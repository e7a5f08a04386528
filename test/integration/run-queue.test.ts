/**
 * Stack runs through the pg-boss queue on PostgreSQL: one active run per tenant stack, events and results recorded
 * on the run, and start-up recovery of a run whose service process was killed mid-`up` (stack lock cancelled,
 * checkpoint exported and re-imported). The Pulumi state is the service's default: the CLI's postgres:// backend
 * in the same server, in the state database next to the scratch database (automation/state-backend.ts).
 */
import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { randomBytes, randomUUID } from "node:crypto";
import path from "node:path";
import { asc, eq } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTenantStack, stackNameFor, type AutomationSettings } from "../../automation";
import type { Database } from "../../db/client";
import { createKeyring, decryptJson } from "../../db/crypto";
import { organizations, runEvents, runPlans, runs } from "../../db/schema";
import { createRunPlanStore } from "../../services/run/run-plan-store";
import { recoverInterruptedRuns } from "../../services/run/recovery";
import { RunConflictError } from "../../services/run/run-errors";
import { startRunQueue, type RunQueue } from "../../services/run/run-queue";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";
import { realPostgres } from "../harness/databases";
import { REPO_ROOT } from "../harness/moto";
import { temporaryAutomationSettings } from "../harness/pulumi-project";
import { pulumiProcessesOf } from "../harness/pulumi-cli";
import { resolveStateBackend } from "../../automation/state-backend";

const slug = `queue-${randomBytes(3).toString("hex")}`;
const config = miniCorpTenantConfig({ tenantSlug: slug });
const stackName = stackNameFor(slug);

let database: Database;
let cleanup: () => Promise<void>;
let automation: AutomationSettings;
let queue: RunQueue;
let organizationId: number;
let currentConfig = config;
const keyring = createKeyring({ key: randomBytes(32).toString("base64") });

/** Temporary plan folders (services/run/run-plan-store.ts) left in the OS temp dir. */
async function planTempFiles(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith("mxdr-plan-"));
}

async function settled(runId: string) {
  for (let attempt = 0; attempt < 600; attempt++) {
    const [run] = await database.db.select().from(runs).where(eq(runs.id, runId));
    if (run && !["queued", "running"].includes(run.status)) return run;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`run ${runId} did not finish`);
}

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
  automation = await temporaryAutomationSettings({ backendUrl: await resolveStateBackend(undefined, database.connectionString) });
  expect(automation.backendUrl).toMatch(/^postgres:\/\/.*_state\?sslmode=disable$/);
  const [org] = await database.db.insert(organizations).values({ slug, name: "Queue Corp" }).returning();
  organizationId = org!.id;
  queue = await startRunQueue(
    database.db,
    { db: database.db, automation, tenantConfig: async () => currentConfig, plans: createRunPlanStore(database.db, keyring) },
    { connectionString: database.connectionString, maxConcurrentRuns: 2, work: true },
  );
});

afterAll(async () => {
  await queue?.stop();
  await cleanup?.();
});

describe("stack runs on the queue", () => {
  it("runs an up and records its change summary, outputs and ordered engine events", async () => {
    const runId = await queue.request({ organizationId, stackName, kind: "up", actor: "test" });
    const run = await settled(runId);
    expect(run.error).toBeNull();
    expect(run.status).toBe("succeeded");
    expect(run.changeSummary).toEqual({ create: 8 });
    expect(run.outputs).toMatchObject({ roleArn: `arn:aws:iam::210987654321:role/MiniXdrAccess-${slug}` });
    expect(JSON.stringify(run.outputs)).not.toContain(config.externalId);
    const events = await database.db.select().from(runEvents).where(eq(runEvents.runId, runId)).orderBy(asc(runEvents.seq));
    expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index));
    expect(events[0]!.event).toHaveProperty("preludeEvent");
    expect(events.some((event) => "summaryEvent" in event.event)).toBe(true);
    expect(JSON.stringify(events)).not.toContain(config.enrollmentToken);

    // The checkpoint lives in the state database's table (the CLI's postgres:// backend), secrets encrypted.
    const state = postgres(automation.backendUrl, { max: 1, onnotice: () => undefined });
    try {
      const rows = await state<
        { key: string; data: string }[]
      >`select key, data::text as data from pulumi_state where key like ${`%/${stackName}.json`}`;
      expect(rows.map((row) => row.key)).toEqual([expect.stringMatching(new RegExp(`/\\.pulumi/stacks/mini-xdr-tenant/${stackName}\\.json$`))]);
      // The row holds {"data": "<base64 of the checkpoint file>"}.
      const checkpoint = Buffer.from((JSON.parse(rows[0]!.data) as { data: string }).data, "base64").toString("utf8");
      expect(checkpoint).toContain(`MiniXdrAccess-${slug}`);
      expect(checkpoint).not.toContain(config.enrollmentToken);
      expect(checkpoint).not.toContain(config.externalId);
    } finally {
      await state.end({ timeout: 5 });
    }
  });

  it("answers a second request for the same stack with the blocking run's id; exactly one executes", async () => {
    const first = await queue.request({ organizationId, stackName, kind: "preview", actor: "test" });
    const second = queue.request({ organizationId, stackName, kind: "up", actor: "test" });
    await expect(second).rejects.toThrowError(RunConflictError);
    await expect(second).rejects.toMatchObject({ blockingRunId: first });
    expect((await settled(first)).status).toBe("succeeded");
    const all = await database.db.select().from(runs).where(eq(runs.stackName, stackName));
    expect(all).toHaveLength(2);
  });

  it("recovers a run whose service was killed mid-up: marked interrupted, lock cleared, a new up succeeds", async () => {
    // A separate service process starts an `up` (a config change makes it slow enough) and is killed mid-run.
    const [run] = await database.db
      .insert(runs)
      .values({ organizationId, stackName, kind: "up", actor: "test", status: "running", startedAt: new Date() })
      .returning();
    const child = spawn(process.execPath, ["--import", "tsx", path.join(REPO_ROOT, "test/harness/run-up-process.ts")], {
      env: { ...process.env, AUTOMATION_SETTINGS: JSON.stringify(automation), TENANT_CONFIG: JSON.stringify({ ...config, agentVersion: "2.0.0" }) },
      detached: true,
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("resource-pre") && resolve());
      child.on("exit", () => reject(new Error("the up finished before it could be interrupted")));
    });
    // Only the service process dies, as in a crash: its `pulumi` child is orphaned (an inline program's engine soon
    // notices its language host is gone; test/unit/orphans.test.ts covers an orphan that keeps running).
    process.kill(child.pid!, "SIGKILL");
    await new Promise((resolve) => child.on("exit", resolve));

    const stack = await openTenantStack(automation, stackNameFor(slug), { create: false });
    const locked = await queue.request({ organizationId, stackName, kind: "up", actor: "test" }).catch((error) => error);
    expect(locked).toBeInstanceOf(RunConflictError);

    expect(await recoverInterruptedRuns(database.db, automation)).toEqual([run!.id]);
    expect(await pulumiProcessesOf(stackName)).toEqual([]);
    const [interrupted] = await database.db.select().from(runs).where(eq(runs.id, run!.id));
    expect(interrupted!.status).toBe("interrupted");
    expect((await stack.info())?.result).not.toBe("in-progress");

    const next = await settled(await queue.request({ organizationId, stackName, kind: "up", actor: "test" }));
    expect(next.error).toBeNull();
    expect(next.status).toBe("succeeded");
    const all = await database.db.select().from(runs).where(eq(runs.stackName, stackName));
    expect(all).toHaveLength(4);

    const destroy = await settled(await queue.request({ organizationId, stackName, kind: "destroy", actor: "test" }));
    expect(destroy.status).toBe("succeeded");
  });

  it("queues a run behind the active one when asked, and runs them one after the other", async () => {
    const first = await queue.request({ organizationId, stackName, kind: "up", actor: "test" });
    const second = await queue.request({ organizationId, stackName, kind: "refresh", actor: "test" }, { queueBehindActive: true });
    const [up, refresh] = [await settled(first), await settled(second)];
    expect([up.status, refresh.status]).toEqual(["succeeded", "succeeded"]);
    expect(refresh.startedAt!.getTime()).toBeGreaterThanOrEqual(up.finishedAt!.getTime());
  });

  it("applies exactly an approved preview's saved plan, sealed in run_plans, and refuses the plan once the desired state changed", async () => {
    const approvedPlan = randomUUID();
    // Other processes (a server killed mid-run by another test file) may have left folders of their own: only this
    // test's must be gone.
    const before = new Set(await planTempFiles());
    const leftByThisTest = async () => (await planTempFiles()).filter((name) => !before.has(name));
    currentConfig = { ...config, agentVersion: "4.0.0" };
    const preview = await settled(await queue.request({ organizationId, stackName, kind: "preview", actor: "test", planRef: approvedPlan }));
    expect(preview.error).toBeNull();
    expect(preview.status).toBe("succeeded");
    const [row] = await database.db.select().from(runPlans).where(eq(runPlans.id, approvedPlan));
    expect(row).toMatchObject({ organizationId, previewRunId: preview.id, keyId: keyring.current.id });
    // Sealed: nothing of the plan in clear in the row; it opens only for this tenant and this plan id.
    expect(row!.planSealed).not.toContain("resourcePlans");
    expect(row!.planSealed).not.toContain(slug);
    const saved = JSON.stringify(decryptJson(row!.planSealed, { organizationId, provider: `run-plan:${approvedPlan}` }, keyring));
    expect(JSON.parse(saved)).toHaveProperty("resourcePlans");
    expect(saved).not.toContain(config.externalId);
    expect(saved).not.toContain(config.enrollmentToken);
    expect(() => decryptJson(row!.planSealed, { organizationId: organizationId + 1, provider: `run-plan:${approvedPlan}` }, keyring)).toThrow();
    // The CLI's temporary plan file is gone once the call returned.
    expect(await leftByThisTest()).toEqual([]);

    const applied = await settled(await queue.request({ organizationId, stackName, kind: "up", actor: "test", planRef: approvedPlan }));
    expect(applied.error).toBeNull();
    expect(applied.status).toBe("succeeded");
    expect(applied.changeSummary).toMatchObject({ update: expect.any(Number) });
    expect(await leftByThisTest()).toEqual([]);

    const stalePlan = randomUUID();
    currentConfig = { ...config, agentVersion: "5.0.0" };
    expect((await settled(await queue.request({ organizationId, stackName, kind: "preview", actor: "test", planRef: stalePlan }))).status).toBe(
      "succeeded",
    );
    currentConfig = { ...config, agentVersion: "6.0.0" }; // changed after approval
    const refused = await settled(await queue.request({ organizationId, stackName, kind: "up", actor: "test", planRef: stalePlan }));
    expect(refused.status).toBe("failed");
    expect(JSON.stringify(refused.error)).toMatch(/plan/i);

    // An up naming a plan that was never saved fails with that reason, before the engine runs.
    const missing = await settled(await queue.request({ organizationId, stackName, kind: "up", actor: "test", planRef: randomUUID() }));
    expect(missing.status).toBe("failed");
    expect(missing.error?.message).toMatch(/saved plan .* was not found/);

    currentConfig = config;
    expect((await settled(await queue.request({ organizationId, stackName, kind: "destroy", actor: "test" }))).status).toBe("succeeded");
  });
});
