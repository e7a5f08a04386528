/**
 * A tenant's accounts, summed up (pure): the status the tenant shows for all of them, how many are in each status, and
 * which need a person, with what. And the account's status after one of its runs finished.
 */
import type { OnboardingStatus, Run, StatusReason } from "../../db/schema";

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
  if (live.some((account) => ["not_started", "connecting", "provisioning", "discovering", "deploying", "validating"].includes(account.status))) {
    return count("provisioning") + count("connecting") > 0 ? "provisioning" : "connecting";
  }
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
    return run.status === "succeeded"
      ? { status: "completed", reasons: null }
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
