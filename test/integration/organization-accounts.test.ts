/**
 * A whole AWS Organization through one link: the customer creates the organization stack from the link in its
 * management account, the StackSet puts the bootstrap role into the member accounts, the service connects, lists the
 * organization, and onboards every account in scope on its own stack, at most max_concurrent_accounts at a time.
 *
 * Real parts: the platform as the service builds it (a worker: runs on pg-boss and the Pulumi CLI against moto),
 * PostgreSQL, moto's Organizations, S3, CloudFormation and IAM (multi-account: the account of a call is the assumed
 * role's), and STS through the stand-in of test/harness/sts-standin.ts, which refuses AssumeRole as AWS does (no such
 * role, or a trust policy that does not admit the platform with this external ID). Where moto's StackSets differ from
 * AWS, test/harness/aws-organization.ts performs AWS's behaviour and says so.
 *
 * The member accounts' estates (the tenant's regions: us-east-1 and the opt-in ap-east-1), launched in moto, their
 * SSM managed instances in the SSM stand-in (test/harness/ssm-standin.ts). Where moto has no notion of them, the EC2
 * stand-in (test/harness/ec2-standin.ts) answers as AWS does: every member account but prod-2 has enabled the opt-in
 * ap-east-1 (moto reports it not enabled everywhere), and an SCP denies ec2:DescribeInstances in ap-east-1 to security-1.
 *   payments-1: a Linux and a Windows instance in us-east-1, one in ap-east-1, all managed: the agent everywhere
 *   prod-1: one instance SSM does not manage (no SSM agent), one stopped
 *   prod-2: one managed instance in us-east-1
 *   the others: empty
 *
 * The organization (13 member accounts, OUs three levels deep):
 *   Root: management account, root-1
 *     Workloads
 *       Prod: prod-1, prod-2
 *         Payments: payments-1, payments-2
 *       Dev: dev-1, dev-2, dev-3 (the StackSet failed there: no bootstrap role)
 *     Security: security-1, security-2 (suspended)
 *     Sandbox (excluded): sandbox-1, sandbox-2
 *     Staging: staging-1 (empty OU but one account, joins later: moved in mid-test)
 */
import { randomBytes } from "node:crypto";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { CreateBucketCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { and, eq, isNotNull } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateToken, hashToken } from "../../db/crypto";
import { apiTokens, organizations, runs, tenantAwsAccounts } from "../../db/schema";
import { PLATFORM_PRINCIPAL_ARN } from "../fixtures/tenant-config";
import { createCustomerOrganization, deployBootstrapStackSet, deployToAccount, type CustomerOrganization } from "../harness/aws-organization";
import { roleExists } from "../harness/customer-account";
import { awsAsCustomer, createStackFromQuickCreateLink, customerAccount, type CustomerAccount } from "../harness/customer-cloudformation";
import { REPO_ROOT } from "../harness/moto";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { pulumiCli } from "../harness/pulumi-cli";
import { waitFor } from "../harness/wait-for";
import { startStsStandIn, type StsStandIn } from "../harness/sts-standin";
import { startEc2StandIn, type Ec2StandIn } from "../harness/ec2-standin";
import { seedEstate, type PlannedInstance } from "../harness/estates";
import { startSsmStandIn, type SsmStandIn } from "../harness/ssm-standin";
import { AssumeRoleCommand, STSClient } from "@aws-sdk/client-sts";

const REGION = "us-east-1";
const OPT_IN_REGION = "ap-east-1";
const BUCKET = "mini-xdr-organization";
const MAX_CONCURRENT_ACCOUNTS = 3;
const RECONCILE_SECONDS = 2;

let service: TestPlatform;
let replica: TestPlatform | undefined;
let sts: StsStandIn;
let ssm: SsmStandIn;
let ec2: Ec2StandIn;
let management: CustomerAccount;
let organization: CustomerOrganization;
const admin = generateToken("mxdr-admin");
const savedEndpoints = {
  AWS_ENDPOINT_URL_STS: process.env.AWS_ENDPOINT_URL_STS,
  AWS_ENDPOINT_URL_SSM: process.env.AWS_ENDPOINT_URL_SSM,
  AWS_ENDPOINT_URL_EC2: process.env.AWS_ENDPOINT_URL_EC2,
};
const accounts: Record<string, string> = {};
const ous: Record<string, string> = {};
let stackSetName: string;
let tenant: { slug: string; id: number };

async function call(app: TestPlatform["app"], method: string, path: string, body?: unknown, token = admin) {
  const response = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, text };
}

const waitUntil = <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 240_000) =>
  waitFor(what, probe, { timeoutMs, intervalMs: 500, retryErrors: true });

const accountRows = () => service.platform.database.db.select().from(tenantAwsAccounts).where(eq(tenantAwsAccounts.organizationId, tenant.id));

