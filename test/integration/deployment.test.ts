/**
 * From a discovered estate to every validation check green, against the moto server seeded with the Mini Corp
 * fixture (7 instances, 1 database) in the tenant's account, on real PostgreSQL, through the HTTP app:
 * discovery after `up` reads the rollout from SSM with the tenant's own role, a retry re-runs the agent document
 * on the failed instances only (highest priority first) and records the command, agents enroll and send
 * heartbeats with the tenant's enrollment token, and validation, progress and the onboarding status follow.
 *
 * moto has no DescribeInstanceInformation and no DescribeInstanceAssociationsStatus: those two calls are answered
 * by the narrow stand-in of test/harness/ssm-standin.ts (set as the SSM endpoint with the SDK's standard
 * AWS_ENDPOINT_URL_SSM), which forwards every other SSM call (SendCommand, GetCommandInvocation, documents) to moto.
 */
import { randomBytes } from "node:crypto";
import { CreateDocumentCommand, ListCommandsCommand, SSMClient } from "@aws-sdk/client-ssm";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rotateEnrollmentToken, activeEnrollmentToken } from "../../services/core/enrollment-tokens";
import { HEARTBEAT_STALE_AFTER_MS } from "../../services/rollout/enrollment";
import type { Database } from "../../db/client";
import { generateToken, hashToken, type Keyring } from "../../db/crypto";
import { agentCommands, agents, apiTokens, auditLog, cloudAssets, discoveryScans, organizations, runs } from "../../db/schema";
import { assumeRoleCredentials } from "../../services/core/assume-role";
import { executeScan } from "../../services/discovery/scan-runner";
import { buildAgentInstallDocument } from "../../programs/tenant/agent-document";
import { miniCorp } from "../fixtures/tenant-config";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { seedMiniCorp } from "../harness/mini-corp-estate";
import { insertActiveAwsCredential, succeededUpRun } from "../harness/seeded-tenant";
import { resetMoto } from "../harness/moto";
import { startSsmStandIn, type ManagedInstance, type SsmStandIn } from "../harness/ssm-standin";
import { enrollmentBody, signedIdentity, untrustedIdentityAuthority } from "../harness/instance-identity";

