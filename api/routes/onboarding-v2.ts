/**
 * The seeds' endpoint set (/api/onboarding/v2/*), kept for their clients: tenant-scoped tokens only, the tenant taken
 * from the token. Built on the same services as /v1; shapes as the seeds had them.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { and, count, eq, isNull } from "drizzle-orm";
import { stackNameFor } from "../../automation";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { cloudAssets, integrationCredentials, organizations, type Organization } from "../../db/schema";
import type { ScanQueue } from "../../services/discovery/scan-queue";
import type { RunQueue } from "../../services/run/run-queue";
import { RunConflictError } from "../../services/run/run-errors";
import { connectAws } from "../../services/integration/connect-aws";
import { withStatusDuring } from "../../services/tenant/onboarding-status";
import { tenantProgress } from "../../services/tenant/progress";
import type { BootstrapRoleVerifier } from "../../services/integration/verify-bootstrap-role";
import { externalIdSchema, roleArnSchema } from "../../programs/tenant/config";
import { recordAudit } from "../../services/tenant/audit-store";
import type { Principal } from "../auth";
import { ApiError, ConflictError, ForbiddenError, NotFoundError, NotImplementedError } from "../errors";
import { createRouter } from "../router";
import { errorResponses } from "../schemas";
import {
  currentDeployment,
  deploymentHealthSchema,
  deploymentQuerySchema,
  deploymentSummarySchema,
  retryDeployment,
  retryResultSchema,
  validationSchema,
} from "./deployment";
import { assetsQuerySchema, listAssets, presentAsset, requestDiscovery } from "./onboarding";
import { deploymentHealth } from "../../services/rollout/rollout-summary";
import { validateTenant } from "../../services/rollout/validation-checks";

const security = [{ bearerAuth: [] }];
const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });
const anyJson = (description: string) => json(z.any(), description);

const PROVIDERS = ["aws", "azure", "gcp"] as const;
const awsCredentialsSchema = z.strictObject({
  role_arn: roleArnSchema,
  external_id: externalIdSchema.optional(),
});
const setupSchema = z.strictObject({ provider: z.enum(PROVIDERS), credentials: z.record(z.string(), z.unknown()) });

/** Seed clients send credentials per provider; only AWS is supported, checked field by field. */
function awsCredentials(provider: (typeof PROVIDERS)[number], credentials: Record<string, unknown>) {
  if (provider !== "aws") {
    throw new NotImplementedError(`${provider === "azure" ? "Azure" : "GCP"} is not supported yet; only "aws" is.`);
  }
  const parsed = awsCredentialsSchema.safeParse(credentials);
  if (!parsed.success) {
    throw new ApiError(400, "validation_failed", "invalid credentials", {
      fields: parsed.error.issues.map((issue) => ({
        field: ["credentials", ...issue.path.map(String), ...(issue.code === "unrecognized_keys" ? issue.keys : [])].join("."),
        message: issue.code === "unrecognized_keys" ? "is not a known field" : issue.message,
      })),
    });
  }
  return { bootstrapRoleArn: parsed.data.role_arn, externalId: parsed.data.external_id };
}

export interface OnboardingV2Deps {
  db: DrizzleDatabase;
  keyring: Keyring;
  verifyBootstrapRole: BootstrapRoleVerifier;
  runQueue: () => RunQueue;
  scanQueue: () => ScanQueue;
}

async function tokenTenant(db: DrizzleDatabase, principal: Principal): Promise<Organization> {
  if (principal.scope !== "tenant" || principal.organizationId === null) {
    throw new ForbiddenError("the /api/onboarding/v2 endpoints act for the tenant of a tenant-scoped token");
  }
  const [org] = await db.select().from(organizations).where(eq(organizations.id, principal.organizationId));
  if (!org) throw new NotFoundError("the token's tenant no longer exists");
  return org;
}

const route = <const M extends "get" | "post" | "delete", const P extends string>(method: M, path: P, summary: string) => ({
  method,
  path,
  tags: ["onboarding v2 (seed-compatible)"],
  summary,
  security,
});

