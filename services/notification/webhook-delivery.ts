/**
 * Delivering webhooks: every delivery is a row; every attempt is a pg-boss job and a webhook_delivery_attempts row.
 * A sweeper (each replica, every second) hands due deliveries without a job to the queue (singleton per delivery and
 * attempt, so two replicas cannot send the same attempt twice); the worker POSTs the signed JSON once, records the
 * attempt, and either marks the delivery delivered, schedules the next attempt with backoff, or gives up after
 * maxAttempts. A restart loses nothing: queued jobs and pending rows are in PostgreSQL.
 *
 * Attempts run concurrently (`concurrency` per replica), at most `perHostConcurrency` per host:port across replicas
 * (each job's pg-boss group is its host) and `perTenantConcurrency` per tenant in a replica (a delivery over it is
 * handed back for a second later, freeing the worker), so receivers that never answer hold only their own tenant's
 * and host's slots and another tenant's delivery goes out meanwhile. Every attempt resolves the host again, checks every address and
 * pins the connection to them (webhook-transport.ts). The attempt log keeps an error class; the text goes to the log.
 */
import type { PgBoss } from "pg-boss";
import { and, asc, eq, isNull, lte, lt, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { decryptJson, type Keyring } from "../../db/crypto";
import { webhookDeliveries, webhookDeliveryAttempts, webhooks } from "../../db/schema";
import { deliveryErrorClass, httpStatusClass, parseWebhookUrl, type WebhookErrorClass } from "./webhook-address-fns";
import { retryDelaySeconds, SIGNATURE_HEADER, signatureHeader } from "./webhook-signature-fns";
import { webhookSecretContext } from "./webhook-service";
import { DeliveryFailure, postPinned, resolveTarget, systemLookup, type AddressClassifier, type HostLookup } from "./webhook-transport";

export const WEBHOOK_QUEUE = "webhook-deliveries";
/** How long a delivery whose owner has every slot taken waits before it is queued again. */
const DEFER_MS = 1_000;

export interface WebhookDeliveryDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  log?(message: string): void;
  /** Resolves webhook hosts (default: the system resolver); asked once per attempt. */
  lookup?: HostLookup;
  /** Classifies addresses (default: classifyAddress); tests stand in a public internet on loopback with it. */
  classify?: AddressClassifier;
  /** Extra CAs (PEM) trusted for https receivers besides the system's. */
  ca?: string[];
}

export interface WebhookDeliveryOptions {
  work: boolean;
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to maxDelaySeconds. */
  baseDelaySeconds?: number;
  maxDelaySeconds?: number;
  timeoutMs?: number;
  connectTimeoutMs?: number;
  sweepMs?: number;
  /** Platform webhooks (no tenant) may reach loopback, also over plain http (WEBHOOK_PLATFORM_ALLOW_LOOPBACK). */
  platformLoopback?: boolean;
  /** Attempts in flight in this replica. */
  concurrency?: number;
  /** Attempts in flight per host:port, over every replica. */
  perHostConcurrency?: number;
  /** Attempts in flight per tenant (platform webhooks count as one owner) in this replica; more wait their turn. */
  perTenantConcurrency?: number;
}

export interface WebhookDispatcher {
  /** Hands due deliveries to the queue now (the sweeper does it every second anyway). */
  sweep(): Promise<number>;
  stop(): Promise<void>;
}

/** The pg-boss group of a delivery's jobs: its webhook's host:port (an unparsable URL gets a group of its own). */
function hostGroup(url: string): string {
  const parsed = parseWebhookUrl(url);
  return "target" in parsed ? parsed.target.hostKey : `invalid:${url.slice(0, 200)}`;
}

