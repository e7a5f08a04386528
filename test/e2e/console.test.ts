/// <reference lib="dom" />
/**
 * The web console in a real browser: Debian's chromium driven by playwright-core, against the service as a process
 * (api/server.ts) on a scratch database of the real PostgreSQL server, its stack runs on the real Pulumi CLI, AWS =
 * moto behind the stand-in provider; the two SSM calls moto lacks come from test/harness/ssm-standin.ts (set as the
 * service's AWS_ENDPOINT_URL_SSM), which forwards every other SSM call to moto.
 *
 *   a. a tenant admin signs in, watches progress (server-sent events) reach 100 %, retries a failed host from the page
 *   b. 10,000 assets: sortable, filterable, and only the rows in view are in the DOM
 *   c. an operator sees KPIs and tenants, previews, approves and applies the saved plan, and offboards
 *   d. the progress stream and the KPIs through the API: scoped like every route
 *   e. the one click: Connect AWS opens the quick-create link (a stand-in AWS console page), the customer creates the
 *      stack from it, the page shows the wait, and onboarding runs by itself to 100 %
 *   a2. permission health: the Settings page's check shows the matrix, an organization's deny (the EC2 stand-in,
 *      test/harness/ec2-standin.ts, answers as AWS does for an SCP, which moto cannot) with its fix, and the progress
 *      page lists the missing permission until the deny is lifted
 *   f. no secret in any page's HTML or in any request the browser made; only 127.0.0.1 was contacted
 *
 * Every screen is checked with axe (no serious or critical violation) and kept as a screenshot under
 * .data/artifacts/console/ (git-ignored).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EC2Client, RunInstancesCommand } from "@aws-sdk/client-ec2";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { decryptJson, hashToken } from "../../db/crypto";
import { customerAccountCredentials, launchMonitoredInstances, LINUX_AMI } from "../harness/customer-account";
import { CHROMIUM_OPTIONS, reachLoopbackOnly, screenChecks } from "../harness/console-browser";
import { startEc2StandIn, type Ec2StandIn } from "../harness/ec2-standin";
import { awsAsCustomer, createStackFromQuickCreateLink, customerAccount } from "../harness/customer-cloudformation";
import { readEventStream } from "../harness/event-stream-reader";
import { enrollmentBody } from "../harness/instance-identity";
import { serviceUnderTest } from "../harness/service-under-test";
import type { ManagedInstance } from "../harness/ssm-standin";
import { newTenantRecord, type TenantRecord } from "../harness/tenants";
import { waitForWith } from "../harness/wait-for";

const REGION = "us-east-1";
const BULK_ASSETS = 10_000;

const suffix = randomBytes(3).toString("hex");
const tenant = (prefix: string) => newTenantRecord(`${prefix}-${suffix}`);

const acme = tenant("acme"); // a: the tenant admin's onboarding
const bulk = tenant("bulk"); // b: 10,000 assets
const beta = tenant("beta"); // c: approval required; previewed, applied and offboarded by the operator
const orgco = tenant("orgco"); // e2: an AWS Organization's accounts
const click = tenant("click"); // e: the one-click quick start through the quick-create link

const isQuickCreateLink = (url: string) => new URL(url).host === `${REGION}.console.aws.amazon.com`;
const TEMPLATE_BUCKET = "mini-xdr-console-templates";

/** Actions an organization's SCP denies, per region, in every account the service reads (set by test a2). */
const EVERY_ACCOUNT = "any account";
const scpDenies: Record<string, { region: string; action: string }[]> = { [EVERY_ACCOUNT]: [] };
let ec2: Ec2StandIn | undefined;

let context: BrowserContext;
let userDataDir: string;
let acmeInstances: string[] = [];

/** Every URL the browser asked for, and the hosts it was kept from. */
const requests: { url: string; method: string; body: string | null }[] = [];
const blocked: string[] = [];
const { htmlSeen, screenshots, checkScreen } = screenChecks();

const WAIT = { timeoutMs: 240_000, retryErrors: true };
const waitFor = waitForWith(WAIT);

// Anything missing (chromium, PostgreSQL, moto) fails every test with the reason; nothing is skipped.
const service = serviceUnderTest({
  name: "console",
  ssmStandIn: true,
  env: () => ({ BOOTSTRAP_TEMPLATE_BUCKET: TEMPLATE_BUCKET, ...(ec2 ? { AWS_ENDPOINT_URL_EC2: ec2.url } : {}) }),
  wait: WAIT,
  offboardWhenDone: [acme],
  beforeServerStart: async () => {
    ec2 = await startEc2StandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, accountOf: () => EVERY_ACCOUNT, scpDenies });
    // The quick-create link: templates published to moto's S3; STS (the service's stand-in) refuses AssumeRole as
    // AWS does until the role exists.
    const s3 = new S3Client({ region: REGION });
    await s3.send(new CreateBucketCommand({ Bucket: TEMPLATE_BUCKET }));
    s3.destroy();
  },
  setUp: async () => {
    userDataDir = await mkdtemp(join(tmpdir(), "mxdr-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, CHROMIUM_OPTIONS);
    context.on("request", (request) => requests.push({ url: request.url(), method: request.method(), body: request.postData() }));
    // Only the service on 127.0.0.1 may be reached: anything else is stopped here and recorded.
    await reachLoopbackOnly(context, blocked);
  },
});
const { call, adminToken } = service;
const encryptionKey = service.encryptionKey!;

