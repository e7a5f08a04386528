/** How a tenant's onboarding status moves: pure rules, written by services/onboarding/onboarding-status-store.ts alone. */
import type { OnboardingStatus } from "../../db/schema";
import type { RunRequestIntent } from "../core/run-requests";

/** Statuses from which an `up` (re)starts provisioning. */
const PROVISIONING_FROM: readonly OnboardingStatus[] = ["not_started", "failed", "connecting", "action_required"];

/** Statuses from which a newly connected account starts onboarding by itself (quick-start flow). */
export const STARTS_ON_CONNECT: readonly OnboardingStatus[] = ["not_started", "connecting", "action_required", "failed"];

/** Statuses in which an EKS cluster discovery found gets its up by itself (onboarding-service.ts coverNewClusters). */
export const COVERS_NEW_CLUSTERS: readonly OnboardingStatus[] = ["discovering", "deploying", "validating", "completed", "action_required"];

/** Statuses a bootstrap wait that timed out moves to action_required. */
export const WAITING_FOR_CONNECT: OnboardingStatus[] = ["not_started", "connecting"];

/** Statuses the rollout's validation moves on (deploying -> validating -> completed, or action_required and back). */
export const ADVANCING: OnboardingStatus[] = ["discovering", "deploying", "validating", "action_required"];

/** The status a tenant takes while a requested run waits in the queue; undefined: it keeps its own. */
export function statusDuringRequest(current: OnboardingStatus, intent: RunRequestIntent): OnboardingStatus | undefined {
  if (intent.offboarding) return "offboarding";
  return intent.kind === "up" && PROVISIONING_FROM.includes(current) ? "provisioning" : undefined;
}

/** What a finished stack run means for the onboarding; undefined: nothing changes. */
export function statusAfterRun(
  current: OnboardingStatus,
  run: { kind: string; status: string },
): { status: OnboardingStatus; completeOffboarding?: true; discover?: true } | undefined {
  if (run.kind === "destroy" && current === "offboarding") {
    return run.status === "succeeded" ? { status: "offboarded", completeOffboarding: true } : { status: "failed" };
  }
  if (run.kind !== "up" || current === "offboarding") return undefined;
  return run.status === "succeeded" ? { status: "discovering", discover: true } : { status: "failed" };
}

/**
 * Where the rollout's validation takes the tenant: action_required with reasons, completed when every check passed,
 * validating once every targeted instance has the agent, back to deploying when the reasons are gone.
 */
export function statusAfterValidation(args: {
  current: OnboardingStatus;
  reasons: number;
  checksPassed: number;
  checksTotal: number;
  agentsInstalled: boolean;
}): OnboardingStatus | undefined {
  if (args.reasons > 0) return "action_required";
  if (args.checksPassed === args.checksTotal) return "completed";
  if (args.agentsInstalled) return "validating";
  return args.current === "action_required" ? "deploying" : undefined;
}
