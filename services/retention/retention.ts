/**
 * Retention: rows that only grow are pruned by a scheduled job on the shared pg-boss (one at a time over all
 * replicas), each table in batches of `batchSize` rows (one short transaction each), at most `maxBatches` batches per
 * table per job, so a backlog is worked off over several ticks without ever holding long locks.
 *
 * - idempotency_keys: older than `idempotencyKeyHours` (a retry after that is a new request). A claim that old is
 *   dead: a live one is taken over after minutes (api/idempotency.ts).
 * - run_events: the engine events of runs that finished more than `runEventDays` ago. Kept whatever their age: the
 *   events of a run not finished (queued, running: finished_at is null), of each tenant's last `keepRunsPerTenant`
 *   runs, and of each tenant's latest `up` (its progress counts resources from them). The run rows themselves are
 *   history and stay.
 * - webhook_deliveries (their attempts go with them): delivered or failed, created more than `webhookDeliveryDays`
 *   ago. Pending deliveries are never deleted.
 */
import type { PgBoss } from "pg-boss";
import { sql, type SQL } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";

export const RETENTION_QUEUE = "retention";

export interface RetentionPolicy {
  idempotencyKeyHours: number;
  runEventDays: number;
  keepRunsPerTenant: number;
  webhookDeliveryDays: number;
  batchSize: number;
  /** Per table and job: the rest waits for the next tick. */
  maxBatches: number;
}

export interface PruneResult {
  idempotencyKeys: number;
  runEvents: number;
  webhookDeliveries: number;
  /** Batches (delete statements) run, over all tables. */
  batches: number;
}

const HOUR_MS = 3_600_000;

/** Runs `deleteBatch` until it deletes fewer than a full batch or maxBatches ran; the rows deleted and the batches. */
async function inBatches(policy: RetentionPolicy, deleteBatch: () => Promise<number>): Promise<{ rows: number; batches: number }> {
  let rows = 0;
  let batches = 0;
  while (batches < policy.maxBatches) {
    const deleted = await deleteBatch();
    batches++;
    rows += deleted;
    if (deleted < policy.batchSize) break;
  }
  return { rows, batches };
}

const affected = (result: unknown) => (result as { count?: number }).count ?? 0;

export async function pruneExpired(db: DrizzleDatabase, policy: RetentionPolicy, now = new Date()): Promise<PruneResult> {
  const keysBefore = new Date(now.getTime() - policy.idempotencyKeyHours * HOUR_MS);
  const eventsBefore = new Date(now.getTime() - policy.runEventDays * 24 * HOUR_MS);
  const deliveriesBefore = new Date(now.getTime() - policy.webhookDeliveryDays * 24 * HOUR_MS);

  /** Deletes up to a batch of the rows of `table` that `candidates` selects (by their key columns). */
  const batch = (table: string, keyColumns: string[], candidates: SQL) => async () =>
    affected(
      await db.execute(sql`
        delete from ${sql.identifier(table)} t using (${candidates} limit ${policy.batchSize}) doomed
        where ${sql.join(
          keyColumns.map((column) => sql`t.${sql.identifier(column)} = doomed.${sql.identifier(column)}`),
          sql` and `,
        )}`),
    );

  const keys = await inBatches(
    policy,
    batch(
      "idempotency_keys",
      ["actor", "key"],
      sql`select actor, key from idempotency_keys where created_at < ${keysBefore.toISOString()}::timestamptz`,
    ),
  );

  const events = await inBatches(
    policy,
    batch(
      "run_events",
      ["run_id", "seq"],
      sql`
        select e.run_id, e.seq
        from run_events e
        join runs r on r.id = e.run_id
        where r.finished_at is not null
          and r.status not in ('queued', 'running')
          and r.finished_at < ${eventsBefore.toISOString()}::timestamptz
          and r.id not in (
            select id from (
              select id, row_number() over (partition by organization_id order by requested_at desc) as recent from runs
            ) ranked
            where recent <= ${policy.keepRunsPerTenant}
          )
          and r.id not in (select distinct on (organization_id) id from runs where kind = 'up' order by organization_id, requested_at desc)`,
    ),
  );

  const deliveries = await inBatches(
    policy,
    batch(
      "webhook_deliveries",
      ["id"],
      sql`select id from webhook_deliveries where status in ('delivered', 'failed') and created_at < ${deliveriesBefore.toISOString()}::timestamptz`,
    ),
  );

  return {
    idempotencyKeys: keys.rows,
    runEvents: events.rows,
    webhookDeliveries: deliveries.rows,
    batches: keys.batches + events.batches + deliveries.batches,
  };
}

/** The scheduled job: `schedule` (cron, UTC) on every replica; only workers (`work`) prune. */
export async function startRetention(
  boss: PgBoss,
  deps: { db: DrizzleDatabase; log?(message: string): void },
  options: { schedule: string; policy: RetentionPolicy; work: boolean },
): Promise<{ runNow(): Promise<void> }> {
  await boss.createQueue(RETENTION_QUEUE, { policy: "singleton", retryLimit: 0 });
  await boss.schedule(RETENTION_QUEUE, options.schedule, {}, { tz: "UTC" });
  if (options.work) {
    await boss.work(RETENTION_QUEUE, { batchSize: 1, pollingIntervalSeconds: 5 }, async () => {
      const pruned = await pruneExpired(deps.db, options.policy);
      if (pruned.idempotencyKeys + pruned.runEvents + pruned.webhookDeliveries > 0) {
        deps.log?.(
          `retention: deleted ${pruned.idempotencyKeys} idempotency key(s), ${pruned.runEvents} run event(s), ${pruned.webhookDeliveries} webhook deliveries in ${pruned.batches} batch(es)`,
        );
      }
    });
  }
  return {
    async runNow() {
      await boss.send(RETENTION_QUEUE, {});
    },
  };
}
