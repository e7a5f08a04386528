import { describe, expect, it } from "vitest";
import {
  evaluatePolicies,
  isAllowed,
  isAllowedWithinBoundary,
  matchesWildcard,
  UnsupportedPolicyError,
  type IamPolicy,
} from "../../lib/iam-evaluator-fns";

const policy = (...Statement: IamPolicy["Statement"]): IamPolicy => ({ Version: "2012-10-17", Statement });

describe("the IAM evaluator", () => {
  it("matches IAM wildcards: * spans slashes, ? is one character, ARNs are case-sensitive", () => {
    expect(matchesWildcard("arn:aws:ssm:*:1:parameter/mini-xdr/a/*", "arn:aws:ssm:eu-west-1:1:parameter/mini-xdr/a/b/c")).toBe(true);
    expect(matchesWildcard("arn:aws:iam::1:role/MiniXdr?ccess", "arn:aws:iam::1:role/MiniXdrAccess")).toBe(true);
    expect(matchesWildcard("arn:aws:iam::1:role/MiniXdr*", "arn:aws:iam::1:role/minixdrAccess")).toBe(false);
    expect(matchesWildcard("a.b", "axb")).toBe(false);
  });

  it("denies by default, allows on a matching Allow, and lets an explicit Deny win", () => {
    const allow = policy({ Effect: "Allow", Action: "ssm:Get*", Resource: "arn:aws:ssm:*:1:parameter/x" });
    expect(evaluatePolicies([allow], { action: "ssm:GetParameter", resources: ["arn:aws:ssm:us-east-1:1:parameter/x"] })).toBe("Allow");
    expect(evaluatePolicies([allow], { action: "ssm:getparameter", resources: ["arn:aws:ssm:us-east-1:1:parameter/x"] })).toBe("Allow");
    expect(evaluatePolicies([allow], { action: "ssm:PutParameter", resources: ["arn:aws:ssm:us-east-1:1:parameter/x"] })).toBe("ImplicitDeny");
    expect(evaluatePolicies([allow], { action: "ssm:GetParameter", resources: ["arn:aws:ssm:us-east-1:1:parameter/y"] })).toBe("ImplicitDeny");
    const deny = policy({ Effect: "Deny", Action: "*", Resource: "*" });
    expect(evaluatePolicies([allow, deny], { action: "ssm:GetParameter", resources: ["arn:aws:ssm:us-east-1:1:parameter/x"] })).toBe("ExplicitDeny");
  });

  it("allows a request naming several resources only when every one is allowed", () => {
    const allow = policy({ Effect: "Allow", Action: "ssm:SendCommand", Resource: ["arn:doc/ours", "arn:instance/*"] });
    expect(isAllowed([allow], { action: "ssm:SendCommand", resources: ["arn:doc/ours", "arn:instance/i-1"] })).toBe(true);
    expect(isAllowed([allow], { action: "ssm:SendCommand", resources: ["arn:doc/theirs", "arn:instance/i-1"] })).toBe(false);
  });

  it("supports NotAction and NotResource", () => {
    const p = policy({ Effect: "Allow", NotAction: "iam:*", NotResource: "arn:secret" });
    expect(isAllowed([p], { action: "ssm:GetParameter", resources: ["arn:open"] })).toBe(true);
    expect(isAllowed([p], { action: "iam:CreateRole", resources: ["arn:open"] })).toBe(false);
    expect(isAllowed([p], { action: "ssm:GetParameter", resources: ["arn:secret"] })).toBe(false);
  });

  it("ANDs operators and keys, ORs the values of a key; missing keys fail positive and pass negated operators", () => {
    const p = policy({
      Effect: "Allow",
      Action: "iam:AttachRolePolicy",
      Resource: "*",
      Condition: { ArnEquals: { "iam:PolicyARN": ["arn:a", "arn:b"], "iam:PermissionsBoundary": "arn:bound" } },
    });
    const request = (context: Record<string, string>) => ({ action: "iam:AttachRolePolicy", resources: ["r"], context });
    expect(isAllowed([p], request({ "iam:PolicyARN": "arn:b", "iam:PermissionsBoundary": "arn:bound" }))).toBe(true);
    expect(isAllowed([p], request({ "iam:policyarn": "arn:a", "IAM:PermissionsBoundary": "arn:bound" }))).toBe(true);
    expect(isAllowed([p], request({ "iam:PolicyARN": "arn:c", "iam:PermissionsBoundary": "arn:bound" }))).toBe(false);
    expect(isAllowed([p], request({ "iam:PolicyARN": "arn:a" }))).toBe(false);

    const negated = policy({ Effect: "Deny", Action: "*", Resource: "*", Condition: { StringNotEquals: { "ssm:resourceTag/t": "yes" } } });
    expect(evaluatePolicies([negated], request({}))).toBe("ExplicitDeny");
    expect(evaluatePolicies([negated], request({ "ssm:resourceTag/t": "yes" }))).toBe("ImplicitDeny");

    const ifExists = policy({ Effect: "Allow", Action: "*", Resource: "*", Condition: { StringEqualsIfExists: { k: "v" } } });
    expect(isAllowed([ifExists], request({}))).toBe(true);
    expect(isAllowed([ifExists], request({ k: "w" }))).toBe(false);
    const like = policy({ Effect: "Allow", Action: "*", Resource: "*", Condition: { StringLike: { k: "mini-*" }, Null: { other: "true" } } });
    expect(isAllowed([like], request({ k: "mini-corp" }))).toBe(true);
    expect(isAllowed([like], request({ k: "mini-corp", other: "x" }))).toBe(false);
  });

  it("matches the Principal of trust policies: exact ARN, account root, or *", () => {
    const trust = policy({ Effect: "Allow", Principal: { AWS: "arn:aws:iam::111122223333:role/Platform" }, Action: "sts:AssumeRole" });
    expect(isAllowed([trust], { action: "sts:AssumeRole", principal: "arn:aws:iam::111122223333:role/Platform" })).toBe(true);
    expect(isAllowed([trust], { action: "sts:AssumeRole", principal: "arn:aws:iam::111122223333:role/Other" })).toBe(false);
    expect(isAllowed([trust], { action: "sts:AssumeRole" })).toBe(false);
    const account = policy({ Effect: "Allow", Principal: { AWS: "arn:aws:iam::111122223333:root" }, Action: "sts:AssumeRole" });
    expect(isAllowed([account], { action: "sts:AssumeRole", principal: "arn:aws:iam::111122223333:role/Other" })).toBe(true);
    expect(isAllowed([account], { action: "sts:AssumeRole", principal: "arn:aws:iam::999999999999:role/Other" })).toBe(false);
    const service = policy({ Effect: "Allow", Principal: { Service: "ssm.amazonaws.com" }, Action: "sts:AssumeRole" });
    expect(isAllowed([service], { action: "sts:AssumeRole", principal: "ssm.amazonaws.com" })).toBe(true);
  });

  it("lets a permissions boundary cap what an identity policy allows", () => {
    const identity = policy({ Effect: "Allow", Action: "*", Resource: "*" });
    const boundary = policy({ Effect: "Allow", Action: "ec2:Describe*", Resource: "*" });
    expect(isAllowedWithinBoundary([identity], boundary, { action: "ec2:DescribeInstances", resources: ["*"] })).toBe(true);
    expect(isAllowedWithinBoundary([identity], boundary, { action: "iam:CreateUser", resources: ["*"] })).toBe(false);
  });

  it("refuses what it does not model instead of guessing", () => {
    const request = { action: "a:b", resources: ["r"], context: { k: "v" } };
    expect(() => isAllowed([policy({ Effect: "Allow", Action: "*", Resource: "*", Condition: { NumericEquals: { k: "1" } } })], request)).toThrow(
      UnsupportedPolicyError,
    );
    expect(() =>
      isAllowed([policy({ Effect: "Allow", Action: "*", Resource: "*", Condition: { "ForAnyValue:StringEquals": { k: "v" } } })], request),
    ).toThrow(UnsupportedPolicyError);
    expect(() => isAllowed([policy({ Effect: "Allow", Action: "*", Resource: "arn:${aws:username}" })], request)).toThrow(UnsupportedPolicyError);
  });
});
