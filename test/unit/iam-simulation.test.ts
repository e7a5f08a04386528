/**
 * What our policy checks rely on from the IAM simulator (test/harness/iam-simulation.ts over @cloud-copilot/iam-simulate): the
 * behaviours the bootstrap, boundary, access and trust policies are written for, and the requests it refuses.
 */
import { describe, expect, it } from "vitest";
import { decide, IamSimulationError, isAllowed, trustAdmits } from "../harness/iam-simulation";

const ACCOUNT = "210987654321";
const PLATFORM = "arn:aws:iam::111122223333:role/MiniXdrPlatform";
const ROLE = `arn:aws:iam::${ACCOUNT}:role/MiniXdrBootstrap-t`;
const policy = (...Statement: object[]) => ({ Version: "2012-10-17", Statement });
const holding = (...policies: object[]) => ({ arn: ROLE, policies });
const parameter = (name: string) => `arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter/${name}`;

describe("the IAM simulation", () => {
  it("matches ARN wildcards across slashes, and ARNs case-sensitively", async () => {
    const ours = holding(policy({ Effect: "Allow", Action: "ssm:GetParameter", Resource: `arn:aws:ssm:*:${ACCOUNT}:parameter/mini-xdr/a/*` }));
    expect(await isAllowed(ours, { action: "ssm:GetParameter", resources: [parameter("mini-xdr/a/b/c")] })).toBe(true);
    expect(await isAllowed(ours, { action: "ssm:GetParameter", resources: [parameter("mini-xdr/b/c")] })).toBe(false);
    const roles = holding(policy({ Effect: "Allow", Action: "iam:GetRole", Resource: `arn:aws:iam::${ACCOUNT}:role/MiniXdr*` }));
    expect(await isAllowed(roles, { action: "iam:GetRole", resources: [`arn:aws:iam::${ACCOUNT}:role/MiniXdrAccess`] })).toBe(true);
    expect(await isAllowed(roles, { action: "iam:GetRole", resources: [`arn:aws:iam::${ACCOUNT}:role/minixdrAccess`] })).toBe(false);
  });

  it("denies by default, allows on a matching Allow, and lets an explicit Deny win", async () => {
    const allow = policy({ Effect: "Allow", Action: "ssm:Get*", Resource: `arn:aws:ssm:*:${ACCOUNT}:parameter/x` });
    const get = (name: string) => ({ action: "ssm:GetParameter", resources: [parameter(name)] });
    expect(await decide(holding(allow), get("x"))).toBe("Allowed");
    expect(await decide(holding(allow), get("y"))).toBe("ImplicitlyDenied");
    expect(await decide(holding(allow), { action: "ssm:PutParameter", resources: [parameter("x")] })).toBe("ImplicitlyDenied");
    expect(await decide(holding(allow, policy({ Effect: "Deny", Action: "*", Resource: "*" })), get("x"))).toBe("ExplicitlyDenied");
  });

  it("allows a request naming several resources only when every one is allowed", async () => {
    const document = (name: string) => `arn:aws:ssm:eu-west-1:${ACCOUNT}:document/${name}`;
    const instance = `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-1`;
    const run = holding(policy({ Effect: "Allow", Action: "ssm:SendCommand", Resource: [document("Ours"), `arn:aws:ec2:*:${ACCOUNT}:instance/*`] }));
    expect(await isAllowed(run, { action: "ssm:SendCommand", resources: [document("Ours"), instance] })).toBe(true);
    expect(await isAllowed(run, { action: "ssm:SendCommand", resources: [document("Theirs"), instance] })).toBe(false);
  });

  it("evaluates AWS-owned documents, whose ARNs have no account", async () => {
    const reads = holding(policy({ Effect: "Allow", Action: "ssm:DescribeDocument", Resource: "arn:aws:ssm:*:*:document/*" }));
    expect(await isAllowed(reads, { action: "ssm:DescribeDocument", resources: ["arn:aws:ssm:eu-west-1::document/AWS-RunPatchBaseline"] })).toBe(
      true,
    );
    const ours = holding(policy({ Effect: "Allow", Action: "ssm:DescribeDocument", Resource: `arn:aws:ssm:*:${ACCOUNT}:document/*` }));
    expect(await isAllowed(ours, { action: "ssm:DescribeDocument", resources: ["arn:aws:ssm:eu-west-1::document/AWS-RunPatchBaseline"] })).toBe(
      false,
    );
  });

  it("ANDs operators and keys, ORs the values of a key; a missing key fails a positive operator and passes a negated one", async () => {
    const boundary = `arn:aws:iam::${ACCOUNT}:policy/Boundary`;
    const attach = holding(
      policy({
        Effect: "Allow",
        Action: "iam:AttachRolePolicy",
        Resource: "*",
        Condition: {
          ArnEquals: { "iam:PolicyARN": ["arn:aws:iam::aws:policy/A", "arn:aws:iam::aws:policy/B"], "iam:PermissionsBoundary": boundary },
        },
      }),
    );
    const request = (context: Record<string, string>) => ({ action: "iam:AttachRolePolicy", resources: [`arn:aws:iam::${ACCOUNT}:role/r`], context });
    expect(await isAllowed(attach, request({ "iam:PolicyARN": "arn:aws:iam::aws:policy/B", "iam:PermissionsBoundary": boundary }))).toBe(true);
    expect(await isAllowed(attach, request({ "iam:PolicyARN": "arn:aws:iam::aws:policy/C", "iam:PermissionsBoundary": boundary }))).toBe(false);
    expect(await isAllowed(attach, request({ "iam:PolicyARN": "arn:aws:iam::aws:policy/A" }))).toBe(false);

    const instance = `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-1`;
    const untagged = holding(
      policy({ Effect: "Deny", Action: "ssm:SendCommand", Resource: "*", Condition: { StringNotEquals: { "ssm:resourceTag/xdr:monitor": "true" } } }),
    );
    expect(await decide(untagged, { action: "ssm:SendCommand", resources: [instance] })).toBe("ExplicitlyDenied");
    expect(await decide(untagged, { action: "ssm:SendCommand", resources: [instance], context: { "ssm:resourceTag/xdr:monitor": "true" } })).toBe(
      "ImplicitlyDenied",
    );
  });

  it("lets a permissions boundary cap what an identity policy allows", async () => {
    const capped = {
      ...holding(policy({ Effect: "Allow", Action: "*", Resource: "*" })),
      boundary: policy({ Effect: "Allow", Action: "ec2:Describe*", Resource: "*" }),
    };
    expect(await isAllowed(capped, { action: "ec2:DescribeInstances", resources: ["*"] })).toBe(true);
    expect(await isAllowed(capped, { action: "iam:CreateUser", resources: [`arn:aws:iam::${ACCOUNT}:user/admin`] })).toBe(false);
  });

  it("refuses what AWS would never be asked instead of guessing", async () => {
    const all = holding(policy({ Effect: "Allow", Action: "*", Resource: "*" }));
    await expect(isAllowed(all, { action: "ssm:GetParameterz", resources: [parameter("x")] })).rejects.toThrow(IamSimulationError);
    // a parameter is not a resource of PutRolePolicy
    await expect(isAllowed(all, { action: "iam:PutRolePolicy", resources: [parameter("x")] })).rejects.toThrow(IamSimulationError);
    await expect(
      isAllowed(all, { action: "ssm:GetParameter", resources: [parameter("x")], context: { "iam:PassedToService": "ssm.amazonaws.com" } }),
    ).rejects.toThrow(/does not send iam:PassedToService/);
    await expect(
      isAllowed(holding(policy({ Action: "*", Resource: "*" })), { action: "ssm:GetParameter", resources: [parameter("x")] }),
    ).rejects.toThrow(IamSimulationError);
  });
});

