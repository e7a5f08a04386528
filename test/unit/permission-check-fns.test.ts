/** The permission matrix's verdicts per region, pure (the calls themselves: test/integration/permission-check.test.ts). */
import { describe, expect, it } from "vitest";
import { CHECKED_ACTIONS, permissionCell, regionPermissions } from "../../services/integration/permission-check-fns";

describe("permission matrix verdicts", () => {
  it("calls a region every call of which an SCP denies excluded by the organization, not failed", () => {
    const checks = CHECKED_ACTIONS.map((action) =>
      permissionCell(action, "ap-east-1", { status: "denied", action, cause: "service_control_policy" }),
    );
    expect(regionPermissions("ap-east-1", checks).status).toBe("excluded_by_organization");
    // Only reading instances denied by the organization: the region is closed to discovery all the same.
    const onlyInstances = CHECKED_ACTIONS.map((action) =>
      action === "ec2:DescribeInstances"
        ? permissionCell(action, "ap-east-1", { status: "denied", action, cause: "service_control_policy" })
        : permissionCell(action, "ap-east-1", { status: "allowed" }),
    );
    expect(regionPermissions("ap-east-1", onlyInstances).status).toBe("excluded_by_organization");
    // A boundary's deny besides: a person can fix that one, so it is missing permissions.
    const mixed = [
      ...onlyInstances.slice(0, 3),
      permissionCell("ssm:ListAssociations", "ap-east-1", { status: "denied", action: null, cause: "permissions_boundary" }),
    ];
    expect(regionPermissions("ap-east-1", mixed).status).toBe("missing_permissions");
  });

  it("gives a missing allow the up (it restores the policy), a boundary the bootstrap update, and names the action", () => {
    const missing = permissionCell("ssm:ListAssociations", "us-east-1", { status: "denied", action: "ssm:ListAssociations", cause: "no_allow" });
    expect(missing.fix).toMatch(/lack ssm:ListAssociations: run an up/);
    const boundary = permissionCell("rds:DescribeDBInstances", "us-east-1", { status: "denied", action: null, cause: "permissions_boundary" });
    expect(boundary.reason).toBe("AWS denied rds:DescribeDBInstances in us-east-1: an explicit deny in a permissions boundary");
    expect(boundary.fix).toMatch(/update the bootstrap stack/);
    const checks = [missing, permissionCell("ec2:DescribeInstances", "us-east-1", { status: "allowed" })];
    expect(regionPermissions("us-east-1", checks).status).toBe("missing_permissions");
  });

  it("tells a failure that is not a denial apart", () => {
    const failed = permissionCell("ec2:DescribeInstances", "us-east-1", {
      status: "failed",
      code: "upstream_timeout",
      message: "the cloud provider did not answer in time",
    });
    expect(regionPermissions("us-east-1", [failed])).toMatchObject({
      status: "failed",
      checks: [{ status: "failed", reason: "the cloud provider did not answer in time" }],
    });
  });
});