afterAll(async () => {
  await context?.close();
  await ec2?.stop();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  if (screenshots.length) console.log(`console screenshots:\n${screenshots.map((file) => `  ${file}`).join("\n")}`);
});

/** The tenant, and its tenant admin's token. */
async function createTenantAndToken(t: TenantRecord, settings: Record<string, unknown> = {}): Promise<void> {
  await service.createTenant(t, { name: `${t.slug.split("-")[0]!.toUpperCase()} Corp`, regions: [REGION], settings });
  t.token = await service.issueToken(t.slug, `${t.slug}-console`);
}

async function enrollmentTokenOf(slug: string): Promise<string> {
  const [row] = await service.sql<{ token_sealed: string; organization_id: number }[]>`
    select e.token_sealed, e.organization_id from enrollment_tokens e join organizations o on o.id = e.organization_id
    where o.slug = ${slug} and e.revoked_at is null`;
  return decryptJson<string>(row!.token_sealed, { organizationId: row!.organization_id, provider: "enrollment-token" }, { key: encryptionKey });
}

/**
 * Signs a person in as the console's users do, in a new tab: a tenant's admin through an invitation link (the
 * invitation page's one button), the platform operator through a one-time sign-in link (written as the service writes
 * the one it prints at start). The session cookie is the context's, so the last sign-in is who every tab is.
 */
async function signIn(as: TenantRecord | "operator"): Promise<Page> {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  if (as === "operator") {
    const token = `mxdr-signin_${randomBytes(32).toString("base64url")}`;
    await service.sql`insert into sign_in_links (token_hash, purpose, expires_at) values (${hashToken(token)}, 'operator', now() + interval '5 minutes')`;
    await page.goto(`${service.server.baseUrl}/auth/sign-in-link/${token}`);
  } else {
    await page.goto(await invitationLink(as, "admin"));
    await page.getByRole("button", { name: "Accept and sign in" }).click();
  }
  await page.locator("#screen-title").waitFor();
  return page;
}

/** An invitation to the tenant, made by the platform admin through the API (no mail server: the link comes back once). */
async function invitationLink(t: TenantRecord, role: "admin" | "viewer"): Promise<string> {
  const invited = await call("POST", `/v1/tenants/${t.slug}/invitations`, { body: { email: `${role}@${t.slug}.example`, role } });
  expect(invited.status, invited.text).toBe(201);
  return invited.body.link;
}

