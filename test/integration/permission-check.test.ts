/**
 * The permission matrix (issue 22, part 2): POST /v1/tenants/{slug}/permissions/check tries each read-only call the
 * platform makes, once per region the applied stack covers, with the tenant's own session, against moto. EC2 goes
 * through the EC2 stand-in (test/harness/ec2-standin.ts), which denies ec2:DescribeInstances in eu-west-1 with AWS's
 * own UnauthorizedOperation wording for an explicit deny in a service control policy, as an organization's SCP does;
 * SSM's DescribeInstanceInformation, which moto lacks, comes from the SSM stand-in. Real PostgreSQL.
 */
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { discoveryScans, organizations, runs } from "../../db/schema";
import { executeScan } from "../../services/discovery/scan-runner";
import { startEc2StandIn, type Ec2StandIn } from "../harness/ec2-standin";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { seedTenant, type SeededTenant } from "../harness/seeded-tenant";
import { startSsmStandIn, type SsmStandIn } from "../harness/ssm-standin";

const ACCOUNT = "123456789012";
const DENIED_REGION = "eu-west-1";
const scpDenies = { [ACCOUNT]: [{ region: DENIED_REGION, action: "ec2:DescribeInstances" }] };
const saved = { ec2: process.env.AWS_ENDPOINT_URL_EC2, ssm: process.env.AWS_ENDPOINT_URL_SSM };
let service: TestPlatform;
let ec2: Ec2StandIn;
let ssm: SsmStandIn;
let tenant: SeededTenant;

beforeAll(async () => {
  const moto = process.env.AWS_ENDPOINT_URL!;
  ec2 = await startEc2StandIn({
    motoUrl: moto,
    // Every EC2 call here is the tenant's session in its account.
    accountOf: () => ACCOUNT,
    scpDenies,
  });
  ssm = await startSsmStandIn(moto);
  process.env.AWS_ENDPOINT_URL_EC2 = ec2.url;
  process.env.AWS_ENDPOINT_URL_SSM = ssm.endpoint;
  service = await startTestPlatform();
  tenant = await seedTenant(service, { appliedUp: true });
  // The applied stack covers two regions.
  const [up] = await service.platform.database.db.select().from(runs).where(eq(runs.organizationId, tenant.organizationId));
  const outputs = up!.outputs as { rollout: { regions: string[] } };
  await service.platform.database.db
    .update(runs)
    .set({ outputs: { ...outputs, rollout: { ...outputs.rollout, regions: ["us-east-1", DENIED_REGION] } } } as never)
    .where(eq(runs.id, up!.id));
  const [org] = await service.platform.database.db.select().from(organizations).where(eq(organizations.id, tenant.organizationId));
  await service.platform.database.db
    .update(organizations)
    .set({ integrationSettings: { ...org!.integrationSettings, regions: ["us-east-1", DENIED_REGION] } })
    .where(eq(organizations.id, tenant.organizationId));
});

