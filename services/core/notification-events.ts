/**
 * Emitting an event: one webhook_deliveries row per subscribed webhook (the tenant's own and the platform-wide ones),
 * written where the event happens. Delivery is the dispatcher's job (webhook-delivery.ts); rows outlive restarts.
 */
import { and, eq, isNull, or } from "drizzle-orm";
import { randomUUID } from "node:crypto";
import type { DrizzleDatabase } from "../../db/client";
import { organizations, webhookDeliveries, webhooks, type Run, type WebhookEvent } from "../../db/schema";

export interface NotificationEvent {
  type: WebhookEvent;
  /** The tenant the event is about; null for platform events (fleet runs). */
  organizationId: number | null;
  data: Record<string, unknown>;
}

export interface EventPayload {
  id: string;
  type: WebhookEvent;
  created_at: string;
  tenant: string | null;
  data: Record<string, unknown>;
}

/** Records a delivery for every webhook subscribed to the event; returns how many. Never throws for a missing tenant. */
export async function emitNotification(db: DrizzleDatabase, event: NotificationEvent, now = new Date()): Promise<number> {
  const [org] =
    event.organizationId === null
      ? [undefined]
      : await db.select({ slug: organizations.slug }).from(organizations).where(eq(organizations.id, event.organizationId));
  const subscribers = await db
    .select({ id: webhooks.id, events: webhooks.events })
    .from(webhooks)
    .where(
      and(
        isNull(webhooks.deletedAt),
        event.organizationId === null
          ? isNull(webhooks.organizationId)
          : or(isNull(webhooks.organizationId), eq(webhooks.organizationId, event.organizationId)),
      ),
    );
  const targets = subscribers.filter((webhook) => webhook.events.includes(event.type));
  if (targets.length === 0) return 0;
  const payload: EventPayload = { id: randomUUID(), type: event.type, created_at: now.toISOString(), tenant: org?.slug ?? null, data: event.data };
  await db.insert(webhookDeliveries).values(
    targets.map((webhook) => ({
      webhookId: webhook.id,
      event: event.type,
      payload: payload as unknown as Record<string, unknown>,
      nextAttemptAt: now,
    })),
  );
  return targets.length;
}

/** run.succeeded / run.failed for every finished stack run, to the tenant's and the platform-wide webhooks. */
export async function notifyRunFinished(db: DrizzleDatabase, run: Run): Promise<void> {
  if (run.status !== "succeeded" && run.status !== "failed") return;
  await emitNotification(db, {
    type: run.status === "succeeded" ? "run.succeeded" : "run.failed",
    organizationId: run.organizationId,
    data: {
      run_id: run.id,
      kind: run.kind,
      status: run.status,
      change_summary: run.changeSummary ?? null,
      error: run.error ? { message: run.error.message, kind: run.error.kind ?? null } : null,
      fleet_run_id: run.fleetRunId,
      remediates_run_id: run.remediatesRunId,
    },
  });
}
