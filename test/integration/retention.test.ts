/**
 * The retention job on real PostgreSQL: expired idempotency keys, events of long-finished runs and finished webhook
 * deliveries are deleted in batches; recent rows, the events of runs not finished, of each tenant's last runs and of
 * its latest up, and pending deliveries are kept. Once by calling it, once through its pg-boss queue.
 */
import { randomBytes } from "node:crypto";
import { eq, inArray, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { idempotencyKeys, organizations, runEvents, runs, webhookDeliveries, webhooks, type RunKind, type RunStatus } from "../../db/schema";
import { startBoss } from "../../db/boss";
import { pruneExpired, startRetention, type RetentionPolicy } from "../../services/retention/retention";
import { realPostgres } from "../harness/databases";
import { waitFor } from "../harness/wait-for";

const DAY_MS = 86_400_000;
const NOW = new Date();
const daysAgo = (days: number) => new Date(NOW.getTime() - days * DAY_MS);
const EVENTS_PER_RUN = 5;

const policy: RetentionPolicy = {
  idempotencyKeyHours: 24,
  runEventDays: 30,
  keepRunsPerTenant: 2,
  webhookDeliveryDays: 30,
  batchSize: 3,
  maxBatches: 1000,
};

let database: Database;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
});

afterAll(async () => {
  await cleanup?.();
});

/** A tenant with runs (oldest first) of the given kind, status and age, each with EVENTS_PER_RUN events. */
async function tenantWithRuns(specs: { kind: RunKind; status: RunStatus; daysAgo: number }[]): Promise<string[]> {
  const { db } = database;
  const [org] = await db
    .insert(organizations)
    .values({ slug: `ret-${randomBytes(3).toString("hex")}`, name: "Retention" })
    .returning();
  const ids: string[] = [];
  for (const spec of specs) {
    const finished = spec.status === "queued" || spec.status === "running" ? null : daysAgo(spec.daysAgo);
    const [run] = await db
      .insert(runs)
      .values({
        organizationId: org!.id,
        stackName: `tenant-${org!.slug}`,
        kind: spec.kind,
        status: spec.status,
        actor: "test",
        requestedAt: daysAgo(spec.daysAgo + 0.01),
        finishedAt: finished,
      })
      .returning({ id: runs.id });
    await db.insert(runEvents).values(Array.from({ length: EVENTS_PER_RUN }, (_, seq) => ({ runId: run!.id, seq, event: { seq } })));
    ids.push(run!.id);
  }
  return ids;
}

async function eventCounts(runIds: string[]): Promise<number[]> {
  const rows = await database.db
    .select({ runId: runEvents.runId, count: sql<number>`count(*)::int` })
    .from(runEvents)
    .where(inArray(runEvents.runId, runIds))
    .groupBy(runEvents.runId);
  const byRun = new Map(rows.map((row) => [row.runId, row.count]));
  return runIds.map((id) => byRun.get(id) ?? 0);
}

async function seedKeysAndDeliveries() {
  const { db } = database;
  const actor = `token:${randomBytes(3).toString("hex")}`;
  const key = (name: string, hoursAgo: number) => ({
    actor,
    key: name,
    method: "POST",
    path: "/v1/tenants",
    requestHash: "x",
    createdAt: new Date(NOW.getTime() - hoursAgo * 3_600_000),
  });
  await db.insert(idempotencyKeys).values([key("old-1", 48), key("old-2", 30), key("old-3", 25), key("old-4", 100), key("fresh", 1)]);
  const [hook] = await db
    .insert(webhooks)
    .values({ url: "https://hooks.example.com/x", events: ["run.succeeded"], secretSealed: "v1:x", encryptionKeyId: "k", actor })
    .returning({ id: webhooks.id });
  const delivery = (status: "pending" | "delivered" | "failed", days: number) => ({
    webhookId: hook!.id,
    event: "run.succeeded" as const,
    payload: {},
    status,
    createdAt: daysAgo(days),
  });
  const rows = await db
    .insert(webhookDeliveries)
    .values([delivery("delivered", 40), delivery("failed", 35), delivery("delivered", 31), delivery("pending", 60), delivery("delivered", 2)])
    .returning({ id: webhookDeliveries.id, status: webhookDeliveries.status, createdAt: webhookDeliveries.createdAt });
  return { actor, webhookId: hook!.id, deliveries: rows };
}