const SLUG = miniCorp.organization.slug;
const ACCOUNT = miniCorp.organization.aws_account_id;
const HOME = miniCorp.organization.home_region;
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/MiniXdrAccess-${SLUG}`;
const EXTERNAL_ID = `mxdr-ext-${randomBytes(12).toString("hex")}`;
const DOCUMENT = `MiniXdr-InstallAgent-${SLUG}`;
let keyring: Keyring;

let database: Database;
let service: TestPlatform | undefined;
let standIn: SsmStandIn;
let app: TestPlatform["app"];
let organizationId: number;
let tenantToken: string;
let enrollmentToken: string;
let ids: Map<string, string>;
const savedSsmEndpoint = process.env.AWS_ENDPOINT_URL_SSM;

const idOf = (name: string) => ids.get(name)!;
/** Each agent's credential, as enrollment answered it. */
const credentials = new Map<string, string>();

async function call(method: string, path: string, body?: unknown, token: string | null = tenantToken) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as any };
}

/** The agent on instance `name` enrolls the real way: the tenant's token and its identity document signed by the test CA. */
const enroll = (
  name: string,
  extra: { agentVersion?: string; agentCredential?: string; instanceId?: string; accountId?: string; region?: string } = {},
) =>
  call(
    "POST",
    "/v1/agents/enroll",
    enrollmentBody(
      enrollmentToken,
      { accountId: extra.accountId ?? ACCOUNT, region: extra.region ?? HOME, instanceId: extra.instanceId ?? idOf(name) },
      { hostname: name.toLowerCase(), agentVersion: extra.agentVersion, agentCredential: extra.agentCredential },
    ),
    null,
  );

const managed = (name: string, association?: Omit<NonNullable<ManagedInstance["association"]>, "documentName" | "executedAt">): ManagedInstance => {
  const instance = miniCorp.instances.find((candidate) => candidate.name === name)!;
  return {
    instanceId: idOf(name),
    platformType: instance.platform === "windows" ? "Windows" : "Linux",
    ...(association ? { association: { documentName: DOCUMENT, executedAt: new Date(Date.now() - 60_000), ...association } } : {}),
  };
};

const IMDS_OFF_OUTPUT = {
  responseCode: 1,
  stdout: "",
  stderr:
    "mini-xdr: the EC2 instance metadata service (IMDSv2) did not answer at http://169.254.169.254: the agent enrolls only on an EC2 instance, which proves itself with its signed instance identity document\n",
};

/** What SSM reports after the association's first run: four installs, two failures; HP-01 is not managed. */
const firstRollout = (): ManagedInstance[] => [
  managed("DC-01", { status: "Success" }),
  managed("DB-01", { status: "Success" }),
  managed("WEB-01", { status: "Success" }),
  managed("WK-01", { status: "Success" }),
  // What the install step prints where instance metadata is off (the real step, test/integration/agent-install-script.test.ts).
  managed("FS-01", { status: "Failed", detailedStatus: "Failed", errorCode: "1", output: IMDS_OFF_OUTPUT }),
  managed("WK-02", { status: "Failed", detailedStatus: "TimedOut" }),
];

async function assetsByName() {
  const rows = await database.db.select().from(cloudAssets).where(eq(cloudAssets.organizationId, organizationId));
  return new Map(rows.map((row) => [row.tags.Name ?? row.assetId, row]));
}

beforeAll(async () => {
  const motoEndpoint = process.env.AWS_ENDPOINT_URL!;
  await resetMoto(motoEndpoint);
  standIn = await startSsmStandIn(motoEndpoint);
  process.env.AWS_ENDPOINT_URL_SSM = standIn.endpoint;
  service = await startTestPlatform();
  ({ database, keyring } = service.platform);
  const { db } = database;

  const tenantSession = assumeRoleCredentials({ roleArn: ROLE_ARN, externalId: EXTERNAL_ID, sessionName: "mini-xdr-test-seed" });
  ids = await seedMiniCorp(tenantSession);
  // What the tenant stack's `up` creates and discovery and retries use: the agent install document.
  const ssm = new SSMClient({ region: HOME, credentials: tenantSession });
  await ssm.send(
    new CreateDocumentCommand({
      Name: DOCUMENT,
      DocumentType: "Command",
      DocumentFormat: "JSON",
      Content: JSON.stringify(
        buildAgentInstallDocument({
          parameterName: `/mini-xdr/${SLUG}/agent-config`,
          agentPublicBaseUrl: "https://agents.mini-xdr.example.com",
          agentVersion: "1.0.0",
        }),
      ),
    }),
  );
  ssm.destroy();

  const [org] = await db
    .insert(organizations)
    .values({
      slug: SLUG,
      name: miniCorp.organization.name,
      awsAccountId: ACCOUNT,
      onboardingStatus: "discovering",
      integrationSettings: { homeRegion: HOME, regions: [HOME], agentPublicBaseUrl: miniCorp.organization.agent_public_base_url },
    })
    .returning();
  organizationId = org!.id;
  await insertActiveAwsCredential(database, keyring, { organizationId, account: ACCOUNT, externalId: EXTERNAL_ID });
  // The outcome of the tenant's `up` (test/integration/run-queue.test.ts and the e2e suite run the real one).
  await db.insert(runs).values(succeededUpRun({ organizationId, slug: SLUG, account: ACCOUNT, region: HOME }));
  enrollmentToken = await activeEnrollmentToken(db, keyring, organizationId);
  tenantToken = generateToken("mxdr-tenant");
  await db.insert(apiTokens).values({ tokenHash: hashToken(tenantToken), scope: "tenant", organizationId, name: "mini-corp admin" });

  app = service.app;
});

afterAll(async () => {
  if (savedSsmEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_SSM;
  else process.env.AWS_ENDPOINT_URL_SSM = savedSsmEndpoint;
  await standIn?.stop();
  await service?.stop();
});

describe("agent rollout of the Mini Corp tenant", () => {
  it("after discovery, reads each instance's rollout from SSM with the tenant's role and explains every status", async () => {
    // HP-01 is not an SSM managed instance (yet).
    standIn.setInstances(firstRollout());
    const [scan] = await database.db.insert(discoveryScans).values({ organizationId, trigger: "after_up", actor: "system:after-up" }).returning();
    await executeScan(
      { db: database.db, keyring, onScanFinished: service!.platform.services.onboarding.afterScan, log: (m) => expect.fail(m) },
      scan!.id,
    );

    const [finished] = await database.db.select().from(discoveryScans).where(eq(discoveryScans.id, scan!.id));
    expect(finished).toMatchObject({ status: "succeeded", assetsFound: 8 });
    // Two failed installs and an instance SSM cannot reach: a person has to act, and the tenant says what to do.
    const [org] = await database.db.select().from(organizations).where(eq(organizations.id, organizationId));
    expect(org!.onboardingStatus).toBe("action_required");
    expect(org!.statusReasons).toEqual([
      {
        reason: "1 targeted instance SSM does not manage, so the agent cannot reach them",
        fix: expect.stringContaining("enable_default_host_management"),
      },
      // Each cause its own reason and fix: FS-01's read from what its install step printed; WK-02's SSM only says timed out.
      {
        reason: `the agent install failed on 1 instance (FS-01 (${idOf("FS-01")})): the instance's metadata service (IMDSv2) did not answer, so the agent cannot prove which instance it runs on`,
        fix: expect.stringMatching(/^turn instance metadata on .*modify-instance-metadata-options.*, then retry/),
      },
      { reason: `the agent install failed on 1 instance (WK-02 (${idOf("WK-02")}))`, fix: expect.stringContaining("retry") },
    ]);
    const tenant = await call("GET", `/v1/tenants/${SLUG}`);
    expect(tenant.body).toMatchObject({ onboarding_status: "action_required", action_required: org!.statusReasons });

    const { status, body } = await call("GET", `/v1/tenants/${SLUG}/deployment?refresh=false`);
    expect(status).toBe(200);
    expect(body).toMatchObject({
      targeted: 7,
      installed: 4,
      failed: 2,
      pending: 1,
      not_compatible: 1,
      not_targeted: 0,
      checked_in: 0,
      refreshed: false,
    });
    const byName = new Map<string, any>(body.instances.map((instance: any) => [instance.name ?? instance.asset_id, instance]));
    expect(byName.get("FS-01")).toMatchObject({ agent_status: "failed", priority: "high", targeted: true });
    expect(byName.get("FS-01").failure).toEqual({
      cause: "instance_metadata_unavailable",
      reason: expect.stringContaining("IMDSv2"),
      fix: expect.stringContaining("modify-instance-metadata-options"),
      output_lines: [expect.stringContaining("mini-xdr: the EC2 instance metadata service (IMDSv2) did not answer")],
    });
    expect(byName.get("WK-02").failure).toBeNull();
    expect(byName.get("WK-02").reason).toContain("TimedOut");
    expect(byName.get("HP-01")).toMatchObject({ agent_status: "pending" });
    expect(byName.get("HP-01").reason).toMatch(/not an SSM managed instance/);
    expect(byName.get("DC-01")).toMatchObject({ agent_status: "installed", priority: "critical", platform: "windows" });
    expect(body.instances.find((instance: any) => instance.asset_type === "rds")).toMatchObject({ targeted: false, agent_status: "not_applicable" });
    // Highest priority first.
    expect(body.instances.slice(0, 3).map((instance: any) => instance.priority)).toEqual(["critical", "critical", "critical"]);

    const emulated = standIn.calls.filter((c) => c.emulated);
    expect(emulated.map((c) => c.action)).toContain("DescribeInstanceInformation");
    expect(emulated.filter((c) => c.action === "DescribeInstanceAssociationsStatus")).toHaveLength(6);
    // The failed installs' output, as AWS gives it: the association's execution, its target, the command's invocation.
    expect(emulated.map((c) => c.action)).toEqual(
      expect.arrayContaining(["DescribeAssociationExecutions", "DescribeAssociationExecutionTargets", "GetCommandInvocation"]),
    );
    // Every SSM call was signed with the tenant's assumed-role session, never the service's own key ("testing").
    expect(standIn.calls.filter((c) => c.accessKeyId === "testing")).toEqual([]);
    expect(new Set(standIn.calls.map((c) => c.accessKeyId)).size).toBeGreaterThanOrEqual(1);

    const validation = await call("GET", `/v1/tenants/${SLUG}/validation`);
    expect(validation.body.checks).toEqual([
      { name: "integration_healthy", status: "passed" },
      { name: "assets_discovered", status: "passed" },
      { name: "agents_targeted", status: "passed" },
      {
        name: "agents_installed",
        status: "failed",
        reason: `the install failed on 2 of 7 running targeted instances: FS-01 (${idOf("FS-01")}), WK-02 (${idOf("WK-02")})`,
      },
      { name: "agents_checked_in", status: "failed", reason: expect.stringMatching(/^7 of 7 running targeted instances have not checked in/) },
    ]);
  });

  it("retry re-runs the agent document on the failed instances only, highest priority first, and records the command", async () => {
    const { status, body } = await call("POST", `/v1/tenants/${SLUG}/deployment/retry`);
    expect(status).toBe(200);
    expect(body.retried).toBe(2);
    expect(body.commands).toEqual([{ command_id: expect.any(String), region: HOME, instance_ids: [idOf("FS-01"), idOf("WK-02")] }]);
    const commandId = body.commands[0].command_id as string;

    const [recorded] = await database.db.select().from(agentCommands).where(eq(agentCommands.commandId, commandId));
    expect(recorded).toMatchObject({ organizationId, documentName: DOCUMENT, instanceIds: [idOf("FS-01"), idOf("WK-02")], region: HOME });
    expect(recorded!.actor).toMatch(/^token:\d+$/);
    const audit = await database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.organizationId, organizationId), eq(auditLog.action, "deployment.retry")));
    expect(audit).toHaveLength(1);

    // The command really went to SSM (moto), in the tenant's account, for the agent document and those instances.
    const sent = standIn.calls.filter((c) => c.action === "SendCommand");
    expect(sent.map((c) => c.input)).toEqual([expect.objectContaining({ DocumentName: DOCUMENT, InstanceIds: [idOf("FS-01"), idOf("WK-02")] })]);
    expect(sent[0]!.accessKeyId).not.toBe("testing");
    const ssm = new SSMClient({ region: HOME, credentials: assumeRoleCredentials({ roleArn: ROLE_ARN, externalId: EXTERNAL_ID }) });
    const listed = await ssm.send(new ListCommandsCommand({ CommandId: commandId }));
    ssm.destroy();
    // moto 5.2.5 adds every instance of the account to a command sent without Targets (its empty target filter
    // matches all), so its record holds more ids than were sent; what was sent is pinned above.
    expect(listed.Commands?.[0]).toMatchObject({ DocumentName: DOCUMENT, InstanceIds: expect.arrayContaining([idOf("FS-01"), idOf("WK-02")]) });

    const assets = await assetsByName();
    expect(assets.get("FS-01")!.agentStatus).toBe("installing");
    expect(assets.get("DC-01")!.agentStatus).toBe("installed");

    // The next read takes the command's result from SSM (GetCommandInvocation, answered by moto).
    const after = await call("GET", `/v1/tenants/${SLUG}/deployment`);
    expect(after.body).toMatchObject({ refreshed: true, failed: 0 });
    const retried = after.body.instances.filter((instance: any) => [idOf("FS-01"), idOf("WK-02")].includes(instance.asset_id));
    expect(retried.map((instance: any) => instance.reason)).toEqual([expect.stringContaining(commandId), expect.stringContaining(commandId)]);

    const again = await call("POST", `/v1/tenants/${SLUG}/deployment/retry`);
    expect(again.body).toEqual({ retried: 0, commands: [] });
  });

  it("an instance that registers with SSM and applies the association counts as installed (v2 summary)", async () => {
    standIn.setInstances([...firstRollout(), managed("HP-01", { status: "Success" })]);
    const { status, body } = await call("GET", "/api/onboarding/v2/deployment/summary");
    expect(status).toBe(200);
    expect(body).toMatchObject({ targeted: 7, installed: 7, failed: 0, pending: 0, not_compatible: 1 });
    const [org] = await database.db.select().from(organizations).where(eq(organizations.id, organizationId));
    expect(org!.onboardingStatus).toBe("validating");
  });

  it("refuses enrollment with an unknown token (401) or bad fields (400 naming them), changing nothing", async () => {
    const unknown = await call(
      "POST",
      "/v1/agents/enroll",
      enrollmentBody(generateToken("mxdr-enroll"), { accountId: ACCOUNT, region: HOME, instanceId: idOf("DC-01") }),
      null,
    );
    expect(unknown.status).toBe(401);
    expect(unknown.body.error.code).toBe("invalid_enrollment_token");

    const bad = await call(
      "POST",
      "/v1/agents/enroll",
      {
        enrollment_token: enrollmentToken,
        identity_document: "",
        identity_signature: "not base64!",
        hostname: "",
        agent_version: "latest",
        instance_id: idOf("DC-01"),
      },
      null,
    );
    expect(bad.status).toBe(400);
    expect(bad.body.error.fields.map((field: any) => field.field).sort()).toEqual([
      "agent_version",
      "hostname",
      "identity_document",
      "identity_signature",
      "instance_id",
    ]);

    const heartbeatFirst = await call(
      "POST",
      "/v1/agents/heartbeat",
      { agent_credential: generateToken("mxdr-agent"), instance_id: idOf("DC-01") },
      null,
    );
    expect(heartbeatFirst.status).toBe(401);
    expect(heartbeatFirst.body.error.code).toBe("invalid_agent_credential");
    // The enrollment token is no heartbeat credential any more.
    const withToken = await call("POST", "/v1/agents/heartbeat", { enrollment_token: enrollmentToken, instance_id: idOf("DC-01") }, null);
    expect(withToken.status).toBe(400);

    expect(await database.db.select().from(agents)).toEqual([]);
    const assets = await assetsByName();
    expect([...assets.values()].filter((asset) => asset.agentStatus === "checked_in")).toEqual([]);
  });

  it("refuses an instance the enrollment does not prove the tenant's: forged or tampered (401), another account or region (403), not discovered (409)", async () => {
    const forged = signedIdentity({ accountId: ACCOUNT, region: HOME, instanceId: idOf("DC-01") }, untrustedIdentityAuthority());
    const signed = enrollmentBody(enrollmentToken, { accountId: ACCOUNT, region: HOME, instanceId: idOf("DC-01") });
    const cases: [string, Record<string, string>, number, string][] = [
      [
        "a forger's signature",
        { ...signed, identity_document: forged.document, identity_signature: forged.signature },
        401,
        "invalid_instance_identity",
      ],
      [
        "a tampered document",
        { ...signed, identity_document: signed.identity_document!.replace(idOf("DC-01"), idOf("WEB-01")) },
        401,
        "invalid_instance_identity",
      ],
      [
        "another account",
        enrollmentBody(enrollmentToken, { accountId: "999988887777", region: HOME, instanceId: idOf("DC-01") }),
        403,
        "instance_not_of_tenant",
      ],
      [
        "another region",
        enrollmentBody(enrollmentToken, { accountId: ACCOUNT, region: "eu-west-3", instanceId: idOf("DC-01") }),
        403,
        "instance_not_of_tenant",
      ],
      [
        "an instance discovery never found",
        enrollmentBody(enrollmentToken, { accountId: ACCOUNT, region: HOME, instanceId: "i-deadbeef-not-real" }),
        409,
        "instance_not_discovered",
      ],
    ];
    for (const [what, body, status, code] of cases) {
      const refused = await call("POST", "/v1/agents/enroll", body, null);
      expect({ what, status: refused.status, code: refused.body.error?.code }).toEqual({ what, status, code });
    }
    expect(await database.db.select().from(agents)).toEqual([]);
    expect([...(await assetsByName()).values()].filter((asset) => asset.agentStatus === "checked_in")).toEqual([]);
  });

  it("every agent enrolls and sends heartbeats: all validation checks pass, progress is 100 %, onboarding completed", async () => {
    for (const instance of miniCorp.instances) {
      const enrolled = await enroll(instance.name);
      expect(enrolled.status).toBe(201);
      expect(enrolled.body).toMatchObject({
        instance_id: idOf(instance.name),
        hostname: instance.name.toLowerCase(),
        heartbeat_interval_seconds: 60,
        agent_credential: expect.stringMatching(/^mxdr-agent_[A-Za-z0-9_-]{43}$/),
      });
      credentials.set(instance.name, enrolled.body.agent_credential);
    }
    // Re-enrolling needs the instance's own credential (and answers a new one); another agent's is refused.
    const withoutCredential = await enroll("DC-01", { agentVersion: "1.0.1" });
    expect({ status: withoutCredential.status, code: withoutCredential.body.error.code }).toEqual({ status: 409, code: "agent_already_enrolled" });
    const withAnothers = await enroll("DC-01", { agentVersion: "1.0.1", agentCredential: credentials.get("WEB-01") });
    expect({ status: withAnothers.status, code: withAnothers.body.error.code }).toEqual({ status: 403, code: "agent_credential_mismatch" });
    const reenrolled = await enroll("DC-01", { agentVersion: "1.0.1", agentCredential: credentials.get("DC-01") });
    expect(reenrolled.status).toBe(200);
    expect(reenrolled.body.agent_credential).not.toBe(credentials.get("DC-01"));
    const stale = await call("POST", "/v1/agents/heartbeat", { agent_credential: credentials.get("DC-01"), instance_id: idOf("DC-01") }, null);
    expect(stale.status).toBe(401);
    credentials.set("DC-01", reenrolled.body.agent_credential);

    const heartbeat = await call(
      "POST",
      "/v1/agents/heartbeat",
      { agent_credential: credentials.get("WEB-01"), instance_id: idOf("WEB-01"), agent_version: "1.0.1" },
      null,
    );
    expect(heartbeat).toMatchObject({ status: 200, body: { agent_version: "1.0.1" } });
    // A credential counts for its own instance only.
    const elsewhere = await call("POST", "/v1/agents/heartbeat", { agent_credential: credentials.get("WEB-01"), instance_id: idOf("DC-01") }, null);
    expect(elsewhere.status).toBe(401);

    const rows = await database.db.select().from(agents).where(eq(agents.organizationId, organizationId));
    expect(rows).toHaveLength(7);
    expect(rows.every((row) => row.assetId !== null)).toBe(true);
    // Stored as hashes only.
    expect(rows.map((row) => row.credentialHash).sort()).toEqual([...credentials.values()].map(hashToken).sort());
    const assets = await assetsByName();
    expect(miniCorp.instances.map((instance) => assets.get(instance.name)!.agentStatus)).toEqual(miniCorp.instances.map(() => "checked_in"));
    const enrollAudit = await database.db
      .select()
      .from(auditLog)
      .where(eq(auditLog.actor, `agent:${idOf("HP-01")}`));
    expect(enrollAudit).toMatchObject([{ action: "agent.enrolled", organizationId, details: { accountId: ACCOUNT, region: HOME } }]);
    expect(JSON.stringify(await database.db.select().from(auditLog))).not.toContain("mxdr-agent_");

    const validation = await call("GET", "/api/onboarding/v2/validation/summary");
    expect(validation.body).toEqual({
      checks: ["integration_healthy", "assets_discovered", "agents_targeted", "agents_installed", "agents_checked_in"].map((name) => ({
        name,
        status: "passed",
      })),
      passed: 5,
      total: 5,
      change_pending: null,
    });
    const health = await call("GET", "/api/onboarding/v2/deployment/health");
    expect(health.body).toMatchObject({ status: "healthy", agents_enrolled: 7, agents_healthy: 7, targeted_without_agent: 0 });
    const progress = await call("GET", "/api/onboarding/v2/progress");
    expect(progress.body).toEqual({
      discovery: { status: "completed", progress: 100, assets_found: 8 },
      deployment: { status: "completed", progress: 100, agents_deployed: 7 },
      validation: { status: "completed", progress: 100, checks_passed: 5 },
      overall_progress: 100,
    });
    const [org] = await database.db.select().from(organizations).where(eq(organizations.id, organizationId));
    expect(org!.onboardingStatus).toBe("completed");

    // A fresh SSM read keeps checked-in agents checked in.
    const summary = await call("GET", `/v1/tenants/${SLUG}/deployment`);
    expect(summary.body).toMatchObject({ refreshed: true, installed: 7, checked_in: 7 });
  });

  it("agents that stop sending heartbeats are named, apart from those that never checked in", async () => {
    const silentSince = new Date(Date.now() - HEARTBEAT_STALE_AFTER_MS - 60_000);
    const silent = [idOf("DC-01"), idOf("WEB-01")];
    const restore = await database.db
      .select({ instanceId: agents.instanceId, lastHeartbeatAt: agents.lastHeartbeatAt })
      .from(agents)
      .where(eq(agents.organizationId, organizationId));
    try {
      for (const instanceId of silent)
        await database.db.update(agents).set({ lastHeartbeatAt: silentSince }).where(eq(agents.instanceId, instanceId));
      const validation = await call("GET", `/v1/tenants/${SLUG}/validation`);
      expect(validation.body.checks.at(-1)).toEqual({
        name: "agents_checked_in",
        status: "pending",
        reason: `2 of 7 running targeted instances have not sent a heartbeat in ${HEARTBEAT_STALE_AFTER_MS / 1000} s: DC-01 (${idOf("DC-01")}), WEB-01 (${idOf("WEB-01")})`,
      });
      expect((await call("GET", "/api/onboarding/v2/progress")).body.validation).toEqual({ status: "in_progress", progress: 80, checks_passed: 4 });
    } finally {
      for (const { instanceId, lastHeartbeatAt } of restore)
        await database.db.update(agents).set({ lastHeartbeatAt }).where(eq(agents.instanceId, instanceId));
    }
    expect((await call("GET", `/v1/tenants/${SLUG}/validation`)).body.passed).toBe(5);
  });

  it("a rotated (revoked) enrollment token no longer enrolls (401, nothing changes), while enrolled agents keep sending heartbeats with their own credential", async () => {
    const [before] = await database.db
      .select()
      .from(agents)
      .where(eq(agents.instanceId, idOf("DC-01")));
    const revoked = enrollmentToken;
    enrollmentToken = await rotateEnrollmentToken(database.db, keyring, organizationId);
    const refused = await call(
      "POST",
      "/v1/agents/enroll",
      enrollmentBody(revoked, { accountId: ACCOUNT, region: HOME, instanceId: idOf("DC-01") }),
      null,
    );
    expect(refused.status).toBe(401);
    const [after] = await database.db
      .select()
      .from(agents)
      .where(eq(agents.instanceId, idOf("DC-01")));
    expect(after).toEqual(before);
    const accepted = await call("POST", "/v1/agents/heartbeat", { agent_credential: credentials.get("DC-01"), instance_id: idOf("DC-01") }, null);
    expect(accepted.status).toBe(200);
  });

  it("a platform operator resets an instance's enrollment: its credential stops working and the instance enrolls again without it; a tenant token may not", async () => {
    const adminToken = generateToken("mxdr-admin");
    await database.db.insert(apiTokens).values({ tokenHash: hashToken(adminToken), scope: "platform_admin", organizationId: null, name: "operator" });
    const path = `/v1/tenants/${SLUG}/agents/${idOf("FS-01")}/enrollment`;
    const byTenant = await call("DELETE", path);
    expect(byTenant.status).toBe(403);
    expect(
      (await call("POST", "/v1/agents/heartbeat", { agent_credential: credentials.get("FS-01"), instance_id: idOf("FS-01") }, null)).status,
    ).toBe(200);

    const reset = await call("DELETE", path, undefined, adminToken);
    expect(reset).toMatchObject({ status: 200, body: { instance_id: idOf("FS-01") } });
    expect(JSON.stringify(reset.body)).not.toContain("mxdr-agent_");
    expect(
      (await call("POST", "/v1/agents/heartbeat", { agent_credential: credentials.get("FS-01"), instance_id: idOf("FS-01") }, null)).status,
    ).toBe(401);
    const again = await enroll("FS-01");
    expect(again.status).toBe(200);
    credentials.set("FS-01", again.body.agent_credential);
    expect(
      (await call("POST", "/v1/agents/heartbeat", { agent_credential: credentials.get("FS-01"), instance_id: idOf("FS-01") }, null)).status,
    ).toBe(200);
    const audit = await database.db.select().from(auditLog).where(eq(auditLog.action, "agent.enrollment_reset"));
    expect(audit).toMatchObject([{ organizationId, target: idOf("FS-01") }]);
    expect((await call("DELETE", `/v1/tenants/${SLUG}/agents/i-0000000000000000f/enrollment`, undefined, adminToken)).body.error.code).toBe(
      "agent_not_enrolled",
    );
  });

  it("a tenant whose stack was never applied: the rollout says why it was not read, and retry answers 409", async () => {
    const slug = `fresh-${randomBytes(3).toString("hex")}`;
    const [org] = await database.db.insert(organizations).values({ slug, name: slug }).returning();
    const token = generateToken("mxdr-tenant");
    await database.db.insert(apiTokens).values({ tokenHash: hashToken(token), scope: "tenant", organizationId: org!.id, name: "fresh" });
    const summary = await call("GET", `/v1/tenants/${slug}/deployment`, undefined, token);
    expect(summary.body).toMatchObject({ targeted: 0, refreshed: false, refresh_error: expect.stringMatching(/not been applied/) });
    const retry = await call("POST", "/api/onboarding/v2/deployment/retry", undefined, token);
    expect(retry.status).toBe(409);
    expect(retry.body.error.code).toBe("tenant_not_deployed");
    const validation = await call("GET", `/v1/tenants/${slug}/validation`, undefined, token);
    expect(validation.body.checks[0]).toEqual({ name: "integration_healthy", status: "pending", reason: "AWS is not connected yet" });
    // And it never sees Mini Corp.
    expect((await call("GET", `/v1/tenants/${SLUG}/deployment`, undefined, token)).status).toBe(404);
  });
});
