/**
 * The fleet coordinator: polls the database for running fleet runs and moves each on (decideTick in fleet-fns.ts):
 * reads its tenant runs' statuses, starts tenant runs up to max_concurrency through the run service (readiness,
 * approval, one run per stack and the global bound all apply), winds down on cancel or when failures exceed
 * max_failures (pending tenants not started, queued runs cancelled, running ones finish), and finishes it.
 * Everything is in PostgreSQL, so a restart resumes where it was; with several replicas, the one holding the
 * coordinator's session advisory lock does the work, and another takes over when that session ends.
 */
import { and, asc, eq, inArray } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { fleetRunTenants, fleetRuns, organizations, runs, type FleetRun, type FleetTenantStatus, type RunStatus } from "../../db/schema";
import { DomainError } from "../../lib/errors";
import { emitNotification } from "../core/notification-events";
import type { LockConnections } from "../core/run-liveness";
import type { RunRequester } from "../core/run-requests";
import type { Principal } from "../core/principal";
import { decideTick, describeChangeSummary, FAILED_TENANT_STATUSES, sumChangeSummaries } from "./fleet-fns";

const LOCK_SPACE = 0x666c7420; // "flt "
const LOCK_KEY = "fleet-coordinator";

export interface FleetCoordinatorDeps {
  db: DrizzleDatabase;
  /** Where the coordinator's lock is held (a connection of its own, not the request pool). */
  locks: LockConnections;
  runs: RunRequester;
  log?(message: string): void;
}

export interface FleetCoordinator {
  /** One pass over every running fleet run (when this process holds the lock). */
  tick(): Promise<void>;
  stop(): Promise<void>;
}

/** The fleet run's creator acts through it: the tenant runs record that actor. */
function fleetPrincipal(fleet: FleetRun): Principal {
  return { tokenId: 0, tokenName: `fleet run ${fleet.id}`, scope: "platform_admin", organizationId: null, actor: fleet.actor };
}

const RUN_TO_TENANT: Record<RunStatus, FleetTenantStatus> = {
  queued: "queued",
  running: "running",
  succeeded: "succeeded",
  failed: "failed",
  cancelled: "dropped",
  interrupted: "interrupted",
};

export async function advanceFleetRun(deps: FleetCoordinatorDeps, fleetId: string): Promise<void> {
  const { db } = deps;
  const [fleet] = await db.select().from(fleetRuns).where(eq(fleetRuns.id, fleetId));
  if (fleet?.status !== "running") return;
  const items = await db
    .select({ item: fleetRunTenants, runStatus: runs.status })
    .from(fleetRunTenants)
    .leftJoin(runs, eq(runs.id, fleetRunTenants.runId))
    .where(eq(fleetRunTenants.fleetRunId, fleetId))
    .orderBy(asc(fleetRunTenants.position));
  const statuses = new Map(items.map(({ item }) => [item.organizationId, item.status]));
  for (const { item, runStatus } of items) {
    if (!runStatus || !["queued", "running"].includes(item.status)) continue;
    const next = RUN_TO_TENANT[runStatus];
    if (next === item.status) continue;
    await db
      .update(fleetRunTenants)
      .set({ status: next, reason: next === "dropped" ? "its queued run was cancelled" : item.reason })
      .where(and(eq(fleetRunTenants.fleetRunId, fleetId), eq(fleetRunTenants.organizationId, item.organizationId)));
    statuses.set(item.organizationId, next);
  }

  for (;;) {
    const decision = decideTick({ fleet, statuses: [...statuses.values()] });
    if (decision.action === "wait") return;
    if (decision.action === "start") {
      const next = items.find(({ item }) => statuses.get(item.organizationId) === "pending")!.item;
      const [org] = await db.select().from(organizations).where(eq(organizations.id, next.organizationId));
      let update: { status: FleetTenantStatus; runId?: string; reason?: string };
      try {
        const requested = await deps.runs.request(fleetPrincipal(fleet), org!, fleet.kind, { queue: true, fleetRunId: fleet.id });
        update = { status: "queued", runId: requested.runId };
      } catch (error) {
        // A tenant the run service refuses (not ready, approval required, ...) counts as a failure, with the reason.
        if (!(error instanceof DomainError)) throw error;
        update = { status: "failed", reason: error.message };
      }
      await db
        .update(fleetRunTenants)
        .set(update)
        .where(and(eq(fleetRunTenants.fleetRunId, fleetId), eq(fleetRunTenants.organizationId, next.organizationId)));
      statuses.set(next.organizationId, update.status);
      continue;
    }
    if (decision.action === "wind_down") {
      const reason = decision.finalStatus === "cancelled" ? "the fleet run was cancelled" : decision.reason;
      await db
        .update(fleetRunTenants)
        .set({ status: decision.finalStatus === "cancelled" ? "dropped" : "not_started", reason })
        .where(and(eq(fleetRunTenants.fleetRunId, fleetId), eq(fleetRunTenants.status, "pending")));
      // Queued tenant runs that no executor claimed yet are dropped; the executor never starts a cancelled run.
      const queuedRows = await db
        .select({ runId: fleetRunTenants.runId })
        .from(fleetRunTenants)
        .where(and(eq(fleetRunTenants.fleetRunId, fleetId), eq(fleetRunTenants.status, "queued")));
      const queued = queuedRows.flatMap((row) => (row.runId ? [row.runId] : []));
      if (queued.length > 0) {
        await db
          .update(runs)
          .set({ status: "cancelled", finishedAt: new Date() })
          .where(and(inArray(runs.id, queued), eq(runs.status, "queued")));
      }
      if (fleet.stopReason !== decision.reason) await db.update(fleetRuns).set({ stopReason: decision.reason }).where(eq(fleetRuns.id, fleetId));
      const [stillRunning] = await db
        .select({ runId: fleetRunTenants.runId })
        .from(fleetRunTenants)
        .innerJoin(runs, eq(runs.id, fleetRunTenants.runId))
        .where(and(eq(fleetRunTenants.fleetRunId, fleetId), inArray(runs.status, ["queued", "running"])))
        .limit(1);
      if (stillRunning) return; // running tenant runs finish; the next tick records them
      await finish(deps, fleet, decision.finalStatus, decision.reason);
      return;
    }
    await finish(deps, fleet, decision.finalStatus, null);
    return;
  }
}

