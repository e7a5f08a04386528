/**
 * A tenant's accounts, summed up (pure): the status the tenant shows for all of them, how many are in each status, and
 * which need a person, with what. And the account's status after one of its runs finished.
 */
import type { DiscoveryRegionResult, OnboardingStatus, Run, StatusReason } from "../../db/schema";
import { ACCESS_DENIED_CAUSES, accessDeniedDetail } from "../../lib/upstream-errors";

/** An account is being worked on: it takes one of the `max_concurrent_accounts` slots. */
export const ACCOUNT_BUSY_STATUSES: readonly OnboardingStatus[] = ["connecting", "provisioning"];

export interface AccountLike {
  accountId: string;
  status: OnboardingStatus;
  statusReasons: StatusReason[] | null;
}

export interface AccountsSummary {
  status: OnboardingStatus;
  total: number;
  byStatus: Partial<Record<OnboardingStatus, number>>;
  needsAction: { accountId: string; status: OnboardingStatus; reasons: StatusReason[] }[];
}

export function summarizeAccounts(accounts: readonly AccountLike[]): AccountsSummary {
  const byStatus: Partial<Record<OnboardingStatus, number>> = {};
  for (const account of accounts) byStatus[account.status] = (byStatus[account.status] ?? 0) + 1;
  const needsAction = accounts
    .filter((account) => account.status === "action_required" || account.status === "failed")
    .map((account) => ({ accountId: account.accountId, status: account.status, reasons: account.statusReasons ?? [] }));
  return { status: aggregateStatus(accounts, byStatus), total: accounts.length, byStatus, needsAction };
}

function aggregateStatus(accounts: readonly AccountLike[], byStatus: Partial<Record<OnboardingStatus, number>>): OnboardingStatus {
  const live = accounts.filter((account) => account.status !== "offboarded");
  if (accounts.length === 0) return "not_started";
  if (live.length === 0) return "offboarded";
  const count = (status: OnboardingStatus) => byStatus[status] ?? 0;
  if (count("offboarding") > 0 && count("offboarding") === live.length) return "offboarding";
  // Work still going on anywhere: the tenant is not done, whatever the others say.
  if (count("provisioning") + count("connecting") > 0) return "provisioning";
  if (count("not_started") > 0) return "connecting";
  if (count("discovering") + count("deploying") + count("validating") > 0) return "deploying";
  if (count("failed") === live.length) return "failed";
  if (count("action_required") + count("failed") > 0) return "action_required";
  return "completed";
}

export type AccountRunOutcome =
  | { status: OnboardingStatus; reasons: StatusReason[] | null; offboarded?: boolean }
  /** Nothing changes (a run the account no longer waits for). */
  | undefined;

/** The account's status after its run finished. */
export function accountStatusAfterRun(run: Pick<Run, "id" | "kind" | "status" | "error">): AccountRunOutcome {
  const failedBecause = (what: string): StatusReason[] => [
    {
      reason: `${what}: ${run.error?.message ?? run.status}`,
      fix: "see the run's events (GET /v1/tenants/{slug}/runs/{run_id}), fix the cause, then retry the account (POST /v1/tenants/{slug}/accounts/{account_id}/retry)",
    },
  ];
  if (run.kind === "up") {
    // Applied: the account's discovery and rollout follow (services/onboarding/account-onboarding.ts).
    return run.status === "succeeded"
      ? { status: "discovering", reasons: null }
      : { status: "failed", reasons: failedBecause(`its stack update ${run.status}`) };
  }
  if (run.kind === "preview") {
    if (run.status !== "succeeded") return { status: "failed", reasons: failedBecause(`its preview ${run.status}`) };
    return {
      status: "action_required",
      reasons: [
        {
          reason: `the tenant requires approval: preview run ${run.id} saved the account's plan`,
          fix: `a platform admin approves it: POST /v1/tenants/{slug}/accounts/{account_id}/runs with kind up and plan_run_id ${run.id}`,
        },
      ],
    };
  }
  if (run.kind === "destroy") {
    return run.status === "succeeded"
      ? { status: "offboarded", reasons: null, offboarded: true }
      : { status: "failed", reasons: failedBecause(`its offboarding (destroy) ${run.status}`) };
  }
  return undefined;
}

