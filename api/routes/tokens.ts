/** /v1/tenants/{slug}/tokens: a platform admin creates a tenant-scoped API token, shown once. */
import { createRoute } from "@hono/zod-openapi";
import type { Services } from "../../services";
import { createRouter } from "../router";
import { bodyErrorResponses, createdTokenSchema, createTokenSchema, errorResponses, postErrorResponses, slugParamsSchema } from "../schemas";

const createTokenRoute = createRoute({
  method: "post",
  path: "/{slug}/tokens",
  operationId: "createTenantToken",
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
    ...bodyErrorResponses,
    ...postErrorResponses,
  },
});

export function tokensRouter({ tenants }: Pick<Services, "tenants">) {
  const router = createRouter();
  router.openapi(createTokenRoute, async (c) => {
    const org = await c.var.tenant();
    const { row, token } = await tenants.createToken(c.get("principal"), org, c.req.valid("json").name);
    return c.json(
      { id: row.id, name: row.name, scope: "tenant" as const, tenant: org.slug, token, created_at: row.createdAt.toISOString() },
      201,
    );
  });
  return router;
}
