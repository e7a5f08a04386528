/**
 * When onboarding cannot progress without a person, and what that person does. A tenant with any of these reasons is
 * `action_required`, never `deploying` forever; once the causes are gone it moves on by itself. Pure.
 */
import type { ConnectionCheck, RunStatus, StatusReason } from "../../db/schema";
import type { DeploymentSummary } from "./rollout-summary";
import { isStoppedState } from "./stopped-instances-fns";

export interface OnboardingFacts {
  rollout: DeploymentSummary;
  /** The bootstrap role wait, when the quick-create link was used. */
  connectionCheck?: ConnectionCheck | null;
  lastUp?: { status: RunStatus; error?: { message?: string } | null } | null;
  lastScan?: { status: string; error?: { message?: string } | null; assetsFound: number | null } | null;
  /** Why the last read of the rollout from the tenant's account failed. */
  refreshError?: string | null;
}

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

export function actionRequiredReasons(facts: OnboardingFacts): StatusReason[] {
  const reasons: StatusReason[] = [];
  const { rollout } = facts;
  if (facts.connectionCheck?.status === "timed_out") {
    reasons.push({
      reason: `the bootstrap role never answered${facts.connectionCheck.lastError ? `: ${facts.connectionCheck.lastError}` : ""}`,
      fix: "create the CloudFormation stack from the quick-create link, keeping the prefilled external ID, then start the wait again",
    });
  }
  if (facts.lastUp?.status === "failed") {
    reasons.push({
      reason: `the last up failed${facts.lastUp.error?.message ? `: ${facts.lastUp.error.message}` : ""}`,
      fix: "fix what the run's error names (GET /v1/tenants/{slug}/runs), then run an up",
    });
  }
  if (facts.refreshError) {
    reasons.push({
      reason: `the tenant's account cannot be read: ${facts.refreshError}`,
      fix: "check that the XDR access role and its trust (external ID) are intact; an up restores them",
    });
  }
  if (facts.lastScan?.status === "failed") {
    reasons.push({
      reason: `discovery failed: ${facts.lastScan.error?.message ?? "unknown error"}`,
      fix: "check that the XDR access role can be assumed (an up restores it), then discover again",
    });
  }
  const discovered =
    facts.lastScan !== undefined && facts.lastScan !== null && facts.lastScan.status !== "queued" && facts.lastScan.status !== "running";
  if (discovered && rollout.instances.length > 0 && rollout.targeted === 0 && rollout.targeting) {
    reasons.push({
      reason: `nothing can be targeted: the applied targeting (${rollout.targeting}) covers none of the ${count(rollout.instances.length, "discovered asset")}`,
      fix: "set integration_settings.targeting_mode to all_managed (or tag the instances), add the regions the instances run in, then run an up",
    });
  }
  if (rollout.unmanaged > 0) {
    reasons.push({
      reason: `${count(rollout.unmanaged, "targeted instance")} SSM does not manage, so the agent cannot reach them`,
      fix: "give them an instance profile with AmazonSSMManagedInstanceCore, or set integration_settings.enable_default_host_management and run an up",
    });
  }
  if (rollout.failed > 0) reasons.push(...installFailureReasons(rollout));
  return reasons;
}

/** An instance as a person tells it from others: its Name tag and its ID (two instances may share a name). */
export const instanceLabel = (instance: { assetId: string; name: string | null }) =>
  instance.name ? `${instance.name} (${instance.assetId})` : instance.assetId;

const RETRY = "then retry (POST /v1/tenants/{slug}/deployment/retry, or Retry failed instances in the console)";

/** One reason per cause of the failed installs, naming the instances, with that cause's own fix. */
function installFailureReasons(rollout: DeploymentSummary): StatusReason[] {
  const failed = rollout.instances.filter((instance) => instance.targeted && instance.agentStatus === "failed" && !isStoppedState(instance.state));
  const byCause = new Map<string, typeof failed>();
  for (const instance of failed) {
    const key = instance.failure ? `${instance.failure.cause}\n${instance.failure.reason}` : "";
    byCause.set(key, [...(byCause.get(key) ?? []), instance]);
  }
  const named = (instances: typeof failed) =>
    `${instances.slice(0, 3).map(instanceLabel).join(", ")}${instances.length > 3 ? ` and ${instances.length - 3} more` : ""}`;
  const reasons = [...byCause.values()].map((instances): StatusReason => {
    const failure = instances[0]!.failure;
    if (!failure) {
      return {
        reason: `the agent install failed on ${count(instances.length, "instance")} (${named(instances)})`,
        fix: `read each instance's reason in the deployment, fix it, ${RETRY}`,
      };
    }
    return {
      reason: `the agent install failed on ${count(instances.length, "instance")} (${named(instances)}): ${failure.reason}`,
      fix: `${failure.fix.replace(/, then retry$/, "")}, ${RETRY}`,
    };
  });
  // Failed instances not listed (a summary without instances) still need a person.
  return reasons.length > 0
    ? reasons
    : [
        {
          reason: `the agent install failed on ${count(rollout.failed, "instance")}`,
          fix: `read each instance's reason in the deployment, fix it, ${RETRY}`,
        },
      ];
}
