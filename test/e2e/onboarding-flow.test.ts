/**
 * Onboarding end to end, as users see it: the real server process (api/server.ts) on a scratch database of the real
 * PostgreSQL server (TEST_DATABASE_URL), its stack runs on the real Pulumi CLI (.tools/bin) with a file state backend
 * and passphrase secrets in a temp dir, AWS = the moto server (test/harness/global-setup.ts) behind the stand-in
 * `pulumi-resource-aws`. The server reaches moto through a loopback proxy of this test (test/harness/holding-proxy.ts)
 * that can hold AWS calls, which makes "killed in the middle of an `up`" deterministic.
 *
 * Every customer gets its own AWS account in moto (and its bootstrap role there), so tenants cannot see each
 * other's resources by accident. The scenarios run in order and share the server:
 *
 *   a. admin: tenant, AWS connection, preview, up (events followed live), outputs, progress, offboarding
 *   b. the seeds' /api/onboarding/v2 set with a tenant token
 *   c. cross-tenant access on every route of /openapi.json
 *   d. two concurrent run requests for one tenant
 *   e. the server SIGKILLed mid-`up`, restarted on the same database and state
 *   f. bad input on every route with a body or parameters
 *   g. no secret in any response, log line, database row or stack state
 */
import { randomBytes, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { GetRoleCommand, IAMClient } from "@aws-sdk/client-iam";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { decryptJson } from "../../db/crypto";
import { awsCredentialContext } from "../../services/core/aws-credential-store";
import { createBootstrapRole, customerAccountCredentials, launchMonitoredInstances, roleExists } from "../harness/customer-account";
import { readEventStream } from "../harness/event-stream-reader";
import { enrollmentBody } from "../harness/instance-identity";
import { pulumiCli, pulumiProcessesOf, stackHistoryLength } from "../harness/pulumi-cli";
import { stopServer } from "../harness/service-process";
import { serviceUnderTest } from "../harness/service-under-test";
import { newTenantRecord, PLATFORM_PRINCIPAL_ARN, tenantExternalIdThroughApi, type TenantRecord } from "../harness/tenants";
import { waitForWith } from "../harness/wait-for";

const REGION = "us-east-1";
const NO_SUCH_TENANT = "zz-no-such-tenant";

const suffix = randomBytes(3).toString("hex");
const tenant = (prefix: string) => newTenantRecord(`${prefix}-${suffix}`);

const alpha = tenant("alpha"); // scenario a: the admin's full flow, offboarded at its end
const bravo = tenant("bravo"); // scenario b: quick_start through the v2 set; the victim of c; d
const charlie = tenant("charlie"); // legacy onboarding flow; the other tenant of c
const echo = tenant("echo"); // scenario e: the crash

const encryptionKeyBytes = randomBytes(32);
const WAIT = { timeoutMs: 240_000, intervalMs: 200, retryErrors: true };
const waitFor = waitForWith(WAIT);

const service = serviceUnderTest({
  name: "flow",
  // The service's default state backend: postgres:// in the same server, database <scratch>_state.
  workspace: "database-state",
  encryptionKey: encryptionKeyBytes.toString("base64"),
  // The service reaches "AWS" through the test's proxy; the test itself talks to moto directly.
  holdingProxy: true,
  env: { MAX_CONCURRENT_RUNS: "4" },
  wait: WAIT,
  // Leave moto clean for the next file: offboard the tenants whose stacks still hold resources.
  offboardWhenDone: [bravo, echo],
});
const { call, adminToken, responses } = service;
const encryptionKey = service.encryptionKey!;
/** The response that showed each tenant token (its one showing). */
const tokenShownIn = new Map<string, string>();
/** Run ids per scenario, for later scenarios. */
const runIds: Record<string, string> = {};
/** Seeded EC2 instances of bravo's account. */
let bravoInstances: string[] = [];

async function issueRecordedToken(t: TenantRecord): Promise<string> {
  const issued = await call("POST", `/v1/tenants/${t.slug}/tokens`, { body: { name: `${t.slug}-e2e` } });
  expect(issued.status, issued.text).toBe(201);
  expect(issued.body).toMatchObject({ scope: "tenant", tenant: t.slug, token: expect.stringMatching(/^mxdr-tenant_/) });
  tokenShownIn.set(issued.body.token, issued.text);
  return issued.body.token;
}

function iamOf(account: string) {
  return customerAccountCredentials(account).then((credentials) => new IAMClient({ region: REGION, credentials }));
}

async function stackExport(stackName: string) {
  return pulumiCli(["stack", "export", "--stack", stackName, "--non-interactive"], {
    cwd: service.workspace.projectDir,
    env: service.workspace.cliEnv(),
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

/**
 * A browser session of a new member of the tenant (invited by the platform admin, the link accepted as the invitation
 * page's button does), as the headers the console sends: the cookie, its own origin, the session's CSRF token.
 */
async function sessionHeaders(slug: string, role: "admin" | "viewer"): Promise<Record<string, string>> {
  const invited = await service.call("POST", `/v1/tenants/${slug}/invitations`, { body: { email: `${role}-${randomUUID()}@example.com`, role } });
  expect(invited.status, invited.text).toBe(201);
  const origin = service.server.baseUrl;
  const accepted = await fetch(invited.body.link, { method: "POST", redirect: "manual", headers: { origin } });
  expect(accepted.status).toBe(303);
  const cookie = (accepted.headers.get("set-cookie") ?? "").split(";")[0]!;
  const session = await service.call("GET", "/v1/session", { token: null, headers: { cookie } });
  return { cookie, origin, "x-csrf-token": session.body.csrf_token };
}

describe("tenant onboarding end to end (server process, PostgreSQL, Pulumi CLI, moto)", () => {
  it("a. admin: connect AWS, preview, up with live events, outputs and progress, then offboard", async () => {
    const created = await service.createTenant(alpha);
    expect(created.body).toMatchObject({ slug: alpha.slug, onboarding_status: "not_started", offboarded_at: null });

    // A run before AWS is connected is refused with the field to fix.
    const early = await call("POST", `/v1/tenants/${alpha.slug}/runs`, { body: { kind: "preview" } });
    expect(early.status).toBe(422);
    expect(early.body.error.code).toBe("tenant_not_ready");
    expect(early.body.error.fields.map((f: { field: string }) => f.field)).toContain("integrations.aws");

    const connected = await service.connectAws(alpha);
    expect(connected.status, connected.text).toBe(201);
    expect(connected.body).toMatchObject({
      provider: "aws",
      status: "active",
      bootstrap_role_arn: alpha.roleArn,
      aws_account_id: alpha.account,
      external_id_masked: `****${alpha.externalId.slice(-4)}`,
      external_id_generated: true,
    });
    expect(await roleExists(alpha.account, "MiniXdrBootstrap")).toBe(true);

    // Preview: 202 with the run id; the stored result lists every resource to create.
    const preview = await call("POST", `/v1/tenants/${alpha.slug}/runs`, { body: { kind: "preview" } });
    expect(preview.status, preview.text).toBe(202);
    expect(preview.body).toEqual({ run_id: expect.any(String), kind: "preview", status: "queued", stack_name: `tenant-${alpha.slug}` });
    const previewRun = await service.settledRun(alpha.slug, preview.body.run_id);
    expect(previewRun.error).toBeNull();
    expect(previewRun).toMatchObject({
      id: preview.body.run_id,
      tenant: alpha.slug,
      kind: "preview",
      status: "succeeded",
      change_summary: { create: 8 },
    });
    expect(previewRun.resource_changes.map((change: { type: string }) => change.type)).toEqual(
      expect.arrayContaining([
        "aws:iam/role:Role",
        "aws:iam/rolePolicy:RolePolicy",
        "aws:ssm/parameter:Parameter",
        "aws:ssm/document:Document",
        "aws:ssm/association:Association",
      ]),
    );
    for (const change of previewRun.resource_changes) expect(change.op).toBe("create");
    // A preview changes nothing in the account.
    expect(await roleExists(alpha.account, `MiniXdrAccess-${alpha.slug}`)).toBe(false);

    // Up, its engine events followed live over server-sent events until `end`.
    const up = await call("POST", `/v1/tenants/${alpha.slug}/runs`, { body: { kind: "up" } });
    expect(up.status, up.text).toBe(202);
    const upId: string = up.body.run_id;
    runIds.alphaUp = upId;
    const stream = await readEventStream(`${service.server.baseUrl}/v1/tenants/${alpha.slug}/runs/${upId}/events`, { token: adminToken });
    responses.push(stream.text);
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);
    const engine = stream.events.filter((event) => event.event === "engine");
    expect(engine.length).toBeGreaterThan(10);
    expect(engine.map((event) => event.id)).toEqual(engine.map((_, index) => String(index)));
    const engineEvents = engine.map((event) => JSON.parse(event.data));
    expect(engineEvents[0]).toHaveProperty("preludeEvent");
    expect(engineEvents.some((event) => event.resourcePreEvent?.metadata?.type === "aws:iam/role:Role")).toBe(true);
    expect(engineEvents.some((event) => "summaryEvent" in event)).toBe(true);
    expect(stream.events.at(-1)).toMatchObject({ event: "end" });
    expect(JSON.parse(stream.events.at(-1)!.data)).toEqual({ run_id: upId, status: "succeeded" });

    const upRun = await call("GET", `/v1/tenants/${alpha.slug}/runs/${upId}`);
    expect(upRun.body).toMatchObject({ status: "succeeded", kind: "up", change_summary: { create: 8 }, error: null });
    expect(upRun.body.started_at).toEqual(expect.any(String));
    expect(upRun.body.finished_at).toEqual(expect.any(String));
    const roleName = `MiniXdrAccess-${alpha.slug}`;
    expect(upRun.body.outputs).toEqual({
      roleArn: `arn:aws:iam::${alpha.account}:role/${roleName}`,
      parameterName: `/mini-xdr/${alpha.slug}/agent-config`,
      documentName: `MiniXdr-InstallAgent-${alpha.slug}`,
      associationId: expect.stringMatching(/^assoc-/),
      regions: {
        [REGION]: {
          parameterName: `/mini-xdr/${alpha.slug}/agent-config`,
          documentName: `MiniXdr-InstallAgent-${alpha.slug}`,
          associationId: upRun.body.outputs.associationId,
        },
      },
      clusters: {},
      rollout: {
        targeting: { mode: "all_managed", targetTag: { key: "xdr:monitor", value: "true" }, exclusionTag: { key: "xdr:monitor", value: "false" } },
        regions: [REGION],
        defaultHostManagement: false,
        maxConcurrency: "10%",
        maxErrors: "10%",
      },
    });
    expect(upRun.text).not.toContain(alpha.externalId);

    // A late client replays the same events; Last-Event-ID resumes after the given one.
    const replay = await readEventStream(`${service.server.baseUrl}/v1/tenants/${alpha.slug}/runs/${upId}/events`, { token: adminToken });
    responses.push(replay.text);
    expect(replay.events.filter((event) => event.event === "engine").map((event) => event.data)).toEqual(engine.map((event) => event.data));
    const resumed = await readEventStream(`${service.server.baseUrl}/v1/tenants/${alpha.slug}/runs/${upId}/events`, {
      token: adminToken,
      headers: { "last-event-id": "4" },
    });
    responses.push(resumed.text);
    expect(resumed.events[0]!.id).toBe("5");
    expect(resumed.events.at(-1)!.event).toBe("end");

    // The role the platform assumes exists in the customer's account and trusts the platform with the external ID.
    const iam = await iamOf(alpha.account);
    try {
      const role = await iam.send(new GetRoleCommand({ RoleName: roleName }));
      const trust = JSON.parse(decodeURIComponent(role.Role!.AssumeRolePolicyDocument!));
      expect(trust.Statement[0].Principal).toEqual({ AWS: PLATFORM_PRINCIPAL_ARN });
      expect(trust.Statement[0].Condition).toEqual({ StringEquals: { "sts:ExternalId": alpha.externalId } });
    } finally {
      iam.destroy();
    }

    // Progress: the stack phase is complete; discovery follows the up by itself.
    const progress = await call("GET", `/v1/tenants/${alpha.slug}/progress`);
    expect(progress.status).toBe(200);
    expect(progress.body.stack).toMatchObject({ status: "completed", progress: 100, run_id: upId });
    expect(progress.body.stack.resources_total).toBeGreaterThanOrEqual(8);
    expect(progress.body.stack.resources_done).toBe(progress.body.stack.resources_total);
    const discovered = await waitFor("alpha's discovery after the up", async () => {
      const current = await call("GET", `/v1/tenants/${alpha.slug}/progress`);
      return ["completed", "failed"].includes(current.body.discovery.status) ? current.body : undefined;
    });
    expect(discovered.discovery).toMatchObject({ status: "completed", assets_found: 0 });
    expect(discovered.overall_progress).toBeGreaterThanOrEqual(30);
    const runList = await call("GET", `/v1/tenants/${alpha.slug}/runs`);
    expect(runList.body.runs.map((run: { id: string }) => run.id)).toEqual([upId, preview.body.run_id]);

    // Offboarding: destroy, then the stack is removed; the role is gone from the account; history is kept.
    const offboard = await call("POST", `/v1/tenants/${alpha.slug}/offboard`);
    expect(offboard.status, offboard.text).toBe(202);
    expect(offboard.body).toMatchObject({ kind: "destroy", status: "queued", stack_name: `tenant-${alpha.slug}` });
    const offboarded = await waitFor("alpha to be offboarded", async () => {
      const got = await call("GET", `/v1/tenants/${alpha.slug}`);
      expect(got.body.onboarding_status).not.toBe("failed");
      return got.body.onboarding_status === "offboarded" ? got.body : undefined;
    });
    expect(offboarded.offboarded_at).toEqual(expect.any(String));
    const destroyRun = await service.settledRun(alpha.slug, offboard.body.run_id);
    expect(destroyRun).toMatchObject({ kind: "destroy", status: "succeeded", change_summary: { delete: 8 } });
    expect(await roleExists(alpha.account, roleName)).toBe(false);
    const stacks = await pulumiCli(["stack", "ls", "--json", "--non-interactive"], {
      cwd: service.workspace.projectDir,
      env: service.workspace.cliEnv(),
    });
    expect(stacks.code, stacks.stderr).toBe(0);
    expect((JSON.parse(stacks.stdout) as { name: string }[]).map((s) => s.name)).not.toContain(`tenant-${alpha.slug}`);
    expect((await call("GET", `/v1/tenants/${alpha.slug}/integrations/aws`)).body.status).toBe("revoked");
    const [{ active } = { active: -1 }] = await service.sql<{ active: number }[]>`
      select count(*)::int as active from enrollment_tokens e join organizations o on o.id = e.organization_id
      where o.slug = ${alpha.slug} and e.revoked_at is null`;
    expect(active).toBe(0);
    expect((await call("GET", `/v1/tenants/${alpha.slug}/runs`)).body.runs).toHaveLength(3);
    const again = await call("POST", `/v1/tenants/${alpha.slug}/runs`, { body: { kind: "up" } });
    expect(again.status).toBe(409);
    expect((await call("POST", `/v1/tenants/${alpha.slug}/offboard`)).status).toBe(409);
  });

  it("b. the seed-compatible /api/onboarding/v2 set with a tenant token", async () => {
    await service.createTenant(bravo);
    await service.createTenant(charlie, { body: { onboarding_flow_version: "legacy" } });
    bravo.token = await issueRecordedToken(bravo);
    charlie.token = await issueRecordedToken(charlie);
    const v2 = (method: string, path: string, options: { body?: unknown; token?: string } = {}) =>
      call(method, `/api/onboarding/v2${path}`, { token: options.token ?? bravo.token, body: options.body });

    // Two instances in bravo's account for discovery to find, tagged for the agent.
    bravoInstances = await launchMonitoredInstances(bravo.account, { region: REGION });

    // Before anything is connected.
    const before = await v2("GET", "/progress");
    expect(before.status).toBe(200);
    expect(before.body).toEqual({
      discovery: { status: "pending", progress: 0, assets_found: 0 },
      deployment: { status: expect.any(String), progress: 0, agents_deployed: 0 },
      validation: { status: expect.any(String), progress: expect.any(Number), checks_passed: expect.any(Number) },
      overall_progress: expect.any(Number),
    });
    expect((await v2("GET", "/integrations")).body).toEqual([]);
    expect((await v2("GET", "/assets")).body).toEqual({ assets: [], next_cursor: null, total: 0 });
    expect((await v2("POST", "/assets/refresh")).status).toBe(409);
    const notDeployed = await v2("POST", "/deployment/retry");
    expect(notDeployed.status).toBe(409);
    expect(notDeployed.body.error.code).toBe("tenant_not_deployed");

    // integrations: setup (AWS only), list, delete, set up again.
    // The customer reads the external ID the service generated, creates its role with it; a seed client may echo it.
    bravo.externalId = await tenantExternalIdThroughApi(call, bravo.slug, { token: bravo.token });
    await createBootstrapRole({ accountId: bravo.account, roleName: "MiniXdrBootstrap", externalId: bravo.externalId });
    const aws = { provider: "aws", credentials: { role_arn: bravo.roleArn, external_id: bravo.externalId } };
    const azure = await v2("POST", "/integrations/setup", { body: { provider: "azure", credentials: { tenant_id: "x" } } });
    expect(azure.status).toBe(501);
    expect(azure.body.error.code).toBe("not_implemented");
    const setup = await v2("POST", "/integrations/setup", { body: aws });
    expect(setup.status, setup.text).toBe(200);
    expect(setup.body).toEqual({ provider: "aws", status: "active", configured_at: expect.any(String) });
    expect((await v2("GET", "/integrations")).body).toEqual([
      { provider: "aws", status: "active", configured_at: setup.body.configured_at, regions: [REGION], asset_count: 0 },
    ]);
    expect((await v2("DELETE", "/integrations/aws")).body).toEqual({ provider: "aws", status: "removed" });
    expect((await v2("GET", "/integrations")).body).toEqual([]);
    expect((await v2("DELETE", "/integrations/aws")).status).toBe(404);
    expect((await v2("POST", "/integrations/setup", { body: aws })).status).toBe(200);

    // quick-start: connects and starts the up; the legacy flow is refused with 409 and nothing is connected.
    const legacy = await v2("POST", "/quick-start", { body: aws, token: charlie.token });
    expect(legacy.status).toBe(409);
    expect(legacy.body.error.message).toMatch(/legacy/);
    expect((await v2("GET", "/integrations", { token: charlie.token })).body).toEqual([]);
    const started = await v2("POST", "/quick-start", { body: aws });
    expect(started.status, started.text).toBe(200);
    expect(started.body).toEqual({
      status: "initiated",
      message: expect.any(String),
      estimated_completion: expect.any(String),
      run_id: expect.any(String),
      awaiting_approval: false,
    });
    expect(Number.isNaN(Date.parse(started.body.estimated_completion))).toBe(false);
    runIds.bravoUp = started.body.run_id;
    const run = await service.settledRun(bravo.slug, started.body.run_id, { token: bravo.token });
    expect(run).toMatchObject({ kind: "up", status: "succeeded", change_summary: { create: 8 } });

    // Discovery runs after the up by itself and finds the two instances.
    const progress = await waitFor("bravo's discovery", async () => {
      const current = await v2("GET", "/progress");
      return current.body.discovery.status === "completed" ? current.body : undefined;
    });
    expect(progress.discovery).toEqual({ status: "completed", progress: 100, assets_found: 2 });
    expect(progress.overall_progress).toBeGreaterThanOrEqual(50);
    const assets = await v2("GET", "/assets");
    expect(assets.status).toBe(200);
    expect(assets.body.total).toBe(2);
    expect(assets.body.assets.map((asset: { asset_id: string }) => asset.asset_id).sort()).toEqual(bravoInstances);
    for (const asset of assets.body.assets) expect(asset).toMatchObject({ asset_type: "ec2", provider: "aws", region: REGION, name: "web" });
    expect((await v2("GET", "/assets?type=rds")).body).toEqual({ assets: [], next_cursor: null, total: 0 });
    expect((await v2("GET", "/integrations")).body[0].asset_count).toBe(2);

    const refresh = await v2("POST", "/assets/refresh");
    expect(refresh.status).toBe(202);
    expect(refresh.body).toMatchObject({ status: "initiated", scan_id: expect.any(String), already_active: expect.any(Boolean) });
    await waitFor("bravo's refresh scan", async () => {
      const scans = await call("GET", `/v1/tenants/${bravo.slug}/discovery/scans`, { token: bravo.token });
      const scan = scans.body.scans.find((s: { id: string }) => s.id === refresh.body.scan_id);
      return scan && !["queued", "running"].includes(scan.status) ? scan : undefined;
    });

    // An agent enrolls with the tenant's enrollment token and its instance's signed identity (as the install document would).
    const [enrollment] = await service.sql<{ token_sealed: string; organization_id: number }[]>`
      select e.token_sealed, e.organization_id from enrollment_tokens e join organizations o on o.id = e.organization_id
      where o.slug = ${bravo.slug} and e.revoked_at is null`;
    const enrollmentToken = decryptJson<string>(
      enrollment!.token_sealed,
      { organizationId: enrollment!.organization_id, provider: "enrollment-token" },
      { key: encryptionKey },
    );
    const enroll = (instanceId: string, hostname: string) =>
      call("POST", "/v1/agents/enroll", {
        token: null,
        body: enrollmentBody(enrollmentToken, { accountId: bravo.account, region: REGION, instanceId }, { hostname }),
      });
    const enrolled = await enroll(bravoInstances[0]!, "web-1");
    expect(enrolled.status, enrolled.text).toBe(201);
    expect(enrolled.body).toMatchObject({ instance_id: bravoInstances[0], hostname: "web-1", agent_version: "1.0.0" });
    expect(enrolled.text).not.toContain(enrollmentToken);
    expect(enrolled.body.agent_credential).toMatch(/^mxdr-agent_/);
    const wrongToken = await call("POST", "/v1/agents/enroll", {
      token: null,
      body: enrollmentBody(
        `mxdr-enroll_${randomBytes(32).toString("base64url")}`,
        { accountId: bravo.account, region: REGION, instanceId: bravoInstances[1]! },
        { hostname: "web-2" },
      ),
    });
    expect(wrongToken.status).toBe(401);

    // The deployment and validation endpoints of the v2 set.
    const summary = await v2("GET", "/deployment/summary");
    expect(summary.status, summary.text).toBe(200);
    expect(summary.body).toMatchObject({
      targeted: 2,
      installed: expect.any(Number),
      failed: expect.any(Number),
      checked_in: 1,
      refreshed: expect.any(Boolean),
    });
    expect(summary.body.instances.map((instance: { asset_id: string }) => instance.asset_id).sort()).toEqual(bravoInstances);
    expect(summary.body.instances.find((instance: { asset_id: string }) => instance.asset_id === bravoInstances[0])).toMatchObject({
      agent_status: "checked_in",
      targeted: true,
    });
    const health = await v2("GET", "/deployment/health");
    expect(health.status, health.text).toBe(200);
    // One of the two targeted instances has an agent: degraded until the other checks in.
    expect(health.body).toMatchObject({ status: "degraded", agents_enrolled: 1, agents_healthy: 1, agents_stale: 0, targeted_without_agent: 1 });
    expect(health.body.agents).toEqual([expect.objectContaining({ instance_id: bravoInstances[0], hostname: "web-1", healthy: true })]);
    const retry = await v2("POST", "/deployment/retry");
    expect(retry.status, retry.text).toBe(200);
    expect(retry.body).toEqual({ retried: expect.any(Number), commands: expect.any(Array) });
    expect(retry.body.retried).toBe(retry.body.commands.reduce((n: number, c: { instance_ids: string[] }) => n + c.instance_ids.length, 0));
    const checkNames = ["integration_healthy", "assets_discovered", "agents_targeted", "agents_installed", "agents_checked_in"];
    const validation = await v2("GET", "/validation/summary");
    expect(validation.status, validation.text).toBe(200);
    expect(validation.body.total).toBe(5);
    expect(validation.body.checks.map((check: { name: string }) => check.name)).toEqual(checkNames);
    const statusOf = (body: { checks: { name: string; status: string; reason?: string }[] }) =>
      Object.fromEntries(body.checks.map((check) => [check.name, check.status]));
    expect(statusOf(validation.body)).toMatchObject({ integration_healthy: "passed", assets_discovered: "passed", agents_targeted: "passed" });
    expect(validation.body.checks.at(-1)).toMatchObject({
      name: "agents_checked_in",
      status: expect.stringMatching(/^(pending|failed)$/),
      reason: expect.stringMatching(/^1 of 2 running targeted instances have not checked in/),
    });
    expect(validation.body.passed).toBe(validation.body.checks.filter((check: { status: string }) => check.status === "passed").length);
    for (const check of validation.body.checks) if (check.status !== "passed") expect(check.reason).toEqual(expect.any(String));

    // The second agent checks in: healthy, and the check passes.
    expect((await enroll(bravoInstances[1]!, "web-2")).status).toBe(201);
    const healthy = await v2("GET", "/deployment/health");
    expect(healthy.body).toMatchObject({ status: "healthy", agents_enrolled: 2, agents_healthy: 2, targeted_without_agent: 0 });
    const validated = await v2("GET", "/validation/summary");
    expect(statusOf(validated.body).agents_checked_in).toBe("passed");
    expect((await v2("GET", "/deployment/summary")).body.checked_in).toBe(2);

    // The v2 set serves the same data as /v1 for the token's tenant.
    const v1Assets = await call("GET", `/v1/tenants/${bravo.slug}/assets`);
    const v2Assets = await v2("GET", "/assets");
    expect(v2Assets.body).toEqual({ assets: v1Assets.body.assets, next_cursor: null, total: 2 });
    for (const asset of v2Assets.body.assets) expect(asset.agent_status).toBe("checked_in");
    const v1Validation = await call("GET", `/v1/tenants/${bravo.slug}/validation`);
    expect(v1Validation.body).toEqual(validated.body);
  });

  it("c (after b). cross-tenant access is denied on every route, indistinguishable from a tenant that does not exist", async () => {
    const doc = await call("GET", "/openapi.json", { token: null });
    expect(doc.status).toBe(200);
    const paths = doc.body.paths as Record<
      string,
      Record<string, { requestBody?: { required?: boolean }; parameters?: { name: string; in: string; schema?: { enum?: string[] } }[] }>
    >;
    const methods = ["get", "post", "put", "patch", "delete"];

    // Valid bodies, so the answer is about access, never about the input.
    const validBodies: Record<string, unknown> = {
      "patch /v1/tenants/{slug}": { name: "Pwned" },
      "put /v1/tenants/{slug}/integrations/aws": { bootstrap_role_arn: `arn:aws:iam::${bravo.account}:role/MiniXdrBootstrap` },
      "post /v1/tenants/{slug}/tokens": { name: "stolen" },
      "post /v1/tenants/{slug}/runs": { kind: "preview" },
      "put /v1/tenants/{slug}/integrations/aws/organization": { management_account_id: bravo.account },
      "post /v1/tenants/{slug}/accounts/{account_id}/runs": { kind: "preview" },
      "post /v1/tenants/{slug}/webhooks": { url: "https://hooks.example.com/stolen", events: ["run.failed"] },
      "post /v1/tenants/{slug}/invitations": { email: "mallory@example.com", role: "admin" },
      "post /api/onboarding/v2/quick-start": { provider: "aws", credentials: { role_arn: charlie.roleArn } },
      "post /api/onboarding/v2/integrations/setup": { provider: "aws", credentials: { role_arn: charlie.roleArn } },
    };
    const paramValue = (name: string, parameter?: { schema?: { enum?: string[] } }) => {
      if (name === "runId") return runIds.bravoUp!;
      if (name === "provider") return "aws";
      if (name === "id") return randomUUID();
      if (name === "instance_id") return "i-0123456789abcdef0";
      if (name === "account_id") return bravo.account;
      if (name === "tokenId") return "1";
      if (name === "person_id" || name === "invitation_id") return "1";
      return parameter?.schema?.enum?.[0] ?? "x";
    };
    const concrete = (path: string, slug: string, operation: { parameters?: { name: string; in: string; schema?: { enum?: string[] } }[] }) =>
      path.replace(/\{(\w+)\}/g, (_, name: string) =>
        name === "slug"
          ? slug
          : encodeURIComponent(
              paramValue(
                name,
                operation.parameters?.find((p) => p.name === name && p.in === "path"),
              ),
            ),
      );

    const victimBefore = await call("GET", `/v1/tenants/${bravo.slug}`);
    const victimIntegrationBefore = await call("GET", `/v1/tenants/${bravo.slug}/integrations/aws`);
    const [{ runs: victimRunsBefore } = { runs: -1 }] = await service.sql<{ runs: number }[]>`
      select count(*)::int as runs from runs r join organizations o on o.id = r.organization_id where o.slug = ${bravo.slug}`;

    const tenantRoutes: string[] = [];
    const adminOnly: string[] = [];
    for (const [path, item] of Object.entries(paths)) {
      if (!path.startsWith("/v1/tenants/{slug}")) continue;
      for (const method of methods) {
        const operation = item[method];
        if (!operation) continue;
        const key = `${method} ${path}`;
        tenantRoutes.push(key);
        const body = validBodies[key];
        if (operation.requestBody?.required && body === undefined) throw new Error(`add a valid example body for ${key} to this test`);
        const attempt = await call(method.toUpperCase(), concrete(path, bravo.slug, operation), { token: charlie.token, body });
        const unknown = await call(method.toUpperCase(), concrete(path, NO_SUCH_TENANT, operation), { token: charlie.token, body });
        expect(attempt.status, `${key} with another tenant's token`).not.toBeLessThan(400);
        // Exactly the answer for a tenant that does not exist: nothing leaks.
        expect(attempt.status, key).toBe(unknown.status);
        expect(attempt.body?.error?.code, key).toBe(unknown.body?.error?.code);
        // Tenant scoping comes first: another tenant is invisible on every route, admin-only ones included.
        expect(attempt.status, key).toBe(404);
        expect(attempt.body.error.code, key).toBe("not_found");
        if (
          [
            "post /v1/tenants/{slug}/offboard",
            "post /v1/tenants/{slug}/tokens",
            "delete /v1/tenants/{slug}/agents/{instance_id}/enrollment",
          ].includes(key)
        ) {
          const own = await call(method.toUpperCase(), concrete(path, charlie.slug, operation), { token: charlie.token, body });
          expect(own.status, `${key} is admin-only: 403 for the token's own tenant`).toBe(403);
          adminOnly.push(key);
        }
        expect(attempt.text, key).not.toContain(bravo.account);
      }
    }
    // Not in the document: the unsupported providers' catch-all.
    for (const method of ["GET", "PUT", "DELETE"]) {
      const attempt = await call(method, `/v1/tenants/${bravo.slug}/integrations/azure`, {
        token: charlie.token,
        body: method === "PUT" ? {} : undefined,
      });
      expect(attempt.status, `${method} integrations/azure`).toBe(404);
    }
    expect(tenantRoutes).toEqual(
      expect.arrayContaining([
        "get /v1/tenants/{slug}",
        "patch /v1/tenants/{slug}",
        "put /v1/tenants/{slug}/integrations/aws",
        "get /v1/tenants/{slug}/integrations/aws",
        "delete /v1/tenants/{slug}/integrations/aws",
        "post /v1/tenants/{slug}/tokens",
        "post /v1/tenants/{slug}/runs",
        "get /v1/tenants/{slug}/runs",
        "get /v1/tenants/{slug}/runs/{runId}",
        "get /v1/tenants/{slug}/runs/{runId}/events",
        "post /v1/tenants/{slug}/offboard",
        "get /v1/tenants/{slug}/progress",
        "get /v1/tenants/{slug}/assets",
        "get /v1/tenants/{slug}/discovery/scans",
        "post /v1/tenants/{slug}/discovery/scans",
        "get /v1/tenants/{slug}/deployment",
        "post /v1/tenants/{slug}/deployment/retry",
        "get /v1/tenants/{slug}/deployment/health",
        "get /v1/tenants/{slug}/validation",
      ]),
    );
    expect(adminOnly.sort()).toEqual([
      "delete /v1/tenants/{slug}/agents/{instance_id}/enrollment",
      "post /v1/tenants/{slug}/offboard",
      "post /v1/tenants/{slug}/tokens",
    ]);

    // Browser sessions are scoped like tokens: charlie's admin sees bravo nowhere (the same 404), and charlie's viewer
    // is refused every change to charlie's own tenant by the service (403), whatever the route.
    const adminSession = await sessionHeaders(charlie.slug, "admin");
    const viewerSession = await sessionHeaders(charlie.slug, "viewer");
    const refusedToViewer: string[] = [];
    for (const [path, item] of Object.entries(paths)) {
      if (!path.startsWith("/v1/tenants/{slug}")) continue;
      for (const method of methods) {
        const operation = item[method];
        if (!operation) continue;
        const key = `${method} ${path}`;
        const body = validBodies[key];
        const attempt = await call(method.toUpperCase(), concrete(path, bravo.slug, operation), { token: null, headers: adminSession, body });
        expect({ key, status: attempt.status, code: attempt.body?.error?.code }).toEqual({ key, status: 404, code: "not_found" });
        if (method === "get") continue;
        const own = await call(method.toUpperCase(), concrete(path, charlie.slug, operation), { token: null, headers: viewerSession, body });
        // A provider not supported yet changes nothing for anyone (501).
        const expected = own.body?.error?.code === "not_implemented" ? 501 : 403;
        expect({ key, status: own.status }, `${key}: ${own.text}`).toEqual({ key, status: expected });
        refusedToViewer.push(key);
      }
    }
    expect(refusedToViewer.length).toBeGreaterThanOrEqual(20);

    // Nothing of the victim changed.
    expect((await call("GET", `/v1/tenants/${bravo.slug}`)).body).toEqual(victimBefore.body);
    expect((await call("GET", `/v1/tenants/${bravo.slug}/integrations/aws`)).body).toEqual(victimIntegrationBefore.body);
    const [{ runs: victimRunsAfter } = { runs: -2 }] = await service.sql<{ runs: number }[]>`
      select count(*)::int as runs from runs r join organizations o on o.id = r.organization_id where o.slug = ${bravo.slug}`;
    expect(victimRunsAfter).toBe(victimRunsBefore);

    // /api/onboarding/v2: an admin token is refused (403) on every route; a tenant token sees only its own tenant.
    const v2Routes: string[] = [];
    for (const [path, item] of Object.entries(paths)) {
      if (!path.startsWith("/api/onboarding/v2/")) continue;
      for (const method of methods) {
        const operation = item[method];
        if (!operation) continue;
        const key = `${method} ${path}`;
        v2Routes.push(key);
        const body = validBodies[key];
        if (operation.requestBody?.required && body === undefined) throw new Error(`add a valid example body for ${key} to this test`);
        const asAdmin = await call(method.toUpperCase(), concrete(path, "", operation), { body });
        expect(asAdmin.status, `${key} with the admin token`).toBe(403);
        expect(asAdmin.body.error.code, key).toBe("forbidden");
        if (method === "get") {
          const own = await call("GET", concrete(path, "", operation), { token: bravo.token });
          const other = await call("GET", concrete(path, "", operation), { token: charlie.token });
          expect(own.status, key).toBe(200);
          expect(other.status, key).toBe(200);
          for (const leak of [bravo.slug, bravo.account, ...bravoInstances]) expect(other.text, key).not.toContain(leak);
        }
      }
    }
    expect(v2Routes.sort()).toEqual(
      [
        "get /api/onboarding/v2/assets",
        "get /api/onboarding/v2/deployment/health",
        "get /api/onboarding/v2/deployment/summary",
        "get /api/onboarding/v2/integrations",
        "get /api/onboarding/v2/progress",
        "get /api/onboarding/v2/validation/summary",
        "delete /api/onboarding/v2/integrations/{provider}",
        "post /api/onboarding/v2/assets/refresh",
        "post /api/onboarding/v2/deployment/retry",
        "post /api/onboarding/v2/integrations/setup",
        "post /api/onboarding/v2/quick-start",
      ].sort(),
    );
    // The admin's attempts changed nothing either.
    expect((await call("GET", `/v1/tenants/${bravo.slug}/integrations/aws`)).body).toEqual(victimIntegrationBefore.body);
  });

  it("d (after b). two concurrent run requests for one tenant: one 202, one 409 naming the blocking run; with queue: true both run, one after the other", async () => {
    const stackName = `tenant-${bravo.slug}`;
    const countRuns = async () => (await service.sql<{ n: number }[]>`select count(*)::int as n from runs where stack_name = ${stackName}`)[0]!.n;
    const runsBefore = await countRuns();
    const updatesBefore = await stackHistoryLength(service.workspace, stackName);

    const answers = await Promise.all([0, 1].map(() => call("POST", `/v1/tenants/${bravo.slug}/runs`, { body: { kind: "up" } })));
    expect(answers.map((answer) => answer.status).sort()).toEqual([202, 409]);
    const accepted = answers.find((answer) => answer.status === 202)!;
    const refused = answers.find((answer) => answer.status === 409)!;
    expect(refused.body.error).toMatchObject({ code: "run_in_progress", blocking_run_id: accepted.body.run_id });
    const upRun = await service.settledRun(bravo.slug, accepted.body.run_id);
    expect(upRun.status).toBe("succeeded");
    expect(await countRuns()).toBe(runsBefore + 1);
    expect(await stackHistoryLength(service.workspace, stackName)).toBe(updatesBefore + 1);

    // queue: true waits its turn instead.
    const queued = await Promise.all([0, 1].map(() => call("POST", `/v1/tenants/${bravo.slug}/runs`, { body: { kind: "up", queue: true } })));
    expect(queued.map((answer) => answer.status)).toEqual([202, 202]);
    expect(queued[0]!.body.run_id).not.toBe(queued[1]!.body.run_id);
    const [first, second] = await Promise.all(queued.map((answer) => service.settledRun(bravo.slug, answer.body.run_id)));
    expect([first.status, second.status]).toEqual(["succeeded", "succeeded"]);
    const [earlier, later] = [first, second].sort((a, b) => Date.parse(a.started_at) - Date.parse(b.started_at));
    expect(Date.parse(later.started_at)).toBeGreaterThanOrEqual(Date.parse(earlier.finished_at));
    expect(await countRuns()).toBe(runsBefore + 3);
    expect(await stackHistoryLength(service.workspace, stackName)).toBe(updatesBefore + 3);
  });

  it("e. the server killed mid-up: on restart the run is interrupted, nothing recorded is lost, a new up succeeds", async () => {
    await service.createTenant(echo);
    expect((await service.connectAws(echo)).status).toBe(201);
    const stackName = `tenant-${echo.slug}`;

    // From now on the service's AWS calls are held (STS aside), so the up stops at its first resource.
    const runId = await service.upHeldMidCall(echo.slug);
    runIds.echoInterrupted = runId;
    const running = await call("GET", `/v1/tenants/${echo.slug}/runs/${runId}`);
    expect(running.body.status).toBe("running");
    const progress = await call("GET", `/v1/tenants/${echo.slug}/progress`);
    expect(progress.body.stack).toMatchObject({ status: "in_progress", run_id: runId });

    const rowsBefore = await service.sql<{ run_id: string; seq: number }[]>`select run_id, seq from run_events order by run_id, seq`;
    const runsBefore = await service.sql<{ id: string }[]>`select id from runs order by id`;
    const first = service.server;
    expect(await stopServer(first, "SIGKILL")).toBeNull();
    expect(first.child.signalCode).toBe("SIGKILL");

    const second = await service.start();
    expect(second.stderr()).toContain(`recovery: marked 1 interrupted run(s): ${runId}`);
    service.proxy.hold(null);

    const interrupted = await call("GET", `/v1/tenants/${echo.slug}/runs/${runId}`);
    expect(interrupted.body).toMatchObject({ status: "interrupted", error: { kind: "Interrupted" } });
    expect(interrupted.body.finished_at).toEqual(expect.any(String));
    // The create that was in flight is named, so an operator knows what may exist in the account untracked.
    expect(interrupted.body.error.message).toMatch(/unfinished operation\(s\) were dropped/);
    expect(interrupted.body.error.diagnostics).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ severity: "warning", message: expect.stringMatching(/^pending creat/), urn: expect.stringContaining("aws:") }),
      ]),
    );
    expect(await pulumiProcessesOf(stackName)).toEqual([]);
    const exported = await stackExport(stackName);
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(exported.stdout).deployment.pending_operations ?? []).toEqual([]);
    const ended = await readEventStream(`${second.baseUrl}/v1/tenants/${echo.slug}/runs/${runId}/events`, { token: adminToken });
    responses.push(ended.text);
    expect(JSON.parse(ended.events.at(-1)!.data)).toEqual({ run_id: runId, status: "interrupted" });

    // No run and no event recorded before the crash was lost.
    const rowsAfter = await service.sql<{ run_id: string; seq: number }[]>`select run_id, seq from run_events order by run_id, seq`;
    const runsAfter = await service.sql<{ id: string }[]>`select id from runs order by id`;
    expect(rowsAfter.length).toBeGreaterThanOrEqual(rowsBefore.length);
    expect(runsAfter.length).toBeGreaterThanOrEqual(runsBefore.length);
    expect(rowsAfter.map((row) => `${row.run_id}/${row.seq}`)).toEqual(expect.arrayContaining(rowsBefore.map((row) => `${row.run_id}/${row.seq}`)));
    expect(runsAfter.map((row) => row.id)).toEqual(expect.arrayContaining(runsBefore.map((row) => row.id)));

    // Nothing is retried by itself; a new up does the whole job.
    const again = await call("POST", `/v1/tenants/${echo.slug}/runs`, { body: { kind: "up" } });
    expect(again.status, again.text).toBe(202);
    const done = await service.settledRun(echo.slug, again.body.run_id);
    expect(done.error).toBeNull();
    // The stack, its component and the provider were recorded before the crash; the five AWS resources, whose
    // calls were held, were never made, so they are created now (no "already exists": nothing leaked).
    expect(done).toMatchObject({ status: "succeeded", change_summary: { create: 5 } });
    expect(Object.values<number>(done.change_summary).reduce((a, b) => a + b, 0)).toBe(8);
    expect(await roleExists(echo.account, `MiniXdrAccess-${echo.slug}`)).toBe(true);
    const [{ n } = { n: -1 }] = await service.sql<{ n: number }[]>`select count(*)::int as n from runs where stack_name = ${stackName}`;
    expect(n).toBe(2);
  });

  // ----------------------------------------------------------------------------------------------------------------
  // f. Bad input

  interface BadInput {
    name: string;
    method: string;
    path: () => string;
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
    token?: () => string | null;
    /** Every field the answer must name (exactly, sorted). */
    fields: string[];
    status?: number;
    code?: string;
  }
  const tenantPath =
    (rest = "") =>
    () =>
      `/v1/tenants/${bravo.slug}${rest}`;
  const charlieToken = () => charlie.token;
  const badInputs: BadInput[] = [
    // tenants
    { name: "tenant: bad slug", method: "POST", path: () => "/v1/tenants", body: { slug: "Bad Slug!", name: "x" }, fields: ["slug"] },
    {
      name: "tenant: unknown field",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: "ok-slug", name: "x", plan: "gold" },
      fields: ["plan"],
    },
    {
      name: "tenant: wrong types",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: 42, name: ["x"], auto_discovery_enabled: "yes" },
      fields: ["slug", "name", "auto_discovery_enabled"],
    },
    {
      name: "tenant: bad region",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: "ok-slug", name: "x", integration_settings: { regions: ["moon-base-1"] } },
      fields: ["integration_settings.regions.0"],
    },
    {
      name: "tenant: bad home region",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: "ok-slug", name: "x", integration_settings: { home_region: "US-EAST-1" } },
      fields: ["integration_settings.home_region"],
    },
    {
      name: "tenant: unknown setting",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: "ok-slug", name: "x", integration_settings: { colour: "red" } },
      fields: ["integration_settings.colour"],
    },
    { name: "tenant list: bad offset", method: "GET", path: () => "/v1/tenants?offset=-1", fields: ["query.offset"] },
    { name: "tenant get: bad slug", method: "GET", path: () => "/v1/tenants/Bad_Slug", fields: ["param.slug"] },
    {
      name: "tenant patch: bad region",
      method: "PATCH",
      path: tenantPath(),
      body: { integration_settings: { regions: ["us-east-1", "nowhere"] } },
      fields: ["integration_settings.regions.1"],
    },
    { name: "tenant patch: unknown field", method: "PATCH", path: tenantPath(), body: { slug: "renamed" }, fields: ["slug"] },
    {
      name: "tenant patch: wrong type",
      method: "PATCH",
      path: tenantPath(),
      body: { auto_discovery_enabled: 1 },
      fields: ["auto_discovery_enabled"],
    },
    // integrations
    {
      name: "aws: bad role ARN",
      method: "PUT",
      path: tenantPath("/integrations/aws"),
      body: { bootstrap_role_arn: "arn:aws:iam::12:user/x" },
      fields: ["bootstrap_role_arn"],
    },
    {
      name: "aws: short external ID",
      method: "PUT",
      path: tenantPath("/integrations/aws"),
      body: { bootstrap_role_arn: bravo.roleArn, external_id: "short" },
      fields: ["external_id"],
    },
    {
      name: "aws: unknown field",
      method: "PUT",
      path: tenantPath("/integrations/aws"),
      body: { bootstrap_role_arn: bravo.roleArn, secret_key: "x" },
      fields: ["secret_key"],
    },
    { name: "aws: bad slug", method: "GET", path: () => "/v1/tenants/-bad-/integrations/aws", fields: ["param.slug"] },
    // tokens
    { name: "token: empty name", method: "POST", path: tenantPath("/tokens"), body: { name: " " }, fields: ["name"] },
    { name: "token: wrong type", method: "POST", path: tenantPath("/tokens"), body: { name: 7 }, fields: ["name"] },
    // runs
    { name: "run: bad kind", method: "POST", path: tenantPath("/runs"), body: { kind: "deploy" }, fields: ["kind"] },
    { name: "run: missing kind", method: "POST", path: tenantPath("/runs"), body: {}, fields: ["kind"] },
    { name: "run: wrong type of queue", method: "POST", path: tenantPath("/runs"), body: { kind: "up", queue: "yes" }, fields: ["queue"] },
    { name: "run: unknown field", method: "POST", path: tenantPath("/runs"), body: { kind: "up", force: true }, fields: ["force"] },
    {
      name: "run: plan_run_id not a uuid",
      method: "POST",
      path: tenantPath("/runs"),
      body: { kind: "up", plan_run_id: "plan-1" },
      fields: ["plan_run_id"],
    },
    {
      name: "run: plan_run_id on a preview",
      method: "POST",
      path: tenantPath("/runs"),
      body: { kind: "preview", plan_run_id: randomUUID() },
      fields: ["plan_run_id"],
    },
    { name: "run: bad slug", method: "POST", path: () => "/v1/tenants/UPPER/runs", body: { kind: "up" }, fields: ["param.slug"] },
    { name: "runs: bad limit", method: "GET", path: tenantPath("/runs?limit=1000"), fields: ["query.limit"] },
    { name: "runs: bad kind filter", method: "GET", path: tenantPath("/runs?kind=deploy"), fields: ["query.kind"] },
    { name: "run: bad run id", method: "GET", path: tenantPath("/runs/not-a-uuid"), fields: ["param.runId"] },
    { name: "run events: bad run id", method: "GET", path: tenantPath("/runs/123/events"), fields: ["param.runId"] },
    { name: "offboard: bad slug", method: "POST", path: () => "/v1/tenants/a/offboard", fields: ["param.slug"] },
    // onboarding
    { name: "progress: bad slug", method: "GET", path: () => "/v1/tenants/x_y/progress", fields: ["param.slug"] },
    { name: "assets: bad type", method: "GET", path: tenantPath("/assets?type=EC2%20instances"), fields: ["query.type"] },
    { name: "assets: bad include_removed", method: "GET", path: tenantPath("/assets?include_removed=maybe"), fields: ["query.include_removed"] },
    { name: "scans: bad slug", method: "POST", path: () => "/v1/tenants/9lives/discovery/scans", fields: ["param.slug"] },
    { name: "deployment: bad refresh", method: "GET", path: tenantPath("/deployment?refresh=maybe"), fields: ["query.refresh"] },
    { name: "deployment retry: bad slug", method: "POST", path: () => "/v1/tenants/no/deployment/retry", fields: ["param.slug"] },
    { name: "validation: bad slug", method: "GET", path: () => "/v1/tenants/UP/validation", fields: ["param.slug"] },
    // headers and bodies
    {
      name: "bad Idempotency-Key (too long)",
      method: "POST",
      path: tenantPath("/runs"),
      body: { kind: "preview" },
      headers: { "idempotency-key": "k".repeat(256) },
      fields: ["header.idempotency-key"],
    },
    {
      name: "bad Idempotency-Key (space)",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: "ok-slug", name: "x" },
      headers: { "idempotency-key": "two words" },
      fields: ["header.idempotency-key"],
    },
    { name: "malformed JSON", method: "POST", path: tenantPath("/runs"), raw: '{"kind": "up"', fields: [], code: "invalid_json" },
    {
      name: "oversize body",
      method: "POST",
      path: tenantPath("/runs"),
      raw: JSON.stringify({ kind: "up", pad: "x".repeat(70 * 1024) }),
      fields: [],
      status: 413,
      code: "payload_too_large",
    },
    // v2
    {
      name: "v2 setup: bad provider",
      method: "POST",
      path: () => "/api/onboarding/v2/integrations/setup",
      token: charlieToken,
      body: { provider: "oracle", credentials: {} },
      fields: ["provider"],
    },
    {
      name: "v2 setup: bad role ARN",
      method: "POST",
      path: () => "/api/onboarding/v2/integrations/setup",
      token: charlieToken,
      body: { provider: "aws", credentials: { role_arn: "nope" } },
      fields: ["credentials.role_arn"],
    },
    {
      name: "v2 setup: unknown credential field",
      method: "POST",
      path: () => "/api/onboarding/v2/integrations/setup",
      token: charlieToken,
      body: { provider: "aws", credentials: { role_arn: charlie.roleArn, password: "x" } },
      fields: ["credentials.password"],
    },
    {
      name: "v2 setup: wrong type",
      method: "POST",
      path: () => "/api/onboarding/v2/integrations/setup",
      token: charlieToken,
      body: { provider: "aws", credentials: "arn" },
      fields: ["credentials"],
    },
    {
      name: "v2 quick-start: unknown field",
      method: "POST",
      path: () => "/api/onboarding/v2/quick-start",
      token: charlieToken,
      body: { provider: "aws", credentials: { role_arn: charlie.roleArn }, region: "us-east-1" },
      fields: ["region"],
    },
    {
      name: "v2 delete: bad provider",
      method: "DELETE",
      path: () => "/api/onboarding/v2/integrations/oracle",
      token: charlieToken,
      fields: ["param.provider"],
    },
    { name: "v2 assets: bad type", method: "GET", path: () => "/api/onboarding/v2/assets?type=A%20B", token: charlieToken, fields: ["query.type"] },
    {
      name: "v2 deployment summary: bad refresh",
      method: "GET",
      path: () => "/api/onboarding/v2/deployment/summary?refresh=1",
      token: charlieToken,
      fields: ["query.refresh"],
    },
    {
      name: "v2: bad Idempotency-Key",
      method: "POST",
      path: () => "/api/onboarding/v2/assets/refresh",
      token: charlieToken,
      headers: { "idempotency-key": "tab\tin key" },
      fields: ["header.idempotency-key"],
    },
    {
      name: "v2: oversize body",
      method: "POST",
      path: () => "/api/onboarding/v2/integrations/setup",
      token: charlieToken,
      raw: JSON.stringify({ provider: "aws", credentials: { pad: "x".repeat(70 * 1024) } }),
      fields: [],
      status: 413,
      code: "payload_too_large",
    },
    // agents (enrollment token in the body, no bearer token)
    {
      name: "agent enroll: missing fields",
      method: "POST",
      path: () => "/v1/agents/enroll",
      token: () => null,
      body: {},
      fields: ["enrollment_token", "identity_document", "identity_signature", "hostname", "agent_version"],
    },
    {
      name: "agent enroll: bad signature, version and credential",
      method: "POST",
      path: () => "/v1/agents/enroll",
      token: () => null,
      body: {
        enrollment_token: "x".repeat(40),
        identity_document: "{}",
        identity_signature: "not base64!",
        hostname: "h",
        agent_version: "latest",
        agent_credential: "guess",
      },
      fields: ["identity_signature", "agent_version", "agent_credential"],
    },
    {
      name: "agent enroll: an instance id is not taken on trust",
      method: "POST",
      path: () => "/v1/agents/enroll",
      token: () => null,
      body: { enrollment_token: "x".repeat(40), instance_id: "i-deadbeef-not-real", hostname: "h", agent_version: "1.0.0" },
      fields: ["identity_document", "identity_signature", "instance_id"],
    },
    {
      name: "agent heartbeat: unknown field",
      method: "POST",
      path: () => "/v1/agents/heartbeat",
      token: () => null,
      body: { agent_credential: `mxdr-agent_${"x".repeat(43)}`, instance_id: "i-1", cpu: 3 },
      fields: ["cpu"],
    },
    {
      name: "agent heartbeat: the enrollment token is no credential",
      method: "POST",
      path: () => "/v1/agents/heartbeat",
      token: () => null,
      body: { enrollment_token: "x".repeat(40), instance_id: "i-1" },
      fields: ["agent_credential", "enrollment_token"],
    },
  ];

  it.each(badInputs)("f (after b). 400 naming the bad field: $name", async (testCase) => {
    const token = testCase.token ? testCase.token() : adminToken;
    const response = await call(testCase.method, testCase.path(), { token, body: testCase.body, raw: testCase.raw, headers: testCase.headers });
    expect(response.status, response.text).toBe(testCase.status ?? 400);
    expect(response.body.error.code).toBe(testCase.code ?? "validation_failed");
    if (testCase.fields.length > 0) {
      expect(response.body.error.fields.map((field: { field: string }) => field.field).sort()).toEqual([...testCase.fields].sort());
      for (const field of response.body.error.fields) expect(field.message).toEqual(expect.any(String));
    }
    if (token) expect(response.text).not.toContain(token);
  });

  it("f (after a, b, e). every route of /openapi.json with a body or parameters: bad slug, unknown field, wrong types, oversize body, bad Idempotency-Key", async () => {
    const doc = await call("GET", "/openapi.json", { token: null });
    const paths = doc.body.paths as Record<string, Record<string, any>>;
    const components = doc.body.components?.schemas ?? {};
    const resolve = (schema: any): any => (schema?.$ref ? resolve(components[schema.$ref.split("/").pop()]) : schema);
    const wrongValue = (schema: any): unknown => {
      const s = resolve(schema) ?? {};
      const type = s.type ?? (s.enum ? typeof s.enum[0] : s.anyOf ? "anyOf" : undefined);
      if (type === "string") return 12345;
      if (type === "boolean") return "yes";
      if (type === "number" || type === "integer") return "many";
      if (type === "array") return "not-a-list";
      if (type === "object") return "not-an-object";
      return [{ unexpected: true }];
    };
    const exampleBodies: Record<string, unknown> = {
      "post /v1/tenants": { slug: "ok-slug", name: "x" },
      "patch /v1/tenants/{slug}": { name: "x" },
      "put /v1/tenants/{slug}/integrations/aws": { bootstrap_role_arn: bravo.roleArn },
      "post /v1/tenants/{slug}/tokens": { name: "x" },
      "post /v1/tokens": { name: "x" },
      "post /v1/tenants/{slug}/runs": { kind: "preview" },
      "put /v1/tenants/{slug}/integrations/aws/organization": { management_account_id: "123456789012" },
      "post /v1/tenants/{slug}/accounts/{account_id}/runs": { kind: "preview" },
      "post /v1/tenants/{slug}/webhooks": { url: "https://hooks.example.com/x", events: ["run.failed"] },
      "post /v1/tenants/{slug}/invitations": { email: "x@example.com", role: "viewer" },
      "post /v1/webhooks": { url: "https://hooks.example.com/x", events: ["run.failed"] },
      "post /v1/fleet/runs": { kind: "preview", tenants: { slugs: [NO_SUCH_TENANT] } },
      // AWS credentials are part of the body's schema (a union on provider): valid ones, so only the probed field is wrong.
      "post /api/onboarding/v2/quick-start": { provider: "aws", credentials: { role_arn: charlie.roleArn } },
      "post /api/onboarding/v2/integrations/setup": { provider: "aws", credentials: { role_arn: charlie.roleArn } },
      "post /v1/agents/enroll": enrollmentBody("x".repeat(40), { accountId: "123456789012", region: REGION, instanceId: "i-1" }),
      "post /v1/agents/heartbeat": { agent_credential: `mxdr-agent_${"x".repeat(43)}`, instance_id: "i-1" },
      "post /v1/credentials/rotation": {},
    };
    let bodyRoutes = 0;
    let slugRoutes = 0;
    let idempotentRoutes = 0;
    for (const [path, item] of Object.entries(paths)) {
      for (const method of ["get", "post", "put", "patch", "delete"]) {
        const operation = item[method];
        if (!operation) continue;
        const key = `${method} ${path}`;
        const v2 = path.startsWith("/api/onboarding/v2/");
        const token = path.startsWith("/v1/agents/") ? null : v2 ? charlie.token : adminToken;
        // A valid slug of no tenant: if a check were missing, nothing would change.
        const concrete = (slug: string) =>
          path.replace(/\{(\w+)\}/g, (_, name: string) =>
            name === "slug"
              ? slug
              : name === "runId" || name === "id"
                ? randomUUID()
                : name === "provider"
                  ? "aws"
                  : name === "account_id"
                    ? "123456789012"
                    : "x",
          );
        const schema = resolve(operation.requestBody?.content?.["application/json"]?.schema);
        const example = exampleBodies[key];
        if (schema && example === undefined) throw new Error(`add an example body for ${key} to this test`);
        const send = (url: string, options: { body?: unknown; raw?: string; headers?: Record<string, string> } = {}) =>
          call(method.toUpperCase(), url, { token, ...options });

        if (path.includes("{slug}")) {
          slugRoutes++;
          const bad = await send(concrete("Not_A_Slug"), { body: example });
          expect(bad.status, `${key}: bad slug`).toBe(400);
          expect(
            bad.body.error.fields.map((f: { field: string }) => f.field),
            key,
          ).toContain("param.slug");
        }
        if (schema) {
          bodyRoutes++;
          const url = concrete(NO_SUCH_TENANT);
          const unknown = await send(url, { body: { ...(example as object), unexpected_field: 1 } });
          expect(unknown.status, `${key}: unknown field`).toBe(400);
          expect(
            unknown.body.error.fields.map((f: { field: string }) => f.field),
            key,
          ).toEqual(["unexpected_field"]);
          for (const [property, propertySchema] of Object.entries<any>(schema.properties ?? {})) {
            const wrong = await send(url, { body: { ...(example as object), [property]: wrongValue(propertySchema) } });
            expect(wrong.status, `${key}: wrong type of ${property}`).toBe(400);
            expect(
              wrong.body.error.fields.map((f: { field: string }) => f.field),
              `${key}: wrong type of ${property}`,
            ).toContain(property);
          }
          const huge = await send(url, { raw: JSON.stringify({ ...(example as object), pad: "x".repeat(65 * 1024) }) });
          expect(huge.status, `${key}: oversize body`).toBe(413);
          expect(huge.body.error.code).toBe("payload_too_large");
          const malformed = await send(url, { raw: "{" });
          expect(malformed.status, `${key}: malformed JSON`).toBe(400);
        }
        if (method === "post" && operation.security) {
          idempotentRoutes++;
          const badKey = await send(concrete(NO_SUCH_TENANT), { body: example, headers: { "idempotency-key": "bad key" } });
          expect(badKey.status, `${key}: bad Idempotency-Key`).toBe(400);
          expect(badKey.body.error.fields, key).toEqual([{ field: "header.idempotency-key", message: expect.any(String) }]);
        }
      }
    }
    expect(slugRoutes).toBeGreaterThanOrEqual(19);
    expect(bodyRoutes).toBeGreaterThanOrEqual(9);
    expect(idempotentRoutes).toBeGreaterThanOrEqual(10);
    // None of that created anything.
    const tenants = await call("GET", "/v1/tenants");
    expect(tenants.body.tenants.map((t: { slug: string }) => t.slug).sort()).toEqual([alpha.slug, bravo.slug, charlie.slug, echo.slug].sort());
  });

  it("g (after a–f). no secret in any response, log line, database row or stack state", async () => {
    // Secrets the test did not choose: the external IDs and enrollment tokens as stored (decrypted with the key).
    const credentials = await service.sql<{ organization_id: number; credential_data: string }[]>`
      select organization_id, credential_data from integration_credentials where provider = 'aws'`;
    const externalIds = credentials.map(
      (row) => decryptJson<{ externalId: string }>(row.credential_data, awsCredentialContext(row.organization_id), { key: encryptionKey }).externalId,
    );
    expect(externalIds).toEqual(expect.arrayContaining([alpha.externalId, bravo.externalId, echo.externalId]));
    const enrollment = await service.sql<
      { organization_id: number; token_sealed: string }[]
    >`select organization_id, token_sealed from enrollment_tokens`;
    const enrollmentTokens = enrollment.map((row) =>
      decryptJson<string>(row.token_sealed, { organizationId: row.organization_id, provider: "enrollment-token" }, { key: encryptionKey }),
    );
    expect(enrollmentTokens.length).toBeGreaterThanOrEqual(3);
    const tenantTokens = [...tokenShownIn.keys()];
    expect(tenantTokens).toHaveLength(2);
    const secrets: Record<string, string> = {
      "admin token": adminToken,
      "encryption key (base64)": encryptionKey,
      "encryption key (hex)": encryptionKeyBytes.toString("hex"),
      "encryption key (base64url)": encryptionKeyBytes.toString("base64url"),
      "Pulumi passphrase": service.workspace.passphrase,
      ...Object.fromEntries(tenantTokens.map((token, i) => [`tenant token ${i}`, token])),
      ...Object.fromEntries(externalIds.map((id, i) => [`external ID ${i}`, id])),
      ...Object.fromEntries(enrollmentTokens.map((token, i) => [`enrollment token ${i}`, token])),
    };
    const assertAbsent = (where: string, text: string) => {
      for (const [name, secret] of Object.entries(secrets)) expect(text.includes(secret), `${name} found in ${where}`).toBe(false);
    };

    // Responses: a tenant token shows once, in the answer that issued it, and nowhere else.
    for (const token of tenantTokens) {
      const showing = tokenShownIn.get(token)!;
      expect(responses.filter((text) => text.includes(token))).toEqual([showing]);
    }
    const shown = new Set(tokenShownIn.values());
    // The external IDs are the tenants' to read, for their roles' trust policies (GET .../integrations/aws/external-id).
    const externalIdAnswers = (text: string) => text.includes('"bootstrap_role_name"');
    assertAbsent("responses", responses.filter((text) => !shown.has(text) && !externalIdAnswers(text)).join("\n"));
    expect(responses.length).toBeGreaterThan(300);

    // Logs of every server process.
    assertAbsent("server logs", service.servers.map((s) => s.stdout() + s.stderr()).join("\n"));

    // Every row of every table (ours, the migrations', pg-boss's), as text.
    const tables = await service.sql<{ table_schema: string; table_name: string }[]>`
      select table_schema, table_name from information_schema.tables
      where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema')`;
    let dump = "";
    for (const { table_schema, table_name } of tables) {
      const rows = await service.sql.unsafe(`select * from "${table_schema}"."${table_name}"`);
      dump += `${table_schema}.${table_name}\n${JSON.stringify(rows)}\n`;
    }
    expect(tables.map((t) => t.table_name)).toEqual(
      expect.arrayContaining(["organizations", "runs", "run_events", "api_tokens", "audit_log", "enrollment_tokens"]),
    );
    expect(dump).toContain(runIds.bravoUp); // the dump is real
    expect(dump).toContain(bravo.roleArn);
    assertAbsent("the database", dump);

    // The stacks' state, exported with the CLI (secrets stay ciphertext), and every file of the backend and project.
    for (const t of [bravo, echo]) {
      const exported = await stackExport(`tenant-${t.slug}`);
      expect(exported.code, exported.stderr).toBe(0);
      expect(exported.stdout).toContain(`MiniXdrAccess-${t.slug}`);
      expect(exported.stdout).toContain("4dabf18193072939515e22adb298388d"); // Pulumi's secret marker: secrets are there, sealed
      assertAbsent(`the exported state of tenant-${t.slug}`, exported.stdout);
    }
    // Every checkpoint, history entry and lock the postgres:// backend keeps in its table ({"data": base64}).
    const state = postgres(service.workspace.backendUrl, { max: 1, onnotice: () => undefined });
    try {
      const rows = await state<{ key: string; data: string }[]>`select key, data::text as data from pulumi_state`;
      const stateText = rows
        .map((row) => `${row.key}\n${Buffer.from((JSON.parse(row.data) as { data: string }).data, "base64").toString("utf8")}`)
        .join("\n");
      expect(stateText).toContain(`MiniXdrAccess-${bravo.slug}`); // the dump is real
      assertAbsent("the postgres:// state backend's table", stateText);
    } finally {
      await state.end({ timeout: 5 });
    }
    const files = [...(await filesUnder(join(service.workspace.projectDir, "stacks")))];
    // Saved plans live sealed in run_plans (covered by the table dump above), never under DATA_DIR.
    expect(await filesUnder(join(service.workspace.dataDir, "plans"))).toEqual([]);
    expect(files.some((file) => file.endsWith(`Pulumi.tenant-${bravo.slug}.yaml`))).toBe(true);
    for (const file of files) assertAbsent(file, await readFile(file, "utf8"));
  });
});
