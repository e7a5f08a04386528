/**
 * One click for the customer: the quick-create link, the wait for the role, and the onboarding that starts by itself.
 *
 * Real parts: the platform as the service builds it (a worker: the wait's attempts run on pg-boss, and so does the
 * first stack run the wait starts, on the Pulumi CLI against moto), PostgreSQL, moto's S3 (the template is published
 * there), moto's CloudFormation and IAM (the customer creates the stack from the link with the AWS CLI). moto grants AssumeRole for any role and ignores the
 * external ID, so STS is the stand-in of test/harness/sts-standin.ts: it refuses AssumeRole as AWS does (no such role,
 * or a trust policy that does not admit the platform with this external ID) and forwards the rest to moto.
 */
import { randomBytes } from "node:crypto";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { generateToken, hashToken } from "../../db/crypto";
import { apiTokens, auditLog, integrationCredentials, organizations, runs } from "../../db/schema";
import { PLATFORM_PRINCIPAL_ARN } from "../fixtures/tenant-config";
import { awsAsCustomer, createStackFromQuickCreateLink, customerAccount, type CustomerAccount } from "../harness/customer-cloudformation";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { startStsStandIn, type StsStandIn } from "../harness/sts-standin";

const REGION = "us-east-1";
const ACCOUNT = "310987654321";
const BUCKET = "mini-xdr-bootstrap-connect";
const WAIT_SECONDS = 12;

let database: Database;
let service: TestPlatform | undefined;
let sts: StsStandIn;
let customer: CustomerAccount;
let app: TestPlatform["app"];
const admin = generateToken("mxdr-admin");
const savedStsEndpoint = process.env.AWS_ENDPOINT_URL_STS;
const createdStacks: string[] = [];

beforeAll(async () => {
  customer = await customerAccount(ACCOUNT, REGION);
  sts = await startStsStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, callerPrincipalArn: PLATFORM_PRINCIPAL_ARN });
  process.env.AWS_ENDPOINT_URL_STS = sts.url;
  const s3 = new S3Client({ region: REGION });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  s3.destroy();
  // A worker: the wait's attempts run on its queue, and so does the onboarding's first run once the role answers.
  service = await startTestPlatform({
    env: {
      RUN_WORKER: "true",
      PLATFORM_PRINCIPAL_ARN,
      BOOTSTRAP_TEMPLATE_BUCKET: BUCKET,
      BOOTSTRAP_TEMPLATE_BUCKET_REGION: REGION,
      BOOTSTRAP_WAIT_SECONDS: String(WAIT_SECONDS),
    },
    onServerError: (message) => expect.fail(message),
  });
  ({ app } = service);
  ({ database } = service.platform);
  await database.db.insert(apiTokens).values({ tokenHash: hashToken(admin), scope: "platform_admin", name: "admin" });
});

afterAll(async () => {
  if (savedStsEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_STS;
  else process.env.AWS_ENDPOINT_URL_STS = savedStsEndpoint;
  for (const stackName of createdStacks) {
    await awsAsCustomer(customer, ["cloudformation", "delete-stack", "--region", REGION, "--stack-name", stackName]).catch(() => undefined);
  }
  await service?.stop();
  await sts?.stop();
});

async function call(token: string, method: string, path: string, body?: unknown) {
  const response = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, text };
}

