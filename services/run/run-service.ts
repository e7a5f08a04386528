/**
 * Stack runs as a domain: every run of every route (v1 runs, offboarding, the seed-compatible quick start) is requested
 * here, so readiness, the approval gate and the one-run-per-stack rule are enforced in one place.
 */
import { randomUUID } from "node:crypto";
import { and, asc, desc, eq, gt, isNotNull } from "drizzle-orm";
import { stackNameFor } from "../../automation/stack-name";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { runEvents, runs, TERMINAL_RUN_STATUSES, type Organization, type Run, type RunEvent, type RunHold, type RunKind } from "../../db/schema";
import { ConflictError, ForbiddenError, NotFoundError, ServiceNotConfiguredError, UnprocessableError } from "../../lib/errors";
import { loadAwsCredential } from "../core/aws-credential-store";
import { recordAudit } from "../core/audit-store";
import { approvalRequired, type AroundRunRequest, type RequestedRun, type RunRequestOptions } from "../core/run-requests";
import { actorDetails, isAdmin, isTokenHolder, requireAdmin, requireTenantAdmin, type Principal } from "../core/principal";
import type { RunQueue } from "./run-queue";
import { memberAccountCredential, tenantConfigProblems, type PlatformSettings } from "./tenant-stack-config";

/** An organization member account's stack (tenant_aws_accounts). */
export interface StackAccount {
  accountId: string;
  stackName: string;
}

export interface RunServiceDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  platform: PlatformSettings;
  queue: RunQueue;
  /** Around each request: the onboarding moves the tenant's status (services/onboarding); default: nothing. */
  aroundRequest?: AroundRunRequest;
  /** A tenant's queued runs at most, for runs requested with a token (MAX_QUEUED_RUNS_PER_TENANT); undefined: no cap. */
  maxQueuedRunsPerTenant?: number;
  /** Whether a run of the tenant's home stack must wait for its bootstrap update (services/integration); default: never. */
  holdFor?(org: Organization, kind: RunKind): Promise<RunHold | undefined>;
}

