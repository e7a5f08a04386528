import { describe, expect, it } from "vitest";
import { owesAgent, rolloutStanding } from "../../services/rollout/stopped-instances-fns";

describe("the one rule for stopped instances", () => {
  it.each([
    ["running, no agent", "running", "pending", "pending", true],
    ["running, install failed", "running", "failed", "failed", true],
    ["running, agent", "running", "checked_in", "installed", true],
    ["stopped, no agent", "stopped", "pending", "stopped", false],
    ["stopped, install failed before it stopped", "stopped", "failed", "stopped", false],
    ["stopping, agent installed", "stopping", "installed", "installed", false],
    ["pending (starting), no agent", "pending", "unknown", "pending", true],
  ] as const)("%s (state %s, agent status %s): stands %s, owes an agent now: %s", (_label, state, agentStatus, standing, owes) => {
    expect(rolloutStanding({ state, agentStatus })).toBe(standing);
    expect(owesAgent({ targeted: true, state })).toBe(owes);
  });

  it("an instance not targeted owes nothing, whatever its state", () => {
    expect(owesAgent({ targeted: false, state: "running" })).toBe(false);
  });
});
