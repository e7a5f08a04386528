import { describe, expect, it } from "vitest";
import { tenantConfigSchema, type TenantConfigInput } from "../../programs/tenant/config";
import { isAllowed } from "../harness/iam-simulation";
import { buildAccessPolicy } from "../../programs/tenant/policies";
import type { PolicyDocument } from "../../programs/tenant/policy-document";
import { associationModels, targetingDecision, type EstateInstance } from "../../programs/tenant/targeting-fns";
import { compareTargeting } from "../harness/targeting-check";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";

const ACCOUNT = "210987654321";
const DOCUMENT = "MiniXdr-InstallAgent-mini-corp";
const REGIONS = ["us-east-1", "eu-west-1"];

function configOf(overrides: Partial<TenantConfigInput> = {}) {
  return tenantConfigSchema.parse(miniCorpTenantConfig({ regions: REGIONS, ...overrides }));
}

/** What the stack deploys for a config: its associations and its access policy. */
function deployedFor(config: ReturnType<typeof configOf>, policy?: PolicyDocument) {
  return {
    associations: associationModels(config.targeting, config.regions),
    policy: policy ?? buildAccessPolicy({ customerAccountId: ACCOUNT, documentName: DOCUMENT, regions: config.regions, targeting: config.targeting }),
    accountId: ACCOUNT,
    documentName: DOCUMENT,
  };
}

const instance = (instanceId: string, fields: Partial<EstateInstance> = {}): EstateInstance => ({
  instanceId,
  region: "us-east-1",
  tags: {},
  managed: true,
  state: "running",
  ...fields,
});

/** A customer-like estate: untagged, two regions plus one outside the tenant's, every state, tag variants. */
const estate: EstateInstance[] = [
  instance("i-untagged"),
  instance("i-eu-untagged", { region: "eu-west-1" }),
  instance("i-stopped", { state: "stopped" }),
  instance("i-terminated", { state: "terminated" }),
  instance("i-unmanaged", { managed: false }),
  instance("i-opted-in", { tags: { "xdr:monitor": "true", Name: "web" } }),
  instance("i-excluded", { tags: { "xdr:monitor": "false" } }),
  instance("i-other-region", { region: "ap-south-1", tags: { "xdr:monitor": "true" } }),
  instance("i-unicode", { region: "eu-west-1", tags: { Name: "Serveur de fichiers — Zürich 東京" } }),
];

describe("the targeting decision", () => {
  const settings = { targeting: configOf().targeting, regions: REGIONS };

  it("covers every managed instance of the tenant's regions by default, stopped ones included", () => {
    expect(targetingDecision(instance("i-1"), settings)).toEqual({ targeted: true });
    expect(targetingDecision(instance("i-2", { state: "stopped", region: "eu-west-1" }), settings)).toEqual({ targeted: true });
  });

  it("says why an instance is not covered", () => {
    const reason = (fields: Partial<EstateInstance>) => {
      const decision = targetingDecision(instance("i-x", fields), settings);
      return decision.targeted ? "targeted" : decision.reason;
    };
    expect(reason({ state: "terminated" })).toBe("terminated");
    expect(reason({ region: "ap-south-1" })).toBe("region_not_covered");
    expect(reason({ tags: { "xdr:monitor": "false" } })).toBe("excluded_by_tag");
    expect(reason({ managed: false })).toBe("not_managed");
    const tagMode = { targeting: configOf({ targetingMode: "tag" }).targeting, regions: REGIONS };
    const missing = targetingDecision(instance("i-y"), tagMode);
    expect(missing).toMatchObject({ targeted: false, reason: "missing_target_tag" });
    expect(!missing.targeted && missing.message).toContain("xdr:monitor=true");
    const unmanaged = targetingDecision(instance("i-z", { managed: false }), settings);
    expect(!unmanaged.targeted && unmanaged.message).toContain("enableDefaultHostManagement");
  });

  it("warns that an excluded instance gets the agent when its tags are not in instance metadata", () => {
    const decision = targetingDecision(instance("i-x", { tags: { "xdr:monitor": "false" }, metadataTags: false }), settings);
    expect(decision.targeted).toBe(true);
    expect(decision.targeted && decision.warning).toContain("instance metadata");
  });
});

