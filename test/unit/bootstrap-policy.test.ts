/**
 * The bootstrap role's policy, checked with the IAM simulator (test/harness/iam-simulation.ts): it allows every call the tenant stack makes
 * (derived from the program's resource names) and nothing that could mint an admin role or touch what is not ours.
 */
import { describe, expect, it } from "vitest";
import { resourceNames } from "../../programs/tenant/naming";
import { buildAccessPolicy, buildTrustPolicy, READ_ONLY_VERBS } from "../../programs/tenant/policies";
import {
  bootstrapArns,
  bootstrapNames,
  buildBootstrapPolicy,
  buildBootstrapTrustPolicy,
  buildPermissionsBoundaryPolicy,
  tenantStackRequests,
} from "../../services/integration/bootstrap-policy-fns";
import type { IamRequest } from "../../programs/tenant/policy-document";
import { decide, isAllowed, trustAdmits } from "../harness/iam-simulation";
import { DEFAULT_EXCLUSION_TAG, DEFAULT_TARGET_TAG } from "../../programs/tenant/config";

const DEFAULT_TARGETING = { mode: "all_managed" as const, targetTag: DEFAULT_TARGET_TAG, exclusionTag: DEFAULT_EXCLUSION_TAG };

const ACCOUNT = "210987654321";
const SLUG = "mini-corp";
const scope = { partition: "aws", accountId: ACCOUNT, tenantSlug: SLUG };
const policy = buildBootstrapPolicy(scope);
const arn = bootstrapArns(scope);
const names = resourceNames(SLUG);
const role = (name: string) => `arn:aws:iam::${ACCOUNT}:role/${name}`;
const ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess";
const withBoundary = { "iam:PermissionsBoundary": arn.boundaryPolicy };
const allowed = (request: IamRequest) => isAllowed({ arn: arn.bootstrapRole, policies: [policy] }, request);

