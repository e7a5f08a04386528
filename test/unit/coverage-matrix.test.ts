import { describe, expect, it } from "vitest";
import { accessDeniedDetail } from "../../lib/upstream-errors";
import { coverageMatrix, type CoverageAccountInput, type InstanceCounts } from "../../services/organization/coverage-fns";

const pieces = (...regions: string[]) =>
  Object.fromEntries(
    regions.map((region) => [region, { parameterName: `/mini-xdr/${region}`, documentName: "MiniXdr-Install", associationId: `a-${region}` }]),
  );

const counts = (entries: Record<string, Record<string, Partial<InstanceCounts>>>) =>
  new Map(
    Object.entries(entries).map(([account, byRegion]) => [
      account,
      new Map(Object.entries(byRegion).map(([region, c]) => [region, { discovered: 0, managed: 0, installed: 0, failed: 0, unmanaged: 0, ...c }])),
    ]),
  );

const account = (accountId: string, overrides: Partial<CoverageAccountInput> = {}): CoverageAccountInput => ({
  accountId,
  name: null,
  source: "organization",
  status: "completed",
  roleMissing: false,
  appliedRegions: pieces("us-east-1", "eu-west-1"),
  scanRegions: [
    { region: "us-east-1", status: "succeeded", assets: 0 },
    { region: "eu-west-1", status: "succeeded", assets: 0 },
  ],
  ...overrides,
});

const SCP_DENY =
  "UnauthorizedOperation: You are not authorized to perform this operation. User: arn:aws:sts::111122223333:assumed-role/MiniXdrAccess-acme/s is not authorized to perform: ec2:DescribeInstances with an explicit deny in a service control policy";

describe("the coverage matrix", () => {
  it("gives each cell the SSM pieces and the instances discovered, managed and installed", () => {
    const matrix = coverageMatrix({
      configuredRegions: ["us-east-1", "eu-west-1"],
      accounts: [account("111111111111")],
      counts: counts({ "111111111111": { "us-east-1": { discovered: 3, managed: 3, installed: 3 } } }),
    });
    expect(matrix.regions).toEqual(["us-east-1", "eu-west-1"]);
    const [east, west] = matrix.accounts[0]!.cells;
    expect(east).toMatchObject({
      status: "covered",
      ssm: { parameter: true, document: true, association: true },
      instances: { discovered: 3, installed: 3 },
    });
    expect(west).toMatchObject({ status: "connected_but_empty", reason: "connected, and no instance runs here" });
    expect(matrix.totals).toMatchObject({ accounts: 1, discovered: 3, installed: 3, coveredCells: 2, cells: 2 });
  });

  it("names why a cell is empty, with its fix: role missing, region not enabled, access denied (what AWS said), not yet onboarded", () => {
    const matrix = coverageMatrix({
      configuredRegions: ["us-east-1", "ap-east-1"],
      accounts: [
        account("222222222222", { appliedRegions: undefined, scanRegions: undefined, status: "action_required", roleMissing: true }),
        account("333333333333", {
          appliedRegions: pieces("us-east-1", "ap-east-1"),
          scanRegions: [
            { region: "us-east-1", status: "failed", assets: 0, error: SCP_DENY },
            { region: "ap-east-1", status: "not_enabled", assets: 0 },
          ],
        }),
        account("444444444444", { appliedRegions: undefined, scanRegions: undefined, status: "provisioning" }),
      ],
      counts: counts({}),
    });
    const cell = (row: number, col: number) => matrix.accounts[row]!.cells[col]!;
    expect(cell(0, 0)).toMatchObject({ status: "bootstrap_role_missing", ssm: { association: false } });
    expect(cell(0, 0).fix).toMatch(/StackSet/);
    expect(cell(1, 0)).toMatchObject({
      status: "access_denied",
      reason: "AWS denied ec2:DescribeInstances in us-east-1: an explicit deny in a service control policy",
      accessDenied: { action: "ec2:DescribeInstances", cause: "service_control_policy" },
    });
    expect(cell(1, 0).fix).toBe(
      "ask your AWS administrator to allow ec2:DescribeInstances in us-east-1 for the Mini-XDR roles (the organization's policy denies it)",
    );
    // Neither the role ARN nor the account id of AWS's message reaches the tenant.
    expect(JSON.stringify(matrix)).not.toContain("assumed-role");
    expect(cell(1, 1)).toMatchObject({
      status: "region_not_enabled",
      fix: "enable ap-east-1 in the account (Account > AWS Regions), or remove it from the tenant's regions",
    });
    expect(cell(2, 1).status).toBe("not_onboarded_yet");
  });

  it("shows instances in a region the tenant's regions leave out, as a column of its own", () => {
    const matrix = coverageMatrix({
      configuredRegions: ["us-east-1"],
      accounts: [account("111111111111", { appliedRegions: pieces("us-east-1") })],
      counts: counts({ "111111111111": { "sa-east-1": { discovered: 2 } } }),
    });
    expect(matrix.regions).toEqual(["us-east-1", "sa-east-1"]);
    expect(matrix.accounts[0]!.cells[1]).toMatchObject({ status: "region_not_covered", instances: { discovered: 2 } });
    expect(matrix.accounts[0]!.cells[1]!.fix).toMatch(/integration_settings.regions/);
  });

  it("tells installs going on, failed installs and instances SSM does not manage apart", () => {
    const matrix = coverageMatrix({
      configuredRegions: ["us-east-1", "eu-west-1"],
      accounts: [account("111111111111"), account("222222222222")],
      counts: counts({
        "111111111111": {
          "us-east-1": { discovered: 4, managed: 4, installed: 1 },
          "eu-west-1": { discovered: 2, managed: 2, installed: 1, failed: 1 },
        },
        "222222222222": { "us-east-1": { discovered: 2, unmanaged: 1 } },
      }),
    });
    expect(matrix.accounts[0]!.cells.map((cell) => cell.status)).toEqual(["installing", "install_failed"]);
    expect(matrix.accounts[1]!.cells[0]).toMatchObject({ status: "not_managed", fix: expect.stringContaining("AmazonSSMManagedInstanceCore") });
  });
});

describe("an access denial in fixed words", () => {
  it("keeps the action and the cause, never the principal", () => {
    expect(accessDeniedDetail(SCP_DENY)).toEqual({ action: "ec2:DescribeInstances", cause: "service_control_policy" });
    expect(
      accessDeniedDetail(
        "AccessDeniedException: User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: ssm:DescribeInstanceInformation because no identity-based policy allows the ssm:DescribeInstanceInformation action",
      ),
    ).toEqual({ action: "ssm:DescribeInstanceInformation", cause: "no_allow" });
    expect(accessDeniedDetail("ThrottlingException: Rate exceeded")).toBeUndefined();
  });
});
