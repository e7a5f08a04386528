/**
 * Webhooks as a domain: a tenant's (its admins and platform admins manage them) or platform-wide (platform admins);
 * the signing secret is generated here, shown once, and stored sealed with the credentials keyring.
 */
import { and, asc, desc, eq, inArray, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { encryptJson, generateToken, type CredentialContext, type Keyring } from "../../db/crypto";
import {
  organizations,
  webhookDeliveries,
  webhookDeliveryAttempts,
  webhooks,
  type Organization,
  type Webhook,
  type WebhookDelivery,
  type WebhookDeliveryAttempt,
  type WebhookEvent,
} from "../../db/schema";
import { NotFoundError, UnprocessableError } from "../../lib/errors";
import { recordAudit } from "../tenant/audit-store";
import { isAdmin, requireAdmin, type Principal } from "../tenant/principal";
import { webhookUrlProblem } from "./webhook-signature-fns";

export interface WebhookServiceDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  /** Allow http:// webhook URLs on loopback (tests, local receivers). */
  allowHttpLoopback: boolean;
}

/** The sealed secret is bound to its owner: a platform-wide webhook's to "platform". */
export function webhookSecretContext(organizationId: number | null): CredentialContext {
  return { organizationId: organizationId ?? "platform", provider: "webhook" };
}

export interface CreateWebhookInput {
  url: string;
  events: WebhookEvent[];
}

export interface DeliveryWithAttempts extends WebhookDelivery {
  attemptLog: WebhookDeliveryAttempt[];
}

export function createWebhookService(deps: WebhookServiceDeps) {
  const { db } = deps;

  async function visibleWebhook(principal: Principal, id: string): Promise<Webhook> {
    const [webhook] = await db.select().from(webhooks).where(and(eq(webhooks.id, id), isNull(webhooks.deletedAt)));
    const visible = webhook && (isAdmin(principal) || (webhook.organizationId !== null && webhook.organizationId === principal.organizationId));
    if (!visible) throw new NotFoundError(`webhook ${id} not found`);
    return webhook;
  }

  return {
    /** `org` undefined: platform-wide (platform admin). Answers the webhook and its secret (shown only here). */
    async create(principal: Principal, org: Organization | undefined, input: CreateWebhookInput): Promise<{ webhook: Webhook; secret: string }> {
      if (!org) requireAdmin(principal);
      const problem = webhookUrlProblem(input.url, deps.allowHttpLoopback);
      // The API's schema refuses a URL of the wrong form (400); what is left is this service's settings (422).
      if (problem) throw new UnprocessableError(problem, { code: "webhook_url_not_allowed", fields: [{ field: "url", message: problem }] });
      const secret = generateToken("whsec");
      const organizationId = org?.id ?? null;
      const sealed = encryptJson(secret, webhookSecretContext(organizationId), deps.keyring);
      const [webhook] = await db
        .insert(webhooks)
        .values({ organizationId, url: input.url, events: [...new Set(input.events)], secretSealed: sealed.envelope, encryptionKeyId: sealed.keyId, actor: principal.actor })
        .returning();
      await recordAudit(db, principal, { action: "webhook.create", organizationId, target: `webhook:${webhook!.id}`, details: { events: input.events } });
      return { webhook: webhook!, secret };
    },

    async list(principal: Principal, org: Organization | undefined): Promise<Webhook[]> {
      if (!org) requireAdmin(principal);
      return db
        .select()
        .from(webhooks)
        .where(and(isNull(webhooks.deletedAt), org ? eq(webhooks.organizationId, org.id) : isNull(webhooks.organizationId)))
        .orderBy(asc(webhooks.createdAt));
    },

    /** Deletes the webhook (kept as a row for its delivery log); its pending deliveries give up at their next attempt. */
    async remove(principal: Principal, org: Organization | undefined, id: string): Promise<void> {
      const webhook = await visibleWebhook(principal, id);
      if ((org?.id ?? null) !== webhook.organizationId) throw new NotFoundError(`webhook ${id} not found`);
      await db.update(webhooks).set({ deletedAt: new Date() }).where(eq(webhooks.id, id));
      await recordAudit(db, principal, { action: "webhook.delete", organizationId: webhook.organizationId, target: `webhook:${id}` });
    },

    /** The webhook's deliveries, newest first, each with every attempt. */
    async deliveries(
      principal: Principal,
      id: string,
      limit: number,
    ): Promise<{ webhook: Webhook; tenantSlug: string | null; deliveries: DeliveryWithAttempts[] }> {
      const [webhook] = await db.select().from(webhooks).where(eq(webhooks.id, id));
      const visible = webhook && (isAdmin(principal) || (webhook.organizationId !== null && webhook.organizationId === principal.organizationId));
      if (!visible) throw new NotFoundError(`webhook ${id} not found`);
      const rows = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.webhookId, id)).orderBy(desc(webhookDeliveries.createdAt)).limit(limit);
      const attempts =
        rows.length === 0
          ? []
          : await db
              .select()
              .from(webhookDeliveryAttempts)
              .where(inArray(webhookDeliveryAttempts.deliveryId, rows.map((row) => row.id)))
              .orderBy(asc(webhookDeliveryAttempts.attempt));
      const [org] = webhook.organizationId === null ? [] : await db.select({ slug: organizations.slug }).from(organizations).where(eq(organizations.id, webhook.organizationId));
      return { webhook, tenantSlug: org?.slug ?? null, deliveries: rows.map((row) => ({ ...row, attemptLog: attempts.filter((attempt) => attempt.deliveryId === row.id) })) };
    },
  };
}

export type WebhookService = ReturnType<typeof createWebhookService>;
