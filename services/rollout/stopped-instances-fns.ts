/**
 * The one rule for stopped instances, used by the rollout summary, progress, validation, deployment health and the
 * onboarding status: a stopped (or stopping) instance gets the agent through the association when it starts, so it
 * is owed nothing now: no agent, no heartbeat, and a failed install on it holds nothing up. An instance that has the
 * agent counts as installed whatever its state.
 */

/** EC2 states in which an instance runs no agent. */
export const STOPPED_STATES: readonly string[] = ["stopped", "stopping"];

export const isStoppedState = (state: unknown): boolean => typeof state === "string" && STOPPED_STATES.includes(state);

/** Where a targeted instance stands in the rollout. */
export type RolloutStanding = "installed" | "stopped" | "failed" | "pending";

export function rolloutStanding(instance: { agentStatus: string; state: unknown }): RolloutStanding {
  if (instance.agentStatus === "installed" || instance.agentStatus === "checked_in") return "installed";
  if (isStoppedState(instance.state)) return "stopped";
  return instance.agentStatus === "failed" ? "failed" : "pending";
}

/** Whether the instance owes an agent and its heartbeats now: targeted and not stopped. */
export const owesAgent = (instance: { targeted: boolean; state: unknown }): boolean => instance.targeted && !isStoppedState(instance.state);