export function onboardingV2Router(deps: OnboardingV2Deps) {
  const { db } = deps;
  const router = createRouter();

  router.openapi(
    createRoute({
      ...route("post", "/quick-start", "Connect a cloud account and start onboarding (quick-start flow only)"),
      request: { body: { content: { "application/json": { schema: setupSchema } }, required: true } },
      responses: {
        200: json(z.object({ status: z.literal("initiated"), message: z.string(), estimated_completion: z.string(), run_id: z.string() }), "initiated"),
        409: { ...errorResponses[404], description: "the organization's onboarding flow is not quick_start, or a run is active" },
        ...errorResponses,
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const org = await tokenTenant(db, principal);
      if (org.onboardingFlowVersion !== "quick_start") {
        throw new ConflictError(`organization ${JSON.stringify(org.slug)} uses the ${org.onboardingFlowVersion} onboarding flow, not quick_start`);
      }
      const body = c.req.valid("json");
      await connectAws(deps, principal, org, awsCredentials(body.provider, body.credentials));
      const [current] = await db.select().from(organizations).where(eq(organizations.id, org.id));
      let runId: string;
      try {
        runId = await withStatusDuring(db, current!, "provisioning", () =>
          deps.runQueue().request({ organizationId: org.id, stackName: stackNameFor(org.slug), kind: "up", actor: principal.actor }),
        );
      } catch (error) {
        if (error instanceof RunConflictError) {
          throw new ApiError(409, "run_in_progress", "onboarding is already in progress", { blocking_run_id: error.blockingRunId });
        }
        throw error;
      }
      await recordAudit(db, principal, { action: "onboarding.quick_start", organizationId: org.id, target: `run:${runId}` });
      return c.json(
        {
          status: "initiated" as const,
          message: "Onboarding started: provisioning access, then discovering assets and deploying agents.",
          estimated_completion: new Date(Date.now() + 5 * 60_000).toISOString(),
          run_id: runId,
        },
        200,
      );
    },
  );

  router.openapi(
    createRoute({ ...route("get", "/progress", "Onboarding progress"), responses: { 200: anyJson("progress"), ...errorResponses } }),
    async (c) => {
      const org = await tokenTenant(db, c.get("principal"));
      const progress = await tenantProgress(db, org.id);
      return c.json(
        {
          discovery: { status: progress.discovery.status, progress: progress.discovery.progress, assets_found: progress.discovery.assets_found },
          deployment: { status: progress.deployment.status, progress: progress.deployment.progress, agents_deployed: progress.deployment.agents_deployed },
          validation: { status: progress.validation.status, progress: progress.validation.progress, checks_passed: progress.validation.checks_passed },
          overall_progress: progress.overall_progress,
        },
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      ...route("get", "/assets", "Discovered assets"),
      request: { query: assetsQuerySchema },
      responses: { 200: anyJson("assets"), ...errorResponses },
    }),
    async (c) => {
      const org = await tokenTenant(db, c.get("principal"));
      const assets = await listAssets(db, org.id, c.req.valid("query"));
      return c.json({ assets: assets.map(presentAsset), total: assets.length }, 200);
    },
  );

  router.openapi(
    createRoute({ ...route("post", "/assets/refresh", "Discover assets again now"), responses: { 202: anyJson("queued"), 409: anyJson("stack not applied"), ...errorResponses } }),
    async (c) => {
      const principal = c.get("principal");
      const org = await tokenTenant(db, principal);
      const { scanId, alreadyActive } = await requestDiscovery(db, deps.scanQueue(), org.id, principal.actor);
      await recordAudit(db, principal, { action: "discovery.request", organizationId: org.id, target: `scan:${scanId}` });
      return c.json({ status: "initiated", scan_id: scanId, already_active: alreadyActive }, 202);
    },
  );

  router.openapi(
    createRoute({ ...route("get", "/integrations", "Cloud integrations"), responses: { 200: anyJson("integrations"), ...errorResponses } }),
    async (c) => {
      const org = await tokenTenant(db, c.get("principal"));
      const rows = await db.select().from(integrationCredentials).where(eq(integrationCredentials.organizationId, org.id));
      const [assets] = await db
        .select({ n: count() })
        .from(cloudAssets)
        .where(and(eq(cloudAssets.organizationId, org.id), isNull(cloudAssets.removedAt)));
      return c.json(
        rows.map((row) => ({
          provider: row.provider,
          status: row.status,
          configured_at: row.createdAt.toISOString(),
          regions: org.integrationSettings.regions ?? (org.integrationSettings.homeRegion ? [org.integrationSettings.homeRegion] : []),
          asset_count: row.provider === "aws" ? (assets?.n ?? 0) : 0,
        })),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      ...route("post", "/integrations/setup", "Connect a cloud account"),
      request: { body: { content: { "application/json": { schema: setupSchema } }, required: true } },
      responses: { 200: anyJson("connected"), 501: anyJson("provider not supported yet"), ...errorResponses },
    }),
    async (c) => {
      const principal = c.get("principal");
      const org = await tokenTenant(db, principal);
      const body = c.req.valid("json");
      const { row } = await connectAws(deps, principal, org, awsCredentials(body.provider, body.credentials));
      return c.json({ provider: "aws", status: row.status, configured_at: row.createdAt.toISOString() }, 200);
    },
  );

  router.openapi(
    createRoute({
      ...route("delete", "/integrations/{provider}", "Remove a cloud integration's credentials"),
      request: { params: z.object({ provider: z.enum(PROVIDERS) }) },
      responses: { 200: anyJson("removed"), ...errorResponses },
    }),
    async (c) => {
      const principal = c.get("principal");
      const org = await tokenTenant(db, principal);
      const { provider } = c.req.valid("param");
      const deleted = await db
        .delete(integrationCredentials)
        .where(and(eq(integrationCredentials.organizationId, org.id), eq(integrationCredentials.provider, provider)))
        .returning({ id: integrationCredentials.id });
      if (deleted.length === 0) throw new NotFoundError(`no ${provider} integration is configured`);
      await recordAudit(db, principal, { action: `integration.${provider}.delete`, organizationId: org.id, target: `tenant:${org.slug}/integrations/${provider}` });
      return c.json({ provider, status: "removed" }, 200);
    },
  );

  router.openapi(
    createRoute({ ...route("get", "/validation/summary", "Validation checks"), responses: { 200: json(validationSchema, "checks"), ...errorResponses } }),
    async (c) => {
      const org = await tokenTenant(db, c.get("principal"));
      return c.json(await validateTenant(db, org.id), 200);
    },
  );

  router.openapi(
    createRoute({
      ...route("get", "/deployment/summary", "Agent rollout summary"),
      request: { query: deploymentQuerySchema },
      responses: { 200: json(deploymentSummarySchema, "rollout"), ...errorResponses },
    }),
    async (c) => {
      const org = await tokenTenant(db, c.get("principal"));
      return c.json(await currentDeployment(deps, org.id, c.req.valid("query").refresh === "true"), 200);
    },
  );

  router.openapi(
    createRoute({
      ...route("post", "/deployment/retry", "Retry the agent install on failed instances"),
      responses: { 200: json(retryResultSchema, "commands sent"), 409: anyJson("stack not applied"), 502: anyJson("tenant account unreachable"), ...errorResponses },
    }),
    async (c) => {
      const principal = c.get("principal");
      const org = await tokenTenant(db, principal);
      return c.json(await retryDeployment(deps, principal, org.id), 200);
    },
  );

  router.openapi(
    createRoute({ ...route("get", "/deployment/health", "Agent health"), responses: { 200: json(deploymentHealthSchema, "agent health"), ...errorResponses } }),
    async (c) => {
      const org = await tokenTenant(db, c.get("principal"));
      return c.json(await deploymentHealth(db, org.id), 200);
    },
  );

  return router;
}
