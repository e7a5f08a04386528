/**
 * /v1/tenants/{slug}/runs: stack operations as queued, recorded runs (202 {run_id}); a run; a tenant's runs; a run's
 * engine events as server-sent events (replayed from the database, then followed live until the run ends);
 * /v1/tenants/{slug}/offboard: destroy, then remove the stack.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { RUN_KINDS, TERMINAL_RUN_STATUSES, type RunKind } from "../../db/schema";
import type { Services } from "../../services";
import type { RequestedRun } from "../../services/core/run-requests";
import { eventStreamResponse, type EventStreams } from "../sse";
import { presentRun } from "../run-presenter";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import {
  bodyErrorResponses,
  errorResponse,
  errorResponses,
  integerQuery,
  postErrorResponses,
  resourceChangeSchema,
  runErrorSchema,
  slugParamsSchema,
} from "../schemas";

const runIdParams = slugParamsSchema.extend({ runId: z.string().guid("must be a run id (uuid)") });

const runSchema = z
  .object({
    id: z.string(),
    tenant: z.string(),
    stack_name: z.string(),
    /** The organization account whose stack this run is on; null: the tenant's home account. */
    aws_account_id: z.string().nullable(),
    kind: z.enum(RUN_KINDS),
    status: z.string(),
    actor: z.string(),
    actor_name: z.string().nullable().describe("who asked, by name: the person's email or the token's name"),
    requested_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
    change_summary: z.record(z.string(), z.number()).nullable(),
    resource_changes: z.array(resourceChangeSchema).nullable(),
    plan_saved: z.boolean(),
    /** Stack outputs, secrets removed or masked: any JSON value per output. */
    outputs: z.record(z.string(), z.unknown()).nullable(),
    error: runErrorSchema.nullable(),
    /** kind drift: each resource whose cloud state differs (update: these properties; delete: gone). */
    drift: z.array(z.object({ urn: z.string(), type: z.string(), op: z.string(), properties: z.array(z.string()) })).nullable(),
    /** An up that brings back the drift this drift run found (auto_remediate). */
    remediates_run_id: z.string().nullable(),
    fleet_run_id: z.string().nullable(),
    held_for: z
      .object({ reason: z.string(), actions: z.array(z.string()), version: z.string() })
      .nullable()
      .describe("queued but held back until the tenant's bootstrap stack is updated to `version`, which grants `actions`"),
  })
  .openapi("Run");

const acceptedSchema = z
  .object({ run_id: z.string(), kind: z.enum(RUN_KINDS), status: z.literal("queued"), stack_name: z.string() })
  .openapi("RunAccepted");

const offboardSchema = z
  .object({
    /** The home stack's destroy; null for a tenant connected through its AWS Organization alone. */
    run_id: z.string().nullable(),
    kind: z.literal("destroy"),
    status: z.literal("queued"),
    stack_name: z.string().nullable(),
    /** Organization accounts whose stacks are being destroyed (max_concurrent_accounts at a time). */
    accounts_offboarding: z.number().int(),
    /** Present when the tenant's bootstrap role came from our quick-create link: how the customer deletes that stack. */
    customer_cleanup: z
      .object({ stack_name: z.string(), region: z.string(), console_url: z.string(), cli_command: z.string(), text: z.string() })
      .optional(),
    /** With an AWS Organization: the StackSet's instances, the StackSet and the organization stack, in that order. */
    organization_cleanup: z.array(z.object({ what: z.string(), console_url: z.string(), cli_command: z.string() })).optional(),
  })
  .openapi("Offboarding");

/** plan_run_id only with kind up: the document says so with one alternative per kind of body. */
const createRunSchema = z
  .discriminatedUnion(
    "kind",
    [
      z.strictObject({
        kind: z.literal("up"),
        /** true: wait behind a run already queued or running for this tenant instead of answering 409. */
        queue: z.boolean().default(false),
        /** When the tenant requires approval: the approved preview whose saved plan the up must apply. */
        plan_run_id: z.string().guid("must be a run id (uuid)").optional(),
      }),
      z.strictObject({
        kind: z.enum(RUN_KINDS.filter((kind) => kind !== "up") as [Exclude<RunKind, "up">, ...Exclude<RunKind, "up">[]]),
        queue: z.boolean().default(false),
      }),
    ],
    { error: `must be one of ${RUN_KINDS.map((kind) => JSON.stringify(kind)).join(", ")}` },
  )
  .openapi("CreateRun");

