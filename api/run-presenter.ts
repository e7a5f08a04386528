/** Run rows -> API shape. Outputs on the row already exclude secrets (automation/tenant-stack.ts keeps secret outputs off it). */
import type { Run } from "../db/schema";
import { iso } from "./presenters";

export function presentRun(run: Run, tenantSlug: string) {
  return {
    id: run.id,
    tenant: tenantSlug,
    stack_name: run.stackName,
    aws_account_id: run.awsAccountId,
    kind: run.kind,
    status: run.status,
    actor: run.actor,
    /** Who asked, by name: the person's email or the token's name. */
    actor_name: run.actorName ?? null,
    requested_at: run.requestedAt.toISOString(),
    started_at: iso(run.startedAt),
    finished_at: iso(run.finishedAt),
    change_summary: run.changeSummary ?? null,
    resource_changes: run.resourceChanges ?? null,
    /** A preview saved its update plan (approval), or an up applied one. Where it lives is not the client's business. */
    plan_saved: run.planRef !== null,
    outputs: run.outputs ?? null,
    error: run.error ?? null,
    /** kind drift: the resources whose cloud state differs, and which properties. */
    drift: run.drift ?? null,
    remediates_run_id: run.remediatesRunId,
    fleet_run_id: run.fleetRunId,
    /** Queued but held back until the tenant's bootstrap stack is updated: why, and what it waits for. */
    held_for: run.heldFor ?? null,
  };
}
