/**
 * /v1/tenants/{slug}: what onboarding has found and how far it got: progress (stack, discovery, deployment,
 * validation), discovered assets, discovery scans (and a new one on demand).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ASSET_PRIORITIES, PERMISSION_FINDING_SOURCES } from "../../db/schema";
import type { Services } from "../../services";
import type { AssetPageQuery } from "../../services/discovery/discovery-service";
import { presentAssetPage, presentProgress, presentScan } from "../presenters";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import {
  accountRefSchema,
  clusterRolloutSchema,
  errorResponse,
  errorResponses,
  integerQuery,
  postErrorResponses,
  runErrorSchema,
  slugParamsSchema,
} from "../schemas";

const phase = z.object({ status: z.enum(["pending", "in_progress", "completed", "failed"]), progress: z.number() });
export const progressSchema = z
  .object({
    stack: phase.extend({ run_id: z.string().nullable(), resources_done: z.number(), resources_total: z.number() }),
    discovery: phase.extend({
      scan_id: z.string().nullable(),
      assets_found: z.number(),
      regions_failed: z.array(z.string()),
      regions_excluded_by_organization: z.array(z.string()).describe("regions the organization's service control policy closes to the platform"),
    }),
    deployment: phase.extend({
      targeted: z.number(),
      agents_deployed: z.number(),
      failed: z.number(),
      clusters: z.array(clusterRolloutSchema).describe("the agent DaemonSet on each EKS cluster found"),
    }),
    validation: phase.extend({ checks_passed: z.number(), checks_total: z.number() }),
    overall_progress: z.number(),
    onboarding_status: z.string(),
    action_required: z.array(z.object({ reason: z.string(), fix: z.string() })),
    missing_permissions: z
      .array(
        z.object({
          aws_account_id: z.string(),
          region: z.string().describe("an AWS region, or `global` for IAM, STS and Organizations"),
          action: z.string(),
          resource: z.string().nullable(),
          cause: z.string().describe("AWS's cause: service_control_policy, permissions_boundary, no_allow, ..."),
          source: z.enum(PERMISSION_FINDING_SOURCES),
          reason: z.string(),
          fix: z.string(),
          excluded_by_organization: z.boolean(),
          first_seen_at: z.string(),
          last_seen_at: z.string(),
          occurrences: z.number().int(),
        }),
      )
      .describe("what AWS refused the platform in the tenant's accounts, open until a later call goes through"),
    change_pending: z.string().nullable(),
    drift: z
      .object({
        status: z.literal("drifted"),
        run_id: z.string(),
        checked_at: z.string(),
        resources: z.array(z.object({ urn: z.string(), type: z.string(), op: z.string(), properties: z.array(z.string()) })),
      })
      .nullable(),
    accounts: z
      .object({
        status: z.string(),
        total: z.number().int(),
        by_status: z.record(z.string(), z.number()),
        accounts: z.array(
          accountRefSchema.extend({
            progress: z.number(),
            instances_discovered: z.number().int(),
            agents_installed: z.number().int(),
            reasons: z.array(z.object({ reason: z.string(), fix: z.string() })),
          }),
        ),
      })
      .nullable(),
  })
  .openapi("Progress");

export const assetSchema = z
  .object({
    asset_id: z.string(),
    asset_type: z.string(),
    provider: z.string(),
    region: z.string(),
    aws_account_id: z.string().nullable(),
    name: z.string().nullable(),
    tags: z.record(z.string(), z.string()),
    priority: z.enum(ASSET_PRIORITIES),
    agent_compatible: z.boolean(),
    agent_status: z.string(),
    discovered_at: z.string(),
    last_seen_at: z.string(),
    removed_at: z.string().nullable(),
    data: z.record(z.string(), z.unknown()),
  })
  .openapi("Asset");

const scanSchema = z
  .object({
    id: z.string(),
    trigger: z.string(),
    status: z.string(),
    requested_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
    assets_found: z.number().nullable(),
    changes: z.object({ inserted: z.number(), updated: z.number(), removed: z.number() }).nullable(),
    regions: z
      .array(
        z.object({
          region: z.string(),
          status: z.enum(["succeeded", "failed", "not_enabled", "excluded_by_organization"]),
          assets: z.number(),
          error: z.string().optional(),
          clusters_error: z.string().optional().describe("EKS clusters could not be listed here (the region's instances were)"),
        }),
      )
      .nullable(),
    error: runErrorSchema.nullable(),
    aws_account_id: z.string().nullable(),
  })
  .openapi("DiscoveryScan");

export const ASSETS_PAGE_MAX = 1000;
/** The largest row id PostgreSQL's integer holds: a cursor past it would overflow the comparison. */
const CURSOR_MAX = 2_147_483_647;

