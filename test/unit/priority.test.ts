import { describe, expect, it } from "vitest";
import { assetRole, classifyPriority, DEFAULT_ROLE_PRIORITIES, isAgentCompatible } from "../../services/discovery/priority-fns";
import { miniCorp } from "../fixtures/tenant-config";

const ec2 = (tags: Record<string, string>, state = "running") => ({ assetType: "ec2", tags, state });

describe("priority rules", () => {
  it.each(miniCorp.instances.map((i) => [i.name, i] as const))("classifies fixture instance %s as expected", (_, instance) => {
    const asset = ec2(instance.tags, instance.state);
    expect(classifyPriority(asset)).toBe(instance.expected.priority);
    expect(isAgentCompatible(asset)).toBe(instance.expected.agent_compatible);
  });

  it("classifies a managed database as critical and never agent-compatible", () => {
    for (const db of miniCorp.databases) {
      const asset = { assetType: "rds", tags: {}, state: "available" };
      expect(classifyPriority(asset)).toBe(db.expected.priority);
      expect(isAgentCompatible(asset)).toBe(db.expected.agent_compatible);
    }
    expect(assetRole({ assetType: "rds", tags: {} })).toBe("database");
    // A Role tag on the database wins over the implied role.
    expect(classifyPriority({ assetType: "rds", tags: { Role: "honeypot" } })).toBe("low");
  });

  it("defaults to medium for unknown or missing roles; Role values are case-insensitive", () => {
    expect(classifyPriority(ec2({}))).toBe("medium");
    expect(classifyPriority(ec2({ Role: "build-agent" }))).toBe("medium");
    expect(classifyPriority(ec2({ Role: " Domain-Controller " }))).toBe("critical");
    expect(DEFAULT_ROLE_PRIORITIES).toMatchObject({ honeypot: "low", "web-server": "high" });
  });

  it("applies organization overrides first, first match wins, all conditions must hold", () => {
    const rules = [
      { match: { role: "honeypot" }, priority: "critical" as const },
      { match: { tag: { key: "Environment", value: "dmz" } }, priority: "low" as const },
      { match: { assetType: "rds", tag: { key: "pii" } }, priority: "high" as const },
      { match: { tag: { key: "Environment" } }, priority: "high" as const },
    ];
    expect(classifyPriority(ec2({ Role: "honeypot", Environment: "dmz" }), rules)).toBe("critical");
    expect(classifyPriority(ec2({ Role: "web-server", Environment: "dmz" }), rules)).toBe("low");
    expect(classifyPriority(ec2({ Role: "workstation", Environment: "corp" }), rules)).toBe("high");
    expect(classifyPriority({ assetType: "rds", tags: { pii: "yes" } }, rules)).toBe("high");
    // assetType must match: an ec2 with a pii tag skips rule 3 and falls to the default.
    expect(classifyPriority(ec2({ Role: "database", pii: "yes" }), rules)).toBe("critical");
    expect(classifyPriority({ assetType: "rds", tags: {} }, rules)).toBe("critical");
  });

  it("EC2 instances that exist are agent-compatible, stopped ones included (the association reaches them when they start)", () => {
    for (const state of ["running", "pending", "stopped", "stopping"]) expect(isAgentCompatible(ec2({}, state))).toBe(true);
    for (const state of ["shutting-down", "terminated", undefined]) {
      expect(isAgentCompatible({ assetType: "ec2", tags: {}, state })).toBe(false);
    }
    expect(isAgentCompatible({ assetType: "s3", tags: {}, state: "running" })).toBe(false);
  });

  it("EKS clusters are high by default, follow their Role tag and the organization's rules, and get the agent as a DaemonSet, not through SSM", () => {
    expect(classifyPriority({ assetType: "eks", tags: {} })).toBe("high");
    expect(classifyPriority({ assetType: "eks", tags: { Role: "honeypot" } })).toBe("low");
    expect(
      classifyPriority({ assetType: "eks", tags: { env: "prod" } }, [
        { match: { assetType: "eks", tag: { key: "env", value: "prod" } }, priority: "critical" },
      ]),
    ).toBe("critical");
    expect(isAgentCompatible({ assetType: "eks", tags: {}, state: "ACTIVE" })).toBe(false);
  });
});
