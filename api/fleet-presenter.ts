/** Fleet runs and webhooks -> API shapes. */
import type { FleetRun, ResourceChange, Webhook } from "../db/schema";
import { describeChangeSummary, sumChangeSummaries } from "../services/fleet/fleet-fns";
import type { FleetOverview, FleetRunView } from "../services/fleet/fleet-service";
import { presentableErrorClass } from "../services/notification/webhook-address-fns";
import type { DeliveryWithAttempts } from "../services/notification/webhook-service";
import { iso, presentKpis } from "./presenters";

const changed = (changes: ResourceChange[] | null | undefined) =>
  (changes ?? [])
    .filter((change) => change.op !== "same")
    .map((change) => ({ urn: change.urn, type: change.type, op: change.op, diffs: change.diffs ?? [] }));

export function presentFleetRunSummary(fleet: FleetRun) {
  return {
    id: fleet.id,
    kind: fleet.kind,
    tenants: fleet.selector,
    max_concurrency: fleet.maxConcurrency,
    max_failures: fleet.maxFailures,
    status: fleet.status,
    stop_reason: fleet.stopReason,
    actor: fleet.actor,
    created_at: fleet.createdAt.toISOString(),
    cancel_requested_at: iso(fleet.cancelRequestedAt),
    finished_at: iso(fleet.finishedAt),
  };
}

export function presentFleetRun({ fleet, tenants }: FleetRunView) {
  const counts: Record<string, number> = {};
  for (const tenant of tenants) counts[tenant.status] = (counts[tenant.status] ?? 0) + 1;
  const summary = sumChangeSummaries(tenants.map((tenant) => tenant.run?.changeSummary));
  const rows = tenants.map((tenant) => ({
    slug: tenant.slug,
    status: tenant.status,
    reason: tenant.reason,
    run_id: tenant.run?.id ?? null,
    started_at: iso(tenant.run?.startedAt),
    finished_at: iso(tenant.run?.finishedAt),
    change_summary: tenant.run?.changeSummary ?? null,
    /** Every resource the run would change or changed (op other than same), with the properties. */
    changes: changed(tenant.run?.resourceChanges),
    drift: tenant.run?.kind === "drift" ? (tenant.run.drift ?? null) : null,
    error: tenant.run?.error ? tenant.run.error.message : null,
  }));
  return {
    ...presentFleetRunSummary(fleet),
    counts,
    change_summary: summary,
    change_summary_text: describeChangeSummary(summary),
    /** Tenants whose run would change (preview) or changed something. */
    changing_tenants: rows.filter((row) => row.changes.length > 0).map((row) => row.slug),
    drifted_tenants: rows.filter((row) => (row.drift?.length ?? 0) > 0).map((row) => row.slug),
    tenant_runs: rows,
  };
}

export function presentWebhook(webhook: Webhook, tenantSlug: string | null) {
  return {
    id: webhook.id,
    tenant: tenantSlug,
    url: webhook.url,
    events: webhook.events,
    created_at: webhook.createdAt.toISOString(),
  };
}

export function presentDelivery(delivery: DeliveryWithAttempts) {
  return {
    id: delivery.id,
    event: delivery.event,
    status: delivery.status,
    attempts: delivery.attempts,
    next_attempt_at: delivery.status === "pending" ? delivery.nextAttemptAt.toISOString() : null,
    created_at: delivery.createdAt.toISOString(),
    delivered_at: iso(delivery.deliveredAt),
    payload: delivery.payload,
    attempt_log: delivery.attemptLog.map((attempt) => ({
      attempt: attempt.attempt,
      at: attempt.at.toISOString(),
      status_code: attempt.statusCode,
      error: presentableErrorClass(attempt.error),
      duration_ms: attempt.durationMs,
    })),
  };
}

export function presentFleetOverview(overview: FleetOverview) {
  return {
    tenants_total: overview.tenantsTotal,
    by_status: overview.byStatus,
    drifted: overview.drifted,
    kpis: presentKpis(overview.kpis),
    active_fleet_runs: overview.activeFleetRuns,
  };
}
