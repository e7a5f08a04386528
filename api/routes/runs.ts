/**
 * /v1/tenants/{slug}/runs: stack operations as queued, recorded runs (202 {run_id}); a run; a tenant's runs; a run's
 * engine events as server-sent events (replayed from the database, then followed live until the run ends);
 * /v1/tenants/{slug}/offboard: destroy, then remove the stack.
 */
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { createRoute, z } from "@hono/zod-openapi";
import { and, asc, desc, eq, gt } from "drizzle-orm";
import { streamSSE } from "hono/streaming";
import { stackNameFor } from "../../automation";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { runEvents, runs, RUN_KINDS, TERMINAL_RUN_STATUSES, type Organization, type RunKind } from "../../db/schema";
import { RunConflictError } from "../../services/run/run-errors";
import type { RunQueue } from "../../services/run/run-queue";
import { loadAwsCredential } from "../../services/integration/aws-credential-store";
import { withStatusDuring } from "../../services/tenant/onboarding-status";
import { tenantConfigProblems, type PlatformSettings } from "../../services/run/tenant-stack-config";
import { recordAudit } from "../../services/tenant/audit-store";
import { loadVisibleOrganization, requireAdmin, type Principal } from "../auth";
import { ApiError, ConflictError, NotFoundError } from "../errors";
import { presentRun } from "../run-presenter";
import { createRouter } from "../router";
import { errorResponses, slugParamsSchema } from "../schemas";

const security = [{ bearerAuth: [] }];
const runIdParams = slugParamsSchema.extend({ runId: z.string().uuid("must be a run id (uuid)") });

const runSchema = z
  .object({
    id: z.string(),
    tenant: z.string(),
    stack_name: z.string(),
    kind: z.enum(RUN_KINDS),
    status: z.string(),
    actor: z.string(),
    requested_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
    change_summary: z.record(z.string(), z.number()).nullable(),
    resource_changes: z.array(z.any()).nullable(),
    plan_saved: z.boolean(),
    outputs: z.record(z.string(), z.any()).nullable(),
    error: z.any().nullable(),
  })
  .openapi("Run");

const acceptedSchema = z
  .object({ run_id: z.string(), kind: z.enum(RUN_KINDS), status: z.literal("queued"), stack_name: z.string() })
  .openapi("RunAccepted");

const createRunSchema = z
  .strictObject({
    kind: z.enum(RUN_KINDS),
    /** true: wait behind a run already queued or running for this tenant instead of answering 409. */
    queue: z.boolean().default(false),
    /** kind up, when the tenant requires approval: the approved preview whose saved plan the up must apply. */
    plan_run_id: z.string().uuid("must be a run id (uuid)").optional(),
  })
  .superRefine((body, ctx) => {
    if (body.plan_run_id !== undefined && body.kind !== "up") {
      ctx.addIssue({ code: "custom", path: ["plan_run_id"], message: "is only for kind up" });
    }
  })
  .openapi("CreateRun");

const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });
const conflict = { 409: { ...errorResponses[404], description: "another run of this tenant is queued or running (blocking_run_id)" } };

const createRunRoute = createRoute({
  method: "post",
  path: "/{slug}/runs",
  tags: ["runs"],
  summary: "Request a stack operation (preview, up, refresh, destroy)",
  security,
  request: { params: slugParamsSchema, body: { content: { "application/json": { schema: createRunSchema } }, required: true } },
  responses: { 202: json(acceptedSchema, "queued"), ...conflict, ...errorResponses },
});

const listRunsRoute = createRoute({
  method: "get",
  path: "/{slug}/runs",
  tags: ["runs"],
  summary: "A tenant's runs, newest first",
  security,
  request: {
    params: slugParamsSchema,
    query: z.object({
      limit: z.coerce.number().int("must be an integer").min(1).max(200).default(50),
      kind: z.enum(RUN_KINDS).optional(),
    }),
  },
  responses: { 200: json(z.object({ runs: z.array(runSchema) }), "runs"), ...errorResponses },
});

const getRunRoute = createRoute({
  method: "get",
  path: "/{slug}/runs/{runId}",
  tags: ["runs"],
  summary: "A run: status, change summary, per-resource changes, outputs (no secrets), error with diagnostics",
  security,
  request: { params: runIdParams },
  responses: { 200: json(runSchema, "the run"), ...errorResponses },
});

