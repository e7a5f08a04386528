/**
 * /v1/tenants/{slug}: the agent rollout (per-instance status read live from SSM, with the stored state as the
 * fallback when the tenant's account cannot be read), the retry of failed installs, the agents' health, and the
 * validation checks, and an operator's reset of one agent's enrollment. The same operations back the seed-compatible
 * v2 endpoints.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../services";
import { INSTALL_FAILURE_CAUSES } from "../../services/rollout/install-failure-fns";
import { CHECK_NAMES } from "../../services/rollout/validation-checks";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { clusterRolloutSchema, errorResponse, errorResponses, postErrorResponses, slugParamsSchema } from "../schemas";
import { HEARTBEAT_INTERVAL_SECONDS } from "../../services/rollout/enrollment";
import { presentAgent, presentDeployment, presentHealth, presentRetry, presentValidation } from "../presenters";

export const deploymentSummarySchema = z
  .object({
    targeting: z.string().nullable().openapi({ description: "what the applied stack targets; null before the first successful up" }),
    change_pending: z.string().nullable().openapi({ description: 'settings not applied yet: "change pending: run an up ..."' }),
    unmanaged: z.number().openapi({ description: "targeted instances SSM does not manage (instance profile or Default Host Management needed)" }),
    targeted: z.number(),
    stopped: z.number().openapi({ description: "targeted instances that are stopped: they get the agent when they start" }),
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
        state: z.string().nullable(),
        targeted: z.boolean(),
        agent_status: z.string(),
        reason: z.string().nullable(),
        failure: z
          .object({
            cause: z.enum(INSTALL_FAILURE_CAUSES),
            reason: z.string(),
            fix: z.string(),
            output_lines: z.array(z.string()).describe("the install step's last output lines, standard error first, secrets redacted"),
          })
          .nullable()
          .describe("a failed install's cause and fix, read from what the install step printed on the instance"),
        status_at: z.string().nullable(),
      }),
    ),
    clusters: z.array(clusterRolloutSchema).describe("every EKS cluster found: whether the agent DaemonSet covers it, and how far it rolled out"),
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
    status: z.enum(["healthy", "degraded", "no_agents", "offboarded"]),
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
    change_pending: z.string().nullable(),
  })
  .openapi("Validation");

const agentParamsSchema = slugParamsSchema.extend({
  instance_id: z.string().regex(/^i-[A-Za-z0-9-]{1,60}$/, "must be an EC2 instance id such as i-0123456789abcdef0"),
});

const resetAgentSchema = z
  .object({
    agent_id: z.number().int(),
    instance_id: z.string(),
    hostname: z.string().nullable(),
    agent_version: z.string().nullable(),
    enrolled_at: z.string(),
    last_heartbeat_at: z.string().nullable(),
    heartbeat_interval_seconds: z.number().int(),
  })
  .openapi("AgentEnrollmentReset");

export const deploymentQuerySchema = z.object({
  refresh: z.enum(["true", "false"]).default("true").openapi({ description: "read the rollout from SSM first (default true)" }),
});

export function deploymentRouter({ rollout }: Pick<Services, "rollout">) {
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
    async (c) => c.json(presentDeployment(await rollout.deployment(await c.var.tenant(), c.req.valid("query").refresh === "true")), 200),
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
        ...errorResponses,
        ...postErrorResponses,
        409: errorResponse("the tenant's stack is not applied yet (code tenant_not_deployed), or the Idempotency-Key is in progress"),
        502: errorResponse("the tenant's account could not be reached (code tenant_aws_unreachable)"),
      },
    }),
    async (c) => c.json(presentRetry(await rollout.retry(c.get("principal"), await c.var.tenant())), 200),
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
    async (c) => c.json(presentHealth(await rollout.health(await c.var.tenant())), 200),
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
    async (c) => c.json(presentValidation(await rollout.validation(await c.var.tenant())), 200),
  );

  router.openapi(
    createRoute({
      method: "delete",
      path: "/{slug}/agents/{instance_id}/enrollment",
      tags: ["deployment"],
      summary: "Platform operators: reset an instance's agent enrollment. Its credential stops working and the instance may enroll again without it",
      security,
      request: { params: agentParamsSchema },
      responses: {
        200: json(resetAgentSchema, "reset: the agent's credential no longer authenticates"),
        ...errorResponses,
        403: errorResponse("not a platform admin token"),
        404: errorResponse("unknown tenant, or no agent enrolled for this instance (code agent_not_enrolled)"),
      },
    }),
    async (c) => {
      const agent = await rollout.resetEnrollment(c.get("principal"), await c.var.tenant(), c.req.valid("param").instance_id);
      return c.json(presentAgent(agent, HEARTBEAT_INTERVAL_SECONDS), 200);
    },
  );

  return router;
}
