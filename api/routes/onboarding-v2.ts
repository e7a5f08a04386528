/**
 * The seeds' endpoint set (/api/onboarding/v2/*), kept for their clients: tenant-scoped tokens only, the tenant taken
 * from the token. Built on the same services as /v1 (runs go through the same run service, approval gate included);
 * shapes as the seeds had them.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ConflictError } from "../../lib/errors";
import { externalIdSchema, roleArnSchema } from "../../programs/tenant/config";
import type { Services } from "../../services";
import { notSupported } from "../../services/integration/integration-service";
import type { Principal } from "../../services/tenant/principal";
import { presentAssetPage, presentDeployment, presentHealth, presentRetry, presentValidation } from "../presenters";
import { createRouter } from "../router";
import { bodyErrorResponses, errorResponse, errorResponses, postErrorResponses } from "../schemas";
import {
  deploymentHealthSchema,
  deploymentQuerySchema,
  deploymentSummarySchema,
  retryResultSchema,
  validationSchema,
} from "./deployment";
import { assetPageSchema, assetQueryOf, assetsQuerySchema } from "./onboarding";

const security = [{ bearerAuth: [] }];
const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

const PROVIDERS = ["aws", "azure", "gcp"] as const;

const phaseStatus = z.enum(["pending", "in_progress", "completed", "failed"]);
const v2ProgressSchema = z
  .object({
    discovery: z.object({ status: phaseStatus, progress: z.number(), assets_found: z.number() }),
    deployment: z.object({ status: phaseStatus, progress: z.number(), agents_deployed: z.number() }),
    validation: z.object({ status: phaseStatus, progress: z.number(), checks_passed: z.number() }),
    overall_progress: z.number(),
  })
  .openapi("V2Progress");
const v2RefreshSchema = z
  .object({ status: z.literal("initiated"), scan_id: z.string(), already_active: z.boolean() })
  .openapi("V2AssetsRefresh");
const v2IntegrationsSchema = z
  .array(
    z.object({
      provider: z.enum(PROVIDERS),
      status: z.string(),
      configured_at: z.string(),
      regions: z.array(z.string()),
      asset_count: z.number().int(),
    }),
  )
  .openapi("V2Integrations");
const v2SetupResultSchema = z
  .object({ provider: z.literal("aws"), status: z.string(), configured_at: z.string() })
  .openapi("V2IntegrationSetup");
const v2RemovedSchema = z.object({ provider: z.enum(PROVIDERS), status: z.literal("removed") }).openapi("V2IntegrationRemoved");

/** Connecting credentials (quick-start, setup) may also answer these. */
const connectRefusals = {
  ...bodyErrorResponses,
  ...postErrorResponses,
  422: errorResponse(
    "the role could not be assumed with the external ID (code credentials_rejected), the tenant is not ready for stack runs (tenant_not_ready), or the Idempotency-Key was used for another request",
  ),
  501: errorResponse("the provider is not supported yet: only aws is (code not_implemented)"),
};
const awsCredentialsSchema = z.strictObject({
  role_arn: roleArnSchema,
  external_id: externalIdSchema.optional(),
});
/**
 * Seed clients send credentials per provider. AWS's are checked field by field, and the document says so (a union on
 * `provider`); azure and gcp take any credentials and answer 501.
 */
const setupSchema = z.discriminatedUnion(
  "provider",
  [
    z.strictObject({ provider: z.literal("aws"), credentials: awsCredentialsSchema }),
    z.strictObject({ provider: z.enum(["azure", "gcp"]), credentials: z.record(z.string(), z.unknown()) }),
  ],
  { error: `must be one of ${PROVIDERS.map((provider) => JSON.stringify(provider)).join(", ")}` },
);

function awsCredentials(body: z.infer<typeof setupSchema>) {
  if (body.provider !== "aws") throw notSupported(body.provider);
  return { bootstrapRoleArn: body.credentials.role_arn, externalId: body.credentials.external_id };
}

const route = <const M extends "get" | "post" | "delete", const P extends string>(method: M, path: P, summary: string) => ({
  method,
  path,
  tags: ["onboarding v2 (seed-compatible)"],
  summary,
  security,
});

