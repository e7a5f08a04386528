import type { EngineEvent, PulumiCommand } from "@pulumi/pulumi/automation";
import { and, eq } from "drizzle-orm";
import {
  AutomationError,
  destroyTenantStack,
  driftCheckTenantStack,
  EngineFailureError,
  openConfiguredTenantStack,
  openTenantStack,
  previewTenantStack,
  refreshTenantStack,
  upTenantStack,
  type AutomationSettings,
  type OperationResult,
} from "../../automation";
import type { DrizzleDatabase, SqlClient } from "../../db/client";
import { runEvents, runs, type Run, type RunError } from "../../db/schema";
import { holdRunLiveness } from "./run-liveness";
import type { RunPlanStore } from "./run-plan-store";
import { noopTelemetry, type Telemetry } from "../../lib/telemetry";
import { TENANT_STACK_PREFIX } from "../../automation";
import type { TenantConfigInput } from "../../programs/tenant/config";
import type { RunKind } from "../../db/schema";

export interface RunExecutorDeps {
  db: DrizzleDatabase;
  automation: AutomationSettings;
  /** The checked CLI, resolved once (resolvePulumiCli); resolved per run when absent. */
  cli?: PulumiCommand;
  /** The tenant's stack config (with its secrets), resolved when the run starts. */
  tenantConfig(organizationId: number): Promise<TenantConfigInput>;
  /** Where previews of tenants that require approval save their update plans, and approved ups read them. */
  plans?: RunPlanStore;
  /** With a PostgreSQL server: held per run so that recovery can tell a crashed executor from a live one. */
  liveness?: SqlClient;
  /** Told when a run has finished (its row is final); what it does next (discovery, offboarding) is its business. */
  onRunFinished?(run: Run): Promise<void>;
  log?(message: string): void;
  /** Run lifecycle log lines and run metrics. */
  telemetry?: Telemetry;
}

/** Ids for a run's log lines: never config, outputs or errors' details. */
function runFields(run: Run) {
  return { runId: run.id, tenantId: run.organizationId, tenant: run.stackName.slice(TENANT_STACK_PREFIX.length), kind: run.kind };
}

/** Writes engine events to run_events in order; writes are chained so seq order is insert order. */
function eventWriter(db: DrizzleDatabase, runId: string) {
  let seq = 0;
  let pending: Promise<unknown> = Promise.resolve();
  return {
    onEvent(event: EngineEvent) {
      const row = { runId, seq: seq++, event: event as unknown as Record<string, unknown> };
      pending = pending.then(() => db.insert(runEvents).values(row));
    },
    flushed: () => pending,
  };
}

function runErrorOf(error: unknown): RunError {
  if (error instanceof EngineFailureError) {
    return {
      message: error.message,
      kind: error.name,
      diagnostics: error.diagnostics.map((message) => ({ severity: "error", message })),
    };
  }
  if (error instanceof AutomationError) return { message: error.message, kind: error.name };
  return { message: error instanceof Error ? error.message : String(error), kind: "InternalError" };
}

/** Executes one queued run: the stack operation, its events, its result, recorded on the run's row. */
export async function executeRun(deps: RunExecutorDeps, runId: string): Promise<void> {
  const { db } = deps;
  const release = deps.liveness ? await holdRunLiveness(deps.liveness, runId) : undefined;
  try {
    const [claimed] = await db
      .update(runs)
      .set({ status: "running", startedAt: new Date() })
      .where(and(eq(runs.id, runId), eq(runs.status, "queued")))
      .returning();
    if (!claimed) return; // already handled (e.g. marked interrupted): never run twice
    const { log, metrics } = deps.telemetry ?? noopTelemetry;
    const queueWaitSeconds = (claimed.startedAt!.getTime() - claimed.requestedAt.getTime()) / 1000;
    metrics.runStarted(claimed.kind, queueWaitSeconds);
    log.info({ event: "run.started", ...runFields(claimed), queueWaitMs: Math.round(queueWaitSeconds * 1000) }, "run started");
    // Guarded: a run marked interrupted meanwhile (shutdown, recovery) keeps that status.
    await db
      .update(runs)
      .set(await performOperation(deps, claimed))
      .where(and(eq(runs.id, runId), eq(runs.status, "running")));
    const [finished] = await db.select().from(runs).where(eq(runs.id, runId));
    const durationSeconds = (finished!.finishedAt!.getTime() - claimed.startedAt!.getTime()) / 1000;
    metrics.runFinished(finished!.kind, finished!.status, durationSeconds);
    (finished!.status === "succeeded" ? log.info : log.warn)(
      { event: "run.finished", ...runFields(finished!), status: finished!.status, durationMs: Math.round(durationSeconds * 1000), errorKind: finished!.error?.kind },
      "run finished",
    );
    await deps.onRunFinished?.(finished!).catch((error: unknown) =>
      (deps.log ?? console.error)(`run ${runId}: follow-up failed: ${error instanceof Error ? error.message : String(error)}`),
    );
  } finally {
    await release?.();
  }
}

async function performOperation(deps: RunExecutorDeps, run: Run): Promise<Partial<Run>> {
  const events = eventWriter(deps.db, run.id);
  try {
    const config = await deps.tenantConfig(run.organizationId);
    const plan = run.planRef ? { id: run.planRef, organizationId: run.organizationId, previewRunId: run.id } : undefined;
    if (plan && !deps.plans) throw new Error("this run has a saved plan but the executor has no plan store");
    // Runs other than destroy reuse the stack this process already opened and configured, when nothing changed.
    const stack =
      run.kind === "destroy"
        ? await openTenantStack(deps.automation, config.tenantSlug, { create: false, cli: deps.cli })
        : await openConfiguredTenantStack(deps.automation, config, { updatePlans: run.kind === "up" && plan !== undefined, cli: deps.cli });
    const operations: Record<RunKind, () => Promise<OperationResult & { drifted?: Run["drift"] }>> = {
      preview: () =>
        plan
          ? deps.plans!.savePlan(plan, (savePlanTo) => previewTenantStack(stack, { onEvent: events.onEvent, savePlanTo }))
          : previewTenantStack(stack, { onEvent: events.onEvent }),
      up: () =>
        plan
          ? deps.plans!.withPlanFile(plan, (planFile) => upTenantStack(stack, { onEvent: events.onEvent, plan: planFile }))
          : // A remediation reads the cloud first, so what changed outside the stack is put back.
            upTenantStack(stack, { onEvent: events.onEvent, refresh: run.remediatesRunId !== null }),
      drift: () => driftCheckTenantStack(stack, { onEvent: events.onEvent }),
      refresh: () => refreshTenantStack(stack, { onEvent: events.onEvent }),
      destroy: () => destroyTenantStack(stack, { onEvent: events.onEvent }),
    };
    const result = await operations[run.kind]();
    await events.flushed();
    return {
      status: "succeeded",
      finishedAt: new Date(),
      changeSummary: result.changeSummary as Record<string, number>,
      resourceChanges: result.resourceChanges,
      outputs: result.outputs,
      ...(run.kind === "drift" ? { drift: result.drifted ?? [] } : {}),
    };
  } catch (error) {
    await events.flushed().catch(() => undefined);
    return { status: "failed", finishedAt: new Date(), error: runErrorOf(error) };
  }
}