async function accountView() {
  const view = await call(service.app, "GET", `/v1/tenants/${tenant.slug}/accounts`);
  expect(view.status, view.text).toBe(200);
  return view.body as {
    status: string;
    starts_stopped: string | null;
    by_status: Record<string, number>;
    needs_action: { account_id: string; reasons: { reason: string; fix: string }[] }[];
    accounts: {
      account_id: string;
      source: string;
      status: string;
      stack_name: string;
      out_of_scope_reason: string | null;
      listings_out_of_scope: number;
    }[];
  };
}

/** A member account's estate, launched in moto in that account; its managed instances registered with the SSM stand-in. */
async function seedMemberEstate(accountId: string, instances: Omit<PlannedInstance, "instanceType" | "metadataTags">[]) {
  // moto grants any role: a session in the member account to launch its instances, as its own admins would.
  const direct = new STSClient({ region: REGION, endpoint: process.env.AWS_ENDPOINT_URL });
  const session = await direct.send(new AssumeRoleCommand({ RoleArn: `arn:aws:iam::${accountId}:role/EstateSeeder`, RoleSessionName: "seed" }));
  direct.destroy();
  const credentials = {
    accessKeyId: session.Credentials!.AccessKeyId!,
    secretAccessKey: session.Credentials!.SecretAccessKey!,
    sessionToken: session.Credentials!.SessionToken!,
  };
  const planned = instances.map((instance) => ({ ...instance, instanceType: "t3.micro", metadataTags: true }));
  const estate = await seedEstate({ regions: [...new Set(planned.map((i) => i.region))], instances: planned }, { credentials });
  ssm.addInstances(estate.managedInstances().map((instance) => ({ ...instance, accountId })));
  return estate;
}

const statusOf = async (accountId: string) => (await accountView()).accounts.find((account) => account.account_id === accountId)?.status;

beforeAll(async () => {
  const managementAccountId = `5${randomBytes(6).readUIntBE(0, 6).toString().padStart(11, "0").slice(0, 11)}`;
  management = await customerAccount(managementAccountId, REGION);
  sts = await startStsStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, callerPrincipalArn: PLATFORM_PRINCIPAL_ARN });
  process.env.AWS_ENDPOINT_URL_STS = sts.url;
  const s3 = new S3Client({ region: REGION });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET })).catch(() => undefined);
  s3.destroy();

  organization = await createCustomerOrganization(management);
  const root = organization.rootId;
  ous.workloads = await organization.createOu("Workloads", root);
  ous.prod = await organization.createOu("Prod", ous.workloads);
  ous.payments = await organization.createOu("Payments", ous.prod);
  ous.dev = await organization.createOu("Dev", ous.workloads);
  ous.security = await organization.createOu("Security", root);
  ous.sandbox = await organization.createOu("Sandbox", root);
  ous.staging = await organization.createOu("Staging", root);
  const place: [string, string][] = [
    ["root-1", root],
    ["prod-1", ous.prod],
    ["prod-2", ous.prod],
    ["payments-1", ous.payments],
    ["payments-2", ous.payments],
    ["dev-1", ous.dev],
    ["dev-2", ous.dev],
    ["dev-3", ous.dev],
    ["security-1", ous.security],
    ["security-2", ous.security],
    ["sandbox-1", ous.sandbox],
    ["sandbox-2", ous.sandbox],
    // Created outside the targeted tree's OUs for now (in Sandbox); moved into Staging mid-test.
    ["staging-1", ous.sandbox],
  ];
  for (const [name, parent] of place) accounts[name] = await organization.createAccount(`${name} ünïcode ☁`, parent);
  await organization.closeAccount(accounts["security-2"]!);

  ssm = await startSsmStandIn(process.env.AWS_ENDPOINT_URL!, { defaultRegion: REGION, accountOf: sts.accountOf });
  const linux = { platform: "linux" as const, state: "running" as const };
  await seedMemberEstate(accounts["payments-1"]!, [
    { key: "web", region: REGION, ...linux, tags: { Name: "web ✓", "cost-center": "payments" } },
    { key: "sql", region: REGION, platform: "windows", state: "running", tags: { Name: "sql" } },
    { key: "edge", region: OPT_IN_REGION, ...linux, tags: {} },
  ]);
  await seedMemberEstate(accounts["prod-1"]!, [
    { key: "legacy", region: REGION, ...linux, tags: { Name: "legacy" }, unmanaged: "no_ssm_agent" },
    { key: "batch", region: REGION, platform: "linux", state: "stopped", tags: {} },
  ]);
  await seedMemberEstate(accounts["prod-2"]!, [{ key: "api", region: REGION, ...linux, tags: { Name: "api" } }]);
  ec2 = await startEc2StandIn({
    motoUrl: process.env.AWS_ENDPOINT_URL!,
    accountOf: sts.accountOf,
    regionsEnabled: Object.fromEntries(
      Object.entries(accounts)
        .filter(([name]) => name !== "prod-2")
        .map(([, accountId]) => [accountId, [OPT_IN_REGION]]),
    ),
    scpDenies: { [accounts["security-1"]!]: [{ region: OPT_IN_REGION, action: "ec2:DescribeInstances" }] },
  });
  process.env.AWS_ENDPOINT_URL_SSM = ssm.endpoint;
  process.env.AWS_ENDPOINT_URL_EC2 = ec2.url;

  service = await startTestPlatform({
    env: {
      RUN_WORKER: "true",
      PLATFORM_PRINCIPAL_ARN,
      BOOTSTRAP_TEMPLATE_BUCKET: BUCKET,
      BOOTSTRAP_TEMPLATE_BUCKET_REGION: REGION,
      ORGANIZATION_RECONCILE_SECONDS: String(RECONCILE_SECONDS),
      MAX_CONCURRENT_RUNS: "4",
      // The test stand-in AWS provider keeps its state where the global setup says (the CLI passes only an allowlist).
      PULUMI_CLI_ENV_PASSTHROUGH: "STANDIN_AWS_STATE_DIR",
    },
    onServerError: (message) => expect.fail(message),
  });
  const db = service.platform.database.db;
  await db.insert(apiTokens).values({ tokenHash: hashToken(admin), scope: "platform_admin", name: "admin" });
  const slug = `org-${randomBytes(3).toString("hex")}`;
  const created = await call(service.app, "POST", "/v1/tenants", {
    slug,
    name: "Organization Corp",
    onboarding_flow_version: "quick_start",
    // The management account is the tenant's home account (connected directly); the organization brings the rest.
    integration_settings: {
      aws_account_id: management.accountId,
      home_region: REGION,
      regions: [REGION, OPT_IN_REGION],
      targeting_mode: "all_managed",
      agent_public_base_url: "https://agents.mini-xdr.example.com",
    },
  });
  expect(created.status, created.text).toBe(201);
  const [row] = await db.select().from(organizations).where(eq(organizations.slug, slug));
  tenant = { slug, id: row!.id };
}, 120_000);