describe("the association and the access policy agree", () => {
  it("by default: installed on every managed, unexcluded instance of the tenant's regions, and retryable on exactly those", async () => {
    const comparison = await compareTargeting(estate, deployedFor(configOf()));
    expect(comparison.installed.sort()).toEqual(["i-eu-untagged", "i-opted-in", "i-stopped", "i-unicode", "i-untagged"]);
    expect(comparison.retryable.sort()).toEqual(comparison.installed.sort());
    expect(comparison.agree).toBe(true);
    expect(comparison.considered).not.toContain("i-unmanaged");
    expect(comparison.considered).not.toContain("i-terminated");
  });

  it("in tag mode: only the opted-in instances, on both sides", async () => {
    const comparison = await compareTargeting(estate, deployedFor(configOf({ targetingMode: "tag" })));
    expect(comparison.installed).toEqual(["i-opted-in"]);
    expect(comparison.retryable).toEqual(["i-opted-in"]);
    expect(comparison.agree).toBe(true);
  });

  it("catches a policy written for the other mode", async () => {
    const allManaged = configOf();
    const tagPolicy = deployedFor(configOf({ targetingMode: "tag" })).policy;
    const comparison = await compareTargeting(estate, deployedFor(allManaged, tagPolicy));
    expect(comparison.agree).toBe(false);
    expect(comparison.installedButNotRetryable.sort()).toEqual(["i-eu-untagged", "i-stopped", "i-unicode", "i-untagged"]);
  });

  it("catches a policy whose document and instance resources cover any region (the association only runs in the tenant's)", async () => {
    const config = configOf({ targetingMode: "tag" });
    const anyRegion = buildAccessPolicy({ customerAccountId: ACCOUNT, documentName: DOCUMENT, regions: ["*"], targeting: config.targeting });
    const comparison = await compareTargeting(estate, deployedFor(config, anyRegion));
    expect(comparison.retryableButNotInstalled).toEqual(["i-other-region"]);
  });

  it("catches a region missing from the policy's documents", async () => {
    const config = configOf();
    const homeOnly = buildAccessPolicy({ customerAccountId: ACCOUNT, documentName: DOCUMENT, regions: ["us-east-1"], targeting: config.targeting });
    const comparison = await compareTargeting(estate, deployedFor(config, homeOnly));
    expect(comparison.installedButNotRetryable.sort()).toEqual(["i-eu-untagged", "i-unicode"]);
  });

  it("reports the exclusion the install step cannot see (tags not in instance metadata) as a disagreement", async () => {
    const hidden = [instance("i-excluded-hidden", { tags: { "xdr:monitor": "false" }, metadataTags: false })];
    const comparison = await compareTargeting(hidden, deployedFor(configOf()));
    expect(comparison.installedButNotRetryable).toEqual(["i-excluded-hidden"]);
  });

  it("handles thousands of instances", async () => {
    const many = Array.from({ length: 5000 }, (_, i) =>
      instance(`i-${i.toString(16).padStart(17, "0")}`, {
        region: REGIONS[i % 2],
        tags: i % 10 === 0 ? { "xdr:monitor": "false" } : {},
        managed: i % 7 !== 0,
      }),
    );
    const comparison = await compareTargeting(many, deployedFor(configOf()));
    expect(comparison.agree).toBe(true);
    const expected = many.filter((m) => m.managed && m.tags["xdr:monitor"] !== "false").length;
    expect(comparison.installed).toHaveLength(expected);
  });
});

describe("the IAM simulation of the access policy", () => {
  const policy: PolicyDocument = {
    Version: "2012-10-17",
    Statement: [
      {
        Effect: "Allow",
        Action: "ssm:Send*",
        Resource: `arn:aws:ec2:*:${ACCOUNT}:instance/*`,
        Condition: { StringNotEquals: { "ssm:resourceTag/skip": "yes" } },
      },
      { Effect: "Deny", Action: "ssm:SendCommand", Resource: `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-denied` },
    ],
  };
  const request = (resource: string, context: Record<string, string> = {}) => ({ action: "ssm:SendCommand", resources: [resource], context });
  const policyAllows = (document: PolicyDocument, req: ReturnType<typeof request>) =>
    isAllowed({ arn: `arn:aws:iam::${ACCOUNT}:role/MiniXdrAccess`, policies: [document] }, req);

  it("treats a negated operator on a missing key as true, matches wildcards, and lets a Deny win", async () => {
    expect(await policyAllows(policy, request(`arn:aws:ec2:us-east-1:${ACCOUNT}:instance/i-a`))).toBe(true);
    expect(await policyAllows(policy, request(`arn:aws:ec2:us-east-1:${ACCOUNT}:instance/i-a`, { "ssm:resourceTag/skip": "yes" }))).toBe(false);
    expect(await policyAllows(policy, request(`arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-denied`))).toBe(false);
    expect(await policyAllows(policy, request("arn:aws:ec2:us-east-1:111122223333:instance/i-a"))).toBe(false);
    expect(await policyAllows(policy, { ...request(`arn:aws:ec2:us-east-1:${ACCOUNT}:instance/i-a`), action: "ssm:StartSession" })).toBe(false);
  });
});