const runEventsRoute = createRoute({
  method: "get",
  path: "/{slug}/runs/{runId}/events",
  tags: ["runs"],
  summary: "The run's engine events as server-sent events: replayed, then live until the run ends (event `end`)",
  security,
  request: { params: runIdParams },
  responses: {
    200: { description: "event stream", content: { "text/event-stream": { schema: z.string() } } },
    ...errorResponses,
  },
});

const offboardRoute = createRoute({
  method: "post",
  path: "/{slug}/offboard",
  tags: ["runs"],
  summary: "Offboard a tenant (platform admin): destroy its stack, then remove it; history and audit are kept",
  security,
  responses: { 202: json(acceptedSchema, "the destroy run"), ...conflict, ...errorResponses },
  request: { params: slugParamsSchema },
});

export interface RunsRouterDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  platform: PlatformSettings;
  runQueue: () => RunQueue;
  /** Where previews of tenants that require approval save their update plans. */
  plansDir: string;
  /** How often the event stream looks for new events (ms). */
  eventPollMs?: number;
}

/** The checks before a run is queued: answered as 4xx naming what to fix, instead of a run that fails. */
async function assertRunnable(deps: RunsRouterDeps, org: Organization, kind: RunKind): Promise<void> {
  if (org.onboardingStatus === "offboarded") throw new ConflictError(`tenant ${JSON.stringify(org.slug)} was offboarded`);
  if (org.onboardingStatus === "offboarding" && kind !== "destroy") {
    throw new ConflictError(`tenant ${JSON.stringify(org.slug)} is being offboarded`);
  }
  const credential = await loadAwsCredential(deps.db, deps.keyring, org.id);
  const problems = tenantConfigProblems(org, credential?.data, deps.platform);
  if (credential && credential.status !== "active") {
    problems.push({ field: "integrations.aws", message: `is ${credential.status}; connect the AWS account again` });
  }
  const platformProblems = problems.filter((problem) => problem.field.startsWith("service."));
  if (platformProblems.length > 0) {
    throw new ApiError(503, "service_not_configured", `the service is not configured for stack runs: ${platformProblems.map((p) => `${p.field.slice(8)} ${p.message}`).join("; ")}`);
  }
  if (problems.length > 0) {
    throw new ApiError(422, "tenant_not_ready", `the tenant is not ready for stack runs: ${problems.map((p) => p.field).join(", ")}`, {
      fields: problems,
    });
  }
}

/**
 * With approval required, a preview saves its update plan and an `up` must name an approved (succeeded) preview of
 * the same tenant: the platform admin who requests that up approves it, and the engine applies exactly that plan.
 */
async function planFor(deps: RunsRouterDeps, principal: Principal, org: Organization, kind: RunKind, planRunId?: string) {
  const approvalRequired = org.integrationSettings.requireApproval === true;
  if (kind === "preview" && approvalRequired) return join(deps.plansDir, `${randomUUID()}.json`);
  if (kind !== "up") return undefined;
  if (planRunId === undefined) {
    if (approvalRequired) {
      throw new ApiError(409, "approval_required", "this tenant requires approval: preview, then request the up with plan_run_id", {
        fields: [{ field: "plan_run_id", message: "is required: the id of the approved preview run" }],
      });
    }
    return undefined;
  }
  requireAdmin(principal);
  const [preview] = await deps.db.select().from(runs).where(and(eq(runs.id, planRunId), eq(runs.organizationId, org.id)));
  if (!preview || preview.kind !== "preview" || preview.status !== "succeeded" || !preview.planRef) {
    throw new ApiError(422, "plan_not_approvable", "plan_run_id must name a succeeded preview of this tenant that saved a plan", {
      fields: [{ field: "plan_run_id", message: "is not a succeeded preview with a saved plan" }],
    });
  }
  return preview.planRef;
}

async function requestRun(
  deps: RunsRouterDeps,
  principal: Principal,
  org: Organization,
  kind: RunKind,
  { queue = false, planRunId }: { queue?: boolean; planRunId?: string } = {},
) {
  await assertRunnable(deps, org, kind);
  const planRef = await planFor(deps, principal, org, kind, planRunId);
  const stackName = stackNameFor(org.slug);
  try {
    return await deps
      .runQueue()
      .request({ organizationId: org.id, stackName, kind, actor: principal.actor, planRef }, { queueBehindActive: queue });
  } catch (error) {
    if (error instanceof RunConflictError) {
      throw new ApiError(409, "run_in_progress", `tenant ${JSON.stringify(org.slug)} already has a queued or running run`, {
        blocking_run_id: error.blockingRunId,
      });
    }
    throw error;
  }
}