afterAll(async () => {
  for (const [name, value] of Object.entries(savedEndpoints)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await replica?.stop();
  await service?.stop();
  await sts?.stop();
  await ssm?.stop();
  await ec2?.stop();
  // The stack config files the account stacks left in stacks/ (the state went with the service's data directory).
  for (const file of await readdir(join(REPO_ROOT, "stacks"))) {
    if (tenant && file.startsWith(`Pulumi.tenant-${tenant.slug}`)) await rm(join(REPO_ROOT, "stacks", file), { force: true });
  }
}, 300_000);

describe("an AWS Organization connected with one link", () => {
  it("the customer creates the organization stack from the link; the StackSet puts the bootstrap role into the member accounts", async () => {
    const link = await call(
      service.app,
      "GET",
      `/v1/tenants/${tenant.slug}/integrations/aws/organization/link?target_ous=${organization.rootId}&include_management_account=true`,
    );
    expect(link.status, link.text).toBe(200);
    expect(link.body).toMatchObject({
      stack_name: `MiniXdr-Organization-${tenant.slug}`,
      stack_set_name: `MiniXdr-Bootstrap-${tenant.slug}`,
      reader_role_name: `MiniXdrOrgReader-${tenant.slug}`,
      region: REGION,
    });
    const prefilled = new URLSearchParams(new URL(link.body.quick_create_url).hash.split("?")[1]);
    expect(prefilled.get("param_OrganizationalUnitIds")).toBe(organization.rootId);
    const externalId = prefilled.get("param_ExternalId")!;

    // Before the stack exists, connecting waits: the reader role does not answer yet, and nothing is registered.
    const early = await call(service.app, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws/organization`, {
      management_account_id: management.accountId,
      exclude_ous: [ous.sandbox],
      include_management_account: true,
      max_concurrent_accounts: MAX_CONCURRENT_ACCOUNTS,
    });
    expect(early.status, early.text).toBe(202);
    expect(early.body).toMatchObject({ listing: { status: "failed" }, registered: [] });
    expect(early.body.listing.error).toContain("could not be assumed with the tenant's external ID");

    const stack = await createStackFromQuickCreateLink(management, link.body.quick_create_url);
    expect(stack.status).toBe("CREATE_COMPLETE");
    expect(await roleExists(management.accountId, `MiniXdrOrgReader-${tenant.slug}`)).toBe(true);
    // Opted in: the stack itself creates the bootstrap role in the management account, which the StackSet skips.
    expect(await roleExists(management.accountId, `MiniXdrBootstrap-${tenant.slug}`)).toBe(true);

    const template = await new S3Client({ region: REGION }).send(
      new GetObjectCommand({ Bucket: BUCKET, Key: new URL(link.body.template_url).pathname.slice(1) }),
    );
    const deployed = await deployBootstrapStackSet(management, organization, {
      organizationTemplate: JSON.parse(await template.Body!.transformToString()),
      tenantSlug: tenant.slug,
      externalId,
      targetOus: [organization.rootId],
      failedAccounts: [accounts["dev-3"]!],
    });
    stackSetName = deployed.stackSetName;
    expect(await roleExists(accounts["payments-2"]!, `MiniXdrBootstrap-${tenant.slug}`)).toBe(true);
    expect(await roleExists(accounts["dev-3"]!, `MiniXdrBootstrap-${tenant.slug}`)).toBe(false);
  });

  it("the next reconcile connects by itself and registers exactly the accounts in scope, each left-out account with its reason", async () => {
    const registered = await waitUntil("the accounts registered", async () => {
      const rows = await accountRows();
      return rows.length >= 10 ? rows : undefined;
    });
    const inScope = ["root-1", "prod-1", "prod-2", "payments-1", "payments-2", "dev-1", "dev-2", "dev-3", "security-1"].map((name) => accounts[name]);
    // Left out: security-2 (suspended), Sandbox's three (excluded OU). The management account, opted in, is in scope,
    // but it is the tenant's home account already: registered once, as home.
    expect(
      registered
        .filter((row) => row.source === "organization")
        .map((row) => row.accountId)
        .sort(),
    ).toEqual([...inScope].sort());
    expect(registered.filter((row) => row.source === "home")).toEqual([
      expect.objectContaining({ accountId: management.accountId, stackName: `tenant-${tenant.slug}` }),
    ]);
    for (const row of registered.filter((account) => account.source === "organization")) {
      expect(row).toMatchObject({ source: "organization", stackName: `tenant-${tenant.slug}_${row.accountId}` });
    }
    // The tenant may ask for a listing itself, but not back to back: each one lists the whole organization.
    const tenantToken = generateToken("mxdr-tenant");
    await service.platform.database.db
      .insert(apiTokens)
      .values({ tokenHash: hashToken(tenantToken), scope: "tenant", organizationId: tenant.id, name: "tenant admin" });
    const reconcile = () => call(service.app, "POST", `/v1/tenants/${tenant.slug}/integrations/aws/organization/reconcile`, undefined, tenantToken);
    // Two at once: exactly one lists (the claim is one statement), the other is told when to ask again.
    const pair = await Promise.all([reconcile(), reconcile()]);
    expect(pair.map((answer) => answer.status).sort(), pair.map((answer) => answer.text).join("\n")).toEqual([200, 429]);
    const again = await reconcile();
    expect(again.status, again.text).toBe(429);
    expect(again.body.error.code).toBe("reconcile_too_soon");
    const payments = registered.find((row) => row.accountId === accounts["payments-1"])!;
    expect(payments.ouPath).toEqual([organization.rootId, ous.workloads, ous.prod, ous.payments]);
    expect(payments.name).toBe("payments-1 ünïcode ☁");
  });

  it("every account with a bootstrap role is onboarded on its own stack, never more than max_concurrent_accounts at once", async () => {
    let lastView: unknown;
    const settled = await waitUntil(
      "every account settled",
      async () => {
        const view = await accountView();
        lastView = view;
        const members = view.accounts.filter((account) => account.source === "organization");
        // Busy: being started, its stack applied but its discovery and rollout still being read.
        const busy = members.filter((account) => ["connecting", "provisioning", "discovering", "deploying"].includes(account.status));
        const waiting = members.filter((account) => account.status === "not_started");
        // Settled: nothing busy, and nothing waiting unless failures stopped new starts (then the expectations say why).
        return busy.length === 0 && (waiting.length === 0 || view.starts_stopped) ? view : undefined;
      },
      240_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; the accounts then: ${JSON.stringify(lastView, null, 1)}`);
    });
    // The home account has not been connected yet: it waits (not_started) without holding the others up. Neither do
    // the two accounts that need a person, each with what it needs. security-1 is complete: the region its
    // organization's SCP closes (ap-east-1) is excluded by the organization, not a failure that needs a person.
    expect(settled.by_status, JSON.stringify(settled.needs_action, null, 2)).toEqual({ completed: 7, action_required: 2, not_started: 1 });
    expect(settled.status).toBe("connecting");
    const needs = Object.fromEntries(settled.needs_action.map((entry) => [entry.account_id, entry.reasons]));
    expect(Object.keys(needs).sort()).toEqual([accounts["dev-3"], accounts["prod-1"]].sort());
    expect(needs[accounts["dev-3"]!]).toEqual([
      expect.objectContaining({ reason: expect.stringContaining("does not answer"), fix: expect.stringContaining("StackSet") }),
    ]);
    expect(needs[accounts["prod-1"]!]).toEqual([
      expect.objectContaining({
        reason: "1 instance SSM does not manage, so the agent cannot reach them",
        fix: expect.stringContaining("AmazonSSMManagedInstanceCore"),
      }),
    ]);
    // The deny is a missing permission of the tenant, in security-1's account, with what to ask the administrator.
    const progress = await call(service.app, "GET", `/v1/tenants/${tenant.slug}/progress`);
    expect(progress.body.missing_permissions).toContainEqual(
      expect.objectContaining({
        aws_account_id: accounts["security-1"],
        region: OPT_IN_REGION,
        action: "ec2:DescribeInstances",
        source: "discovery",
        excluded_by_organization: true,
        fix: "ask your AWS administrator to allow ec2:DescribeInstances in ap-east-1 for the Mini-XDR roles (the organization's policy denies it)",
      }),
    );
    // Each onboarded account has its own stack's run, and the platform's access role in its own account.
    const accountRuns = await service.platform.database.db
      .select()
      .from(runs)
      .where(and(eq(runs.organizationId, tenant.id), isNotNull(runs.awsAccountId)));
    for (const name of ["root-1", "payments-2", "security-1"]) {
      const run = accountRuns.find((row) => row.awsAccountId === accounts[name] && row.kind === "up");
      expect(run, name).toMatchObject({ status: "succeeded", stackName: `tenant-${tenant.slug}_${accounts[name]}` });
      expect(await roleExists(accounts[name]!, `MiniXdrAccess-${tenant.slug}`)).toBe(true);
    }
    // At most max_concurrent_accounts runs overlapped in time.
    const ups = accountRuns.filter((run) => run.kind === "up" && run.startedAt && run.finishedAt);
    const overlap = Math.max(
      ...ups.map((run) => ups.filter((other) => other.startedAt! <= run.startedAt! && other.finishedAt! > run.startedAt!).length),
    );
    expect(overlap).toBeLessThanOrEqual(MAX_CONCURRENT_ACCOUNTS);
    expect(ups).toHaveLength(8);
  });

  it("the coverage matrix gives each account and region its SSM pieces and instances, or why the cell is empty", async () => {
    const coverage = await call(service.app, "GET", `/v1/tenants/${tenant.slug}/coverage`);
    expect(coverage.status, coverage.text).toBe(200);
    type Cell = {
      region: string;
      status: string;
      ssm: Record<string, boolean>;
      instances: Record<string, number>;
      reason: string | null;
      fix: string | null;
    };
    const matrix = coverage.body as {
      regions: string[];
      accounts: { account_id: string; status: string; cells: Cell[] }[];
      totals: Record<string, number>;
    };
    expect(matrix.regions).toEqual([REGION, OPT_IN_REGION]);
    const cell = (name: string, region: string) => {
      const accountId = name === "management" ? management.accountId : accounts[name];
      return matrix.accounts.find((row) => row.account_id === accountId)?.cells.find((c) => c.region === region);
    };
    // The agent everywhere in payments-1: the pieces in both regions, every instance managed and installed.
    expect(cell("payments-1", REGION)).toMatchObject({
      status: "covered",
      ssm: { parameter: true, document: true, association: true },
      instances: { discovered: 2, managed: 2, installed: 2, failed: 0 },
    });
    expect(cell("payments-1", OPT_IN_REGION)).toMatchObject({ status: "covered", instances: { discovered: 1, installed: 1 } });
    expect(cell("prod-2", REGION)).toMatchObject({ status: "covered", instances: { discovered: 1, installed: 1 } });
    expect(cell("prod-2", OPT_IN_REGION)).toMatchObject({ status: "region_not_enabled", instances: { discovered: 0 } });
    expect(cell("prod-1", REGION)).toMatchObject({ status: "not_managed", instances: { discovered: 2, managed: 0, unmanaged: 1 } });
    expect(cell("security-1", OPT_IN_REGION)).toMatchObject({
      status: "excluded_by_organization",
      reason: "AWS denied ec2:DescribeInstances in ap-east-1: an explicit deny in a service control policy",
    });
    expect(cell("root-1", REGION)).toMatchObject({ status: "connected_but_empty", ssm: { association: true } });
    expect(cell("dev-3", REGION)).toMatchObject({ status: "bootstrap_role_missing", ssm: { association: false } });
    expect(cell("management", REGION)).toMatchObject({ status: "not_onboarded_yet" });
    expect(matrix.totals).toMatchObject({ accounts: 10, discovered: 6, installed: 4 });
    // Each account's discovery read only its own account: no instance of one account is counted in another.
    expect(
      matrix.accounts
        .filter((row) => row.cells.some((c) => (c.instances.discovered ?? 0) > 0))
        .map((row) => row.account_id)
        .sort(),
    ).toEqual([accounts["payments-1"], accounts["prod-1"], accounts["prod-2"]].sort());
    // The EC2 stand-in answered its two AWS behaviours: the SCP's deny for security-1 alone, and the opt-in state of
    // the accounts' regions (never prod-2's: moto's answer is AWS's there).
    const answered = ec2.answered.map((call) => `${call.action} ${call.accountId}`);
    expect(answered.filter((call) => call.startsWith("DescribeInstances"))[0]).toBe(`DescribeInstances ${accounts["security-1"]}`);
    expect(new Set(answered.filter((call) => call.startsWith("DescribeInstances")))).toEqual(
      new Set([`DescribeInstances ${accounts["security-1"]}`]),
    );
    expect(answered).toContain(`DescribeRegions ${accounts["payments-1"]}`);
    expect(answered).not.toContain(`DescribeRegions ${accounts["prod-2"]}`);
    console.log(`coverage matrix of the test organization: ${JSON.stringify(matrix)}`);

    // The tenant's progress sums its accounts up, with each one's own status and progress.
    const progress = await call(service.app, "GET", `/v1/tenants/${tenant.slug}/progress`);
    expect(progress.status, progress.text).toBe(200);
    const breakdown = progress.body.accounts as {
      status: string;
      total: number;
      accounts: { account_id: string; status: string; progress: number; agents_installed: number }[];
    };
    expect(breakdown).toMatchObject({ status: "connecting", total: 10 });
    const byAccount = Object.fromEntries(breakdown.accounts.map((row) => [row.account_id, row]));
    expect(byAccount[accounts["payments-1"]!]).toMatchObject({ status: "completed", progress: 100, agents_installed: 3 });
    expect(byAccount[accounts["prod-1"]!]).toMatchObject({ status: "action_required", progress: 60 });
    expect(byAccount[accounts["dev-3"]!]).toMatchObject({ status: "action_required", progress: 10 });
    const mean = Math.round(breakdown.accounts.reduce((sum, row) => sum + row.progress, 0) / breakdown.accounts.length);
    expect(progress.body.overall_progress).toBe(mean);
  });

  it("each member account's bootstrap role says the version the StackSet deployed; one it has not reached is not known", async () => {
    const { status, body } = await call(service.app, "GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap/version`);
    expect(status, JSON.stringify(body)).toBe(200);
    const byAccount = Object.fromEntries(body.organization.accounts.map((row: { aws_account_id: string }) => [row.aws_account_id, row]));
    expect(byAccount[accounts["payments-1"]!]).toEqual({
      aws_account_id: accounts["payments-1"],
      running_version: body.current_version,
      read_error: false,
    });
    expect(byAccount[accounts["dev-3"]!]).toMatchObject({ running_version: null, read_error: true });
    expect(body.organization).toMatchObject({ update_available: false, update: null });
  });

  it("an account moved into a targeted OU is onboarded by itself within a reconcile interval (AWS's automatic deployment performed)", async () => {
    await organization.moveAccount(accounts["staging-1"]!, ous.sandbox!, ous.staging!);
    // AWS's automatic deployment: the StackSet reaches an account that joins a targeted OU (moto does not).
    await deployToAccount(management, stackSetName, accounts["staging-1"]!);
    await waitUntil("staging-1 onboarded", async () => ((await statusOf(accounts["staging-1"]!)) === "completed" ? true : undefined));
  });

  it("the missing role, once the StackSet reaches the account, is picked up by the next listing", async () => {
    await deployToAccount(management, stackSetName, accounts["dev-3"]!);
    await waitUntil("dev-3 onboarded", async () => ((await statusOf(accounts["dev-3"]!)) === "completed" ? true : undefined));
  });

  it("a failed listing offboards nothing; an account out of scope is offboarded after two complete listings", async () => {
    const db = service.platform.database.db;
    // The reader role refuses for a while (the customer broke its trust): listings fail and change nothing.
    const readerRole = `MiniXdrOrgReader-${tenant.slug}`;
    const trust = JSON.parse(
      await awsAsCustomer(management, ["iam", "get-role", "--role-name", readerRole, "--query", "Role.AssumeRolePolicyDocument"]),
    );
    await awsAsCustomer(management, [
      "iam",
      "update-assume-role-policy",
      "--role-name",
      readerRole,
      "--policy-document",
      JSON.stringify({
        ...trust,
        Statement: trust.Statement.map((statement: object) => ({
          ...statement,
          Condition: { StringEquals: { "sts:ExternalId": "not-ours-0000000000" } },
        })),
      }),
    ]);
    await organization.moveAccount(accounts["dev-1"]!, ous.dev!, ous.sandbox!);
    const failing = await call(service.app, "POST", `/v1/tenants/${tenant.slug}/integrations/aws/organization/reconcile`);
    expect(failing.status, failing.text).toBe(200);
    expect(failing.body).toMatchObject({ listing: { status: "failed" }, offboarding: [] });
    await new Promise((resolve) => setTimeout(resolve, RECONCILE_SECONDS * 3 * 1000));
    const [dev1] = await db.select().from(tenantAwsAccounts).where(eq(tenantAwsAccounts.accountId, accounts["dev-1"]!));
    expect(dev1).toMatchObject({ status: "completed", listingsOutOfScope: 0 });

    await awsAsCustomer(management, ["iam", "update-assume-role-policy", "--role-name", readerRole, "--policy-document", JSON.stringify(trust)]);
    // One complete listing: out of scope, counted once, still covered.
    const first = await call(service.app, "POST", `/v1/tenants/${tenant.slug}/integrations/aws/organization/reconcile`);
    expect(first.body.listing.status).toBe("complete");
    const afterOne = (await accountView()).accounts.find((account) => account.account_id === accounts["dev-1"]);
    expect(afterOne).toMatchObject({ out_of_scope_reason: "the account is in an excluded OU" });
    expect(["completed", "offboarding"]).toContain(afterOne!.status);
    // The second (on demand or scheduled) offboards it: its stack is destroyed, then removed.
    await waitUntil("dev-1 offboarded", async () => ((await statusOf(accounts["dev-1"]!)) === "offboarded" ? true : undefined));
    expect(await roleExists(accounts["dev-1"]!, `MiniXdrAccess-${tenant.slug}`)).toBe(false);
    const destroys = await db
      .select()
      .from(runs)
      .where(and(eq(runs.awsAccountId, accounts["dev-1"]!), eq(runs.kind, "destroy")));
    expect(destroys.map((run) => run.status)).toEqual(["succeeded"]);
  });

  it("the home account onboards on its own stack, which a preview then finds unchanged; any account's stack previews at the repo root", async () => {
    const connected = await call(service.app, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, {
      bootstrap_role_arn: `arn:aws:iam::${management.accountId}:role/MiniXdrBootstrap-${tenant.slug}`,
    });
    expect(connected.status, connected.text).toBe(201);
    const up = await call(service.app, "POST", `/v1/tenants/${tenant.slug}/runs`, { kind: "up" });
    expect(up.status, up.text).toBe(202);
    expect(up.body.stack_name).toBe(`tenant-${tenant.slug}`);
    await waitUntil("the home account's up", async () => {
      const run = await call(service.app, "GET", `/v1/tenants/${tenant.slug}/runs/${up.body.run_id}`);
      return run.body.status === "succeeded" ? run.body : undefined;
    });
    const preview = await call(service.app, "POST", `/v1/tenants/${tenant.slug}/runs`, { kind: "preview", queue: true });
    const previewed = await waitUntil("the home account's preview", async () => {
      const run = await call(service.app, "GET", `/v1/tenants/${tenant.slug}/runs/${preview.body.run_id}`);
      return ["succeeded", "failed"].includes(run.body.status) ? run.body : undefined;
    });
    expect(previewed).toMatchObject({ status: "succeeded", aws_account_id: null });
    expect(Object.keys(previewed.change_summary).filter((op) => op !== "same")).toEqual([]);

    // The platform team's review path works for an organization account's stack as for any other.
    const member = `tenant-${tenant.slug}_${accounts["payments-1"]}`;
    const cli = await pulumiCli(["preview", "-s", member, "--non-interactive", "--diff"], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        PULUMI_BACKEND_URL: service.backendUrl,
        PULUMI_HOME: join(service.platform.config.DATA_DIR, "pulumi-home"),
        PULUMI_CONFIG_PASSPHRASE: service.platform.config.PULUMI_CONFIG_PASSPHRASE,
        NO_COLOR: "1",
      },
    });
    expect(cli.stdout + cli.stderr).toContain(`${accounts["payments-1"]}`);
    expect(cli.stdout).not.toMatch(/to create|to update|to delete|to replace/);
    expect(cli.code, cli.stderr).toBe(0);
  });

  it("two replicas reconciling the same organization onboard each new account exactly once", async () => {
    replica = await startTestPlatform({
      shareWith: service,
      env: {
        RUN_WORKER: "true",
        PLATFORM_PRINCIPAL_ARN,
        BOOTSTRAP_TEMPLATE_BUCKET: BUCKET,
        BOOTSTRAP_TEMPLATE_BUCKET_REGION: REGION,
        ORGANIZATION_RECONCILE_SECONDS: "1",
        PULUMI_CLI_ENV_PASSTHROUGH: "STANDIN_AWS_STATE_DIR",
      },
      onServerError: (message) => expect.fail(message),
    });
    const newcomers: string[] = [];
    for (const name of ["late-1", "late-2"]) {
      const accountId = await organization.createAccount(name, ous.dev!);
      await deployToAccount(management, stackSetName, accountId);
      newcomers.push(accountId);
    }
    // Both replicas list at once, on demand and on their schedules.
    await Promise.all([
      call(service.app, "POST", `/v1/tenants/${tenant.slug}/integrations/aws/organization/reconcile`),
      call(replica.app, "POST", `/v1/tenants/${tenant.slug}/integrations/aws/organization/reconcile`),
    ]);
    for (const accountId of newcomers) {
      await waitUntil(`${accountId} onboarded`, async () => ((await statusOf(accountId)) === "completed" ? true : undefined));
      const ups = await service.platform.database.db
        .select()
        .from(runs)
        .where(and(eq(runs.awsAccountId, accountId), eq(runs.kind, "up")));
      expect(ups).toHaveLength(1);
    }
    const rows = await accountRows();
    expect(rows.filter((row) => newcomers.includes(row.accountId))).toHaveLength(2);
  });
});

