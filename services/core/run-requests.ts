/**
 * The contract between the run domain and the domains that request runs (fleet, drift, onboarding): they take a
 * `RunRequester` as a dependency instead of importing the run service.
 */
import type { Organization, RunKind } from "../../db/schema";
import type { Principal } from "./principal";

export interface RunRequestOptions {
  /** Wait behind a run already queued or running for this tenant instead of a conflict. */
  queue?: boolean;
  /** kind up, when the tenant requires approval: the approved preview whose saved plan the up must apply. */
  planRunId?: string;
  /** kind up: the drift run this up brings back (the up refreshes first). */
  remediatesRunId?: string;
  /** The fleet run this tenant run belongs to. */
  fleetRunId?: string;
}

export interface RequestedRun {
  runId: string;
  kind: RunKind;
  stackName: string;
}

export interface RunRequester {
  /** Requests a stack operation; ConflictError (run_in_progress, approval_required), UnprocessableError, ForbiddenError. */
  request(principal: Principal, org: Organization, kind: RunKind, options?: RunRequestOptions): Promise<RequestedRun>;
}

/** Why a run is requested, as far as the tenant's onboarding cares: an `up`, an offboarding's destroy, any other. */
export interface RunRequestIntent {
  kind: RunKind;
  offboarding: boolean;
}

/**
 * What happens around a run's request (the onboarding moves the tenant's status before the run is queued, and back
 * when the request is refused).
 */
export type AroundRunRequest = <T>(org: Organization, intent: RunRequestIntent, request: () => Promise<T>) => Promise<T>;

/** A tenant requiring approval never gets an unapproved `up`. */
export function approvalRequired(org: Organization): boolean {
  return org.integrationSettings.requireApproval === true;
}
