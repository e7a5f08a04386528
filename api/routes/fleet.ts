/**
 * /v1/fleet (platform admin): fleet runs (one operation over many tenants with max_concurrency and max_failures),
 * their progress as server-sent events (read from the database: any replica serves it), cancel, and the fleet at a
 * glance (tenants by status, drifted, the onboarding KPIs).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { componentRef, eventOnChange, eventStreamResponse, type EventStreams } from "../sse";
import { FLEET_RUN_KINDS, FLEET_RUN_STATUSES, FLEET_TENANT_STATUSES, ONBOARDING_STATUSES } from "../../db/schema";
import { tenantSlugSchema } from "../../programs/tenant/config";
import type { Services } from "../../services";
import type { FleetRunView } from "../../services/fleet/fleet-service";
import { presentFleetOverview, presentFleetRun, presentFleetRunSummary } from "../fleet-presenter";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { bodyErrorResponses, errorResponses, integerQuery, postErrorResponses } from "../schemas";

const idParams = z.object({ id: z.string().guid("must be a fleet run id (uuid)") });

const selectorSchema = z.union(
  [
    z.strictObject({ all: z.literal(true) }),
    // At most 1,000 slugs, so that the largest body fits the default body limit (64 KiB); select more by status or all.
    z.strictObject({ slugs: z.array(tenantSlugSchema).min(1, "must name at least one tenant").max(1000) }),
    z.strictObject({ status: z.array(z.enum(ONBOARDING_STATUSES)).min(1, "must name at least one status").max(ONBOARDING_STATUSES.length) }),
  ],
  { error: 'must be {"all": true}, {"slugs": [...]} or {"status": [...]}' },
);

export const createFleetRunSchema = z
  .strictObject({
    kind: z.enum(FLEET_RUN_KINDS),
    tenants: selectorSchema.openapi({ description: "{all: true} | {slugs: [...]} | {status: [...]}" }),
    /** Tenant runs queued or running at once (they also count against the service's MAX_CONCURRENT_RUNS). */
    max_concurrency: z.number().int("must be an integer").min(1).max(64).default(4),
    /** More failed tenant runs than this stops the fleet run: no new tenant run starts. */
    max_failures: z.number().int("must be an integer").min(0).max(1_000_000).default(0),
  })
  .openapi("CreateFleetRun");

const summarySchema = z.object({
  id: z.string(),
  kind: z.enum(FLEET_RUN_KINDS),
  tenants: z.any(),
  max_concurrency: z.number(),
  max_failures: z.number(),
  status: z.enum(FLEET_RUN_STATUSES),
  stop_reason: z.string().nullable(),
  actor: z.string(),
  created_at: z.string(),
  cancel_requested_at: z.string().nullable(),
  finished_at: z.string().nullable(),
});

const resourceSchema = z.object({ urn: z.string(), type: z.string(), op: z.string() });
const fleetRunSchema = summarySchema
  .extend({
    counts: z.record(z.string(), z.number()),
    change_summary: z.record(z.string(), z.number()),
    change_summary_text: z.string().openapi({ example: "update 37, same 412" }),
    changing_tenants: z.array(z.string()),
    drifted_tenants: z.array(z.string()),
    tenant_runs: z.array(
      z.object({
        slug: z.string(),
        status: z.enum(FLEET_TENANT_STATUSES),
        reason: z.string().nullable(),
        run_id: z.string().nullable(),
        started_at: z.string().nullable(),
        finished_at: z.string().nullable(),
        change_summary: z.record(z.string(), z.number()).nullable(),
        changes: z.array(resourceSchema.extend({ diffs: z.array(z.string()) })),
        drift: z.array(resourceSchema.extend({ properties: z.array(z.string()) })).nullable(),
        error: z.string().nullable(),
      }),
    ),
  })
  .openapi("FleetRun");

const fleetOverviewSchema = z
  .object({
    tenants_total: z.number(),
    by_status: z.record(z.string(), z.number()),
    drifted: z.number(),
    active_fleet_runs: z.number(),
    kpis: z.object({
      tenants_connected: z.number(),
      tenants_completed: z.number(),
      completion_rate: z.number().nullable(),
      median_seconds_to_onboard: z.number().nullable(),
      p90_seconds_to_onboard: z.number().nullable(),
    }),
  })
  .openapi("FleetOverview");

const createRoute_ = createRoute({
  method: "post",
  path: "/fleet/runs",
  operationId: "createFleetRun",
  tags: ["fleet"],
  summary: "Start a fleet run: preview, up, refresh or drift over the selected tenants (platform admin)",
  security,
  request: { body: { content: { "application/json": { schema: createFleetRunSchema } }, required: true } },
  responses: {
    202: json(fleetRunSchema, "recorded; the coordinator starts the tenant runs"),
    ...errorResponses,
    ...bodyErrorResponses,
    ...postErrorResponses,
  },
});

