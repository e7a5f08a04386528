/**
 * The approval gate holds on every route that can start a stack run. With `require_approval` on, a tenant's own token
 * can start a preview (its plan waits for a platform admin) but never an `up` that nobody approved, whichever door it
 * knocks on: the v1 runs route, offboarding, or the seed-compatible quick start.
 *
 * Real parts: the platform as the service builds it, PostgreSQL, the pg-boss run queue (enqueue only: no worker executes here, so every requested
 * run stays a `queued` row to inspect), and, for the bootstrap role check, the customer's role in moto's IAM behind the
 * STS stand-in (which answers AssumeRole by the role's trust policy, as AWS does).
 */
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { generateToken, hashToken } from "../../db/crypto";
import { apiTokens, organizations, runs } from "../../db/schema";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { createBootstrapRole } from "../harness/customer-account";
import { startStsStandIn, type StsStandIn } from "../harness/sts-standin";
import { newAccountId } from "../harness/tenants";

const PLATFORM_PRINCIPAL_ARN = "arn:aws:iam::999999999999:role/MiniXdrPlatform";

let database: Database;
let service: TestPlatform | undefined;
let app: TestPlatform["app"];
let sts: StsStandIn;
const admin = generateToken("mxdr-admin");
const savedStsEndpoint = process.env.AWS_ENDPOINT_URL_STS;

beforeAll(async () => {
  sts = await startStsStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, callerPrincipalArn: PLATFORM_PRINCIPAL_ARN });
  process.env.AWS_ENDPOINT_URL_STS = sts.url;
  service = await startTestPlatform({ env: { PLATFORM_PRINCIPAL_ARN }, onServerError: (message) => expect.fail(message) });
  ({ app } = service);
  ({ database } = service.platform);
  await database.db.insert(apiTokens).values({ tokenHash: hashToken(admin), scope: "platform_admin", name: "admin" });
});

