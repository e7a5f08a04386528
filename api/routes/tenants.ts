/** /v1/tenants: create, get, list, update settings. */
import { createRoute, type z } from "@hono/zod-openapi";
import { asc, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { organizations, type IntegrationSettings } from "../../db/schema";
import { recordAudit } from "../../services/tenant/audit-store";
import { loadVisibleOrganization, requireAdmin } from "../auth";
import { ApiError, ConflictError, ValidationError, type FieldError } from "../errors";
import { presentTenant } from "../presenters";
import { createRouter } from "../router";
import {
  createTenantSchema,
  errorResponses,
  listTenantsQuerySchema,
  patchTenantSchema,
  slugParamsSchema,
  tenantListSchema,
  tenantSchema,
} from "../schemas";

const security = [{ bearerAuth: [] }];
const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

const createTenantRoute = createRoute({
  method: "post",
  path: "/",
  tags: ["tenants"],
  summary: "Create a tenant (platform admin)",
  security,
  request: { body: { content: { "application/json": { schema: createTenantSchema } }, required: true } },
  responses: { 201: json(tenantSchema, "the tenant"), 409: { ...errorResponses[404], description: "slug taken" }, ...errorResponses },
});

const listTenantsRoute = createRoute({
  method: "get",
  path: "/",
  tags: ["tenants"],
  summary: "List tenants (admin: all; tenant token: its own)",
  security,
  request: { query: listTenantsQuerySchema },
  responses: { 200: json(tenantListSchema, "tenants"), ...errorResponses },
});

const getTenantRoute = createRoute({
  method: "get",
  path: "/{slug}",
  tags: ["tenants"],
  summary: "Get a tenant",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: json(tenantSchema, "the tenant"), ...errorResponses },
});

const patchTenantRoute = createRoute({
  method: "patch",
  path: "/{slug}",
  tags: ["tenants"],
  summary: "Update a tenant's name, flow and integration settings",
  security,
  request: {
    params: slugParamsSchema,
    body: { content: { "application/json": { schema: patchTenantSchema } }, required: true },
  },
  responses: { 200: json(tenantSchema, "the updated tenant"), ...errorResponses },
});

type SettingsInput = {
  agent_public_base_url?: string | null;
  regions?: string[] | null;
  home_region?: string | null;
  aws_account_id?: string | null;
  target_tag?: { key: string; value: string } | null;
  target_all_managed_instances?: boolean | null;
  require_approval?: boolean | null;
};

const SETTING_KEYS: [keyof SettingsInput, keyof IntegrationSettings][] = [
  ["agent_public_base_url", "agentPublicBaseUrl"],
  ["regions", "regions"],
  ["home_region", "homeRegion"],
  ["target_tag", "targetTag"],
  ["target_all_managed_instances", "targetAllManagedInstances"],
  ["require_approval", "requireApproval"],
];

/** Applies input over current settings (undefined keeps, null removes) and checks the result as a whole. */
function mergeSettings(
  current: IntegrationSettings,
  currentAccountId: string | null,
  input: SettingsInput,
): { settings: IntegrationSettings; awsAccountId: string | null } {
  const settings: Record<string, unknown> = { ...current };
  for (const [apiKey, storedKey] of SETTING_KEYS) {
    const value = input[apiKey];
    if (value === null) delete settings[storedKey];
    else if (value !== undefined) settings[storedKey] = value;
  }
  const merged = settings as IntegrationSettings;
  const awsAccountId = input.aws_account_id === undefined ? currentAccountId : input.aws_account_id;
  const problems: FieldError[] = [];
  if (merged.regions && merged.homeRegion && !merged.regions.includes(merged.homeRegion)) {
    problems.push({ field: "integration_settings.regions", message: "must include the home region" });
  }
  if (problems.length > 0) throw new ValidationError(problems);
  return { settings: merged, awsAccountId };
}

function isUniqueViolation(error: unknown): boolean {
  const withCode = error as { code?: string; cause?: { code?: string } };
  return (withCode.cause?.code ?? withCode.code) === "23505";
}