export function onboardingV2Router({ tenants, integrations, runs, discovery, rollout }: Services) {
  const router = createRouter();
  const tenantOf = (c: { get(key: "principal"): Principal }) => tenants.tokenTenant(c.get("principal"));

  router.openapi(
    createRoute({
      ...route("post", "/quick-start", "Connect a cloud account and start onboarding (quick-start flow only)"),
      request: { body: { content: { "application/json": { schema: setupSchema } }, required: true } },
      responses: {
        200: json(
          z.object({
            status: z.literal("initiated"),
            message: z.string(),
            estimated_completion: z.string(),
            run_id: z.string(),
            awaiting_approval: z.boolean(),
          }),
          "initiated (with approval required: a preview whose plan waits for a platform admin)",
        ),
        ...errorResponses,
        ...connectRefusals,
        409: errorResponse("the organization's onboarding flow is not quick_start, a run is active, or the Idempotency-Key is in progress"),
        503: errorResponse("the service is not configured for stack runs (PLATFORM_PRINCIPAL_ARN); an operator must set it"),
      },
    }),
    async (c) => {
      const principal = c.get("principal");
      const org = await tenantOf(c);
      if (org.onboardingFlowVersion !== "quick_start") {
        throw new ConflictError(`organization ${JSON.stringify(org.slug)} uses the ${org.onboardingFlowVersion} onboarding flow, not quick_start`);
      }
      const body = c.req.valid("json");
      await integrations.connectAws(principal, org, awsCredentials(body));
      const started = await runs.startOnboarding(principal, await tenants.reload(org));
      return c.json(
        {
          status: "initiated" as const,
          message: started.awaitingApproval
            ? "A preview of the changes was started; a platform operator must approve it before anything is applied."
            : "Onboarding started: provisioning access, then discovering assets and deploying agents.",
          estimated_completion: new Date(Date.now() + 5 * 60_000).toISOString(),
          run_id: started.runId,
          awaiting_approval: started.awaitingApproval,
        },
        200,
      );
    },
  );

  router.openapi(
    createRoute({ ...route("get", "/progress", "Onboarding progress"), responses: { 200: json(v2ProgressSchema, "progress"), ...errorResponses } }),
    async (c) => {
      const progress = await tenants.progress(await tenantOf(c));
      return c.json(
        {
          discovery: { status: progress.discovery.status, progress: progress.discovery.progress, assets_found: progress.discovery.assetsFound },
          deployment: { status: progress.deployment.status, progress: progress.deployment.progress, agents_deployed: progress.deployment.agentsDeployed },
          validation: { status: progress.validation.status, progress: progress.validation.progress, checks_passed: progress.validation.checksPassed },
          overall_progress: progress.overallProgress,
        },
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      ...route("get", "/assets", "Discovered assets"),
      request: { query: assetsQuerySchema },
      responses: { 200: json(assetPageSchema, "a page of assets (`total` counts every page)"), ...errorResponses },
    }),
    async (c) => {
      const page = await discovery.assets(await tenantOf(c), assetQueryOf(c.req.valid("query")));
      return c.json(presentAssetPage(page), 200);
    },
  );

  router.openapi(
    createRoute({ ...route("post", "/assets/refresh", "Discover assets again now"), responses: {
        202: json(v2RefreshSchema, "queued"),
        ...errorResponses,
        ...postErrorResponses,
        409: errorResponse("the tenant's stack is not applied yet (code tenant_not_deployed), or the Idempotency-Key is in progress"),
      },
    }),
    async (c) => {
      const { scanId, alreadyActive } = await discovery.requestScan(c.get("principal"), await tenantOf(c));
      return c.json({ status: "initiated" as const, scan_id: scanId, already_active: alreadyActive }, 202);
    },
  );

  router.openapi(
    createRoute({ ...route("get", "/integrations", "Cloud integrations"), responses: { 200: json(v2IntegrationsSchema, "integrations"), ...errorResponses } }),
    async (c) => {
      const overview = await integrations.list(await tenantOf(c));
      return c.json(
        overview.map((item) => ({
          provider: item.provider,
          status: item.status,
          configured_at: item.configuredAt.toISOString(),
          regions: item.regions,
          asset_count: item.assetCount,
        })),
        200,
      );
    },
  );

  router.openapi(
    createRoute({
      ...route("post", "/integrations/setup", "Connect a cloud account"),
      request: { body: { content: { "application/json": { schema: setupSchema } }, required: true } },
      responses: { 200: json(v2SetupResultSchema, "connected"), ...errorResponses, ...connectRefusals },
    }),
    async (c) => {
      const body = c.req.valid("json");
      const { row } = await integrations.connectAws(c.get("principal"), await tenantOf(c), awsCredentials(body));
      return c.json({ provider: "aws" as const, status: row.status, configured_at: row.createdAt.toISOString() }, 200);
    },
  );

  router.openapi(
    createRoute({
      ...route("delete", "/integrations/{provider}", "Remove a cloud integration's credentials"),
      // `/integrations/setup` is another resource (POST only): DELETE there is a 405 with Allow, not a bad provider.
      middleware: [async (c, next) => (c.req.param("provider") === "setup" ? c.notFound() : next())] as const,
      request: { params: z.object({ provider: z.enum(PROVIDERS) }) },
      responses: { 200: json(v2RemovedSchema, "removed"), ...errorResponses },
    }),
    async (c) => {
      const { provider } = c.req.valid("param");
      await integrations.remove(c.get("principal"), await tenantOf(c), provider);
      return c.json({ provider, status: "removed" as const }, 200);
    },
  );

  router.openapi(
    createRoute({ ...route("get", "/validation/summary", "Validation checks"), responses: { 200: json(validationSchema, "checks"), ...errorResponses } }),
    async (c) => c.json(presentValidation(await rollout.validation(await tenantOf(c))), 200),
  );

  router.openapi(
    createRoute({
      ...route("get", "/deployment/summary", "Agent rollout summary"),
      request: { query: deploymentQuerySchema },
      responses: { 200: json(deploymentSummarySchema, "rollout"), ...errorResponses },
    }),
    async (c) => c.json(presentDeployment(await rollout.deployment(await tenantOf(c), c.req.valid("query").refresh === "true")), 200),
  );

  router.openapi(
    createRoute({
      ...route("post", "/deployment/retry", "Retry the agent install on failed instances"),
      responses: {
        200: json(retryResultSchema, "commands sent"),
        ...errorResponses,
        ...postErrorResponses,
        409: errorResponse("the tenant's stack is not applied yet (code tenant_not_deployed), or the Idempotency-Key is in progress"),
        502: errorResponse("the tenant's account could not be reached (code tenant_aws_unreachable)"),
      },
    }),
    async (c) => c.json(presentRetry(await rollout.retry(c.get("principal"), await tenantOf(c))), 200),
  );

  router.openapi(
    createRoute({ ...route("get", "/deployment/health", "Agent health"), responses: { 200: json(deploymentHealthSchema, "agent health"), ...errorResponses } }),
    async (c) => c.json(presentHealth(await rollout.health(await tenantOf(c))), 200),
  );

  return router;
}
