import { describe, expect, it } from "vitest";
import { deriveAgentStatus, type InstanceEvidence } from "../../services/rollout/agent-status";

const base: InstanceEvidence = { targeted: true, enrolled: false, managed: { PingStatus: "Online", PlatformType: "Linux" } };
const at = (minutesAgo: number) => new Date(Date.UTC(2026, 10, 29, 12, 0) - minutesAgo * 60_000);

describe("an instance's agent status from its SSM evidence", () => {
  it("an enrolled agent is checked in whatever SSM says", () => {
    expect(deriveAgentStatus({ ...base, enrolled: true, association: { Status: "Failed" } }).status).toBe("checked_in");
  });

  it("an instance without the target tag is not targeted", () => {
    expect(deriveAgentStatus({ ...base, targeted: false }).status).toBe("not_targeted");
  });

  it("an instance SSM does not manage is pending, with the usual causes as the reason", () => {
    const derived = deriveAgentStatus({ targeted: true, enrolled: false });
    expect(derived.status).toBe("pending");
    expect(derived.reason).toMatch(/AmazonSSMManagedInstanceCore/);
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
    expect(deriveAgentStatus({ ...base, association: { Status: "Success", ExecutionDate: at(1) }, command: command("Failed", 5) }).status).toBe("installed");
  });
});
