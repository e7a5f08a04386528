/**
 * Drift: what follows a drift run (kind drift, `refresh --preview-only`) and the schedule that starts them.
 *
 * - A finished drift check records the tenant's drift (drifted with the resources and properties, or in_sync) and,
 *   when drifted, emits drift.detected; with the tenant's auto_remediate, it requests an `up` with refresh linked to
 *   the drift run (runs.remediates_run_id).
 * - A remediation that succeeded requests the next drift check, which clears `drifted` once the account matches.
 * - DRIFT_SCHEDULE (cron, off when unset) starts a fleet run of kind drift over every tenant.
 */
import type { PgBoss } from "pg-boss";
import { eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { organizations, type Run, type TenantDrift } from "../../db/schema";
import { emitNotification } from "../core/notification-events";
import type { RunRequester } from "../core/run-requests";
import { systemPrincipal } from "../core/principal";
import { recordFleetRun } from "./fleet-service";

export interface DriftDeps {
  db: DrizzleDatabase;
  runs: RunRequester;
  log?(message: string): void;
}

export function driftFollowUp(deps: DriftDeps) {
  const { db } = deps;
  const log = deps.log ?? (() => undefined);
  return {
    async onRunFinished(run: Run): Promise<void> {
      if (run.status !== "succeeded") return;
      if (run.kind === "drift") {
        const [org] = await db.select().from(organizations).where(eq(organizations.id, run.organizationId));
        if (!org || org.onboardingStatus === "offboarded") return;
        const resources = run.drift ?? [];
        const drift: TenantDrift = {
          status: resources.length > 0 ? "drifted" : "in_sync",
          runId: run.id,
          checkedAt: (run.finishedAt ?? new Date()).toISOString(),
          resources,
        };
        if (drift.status === "drifted" && org.integrationSettings.autoRemediate === true) {
          try {
            const remediation = await deps.runs.request(systemPrincipal("system:drift-remediation", org.id), org, "up", {
              queue: true,
              remediatesRunId: run.id,
            });
            drift.remediationRunId = remediation.runId;
          } catch (error) {
            log(`drift ${org.slug}: remediation not started: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
        await db.update(organizations).set({ drift }).where(eq(organizations.id, org.id));
        if (drift.status === "drifted") {
          await emitNotification(db, {
            type: "drift.detected",
            organizationId: org.id,
            data: { run_id: run.id, resources, remediation_run_id: drift.remediationRunId ?? null },
          });
        }
        return;
      }
      if (run.kind === "up" && run.remediatesRunId) {
        const [org] = await db.select().from(organizations).where(eq(organizations.id, run.organizationId));
        if (!org) return;
        // The check after a remediation is what says the account matches again.
        await deps.runs
          .request(systemPrincipal("system:drift-remediation", org.id), org, "drift", { queue: true })
          .catch((error: unknown) =>
            log(`drift ${org.slug}: check after remediation not started: ${error instanceof Error ? error.message : String(error)}`),
          );
      }
    },
  };
}

export const DRIFT_SWEEP_QUEUE = "drift-sweep";

/** The scheduled drift sweep: a fleet run of kind drift over every tenant, each cron tick. */
export async function startDriftSchedule(
  boss: PgBoss,
  deps: { db: DrizzleDatabase; log?(message: string): void },
  options: { schedule: string | undefined; maxConcurrency: number; work: boolean },
): Promise<void> {
  await boss.createQueue(DRIFT_SWEEP_QUEUE, { policy: "singleton", retryLimit: 0 });
  if (!options.schedule) {
    await boss.unschedule(DRIFT_SWEEP_QUEUE).catch(() => undefined);
    return;
  }
  await boss.schedule(DRIFT_SWEEP_QUEUE, options.schedule, {}, { tz: "UTC" });
  if (!options.work) return;
  await boss.work(DRIFT_SWEEP_QUEUE, { batchSize: 1 }, async () => {
    const fleet = await recordFleetRun(deps.db, "system:drift-schedule", {
      kind: "drift",
      tenants: { all: true },
      maxConcurrency: options.maxConcurrency,
      // A check that fails says so on its tenant; it is no reason to stop checking the others.
      maxFailures: 1_000_000,
    });
    deps.log?.(`drift schedule: fleet run ${fleet.id} checks every tenant`);
  });
}