describe("retention", () => {
  it("deletes expired rows in bounded batches and keeps recent ones, unfinished runs' events, the last runs' and the latest up's", async () => {
    // Oldest first: an old up (not the latest up), the latest up (old too), an old preview still running, an old
    // queued refresh, old finished previews, then the two most recent runs (old as well).
    const runIds = await tenantWithRuns([
      { kind: "up", status: "succeeded", daysAgo: 90 },
      { kind: "preview", status: "succeeded", daysAgo: 80 },
      { kind: "up", status: "failed", daysAgo: 70 },
      { kind: "preview", status: "running", daysAgo: 65 },
      { kind: "refresh", status: "queued", daysAgo: 64 },
      { kind: "preview", status: "failed", daysAgo: 60 },
      { kind: "preview", status: "succeeded", daysAgo: 50 },
      { kind: "drift", status: "succeeded", daysAgo: 45 },
      { kind: "preview", status: "succeeded", daysAgo: 40 },
    ]);
    const recent = await tenantWithRuns([
      { kind: "preview", status: "succeeded", daysAgo: 3 },
      { kind: "preview", status: "succeeded", daysAgo: 2 },
      { kind: "preview", status: "succeeded", daysAgo: 1 },
    ]);
    const seeded = await seedKeysAndDeliveries();

    const result = await pruneExpired(database.db, policy, NOW);

    // Deleted: the events of the first up, two old previews and the older failed preview (the last two runs, the
    // latest up, the running and the queued run keep theirs).
    expect(await eventCounts(runIds)).toEqual([0, 0, EVENTS_PER_RUN, EVENTS_PER_RUN, EVENTS_PER_RUN, 0, 0, EVENTS_PER_RUN, EVENTS_PER_RUN]);
    expect(await eventCounts(recent)).toEqual([EVENTS_PER_RUN, EVENTS_PER_RUN, EVENTS_PER_RUN]);
    expect(result.runEvents).toBe(4 * EVENTS_PER_RUN);
    // The runs themselves are history: all still there.
    expect(await database.db.select({ id: runs.id }).from(runs).where(inArray(runs.id, runIds))).toHaveLength(runIds.length);

    const keys = await database.db.select({ key: idempotencyKeys.key }).from(idempotencyKeys).where(eq(idempotencyKeys.actor, seeded.actor));
    expect(keys.map((row) => row.key)).toEqual(["fresh"]);
    expect(result.idempotencyKeys).toBe(4);

    const deliveries = await database.db
      .select({ status: webhookDeliveries.status })
      .from(webhookDeliveries)
      .where(eq(webhookDeliveries.webhookId, seeded.webhookId));
    expect(deliveries.map((row) => row.status).sort()).toEqual(["delivered", "pending"]);
    expect(result.webhookDeliveries).toBe(3);

    // Batches of 3 rows: 20 events take 7 batches, 4 keys 2, 3 deliveries 2 (the last one finds nothing left).
    expect(result.batches).toBe(7 + 2 + 2);
    // Nothing left to do: a second pass deletes nothing.
    expect(await pruneExpired(database.db, policy, NOW)).toMatchObject({ idempotencyKeys: 0, runEvents: 0, webhookDeliveries: 0 });
  });

  it("stops after maxBatches per table and leaves the rest for the next tick", async () => {
    const runIds = await tenantWithRuns([
      { kind: "preview", status: "succeeded", daysAgo: 90 },
      { kind: "preview", status: "succeeded", daysAgo: 89 },
      { kind: "up", status: "succeeded", daysAgo: 1 },
      { kind: "preview", status: "succeeded", daysAgo: 1 },
    ]);
    const tight = { ...policy, keepRunsPerTenant: 1, batchSize: 2, maxBatches: 2 };
    const bounded = await pruneExpired(database.db, tight, NOW);
    expect(bounded.runEvents).toBe(4);
    expect(bounded.batches).toBe(2 + 1 + 1);
    // The next ticks work off the rest.
    let ticks = 1;
    while ((await pruneExpired(database.db, tight, NOW)).runEvents > 0) ticks++;
    expect(ticks).toBeGreaterThan(1);
    expect(await eventCounts(runIds)).toEqual([0, 0, EVENTS_PER_RUN, EVENTS_PER_RUN]);
  });

  it("runs as a scheduled pg-boss job", async () => {
    const runIds = await tenantWithRuns([
      { kind: "preview", status: "succeeded", daysAgo: 90 },
      { kind: "up", status: "succeeded", daysAgo: 1 },
    ]);
    const boss = await startBoss(database.connectionString, () => undefined);
    try {
      const retention = await startRetention(
        boss,
        { db: database.db },
        { schedule: "17 * * * *", policy: { ...policy, keepRunsPerTenant: 1 }, work: true },
      );
      const schedules = await boss.getSchedules();
      expect(schedules.map((schedule) => schedule.name)).toContain("retention");
      await retention.runNow();
      await waitFor("the retention job", async () => (await eventCounts(runIds))[0] === 0, { timeoutMs: 30_000 });
      expect(await eventCounts(runIds)).toEqual([0, EVENTS_PER_RUN]);
    } finally {
      await boss.stop({ graceful: false, timeout: 1000 });
    }
  });
});
