/** /v1/tenants/{slug}/tokens: a platform admin creates a tenant-scoped API token, shown once. */
import { createRoute } from "@hono/zod-openapi";
import type { DrizzleDatabase } from "../../db/client";
import { generateToken, hashToken } from "../../db/crypto";
import { apiTokens } from "../../db/schema";
import { recordAudit } from "../../services/tenant/audit-store";
import { loadVisibleOrganization, requireAdmin } from "../auth";
import { createRouter } from "../router";
import { createdTokenSchema, createTokenSchema, errorResponses, slugParamsSchema } from "../schemas";

const createTokenRoute = createRoute({
  method: "post",
  path: "/{slug}/tokens",
  tags: ["tokens"],
  summary: "Create a tenant token (platform admin); the token is shown once",
  security: [{ bearerAuth: [] }],
  request: {
    params: slugParamsSchema,
    body: { content: { "application/json": { schema: createTokenSchema } }, required: true },
  },
  responses: {
    201: { description: "the token (shown once)", content: { "application/json": { schema: createdTokenSchema } } },
    ...errorResponses,
  },
});

export function tokensRouter(db: DrizzleDatabase) {
  const router = createRouter();
  router.openapi(createTokenRoute, async (c) => {
    const principal = c.get("principal");
    requireAdmin(principal);
    const org = await loadVisibleOrganization(db, principal, c.req.valid("param").slug);
    const { name } = c.req.valid("json");
    const token = generateToken("mxdr-tenant");
    const row = await db.transaction(async (tx) => {
      const [created] = await tx
        .insert(apiTokens)
        .values({ tokenHash: hashToken(token), scope: "tenant", organizationId: org.id, name })
        .returning();
      await recordAudit(tx, principal, {
        action: "token.create",
        organizationId: org.id,
        target: `token:${created!.id}`,
        details: { name, scope: "tenant" },
      });
      return created!;
    });
    return c.json(
      { id: row.id, name: row.name, scope: "tenant" as const, tenant: org.slug, token, created_at: row.createdAt.toISOString() },
      201,
    );
  });
  return router;
}
