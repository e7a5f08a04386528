/**
 * Delivering webhooks: every delivery is a row; every attempt is a pg-boss job and a webhook_delivery_attempts row.
 * A sweeper (each replica, every second) hands due deliveries without a job to the queue (singleton per delivery and
 * attempt, so two replicas cannot send the same attempt twice); the worker POSTs the signed JSON once, records the
 * attempt, and either marks the delivery delivered, schedules the next attempt with backoff, or gives up after
 * maxAttempts. A restart loses nothing: queued jobs and pending rows are in PostgreSQL.
 */
import type { PgBoss } from "pg-boss";
import { and, eq, isNull, lte, lt, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { decryptJson, type Keyring } from "../../db/crypto";
import { webhookDeliveries, webhookDeliveryAttempts, webhooks } from "../../db/schema";
import { retryDelaySeconds, SIGNATURE_HEADER, signatureHeader } from "./webhook-signature-fns";
import { webhookSecretContext } from "./webhook-service";

export const WEBHOOK_QUEUE = "webhook-deliveries";

export interface WebhookDeliveryDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  log?(message: string): void;
}

export interface WebhookDeliveryOptions {
  work: boolean;
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to maxDelaySeconds. */
  baseDelaySeconds?: number;
  maxDelaySeconds?: number;
  timeoutMs?: number;
  sweepMs?: number;
}

export interface WebhookDispatcher {
  /** Hands due deliveries to the queue now (the sweeper does it every second anyway). */
  sweep(): Promise<number>;
  stop(): Promise<void>;
}

export async function startWebhookDispatcher(boss: PgBoss, deps: WebhookDeliveryDeps, options: WebhookDeliveryOptions): Promise<WebhookDispatcher> {
  const { db } = deps;
  const maxAttempts = options.maxAttempts ?? 10;
  const log = deps.log ?? (() => undefined);
  await boss.createQueue(WEBHOOK_QUEUE, { retryLimit: 0, expireInSeconds: 120 });

  async function sweep(): Promise<number> {
    // A job lost with its process (killed mid-attempt) leaves job_id set: give it back after two minutes.
    await db
      .update(webhookDeliveries)
      .set({ jobId: null })
      .where(and(eq(webhookDeliveries.status, "pending"), lt(webhookDeliveries.nextAttemptAt, sql`now() - interval '2 minutes'`)));
    const due = await db
      .select({ id: webhookDeliveries.id, attempts: webhookDeliveries.attempts, nextAttemptAt: webhookDeliveries.nextAttemptAt })
      .from(webhookDeliveries)
      .where(and(eq(webhookDeliveries.status, "pending"), isNull(webhookDeliveries.jobId), lte(webhookDeliveries.nextAttemptAt, sql`now() + interval '1 minute'`)))
      .limit(100);
    let sent = 0;
    for (const delivery of due) {
      const jobId = await boss.send(
        WEBHOOK_QUEUE,
        { deliveryId: delivery.id },
        { singletonKey: `${delivery.id}:${delivery.attempts}`, startAfter: delivery.nextAttemptAt, retryLimit: 0 },
      );
      if (!jobId) continue;
      await db
        .update(webhookDeliveries)
        .set({ jobId })
        .where(and(eq(webhookDeliveries.id, delivery.id), isNull(webhookDeliveries.jobId), eq(webhookDeliveries.attempts, delivery.attempts)));
      sent++;
    }
    return sent;
  }

  async function attempt(deliveryId: string): Promise<void> {
    const [row] = await db
      .select({ delivery: webhookDeliveries, webhook: webhooks })
      .from(webhookDeliveries)
      .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
      .where(eq(webhookDeliveries.id, deliveryId));
    if (!row || row.delivery.status !== "pending") return;
    const { delivery, webhook } = row;
    const number = delivery.attempts + 1;
    const started = Date.now();
    let statusCode: number | null = null;
    let error: string | null = null;
    if (webhook.deletedAt) {
      error = "the webhook was deleted";
    } else {
      const secret = decryptJson<string>(webhook.secretSealed, webhookSecretContext(webhook.organizationId), deps.keyring);
      const body = JSON.stringify(delivery.payload);
      const timestamp = Math.floor(Date.now() / 1000);
      try {
        const response = await fetch(webhook.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "mini-xdr-webhooks/1",
            [SIGNATURE_HEADER]: signatureHeader(secret, timestamp, body),
            "X-MiniXdr-Event": delivery.event,
            "X-MiniXdr-Delivery": delivery.id,
          },
          body,
          redirect: "manual",
          signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
        });
        statusCode = response.status;
        await response.body?.cancel().catch(() => undefined);
        if (statusCode < 200 || statusCode >= 300) error = `the receiver answered ${statusCode}`;
      } catch (cause) {
        error = cause instanceof Error ? `${cause.name}: ${(cause.cause as Error | undefined)?.message ?? cause.message}` : String(cause);
      }
    }
    const delivered = error === null;
    const giveUp = !delivered && (number >= maxAttempts || webhook.deletedAt !== null);
    const next = new Date(Date.now() + retryDelaySeconds(number, options.baseDelaySeconds, options.maxDelaySeconds) * 1000);
    await db.transaction(async (tx) => {
      await tx.insert(webhookDeliveryAttempts).values({ deliveryId, attempt: number, statusCode, error, durationMs: Date.now() - started });
      await tx
        .update(webhookDeliveries)
        .set({
          attempts: number,
          status: delivered ? "delivered" : giveUp ? "failed" : "pending",
          deliveredAt: delivered ? new Date() : null,
          nextAttemptAt: delivered || giveUp ? delivery.nextAttemptAt : next,
          jobId: null,
        })
        .where(eq(webhookDeliveries.id, deliveryId));
    });
    if (!delivered) log(`webhook ${webhook.id}: delivery ${deliveryId} attempt ${number} failed (${error})${giveUp ? "; giving up" : ""}`);
  }

  let timer: NodeJS.Timeout | undefined;
  let sweeping = false;
  if (options.work) {
    await boss.work<{ deliveryId: string }>(WEBHOOK_QUEUE, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => {
      if (job) await attempt(job.data.deliveryId);
    });
    timer = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      sweep()
        .catch((error: unknown) => log(`webhooks: sweep failed: ${error instanceof Error ? error.message : String(error)}`))
        .finally(() => (sweeping = false));
    }, options.sweepMs ?? 1000);
    timer.unref();
  }
  return {
    sweep,
    async stop() {
      if (timer) clearInterval(timer);
    },
  };
}
