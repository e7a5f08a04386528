import { describe, expect, it } from "vitest";
import { deriveAgentStatus, STOPPED_REASON, type InstanceEvidence } from "../../services/rollout/agent-status";

const base: InstanceEvidence = {
  decision: { targeted: true },
  enrolled: false,
  state: "running",
  managed: { PingStatus: "Online", PlatformType: "Linux" },
};
const at = (minutesAgo: number) => new Date(Date.UTC(2026, 10, 29, 12, 0) - minutesAgo * 60_000);

describe("an instance's agent status from its SSM evidence", () => {
  it("an enrolled agent is checked in whatever SSM says", () => {
    expect(deriveAgentStatus({ ...base, enrolled: true, association: { Status: "Failed" } }).status).toBe("checked_in");
  });

  it("an instance the applied targeting leaves out is not targeted, with the targeting's reason", () => {
    const excluded = { targeted: false as const, reason: "excluded_by_tag" as const, message: "excluded by its tag xdr:monitor=false" };
    expect(deriveAgentStatus({ ...base, decision: excluded })).toEqual({ status: "not_targeted", reason: excluded.message });
  });

  it("a stopped instance is pending: the association reaches it when it starts", () => {
    expect(deriveAgentStatus({ ...base, state: "stopped", managed: undefined })).toEqual({ status: "pending", reason: STOPPED_REASON });
  });

  it("an instance SSM does not manage is pending, with the remedy as the reason", () => {
    const unmanaged = {
      targeted: false as const,
      reason: "not_managed" as const,
      message: "not an SSM managed instance: give it an instance profile with AmazonSSMManagedInstanceCore, or turn on enableDefaultHostManagement",
    };
    const derived = deriveAgentStatus({ decision: unmanaged, enrolled: false, state: "running" });
    expect(derived.status).toBe("pending");
    expect(derived.reason).toMatch(/AmazonSSMManagedInstanceCore.*enableDefaultHostManagement/);
  });

  it("follows the association: success installed, failure failed with its detail, otherwise installing or pending", () => {
    expect(deriveAgentStatus({ ...base, association: { Status: "Success", ExecutionDate: at(5) } }).status).toBe("installed");
    expect(deriveAgentStatus({ ...base, association: { Status: "Failed", DetailedStatus: "TimedOut", ExecutionDate: at(5) } })).toEqual({
      status: "failed",
      reason: "the agent document failed: TimedOut",
    });
    expect(deriveAgentStatus({ ...base, association: { Status: "Pending" } }).status).toBe("installing");
    expect(deriveAgentStatus(base).status).toBe("pending");
  });

  it("a retry command newer than the association's last run decides; an older one does not", () => {
    const failedAssociation = { Status: "Failed", ExecutionDate: at(10) };
    const command = (status: string, minutesAgo: number) => ({ commandId: "cmd-1", status, requestedAt: at(minutesAgo) });
    expect(deriveAgentStatus({ ...base, association: failedAssociation, command: command("Success", 5) }).status).toBe("installed");
    expect(deriveAgentStatus({ ...base, association: failedAssociation, command: command("InProgress", 5) }).status).toBe("installing");
    expect(deriveAgentStatus({ ...base, association: failedAssociation, command: command("TimedOut", 5) })).toMatchObject({ status: "failed" });
    expect(deriveAgentStatus({ ...base, association: { Status: "Success", ExecutionDate: at(1) }, command: command("Failed", 5) }).status).toBe(
      "installed",
    );
  });
});