afterAll(async () => {
  await service?.stop();
  if (savedStsEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_STS;
  else process.env.AWS_ENDPOINT_URL_STS = savedStsEndpoint;
  await sts?.stop();
});

interface Tenant {
  id: number;
  slug: string;
  token: string;
  /** Its bootstrap role, trusting the platform with the tenant's generated external ID. */
  roleArn: string;
}

async function call(token: string, method: string, path: string, body?: unknown) {
  const response = await app.request(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function tenantRequiringApproval(): Promise<Tenant> {
  const slug = `gated-${randomBytes(3).toString("hex")}`;
  const account = newAccountId();
  const [org] = await database.db
    .insert(organizations)
    .values({
      slug,
      name: slug,
      onboardingFlowVersion: "quick_start",
      awsAccountId: account,
      integrationSettings: { agentPublicBaseUrl: "https://agents.mini-xdr.example.com", homeRegion: "us-east-1", requireApproval: true },
    })
    .returning();
  const token = generateToken("mxdr-tenant");
  await database.db.insert(apiTokens).values({ tokenHash: hashToken(token), scope: "tenant", organizationId: org!.id, name: "tenant admin" });
  const { external_id: externalId } = (await call(token, "GET", `/v1/tenants/${slug}/integrations/aws/external-id`)).body;
  const roleArn = await createBootstrapRole({ accountId: account, roleName: "MiniXdrBootstrap", externalId, trustedAccountId: "999999999999" });
  const connected = await call(admin, "PUT", `/v1/tenants/${slug}/integrations/aws`, { bootstrap_role_arn: roleArn });
  expect(connected.status).toBe(201);
  return { id: org!.id, slug, token, roleArn };
}

async function runsOf(tenant: Tenant) {
  return database.db.select().from(runs).where(eq(runs.organizationId, tenant.id));
}

describe("with require_approval on, no route starts an unapproved up", () => {
  let tenant: Tenant;
  beforeEach(async () => {
    tenant = await tenantRequiringApproval();
  });

  it("v2 quick-start with the tenant's token starts a preview whose plan waits for approval", async () => {
    const started = await call(tenant.token, "POST", "/api/onboarding/v2/quick-start", {
      provider: "aws",
      credentials: { role_arn: tenant.roleArn },
    });
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ status: "initiated", awaiting_approval: true, message: expect.stringContaining("approve") });
    const recorded = await runsOf(tenant);
    expect(recorded.map((run) => ({ id: run.id, kind: run.kind, planSaved: run.planRef !== null }))).toEqual([
      { id: started.body.run_id, kind: "preview", planSaved: true },
    ]);
  });

  it("POST runs {kind: up} with the tenant's token: 409 approval_required naming plan_run_id", async () => {
    for (const body of [{ kind: "up" }, { kind: "up", queue: true }]) {
      const refused = await call(tenant.token, "POST", `/v1/tenants/${tenant.slug}/runs`, body);
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe("approval_required");
      expect(refused.body.error.fields).toEqual([{ field: "plan_run_id", message: expect.stringContaining("approved preview") }]);
    }
    expect(await runsOf(tenant)).toEqual([]);
  });

  it("POST runs {kind: up, plan_run_id} with the tenant's token: 403, only a platform admin approves", async () => {
    const preview = await call(tenant.token, "POST", `/v1/tenants/${tenant.slug}/runs`, { kind: "preview" });
    expect(preview.status).toBe(202);
    await database.db.update(runs).set({ status: "succeeded", finishedAt: new Date() }).where(eq(runs.id, preview.body.run_id));
    const refused = await call(tenant.token, "POST", `/v1/tenants/${tenant.slug}/runs`, { kind: "up", plan_run_id: preview.body.run_id });
    expect(refused.status).toBe(403);
    expect(refused.body.error.fields).toEqual([{ field: "plan_run_id", message: expect.stringContaining("platform admin") }]);
    expect((await runsOf(tenant)).map((run) => run.kind)).toEqual(["preview"]);

    // The admin's approval is the up that names the preview: it applies exactly the saved plan.
    const approved = await call(admin, "POST", `/v1/tenants/${tenant.slug}/runs`, { kind: "up", plan_run_id: preview.body.run_id });
    expect(approved.status).toBe(202);
    const [previewRow] = await database.db.select().from(runs).where(eq(runs.id, preview.body.run_id));
    const [upRow] = await database.db.select().from(runs).where(eq(runs.id, approved.body.run_id));
    expect(upRow!.planRef).toBe(previewRow!.planRef);
  });

  it("an admin's up without a plan is refused too: approval means a reviewed preview", async () => {
    const refused = await call(admin, "POST", `/v1/tenants/${tenant.slug}/runs`, { kind: "up" });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("approval_required");
    expect(await runsOf(tenant)).toEqual([]);
  });

  it("destroy and offboard are a platform admin's: 403 to the tenant's token, nothing queued", async () => {
    expect((await call(tenant.token, "POST", `/v1/tenants/${tenant.slug}/runs`, { kind: "destroy" })).status).toBe(403);
    expect((await call(tenant.token, "POST", `/v1/tenants/${tenant.slug}/offboard`)).status).toBe(403);
    expect(await runsOf(tenant)).toEqual([]);
  });

  it("no other route of the API starts a run", async () => {
    const { paths } = (await (await app.request("/openapi.json")).json()) as { paths: Record<string, Record<string, unknown>> };
    const runStarting = ["/v1/tenants/{slug}/runs", "/v1/tenants/{slug}/offboard", "/api/onboarding/v2/quick-start"];
    const bodies: Record<string, unknown> = {
      "put /v1/tenants/{slug}/integrations/aws": { bootstrap_role_arn: tenant.roleArn },
      "patch /v1/tenants/{slug}": { name: "renamed" },
      "post /v1/tenants/{slug}/tokens": { name: "another" },
      "post /api/onboarding/v2/integrations/setup": { provider: "aws", credentials: { role_arn: tenant.roleArn } },
    };
    let called = 0;
    for (const [path, item] of Object.entries(paths)) {
      if (runStarting.includes(path)) continue;
      for (const method of ["post", "put", "patch", "delete"].filter((m) => m in item)) {
        const concrete = path
          .replace("{slug}", tenant.slug)
          .replace("{provider}", "aws")
          .replace(/\{\w+\}/g, "x");
        for (const token of [tenant.token, admin]) await call(token, method.toUpperCase(), concrete, bodies[`${method} ${path}`]);
        called++;
      }
    }
    expect(called).toBeGreaterThanOrEqual(8);
    expect(await runsOf(tenant)).toEqual([]);
  });
});
