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
  type DroppedOperation,
  type OperationResult,
} from "../../automation";
import type { DrizzleDatabase } from "../../db/client";
import { organizations, runEvents, runs, type Run, type RunError, type RunKind } from "../../db/schema";
import { beginExecution, type StopReason } from "./executing-runs";
import { holdRunLiveness, type LockConnections } from "../core/run-liveness";
import { DEFAULT_RUN_TIMEOUT_SECONDS, DEFAULT_STOP_GRACE_SECONDS, timeoutVariableOf } from "./run-timeouts";
import { droppedDiagnostics, releaseStack } from "./stack-release";
import type { RunPlanStore } from "./run-plan-store";
import { noopTelemetry, type Telemetry } from "../../lib/telemetry";
import type { TenantConfigInput } from "../../programs/tenant/config";

export interface RunExecutorDeps {
  db: DrizzleDatabase;
  automation: AutomationSettings;
  /** The checked CLI, resolved once (resolvePulumiCli); resolved per run when absent. */
  cli?: PulumiCommand;
  /** The tenant's stack config (with its secrets), resolved when the run starts. */
  tenantConfig(run: Pick<Run, "organizationId" | "awsAccountId">): Promise<TenantConfigInput>;
  /** Where previews of tenants that require approval save their update plans, and approved ups read them. */
  plans?: RunPlanStore;
  /** With a PostgreSQL server: held per run so that recovery can tell a crashed executor from a live one. */
  liveness?: LockConnections;
  /** Told when a run has finished (its row is final); what it does next (discovery, offboarding) is its business. */
  onRunFinished?(run: Run): Promise<void>;
  log?(message: string): void;
  /** Run lifecycle log lines and run metrics. */
  telemetry?: Telemetry;
  /** Per kind, seconds after which a run is stopped and fails with kind Timeout (DEFAULT_RUN_TIMEOUT_SECONDS). */
  timeoutSeconds?: Partial<Record<RunKind, number>>;
  /** How long a stopped operation may cancel gracefully before its processes are killed (DEFAULT_STOP_GRACE_SECONDS). */
  stopGraceSeconds?: number;
}

