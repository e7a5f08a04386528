/**
 * GET /v1/tenants/{slug}/activity: the tenant's audit trail, newest first, each action naming who did it (the
 * person's email, their identity provider and subject, or the token's name, or the service itself).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../services";
import type { AuditEntryView } from "../../services/core/audit-store";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { errorResponses, slugParamsSchema } from "../schemas";

const activityQuery = z.object({
  limit: z.coerce.number().int("must be an integer").min(1).max(200).default(50),
  /** Keyset pagination: entries older than this id (the last id of the previous page). */
  before_id: z.coerce.number().int("must be an integer").min(1).max(Number.MAX_SAFE_INTEGER).optional(),
});

const activitySchema = z
  .object({
    activity: z.array(
      z.object({
        id: z.number().int(),
        at: z.string(),
        action: z.string(),
        target: z.string().nullable(),
        actor: z.string().describe("`person:<id>`, `token:<id>` or `system:<what>`"),
        actor_name: z.string().nullable().describe("the person's email or the token's name"),
        actor_issuer: z.string().nullable().describe("the identity provider's issuer (`link`: signed in by an invitation link)"),
        actor_subject: z.string().nullable(),
      }),
    ),
    next_before_id: z.number().int().nullable(),
  })
  .openapi("TenantActivity");

const activityRoute = createRoute({
  method: "get",
  path: "/{slug}/activity",
  operationId: "getTenantActivity",
  tags: ["tenants"],
  summary: "The tenant's audit trail, newest first: every action and who did it",
  security,
  request: { params: slugParamsSchema, query: activityQuery },
  responses: { 200: json(activitySchema, "the audit trail"), ...errorResponses },
});

const presentEntry = (entry: AuditEntryView) => ({
  id: entry.id,
  at: entry.at.toISOString(),
  action: entry.action,
  target: entry.target,
  actor: entry.actor,
  actor_name: entry.actorName,
  actor_issuer: entry.actorIssuer,
  actor_subject: entry.actorSubject,
});

/** Under /v1/tenants. */
export function activityRouter({ tenants }: Pick<Services, "tenants">) {
  const router = createRouter();
  router.openapi(activityRoute, async (c) => {
    const query = c.req.valid("query");
    const entries = await tenants.activity(await c.var.tenant(), { limit: query.limit, beforeId: query.before_id });
    return c.json({ activity: entries.map(presentEntry), next_before_id: entries.length === query.limit ? entries.at(-1)!.id : null }, 200);
  });
  return router;
}