afterAll(async () => {
  for (const [name, value] of [
    ["AWS_ENDPOINT_URL_EC2", saved.ec2],
    ["AWS_ENDPOINT_URL_SSM", saved.ssm],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await service?.stop();
  await ssm?.stop();
  await ec2?.stop();
});

describe("the permission matrix", () => {
  it("tries each read-only call once per region with the tenant's session: allowed, or denied with AWS's cause and the fix", async () => {
    const { status, body } = await tenant.call("POST", `/v1/tenants/${tenant.slug}/permissions/check`);
    expect(status, JSON.stringify(body)).toBe(200);
    console.log(`permission matrix of a test tenant with one SCP-denied action:\n${JSON.stringify(body.regions, null, 2)}`);
    const [home, denied] = body.regions;
    expect(home).toMatchObject({ region: "us-east-1", status: "allowed" });
    expect(home.checks.map((check: { action: string; status: string }) => [check.action, check.status])).toEqual([
      ["ec2:DescribeInstances", "allowed"],
      ["rds:DescribeDBInstances", "allowed"],
      ["ssm:DescribeInstanceInformation", "allowed"],
      ["ssm:ListAssociations", "allowed"],
    ]);
    expect(denied).toMatchObject({ region: DENIED_REGION, status: "excluded_by_organization" });
    expect(denied.checks[0]).toEqual({
      action: "ec2:DescribeInstances",
      status: "denied",
      cause: "service_control_policy",
      reason: `AWS denied ec2:DescribeInstances in ${DENIED_REGION}: an explicit deny in a service control policy`,
      fix: `ask your AWS administrator to allow ec2:DescribeInstances in ${DENIED_REGION} for the Mini-XDR roles (the organization's policy denies it)`,
    });
    expect(denied.checks.slice(1).every((check: { status: string }) => check.status === "allowed")).toBe(true);
    // The calls were made where AWS is regional, with the tenant's session.
    expect(ec2.answered).toContainEqual({ action: "DescribeInstances", accountId: ACCOUNT, region: DENIED_REGION });
    expect(
      ssm.calls
        .filter((call) => call.action === "DescribeInstanceInformation")
        .map((call) => call.region)
        .sort(),
    ).toEqual([DENIED_REGION, "us-east-1"]);
    // Nothing in the answer names the role, the account's principals or the external ID.
    expect(JSON.stringify(body)).not.toMatch(/arn:aws|assumed-role|ext-/);
  });

  it("is refused before the stack is applied, with the reason", async () => {
    const unapplied = await seedTenant(service);
    const { status, body } = await unapplied.call("POST", `/v1/tenants/${unapplied.slug}/permissions/check`);
    expect(status).toBe(409);
    expect(body.error.message).toMatch(/not applied|up/i);
  });

  it("keeps what AWS refused as a missing permission with its fix, and resolves it once the call goes through", async () => {
    const progress = async () => (await tenant.call("GET", `/v1/tenants/${tenant.slug}/progress`)).body;
    expect((await progress()).missing_permissions).toEqual([
      expect.objectContaining({
        aws_account_id: ACCOUNT,
        region: DENIED_REGION,
        action: "ec2:DescribeInstances",
        resource: null,
        cause: "service_control_policy",
        source: "check",
        excluded_by_organization: true,
        reason: `AWS denied ec2:DescribeInstances in ${DENIED_REGION}: an explicit deny in a service control policy`,
        fix: `ask your AWS administrator to allow ec2:DescribeInstances in ${DENIED_REGION} for the Mini-XDR roles (the organization's policy denies it)`,
      }),
    ]);

    // A discovery meets the same deny: the region is excluded by the organization, the scan is not failed for it.
    const db = service.platform.database.db;
    const [scan] = await db.insert(discoveryScans).values({ organizationId: tenant.organizationId, trigger: "manual", actor: "test" }).returning();
    await executeScan({ db, keyring: service.platform.keyring, log: (message) => expect.fail(message) }, scan!.id);
    const [finished] = await db.select().from(discoveryScans).where(eq(discoveryScans.id, scan!.id));
    expect(finished!.status).toBe("succeeded");
    expect(finished!.regions!.map((region) => [region.region, region.status]).sort()).toEqual([
      [DENIED_REGION, "excluded_by_organization"],
      ["us-east-1", "succeeded"],
    ]);
    const afterScan = await progress();
    expect(afterScan.discovery).toMatchObject({ regions_failed: [], regions_excluded_by_organization: [DENIED_REGION] });
    expect(afterScan.missing_permissions).toEqual([
      expect.objectContaining({ action: "ec2:DescribeInstances", source: "discovery", occurrences: 2 }),
    ]);
    expect(JSON.stringify(afterScan.missing_permissions)).not.toMatch(/assumed-role|sts::/);

    // The administrator lifts the deny: the next check shows it allowed, and nothing is missing any more.
    scpDenies[ACCOUNT].length = 0;
    const checked = await tenant.call("POST", `/v1/tenants/${tenant.slug}/permissions/check`);
    expect(checked.body.regions.map((region: { status: string }) => region.status)).toEqual(["allowed", "allowed"]);
    expect((await progress()).missing_permissions).toEqual([]);
  });
});