const listRoute = createRoute({
  method: "get",
  path: "/fleet/runs",
  operationId: "listFleetRuns",
  tags: ["fleet"],
  summary: "Fleet runs, newest first (platform admin)",
  security,
  request: { query: z.object({ limit: integerQuery(1, 200).default(50) }) },
  responses: { 200: json(z.object({ fleet_runs: z.array(summarySchema) }), "fleet runs"), ...errorResponses },
});

const getRoute = createRoute({
  method: "get",
  path: "/fleet/runs/{id}",
  operationId: "getFleetRun",
  tags: ["fleet"],
  summary: "A fleet run: per-tenant status, the summed change summary, which tenants change and how (platform admin)",
  security,
  request: { params: idParams },
  responses: { 200: json(fleetRunSchema, "the fleet run"), ...errorResponses },
});

const cancelRoute = createRoute({
  method: "post",
  path: "/fleet/runs/{id}/cancel",
  operationId: "cancelFleetRun",
  tags: ["fleet"],
  summary: "Cancel a fleet run: tenant runs not started are dropped, running ones finish (platform admin)",
  security,
  request: { params: idParams },
  responses: { 202: json(fleetRunSchema, "cancelling"), ...errorResponses, ...postErrorResponses },
});

const eventsRoute = createRoute({
  method: "get",
  path: "/fleet/runs/{id}/events",
  operationId: "getFleetRunEvents",
  tags: ["fleet"],
  summary: "The fleet run's progress as server-sent events (`progress` with the fleet run when it changes, `end` when finished)",
  security,
  request: { params: idParams },
  responses: {
    200: eventStreamResponse("event stream: `progress` first and on every change, `end` when the fleet run has finished", [
      { event: "progress", data: componentRef("FleetRun"), id: true },
      {
        event: "end",
        data: {
          type: "object",
          properties: { fleet_run_id: { type: "string", format: "uuid" }, status: { enum: [...FLEET_RUN_STATUSES] } },
          required: ["fleet_run_id", "status"],
        },
        id: false,
      },
    ]),
    ...errorResponses,
  },
});

const overviewRoute = createRoute({
  method: "get",
  path: "/fleet",
  operationId: "getFleet",
  tags: ["fleet"],
  summary: "The fleet at a glance: tenants by status, drifted, fleet runs going on, onboarding KPIs (platform admin)",
  security,
  responses: { 200: json(fleetOverviewSchema, "the fleet"), ...errorResponses },
});

export interface FleetRouterOptions {
  pollMs?: number;
  /** The streams' cap, token re-check and polling loop (api/sse.ts). */
  streams: EventStreams;
}

export function fleetRouter({ fleet }: Pick<Services, "fleet">, options: FleetRouterOptions) {
  const router = createRouter();

  router.openapi(createRoute_, async (c) => {
    const body = c.req.valid("json");
    const view = await fleet.create(c.get("principal"), {
      kind: body.kind,
      tenants: body.tenants,
      maxConcurrency: body.max_concurrency,
      maxFailures: body.max_failures,
    });
    return c.json(presentFleetRun(view), 202);
  });

  router.openapi(listRoute, async (c) => {
    const rows = await fleet.list(c.get("principal"), c.req.valid("query").limit);
    return c.json({ fleet_runs: rows.map(presentFleetRunSummary) }, 200);
  });

  router.openapi(getRoute, async (c) => c.json(presentFleetRun(await fleet.get(c.get("principal"), c.req.valid("param").id)), 200));

  router.openapi(cancelRoute, async (c) => c.json(presentFleetRun(await fleet.cancel(c.get("principal"), c.req.valid("param").id)), 202));

  router.openapi(overviewRoute, async (c) => c.json(presentFleetOverview(await fleet.overview(c.get("principal"))), 200));

  router.openapi(eventsRoute, async (c) => {
    const principal = c.get("principal");
    const { id } = c.req.valid("param");
    // Read before the stream starts, so that an unknown fleet run answers 404.
    let first: FleetRunView | undefined = await fleet.get(principal, id);
    const progressEvent = eventOnChange("progress");
    return options.streams.stream(c, principal, {
      pollMs: options.pollMs ?? 1000,
      async poll() {
        const view = first ?? (await fleet.get(principal, id));
        first = undefined;
        const events = progressEvent(JSON.stringify(presentFleetRun(view)));
        if (view.fleet.status === "running") return { events };
        return { events, end: { event: "end", data: JSON.stringify({ fleet_run_id: id, status: view.fleet.status }) } };
      },
    });
  });

  return router;
}
