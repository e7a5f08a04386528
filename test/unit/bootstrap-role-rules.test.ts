/**
 * Which role a tenant may hand the platform (confused deputy, issue 17 finding 2): ours by name, in the tenant's
 * account, never in the platform's; and the probe that accepts a role only when it answers to the external ID alone.
 */
import { describe, expect, it } from "vitest";
import {
  accountOfArn,
  BOOTSTRAP_ROLE_ARN_PATTERN,
  bootstrapRoleArnProblem,
  parseRoleArn,
  platformAccountIds,
} from "../../services/integration/bootstrap-role-rules-fns";
import { probeBootstrapRole, type BootstrapRoleCheck, type RoleAssumption } from "../../services/integration/verify-bootstrap-role";

const PLATFORM = platformAccountIds("arn:aws:iam::123456789012:role/MiniXdrPlatform", ["210987654321"]);
const problem = (roleArn: string, tenantSlug = "acme") => bootstrapRoleArnProblem({ roleArn, tenantSlug, platformAccounts: PLATFORM });

describe("the bootstrap role ARN rules", () => {
  it("the platform's accounts are the principal's account plus the configured ones", () => {
    expect([...PLATFORM].sort()).toEqual(["123456789012", "210987654321"]);
    expect([...platformAccountIds(undefined)]).toEqual([]);
    expect(accountOfArn("arn:aws:sts::111122223333:assumed-role/x/y")).toBe("111122223333");
  });

  it("accepts our bootstrap role, with or without the tenant suffix, under any path", () => {
    expect(problem("arn:aws:iam::444455556666:role/MiniXdrBootstrap")).toBeUndefined();
    expect(problem("arn:aws:iam::444455556666:role/MiniXdrBootstrap-acme")).toBeUndefined();
    expect(problem("arn:aws:iam::444455556666:role/security/xdr/MiniXdrBootstrap")).toBeUndefined();
    expect(parseRoleArn("arn:aws:iam::444455556666:role/security/xdr/MiniXdrBootstrap")).toEqual({
      partition: "aws",
      accountId: "444455556666",
      path: "/security/xdr/",
      name: "MiniXdrBootstrap",
    });
  });

  it("refuses a role with another name, another tenant's suffix, or a prefix trick", () => {
    expect(problem("arn:aws:iam::444455556666:role/OrganizationAccountAccessRole")).toMatch(/must name the Mini-XDR bootstrap role/);
    expect(problem("arn:aws:iam::444455556666:role/MiniXdrBootstrap-victim")).toMatch(/must name the Mini-XDR bootstrap role/);
    expect(problem("arn:aws:iam::444455556666:role/MiniXdrBootstrapAdmin")).toMatch(/must name the Mini-XDR bootstrap role/);
    expect(problem("arn:aws:iam::444455556666:role/MiniXdrBootstrap/Admin")).toMatch(/must name the Mini-XDR bootstrap role/);
  });

  it("refuses a role in one of the platform's own accounts, whatever its name", () => {
    expect(problem("arn:aws:iam::123456789012:role/MiniXdrBootstrap")).toMatch(/platform's own AWS accounts/);
    expect(problem("arn:aws:iam::210987654321:role/MiniXdrBootstrap-acme")).toMatch(/platform's own AWS accounts/);
  });

  it("the API's pattern admits our role names under any path and nothing else", () => {
    const pattern = new RegExp(BOOTSTRAP_ROLE_ARN_PATTERN);
    for (const arn of ["arn:aws:iam::444455556666:role/MiniXdrBootstrap", "arn:aws:iam::444455556666:role/a/b/MiniXdrBootstrap-acme"]) {
      expect(pattern.test(arn), arn).toBe(true);
    }
    for (const arn of [
      "arn:aws:iam::444455556666:role/Admin",
      "arn:aws:iam::444455556666:role/MiniXdrBootstrapAdmin",
      "arn:aws:iam::444455556666:role/MiniXdrBootstrap/Admin",
    ]) {
      expect(pattern.test(arn), arn).toBe(false);
    }
  });

  it("refuses what is not a role ARN", () => {
    for (const arn of ["arn:aws:iam::444455556666:user/MiniXdrBootstrap", "arn:aws:iam::4444:role/MiniXdrBootstrap", "MiniXdrBootstrap"]) {
      expect(problem(arn), arn).toMatch(/must be an IAM role ARN/);
    }
  });
});

/** An STS that answers by a fixed rule; records the external IDs it was asked with. */
function sts(rule: (externalId: string | undefined) => RoleAssumption) {
  const asked: (string | undefined)[] = [];
  const verify = async (check: BootstrapRoleCheck) => {
    asked.push(check.externalId);
    return rule(check.externalId);
  };
  return { verify, asked };
}

const CHECK = { roleArn: "arn:aws:iam::444455556666:role/MiniXdrBootstrap", externalId: "mxdr-ext_right", region: "us-east-1", sessionName: "s" };
const denied: RoleAssumption = {
  assumed: false,
  denied: true,
  detail: "AccessDenied: User: arn:aws:iam::123456789012:role/MiniXdrPlatform is not authorized",
};

describe("the external ID probe", () => {
  it("accepts a role that answers to the external ID and denies a wrong one and none", async () => {
    const { verify, asked } = sts((id) => (id === CHECK.externalId ? { assumed: true } : denied));
    expect(await probeBootstrapRole(verify, CHECK)).toEqual({ ok: true });
    expect(asked).toEqual([CHECK.externalId, expect.stringMatching(/^mxdr-probe_/), undefined]);
  });

  it("refuses a role whose trust policy does not require the external ID", async () => {
    const { verify } = sts(() => ({ assumed: true }));
    const verdict = await probeBootstrapRole(verify, CHECK);
    expect(verdict).toMatchObject({
      ok: false,
      code: "external_id_not_required",
      reason: "the role's trust policy does not require the external ID",
    });
  });

  it("refuses a role that admits no external ID at all but not a wrong one", async () => {
    const { verify } = sts((id) => (id === CHECK.externalId || id === undefined ? { assumed: true } : denied));
    expect(await probeBootstrapRole(verify, CHECK)).toMatchObject({ ok: false, code: "external_id_not_required" });
  });

  it("refuses a role it cannot assume, in neutral words (STS's stay in the detail)", async () => {
    const { verify } = sts(() => denied);
    const verdict = await probeBootstrapRole(verify, CHECK);
    expect(verdict).toMatchObject({ ok: false, code: "credentials_rejected" });
    expect(verdict.ok ? "" : verdict.reason).not.toMatch(/AccessDenied|arn:aws/);
  });

  it("concludes nothing when a negative probe fails for another reason than AccessDenied", async () => {
    const { verify } = sts((id) => (id === CHECK.externalId ? { assumed: true } : { assumed: false, denied: false, detail: "Throttling" }));
    expect(await probeBootstrapRole(verify, CHECK)).toMatchObject({ ok: false, code: "sts_unavailable" });
  });
});
