import { describe, expect, it } from "vitest";
import { tenantSlugSchema } from "../../programs/tenant/config";
import { buildBootstrapPolicy, buildBootstrapTrustPolicy, buildPermissionsBoundaryPolicy } from "../../services/integration/bootstrap-policy-fns";
import {
  buildBootstrapTemplate,
  renderBootstrapTemplate,
  TENANT_SLUG_PATTERN,
  templateVersion,
} from "../../services/integration/bootstrap-template-fns";

const PRINCIPAL = "arn:aws:iam::111122223333:role/MiniXdrPlatform";

/** What CloudFormation does with the template's Fn::Sub strings, for one account and tenant. */
function resolveSubs(value: unknown, values: Record<string, string>): unknown {
  if (Array.isArray(value)) return value.map((inner) => resolveSubs(inner, values));
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 1 && entries[0]![0] === "Fn::Sub") {
      return (entries[0]![1] as string).replace(/\$\{([^}]+)\}/g, (_, name: string) => {
        if (!(name in values)) throw new Error(`unresolved ${name}`);
        return values[name]!;
      });
    }
    return Object.fromEntries(entries.map(([key, inner]) => [key, resolveSubs(inner, values)]));
  }
  return value;
}

type Template = {
  Parameters: Record<string, Record<string, unknown>>;
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  Outputs: Record<string, unknown>;
};

describe("the bootstrap template", () => {
  const template = buildBootstrapTemplate({ platformPrincipalArn: PRINCIPAL }) as Template;
  const values = { "AWS::Partition": "aws", "AWS::AccountId": "210987654321", TenantSlug: "mini-corp", ExternalId: "mxdr-ext-0123456789abcdef" };
  const resolved = resolveSubs(template, values) as Template;

  it("takes the external ID as a parameter the link can prefill (not NoEcho) and the tenant slug", () => {
    expect(Object.keys(template.Parameters).sort()).toEqual(["ExternalId", "TenantSlug"]);
    expect(template.Parameters.ExternalId).not.toHaveProperty("NoEcho");
    expect(template.Parameters.ExternalId).toMatchObject({ Type: "String", MinLength: 16 });
    const slug = new RegExp(TENANT_SLUG_PATTERN);
    for (const candidate of ["mini-corp", "abc", "a".repeat(40), "Mini", "ab", "1abc", "abc-", "a".repeat(41)]) {
      expect(slug.test(candidate), candidate).toBe(tenantSlugSchema.safeParse(candidate).success);
    }
  });

  it("deploys exactly the policies the evaluator checks", () => {
    const role = resolved.Resources.BootstrapRole!;
    expect(role.Type).toBe("AWS::IAM::Role");
    expect(role.Properties.RoleName).toBe("MiniXdrBootstrap-mini-corp");
    expect(role.Properties.AssumeRolePolicyDocument).toEqual(
      buildBootstrapTrustPolicy({ platformPrincipalArn: PRINCIPAL, externalId: "mxdr-ext-0123456789abcdef" }),
    );
    const scope = { partition: "aws", accountId: "210987654321", tenantSlug: "mini-corp" };
    expect(resolved.Resources.BootstrapPolicy).toEqual({
      Type: "AWS::IAM::Policy",
      Properties: { PolicyName: "mini-xdr-bootstrap", PolicyDocument: buildBootstrapPolicy(scope), Roles: [{ Ref: "BootstrapRole" }] },
    });
    const boundary = resolved.Resources.PermissionsBoundary!;
    expect(boundary.Type).toBe("AWS::IAM::ManagedPolicy");
    expect(boundary.Properties.ManagedPolicyName).toBe("MiniXdrBoundary-mini-corp");
    expect(boundary.Properties.PolicyDocument).toEqual(buildPermissionsBoundaryPolicy(scope));
  });

  it("retains nothing when the customer deletes the stack", () => {
    for (const resource of Object.values(template.Resources)) {
      expect(resource).not.toHaveProperty("DeletionPolicy");
      expect(resource).not.toHaveProperty("UpdateReplacePolicy");
    }
  });

  it("leaves no placeholder outside Fn::Sub", () => {
    const unresolved = JSON.stringify(resolved).match(/\$\{[^}]*\}/g);
    expect(unresolved).toBeNull();
  });

  it("renders the same bytes for the same platform, so its hash names the version", () => {
    const first = renderBootstrapTemplate({ platformPrincipalArn: PRINCIPAL });
    const second = renderBootstrapTemplate({ platformPrincipalArn: PRINCIPAL });
    expect(second).toEqual(first);
    expect(first.version).toMatch(/^[0-9a-f]{12}$/);
    // The version is the hash of the template before it is stamped with it: the role's tag and the stack output.
    expect(first.version).toBe(templateVersion(`${JSON.stringify(template, null, 2)}\n`));
    const stamped = JSON.parse(first.body);
    expect(stamped.Outputs.BootstrapVersion.Value).toBe(first.version);
    expect(stamped.Resources.BootstrapRole.Properties.Tags).toContainEqual({ Key: "mini-xdr:bootstrap-version", Value: first.version });
    expect({ ...stamped, Outputs: template.Outputs, Resources: template.Resources }).toEqual(template);
    expect(renderBootstrapTemplate({ platformPrincipalArn: "arn:aws:iam::444455556666:role/MiniXdrPlatform" }).version).not.toBe(first.version);
  });
});