describe("the bootstrap role's policy", () => {
  it("allows every call the tenant stack makes, in every region of the tenant", async () => {
    const requests = tenantStackRequests({ accountId: ACCOUNT, tenantSlug: SLUG, regions: ["us-east-1", "eu-west-1", "ap-southeast-2"] });
    expect(requests.length).toBeGreaterThan(60);
    const decisions = await Promise.all(requests.map(allowed));
    const refused = requests.filter((_, index) => !decisions[index]).map((r) => `${r.purpose}: ${r.action} ${r.resources.join(" ")}`);
    expect(refused).toEqual([]);
    // The requests name exactly the program's resources.
    const named = requests.flatMap((request) => request.resources).join("\n");
    for (const name of [names.roleName, names.parameterName.slice(1), names.documentName]) expect(named).toContain(name);
  });

  it("cannot create a role outside our names", async () => {
    for (const name of [
      "Admin",
      "MiniXdrAccess-other-tenant",
      "MiniXdr-Anything",
      `mini-xdr/${names.roleName}`,
      bootstrapNames(SLUG).bootstrapRoleName,
    ]) {
      expect(await allowed({ action: "iam:CreateRole", resources: [role(name)], context: withBoundary }), name).toBe(false);
    }
  });

  it("cannot create one of our roles without our boundary, or with another one", async () => {
    expect(await allowed({ action: "iam:CreateRole", resources: [arn.accessRole] })).toBe(false);
    expect(await allowed({ action: "iam:CreateRole", resources: [arn.accessRole], context: { "iam:PermissionsBoundary": ADMIN_POLICY } })).toBe(
      false,
    );
    expect(await allowed({ action: "iam:CreateRole", resources: [arn.accessRole], context: withBoundary })).toBe(true);
  });

  it("cannot attach AdministratorAccess, or anything but the SSM instance policy to the host management role", async () => {
    for (const target of [arn.defaultHostManagementRole, arn.accessRole, role("Admin")]) {
      expect(
        await allowed({ action: "iam:AttachRolePolicy", resources: [target], context: { ...withBoundary, "iam:PolicyARN": ADMIN_POLICY } }),
      ).toBe(false);
    }
    expect(
      await allowed({
        action: "iam:AttachRolePolicy",
        resources: [arn.accessRole],
        context: { ...withBoundary, "iam:PolicyARN": arn.ssmInstanceDefaultPolicy },
      }),
    ).toBe(false);
    // ...and not even that one to a role that lost its boundary.
    expect(
      await allowed({
        action: "iam:AttachRolePolicy",
        resources: [arn.defaultHostManagementRole],
        context: { "iam:PolicyARN": arn.ssmInstanceDefaultPolicy },
      }),
    ).toBe(false);
  });

  it("cannot write an inline policy on a role that is not ours or has no boundary, itself included", async () => {
    for (const target of [role("CustomerAdmin"), arn.bootstrapRole, role("MiniXdrAccess-other-tenant")]) {
      expect(await allowed({ action: "iam:PutRolePolicy", resources: [target], context: withBoundary }), target).toBe(false);
    }
    expect(await allowed({ action: "iam:PutRolePolicy", resources: [arn.accessRole] })).toBe(false);
  });

  it("can never remove a boundary, nor rewrite the boundary policy", async () => {
    const removal = { action: "iam:DeleteRolePermissionsBoundary", resources: [arn.accessRole], context: withBoundary };
    expect(await decide({ arn: arn.bootstrapRole, policies: [policy] }, removal)).toBe("ExplicitlyDenied");
    for (const action of ["iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"]) {
      expect(await allowed({ action, resources: [arn.boundaryPolicy] }), action).toBe(false);
    }
    expect(
      await allowed({ action: "iam:PutRolePermissionsBoundary", resources: [arn.accessRole], context: { "iam:PermissionsBoundary": ADMIN_POLICY } }),
    ).toBe(false);
  });

  it("passes only the host management role, and only to Systems Manager", async () => {
    const pass = (resource: string, service: string) =>
      allowed({ action: "iam:PassRole", resources: [resource], context: { "iam:PassedToService": service } });
    expect(await pass(arn.defaultHostManagementRole, "ssm.amazonaws.com")).toBe(true);
    expect(await pass(arn.defaultHostManagementRole, "ec2.amazonaws.com")).toBe(false);
    expect(await pass(arn.accessRole, "ssm.amazonaws.com")).toBe(false);
    expect(await pass(role("CustomerAdmin"), "ssm.amazonaws.com")).toBe(false);
  });

  it("cannot write SSM parameters, documents, associations or settings outside our names", async () => {
    const ssm = (kind: string, name: string) => `arn:aws:ssm:us-east-1:${ACCOUNT}:${kind}/${name}`;
    expect(await allowed({ action: "ssm:PutParameter", resources: [ssm("parameter", "prod/db-password")] })).toBe(false);
    expect(await allowed({ action: "ssm:PutParameter", resources: [ssm("parameter", "mini-xdr/other-tenant/agent-config")] })).toBe(false);
    expect(await allowed({ action: "ssm:GetParameter", resources: [ssm("parameter", "prod/db-password")] })).toBe(false);
    expect(await allowed({ action: "ssm:DeleteParameter", resources: [ssm("parameter", "mini-xdr")] })).toBe(false);
    expect(await allowed({ action: "ssm:CreateDocument", resources: [ssm("document", "Evil")] })).toBe(false);
    expect(await allowed({ action: "ssm:UpdateDocument", resources: [ssm("document", "MiniXdr-InstallAgent-other-tenant")] })).toBe(false);
    const foreignAssociation = ssm("association", "11111111-2222-4333-8444-555555555555");
    for (const action of ["ssm:CreateAssociation", "ssm:UpdateAssociation", "ssm:DeleteAssociation"]) {
      expect(await allowed({ action, resources: [foreignAssociation, ssm("document", "AWS-RunShellScript")] }), action).toBe(false);
    }
    expect(
      await allowed({ action: "ssm:UpdateServiceSetting", resources: [ssm("servicesetting", "ssm/parameter-store/high-throughput-enabled")] }),
    ).toBe(false);
    expect(
      await allowed({ action: "ssm:SendCommand", resources: [ssm("document", names.documentName), `arn:aws:ec2:us-east-1:${ACCOUNT}:instance/i-1`] }),
    ).toBe(false);
  });

  it("puts no wildcard on a mutating action: wildcard resources only on read-only calls, no wildcard actions", () => {
    for (const statement of policy.Statement.filter((s) => s.Effect === "Allow")) {
      const actions = [statement.Action ?? []].flat();
      expect(
        actions.filter((action) => action.includes("*")),
        statement.Sid,
      ).toEqual([]);
      if ([statement.Resource].flat().includes("*")) {
        const verbs = actions.map((action) => action.split(":")[1]!);
        expect(
          verbs.filter((verb) => !READ_ONLY_VERBS.some((read) => verb.startsWith(read))),
          statement.Sid,
        ).toEqual([]);
      }
    }
  });
});

describe("the bootstrap role's trust", () => {
  const trust = buildBootstrapTrustPolicy({
    platformPrincipalArn: "arn:aws:iam::111122223333:role/MiniXdrPlatform",
    externalId: "mxdr-ext-0123456789abcdef",
  });
  const assume = (principal: string, externalId?: string) =>
    trustAdmits(trust, { roleArn: arn.bootstrapRole, principal, context: externalId === undefined ? {} : { "sts:ExternalId": externalId } });

  it("lets only the platform principal in, and only with the tenant's external ID", async () => {
    expect(await assume("arn:aws:iam::111122223333:role/MiniXdrPlatform", "mxdr-ext-0123456789abcdef")).toBe(true);
    expect(await assume("arn:aws:iam::111122223333:role/MiniXdrPlatform", "mxdr-ext-wrong")).toBe(false);
    expect(await assume("arn:aws:iam::111122223333:role/MiniXdrPlatform")).toBe(false);
    expect(await assume("arn:aws:iam::999999999999:role/MiniXdrPlatform", "mxdr-ext-0123456789abcdef")).toBe(false);
  });
});