async function quickStartTenant() {
  const slug = `click-${randomBytes(3).toString("hex")}`;
  const created = await call(admin, "POST", "/v1/tenants", {
    slug,
    name: `Click ${slug}`,
    onboarding_flow_version: "quick_start",
    integration_settings: { aws_account_id: ACCOUNT, home_region: REGION, agent_public_base_url: "https://agents.mini-xdr.example.com" },
  });
  expect(created.status, created.text).toBe(201);
  const [org] = await database.db.select().from(organizations).where(eq(organizations.slug, slug));
  const token = generateToken("mxdr-tenant");
  await database.db.insert(apiTokens).values({ tokenHash: hashToken(token), scope: "tenant", organizationId: org!.id, name: "tenant admin" });
  return { slug, id: org!.id, token };
}

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe("the quick-create link and the wait for the bootstrap role", () => {
  it("a tenant admin opens the link, the customer creates the stack, the service connects and starts onboarding", async () => {
    const tenant = await quickStartTenant();
    const link = await call(tenant.token, "GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap`);
    expect(link.status, link.text).toBe(200);
    expect(link.body).toMatchObject({
      stack_name: `MiniXdr-Bootstrap-${tenant.slug}`,
      region: REGION,
      role_arn: `arn:aws:iam::${ACCOUNT}:role/MiniXdrBootstrap-${tenant.slug}`,
      template_url: expect.stringMatching(new RegExp(`^https://${BUCKET}\\.s3\\.${REGION}\\.amazonaws\\.com/bootstrap/[0-9a-f]{12}\\.json$`)),
      wait: { status: "not_started", attempts: 0 },
    });
    const quickCreate = new URL(link.body.quick_create_url);
    expect(quickCreate.origin).toBe(`https://${REGION}.console.aws.amazon.com`);
    const prefilled = new URLSearchParams(quickCreate.hash.slice(quickCreate.hash.indexOf("?") + 1));
    expect(prefilled.get("templateURL")).toBe(link.body.template_url);
    const externalId = prefilled.get("param_ExternalId")!;
    expect(externalId).toMatch(/^mxdr-ext/);
    // The same link (and external ID) on every visit: the customer may open it twice.
    expect((await call(tenant.token, "GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap`)).body.quick_create_url).toBe(
      link.body.quick_create_url,
    );

    // The page starts the wait when the link is opened; the role does not exist yet, so STS refuses.
    const waiting = await call(tenant.token, "POST", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap/wait`);
    expect(waiting.status, waiting.text).toBe(202);
    expect(waiting.body.wait).toMatchObject({ status: "waiting", attempts: 0 });
    const refused = await waitUntil("a refused attempt", async () => {
      const { body } = await call(tenant.token, "GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap`);
      return body.wait.attempts >= 1 ? body.wait : undefined;
    });
    // In neutral words: STS's own text (the platform's identity, request ids) stays in the server's log.
    expect(refused).toMatchObject({ status: "waiting", last_error: expect.stringContaining("could not be assumed with the tenant's external ID") });
    expect(refused.last_error).not.toMatch(/AccessDenied|not authorized/);

    const stack = await createStackFromQuickCreateLink(customer, link.body.quick_create_url);
    createdStacks.push(stack.stackName);
    expect(stack.status).toBe("CREATE_COMPLETE");

    const connected = await waitUntil("the connection", async () => {
      const { body } = await call(tenant.token, "GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap`);
      return body.wait.status === "connected" ? body.wait : undefined;
    });
    expect(connected.last_error).toBeNull();
    const integration = await call(tenant.token, "GET", `/v1/tenants/${tenant.slug}/integrations/aws`);
    expect(integration.body).toMatchObject({ status: "active", bootstrap_role_arn: link.body.role_arn, connection_check: { status: "connected" } });
    expect(integration.text).not.toContain(externalId);
    // The link carries the tenant's own external ID, the one the API shows it.
    expect((await call(tenant.token, "GET", `/v1/tenants/${tenant.slug}/integrations/aws/external-id`)).body.external_id).toBe(externalId);
    // Only the tenant's external ID was ever admitted; the wait's probes with a wrong one and none were refused.
    const asked = sts.calls.filter((c) => c.roleArn === link.body.role_arn);
    expect(asked.filter((c) => c.admitted).every((c) => c.externalId === externalId)).toBe(true);
    expect(asked.filter((c) => c.externalId !== externalId).map((c) => c.externalId === null)).toEqual([false, true]);

    // Quick-start flow: the first run was requested by the service itself, through the run service (right after the
    // wait recorded the connection: it may come a moment after).
    const started = await waitUntil("the first run", async () => {
      const rows = await database.db.select().from(runs).where(eq(runs.organizationId, tenant.id));
      return rows.length > 0 ? rows : undefined;
    });
    expect(started.map((run) => ({ kind: run.kind, actor: run.actor }))).toEqual([{ kind: "up", actor: "system:bootstrap-wait" }]);
    const [org] = await database.db.select().from(organizations).where(eq(organizations.id, tenant.id));
    expect(org!.onboardingStatus).toBe("provisioning");
    const audit = await database.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.organizationId, tenant.id), eq(auditLog.action, "integration.aws.connect")));
    expect(audit.map((row) => row.actor)).toEqual(["system:bootstrap-wait"]);
  });

  it("a stack created with another external ID is never connected: the wait times out and the tenant needs a person", async () => {
    const tenant = await quickStartTenant();
    const link = await call(tenant.token, "GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap`);
    // The customer edits the prefilled external ID before creating the stack.
    const stack = await createStackFromQuickCreateLink(customer, link.body.quick_create_url, { ExternalId: "mxdr-ext-typed-by-hand-0000" });
    createdStacks.push(stack.stackName);
    expect((await call(tenant.token, "POST", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap/wait`)).status).toBe(202);

    const timedOut = await waitUntil(
      "the wait to time out",
      async () => {
        const { body } = await call(tenant.token, "GET", `/v1/tenants/${tenant.slug}/integrations/aws/bootstrap`);
        return body.wait.status === "timed_out" ? body.wait : undefined;
      },
      (WAIT_SECONDS + 30) * 1000,
    );
    expect(timedOut.attempts).toBeGreaterThan(1);
    expect(timedOut.last_error).toContain("could not be assumed with the tenant's external ID");
    const [credential] = await database.db.select().from(integrationCredentials).where(eq(integrationCredentials.organizationId, tenant.id));
    expect(credential!.status).toBe("pending");
    expect(await database.db.select().from(runs).where(eq(runs.organizationId, tenant.id))).toEqual([]);
    const [org] = await database.db.select().from(organizations).where(eq(organizations.id, tenant.id));
    expect(org!.onboardingStatus).toBe("action_required");
  });

  it("without a template bucket the link is a 503 that names the setting, not a broken link", async () => {
    const bare = await startTestPlatform();
    try {
      const slug = `bare-${randomBytes(3).toString("hex")}`;
      await bare.platform.database.db.insert(organizations).values({ slug, name: slug });
      const response = await bare.app.request(`/v1/tenants/${slug}/integrations/aws/bootstrap`, {
        headers: { authorization: `Bearer ${bare.adminToken}` },
      });
      expect(response.status).toBe(503);
      expect(((await response.json()) as { error: { message: string } }).error.message).toContain("BOOTSTRAP_TEMPLATE_BUCKET");
    } finally {
      await bare.stop();
    }
  });
});
