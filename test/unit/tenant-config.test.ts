import { describe, expect, it } from "vitest";
import { parseTenantConfig, TenantConfigError, toStackConfigEntries, type TenantConfigInput } from "../../programs/tenant/config";
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
    expect(config.targeting).toEqual({
      mode: "all_managed",
      targetTag: { key: "xdr:monitor", value: "true" },
      exclusionTag: { key: "xdr:monitor", value: "false" },
    });
    expect([config.associationMaxConcurrency, config.associationMaxErrors]).toEqual(["10%", "10%"]);
    expect(config.enableDefaultHostManagement).toBe(false);
    expect(config.associationSchedule).toBe("rate(30 minutes)");
    expect(config.maxSessionDurationSeconds).toBe(3600);
  });

  it("marks the external ID and the enrollment token as secret entries", () => {
    const entries = toStackConfigEntries(miniCorpTenantConfig());
    expect(
      entries
        .filter((entry) => entry.secret)
        .map((entry) => entry.key)
        .sort(),
    ).toEqual(["enrollmentToken", "externalId"]);
  });

  it("takes EKS clusters of the tenant's regions, each once, at most 50", () => {
    const cluster = {
      name: "payments",
      region: "us-east-1",
      endpoint: "https://ABC123.gr7.us-east-1.eks.amazonaws.com",
      certificateAuthority: "LS0tLS1CRUdJTg==",
    };
    const raw = (clusters: unknown[]) => ({ ...rawOf(miniCorpTenantConfig()), clusters: JSON.stringify(clusters) });
    expect(parseTenantConfig(raw([cluster])).clusters).toEqual([cluster]);
    expect(parseTenantConfig(rawOf(miniCorpTenantConfig())).clusters).toEqual([]);
    const problems = (clusters: unknown[]) => {
      try {
        parseTenantConfig(raw(clusters));
        return [];
      } catch (error) {
        return (error as TenantConfigError).problems;
      }
    };
    expect(problems([{ ...cluster, region: "eu-west-1" }])).toEqual([
      { key: "clusters.0.region", message: "must be one of the tenant's regions (us-east-1)" },
    ]);
    expect(problems([cluster, cluster])).toEqual([{ key: "clusters.1.name", message: "lists us-east-1/payments twice" }]);
    expect(problems([{ ...cluster, endpoint: "https://evil.example/x?y" }]).map((p) => p.key)).toEqual(["clusters.0.endpoint"]);
    expect(problems([{ ...cluster, name: "a b" }]).map((p) => p.key)).toEqual(["clusters.0.name"]);
    const many = Array.from({ length: 51 }, (_, i) => ({ ...cluster, name: `c${i}` }));
    expect(problems(many)).toEqual([{ key: "clusters", message: "must list at most 50 clusters" }]);
  });

  it("defaults the regions to the home region", () => {
    const raw = rawOf(miniCorpTenantConfig({ regions: undefined }));
    expect(parseTenantConfig(raw).regions).toEqual(["us-east-1"]);
  });

  it("round-trips the targeting, rate control and Default Host Management settings", () => {
    const config = parseTenantConfig(
      rawOf(
        miniCorpTenantConfig({
          regions: ["us-east-1", "eu-west-1"],
          targetingMode: "tag",
          targetTag: { key: "team", value: "prod" },
          exclusionTag: { key: "xdr:skip", value: "yes" },
          associationMaxConcurrency: "50",
          associationMaxErrors: "0",
          enableDefaultHostManagement: true,
        }),
      ),
    );
    expect(config.targeting).toEqual({ mode: "tag", targetTag: { key: "team", value: "prod" }, exclusionTag: { key: "xdr:skip", value: "yes" } });
    expect([config.associationMaxConcurrency, config.associationMaxErrors]).toEqual(["50", "0"]);
    expect(config.enableDefaultHostManagement).toBe(true);
    expect(config.regions).toEqual(["us-east-1", "eu-west-1"]);
  });

  // Stack configs written before targetingMode existed keep their meaning.
  const legacy: [string, Partial<Record<string, string>>, "all_managed" | "tag"][] = [
    ["nothing set (the new default)", {}, "all_managed"],
    ["targetAllManagedInstances=true", { targetAllManagedInstances: "true" }, "all_managed"],
    ["targetAllManagedInstances=false", { targetAllManagedInstances: "false" }, "tag"],
    ["targetAllManagedInstances=false with a targetTag", { targetAllManagedInstances: "false", targetTag: '{"key":"env","value":"prod"}' }, "tag"],
    ["a targetTag alone (the old default mode)", { targetTag: '{"key":"env","value":"prod"}' }, "tag"],
    ["targetingMode over a targetTag", { targetingMode: "all_managed", targetTag: '{"key":"env","value":"prod"}' }, "all_managed"],
  ];

  it.each(legacy)("maps old keys to a targeting mode: %s", (_, raw, mode) => {
    expect(parseTenantConfig({ ...rawOf(miniCorpTenantConfig()), ...raw }).targeting.mode).toBe(mode);
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
    ["regions", { regions: '["us-east-1", "us-east-1"]' }, "twice"],
    ["targetingMode", { targetingMode: "everything" }, "all_managed or tag"],
    ["targetAllManagedInstances", { targetingMode: "tag", targetAllManagedInstances: "true" }, "conflicts with targetingMode"],
    // The exclusion tag is read from instance metadata inside quoted shell/PowerShell strings.
    ["exclusionTag.key", { exclusionTag: '{"key":"x/y","value":"false"}' }, "instance metadata"],
    ["exclusionTag.value", { exclusionTag: '{"key":"xdr:monitor","value":"it\'s"}' }, "1-256 letters"],
    ["exclusionTag.value", { exclusionTag: '{"key":"xdr:monitor","value":""}' }, "1-256 letters"],
    ["associationMaxConcurrency", { associationMaxConcurrency: "0" }, "percentage"],
    ["associationMaxConcurrency", { associationMaxConcurrency: "150%" }, "percentage"],
    ["associationMaxErrors", { associationMaxErrors: "ten" }, "percentage"],
    ["enableDefaultHostManagement", { enableDefaultHostManagement: '"yes"' }, "boolean"],
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