export function createRunService(deps: RunServiceDeps) {
  const { db } = deps;
  const around: AroundRunRequest = deps.aroundRequest ?? ((_org, _intent, request) => request());

  /** The checks before a run is queued: refused with what to fix, instead of a run that fails. */
  async function assertRunnable(org: Organization, kind: RunKind, account?: StackAccount): Promise<void> {
    if (org.onboardingStatus === "offboarded") throw new ConflictError(`tenant ${JSON.stringify(org.slug)} was offboarded`);
    if (org.onboardingStatus === "offboarding" && kind !== "destroy") {
      throw new ConflictError(`tenant ${JSON.stringify(org.slug)} is being offboarded`);
    }
    const credential = account
      ? { data: await memberAccountCredential(db, deps.keyring, org, account.accountId), status: "active" as const }
      : await loadAwsCredential(db, deps.keyring, org.id);
    const problems = tenantConfigProblems(account ? { ...org, awsAccountId: account.accountId } : org, credential?.data, deps.platform);
    if (credential && credential.status !== "active") {
      problems.push({ field: "integrations.aws", message: `is ${credential.status}; connect the AWS account again` });
    }
    const platformProblems = problems.filter((problem) => problem.field.startsWith("service."));
    if (platformProblems.length > 0) {
      throw new ServiceNotConfiguredError(
        `the service is not configured for stack runs: ${platformProblems.map((p) => `${p.field.slice(8)} ${p.message}`).join("; ")}`,
      );
    }
    if (problems.length > 0) {
      throw new UnprocessableError(`the tenant is not ready for stack runs: ${problems.map((p) => p.field).join(", ")}`, {
        code: "tenant_not_ready",
        fields: problems,
      });
    }
  }

  /**
   * With approval required, a preview saves its update plan and an `up` must name an approved (succeeded) preview of
   * the same tenant: the platform admin who requests that up approves it, and the engine applies exactly that plan.
   */
  async function planFor(principal: Principal, org: Organization, stackName: string, kind: RunKind, planRunId?: string): Promise<string | undefined> {
    // The id under which the preview's plan will be sealed in run_plans.
    if (kind === "preview" && approvalRequired(org)) return randomUUID();
    if (kind !== "up") return undefined;
    if (planRunId === undefined) {
      if (approvalRequired(org)) {
        throw new ConflictError("this tenant requires approval: preview, then a platform admin requests the up with plan_run_id", {
          code: "approval_required",
          fields: [{ field: "plan_run_id", message: "is required: the id of the approved preview run" }],
        });
      }
      return undefined;
    }
    if (!isAdmin(principal))
      throw new ForbiddenError("only a platform admin may approve a saved plan", {
        fields: [{ field: "plan_run_id", message: "may only be given by a platform admin" }],
      });
    const [preview] = await db
      .select()
      .from(runs)
      .where(and(eq(runs.id, planRunId), eq(runs.organizationId, org.id)));
    if (preview?.kind !== "preview" || preview.status !== "succeeded" || !preview.planRef || preview.stackName !== stackName) {
      throw new UnprocessableError("plan_run_id must name a succeeded preview of this stack that saved a plan", {
        code: "plan_not_approvable",
        fields: [{ field: "plan_run_id", message: "is not a succeeded preview with a saved plan" }],
      });
    }
    return preview.planRef;
  }

  async function enqueue(
    principal: Principal,
    org: Organization,
    kind: RunKind,
    options: RunRequestOptions,
    account?: StackAccount,
  ): Promise<string> {
    await assertRunnable(org, kind, account);
    const stackName = account?.stackName ?? stackNameFor(org.slug);
    const planRef = await planFor(principal, org, stackName, kind, options.planRunId);
    const heldFor = account ? undefined : await deps.holdFor?.(org, kind);
    return deps.queue.request(
      {
        organizationId: org.id,
        stackName,
        awsAccountId: account?.accountId,
        kind,
        actor: principal.actor,
        actorName: actorDetails(principal).actorName,
        planRef,
        remediatesRunId: options.remediatesRunId,
        fleetRunId: options.fleetRunId,
        // Fleet runs and drift remediation (the service acting on its own) have their own concurrency limits.
        maxQueuedRuns: isTokenHolder(principal) ? deps.maxQueuedRunsPerTenant : undefined,
        heldFor,
      },
      { queueBehindActive: options.queue ?? false },
    );
  }

  const service = {
    /** The tenant's runs held for its bootstrap update go to the queue (the update is applied). */
    async releaseHeld(organizationId: number): Promise<string[]> {
      const held = await db
        .select({ id: runs.id })
        .from(runs)
        .where(and(eq(runs.organizationId, organizationId), eq(runs.status, "queued"), isNotNull(runs.heldFor)));
      const released: string[] = [];
      for (const run of held) if (await deps.queue.release(run.id)) released.push(run.id);
      return released;
    },

    async request(principal: Principal, org: Organization, kind: RunKind, options: RunRequestOptions = {}): Promise<RequestedRun> {
      requireTenantAdmin(principal);
      if (kind === "destroy") requireAdmin(principal);
      const runId = await around(org, { kind, offboarding: false }, () => enqueue(principal, org, kind, options));
      await recordAudit(db, principal, {
        action: `run.${kind}`,
        organizationId: org.id,
        target: `run:${runId}`,
        details: { queue: options.queue ?? false, planRunId: options.planRunId },
      });
      return { runId, kind, stackName: stackNameFor(org.slug) };
    },

    /**
     * A run on an organization member account's own stack: the organization's reconciler onboarding or offboarding the
     * account, or an operator retrying it. The tenant's status is its home account's and does not move; approval
     * rules apply as to any stack.
     */
    async requestForAccount(
      principal: Principal,
      org: Organization,
      account: StackAccount,
      kind: RunKind,
      options: RunRequestOptions = {},
    ): Promise<RequestedRun> {
      if (kind === "destroy") requireAdmin(principal);
      const runId = await enqueue(principal, org, kind, options, account);
      await recordAudit(db, principal, {
        action: `run.${kind}`,
        organizationId: org.id,
        target: `run:${runId}`,
        details: { awsAccountId: account.accountId, queue: options.queue ?? false, planRunId: options.planRunId },
      });
      return { runId, kind, stackName: account.stackName };
    },

    /** Offboarding: destroy, then (when it succeeds) the stack is removed and the tenant's records closed. */
    async offboard(principal: Principal, org: Organization): Promise<RequestedRun> {
      requireTenantAdmin(principal);
      requireAdmin(principal);
      if (org.onboardingStatus === "offboarded") throw new ConflictError(`tenant ${JSON.stringify(org.slug)} was offboarded already`);
      const runId = await around(org, { kind: "destroy", offboarding: true }, () => enqueue(principal, org, "destroy", {}));
      await recordAudit(db, principal, { action: "tenant.offboard", organizationId: org.id, target: `run:${runId}` });
      return { runId, kind: "destroy", stackName: stackNameFor(org.slug) };
    },

    /**
     * Cancels a run: a queued one at once, a running one by stopping its operation (CLI and plugins; the lock and
     * pending operations are cleared, the run ends `cancelled`). A platform admin may cancel any run; a tenant token
     * its own tenant's runs except destroys (offboarding is the operator's). ConflictError for a finished run.
     */
    async cancel(principal: Principal, org: Organization, runId: string): Promise<{ runId: string; status: "cancelled" | "cancelling" }> {
      requireTenantAdmin(principal);
      const run = await service.get(org, runId);
      if (run.kind === "destroy" && !isAdmin(principal)) throw new ForbiddenError("only a platform admin may cancel a destroy run");
      const outcome = TERMINAL_RUN_STATUSES.includes(run.status) ? "finished" : await deps.queue.cancel(run.id, principal.actor);
      if (outcome === "finished") {
        const [now] = await db.select({ status: runs.status }).from(runs).where(eq(runs.id, run.id));
        throw new ConflictError(`run ${run.id} already finished (${now?.status ?? run.status}); there is nothing to cancel`, {
          code: "run_finished",
        });
      }
      await recordAudit(db, principal, { action: "run.cancel", organizationId: org.id, target: `run:${run.id}`, details: { status: run.status } });
      return { runId: run.id, status: outcome };
    },

    async list(org: Organization, query: { limit: number; kind?: RunKind }): Promise<Run[]> {
      return db
        .select()
        .from(runs)
        .where(and(eq(runs.organizationId, org.id), query.kind ? eq(runs.kind, query.kind) : undefined))
        .orderBy(desc(runs.requestedAt))
        .limit(query.limit);
    },

    async get(org: Organization, runId: string): Promise<Run> {
      const [run] = await db
        .select()
        .from(runs)
        .where(and(eq(runs.id, runId), eq(runs.organizationId, org.id)));
      if (!run) throw new NotFoundError(`run ${runId} not found`);
      return run;
    },

    /** The run's status and its engine events after `afterSeq`, in order (the database is the stream: any replica serves it). */
    async eventsAfter(runId: string, afterSeq: number, limit: number): Promise<{ status: Run["status"] | undefined; events: RunEvent[] }> {
      const [run] = await db.select({ status: runs.status }).from(runs).where(eq(runs.id, runId));
      const events = await db
        .select()
        .from(runEvents)
        .where(and(eq(runEvents.runId, runId), gt(runEvents.seq, afterSeq)))
        .orderBy(asc(runEvents.seq))
        .limit(limit);
      return { status: run?.status, events };
    },
  };
  return service;
}

export type RunService = ReturnType<typeof createRunService>;