describe("web console (chromium, server process, PostgreSQL, Pulumi CLI, moto)", () => {
  it("a. tenant admin: signs in, watches progress reach 100 % live, retries a failed host from the page", async () => {
    await createTenantAndToken(acme);
    acmeInstances = await launchMonitoredInstances(acme.account, { region: REGION });
    const [good, bad] = acmeInstances as [string, string];
    const association = (status: "Success" | "Failed", extra: Partial<NonNullable<ManagedInstance["association"]>> = {}) => ({
      documentName: `MiniXdr-InstallAgent-${acme.slug}`,
      status,
      executedAt: new Date(Date.now() - 60_000),
      ...extra,
    });
    service.ssm.setInstances([
      { instanceId: good, platformType: "Linux", pingStatus: "Online", association: association("Success") },
      {
        instanceId: bad,
        platformType: "Linux",
        pingStatus: "Online",
        // What the install step prints on an instance without the AWS CLI (test/integration/agent-install-script.test.ts
        // runs the real step that way), as SSM keeps it with the association's command.
        association: association("Failed", {
          detailedStatus: "Failed",
          errorCode: "127",
          output: { responseCode: 127, stdout: "", stderr: "mini-xdr: aws: command not found: the install step needs curl and the AWS CLI\n" },
        }),
      },
    ]);

    // The sign-in page renders before any script and says where sign-in links come from (no identity provider here).
    const page = await context.newPage();
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${service.server.baseUrl}/`);
    await expect(page.getByRole("heading", { name: "Sign in to Mini-XDR" }).isVisible()).resolves.toBe(true);
    await page.getByText("open the invitation link you received").waitFor();
    expect(await page.getByLabel("API token").count()).toBe(0);
    await checkScreen(page, "01-sign-in");

    // The tenant's admin opens the invitation link: its page, one button, then the console.
    const link = await invitationLink(acme, "admin");
    await page.goto(link);
    await page.getByRole("heading", { name: `Join ${acme.slug.split("-")[0]!.toUpperCase()} Corp` }).waitFor();
    await checkScreen(page, "01b-invitation");
    await page.getByRole("button", { name: "Accept and sign in" }).click();
    await page.getByRole("heading", { name: "Welcome to Mini-XDR: get started in minutes with seamless cloud integration" }).waitFor();
    const awsCard = page.locator("#aws-card");
    await awsCard.getByText("Discover EC2 instances, RDS databases and more across all regions").waitFor();
    await page.getByRole("button", { name: "Connect AWS" }).waitFor();
    expect(await page.locator(".muted-card").allInnerTexts()).toEqual([
      expect.stringContaining("coming soon"),
      expect.stringContaining("coming soon"),
    ]);
    // The session is an HttpOnly cookie the page cannot read; nothing is kept in the page's storage or the URL.
    expect(await page.evaluate(() => JSON.stringify([localStorage, sessionStorage, document.cookie]))).toBe('[{},{},""]');
    expect((await context.cookies()).map((cookie) => [cookie.name, cookie.httpOnly, cookie.sameSite])).toEqual([["mxdr_session", true, "Lax"]]);
    expect(page.url()).toBe(`${service.server.baseUrl}/`);
    // A used invitation link says so, and signs nobody in.
    const reused = await fetch(link);
    expect(reused.status).toBe(410);
    await page.locator("#stream-state", { hasText: "Live" }).waitFor();
    await checkScreen(page, "02-quick-start");

    // The quick-create wait is the lead's part (bootstrap link): here AWS is connected through the API and the
    // first up started, as the wait does when the role answers.
    await service.connectAws(acme);
    const up = await call("POST", `/v1/tenants/${acme.slug}/runs`, { body: { kind: "up" } });
    expect(up.status, up.text).toBe(202);

    // The page follows: stack, discovery (2 assets), and the failed install shown with its reason and a fix.
    await page.locator('[data-step="discovery"] .step-line', { hasText: "2 assets found" }).waitFor({ timeout: 240_000 });
    const deploymentStep = page.locator('[data-step="deployment"]');
    await deploymentStep.getByText("Action required:").waitFor({ timeout: 120_000 });
    // The cause read from the step's own output, the instance named with its ID, the fix for that cause, the output.
    expect(await deploymentStep.innerText()).toContain(
      // Both instances are named "web": the ID tells them apart.
      `1 instance failed to install the agent (web (${bad})): the install step could not run \`aws\` (exit 127: not installed on the instance)`,
    );
    expect(await deploymentStep.innerText()).toContain("How to fix: install the AWS CLI on the instance");
    await deploymentStep.getByText("The install step's last lines on").click();
    await deploymentStep.getByText("mini-xdr: aws: command not found").waitFor();
    await page.locator('[data-step="stack"] .step-icon.done').waitFor();
    await awsCard.getByText(`account ${acme.account}`).waitFor();
    await checkScreen(page, "03-progress-action-required");

    // Assets: both instances, their priority, platform, region, agent status and reason.
    await page.getByRole("button", { name: "Assets", exact: true }).click();
    await page.locator(".table-count", { hasText: "2 rows" }).waitFor();
    const badRow = page.locator(`tr[data-row-key="${bad}"]`);
    expect(await badRow.innerText()).toMatch(/failed/);
    expect(await badRow.innerText()).toContain(REGION);
    expect(await page.locator(`tr[data-row-key="${good}"]`).innerText()).toMatch(/installed/);
    await checkScreen(page, "04-assets");

    // Deployment: retry the failed host from the page.
    await page.getByRole("button", { name: "Deployment", exact: true }).click();
    const retry = page.getByRole("button", { name: "Retry failed instances (1)" });
    await retry.waitFor();
    await checkScreen(page, "05-deployment-failed");
    const retried = page.waitForResponse(
      (response) => response.url().endsWith(`/v1/tenants/${acme.slug}/deployment/retry`) && response.request().method() === "POST",
    );
    await retry.click();
    const retryAnswer = await retried;
    expect(retryAnswer.status()).toBe(200);
    expect(await retryAnswer.json()).toMatchObject({ retried: 1, commands: [{ region: REGION, instance_ids: [bad] }] });
    await page.locator("#retry-result", { hasText: "Retry sent to 1 instance." }).waitFor();
    const commands = await service.sql<{ command_id: string; instance_ids: string[] }[]>`
      select c.command_id, c.instance_ids from agent_commands c join organizations o on o.id = c.organization_id where o.slug = ${acme.slug}`;
    expect(commands).toEqual([{ command_id: expect.any(String), instance_ids: [bad] }]);
    await checkScreen(page, "06-deployment-retried");

    // The agents check in (as the install document makes them): progress reaches 100 % on the open page.
    await page.getByRole("button", { name: "Quick start" }).click();
    const enrollmentToken = await enrollmentTokenOf(acme.slug);
    for (const [index, instanceId] of acmeInstances.entries()) {
      const enrolled = await call("POST", "/v1/agents/enroll", {
        token: null,
        body: enrollmentBody(enrollmentToken, { accountId: acme.account, region: REGION, instanceId }, { hostname: `web-${index + 1}` }),
      });
      expect(enrolled.status, enrolled.text).toBe(201);
    }
    await page.locator(".complete", { hasText: "Setup complete: Mini-XDR is now monitoring your environment" }).waitFor({ timeout: 60_000 });
    expect(await page.getByRole("progressbar", { name: "Overall onboarding progress" }).getAttribute("aria-valuenow")).toBe("100");
    for (const [step, line] of [
      ["discovery", "2 assets found"],
      ["deployment", "2 agents deployed"],
      ["validation", "5 checks passed"],
    ] as const) {
      expect(await page.locator(`[data-step="${step}"] .step-line`).innerText()).toBe(line);
      expect(await page.locator(`[data-step="${step}"] .step-icon.done`).count()).toBe(1);
    }
    await checkScreen(page, "07-setup-complete");
    expect((await call("GET", `/v1/tenants/${acme.slug}`)).body.onboarding_status).toBe("completed");

    // Progress came over the event stream, not by polling GET .../progress.
    const progressCalls = requests.filter((request) => new URL(request.url).pathname === `/v1/tenants/${acme.slug}/progress`);
    const streamCalls = requests.filter((request) => new URL(request.url).pathname === `/v1/tenants/${acme.slug}/progress/events`);
    expect(progressCalls).toEqual([]);
    expect(streamCalls.length).toBeGreaterThanOrEqual(1);

    await page.getByRole("button", { name: "Validation", exact: true }).click();
    await page.getByText("5 of 5 checks passed.").waitFor();
    await checkScreen(page, "08-validation");

    // Settings: the tenant admin changes the target tag; the approval gate is an operator's.
    await page.getByRole("button", { name: "Settings", exact: true }).click();
    await page.getByLabel("Target tag key").waitFor();
    expect(await page.getByLabel("Require approval before deployment").isDisabled()).toBe(true);
    await page.getByLabel("Regions").fill("us-east-1");
    await page.getByLabel("Target tag key").fill("xdr:monitor");
    await page.getByLabel("Target tag value").fill("true");
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.locator("#settings-message", { hasText: "Settings saved." }).waitFor();
    expect((await call("GET", `/v1/tenants/${acme.slug}`)).body.integration_settings.target_tag).toEqual({ key: "xdr:monitor", value: "true" });
    await page.getByLabel("Regions").fill("mars-north-9");
    await page.getByRole("button", { name: "Save settings" }).click();
    await page.locator("#settings-message", { hasText: "integration_settings.regions" }).waitFor();
    await checkScreen(page, "09-settings");

    // 390 px wide: nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole("button", { name: "Quick start" }).click();
    await page.locator(".complete", { hasText: "Setup complete: Mini-XDR is now monitoring your environment" }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await checkScreen(page, "10-quick-start-390px");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to Mini-XDR" }).waitFor();
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    await page.close();
  });

  it("a2 (after a). permission health: the check's matrix with an organization's deny and its fix; the missing permission on the progress page until lifted", async () => {
    const page = await signIn(acme);
    await page.getByRole("button", { name: "Settings" }).click();
    await page.getByRole("heading", { name: "Permissions" }).waitFor();
    scpDenies[EVERY_ACCOUNT]!.push({ region: REGION, action: "ec2:DescribeInstances" });
    try {
      await page.getByRole("button", { name: "Check permissions" }).click();
      const matrix = page.locator("table.permission-matrix");
      await matrix.waitFor();
      expect(await matrix.locator(`tr[data-region="${REGION}"] td`).allInnerTexts()).toEqual(["denied", "allowed", "allowed", "allowed"]);
      const result = page.locator("#permissions-result");
      expect(await result.innerText()).toContain(`AWS denied ec2:DescribeInstances in ${REGION}: an explicit deny in a service control policy`);
      expect(await result.innerText()).toContain(`ask your AWS administrator to allow ec2:DescribeInstances in ${REGION}`);
      await checkScreen(page, "05a-permission-check-scp-deny");

      await page.getByRole("button", { name: "Quick start" }).click();
      const missing = page.locator(`[data-missing-permission="${REGION} ec2:DescribeInstances"]`);
      await missing.waitFor();
      expect(await missing.innerText()).toContain("How to fix: ask your AWS administrator");
      await checkScreen(page, "05b-progress-missing-permission");
    } finally {
      // Lifted whatever happened above: the later tests' discoveries must see their instances.
      scpDenies[EVERY_ACCOUNT]!.length = 0;
    }
    // Lifted: the next check shows every call allowed, and the progress page no longer lists it.
    await page.getByRole("button", { name: "Settings" }).click();
    await page.getByRole("button", { name: "Check permissions" }).click();
    await page.locator("#permissions-result", { hasText: "Every call the platform needs is allowed in every region." }).waitFor();
    await page.getByRole("button", { name: "Quick start" }).click();
    await page.locator(".steps").waitFor();
    await waitFor("the missing permission gone from the progress page", async () =>
      (await page.locator("[data-missing-permission]").count()) === 0 ? true : undefined,
    );
    await page.close();
  });

  it("b. 10,000 assets: sorted, filtered and searched; only the rows in view are rendered", async () => {
    await createTenantAndToken(bulk);
    const [org] = await service.sql<{ id: number }[]>`select id from organizations where slug = ${bulk.slug}`;
    const priorities = ["critical", "high", "medium", "low"];
    const statuses = ["checked_in", "installed", "pending", "failed", "not_targeted"];
    const rows = Array.from({ length: BULK_ASSETS }, (_, i) => ({
      organization_id: org!.id,
      provider: "aws",
      asset_type: i % 10 === 0 ? "rds" : "ec2",
      asset_id: i % 10 === 0 ? `db-${String(i).padStart(5, "0")}` : `i-${i.toString(16).padStart(17, "0")}`,
      region: ["us-east-1", "eu-west-1", "ap-southeast-2"][i % 3]!,
      asset_data: i % 10 === 0 ? { engine: "postgres" } : { platform: i % 7 === 0 ? "windows" : "linux" },
      tags: { Name: `host-${String(i).padStart(5, "0")}` },
      agent_compatible: i % 10 !== 0,
      priority: priorities[i % 4]!,
      agent_status: statuses[i % 5]!,
    }));
    for (let start = 0; start < rows.length; start += 1000) {
      await service.sql`insert into cloud_assets ${service.sql(rows.slice(start, start + 1000))}`;
    }

    const page = await signIn(bulk);
    await page.getByRole("button", { name: "Assets", exact: true }).click();
    await page.locator(".table-count", { hasText: `${BULK_ASSETS} rows` }).waitFor({ timeout: 60_000 });
    const rendered = await page.locator("tbody tr[data-row-key]").count();
    expect(rendered).toBeGreaterThan(5);
    expect(rendered).toBeLessThan(100);
    expect(await page.locator("table").first().getAttribute("aria-rowcount")).toBe(String(BULK_ASSETS + 1));
    // Highest priority first by default.
    expect(await page.locator("tbody tr[data-row-key]").first().innerText()).toContain("critical");
    await checkScreen(page, "11-assets-10000");

    // Scrolling to the end renders the last rows (and still only a window of them).
    await page.locator(".table-scroll").evaluate((el) => (el.scrollTop = el.scrollHeight));
    await page.waitForFunction((total) => document.querySelector(`tbody tr[aria-rowindex="${total + 1}"]`) !== null, BULK_ASSETS);
    expect(await page.locator("tbody tr[data-row-key]").count()).toBeLessThan(100);

    // Sorting by name, both ways.
    await page.getByRole("button", { name: "Asset", exact: true }).click();
    await page.locator(".table-scroll").evaluate((el) => (el.scrollTop = 0));
    await page.locator('th[aria-sort="ascending"]', { hasText: "Asset" }).waitFor();
    await page.waitForFunction(() => document.querySelector("tbody tr[data-row-key]")?.textContent?.startsWith("host-00000"));
    await page.getByRole("button", { name: "Asset", exact: true }).click();
    await page.waitForFunction(() => document.querySelector("tbody tr[data-row-key]")?.textContent?.startsWith("host-09999"));

    // Filters: priority, agent status, then search.
    await page.getByLabel("Priority", { exact: true }).selectOption("critical");
    await page.locator(".table-count", { hasText: `2500 of ${BULK_ASSETS} rows` }).waitFor();
    await page.getByLabel("Agent", { exact: true }).selectOption("failed");
    // i % 4 == 0 and i % 5 == 3: 500 assets.
    await page.locator(".table-count", { hasText: `500 of ${BULK_ASSETS} rows` }).waitFor();
    await page.getByLabel("Search").fill("host-0000");
    await page.locator(".table-count", { hasText: `1 of ${BULK_ASSETS} rows` }).waitFor();
    expect(await page.locator("tbody tr[data-row-key]").innerText()).toContain("host-00008");
    await checkScreen(page, "12-assets-filtered");
    await page.close();
  });

  it("c (after a). operator: KPIs and tenants, preview, approve and apply the saved plan, offboard", async () => {
    await createTenantAndToken(beta, { require_approval: true });
    await service.connectAws(beta);

    const page = await signIn("operator");
    await page.getByRole("heading", { name: "Onboarding KPIs" }).waitFor();
    const acmeRow = page.locator(`tr[data-tenant="${acme.slug}"]`);
    await acmeRow.waitFor();
    expect(await acmeRow.innerText()).toMatch(/completed/);
    expect(await acmeRow.innerText()).toMatch(/\d+ (s|min)/);
    const kpis = (await call("GET", "/v1/kpis")).body;
    expect(kpis.kpis).toMatchObject({ tenants_connected: 2, tenants_completed: 1, completion_rate: 0.5 });
    expect(kpis.kpis.median_seconds_to_onboard).toEqual(expect.any(Number));
    await page.locator(".stats", { hasText: "50 %" }).waitFor();
    await checkScreen(page, "13-operator-tenants");

    // The tenant's page: preview (approval required: its plan is saved), the per-resource diff.
    await page.locator(`tr[data-tenant="${beta.slug}"]`).getByRole("button").click();
    await page.getByRole("button", { name: "Preview changes" }).click();
    await page.locator("#operator-message", { hasText: /Preview: preview \w+ succeeded/ }).waitFor({ timeout: 240_000 });
    const diff = page.locator("table.diff");
    await diff.waitFor();
    const previewRun = (await call("GET", `/v1/tenants/${beta.slug}/runs?kind=preview`)).body.runs[0];
    expect(previewRun).toMatchObject({ status: "succeeded", plan_saved: true, change_summary: { create: expect.any(Number) } });
    const planned = previewRun.resource_changes.filter((change: { op: string }) => change.op !== "same");
    expect(planned.length).toBeGreaterThanOrEqual(7);
    expect(await diff.locator("tbody tr").count()).toBe(planned.length);
    expect(await diff.innerText()).toContain("aws:iam/role:Role");
    await checkScreen(page, "14-operator-preview-diff");

    // Approve and apply exactly that plan.
    await page.getByRole("button", { name: "Approve and apply this plan" }).click();
    await page.getByRole("dialog").waitFor();
    await checkScreen(page, "15-operator-approve-dialog");
    await page.getByRole("dialog").getByRole("button", { name: "Approve and apply" }).click();
    await page.locator("#operator-message", { hasText: /Apply: up \w+ succeeded/ }).waitFor({ timeout: 240_000 });
    const { runs } = (await call("GET", `/v1/tenants/${beta.slug}/runs`)).body;
    const [applied, preview] = runs;
    expect(applied).toMatchObject({ kind: "up", status: "succeeded", plan_saved: true });
    expect(preview).toMatchObject({ kind: "preview", status: "succeeded", plan_saved: true });
    await checkScreen(page, "16-operator-applied");

    // Offboard: the confirmation names the tenant and wants its slug typed.
    await page.getByRole("button", { name: "Offboard…" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByRole("heading", { name: `Offboard ${beta.slug.split("-")[0]!.toUpperCase()} Corp?` }).waitFor();
    expect(await dialog.innerText()).toContain(beta.slug);
    const confirm = dialog.getByRole("button", { name: `Offboard ${beta.slug}` });
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel(`Type ${beta.slug} to confirm`).fill(beta.slug);
    expect(await confirm.isDisabled()).toBe(false);
    await checkScreen(page, "17-operator-offboard-dialog");
    await confirm.click();
    await page.locator("#operator-message", { hasText: /Offboarding: destroy \w+ succeeded/ }).waitFor({ timeout: 240_000 });
    await waitFor(`${beta.slug} offboarded`, async () => (await call("GET", `/v1/tenants/${beta.slug}`)).body.onboarding_status === "offboarded");
    await page.getByRole("button", { name: "← All tenants" }).click();
    await page.locator(`tr[data-tenant="${beta.slug}"]`, { hasText: "offboarded" }).waitFor();
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await checkScreen(page, "18-operator-tenants-390px");
    await page.close();
  });

  it("d (after a, b). the console's API additions: progress stream and KPIs are scoped like every route", async () => {
    // A discovery still running from a (its rescans) settles first: then the progress holds still while it is compared.
    await waitFor("acme's progress at 100 %", async () =>
      (await call("GET", `/v1/tenants/${acme.slug}/progress`, { token: acme.token })).body.overall_progress === 100 ? true : undefined,
    );
    // The stream's first event is the progress as GET .../progress answers it.
    const stream = await readEventStream(`${service.server.baseUrl}/v1/tenants/${acme.slug}/progress/events`, {
      token: acme.token,
      until: "progress",
      timeoutMs: 30_000,
    });
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);
    const progress = await call("GET", `/v1/tenants/${acme.slug}/progress`, { token: acme.token });
    expect(JSON.parse(stream.events[0]!.data)).toEqual(progress.body);
    expect(progress.body.overall_progress).toBe(100);
    // Another tenant's stream: the same 404 as a tenant that does not exist; a bad slug names the field; no token: 401.
    const other = await call("GET", `/v1/tenants/${bulk.slug}/progress/events`, { token: acme.token });
    const missing = await call("GET", `/v1/tenants/zz-no-such-tenant/progress/events`, { token: acme.token });
    expect([other.status, other.body.error.code]).toEqual([404, "not_found"]);
    expect([missing.status, missing.body.error.code]).toEqual([404, "not_found"]);
    const badSlug = await call("GET", "/v1/tenants/NO/progress/events", { token: acme.token });
    expect(badSlug.status).toBe(400);
    expect(badSlug.body.error.fields.map((field: { field: string }) => field.field)).toEqual(["param.slug"]);
    expect((await call("GET", `/v1/tenants/${acme.slug}/progress/events`, { token: null })).status).toBe(401);
    // KPIs: platform admins only.
    const kpis = await call("GET", "/v1/kpis", { token: acme.token });
    expect([kpis.status, kpis.body.error.code]).toEqual([403, "forbidden"]);
  });

  it("e. one click: Connect AWS opens the quick-create link, the customer creates the stack, the page waits live, onboarding runs by itself to 100 %", async () => {
    await createTenantAndToken(click);
    const credentials = await customerAccountCredentials(click.account);
    const ec2 = new EC2Client({ region: REGION, credentials });
    const launched = await ec2.send(
      new RunInstancesCommand({
        ImageId: LINUX_AMI,
        MinCount: 1,
        MaxCount: 1,
        InstanceType: "t3.micro",
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "app-1" }] }],
      }),
    );
    ec2.destroy();
    const instanceId = launched.Instances![0]!.InstanceId!;
    service.ssm.addInstances([
      {
        instanceId,
        platformType: "Linux",
        pingStatus: "Online",
        association: { documentName: `MiniXdr-InstallAgent-${click.slug}`, status: "Success", executedAt: new Date() },
      },
    ]);

    const page = await signIn(click);
    const connect = page.getByRole("button", { name: "Connect AWS" });
    await expect.poll(() => connect.isEnabled(), { timeout: 30_000 }).toBe(true);
    // The AWS console is a stand-in page here (the browser may reach nothing but 127.0.0.1 and this one host).
    await context.route(
      (url) => url.hostname === `${REGION}.console.aws.amazon.com`,
      (route) =>
        route.fulfill({
          status: 200,
          contentType: "text/html",
          body: "<!doctype html><title>Quick create stack</title><h1>AWS CloudFormation: quick create stack (stand-in)</h1>",
        }),
    );
    const opened = context.waitForEvent("page");
    const clickedAt = performance.now();
    await connect.click();
    const consoleTab = await opened;
    await consoleTab.waitForLoadState();
    const quickCreateUrl = consoleTab.url();
    expect(new URL(quickCreateUrl).hash).toContain(`stackName=MiniXdr-Bootstrap-${click.slug}`);
    await page.getByText(/Waiting for the CloudFormation stack/).waitFor();
    await checkScreen(page, "00-connect-waiting");

    // The customer presses "Create stack" on the console page: the stack is created from the link in their account.
    const customer = await customerAccount(click.account, REGION);
    expect((await createStackFromQuickCreateLink(customer, quickCreateUrl)).status).toBe("CREATE_COMPLETE");
    await consoleTab.close();

    // The service connects by itself and, in the quick-start flow, starts the up; the page follows to the rollout.
    await page.locator('[data-step="discovery"] .step-line', { hasText: "1 asset found" }).waitFor({ timeout: 240_000 });
    await waitFor("the agent installed", async () =>
      (await call("GET", `/v1/tenants/${click.slug}/deployment?refresh=false`)).body.installed === 1 ? true : undefined,
    );
    // The agent on the host enrolls with the token of its region's agent config (as the install script does).
    const enrolled = await call("POST", "/v1/agents/enroll", {
      token: null,
      body: enrollmentBody(await enrollmentTokenOf(click.slug), { accountId: click.account, region: REGION, instanceId }, { hostname: "app-1" }),
    });
    expect(enrolled.status, enrolled.text).toBe(201);
    await page.getByRole("status").filter({ hasText: "Setup complete: Mini-XDR is now monitoring your environment" }).waitFor({ timeout: 120_000 });
    const seconds = ((performance.now() - clickedAt) / 1000).toFixed(1);
    console.log(`console: from opening the quick-create link to completed: ${seconds} s`);
    expect((await call("GET", `/v1/tenants/${click.slug}`)).body.onboarding_status).toBe("completed");
    await checkScreen(page, "00-connect-completed");
    const offboard = await call("POST", `/v1/tenants/${click.slug}/offboard`);
    expect(offboard.status).toBe(202);
    expect(offboard.body.customer_cleanup.cli_command).toBe(
      `aws cloudformation delete-stack --stack-name MiniXdr-Bootstrap-${click.slug} --region ${REGION}`,
    );
    await service.settledRun(click.slug, offboard.body.run_id);
    await awsAsCustomer(customer, offboard.body.customer_cleanup.cli_command.split(" ").slice(1));
    await page.close();
  });

  it("e2. an organization's accounts: the organization card, the Accounts view with each reason and fix, the operator's retry and exclude", async () => {
    await createTenantAndToken(orgco);
    const [org] = await service.sql<{ id: number }[]>`select id from organizations where slug = ${orgco.slug}`;
    // The organization as a listing left it (rows written directly: the listing itself is tested on moto elsewhere).
    await service.sql`insert into tenant_aws_organizations ${service.sql({
      organization_id: org!.id,
      management_account_id: "111122223333",
      reader_role_arn: `arn:aws:iam::111122223333:role/MiniXdrOrgReader-${orgco.slug}`,
      scope_rules: service.sql.json({ targetOus: [], excludeOus: [], excludeAccounts: [], includeManagementAccount: false }),
    })}`;
    const account = (accountId: string, name: string, status: string, reasons: unknown = null) => ({
      organization_id: org!.id,
      account_id: accountId,
      name,
      source: "organization",
      ou_path: service.sql.json(["r-ab12", "ou-ab12-prod0001"]),
      stack_name: `tenant-${orgco.slug}_${accountId}`,
      status,
      status_reasons: reasons === null ? null : service.sql.json(reasons as never),
    });
    await service.sql`insert into tenant_aws_accounts ${service.sql([
      account("222233334444", "Payments ☁ prod", "completed"),
      account("333344445555", "Data lake", "action_required", [
        {
          reason: "the bootstrap role does not answer: the StackSet has not created it in this account (yet)",
          fix: "check the StackSet's stack instance",
        },
      ]),
      account("444455556666", "Sandbox", "not_started"),
    ])}`;
    // Payments' stack applied in us-east-1, its discovery and its two instances (one with the agent, one installing).
    const region = REGION;
    await service.sql`insert into runs ${service.sql({
      organization_id: org!.id,
      stack_name: `tenant-${orgco.slug}_222233334444`,
      aws_account_id: "222233334444",
      kind: "up",
      status: "succeeded",
      actor: "system:organization",
      finished_at: new Date(),
      outputs: service.sql.json({
        roleArn: `arn:aws:iam::222233334444:role/MiniXdrAccess-${orgco.slug}`,
        regions: { [region]: { parameterName: "/mini-xdr/agent", documentName: "MiniXdr-Install", associationId: "assoc-1" } },
      }),
    })}`;
    await service.sql`insert into discovery_scans ${service.sql({
      organization_id: org!.id,
      aws_account_id: "222233334444",
      trigger: "after_up",
      status: "succeeded",
      actor: "system:organization",
      assets_found: 2,
      regions: service.sql.json([{ region, status: "succeeded", assets: 2 }]),
    })}`;
    const asset = (assetId: string, name: string, agentStatus: string) => ({
      organization_id: org!.id,
      provider: "aws",
      asset_type: "ec2",
      asset_id: assetId,
      region,
      aws_account_id: "222233334444",
      tags: service.sql.json({ Name: name }),
      asset_data: service.sql.json({ state: "running", platform: "linux" }),
      agent_compatible: true,
      agent_status: agentStatus,
    });
    await service.sql`insert into cloud_assets ${service.sql([asset("i-0payments00000001", "ledger ☁", "installed"), asset("i-0payments00000002", "api", "installing")])}`;

    const page = await signIn(orgco);
    await page.locator("#organization-card").getByRole("heading", { name: "An AWS Organization" }).waitFor();
    expect(await page.getByLabel("Management account ID").isVisible()).toBe(true);
    // The onboarding progress sums the accounts up, naming the one that needs action.
    const accountsProgress = page.locator("#accounts-progress");
    await accountsProgress.waitFor();
    expect(await accountsProgress.innerText()).toMatch(/Across your 4 AWS accounts: [\s\S]*1 completed/);
    expect(await accountsProgress.innerText()).toContain("Data lake: the bootstrap role does not answer");
    await page.getByRole("button", { name: "Accounts", exact: true }).click();
    // The three of the organization and the home account the tenant was created with.
    await page.locator(".table-count", { hasText: "4 rows" }).waitFor();
    const lake = page.locator('tbody tr[data-row-key="333344445555"]');
    expect(await lake.innerText()).toContain("the bootstrap role does not answer");
    expect(await lake.innerText()).toContain("Fix: check the StackSet's stack instance");
    expect(await page.locator("#accounts-summary").innerText()).toMatch(/4 accounts: .*1 completed/);
    expect(await page.locator(`tbody tr[data-row-key="${orgco.account}"]`).innerText()).toContain("connected directly");
    // The coverage matrix: what each account has in each region, or why not, with the fix.
    const matrix = page.locator("table.coverage-matrix");
    await matrix.waitFor();
    const matrixRow = (name: string) => matrix.locator("tbody tr", { has: page.locator("th", { hasText: name }) });
    expect(await matrixRow("Payments ☁ prod").innerText()).toMatch(/installing[\s\S]*1 of 2 managed instances have the agent so far/i);
    expect(await matrixRow("Data lake").innerText()).toMatch(/bootstrap role missing[\s\S]*does not answer[\s\S]*Fix: check the StackSet/i);
    expect(await matrixRow("Sandbox").innerText()).toMatch(/not onboarded yet/i);
    await checkScreen(page, "19-tenant-accounts");
    await page.close();

    // The operator retries the account that needs action, then excludes another.
    const operator = await signIn("operator");
    await operator.locator(`tr[data-tenant="${orgco.slug}"]`).getByRole("button").click();
    const lakeRow = operator.locator('#tenant-accounts tr[data-account="333344445555"]');
    await lakeRow.waitFor();
    await checkScreen(operator, "20-operator-accounts");
    await lakeRow.getByRole("button", { name: "Retry" }).click();
    // The role still does not answer (this account is on no emulator): it needs action again, with the reason.
    await waitFor("the retried account", async () => {
      const view = (await call("GET", `/v1/tenants/${orgco.slug}/accounts`)).body;
      const retried = view.accounts.find((row: { account_id: string }) => row.account_id === "333344445555");
      return retried.status === "action_required" && retried.status_reasons[0].reason.includes("does not answer") ? retried : undefined;
    });
    await operator.locator('#tenant-accounts tr[data-account="444455556666"]').getByRole("button", { name: "Exclude…" }).click();
    await operator.getByRole("dialog").getByRole("button", { name: "Exclude" }).click();
    await operator.locator('#tenant-accounts tr[data-account="444455556666"]', { hasText: "offboarded" }).waitFor();
    const view = (await call("GET", `/v1/tenants/${orgco.slug}/accounts`)).body;
    expect(view.organization.exclude_accounts).toEqual(["444455556666"]);
    await operator.close();
  });

  it("f (after a–e). no secret in any page or request URL; the browser contacted 127.0.0.1 only (and the AWS console for the quick-create link)", async () => {
    expect(requests.length).toBeGreaterThan(20);
    expect(htmlSeen.length).toBeGreaterThanOrEqual(15);
    const enrollmentTokens = await service.sql<
      { organization_id: number; token_sealed: string }[]
    >`select organization_id, token_sealed from enrollment_tokens`;
    const secrets: Record<string, string> = {
      "admin token": adminToken,
      "acme token": acme.token,
      "bulk token": bulk.token,
      "beta token": beta.token,
      "acme external id": acme.externalId,
      "beta external id": beta.externalId,
      ...Object.fromEntries(
        enrollmentTokens.map((row, i) => [
          `enrollment token ${i}`,
          decryptJson<string>(row.token_sealed, { organizationId: row.organization_id, provider: "enrollment-token" }, { key: encryptionKey }),
        ]),
      ),
    };
    expect(Object.keys(secrets).length).toBeGreaterThanOrEqual(8);
    for (const [name, secret] of Object.entries(secrets)) {
      for (const { screen, html } of htmlSeen) expect(html.includes(secret), `${name} in the HTML of ${screen}`).toBe(false);
      for (const request of requests) {
        // The quick-create link carries the tenant's external ID by design: it is no secret from the customer it opens for.
        if (isQuickCreateLink(request.url)) continue;
        expect(request.url.includes(secret), `${name} in ${request.method} ${request.url}`).toBe(false);
        expect((request.body ?? "").includes(secret), `${name} in the body of ${request.method} ${request.url}`).toBe(false);
      }
    }
    const hosts = new Set(requests.filter((request) => !isQuickCreateLink(request.url)).map((request) => new URL(request.url).host));
    expect([...hosts]).toEqual([new URL(service.server.baseUrl).host]);
    expect(blocked).toEqual([]);
  });
});
