/**
 * API tokens. /v1/tenants/{slug}/tokens: a platform admin creates a tenant token (shown once); whoever sees the tenant
 * lists its tokens (metadata only) and revokes them. /v1/tokens: the same for platform-admin tokens (platform admin).
 * A token may expire (`expires_in`); none is ever shown again after its creation, nor its hash. A token cannot revoke
 * itself (409 own_token).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { ApiToken, Organization } from "../../db/schema";
import type { Services } from "../../services";
import { tokenStatus } from "../../services/tenant/tenant-service";
import { iso } from "../presenters";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import {
  bodyErrorResponses,
  createdTokenSchema,
  createTokenSchema,
  errorResponse,
  errorResponses,
  postErrorResponses,
  slugParamsSchema,
  tokenMetadataSchema,
} from "../schemas";

const tokenIdSchema = z.coerce.number().int("must be a token id (an integer)").min(1, "must be a token id (1 or more)").max(2_147_483_647);
const listQuery = z.object({
  limit: z.coerce.number().int("must be an integer").min(1).max(200).default(50),
  /** Keyset pagination: tokens with a greater id (the last id of the previous page). */
  after_id: z.coerce.number().int("must be an integer").min(0).max(2_147_483_647).optional(),
});
const tokenListSchema = z.object({ tokens: z.array(tokenMetadataSchema), next_after_id: z.number().int().nullable() }).openapi("TokenList");
const revokeRefusals = { 409: errorResponse("a token cannot revoke itself (code own_token): revoke it with another token") };

const createTenantTokenRoute = createRoute({
  method: "post",
  path: "/{slug}/tokens",
  operationId: "createTenantToken",
  tags: ["tokens"],
  summary: "Create a tenant token (platform admin), optionally expiring; the token is shown once",
  security,
  request: { params: slugParamsSchema, body: { content: { "application/json": { schema: createTokenSchema } }, required: true } },
  responses: { 201: json(createdTokenSchema, "the token (shown once)"), ...errorResponses, ...bodyErrorResponses, ...postErrorResponses },
});

const listTenantTokensRoute = createRoute({
  method: "get",
  path: "/{slug}/tokens",
  operationId: "listTenantTokens",
  tags: ["tokens"],
  summary: "The tenant's tokens by id: metadata (status, expiry, last use), never the token",
  security,
  request: { params: slugParamsSchema, query: listQuery },
  responses: { 200: json(tokenListSchema, "the tokens"), ...errorResponses },
});

const revokeTenantTokenRoute = createRoute({
  method: "delete",
  path: "/{slug}/tokens/{tokenId}",
  operationId: "revokeTenantToken",
  tags: ["tokens"],
  summary: "Revoke a tenant token: refused from now on, its open event streams end (revoking twice changes nothing)",
  security,
  request: { params: slugParamsSchema.extend({ tokenId: tokenIdSchema }) },
  responses: { 200: json(tokenMetadataSchema, "the revoked token"), ...errorResponses, ...revokeRefusals },
});

const createAdminTokenRoute = createRoute({
  method: "post",
  path: "/tokens",
  operationId: "createAdminToken",
  tags: ["tokens"],
  summary: "Create a platform-admin token (platform admin), optionally expiring; the token is shown once",
  security,
  request: { body: { content: { "application/json": { schema: createTokenSchema } }, required: true } },
  responses: { 201: json(createdTokenSchema, "the token (shown once)"), ...errorResponses, ...bodyErrorResponses, ...postErrorResponses },
});

const listAdminTokensRoute = createRoute({
  method: "get",
  path: "/tokens",
  operationId: "listAdminTokens",
  tags: ["tokens"],
  summary: "The platform-admin tokens by id (platform admin): metadata, never the token",
  security,
  request: { query: listQuery },
  responses: { 200: json(tokenListSchema, "the tokens"), ...errorResponses },
});

const revokeAdminTokenRoute = createRoute({
  method: "delete",
  path: "/tokens/{tokenId}",
  operationId: "revokeAdminToken",
  tags: ["tokens"],
  summary: "Revoke a platform-admin token (platform admin); an earlier ADMIN_TOKEN is revoked by the next start with a new one",
  security,
  request: { params: z.object({ tokenId: tokenIdSchema }) },
  responses: { 200: json(tokenMetadataSchema, "the revoked token"), ...errorResponses, ...revokeRefusals },
});

function presentMetadata(row: ApiToken, tenant: Organization | null) {
  return {
    id: row.id,
    name: row.name,
    scope: row.scope,
    tenant: tenant?.slug ?? null,
    created_at: row.createdAt.toISOString(),
    expires_at: iso(row.expiresAt),
  };
}

const presentCreated = (row: ApiToken, token: string, tenant: Organization | null) => ({ ...presentMetadata(row, tenant), token });

function presentToken(row: ApiToken, tenant: Organization | null) {
  return {
    ...presentMetadata(row, tenant),
    origin: row.origin,
    status: tokenStatus(row),
    last_used_at: iso(row.lastUsedAt),
    revoked_at: iso(row.revokedAt),
  };
}

function presentList(rows: ApiToken[], tenant: Organization | null, limit: number) {
  return { tokens: rows.map((row) => presentToken(row, tenant)), next_after_id: rows.length === limit ? rows[rows.length - 1]!.id : null };
}

const newToken = (body: z.output<typeof createTokenSchema>) => ({ name: body.name, expiresInSeconds: body.expires_in });

/** Under /v1/tenants. */
export function tokensRouter({ tenants }: Pick<Services, "tenants">) {
  const router = createRouter();
  router.openapi(createTenantTokenRoute, async (c) => {
    const org = await c.var.tenant();
    const { row, token } = await tenants.createToken(c.get("principal"), org, newToken(c.req.valid("json")));
    return c.json(presentCreated(row, token, org), 201);
  });
  router.openapi(listTenantTokensRoute, async (c) => {
    const org = await c.var.tenant();
    const query = c.req.valid("query");
    const rows = await tenants.listTokens(c.get("principal"), org, { limit: query.limit, afterId: query.after_id });
    return c.json(presentList(rows, org, query.limit), 200);
  });
  router.openapi(revokeTenantTokenRoute, async (c) => {
    const org = await c.var.tenant();
    return c.json(presentToken(await tenants.revokeToken(c.get("principal"), org, c.req.valid("param").tokenId), org), 200);
  });
  return router;
}

/** Under /v1. */
export function adminTokensRouter({ tenants }: Pick<Services, "tenants">) {
  const router = createRouter();
  router.openapi(createAdminTokenRoute, async (c) => {
    const { row, token } = await tenants.createAdminToken(c.get("principal"), newToken(c.req.valid("json")));
    return c.json(presentCreated(row, token, null), 201);
  });
  router.openapi(listAdminTokensRoute, async (c) => {
    const query = c.req.valid("query");
    const rows = await tenants.listTokens(c.get("principal"), null, { limit: query.limit, afterId: query.after_id });
    return c.json(presentList(rows, null, query.limit), 200);
  });
  router.openapi(revokeAdminTokenRoute, async (c) =>
    c.json(presentToken(await tenants.revokeToken(c.get("principal"), null, c.req.valid("param").tokenId), null), 200),
  );
  return router;
}