describe("offboarding an organization", () => {
  it("destroys every account's stack, a few at a time, resumes on another replica when one stops, and tells the customer what to delete", async () => {
    expect(replica, "the replicas test runs first").toBeDefined();
    const db = service.platform.database.db;
    const live = (await accountRows()).filter((row) => row.source === "organization" && row.offboardedAt === null);
    expect(live.length).toBeGreaterThanOrEqual(10);

    const earlierDestroys = new Set(
      (
        await db
          .select({ id: runs.id })
          .from(runs)
          .where(and(eq(runs.organizationId, tenant.id), eq(runs.kind, "destroy")))
      ).map((run) => run.id),
    );
    const offboard = await call(service.app, "POST", `/v1/tenants/${tenant.slug}/offboard`);
    expect(offboard.status, offboard.text).toBe(202);
    expect(offboard.body).toMatchObject({
      kind: "destroy",
      stack_name: `tenant-${tenant.slug}`,
      accounts_offboarding: live.length,
      organization_cleanup: [
        { cli_command: expect.stringContaining(`delete-stack-instances --stack-set-name MiniXdr-Bootstrap-${tenant.slug}`) },
        { cli_command: expect.stringContaining(`delete-stack-set --stack-set-name MiniXdr-Bootstrap-${tenant.slug}`) },
        { cli_command: expect.stringContaining(`delete-stack --stack-name MiniXdr-Organization-${tenant.slug}`) },
      ],
    });
    expect(offboard.body.organization_cleanup[0].console_url).toMatch(/^https:\/\/us-east-1\.console\.aws\.amazon\.com\/cloudformation\//);
    // At most max_concurrent_accounts destroys are requested at once.
    const started = (
      await db
        .select()
        .from(runs)
        .where(and(eq(runs.organizationId, tenant.id), eq(runs.kind, "destroy"), isNotNull(runs.awsAccountId)))
    ).filter((run) => !earlierDestroys.has(run.id));
    expect(started.length).toBeGreaterThan(0);
    expect(started.length).toBeLessThanOrEqual(MAX_CONCURRENT_ACCOUNTS);

    // The first replica goes away mid-offboarding, once the home stack is destroyed (a home destroy cut short is the
    // operator's to request again, as for any tenant); the other resumes the accounts from the rows (its schedule).
    await waitUntil("the home stack destroyed", async () => {
      const [run] = await db.select().from(runs).where(eq(runs.id, offboard.body.run_id));
      return run?.status === "succeeded" ? run : undefined;
    });
    await service.stopService();
    const replicaDb = replica!.platform.database.db;
    await waitUntil("the tenant offboarded", async () => {
      const [row] = await replicaDb.select().from(organizations).where(eq(organizations.id, tenant.id));
      return row?.onboardingStatus === "offboarded" ? row : undefined;
    });
    const rows = await replicaDb.select().from(tenantAwsAccounts).where(eq(tenantAwsAccounts.organizationId, tenant.id));
    expect(rows.filter((row) => row.source === "organization" && row.status !== "offboarded")).toEqual([]);
    for (const name of ["root-1", "payments-2", "security-1", "staging-1"]) {
      expect(await roleExists(accounts[name]!, `MiniXdrAccess-${tenant.slug}`), name).toBe(false);
    }
    expect(await roleExists(management.accountId, `MiniXdrAccess-${tenant.slug}`)).toBe(false);
    // Every account's stack was destroyed once (a destroy stopped by the first replica's going was started again).
    const destroys = await replicaDb
      .select()
      .from(runs)
      .where(and(eq(runs.organizationId, tenant.id), eq(runs.kind, "destroy"), isNotNull(runs.awsAccountId)));
    const succeeded = new Set(destroys.filter((run) => run.status === "succeeded").map((run) => run.awsAccountId));
    expect(succeeded.size).toBe(live.length + 1); // dev-1's, from the earlier test, too
  });
});