async function finish(deps: FleetCoordinatorDeps, fleet: FleetRun, status: FleetRun["status"], reason: string | null): Promise<void> {
  const { db } = deps;
  // The last tick already synced its tenants; sync once more so the summary is final.
  const rows = await db
    .select({ item: fleetRunTenants, run: runs, slug: organizations.slug })
    .from(fleetRunTenants)
    .innerJoin(organizations, eq(organizations.id, fleetRunTenants.organizationId))
    .leftJoin(runs, eq(runs.id, fleetRunTenants.runId))
    .where(eq(fleetRunTenants.fleetRunId, fleet.id));
  for (const { item, run } of rows) {
    if (run && ["queued", "running"].includes(item.status) && RUN_TO_TENANT[run.status] !== item.status) {
      await db
        .update(fleetRunTenants)
        .set({ status: RUN_TO_TENANT[run.status] })
        .where(and(eq(fleetRunTenants.fleetRunId, fleet.id), eq(fleetRunTenants.organizationId, item.organizationId)));
    }
  }
  const finished = await db
    .update(fleetRuns)
    .set({ status, finishedAt: new Date(), stopReason: reason })
    .where(and(eq(fleetRuns.id, fleet.id), eq(fleetRuns.status, "running")))
    .returning({ id: fleetRuns.id });
  if (finished.length === 0) return;
  const summary = sumChangeSummaries(rows.map((row) => row.run?.changeSummary));
  const failed = rows.filter((row) => FAILED_TENANT_STATUSES.includes(row.item.status) || row.run?.status === "failed").map((row) => row.slug);
  await emitNotification(db, {
    type: "fleet_run.finished",
    organizationId: null,
    data: {
      fleet_run_id: fleet.id,
      kind: fleet.kind,
      status,
      stop_reason: reason,
      change_summary: summary,
      change_summary_text: describeChangeSummary(summary),
      failed_tenants: failed,
    },
  });
  deps.log?.(`fleet run ${fleet.id} (${fleet.kind}) ${status}${reason ? `: ${reason}` : ""}`);
}

export function startFleetCoordinator(deps: FleetCoordinatorDeps, options: { work: boolean; pollMs?: number }): FleetCoordinator {
  let ticking: Promise<void> | undefined;
  let stopped = false;

  async function pass(): Promise<void> {
    const release = await deps.locks.hold(LOCK_SPACE, LOCK_KEY, { wait: false });
    if (!release) return;
    try {
      const active = await deps.db
        .select({ id: fleetRuns.id })
        .from(fleetRuns)
        .where(eq(fleetRuns.status, "running"))
        .orderBy(asc(fleetRuns.createdAt));
      for (const { id } of active) {
        await advanceFleetRun(deps, id).catch((error: unknown) =>
          deps.log?.(`fleet run ${id}: coordinator: ${error instanceof Error ? error.message : String(error)}`),
        );
      }
    } finally {
      await release();
    }
  }

  const tick = () => {
    ticking ??= pass().finally(() => (ticking = undefined));
    return ticking;
  };
  const timer = options.work
    ? setInterval(() => {
        if (!stopped) tick().catch((error: unknown) => deps.log?.(`fleet coordinator: ${error instanceof Error ? error.message : String(error)}`));
      }, options.pollMs ?? 1000)
    : undefined;
  timer?.unref();
  return {
    tick,
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      await ticking?.catch(() => undefined);
    },
  };
}