/**
 * Settings a tenant-scoped token may not change: where the agent (run as root on every host) is downloaded from,
 * the approval gate on the tenant's own changes, and the onboarding flow.
 */
const ADMIN_ONLY_SETTINGS = ["agent_public_base_url", "require_approval"] as const;

function refuseAdminOnlySettings(body: z.infer<typeof patchTenantSchema>): void {
  const fields = [
    ...(body.onboarding_flow_version !== undefined ? ["onboarding_flow_version"] : []),
    ...ADMIN_ONLY_SETTINGS.filter((key) => body.integration_settings?.[key] !== undefined).map((key) => `integration_settings.${key}`),
  ];
  if (fields.length > 0) {
    throw new ApiError(403, "forbidden", `only a platform admin may change ${fields.join(", ")}`, {
      fields: fields.map((field) => ({ field, message: "may only be changed by a platform admin" })),
    });
  }
}

export function tenantsRouter(db: DrizzleDatabase) {
  const router = createRouter();

  router.openapi(createTenantRoute, async (c) => {
    const principal = c.get("principal");
    requireAdmin(principal);
    const body = c.req.valid("json");
    if (principal.scope === "tenant") refuseAdminOnlySettings(body);
    const { settings, awsAccountId } = mergeSettings({}, null, body.integration_settings);
    const org = await db
      .transaction(async (tx) => {
        const [created] = await tx
          .insert(organizations)
          .values({
            slug: body.slug,
            name: body.name,
            onboardingFlowVersion: body.onboarding_flow_version,
            autoDiscoveryEnabled: body.auto_discovery_enabled,
            integrationSettings: settings,
            awsAccountId,
          })
          .returning();
        await recordAudit(tx, principal, {
          action: "tenant.create",
          organizationId: created!.id,
          target: `tenant:${created!.slug}`,
          details: { request: body },
        });
        return created!;
      })
      .catch((error: unknown) => {
        if (isUniqueViolation(error)) throw new ConflictError(`tenant ${JSON.stringify(body.slug)} already exists`);
        throw error;
      });
    return c.json(presentTenant(org), 201);
  });

  router.openapi(listTenantsRoute, async (c) => {
    const principal = c.get("principal");
    const { limit = 100, offset = 0 } = c.req.valid("query");
    const rows =
      principal.scope === "tenant"
        ? await db.select().from(organizations).where(eq(organizations.id, principal.organizationId!))
        : await db.select().from(organizations).orderBy(asc(organizations.id)).limit(limit).offset(offset);
    return c.json({ tenants: rows.map(presentTenant) }, 200);
  });

  router.openapi(getTenantRoute, async (c) => {
    const org = await loadVisibleOrganization(db, c.get("principal"), c.req.valid("param").slug);
    return c.json(presentTenant(org), 200);
  });

  router.openapi(patchTenantRoute, async (c) => {
    const principal = c.get("principal");
    const org = await loadVisibleOrganization(db, principal, c.req.valid("param").slug);
    const body = c.req.valid("json");
    if (principal.scope === "tenant") refuseAdminOnlySettings(body);
    const { settings, awsAccountId } = mergeSettings(org.integrationSettings, org.awsAccountId, body.integration_settings ?? {});
    const updated = await db.transaction(async (tx) => {
      const [row] = await tx
        .update(organizations)
        .set({
          ...(body.name !== undefined ? { name: body.name } : {}),
          ...(body.onboarding_flow_version !== undefined ? { onboardingFlowVersion: body.onboarding_flow_version } : {}),
          ...(body.auto_discovery_enabled !== undefined ? { autoDiscoveryEnabled: body.auto_discovery_enabled } : {}),
          integrationSettings: settings,
          awsAccountId,
        })
        .where(eq(organizations.id, org.id))
        .returning();
      await recordAudit(tx, principal, {
        action: "tenant.update",
        organizationId: org.id,
        target: `tenant:${org.slug}`,
        details: { request: body },
      });
      return row!;
    });
    // A settings change reaches the customer's account with the tenant's next preview/up run; nothing runs here.
    return c.json(presentTenant(updated), 200);
  });

  return router;
}
