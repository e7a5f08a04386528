import { describe, expect, it } from "vitest";
import type { OnboardingStatus, Run } from "../../db/schema";
import { accountProgress, accountStatusAfterRollout, accountStatusAfterRun, summarizeAccounts } from "../../services/organization/account-status-fns";

const account = (accountId: string, status: OnboardingStatus, reasons: { reason: string; fix: string }[] | null = null) => ({
  accountId,
  status,
  statusReasons: reasons,
});

const run = (kind: Run["kind"], status: Run["status"], message?: string) => ({
  id: "00000000-0000-4000-8000-000000000001",
  kind,
  status,
  error: message ? { message } : null,
});

describe("a tenant's accounts summed up", () => {
  it("is completed only when every live account is", () => {
    const summary = summarizeAccounts([account("1", "completed"), account("2", "completed"), account("3", "offboarded")]);
    expect(summary).toMatchObject({ status: "completed", total: 3, byStatus: { completed: 2, offboarded: 1 }, needsAction: [] });
  });

  it("stays in progress while any account is still being worked on, whatever the others say", () => {
    expect(summarizeAccounts([account("1", "completed"), account("2", "failed"), account("3", "provisioning")]).status).toBe("provisioning");
    expect(summarizeAccounts([account("1", "completed"), account("2", "not_started")]).status).toBe("connecting");
    expect(summarizeAccounts([account("1", "completed"), account("2", "deploying"), account("3", "discovering")]).status).toBe("deploying");
  });

  it("says which accounts need a person, and for what, without holding the others up", () => {
    const missing = { reason: "the bootstrap role does not answer", fix: "check the StackSet" };
    const summary = summarizeAccounts([account("1", "completed"), account("2", "action_required", [missing]), account("3", "failed")]);
    expect(summary.status).toBe("action_required");
    expect(summary.needsAction).toEqual([
      { accountId: "2", status: "action_required", reasons: [missing] },
      { accountId: "3", status: "failed", reasons: [] },
    ]);
  });

  it("is failed when every live account failed, offboarded when none is left, not started without accounts", () => {
    expect(summarizeAccounts([account("1", "failed"), account("2", "offboarded")]).status).toBe("failed");
    expect(summarizeAccounts([account("1", "offboarded")]).status).toBe("offboarded");
    expect(summarizeAccounts([]).status).toBe("not_started");
    expect(summarizeAccounts([account("1", "offboarding"), account("2", "offboarded")]).status).toBe("offboarding");
  });
});

describe("an account after its run", () => {
  it("is discovering after a succeeded up (its discovery and rollout follow), failed (with the run's words and the retry) after a failed one", () => {
    expect(accountStatusAfterRun(run("up", "succeeded"))).toEqual({ status: "discovering", reasons: null });
    const failed = accountStatusAfterRun(run("up", "failed", "AccessDenied on iam:CreateRole"));
    expect(failed?.status).toBe("failed");
    expect(failed?.reasons?.[0]?.reason).toContain("AccessDenied on iam:CreateRole");
    expect(failed?.reasons?.[0]?.fix).toContain("/retry");
  });

  it("waits for a platform admin after the preview of a tenant that requires approval", () => {
    const outcome = accountStatusAfterRun(run("preview", "succeeded"));
    expect(outcome?.status).toBe("action_required");
    expect(outcome?.reasons?.[0]?.fix).toContain("plan_run_id 00000000-0000-4000-8000-000000000001");
  });

  it("is offboarded after a succeeded destroy; a refresh or drift check moves nothing", () => {
    expect(accountStatusAfterRun(run("destroy", "succeeded"))).toMatchObject({ status: "offboarded", offboarded: true });
    expect(accountStatusAfterRun(run("destroy", "cancelled"))?.status).toBe("failed");
    expect(accountStatusAfterRun(run("refresh", "succeeded"))).toBeUndefined();
    expect(accountStatusAfterRun(run("drift", "failed"))).toBeUndefined();
  });
});

describe("an account after its discovery and rollout read", () => {
  const scanned = { status: "succeeded" };

  it("is completed when every targeted instance has the agent, or when it runs none (connected but empty)", () => {
    expect(accountStatusAfterRollout({ scan: scanned, rollout: { byStatus: { installed: 3, checked_in: 2 }, unmanaged: 0, stopped: 0 } })).toEqual({
      status: "completed",
      reasons: null,
    });
    expect(accountStatusAfterRollout({ scan: scanned, rollout: { byStatus: {}, unmanaged: 0, stopped: 0 } }).status).toBe("completed");
  });

  it("is deploying while installs go on; stopped instances hold nothing up", () => {
    expect(
      accountStatusAfterRollout({ scan: scanned, rollout: { byStatus: { installed: 1, installing: 2 }, unmanaged: 0, stopped: 0 } }).status,
    ).toBe("deploying");
    expect(accountStatusAfterRollout({ scan: scanned, rollout: { byStatus: { installed: 1, pending: 2 }, unmanaged: 0, stopped: 2 } }).status).toBe(
      "completed",
    );
  });

  it("needs a person, with the reason and the fix, for failed installs, unmanaged instances, or an account it cannot read", () => {
    const failed = accountStatusAfterRollout({ scan: scanned, rollout: { byStatus: { failed: 1, pending: 2 }, unmanaged: 2, stopped: 0 } });
    expect(failed.status).toBe("action_required");
    expect(failed.reasons?.map((reason) => reason.reason)).toEqual([
      "the agent install failed on 1 instance",
      "2 instances SSM does not manage, so the agent cannot reach them",
    ]);
    const unreadable = accountStatusAfterRollout({ scan: { status: "failed", error: { message: "every region failed" } } });
    expect(unreadable).toMatchObject({
      status: "action_required",
      reasons: [{ reason: "discovery could not read the account: every region failed" }],
    });
    const refused = accountStatusAfterRollout({
      scan: scanned,
      refreshError: "the cloud account refused the request (access denied) (upstream_access_denied)",
    });
    expect(refused.reasons?.[0]?.fix).toMatch(/XDR access role/);
  });
});

describe("an account's progress", () => {
  it("follows its status, and while its agent is rolled out, the share of its instances that have it", () => {
    const none = { discovered: 0, installed: 0 };
    expect(
      ["not_started", "connecting", "provisioning", "discovering", "completed"].map((status) => accountProgress(status as OnboardingStatus, none)),
    ).toEqual([0, 10, 30, 50, 100]);
    expect(accountProgress("deploying", { discovered: 4, installed: 1 })).toBe(70);
    expect(accountProgress("action_required", { discovered: 4, installed: 4 })).toBe(100);
    expect(accountProgress("deploying", none)).toBe(60);
    expect(accountProgress("failed", { discovered: 4, installed: 4 })).toBe(0);
    // Its bootstrap role missing: nothing applied yet.
    expect(accountProgress("action_required", none, false)).toBe(10);
  });
});