/** What requesting a run may answer besides 202 (run-service.ts: readiness, approval gate, one run per stack). */
const runRefusals = {
  ...postErrorResponses,
  409: errorResponse(
    "another run of this tenant is queued or running (code run_in_progress, blocking_run_id), approval is required (approval_required), the tenant was offboarded, or the Idempotency-Key is in progress",
  ),
  422: errorResponse(
    "the tenant is not ready for stack runs (code tenant_not_ready, fields say what to set), or plan_run_id is not an approvable preview",
  ),
  503: errorResponse("the service is not configured for stack runs (PLATFORM_PRINCIPAL_ARN); an operator must set it"),
};
const runLinks = {
  GetRun: { operationId: "getRun", parameters: { slug: "$request.path.slug", runId: "$response.body#/run_id" } },
};

const createRunRoute = createRoute({
  method: "post",
  path: "/{slug}/runs",
  operationId: "requestRun",
  tags: ["runs"],
  summary: "Request a stack operation (preview, up, refresh, destroy)",
  security,
  request: { params: slugParamsSchema, body: { content: { "application/json": { schema: createRunSchema } }, required: true } },
  responses: { 202: { ...json(acceptedSchema, "queued"), links: runLinks }, ...errorResponses, ...bodyErrorResponses, ...runRefusals },
});

const listRunsRoute = createRoute({
  method: "get",
  path: "/{slug}/runs",
  operationId: "listRuns",
  tags: ["runs"],
  summary: "A tenant's runs, newest first",
  security,
  request: {
    params: slugParamsSchema,
    query: z.object({
      limit: integerQuery(1, 200).default(50),
      kind: z.enum(RUN_KINDS).optional(),
    }),
  },
  responses: { 200: json(z.object({ runs: z.array(runSchema) }), "runs"), ...errorResponses },
});

const getRunRoute = createRoute({
  method: "get",
  path: "/{slug}/runs/{runId}",
  operationId: "getRun",
  tags: ["runs"],
  summary: "A run: status, change summary, per-resource changes, outputs (no secrets), error with diagnostics",
  security,
  request: { params: runIdParams },
  responses: { 200: json(runSchema, "the run"), ...errorResponses },
});

const runEventsRoute = createRoute({
  method: "get",
  path: "/{slug}/runs/{runId}/events",
  operationId: "getRunEvents",
  tags: ["runs"],
  summary: "The run's engine events as server-sent events: replayed, then live until the run ends (event `end`)",
  security,
  request: { params: runIdParams },
  responses: {
    200: eventStreamResponse("event stream: `engine` (a Pulumi engine event) for each event, `end` when the run has finished", [
      { event: "engine", data: { type: "object" }, id: true },
      {
        event: "end",
        data: {
          type: "object",
          properties: { run_id: { type: "string", format: "uuid" }, status: { enum: [...TERMINAL_RUN_STATUSES] } },
          required: ["run_id", "status"],
        },
        id: false,
      },
    ]),
    ...errorResponses,
  },
});

const cancelledSchema = z
  .object({
    run_id: z.string(),
    /** cancelled: it was queued and never ran; cancelling: its operation is being stopped, the run ends `cancelled`. */
    status: z.enum(["cancelled", "cancelling"]),
  })
  .openapi("RunCancel");

const cancelRunRoute = createRoute({
  method: "post",
  path: "/{slug}/runs/{runId}/cancel",
  operationId: "cancelRun",
  tags: ["runs"],
  summary:
    "Cancel a run: a queued one at once; a running one has its operation stopped (SIGINT, then its processes killed after a short grace), its stack lock and pending operations cleared, and ends `cancelled`. A tenant token may cancel its own tenant's runs except destroys.",
  security,
  request: { params: runIdParams },
  responses: {
    202: json(cancelledSchema, "cancelled (it was queued) or being cancelled (it was running)"),
    ...errorResponses,
    ...postErrorResponses,
    409: errorResponse("the run already finished (code run_finished), or a request with this Idempotency-Key is still in progress"),
  },
});