export async function startWebhookDispatcher(boss: PgBoss, deps: WebhookDeliveryDeps, options: WebhookDeliveryOptions): Promise<WebhookDispatcher> {
  const { db } = deps;
  const maxAttempts = options.maxAttempts ?? 10;
  const log = deps.log ?? (() => undefined);
  const lookup = deps.lookup ?? systemLookup();
  await boss.createQueue(WEBHOOK_QUEUE, { retryLimit: 0, expireInSeconds: 120 });

  async function sweep(): Promise<number> {
    // A job lost with its process (killed mid-attempt) leaves job_id set: give it back after two minutes.
    await db
      .update(webhookDeliveries)
      .set({ jobId: null })
      .where(and(eq(webhookDeliveries.status, "pending"), lt(webhookDeliveries.nextAttemptAt, sql`now() - interval '2 minutes'`)));
    const due = await db
      .select({ id: webhookDeliveries.id, attempts: webhookDeliveries.attempts, nextAttemptAt: webhookDeliveries.nextAttemptAt, url: webhooks.url })
      .from(webhookDeliveries)
      .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
      .where(
        and(
          eq(webhookDeliveries.status, "pending"),
          isNull(webhookDeliveries.jobId),
          lte(webhookDeliveries.nextAttemptAt, sql`now() + interval '1 minute'`),
        ),
      )
      .orderBy(asc(webhookDeliveries.nextAttemptAt))
      .limit(100);
    let sent = 0;
    for (const delivery of due) {
      const jobId = await boss.send(
        WEBHOOK_QUEUE,
        { deliveryId: delivery.id },
        {
          singletonKey: `${delivery.id}:${delivery.attempts}`,
          startAfter: delivery.nextAttemptAt,
          retryLimit: 0,
          group: { id: hostGroup(delivery.url) },
        },
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

  /** One POST: parse, resolve and check every address, then connect pinned to them. Answers the status code. */
  async function send(webhook: typeof webhooks.$inferSelect, delivery: typeof webhookDeliveries.$inferSelect): Promise<number> {
    const parsed = parseWebhookUrl(webhook.url);
    if (!("target" in parsed)) throw new DeliveryFailure("address_refused", `url ${parsed.problem}`);
    const policy = { platform: webhook.organizationId === null, platformLoopback: options.platformLoopback ?? false };
    const resolved = await resolveTarget(parsed.target, policy, lookup, deps.classify);
    if (!resolved.ok) throw new DeliveryFailure(resolved.reason === "dns" ? "dns_error" : "address_refused", resolved.detail);
    const secret = decryptJson<string>(webhook.secretSealed, webhookSecretContext(webhook.organizationId), deps.keyring);
    const body = JSON.stringify(delivery.payload);
    const timestamp = Math.floor(Date.now() / 1000);
    return postPinned(parsed.target, resolved.addresses, {
      headers: {
        "content-type": "application/json",
        "user-agent": "mini-xdr-webhooks/1",
        [SIGNATURE_HEADER]: signatureHeader(secret, timestamp, body),
        "X-MiniXdr-Event": delivery.event,
        "X-MiniXdr-Delivery": delivery.id,
      },
      body,
      timeoutMs: options.timeoutMs ?? 10_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      ca: deps.ca,
    });
  }

  /** Attempts in flight in this replica, per owner (a tenant, or "platform"). */
  const inFlight = new Map<string, number>();
  const perTenant = options.perTenantConcurrency ?? 2;

  async function attempt(deliveryId: string): Promise<void> {
    const [row] = await db
      .select({ delivery: webhookDeliveries, webhook: webhooks })
      .from(webhookDeliveries)
      .innerJoin(webhooks, eq(webhooks.id, webhookDeliveries.webhookId))
      .where(eq(webhookDeliveries.id, deliveryId));
    if (row?.delivery.status !== "pending") return;
    const { delivery, webhook } = row;
    const owner = webhook.organizationId === null ? "platform" : `tenant:${webhook.organizationId}`;
    const busy = inFlight.get(owner) ?? 0;
    if (busy >= perTenant && !webhook.deletedAt) {
      // The owner's slots are taken: hand the delivery back for a little later (not an attempt), freeing this worker.
      await db
        .update(webhookDeliveries)
        .set({ jobId: null, nextAttemptAt: new Date(Date.now() + DEFER_MS) })
        .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.attempts, delivery.attempts), eq(webhookDeliveries.status, "pending")));
      return;
    }
    inFlight.set(owner, busy + 1);
    try {
      await attemptOnce(delivery, webhook);
    } finally {
      const left = (inFlight.get(owner) ?? 1) - 1;
      if (left === 0) inFlight.delete(owner);
      else inFlight.set(owner, left);
    }
  }

  async function attemptOnce(delivery: typeof webhookDeliveries.$inferSelect, webhook: typeof webhooks.$inferSelect): Promise<void> {
    const deliveryId = delivery.id;
    const number = delivery.attempts + 1;
    const started = Date.now();
    let statusCode: number | null = null;
    let error: WebhookErrorClass | null = null;
    let detail = "";
    if (webhook.deletedAt) {
      error = "webhook_deleted";
    } else {
      try {
        statusCode = await send(webhook, delivery);
        error = httpStatusClass(statusCode) ?? null;
        if (error) detail = `the receiver answered ${statusCode}`;
      } catch (cause) {
        error = deliveryErrorClass(cause);
        detail = describe(cause);
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
    if (!delivered) {
      // The host, never the URL: its path or query may hold the receiver's own secret.
      log(
        `webhook ${webhook.id} (${hostGroup(webhook.url)}): delivery ${deliveryId} attempt ${number} failed: ${error}: ${detail}${giveUp ? "; giving up" : ""}`,
      );
    }
  }

  let timer: NodeJS.Timeout | undefined;
  let sweeping = false;
  if (options.work) {
    await boss.work<{ deliveryId: string }>(
      WEBHOOK_QUEUE,
      { batchSize: 1, pollingIntervalSeconds: 1, localConcurrency: options.concurrency ?? 8, groupConcurrency: options.perHostConcurrency ?? 2 },
      async ([job]) => {
        if (job) await attempt(job.data.deliveryId);
      },
    );
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

/** An error's code and message for the server log (the code of its cause too: fetch-style errors wrap them). */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as NodeJS.ErrnoException).code;
  const cause = error.cause instanceof Error ? ` (cause: ${describe(error.cause)})` : "";
  return `${error.name}${code ? ` ${code}` : ""}: ${error.message}${cause}`;
}
