/**
 * /v1/tenants/{slug}: what onboarding has found and how far it got: progress (stack, discovery, deployment,
 * validation), discovered assets, discovery scans (and a new one on demand).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, desc, eq, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { ASSET_PRIORITIES, cloudAssets, discoveryScans, type CloudAsset, type DiscoveryScan } from "../../db/schema";
import type { ScanQueue } from "../../services/discovery/scan-queue";
import { provisionedRoleArn } from "../../services/discovery/scan-runner";
import { tenantProgress } from "../../services/tenant/progress";
import { recordAudit } from "../../services/tenant/audit-store";
import { loadVisibleOrganization } from "../auth";
import { ConflictError } from "../errors";
import { iso } from "../presenters";
import { createRouter } from "../router";
import { errorResponses, slugParamsSchema } from "../schemas";

const security = [{ bearerAuth: [] }];
const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

const phase = z.object({ status: z.enum(["pending", "in_progress", "completed", "failed"]), progress: z.number() });
export const progressSchema = z
  .object({
    stack: phase.extend({ run_id: z.string().nullable(), resources_done: z.number(), resources_total: z.number() }),
    discovery: phase.extend({ scan_id: z.string().nullable(), assets_found: z.number(), regions_failed: z.array(z.string()) }),
    deployment: phase.extend({ targeted: z.number(), agents_deployed: z.number(), failed: z.number() }),
    validation: phase.extend({ checks_passed: z.number(), checks_total: z.number() }),
    overall_progress: z.number(),
  })
  .openapi("Progress");

export const assetSchema = z
  .object({
    asset_id: z.string(),
    asset_type: z.string(),
    provider: z.string(),
    region: z.string(),
    name: z.string().nullable(),
    tags: z.record(z.string(), z.string()),
    priority: z.enum(ASSET_PRIORITIES),
    agent_compatible: z.boolean(),
    agent_status: z.string(),
    discovered_at: z.string(),
    last_seen_at: z.string(),
    removed_at: z.string().nullable(),
    data: z.record(z.string(), z.any()),
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
    changes: z.any().nullable(),
    regions: z.array(z.any()).nullable(),
    error: z.any().nullable(),
  })
  .openapi("DiscoveryScan");

export function presentAsset(asset: CloudAsset) {
  return {
    asset_id: asset.assetId,
    asset_type: asset.assetType,
    provider: asset.provider,
    region: asset.region,
    name: asset.tags.Name ?? null,
    tags: asset.tags,
    priority: asset.priority,
    agent_compatible: asset.agentCompatible,
    agent_status: asset.agentStatus,
    discovered_at: asset.discoveredAt.toISOString(),
    last_seen_at: asset.lastSeenAt.toISOString(),
    removed_at: iso(asset.removedAt),
    data: asset.assetData,
  };
}

export function presentScan(scan: DiscoveryScan) {
  return {
    id: scan.id,
    trigger: scan.trigger,
    status: scan.status,
    requested_at: scan.requestedAt.toISOString(),
    started_at: iso(scan.startedAt),
    finished_at: iso(scan.finishedAt),
    assets_found: scan.assetsFound,
    changes: scan.changes,
    regions: scan.regions,
    error: scan.error,
  };
}

export const assetsQuerySchema = z.object({
  type: z.string().regex(/^[a-z0-9_-]{1,32}$/, "must be an asset type such as ec2 or rds").optional(),
  include_removed: z.enum(["true", "false"]).default("false"),
});

export async function listAssets(db: DrizzleDatabase, organizationId: number, query: z.infer<typeof assetsQuerySchema>) {
  return db
    .select()
    .from(cloudAssets)
    .where(
      and(
        eq(cloudAssets.organizationId, organizationId),
        query.type ? eq(cloudAssets.assetType, query.type) : undefined,
        query.include_removed === "true" ? undefined : isNull(cloudAssets.removedAt),
      ),
    )
    .orderBy(asc(cloudAssets.assetType), asc(cloudAssets.assetId));
}

/** Requests a scan, or returns the one already queued or running; 409 before the stack exists. */
export async function requestDiscovery(db: DrizzleDatabase, scans: ScanQueue, organizationId: number, actor: string) {
  if (!(await provisionedRoleArn(db, organizationId))) {
    throw new ConflictError("discovery needs the tenant's stack applied first (a successful up run)");
  }
  return scans.request({ organizationId, trigger: "manual", actor });
}

const progressRoute = createRoute({
  method: "get",
  path: "/{slug}/progress",
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
  summary: "Discovered assets",
  security,
  request: { params: slugParamsSchema, query: assetsQuerySchema },
  responses: { 200: json(z.object({ assets: z.array(assetSchema) }), "assets"), ...errorResponses },
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
    409: { ...errorResponses[404], description: "the tenant's stack is not applied yet" },
    ...errorResponses,
  },
});

export interface OnboardingRouterDeps {
  db: DrizzleDatabase;
  scanQueue: () => ScanQueue;
}

export function onboardingRouter(deps: OnboardingRouterDeps) {
  const { db } = deps;
  const router = createRouter();

  router.openapi(progressRoute, async (c) => {
    const org = await loadVisibleOrganization(db, c.get("principal"), c.req.valid("param").slug);
    return c.json(await tenantProgress(db, org.id), 200);
  });

  router.openapi(assetsRoute, async (c) => {
    const org = await loadVisibleOrganization(db, c.get("principal"), c.req.valid("param").slug);
    const assets = await listAssets(db, org.id, c.req.valid("query"));
    return c.json({ assets: assets.map(presentAsset) }, 200);
  });

  router.openapi(scansRoute, async (c) => {
    const org = await loadVisibleOrganization(db, c.get("principal"), c.req.valid("param").slug);
    const scans = await db
      .select()
      .from(discoveryScans)
      .where(eq(discoveryScans.organizationId, org.id))
      .orderBy(desc(discoveryScans.requestedAt))
      .limit(50);
    return c.json({ scans: scans.map(presentScan) }, 200);
  });

  router.openapi(requestScanRoute, async (c) => {
    const principal = c.get("principal");
    const org = await loadVisibleOrganization(db, principal, c.req.valid("param").slug);
    const { scanId, alreadyActive } = await requestDiscovery(db, deps.scanQueue(), org.id, principal.actor);
    await recordAudit(db, principal, { action: "discovery.request", organizationId: org.id, target: `scan:${scanId}` });
    return c.json({ scan_id: scanId, already_active: alreadyActive }, 202);
  });

  return router;
}
