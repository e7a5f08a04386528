/** Pure decisions of fleet runs: which tenants are skipped and why, what a coordinator tick does, summed changes. */
import type { ChangeSummary, FleetRun, FleetTenantStatus, Organization } from "../../db/schema";

/** Why a fleet run leaves a tenant out, or undefined when it takes part. */
export function skipReasonFor(org: Pick<Organization, "onboardingStatus" | "statusReasons">): string | undefined {
  switch (org.onboardingStatus) {
    case "offboarded":
      return "offboarded";
    case "offboarding":
      return "being offboarded";
    case "action_required": {
      const first = org.statusReasons?.[0]?.reason;
      return `action_required${first ? `: ${first}` : ""} (a person has to act first)`;
    }
    case "not_started":
    case "connecting":
      return "not connected yet: no stack to operate on";
    default:
      return undefined;
  }
}

export const ACTIVE_TENANT_STATUSES: readonly FleetTenantStatus[] = ["queued", "running"];
export const FAILED_TENANT_STATUSES: readonly FleetTenantStatus[] = ["failed", "interrupted"];

export interface TickInput {
  fleet: Pick<FleetRun, "maxConcurrency" | "maxFailures" | "cancelRequestedAt">;
  statuses: FleetTenantStatus[];
}

export type TickDecision =
  | { action: "start"; count: number }
  /** Drop what has not started (pending items, queued runs); finish once nothing is active. */
  | { action: "wind_down"; reason: string; finalStatus: "cancelled" | "stopped" }
  | { action: "finish"; finalStatus: "succeeded" | "failed" }
  | { action: "wait" };

export function decideTick({ fleet, statuses }: TickInput): TickDecision {
  const count = (set: readonly FleetTenantStatus[]) => statuses.filter((status) => set.includes(status)).length;
  const active = count(ACTIVE_TENANT_STATUSES);
  const failures = count(FAILED_TENANT_STATUSES);
  const pending = count(["pending"]);
  if (fleet.cancelRequestedAt) return { action: "wind_down", reason: "cancelled", finalStatus: "cancelled" };
  if (failures > fleet.maxFailures) {
    return {
      action: "wind_down",
      reason: `stopped: ${failures} tenant run(s) failed, more than max_failures ${fleet.maxFailures}; no new tenant run was started`,
      finalStatus: "stopped",
    };
  }
  if (pending === 0 && active === 0) return { action: "finish", finalStatus: failures > 0 ? "failed" : "succeeded" };
  const slots = Math.min(pending, fleet.maxConcurrency - active);
  return slots > 0 ? { action: "start", count: slots } : { action: "wait" };
}

/** Sums change summaries: { update: 37, same: 412 }. */
export function sumChangeSummaries(summaries: (ChangeSummary | null | undefined)[]): ChangeSummary {
  const total: ChangeSummary = {};
  for (const summary of summaries) {
    for (const [op, count] of Object.entries(summary ?? {})) total[op] = (total[op] ?? 0) + count;
  }
  return total;
}

/** "update 37, same 412": changes first (create, update, replace, delete), then same. */
export function describeChangeSummary(summary: ChangeSummary): string {
  const order = ["create", "update", "replace", "delete", "same"];
  const ops = Object.keys(summary).sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  const text = ops.filter((op) => summary[op]! > 0).map((op) => `${op} ${summary[op]}`);
  return text.length > 0 ? text.join(", ") : "no changes";
}