async function loadRun(db: DrizzleDatabase, org: Organization, runId: string) {
  const [run] = await db.select().from(runs).where(and(eq(runs.id, runId), eq(runs.organizationId, org.id)));
  if (!run) throw new NotFoundError(`run ${runId} not found`);
  return run;
}

export function runsRouter(deps: RunsRouterDeps) {
  const { db } = deps;
  const router = createRouter();

  router.openapi(createRunRoute, async (c) => {
    const principal = c.get("principal");
    const org = await loadVisibleOrganization(db, principal, c.req.valid("param").slug);
    const { kind, queue, plan_run_id: planRunId } = c.req.valid("json");
    if (kind === "destroy") requireAdmin(principal);
    const provisioning = kind === "up" && ["not_started", "failed", "connecting"].includes(org.onboardingStatus);
    const runId = await withStatusDuring(db, org, provisioning ? "provisioning" : undefined, () =>
      requestRun(deps, principal, org, kind, { queue, planRunId }),
    );
    await recordAudit(db, principal, { action: `run.${kind}`, organizationId: org.id, target: `run:${runId}`, details: { queue, planRunId } });
    return c.json({ run_id: runId, kind, status: "queued" as const, stack_name: stackNameFor(org.slug) }, 202);
  });

  router.openapi(offboardRoute, async (c) => {
    const principal = c.get("principal");
    requireAdmin(principal);
    const org = await loadVisibleOrganization(db, principal, c.req.valid("param").slug);
    if (org.onboardingStatus === "offboarded") throw new ConflictError(`tenant ${JSON.stringify(org.slug)} was offboarded already`);
    const runId = await withStatusDuring(db, org, "offboarding", () => requestRun(deps, principal, org, "destroy"));
    await recordAudit(db, principal, { action: "tenant.offboard", organizationId: org.id, target: `run:${runId}` });
    return c.json({ run_id: runId, kind: "destroy" as const, status: "queued" as const, stack_name: stackNameFor(org.slug) }, 202);
  });

  router.openapi(listRunsRoute, async (c) => {
    const org = await loadVisibleOrganization(db, c.get("principal"), c.req.valid("param").slug);
    const { limit, kind } = c.req.valid("query");
    const rows = await db
      .select()
      .from(runs)
      .where(and(eq(runs.organizationId, org.id), kind ? eq(runs.kind, kind) : undefined))
      .orderBy(desc(runs.requestedAt))
      .limit(limit);
    return c.json({ runs: rows.map((run) => presentRun(run, org.slug)) }, 200);
  });

  router.openapi(getRunRoute, async (c) => {
    const { slug, runId } = c.req.valid("param");
    const org = await loadVisibleOrganization(db, c.get("principal"), slug);
    return c.json(presentRun(await loadRun(db, org, runId), org.slug), 200);
  });

  router.openapi(runEventsRoute, async (c) => {
    const { slug, runId } = c.req.valid("param");
    const org = await loadVisibleOrganization(db, c.get("principal"), slug);
    await loadRun(db, org, runId);
    const lastEventId = Number.parseInt(c.req.header("last-event-id") ?? "", 10);
    const pollMs = deps.eventPollMs ?? 250;
    // The stream reads the database, not this process's memory: any replica can serve it, and a late client replays.
    return streamSSE(c, async (stream) => {
      let nextSeq = Number.isInteger(lastEventId) ? lastEventId + 1 : 0;
      let aborted = false;
      stream.onAbort(() => {
        aborted = true;
      });
      while (!aborted) {
        const [run] = await db.select({ status: runs.status }).from(runs).where(eq(runs.id, runId));
        const batch = await db
          .select()
          .from(runEvents)
          .where(and(eq(runEvents.runId, runId), gt(runEvents.seq, nextSeq - 1)))
          .orderBy(asc(runEvents.seq))
          .limit(500);
        for (const event of batch) {
          await stream.writeSSE({ id: String(event.seq), event: "engine", data: JSON.stringify(event.event) });
          nextSeq = event.seq + 1;
        }
        if (batch.length === 500) continue;
        if (run && TERMINAL_RUN_STATUSES.includes(run.status)) {
          await stream.writeSSE({ event: "end", data: JSON.stringify({ run_id: runId, status: run.status }) });
          return;
        }
        await stream.sleep(pollMs);
      }
    }) as never;
  });

  return router;
}
