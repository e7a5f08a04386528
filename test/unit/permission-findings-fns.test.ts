/** Reading AWS's AccessDenied messages (the 2021 wording) out of what runs, discoveries and rollout reads met. Pure. */
import { describe, expect, it } from "vitest";
import { deniedCallsIn, excludedByOrganization, missingPermissionOf, permissionFix } from "../../services/core/permission-findings-fns";

const EC2_SCP =
  "UnauthorizedOperation: You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/MiniXdrAccess/mxdr-7 is not authorized to perform: ec2:DescribeInstances with an explicit deny in a service control policy";

const PULUMI_DIAGNOSTIC =
  "urn:pulumi:tenant-acme::mini-xdr-tenant::minixdr:tenant:Tenant$aws:ssm/document:Document::agent-install-eu-central-1 creating SSM Document: operation error SSM: CreateDocument, https response error StatusCode: 400, RequestID: 9f1c7c2e-0000-4000-8000-000000000000, api error AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/MiniXdrBootstrap/pulumi is not authorized to perform: ssm:CreateDocument on resource: arn:aws:ssm:eu-central-1:123456789012:document/MiniXdr-InstallAgent because no identity-based policy allows the ssm:CreateDocument action";

describe("denied calls in AWS's words", () => {
  it("reads the action and an SCP's deny, in the region the call was made", () => {
    expect(deniedCallsIn(EC2_SCP, "eu-west-1")).toEqual([
      { action: "ec2:DescribeInstances", resource: null, region: "eu-west-1", cause: "service_control_policy" },
    ]);
  });

  it("takes the region from the resource's ARN, and a missing allow from 'no identity-based policy allows'", () => {
    expect(deniedCallsIn(PULUMI_DIAGNOSTIC)).toEqual([
      {
        action: "ssm:CreateDocument",
        resource: "arn:aws:ssm:eu-central-1:123456789012:document/MiniXdr-InstallAgent",
        region: "eu-central-1",
        cause: "no_allow",
      },
    ]);
  });

  it("files IAM and STS under global, with a boundary's deny", () => {
    const text =
      "User: arn:aws:sts::123456789012:assumed-role/MiniXdrBootstrap/pulumi is not authorized to perform: iam:PutRolePolicy on resource: role MiniXdrAccess with an explicit deny in a permissions boundary";
    expect(deniedCallsIn(text, "us-east-1")).toEqual([
      { action: "iam:PutRolePolicy", resource: null, region: "global", cause: "permissions_boundary" },
    ]);
  });

  it("finds every denial once per action and region, and the region named before it when no ARN says", () => {
    const text = [
      "aws-us-west-2 provider: api error AccessDeniedException: User: x is not authorized to perform: ssm:PutParameter because no identity-based policy allows the ssm:PutParameter action",
      "aws-us-west-2 provider: api error AccessDeniedException: User: x is not authorized to perform: ssm:PutParameter because no identity-based policy allows the ssm:PutParameter action",
      EC2_SCP,
    ].join("\n");
    expect(deniedCallsIn(text).map((call) => [call.region, call.action, call.cause])).toEqual([
      ["us-west-2", "ssm:PutParameter", "no_allow"],
      ["us-west-2", "ec2:DescribeInstances", "service_control_policy"],
    ]);
  });

  it("keeps nothing that is not of AWS's shapes: a hostile resource, a made-up action", () => {
    const text =
      'is not authorized to perform: ssm:GetParameter on resource: <img src=x onerror=alert(1)> because no identity-based policy allows it\nis not authorized to perform: DROP TABLE runs; "evil"';
    expect(deniedCallsIn(text, "us-east-1")).toEqual([{ action: "ssm:GetParameter", resource: null, region: "us-east-1", cause: "no_allow" }]);
    expect(deniedCallsIn("the cloud provider's request failed (upstream_error)")).toEqual([]);
  });

  it("sends an organization's deny to its administrator and a missing allow to an up, then the bootstrap update", () => {
    expect(permissionFix("ec2:DescribeInstances", "eu-west-1", "service_control_policy")).toBe(
      "ask your AWS administrator to allow ec2:DescribeInstances in eu-west-1 for the Mini-XDR roles (the organization's policy denies it)",
    );
    expect(permissionFix("iam:PassRole", "global", "no_allow")).toMatch(
      /^the Mini-XDR roles lack iam:PassRole: run an up .* update the bootstrap stack/,
    );
  });

  it("calls a region excluded by the organization only when an SCP denies reading its instances", () => {
    expect(excludedByOrganization([{ action: "ec2:DescribeInstances", cause: "service_control_policy" }])).toBe(true);
    expect(excludedByOrganization([{ action: "ssm:ListAssociations", cause: "service_control_policy" }])).toBe(false);
    expect(excludedByOrganization([{ action: "ec2:DescribeInstances", cause: "no_allow" }])).toBe(false);
    const seen = new Date("2026-12-06T00:00:00Z");
    expect(
      missingPermissionOf({
        awsAccountId: "123456789012",
        region: "ap-south-1",
        action: "rds:DescribeDBInstances",
        resource: null,
        cause: "no_allow",
        source: "discovery",
        firstSeenAt: seen,
        lastSeenAt: seen,
        occurrences: 3,
      }),
    ).toMatchObject({ reason: "AWS denied rds:DescribeDBInstances in ap-south-1: no policy allows it", excludedByOrganization: false });
  });
});
