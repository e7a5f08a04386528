/** /v1/tenants: create, get, list, update settings. */
import { createRoute } from "@hono/zod-openapi";
import type { Services } from "../../services";
import { presentTenant, settingsPatchOf } from "../presenters";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import {
  bodyErrorResponses,
  createTenantSchema,
  errorResponse,
  errorResponses,
  postErrorResponses,
  listTenantsQuerySchema,
  patchTenantSchema,
  slugParamsSchema,
  tenantListSchema,
  tenantSchema,
} from "../schemas";

/**
 * What a client (and schemathesis' stateful phase) can do next with a tenant it has: the slug leads to its routes.
 * Only to what every tenant has: its AWS integration exists once connected, so it is no link from here.
 */
const bySlug = (operationId: string) => ({ operationId, parameters: { slug: "$response.body#/slug" } });
export const tenantLinks = {
  GetTenant: bySlug("getTenant"),
  PatchTenant: bySlug("patchTenant"),
  CreateTenantToken: bySlug("createTenantToken"),
  ConnectAws: bySlug("connectAws"),
  RequestRun: bySlug("requestRun"),
  ListRuns: bySlug("listRuns"),
  GetProgress: bySlug("getProgress"),
};

const createTenantRoute = createRoute({
  method: "post",
  path: "/",
  tags: ["tenants"],
  operationId: "createTenant",
  summary: "Create a tenant (platform admin)",
  security,
  request: { body: { content: { "application/json": { schema: createTenantSchema } }, required: true } },
  responses: {
    201: { ...json(tenantSchema, "the tenant"), links: tenantLinks },
    ...errorResponses,
    ...bodyErrorResponses,
    ...postErrorResponses,
    409: errorResponse("the slug is taken, or a request with this Idempotency-Key is still in progress"),
  },
});

const listTenantsRoute = createRoute({
  method: "get",
  path: "/",
  tags: ["tenants"],
  operationId: "listTenants",
  summary: "List tenants (admin: all; tenant token: its own)",
  security,
  request: { query: listTenantsQuerySchema },
  responses: { 200: json(tenantListSchema, "tenants"), ...errorResponses },
});

const getTenantRoute = createRoute({
  method: "get",
  path: "/{slug}",
  tags: ["tenants"],
  operationId: "getTenant",
  summary: "Get a tenant",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: json(tenantSchema, "the tenant"), ...errorResponses },
});

const patchTenantRoute = createRoute({
  method: "patch",
  path: "/{slug}",
  tags: ["tenants"],
  operationId: "patchTenant",
  summary: "Update a tenant's name, flow and integration settings",
  security,
  request: {
    params: slugParamsSchema,
    body: { content: { "application/json": { schema: patchTenantSchema } }, required: true },
  },
  responses: {
    200: { ...json(tenantSchema, "the updated tenant"), links: tenantLinks },
    ...errorResponses,
    ...bodyErrorResponses,
    422: errorResponse("the settings contradict each other or what is stored (code inconsistent_settings): regions without the home region"),
  },
});

export function tenantsRouter({ tenants }: Pick<Services, "tenants">) {
  const router = createRouter();

  router.openapi(createTenantRoute, async (c) => {
    const body = c.req.valid("json");
    const org = await tenants.create(c.get("principal"), {
      slug: body.slug,
      name: body.name,
      onboardingFlowVersion: body.onboarding_flow_version,
      autoDiscoveryEnabled: body.auto_discovery_enabled,
      settings: settingsPatchOf(body.integration_settings),
      request: body,
    });
    return c.json(presentTenant(org), 201);
  });

  router.openapi(listTenantsRoute, async (c) => {
    const { limit = 100, offset = 0 } = c.req.valid("query");
    const rows = await tenants.list(c.get("principal"), { limit, offset });
    return c.json({ tenants: rows.map(presentTenant) }, 200);
  });

  router.openapi(getTenantRoute, async (c) => c.json(presentTenant(await c.var.tenant()), 200));

  router.openapi(patchTenantRoute, async (c) => {
    const body = c.req.valid("json");
    const updated = await tenants.update(c.get("principal"), await c.var.tenant(), {
      name: body.name,
      onboardingFlowVersion: body.onboarding_flow_version,
      autoDiscoveryEnabled: body.auto_discovery_enabled,
      settings: settingsPatchOf(body.integration_settings),
      request: body,
    });
    return c.json(presentTenant(updated), 200);
  });

  return router;
}