/** Statuses an account's rollout moves (its stack applied): discovering -> deploying -> completed, action_required and back. */
export const ACCOUNT_ROLLOUT_STATUSES: readonly OnboardingStatus[] = ["discovering", "deploying", "completed", "action_required"];

export interface AccountRolloutFacts {
  /** The account's latest finished discovery. */
  scan: { status: string; error?: { message?: string } | null; regions?: DiscoveryRegionResult[] | null };
  /** Why the rollout could not be read from the account (the neutral text). */
  refreshError?: string;
  /** What the read found on the account's targeted instances. */
  rollout?: { byStatus: Partial<Record<string, number>>; unmanaged: number; stopped: number };
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/**
 * Where an account stands once its stack is applied: completed when every targeted instance it runs has the agent
 * (or it runs none: connected but empty), deploying while installs go on, action_required with the reasons and fixes
 * when a person has to act. Stopped instances wait for their start and hold nothing up.
 */
export function accountStatusAfterRollout(facts: AccountRolloutFacts): { status: OnboardingStatus; reasons: StatusReason[] | null } {
  const reasons: StatusReason[] = [];
  if (facts.scan.status === "failed") {
    reasons.push({
      reason: `discovery could not read the account: ${facts.scan.error?.message ?? "unknown error"}`,
      fix: "check the account's XDR access role (the account's stack restores it: retry the account) and any service control policy on it",
    });
  }
  for (const region of facts.scan.regions ?? []) {
    const denied = region.status === "failed" ? accessDeniedDetail(region.error) : undefined;
    if (!denied) continue;
    const what = denied.action ?? "a read the platform needs";
    const organizationPolicy = denied.cause === "service_control_policy" || denied.cause === "resource_control_policy";
    reasons.push({
      reason: `AWS denied ${what} in ${region.region}: ${ACCESS_DENIED_CAUSES[denied.cause]}`,
      fix: organizationPolicy
        ? `ask your AWS administrator to allow ${what} in ${region.region} for the Mini-XDR roles, or remove ${region.region} from the tenant's regions`
        : "retry the account: its stack restores the XDR access role's permissions",
    });
  }
  if (facts.refreshError) {
    reasons.push({
      reason: `the agent rollout could not be read from the account: ${facts.refreshError}`,
      fix: "check the account's XDR access role and its trust (external ID); retrying the account restores them",
    });
  }
  const counts = facts.rollout?.byStatus ?? {};
  const failed = counts.failed ?? 0;
  if (failed > 0) {
    reasons.push({
      reason: `the agent install failed on ${plural(failed, "instance")}`,
      fix: "read each instance's reason in the coverage matrix and the assets, fix it, then retry the account",
    });
  }
  const unmanaged = facts.rollout?.unmanaged ?? 0;
  if (unmanaged > 0) {
    reasons.push({
      reason: `${plural(unmanaged, "instance")} SSM does not manage, so the agent cannot reach them`,
      fix: "give them an instance profile with AmazonSSMManagedInstanceCore, or set integration_settings.enable_default_host_management",
    });
  }
  if (reasons.length > 0) return { status: "action_required", reasons };
  const waiting = (counts.installing ?? 0) + (counts.pending ?? 0) - unmanaged - (facts.rollout?.stopped ?? 0);
  return { status: waiting > 0 ? "deploying" : "completed", reasons: null };
}

const PROGRESS_BY_STATUS: Partial<Record<OnboardingStatus, number>> = {
  not_started: 0,
  connecting: 10,
  provisioning: 30,
  discovering: 50,
  completed: 100,
};

/**
 * How far one organization account got, 0-100 (pure): by its status, and while its agent is being rolled out, by the
 * share of its discovered instances that have it.
 */
export function accountProgress(status: OnboardingStatus, instances: { discovered: number; installed: number }, applied = true): number {
  const fixed = PROGRESS_BY_STATUS[status];
  if (fixed !== undefined) return fixed;
  // Needs a person before its stack was ever applied (its bootstrap role missing, a plan awaiting approval).
  if (status === "action_required" && !applied) return 10;
  if (status === "deploying" || status === "validating" || status === "action_required") {
    return instances.discovered === 0 ? 60 : 60 + Math.round((40 * Math.min(instances.installed, instances.discovered)) / instances.discovered);
  }
  return 0;
}
