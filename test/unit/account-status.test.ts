import { describe, expect, it } from "vitest";
import type { OnboardingStatus, Run } from "../../db/schema";
import { accountStatusAfterRun, summarizeAccounts } from "../../services/organization/account-status-fns";

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
  it("is completed after a succeeded up, failed (with the run's words and the retry) after a failed one", () => {
    expect(accountStatusAfterRun(run("up", "succeeded"))).toEqual({ status: "completed", reasons: null });
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
