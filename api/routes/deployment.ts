/**
 * /v1/tenants/{slug}: the agent rollout (per-instance status read live from SSM, with the stored state as the
 * fallback when the tenant's account cannot be read), the retry of failed installs, the agents' health, and the
 * validation checks. The same operations back the seed-compatible v2 endpoints.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { retryFailedDeployments } from "../../services/rollout/retry";
import { deploymentHealth, deploymentSummary } from "../../services/rollout/rollout-summary";
import { openTenantSession, TenantAwsAccessError, TenantNotDeployedError } from "../../services/integration/tenant-aws-session";
import type { Principal } from "../auth";
import { loadVisibleOrganization } from "../auth";
import { recordAudit } from "../../services/tenant/audit-store";
import { advanceOnboardingStatus, refreshDeployment } from "../../services/rollout/deployment-follow-up";
import { CHECK_NAMES, validateTenant } from "../../services/rollout/validation-checks";
import { createRouter } from "../router";
import { errorResponses, errorSchema, slugParamsSchema } from "../schemas";

const security = [{ bearerAuth: [] }];
const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

export const deploymentSummarySchema = z
  .object({
    targeted: z.number(),
    installed: z.number(),
    failed: z.number(),
    pending: z.number(),
    not_compatible: z.number(),
    not_targeted: z.number(),
    checked_in: z.number(),
    last_checked_at: z.string().nullable(),
    refreshed: z.boolean().openapi({ description: "whether SSM was read for this answer" }),
    refresh_error: z.string().optional().openapi({ description: "why SSM could not be read (the stored state is shown)" }),
    instances: z.array(
      z.object({
        asset_id: z.string(),
        name: z.string().nullable(),
        asset_type: z.string(),
        region: z.string(),
        priority: z.string(),
        platform: z.string().nullable(),
        targeted: z.boolean(),
        agent_status: z.string(),
        reason: z.string().nullable(),
        status_at: z.string().nullable(),
      }),
    ),
  })
  .openapi("DeploymentSummary");

export const retryResultSchema = z
  .object({
    retried: z.number(),
    commands: z.array(z.object({ command_id: z.string(), region: z.string(), instance_ids: z.array(z.string()) })),
  })
  .openapi("DeploymentRetry");

export const deploymentHealthSchema = z
  .object({
    status: z.enum(["healthy", "degraded", "no_agents"]),
    agents_enrolled: z.number(),
    agents_healthy: z.number(),
    agents_stale: z.number(),
    targeted_without_agent: z.number(),
    stale_after_seconds: z.number(),
    agents: z.array(
      z.object({
        instance_id: z.string(),
        hostname: z.string().nullable(),
        agent_version: z.string().nullable(),
        last_heartbeat_at: z.string().nullable(),
        healthy: z.boolean(),
      }),
    ),
  })
  .openapi("DeploymentHealth");

export const validationSchema = z
  .object({
    checks: z.array(z.object({ name: z.enum(CHECK_NAMES), status: z.enum(["passed", "failed", "pending"]), reason: z.string().optional() })),
    passed: z.number(),
    total: z.number(),
  })
  .openapi("Validation");

export const deploymentQuerySchema = z.object({
  refresh: z.enum(["true", "false"]).default("true").openapi({ description: "read the rollout from SSM first (default true)" }),
});

export interface DeploymentRouterDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
}

/** The rollout summary, read from SSM first when asked and possible. */
export async function currentDeployment(deps: DeploymentRouterDeps, organizationId: number, refresh: boolean) {
  let refreshed = false;
  let refreshError: string | undefined;
  if (refresh) {
    try {
      await refreshDeployment(deps.db, deps.keyring, organizationId);
      refreshed = true;
    } catch (error) {
      if (!(error instanceof TenantNotDeployedError || error instanceof TenantAwsAccessError)) throw error;
      refreshError = error.message;
    }
  }
  return { ...(await deploymentSummary(deps.db, organizationId)), refreshed, ...(refreshError ? { refresh_error: refreshError } : {}) };
}

export async function retryDeployment(deps: DeploymentRouterDeps, principal: Principal, organizationId: number) {
  const session = await openTenantSession(deps.db, deps.keyring, organizationId);
  const result = await retryFailedDeployments(deps.db, session, principal.actor);
  await recordAudit(deps.db, principal, {
    action: "deployment.retry",
    organizationId,
    details: { retried: result.retried, commands: result.commands.map((command) => command.command_id) },
  });
  await advanceOnboardingStatus(deps.db, organizationId);
  return result;
}

export function deploymentRouter(deps: DeploymentRouterDeps) {
  const { db } = deps;
  const router = createRouter();

  router.openapi(
    createRoute({
      method: "get",
      path: "/{slug}/deployment",
      tags: ["deployment"],
      summary: "Agent rollout: targeted, installed, failed, pending, not compatible, and each instance's status with its reason",
      security,
      request: { params: slugParamsSchema, query: deploymentQuerySchema },
      responses: { 200: json(deploymentSummarySchema, "rollout"), ...errorResponses },
    }),
    async (c) => {
      const org = await loadVisibleOrganization(db, c.get("principal"), c.req.valid("param").slug);
      return c.json(await currentDeployment(deps, org.id, c.req.valid("query").refresh === "true"), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "post",
      path: "/{slug}/deployment/retry",
      tags: ["deployment"],
      summary: "Re-run the agent document on the instances whose install failed (highest priority first)",
      security,
      request: { params: slugParamsSchema },
      responses: {
        200: json(retryResultSchema, "commands sent (none when nothing failed)"),
        409: json(errorSchema, "the tenant's stack is not applied yet"),
        502: json(errorSchema, "the tenant's account could not be reached"),
        ...errorResponses,
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const org = await loadVisibleOrganization(db, principal, c.req.valid("param").slug);
      return c.json(await retryDeployment(deps, principal, org.id), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/{slug}/deployment/health",
      tags: ["deployment"],
      summary: "Enrolled agents and whether their heartbeats are current",
      security,
      request: { params: slugParamsSchema },
      responses: { 200: json(deploymentHealthSchema, "agent health"), ...errorResponses },
    }),
    async (c) => {
      const org = await loadVisibleOrganization(db, c.get("principal"), c.req.valid("param").slug);
      return c.json(await deploymentHealth(db, org.id), 200);
    },
  );

  router.openapi(
    createRoute({
      method: "get",
      path: "/{slug}/validation",
      tags: ["deployment"],
      summary: "The validation checks, each passed, failed (with the reason) or pending",
      security,
      request: { params: slugParamsSchema },
      responses: { 200: json(validationSchema, "checks"), ...errorResponses },
    }),
    async (c) => {
      const org = await loadVisibleOrganization(db, c.get("principal"), c.req.valid("param").slug);
      return c.json(await validateTenant(db, org.id), 200);
    },
  );

  return router;
}
