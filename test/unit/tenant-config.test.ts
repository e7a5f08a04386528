import { describe, expect, it } from "vitest";
import {
  parseTenantConfig,
  TenantConfigError,
  toStackConfigEntries,
  type TenantConfigInput,
} from "../../programs/tenant/config";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";

function rawOf(config: TenantConfigInput): Record<string, string> {
  return Object.fromEntries(toStackConfigEntries(config).map((entry) => [entry.key, entry.value]));
}

function problemsOf(raw: Record<string, string | undefined>) {
  try {
    parseTenantConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(TenantConfigError);
    return Object.fromEntries((error as TenantConfigError).problems.map((problem) => [problem.key, problem.message]));
  }
  throw new Error("expected the config to be rejected");
}

describe("tenant stack config", () => {
  it("round-trips through the stack's string values, with defaults applied", () => {
    const config = parseTenantConfig(rawOf(miniCorpTenantConfig()));
    expect(config.tenantSlug).toBe("mini-corp");
    expect(config.regions).toEqual(["us-east-1"]);
    expect(config.targetTag).toEqual({ key: "xdr:monitor", value: "true" });
    expect(config.associationSchedule).toBe("rate(30 minutes)");
    expect(config.maxSessionDurationSeconds).toBe(3600);
  });

  it("marks the external ID, the enrollment token and the kubeconfig as secret entries", () => {
    const entries = toStackConfigEntries(miniCorpTenantConfig({ kubeconfig: "apiVersion: v1" }));
    expect(entries.filter((entry) => entry.secret).map((entry) => entry.key).sort()).toEqual([
      "enrollmentToken",
      "externalId",
      "kubeconfig",
    ]);
  });

  it("defaults the regions to the home region", () => {
    const raw = rawOf(miniCorpTenantConfig({ regions: undefined }));
    expect(parseTenantConfig(raw).regions).toEqual(["us-east-1"]);
  });

  const invalid: [string, Partial<Record<string, string | undefined>>, string][] = [
    ["tenantSlug", { tenantSlug: "Mini_Corp" }, "lowercase"],
    ["customerAccountId", { customerAccountId: "2109876" }, "12-digit"],
    ["homeRegion", { homeRegion: "mars-1" }, "AWS region"],
    ["regions.1", { regions: '["us-east-1", "nowhere"]' }, "AWS region"],
    ["regions", { regions: "[us-east-1" }, "valid JSON"],
    ["regions", { regions: '["eu-west-1"]' }, "home region"],
    ["bootstrapRoleArn", { bootstrapRoleArn: "arn:aws:iam::210987654321:user/bob" }, "IAM role ARN"],
    ["bootstrapRoleArn", { bootstrapRoleArn: "arn:aws:iam::999999999999:role/MiniXdrBootstrap" }, "customer account"],
    ["externalId", { externalId: "short" }, "16-1224"],
    ["platformPrincipalArn", { platformPrincipalArn: "*" }, "principal ARN"],
    ["agentPublicBaseUrl", { agentPublicBaseUrl: "http://agents.example.com" }, "https://"],
    // It lands inside single-quoted shell and PowerShell strings of the install document: no quotes, no spaces.
    ["agentPublicBaseUrl", { agentPublicBaseUrl: "https://agents.example.com/x';id;'" }, "plain path"],
    ["agentPublicBaseUrl", { agentPublicBaseUrl: "https://agents.example.com/a b" }, "plain path"],
    ["agentVersion", { agentVersion: "latest" }, "semantic version"],
    ["enrollmentToken", { enrollmentToken: "abc" }, "at least 32"],
    ["targetTag.key", { targetTag: '{"key":"","value":"true"}' }, "1 character"],
    ["associationSchedule", { associationSchedule: "every hour" }, "rate(...)"],
    ["maxSessionDurationSeconds", { maxSessionDurationSeconds: "60" }, "3600"],
    ["tenantId", { tenantId: undefined }, "is required"],
  ];

  it.each(invalid)("rejects a bad %s", (key, override, message) => {
    const problems = problemsOf({ ...rawOf(miniCorpTenantConfig()), ...override });
    expect(Object.keys(problems)).toContain(key);
    expect(problems[key]).toContain(message);
  });

  it("lists every bad key in one message", () => {
    const raw = { ...rawOf(miniCorpTenantConfig()), customerAccountId: "1", agentVersion: "x", externalId: undefined };
    expect(() => parseTenantConfig(raw)).toThrowError(
      /invalid tenant configuration:\n {2}- customerAccountId: .*\n {2}- externalId: is required\n {2}- agentVersion: /,
    );
  });
});
