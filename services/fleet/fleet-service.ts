/**
 * Fleet runs as a domain: one operation (preview, up, refresh, drift) over many tenants, with a selector, a bound on
 * tenant runs at once and a failure budget. Creating one records the fleet run and one row per selected tenant
 * (skipped ones with the reason); the coordinator (fleet-coordinator.ts) starts the tenant runs through the run
 * service. GET /v1/fleet: tenants counted by status and the onboarding KPIs.
 */
import { and, asc, desc, eq, inArray } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import {
  fleetRunTenants,
  fleetRuns,
  organizations,
  runs,
  type FleetRun,
  type FleetRunKind,
  type FleetSelector,
  type FleetTenantStatus,
  type OnboardingStatus,
  type Run,
} from "../../db/schema";
import { ConflictError, NotFoundError, UnprocessableError } from "../../lib/errors";
import { recordAudit } from "../core/audit-store";
import { onboardingOverview, type OnboardingOverview } from "../core/onboarding-overview";
import { requireAdmin, type Principal } from "../core/principal";
import { skipReasonFor } from "./fleet-fns";

export interface FleetServiceDeps {
  db: DrizzleDatabase;
}

export interface CreateFleetRunInput {
  kind: FleetRunKind;
  tenants: FleetSelector;
  maxConcurrency: number;
  maxFailures: number;
}

export interface FleetTenantView {
  slug: string;
  status: FleetTenantStatus;
  reason: string | null;
  run: Run | null;
}

export interface FleetRunView {
  fleet: FleetRun;
  tenants: FleetTenantView[];
}

export interface FleetOverview {
  tenantsTotal: number;
  byStatus: Partial<Record<OnboardingStatus, number>>;
  drifted: number;
  kpis: OnboardingOverview["kpis"];
  activeFleetRuns: number;
}

/** Records a fleet run over the tenants the selector names (platform admins, or the drift schedule). */
export async function recordFleetRun(db: DrizzleDatabase, actor: string, input: CreateFleetRunInput): Promise<FleetRun> {
  const selector = input.tenants;
  const orgs = await db
    .select()
    .from(organizations)
    .where(
      "slugs" in selector
        ? inArray(organizations.slug, selector.slugs)
        : "status" in selector
          ? inArray(organizations.onboardingStatus, selector.status)
          : undefined,
    )
    .orderBy(asc(organizations.slug));
  if ("slugs" in selector) {
    const missing = selector.slugs.filter((slug) => !orgs.some((org) => org.slug === slug));
    if (missing.length > 0) {
      // Well formed, but naming tenants that do not exist: state, not syntax (400 is what the schema refuses).
      throw new UnprocessableError(`no such tenant: ${missing.join(", ")}`, {
        code: "unknown_tenants",
        fields: [{ field: "tenants.slugs", message: `no such tenant: ${missing.join(", ")}` }],
      });
    }
  }
  return db.transaction(async (tx) => {
    const [fleet] = await tx
      .insert(fleetRuns)
      .values({ kind: input.kind, selector, maxConcurrency: input.maxConcurrency, maxFailures: input.maxFailures, actor })
      .returning();
    if (orgs.length > 0) {
      await tx.insert(fleetRunTenants).values(
        orgs.map((org, position) => {
          const reason = skipReasonFor(org);
          return { fleetRunId: fleet!.id, organizationId: org.id, position, status: reason ? ("skipped" as const) : ("pending" as const), reason };
        }),
      );
    }
    return fleet!;
  });
}

export async function fleetRunView(db: DrizzleDatabase, id: string): Promise<FleetRunView> {
  const [fleet] = await db.select().from(fleetRuns).where(eq(fleetRuns.id, id));
  if (!fleet) throw new NotFoundError(`fleet run ${id} not found`);
  const rows = await db
    .select({ item: fleetRunTenants, slug: organizations.slug, run: runs })
    .from(fleetRunTenants)
    .innerJoin(organizations, eq(organizations.id, fleetRunTenants.organizationId))
    .leftJoin(runs, eq(runs.id, fleetRunTenants.runId))
    .where(eq(fleetRunTenants.fleetRunId, id))
    .orderBy(asc(fleetRunTenants.position));
  return { fleet, tenants: rows.map((row) => ({ slug: row.slug, status: row.item.status, reason: row.item.reason, run: row.run })) };
}

export function createFleetService(deps: FleetServiceDeps) {
  const { db } = deps;
  return {
    async create(principal: Principal, input: CreateFleetRunInput): Promise<FleetRunView> {
      requireAdmin(principal);
      const fleet = await recordFleetRun(db, principal.actor, input);
      await recordAudit(db, principal, { action: `fleet.${input.kind}`, target: `fleet_run:${fleet.id}`, details: { tenants: input.tenants } });
      return fleetRunView(db, fleet.id);
    },

    async get(principal: Principal, id: string): Promise<FleetRunView> {
      requireAdmin(principal);
      return fleetRunView(db, id);
    },

    async list(principal: Principal, limit: number): Promise<FleetRun[]> {
      requireAdmin(principal);
      return db.select().from(fleetRuns).orderBy(desc(fleetRuns.createdAt)).limit(limit);
    },

    /** Queued tenant runs are dropped, running ones finish; the coordinator winds the fleet run down. */
    async cancel(principal: Principal, id: string): Promise<FleetRunView> {
      requireAdmin(principal);
      const [fleet] = await db.select().from(fleetRuns).where(eq(fleetRuns.id, id));
      if (!fleet) throw new NotFoundError(`fleet run ${id} not found`);
      if (fleet.status !== "running") throw new ConflictError(`fleet run ${id} already finished (${fleet.status})`, { code: "fleet_run_finished" });
      await db
        .update(fleetRuns)
        .set({ cancelRequestedAt: new Date() })
        .where(and(eq(fleetRuns.id, id), eq(fleetRuns.status, "running")));
      // Its tenant runs still waiting in the queue are dropped now (an executor never starts a cancelled run).
      await db
        .update(runs)
        .set({ status: "cancelled", finishedAt: new Date() })
        .where(and(eq(runs.fleetRunId, id), eq(runs.status, "queued")));
      await recordAudit(db, principal, { action: "fleet.cancel", target: `fleet_run:${id}` });
      return fleetRunView(db, id);
    },

    /** The fleet at a glance: tenants by status (drifted counted apart), the onboarding KPIs, fleet runs going on. */
    async overview(principal: Principal): Promise<FleetOverview> {
      requireAdmin(principal);
      const [overview, orgs, active] = await Promise.all([
        onboardingOverview(db),
        db.select({ status: organizations.onboardingStatus, drift: organizations.drift }).from(organizations),
        db.select({ id: fleetRuns.id }).from(fleetRuns).where(eq(fleetRuns.status, "running")),
      ]);
      const byStatus: Partial<Record<OnboardingStatus, number>> = {};
      for (const org of orgs) byStatus[org.status] = (byStatus[org.status] ?? 0) + 1;
      return {
        tenantsTotal: orgs.length,
        byStatus,
        drifted: orgs.filter((org) => org.drift?.status === "drifted" && org.status !== "offboarded").length,
        kpis: overview.kpis,
        activeFleetRuns: active.length,
      };
    },
  };
}

export type FleetService = ReturnType<typeof createFleetService>;