export const assetsQuerySchema = z.object({
  type: z
    .string()
    .regex(/^[a-z0-9_-]{1,32}$/, "must be an asset type such as ec2 or rds")
    .optional(),
  include_removed: z.enum(["true", "false"]).default("false"),
  limit: integerQuery(1, ASSETS_PAGE_MAX)
    .default(100)
    .openapi({ description: `assets per page (at most ${ASSETS_PAGE_MAX})` }),
  cursor: integerQuery(0, CURSOR_MAX).optional().openapi({ description: "the `next_cursor` of the previous page; absent: the first page" }),
});

export const assetQueryOf = (query: z.infer<typeof assetsQuerySchema>): AssetPageQuery => ({
  type: query.type,
  includeRemoved: query.include_removed === "true",
  limit: query.limit,
  after: query.cursor,
});

export const assetPageSchema = z
  .object({
    assets: z.array(assetSchema),
    next_cursor: z.number().int().nullable().openapi({
      description:
        "pass as `cursor` for the next page; null on the last page. Pages follow discovery order, so assets found while a client pages come last",
    }),
    total: z.number().int().openapi({ description: "the assets matching the query over all pages" }),
  })
  .openapi("AssetPage");

const progressRoute = createRoute({
  method: "get",
  path: "/{slug}/progress",
  operationId: "getProgress",
  tags: ["onboarding"],
  summary: "Onboarding progress: stack, discovery, deployment and validation, and overall",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: json(progressSchema, "progress"), ...errorResponses },
});

const assetsRoute = createRoute({
  method: "get",
  path: "/{slug}/assets",
  tags: ["onboarding"],
  summary: "Discovered assets, a page at a time (keyset pagination: follow next_cursor)",
  security,
  request: { params: slugParamsSchema, query: assetsQuerySchema },
  responses: { 200: json(assetPageSchema, "a page of assets"), ...errorResponses },
});

const scansRoute = createRoute({
  method: "get",
  path: "/{slug}/discovery/scans",
  tags: ["onboarding"],
  summary: "Discovery scans, newest first, with per-region results",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: json(z.object({ scans: z.array(scanSchema) }), "scans"), ...errorResponses },
});

const requestScanRoute = createRoute({
  method: "post",
  path: "/{slug}/discovery/scans",
  tags: ["onboarding"],
  summary: "Discover the tenant's assets now (returns the active scan if one is queued or running)",
  security,
  request: { params: slugParamsSchema },
  responses: {
    202: json(z.object({ scan_id: z.string(), already_active: z.boolean() }), "queued"),
    ...errorResponses,
    ...postErrorResponses,
    409: errorResponse("the tenant's stack is not applied yet (code tenant_not_deployed), or the Idempotency-Key is in progress"),
  },
});

export function onboardingRouter({ onboarding, discovery }: Pick<Services, "onboarding" | "discovery">) {
  const router = createRouter();

  router.openapi(progressRoute, async (c) => c.json(presentProgress(await onboarding.progress(await c.var.tenant())), 200));

  router.openapi(assetsRoute, async (c) => {
    const page = await discovery.assets(await c.var.tenant(), assetQueryOf(c.req.valid("query")));
    return c.json(presentAssetPage(page), 200);
  });

  router.openapi(scansRoute, async (c) => {
    const scans = await discovery.scans(await c.var.tenant());
    return c.json({ scans: scans.map(presentScan) }, 200);
  });

  router.openapi(requestScanRoute, async (c) => {
    const { scanId, alreadyActive } = await discovery.requestScan(c.get("principal"), await c.var.tenant());
    return c.json({ scan_id: scanId, already_active: alreadyActive }, 202);
  });

  return router;
}
