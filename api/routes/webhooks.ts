/**
 * Webhooks: platform-wide (/v1/webhooks, platform admin) and per tenant (/v1/tenants/{slug}/webhooks); every
 * delivery and attempt (/v1/webhooks/{id}/deliveries). The signing secret is answered once, at creation.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { WEBHOOK_DELIVERY_STATUSES, WEBHOOK_EVENTS } from "../../db/schema";
import { WEBHOOK_URL } from "../../programs/tenant/config";
import type { Services } from "../../services";
import { presentDelivery, presentWebhook } from "../fleet-presenter";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { WEBHOOK_ERROR_CLASSES } from "../../services/notification/webhook-address-fns";
import { bodyErrorResponses, errorResponse, errorResponses, integerQuery, postErrorResponses, slugParamsSchema } from "../schemas";

const webhookIdParams = z.object({ id: z.string().guid("must be a webhook id (uuid)") });
const tenantWebhookParams = slugParamsSchema.extend({ id: z.string().guid("must be a webhook id (uuid)") });

const createWebhookSchema = z
  .strictObject({
    url: z
      .string()
      .max(2048)
      .regex(WEBHOOK_URL, "must be an https URL of a host name or IPv4 address, without user info or fragment (http only to loopback)")
      .openapi({
        description:
          "https to a public address. Refused (422 naming `url`, code webhook_url_not_allowed): a host that is, or resolves only to, a loopback, private, link-local, " +
          "CGNAT, unique-local, multicast, unspecified, broadcast, documentation, benchmarking or reserved address, in any spelling " +
          "(IPv4-mapped, NAT64 and 6to4 forms are judged by the IPv4 address they carry). Checked again, and the connection pinned to " +
          "the checked addresses, at every delivery. Only platform webhooks (POST /v1/webhooks) may target loopback, also over http, " +
          "and only when the service runs with WEBHOOK_PLATFORM_ALLOW_LOOPBACK=true.",
      }),
    events: z
      .array(z.enum(WEBHOOK_EVENTS))
      .min(1, "must name at least one event")
      .max(WEBHOOK_EVENTS.length, `must list at most ${WEBHOOK_EVENTS.length} events`),
  })
  .openapi("CreateWebhook");

const webhookSchema = z
  .object({ id: z.string(), tenant: z.string().nullable(), url: z.string(), events: z.array(z.enum(WEBHOOK_EVENTS)), created_at: z.string() })
  .openapi("Webhook");
const createdWebhookSchema = webhookSchema
  .extend({
    secret: z.string().openapi({
      description: 'shown once: verify X-MiniXdr-Signature (t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">) with it',
    }),
  })
  .openapi("CreatedWebhook");
const deliverySchema = z
  .object({
    id: z.string(),
    event: z.enum(WEBHOOK_EVENTS),
    status: z.enum(WEBHOOK_DELIVERY_STATUSES),
    attempts: z.number(),
    next_attempt_at: z.string().nullable(),
    created_at: z.string(),
    delivered_at: z.string().nullable(),
    payload: z.record(z.string(), z.any()),
    attempt_log: z.array(
      z.object({
        attempt: z.number(),
        at: z.string(),
        status_code: z.number().nullable(),
        error: z
          .enum(WEBHOOK_ERROR_CLASSES)
          .nullable()
          .openapi({ description: "why the attempt failed, as a class (the details are in the service's log); null when delivered" }),
        duration_ms: z.number(),
      }),
    ),
  })
  .openapi("WebhookDelivery");

const body = { content: { "application/json": { schema: createWebhookSchema } }, required: true };
const noContent = { 204: { description: "deleted" } };

const createPlatform = createRoute({
  method: "post",
  path: "/webhooks",
  operationId: "createWebhook",
  tags: ["webhooks"],
  summary: "Create a platform-wide webhook (every tenant's events and fleet events; platform admin)",
  security,
  request: { body },
  responses: {
    201: json(createdWebhookSchema, "the webhook and its secret (shown once)"),
    ...errorResponses,
    ...bodyErrorResponses,
    ...postErrorResponses,
  },
});
const listPlatform = createRoute({
  method: "get",
  path: "/webhooks",
  operationId: "listWebhooks",
  tags: ["webhooks"],
  summary: "Platform-wide webhooks (platform admin)",
  security,
  responses: { 200: json(z.object({ webhooks: z.array(webhookSchema) }), "webhooks"), ...errorResponses },
});
const deletePlatform = createRoute({
  method: "delete",
  path: "/webhooks/{id}",
  operationId: "deleteWebhook",
  tags: ["webhooks"],
  summary: "Delete a platform-wide webhook (its delivery log is kept)",
  security,
  request: { params: webhookIdParams },
  responses: { ...noContent, ...errorResponses },
});
const deliveriesRoute = createRoute({
  method: "get",
  path: "/webhooks/{id}/deliveries",
  operationId: "listWebhookDeliveries",
  tags: ["webhooks"],
  summary: "A webhook's deliveries, newest first, each with every attempt (status code or error, duration)",
  security,
  request: { params: webhookIdParams, query: z.object({ limit: integerQuery(1, 500).default(100) }) },
  responses: { 200: json(z.object({ webhook: webhookSchema, deliveries: z.array(deliverySchema) }), "deliveries"), ...errorResponses },
});
const createTenant = createRoute({
  method: "post",
  path: "/{slug}/webhooks",
  operationId: "createTenantWebhook",
  tags: ["webhooks"],
  summary: "Create a webhook for the tenant's events",
  security,
  request: { params: slugParamsSchema, body },
  responses: {
    201: json(createdWebhookSchema, "the webhook and its secret (shown once)"),
    ...errorResponses,
    ...bodyErrorResponses,
    ...postErrorResponses,
    409: errorResponse(
      "the tenant already has WEBHOOK_MAX_PER_TENANT (default 10) live webhooks (`code` webhook_limit_reached, `limit`), or a request with this Idempotency-Key is still in progress",
    ),
  },
});
const listTenant = createRoute({
  method: "get",
  path: "/{slug}/webhooks",
  operationId: "listTenantWebhooks",
  tags: ["webhooks"],
  summary: "The tenant's webhooks",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: json(z.object({ webhooks: z.array(webhookSchema) }), "webhooks"), ...errorResponses },
});
const deleteTenant = createRoute({
  method: "delete",
  path: "/{slug}/webhooks/{id}",
  operationId: "deleteTenantWebhook",
  tags: ["webhooks"],
  summary: "Delete one of the tenant's webhooks (its delivery log is kept)",
  security,
  request: { params: tenantWebhookParams },
  responses: { ...noContent, ...errorResponses },
});

/** Mounted at /v1. */
export function platformWebhooksRouter({ webhooks }: Pick<Services, "webhooks">) {
  const router = createRouter();
  router.openapi(createPlatform, async (c) => {
    const { webhook, secret } = await webhooks.create(c.get("principal"), undefined, c.req.valid("json"));
    return c.json({ ...presentWebhook(webhook, null), secret }, 201);
  });
  router.openapi(listPlatform, async (c) => {
    const rows = await webhooks.list(c.get("principal"), undefined);
    return c.json({ webhooks: rows.map((row) => presentWebhook(row, null)) }, 200);
  });
  router.openapi(deletePlatform, async (c) => {
    await webhooks.remove(c.get("principal"), undefined, c.req.valid("param").id);
    return c.body(null, 204);
  });
  router.openapi(deliveriesRoute, async (c) => {
    const { webhook, deliveries, tenantSlug } = await webhooks.deliveries(c.get("principal"), c.req.valid("param").id, c.req.valid("query").limit);
    return c.json({ webhook: presentWebhook(webhook, tenantSlug), deliveries: deliveries.map(presentDelivery) }, 200);
  });
  return router;
}

/** Mounted under /v1/tenants (tenant scope resolved by the middleware). */
export function tenantWebhooksRouter({ webhooks }: Pick<Services, "webhooks">) {
  const router = createRouter();
  router.openapi(createTenant, async (c) => {
    const org = await c.var.tenant();
    const { webhook, secret } = await webhooks.create(c.get("principal"), org, c.req.valid("json"));
    return c.json({ ...presentWebhook(webhook, org.slug), secret }, 201);
  });
  router.openapi(listTenant, async (c) => {
    const org = await c.var.tenant();
    const rows = await webhooks.list(c.get("principal"), org);
    return c.json({ webhooks: rows.map((row) => presentWebhook(row, org.slug)) }, 200);
  });
  router.openapi(deleteTenant, async (c) => {
    const org = await c.var.tenant();
    await webhooks.remove(c.get("principal"), org, c.req.valid("param").id);
    return c.body(null, 204);
  });
  return router;
}