const offboardRoute = createRoute({
  method: "post",
  path: "/{slug}/offboard",
  operationId: "offboardTenant",
  tags: ["runs"],
  summary: "Offboard a tenant (platform admin): destroy its stack, then remove it; history and audit are kept",
  security,
  responses: {
    202: { ...json(offboardSchema, "the destroy run, and how the customer removes the bootstrap stack"), links: runLinks },
    ...errorResponses,
    ...runRefusals,
  },
  request: { params: slugParamsSchema },
});

export interface RunsRouterOptions {
  /** How often the event stream looks for new events (ms). */
  eventPollMs?: number;
  /** The streams' cap, token re-check and polling loop (api/sse.ts). */
  streams: EventStreams;
}

const EVENT_BATCH = 500;

export function runsRouter({ runs, onboarding }: Pick<Services, "runs" | "onboarding">, options: RunsRouterOptions) {
  const router = createRouter();
  const accepted = (requested: RequestedRun) => ({
    run_id: requested.runId,
    kind: requested.kind,
    status: "queued" as const,
    stack_name: requested.stackName,
  });

  router.openapi(createRunRoute, async (c) => {
    const body = c.req.valid("json");
    const { kind, queue } = body;
    const planRunId = "plan_run_id" in body ? body.plan_run_id : undefined;
    const requested = await runs.request(c.get("principal"), await c.var.tenant(), kind, { queue, planRunId });
    return c.json(accepted(requested), 202);
  });

  router.openapi(offboardRoute, async (c) => {
    const requested = await onboarding.offboard(c.get("principal"), await c.var.tenant());
    const cleanup = requested.customerCleanup;
    return c.json(
      {
        run_id: requested.runId ?? null,
        kind: "destroy" as const,
        status: "queued" as const,
        stack_name: requested.stackName ?? null,
        accounts_offboarding: requested.accountsOffboarding,
        ...(requested.organizationCleanup
          ? {
              organization_cleanup: requested.organizationCleanup.map((step) => ({
                what: step.what,
                console_url: step.consoleUrl,
                cli_command: step.cliCommand,
              })),
            }
          : {}),
        ...(cleanup
          ? {
              customer_cleanup: {
                stack_name: cleanup.stackName,
                region: cleanup.region,
                console_url: cleanup.consoleUrl,
                cli_command: cleanup.cliCommand,
                text: cleanup.text,
              },
            }
          : {}),
      },
      202,
    );
  });

  router.openapi(cancelRunRoute, async (c) => {
    const cancelled = await runs.cancel(c.get("principal"), await c.var.tenant(), c.req.valid("param").runId);
    return c.json({ run_id: cancelled.runId, status: cancelled.status }, 202);
  });

  router.openapi(listRunsRoute, async (c) => {
    const org = await c.var.tenant();
    const rows = await runs.list(org, c.req.valid("query"));
    return c.json({ runs: rows.map((run) => presentRun(run, org.slug)) }, 200);
  });

  router.openapi(getRunRoute, async (c) => {
    const org = await c.var.tenant();
    return c.json(presentRun(await runs.get(org, c.req.valid("param").runId), org.slug), 200);
  });

  router.openapi(runEventsRoute, async (c) => {
    const { runId } = c.req.valid("param");
    await runs.get(await c.var.tenant(), runId);
    // The stream reads the database, not this process's memory: any replica can serve it, and a late client replays.
    return options.streams.stream(c, c.get("principal"), {
      pollMs: options.eventPollMs ?? 250,
      resumable: true,
      async poll(lastSeq = -1) {
        const { status, events } = await runs.eventsAfter(runId, lastSeq, EVENT_BATCH);
        const engineEvents = events.map((event) => ({ id: event.seq, event: "engine", data: JSON.stringify(event.event) }));
        if (events.length === EVENT_BATCH) return { events: engineEvents, more: true };
        if (!status || !TERMINAL_RUN_STATUSES.includes(status)) return { events: engineEvents };
        return { events: engineEvents, end: { event: "end", data: JSON.stringify({ run_id: runId, status }) } };
      },
    });
  });

  return router;
}