describe("the permissions boundary", () => {
  const boundary = buildPermissionsBoundaryPolicy(scope);
  const access = buildAccessPolicy({
    customerAccountId: ACCOUNT,
    documentName: names.documentName,
    regions: ["us-east-1", "eu-west-1"],
    targeting: DEFAULT_TARGETING,
  });
  const instance = `arn:aws:ec2:eu-west-1:${ACCOUNT}:instance/i-0abc`;
  const document = `arn:aws:ssm:eu-west-1:${ACCOUNT}:document/${names.documentName}`;

  it("leaves the XDR access role everything its policy grants", async () => {
    const accessRole = { arn: arn.accessRole, policies: [access], boundary };
    const uses: IamRequest[] = [
      { action: "ec2:DescribeInstances", resources: ["*"] },
      { action: "ec2:DescribeRegions", resources: ["*"] },
      { action: "rds:DescribeDBInstances", resources: ["*"] },
      { action: "ssm:DescribeInstanceInformation", resources: ["*"] },
      { action: "ssm:ListCommandInvocations", resources: ["*"] },
      { action: "ssm:GetCommandInvocation", resources: ["*"] },
      { action: "ssm:SendCommand", resources: [document, instance], context: { "ssm:resourceTag/xdr:monitor": "true" } },
    ];
    for (const use of uses) expect(await isAllowed(accessRole, use), use.action).toBe(true);
    // The access policy's own targeting still applies inside the boundary: by default every instance but the excluded.
    expect(await isAllowed(accessRole, { action: "ssm:SendCommand", resources: [document, instance] })).toBe(true);
    const excluded = { "ssm:resourceTag/xdr:monitor": "false" };
    expect(await isAllowed(accessRole, { action: "ssm:SendCommand", resources: [document, instance], context: excluded })).toBe(false);
  });

  it("leaves the host management role AWS's SSM instance policy", async () => {
    const managedInstance = `arn:aws:ssm:eu-west-1:${ACCOUNT}:managed-instance/mi-0abc`;
    for (const use of [
      { action: "ssm:UpdateInstanceInformation", resources: [instance] },
      { action: "ssm:UpdateInstanceInformation", resources: [managedInstance] },
      { action: "ssm:PutInventory", resources: ["*"] },
      { action: "ssm:GetParameter", resources: [`arn:aws:ssm:eu-west-1:${ACCOUNT}:parameter/customer/app`] },
      { action: "ssm:GetDocument", resources: ["arn:aws:ssm:eu-west-1::document/AWS-RunPatchBaseline"] },
      { action: "ssmmessages:OpenControlChannel", resources: ["*"] },
      { action: "ec2messages:GetMessages", resources: ["*"] },
    ]) {
      expect(await isAllowed({ arn: arn.defaultHostManagementRole, policies: [boundary] }, use), `${use.action} ${use.resources[0]}`).toBe(true);
    }
  });

  it("caps anything that would make an admin", async () => {
    const capped = { arn: arn.accessRole, policies: [boundary] };
    for (const action of [
      "iam:CreateUser",
      "iam:CreateRole",
      "iam:PutRolePolicy",
      "iam:AttachRolePolicy",
      "sts:AssumeRole",
      "s3:GetObject",
      "ssm:PutParameter",
      "ssm:CreateDocument",
      "ec2:RunInstances",
    ]) {
      expect(await isAllowed(capped, { action, resources: ["*"] }), action).toBe(false);
    }
    expect(await isAllowed(capped, { action: "ssm:SendCommand", resources: [`arn:aws:ssm:eu-west-1::document/AWS-RunShellScript`, instance] })).toBe(
      false,
    );
  });
});

describe("the XDR access role's policies", () => {
  it("trust the platform principal only with the external ID", async () => {
    const trust = buildTrustPolicy({
      platformPrincipalArn: "arn:aws:iam::111122223333:role/MiniXdrPlatform",
      externalId: "mxdr-ext-0123456789abcdef",
    });
    const request = (externalId: string) => ({
      roleArn: arn.accessRole,
      principal: "arn:aws:iam::111122223333:role/MiniXdrPlatform",
      context: { "sts:ExternalId": externalId },
    });
    expect(await trustAdmits(trust, request("mxdr-ext-0123456789abcdef"))).toBe(true);
    expect(await trustAdmits(trust, request("mxdr-ext-wrong"))).toBe(false);
  });
});
