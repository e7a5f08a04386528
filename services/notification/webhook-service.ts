/**
 * Webhooks as a domain: a tenant's (its admins and platform admins manage them) or platform-wide (platform admins);
 * the signing secret is generated here, shown once, and stored sealed with the credentials keyring.
 */
import { and, asc, count, desc, eq, inArray, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { encryptJson, generateToken, type Keyring } from "../../db/crypto";
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
import { ConflictError, NotFoundError, UnprocessableError } from "../../lib/errors";
import { recordAudit } from "../core/audit-store";
import { isAdmin, type Principal, requireAdmin, requireTenantAdmin } from "../core/principal";
import { webhookSecretContext } from "../core/sealed-contexts";
import { parseWebhookUrl } from "./webhook-address-fns";
import { resolveTarget, systemLookup, type AddressClassifier, type HostLookup } from "./webhook-transport";

// Defined in services/core (key rotation needs it too); still exported here, where webhook code and tests import it.
export { webhookSecretContext };

export interface WebhookSettings {
  /** Platform webhooks (no tenant) may target loopback, also over plain http (WEBHOOK_PLATFORM_ALLOW_LOOPBACK). */
  platformLoopback: boolean;
  /** Live webhooks a tenant may have (WEBHOOK_MAX_PER_TENANT). */
  maxPerTenant: number;
}

export interface WebhookServiceDeps extends WebhookSettings {
  db: DrizzleDatabase;
  keyring: Keyring;
  lookup?: HostLookup;
  classify?: AddressClassifier;
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
  const lookup = deps.lookup ?? systemLookup();

  /** Refuses a URL whose host is, or resolves only to, addresses this webhook may not reach (checked again at each delivery). */
  async function checkUrl(url: string, platform: boolean): Promise<void> {
    const parsed = parseWebhookUrl(url);
    // The API's schema refuses a URL of the wrong form (400); what is left depends on where it leads and on this
    // service's settings (422).
    const refuse = (message: string) => new UnprocessableError(message, { code: "webhook_url_not_allowed", fields: [{ field: "url", message }] });
    if (!("target" in parsed)) throw refuse(parsed.problem);
    const resolved = await resolveTarget(parsed.target, { platform, platformLoopback: deps.platformLoopback }, lookup, deps.classify);
    if (!resolved.ok) throw refuse(resolved.message);
  }

  async function visibleWebhook(principal: Principal, id: string): Promise<Webhook> {
    const [webhook] = await db
      .select()
      .from(webhooks)
      .where(and(eq(webhooks.id, id), isNull(webhooks.deletedAt)));
    const visible = webhook && (isAdmin(principal) || (webhook.organizationId !== null && webhook.organizationId === principal.organizationId));
    if (!visible) throw new NotFoundError(`webhook ${id} not found`);
    return webhook;
  }

  return {
    /** `org` undefined: platform-wide (platform admin). Answers the webhook and its secret (shown only here). */
    async create(principal: Principal, org: Organization | undefined, input: CreateWebhookInput): Promise<{ webhook: Webhook; secret: string }> {
      requireTenantAdmin(principal);
      if (!org) requireAdmin(principal);
      await checkUrl(input.url, org === undefined);
      const secret = generateToken("whsec");
      const organizationId = org?.id ?? null;
      const sealed = encryptJson(secret, webhookSecretContext(organizationId), deps.keyring);
      const webhook = await db.transaction(async (tx) => {
        if (org) {
          // The tenant's row lock serialises concurrent creates, so the cap holds under a burst.
          await tx.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, org.id)).for("update");
          const [{ live } = { live: 0 }] = await tx
            .select({ live: count() })
            .from(webhooks)
            .where(and(eq(webhooks.organizationId, org.id), isNull(webhooks.deletedAt)));
          if (live >= deps.maxPerTenant) {
            throw new ConflictError(`the tenant already has ${live} webhooks, the most it may have (${deps.maxPerTenant}); delete one first`, {
              code: "webhook_limit_reached",
              details: { limit: deps.maxPerTenant },
            });
          }
        }
        const [created] = await tx
          .insert(webhooks)
          .values({
            organizationId,
            url: input.url,
            events: [...new Set(input.events)],
            secretSealed: sealed.envelope,
            encryptionKeyId: sealed.keyId,
            actor: principal.actor,
          })
          .returning();
        return created!;
      });
      await recordAudit(db, principal, {
        action: "webhook.create",
        organizationId,
        target: `webhook:${webhook.id}`,
        details: { events: input.events },
      });
      return { webhook, secret };
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
      requireTenantAdmin(principal);
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
      const rows = await db
        .select()
        .from(webhookDeliveries)
        .where(eq(webhookDeliveries.webhookId, id))
        .orderBy(desc(webhookDeliveries.createdAt))
        .limit(limit);
      const attempts =
        rows.length === 0
          ? []
          : await db
              .select()
              .from(webhookDeliveryAttempts)
              .where(
                inArray(
                  webhookDeliveryAttempts.deliveryId,
                  rows.map((row) => row.id),
                ),
              )
              .orderBy(asc(webhookDeliveryAttempts.attempt));
      const [org] =
        webhook.organizationId === null
          ? []
          : await db.select({ slug: organizations.slug }).from(organizations).where(eq(organizations.id, webhook.organizationId));
      return {
        webhook,
        tenantSlug: org?.slug ?? null,
        deliveries: rows.map((row) => ({ ...row, attemptLog: attempts.filter((attempt) => attempt.deliveryId === row.id) })),
      };
    },
  };
}

export type WebhookService = ReturnType<typeof createWebhookService>;