/** Ids for a run's log lines: never config, outputs or errors' details. */
function runFields(run: Run, tenant: string | undefined) {
  return { runId: run.id, tenantId: run.organizationId, tenant, kind: run.kind };
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

/** The final row of a run its executor stopped (timeout, cancel, expired job), once its processes, lock and pending operations are gone. */
function stoppedOutcome(run: Run, reason: StopReason, dropped: DroppedOperation[]): Partial<Run> {
  const cleared = `; its processes were stopped and the stack's lock cleared${
    dropped.length > 0 ? `; ${dropped.length} unfinished operation(s) were dropped from the state (see diagnostics)` : ""
  }`;
  const diagnostics = dropped.length > 0 ? { diagnostics: droppedDiagnostics(dropped) } : {};
  if (reason.kind === "cancelled") {
    return {
      status: "cancelled",
      finishedAt: new Date(),
      error: { kind: "Cancelled", message: `cancelled by ${reason.actor} while running${cleared}`, ...diagnostics },
    };
  }
  if (reason.kind === "shutdown") {
    const message = `the service shut down before this run finished (${reason.variable}): its stack operation was cancelled; request the run again${cleared}`;
    return { status: "interrupted", finishedAt: new Date(), error: { kind: "Interrupted", message, ...diagnostics } };
  }
  if (reason.kind === "expired") {
    const message = `its queue job was aborted (it expired, or the service stopped taking jobs)${cleared}`;
    return { status: "interrupted", finishedAt: new Date(), error: { kind: "Interrupted", message, ...diagnostics } };
  }
  const message = `the ${run.kind} exceeded its timeout of ${reason.seconds} s (${reason.variable})${cleared}`;
  return { status: "failed", finishedAt: new Date(), error: { kind: "Timeout", message, ...diagnostics } };
}

/**
 * Executes one queued run: the stack operation, its events, its result, recorded on the run's row. The run is
 * registered as executing here (recovery leaves it alone) and stopped at its kind's timeout or on cancel. Every
 * status change is guarded by the status it expects: a run that something else finished meanwhile is left as it is,
 * and that is logged.
 */
export async function executeRun(deps: RunExecutorDeps, runId: string, { jobSignal }: { jobSignal?: AbortSignal } = {}): Promise<void> {
  const { db } = deps;
  const log = deps.log ?? console.error;
  const execution = beginExecution(runId, (deps.stopGraceSeconds ?? DEFAULT_STOP_GRACE_SECONDS) * 1000);
  let timer: NodeJS.Timeout | undefined;
  const onJobAbort = () => execution.stop({ kind: "expired" });
  try {
    const release = deps.liveness ? await holdRunLiveness(deps.liveness, runId) : undefined;
    try {
      const [claimed] = await db
        .update(runs)
        .set({ status: "running", startedAt: new Date() })
        .where(and(eq(runs.id, runId), eq(runs.status, "queued")))
        .returning();
      if (!claimed) return; // already handled (e.g. marked interrupted, cancelled): never run twice
      execution.stackName = claimed.stackName;
      const timeoutSeconds = deps.timeoutSeconds?.[claimed.kind] ?? DEFAULT_RUN_TIMEOUT_SECONDS[claimed.kind];
      timer = setTimeout(
        () => execution.stop({ kind: "timeout", seconds: timeoutSeconds, variable: timeoutVariableOf(claimed.kind) }),
        timeoutSeconds * 1000,
      );
      jobSignal?.addEventListener("abort", onJobAbort);
      const { log: logger, metrics } = deps.telemetry ?? noopTelemetry;
      const queueWaitSeconds = (claimed.startedAt!.getTime() - claimed.requestedAt.getTime()) / 1000;
      metrics.runStarted(claimed.kind, queueWaitSeconds);
      const [tenant] = await db.select({ slug: organizations.slug }).from(organizations).where(eq(organizations.id, claimed.organizationId));
      logger.info({ event: "run.started", ...runFields(claimed, tenant?.slug), queueWaitMs: Math.round(queueWaitSeconds * 1000) }, "run started");
      let outcome = await performOperation(deps, claimed, execution.signal);
      clearTimeout(timer);
      if (execution.stopReason && outcome.status !== "succeeded") {
        await execution.killLeftovers();
        // Should clearing fail, the run still ends; the next run (or recovery) finds the lock and says so.
        const dropped = await releaseStack(deps.automation, claimed.stackName, {
          cli: deps.cli,
          log: (message) => log(`run ${runId}: ${message}`),
        }).catch((error: unknown) => {
          log(
            `run ${runId}: clearing the stopped operation's lock and pending operations failed: ${error instanceof Error ? error.message : String(error)}`,
          );
          return [];
        });
        outcome = stoppedOutcome(claimed, execution.stopReason, dropped);
      }
      const [finished] = await db
        .update(runs)
        .set(outcome)
        .where(and(eq(runs.id, runId), eq(runs.status, "running")))
        .returning();
      if (!finished) {
        const [now] = await db.select({ status: runs.status }).from(runs).where(eq(runs.id, runId));
        log(
          `run ${runId}: finished ${String(outcome.status)} but its status was changed to ${now?.status ?? "(deleted)"} meanwhile; that status is kept`,
        );
        return;
      }
      const durationSeconds = (finished.finishedAt!.getTime() - claimed.startedAt!.getTime()) / 1000;
      metrics.runFinished(finished.kind, finished.status, durationSeconds);
      (finished.status === "succeeded" ? logger.info : logger.warn)(
        {
          event: "run.finished",
          ...runFields(finished, tenant?.slug),
          status: finished.status,
          durationMs: Math.round(durationSeconds * 1000),
          errorKind: finished.error?.kind,
        },
        "run finished",
      );
      await deps
        .onRunFinished?.(finished)
        .catch((error: unknown) => log(`run ${runId}: follow-up failed: ${error instanceof Error ? error.message : String(error)}`));
    } finally {
      // The liveness session may have dropped (a database restart): the lock went with it, nothing to release.
      await release?.().catch((error: unknown) =>
        log(`run ${runId}: releasing its liveness lock: ${error instanceof Error ? error.message : String(error)}`),
      );
    }
  } finally {
    clearTimeout(timer);
    jobSignal?.removeEventListener("abort", onJobAbort);
    execution.end();
  }
}

async function performOperation(deps: RunExecutorDeps, run: Run, signal: AbortSignal): Promise<Partial<Run>> {
  const events = eventWriter(deps.db, run.id);
  try {
    const config = await deps.tenantConfig(run);
    const plan = run.planRef ? { id: run.planRef, organizationId: run.organizationId, previewRunId: run.id } : undefined;
    if (plan && !deps.plans) throw new Error("this run has a saved plan but the executor has no plan store");
    // Runs other than destroy reuse the stack this process already opened and configured, when nothing changed.
    const stack =
      run.kind === "destroy"
        ? await openTenantStack(deps.automation, run.stackName, { create: false, cli: deps.cli })
        : await openConfiguredTenantStack(deps.automation, config, {
            updatePlans: run.kind === "up" && plan !== undefined,
            cli: deps.cli,
            stackName: run.stackName,
          });
    // Stopped while the stack was being opened: the operation never starts (the abort only reaches a running one).
    signal.throwIfAborted();
    const operations: Record<RunKind, () => Promise<OperationResult & { drifted?: Run["drift"] }>> = {
      preview: () =>
        plan
          ? deps.plans!.savePlan(plan, (savePlanTo) => previewTenantStack(stack, { onEvent: events.onEvent, signal, savePlanTo }))
          : previewTenantStack(stack, { onEvent: events.onEvent, signal }),
      up: () =>
        plan
          ? deps.plans!.withPlanFile(plan, (planFile) => upTenantStack(stack, { onEvent: events.onEvent, signal, plan: planFile }))
          : // A remediation reads the cloud first, so what changed outside the stack is put back.
            upTenantStack(stack, { onEvent: events.onEvent, signal, refresh: run.remediatesRunId !== null }),
      drift: () => driftCheckTenantStack(stack, { onEvent: events.onEvent, signal }),
      refresh: () => refreshTenantStack(stack, { onEvent: events.onEvent, signal }),
      destroy: () => destroyTenantStack(stack, { onEvent: events.onEvent, signal }),
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
