import { describe, expect, it } from "vitest";
import { decideTick, describeChangeSummary, skipReasonFor, sumChangeSummaries } from "../../services/fleet/fleet-fns";
import { changedProperties } from "../../automation/tenant-stack";

const fleet = { maxConcurrency: 3, maxFailures: 1, cancelRequestedAt: null };

describe("fleet run decisions", () => {
  it("starts up to max_concurrency, counting queued and running tenant runs", () => {
    expect(decideTick({ fleet, statuses: ["pending", "pending", "pending", "pending"] })).toEqual({ action: "start", count: 3 });
    expect(decideTick({ fleet, statuses: ["running", "queued", "pending", "pending"] })).toEqual({ action: "start", count: 1 });
    expect(decideTick({ fleet, statuses: ["running", "queued", "running", "pending"] })).toEqual({ action: "wait" });
  });

  it("stops starting once failures exceed max_failures, and says why", () => {
    const decision = decideTick({ fleet, statuses: ["failed", "interrupted", "pending", "running"] });
    expect(decision).toMatchObject({ action: "wind_down", finalStatus: "stopped" });
    expect((decision as { reason: string }).reason).toMatch(/2 tenant run\(s\) failed, more than max_failures 1/);
    expect(decideTick({ fleet, statuses: ["failed", "pending"] })).toEqual({ action: "start", count: 1 });
  });

  it("winds down on cancel and finishes when nothing is left", () => {
    expect(decideTick({ fleet: { ...fleet, cancelRequestedAt: new Date() }, statuses: ["pending"] })).toMatchObject({
      action: "wind_down",
      finalStatus: "cancelled",
    });
    expect(decideTick({ fleet, statuses: ["succeeded", "skipped"] })).toEqual({ action: "finish", finalStatus: "succeeded" });
    expect(decideTick({ fleet, statuses: ["succeeded", "failed"] })).toEqual({ action: "finish", finalStatus: "failed" });
  });

  it("skips offboarded, offboarding, action_required and unconnected tenants with the reason", () => {
    expect(skipReasonFor({ onboardingStatus: "offboarded", statusReasons: null })).toBe("offboarded");
    expect(skipReasonFor({ onboardingStatus: "offboarding", statusReasons: null })).toBe("being offboarded");
    expect(skipReasonFor({ onboardingStatus: "action_required", statusReasons: [{ reason: "the last up failed", fix: "retry" }] })).toMatch(
      /^action_required: the last up failed/,
    );
    expect(skipReasonFor({ onboardingStatus: "not_started", statusReasons: null })).toMatch(/not connected/);
    expect(skipReasonFor({ onboardingStatus: "completed", statusReasons: null })).toBeUndefined();
  });

  it("sums change summaries and says them as 'update 37, same 412'", () => {
    const total = sumChangeSummaries([{ update: 30, same: 400 }, { update: 7, same: 12 }, null]);
    expect(total).toEqual({ update: 37, same: 412 });
    expect(describeChangeSummary(total)).toBe("update 37, same 412");
    expect(describeChangeSummary({ same: 3, create: 1 })).toBe("create 1, same 3");
    expect(describeChangeSummary({})).toBe("no changes");
  });
});

describe("drift properties", () => {
  it("names the outputs that differ, or the masked secrets when only they can have changed", () => {
    expect(changedProperties({ a: 1, b: "x" }, { a: 2, b: "x" })).toEqual(["a"]);
    const masked = { ciphertext: "[secret]" };
    expect(changedProperties({ assumeRolePolicy: masked, name: "r" }, { assumeRolePolicy: masked, name: "r" })).toEqual(["assumeRolePolicy"]);
  });
});