describe("the IAM simulation of trust policies", () => {
  const withExternalId = policy({
    Effect: "Allow",
    Principal: { AWS: PLATFORM },
    Action: "sts:AssumeRole",
    Condition: { StringEquals: { "sts:ExternalId": "ext-1" } },
  });
  const assume = (trust: object, principal: string, externalId?: string) =>
    trustAdmits(trust, { roleArn: ROLE, principal, context: externalId === undefined ? {} : { "sts:ExternalId": externalId } });

  it("admits the named principal only with the external ID of the condition", async () => {
    expect(await assume(withExternalId, PLATFORM, "ext-1")).toBe(true);
    expect(await assume(withExternalId, PLATFORM, "ext-2")).toBe(false);
    expect(await assume(withExternalId, PLATFORM)).toBe(false);
    expect(await assume(withExternalId, "arn:aws:iam::111122223333:role/Other", "ext-1")).toBe(false);
  });

  it("admits the principal with any external ID, and with none, when the trust has no external ID condition", async () => {
    const without = policy({ Effect: "Allow", Principal: { AWS: PLATFORM }, Action: "sts:AssumeRole" });
    expect(await assume(without, PLATFORM, "anything")).toBe(true);
    expect(await assume(without, PLATFORM)).toBe(true);
  });

  it("reads an account root as every principal of that account, and a service principal as that service", async () => {
    const account = policy({ Effect: "Allow", Principal: { AWS: "arn:aws:iam::111122223333:root" }, Action: "sts:AssumeRole" });
    expect(await assume(account, "arn:aws:iam::111122223333:role/Other")).toBe(true);
    expect(await assume(account, "arn:aws:iam::999999999999:role/Other")).toBe(false);
    const service = policy({ Effect: "Allow", Principal: { Service: "ssm.amazonaws.com" }, Action: "sts:AssumeRole" });
    expect(await assume(service, "ssm.amazonaws.com")).toBe(true);
    expect(await assume(service, "ec2.amazonaws.com")).toBe(false);
  });
});
