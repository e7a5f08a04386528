/**
 * The platform is nobody's confused deputy (issue 17, finding 2). Real parts: the platform as the service builds it, PostgreSQL, moto's
 * IAM for the customers' roles, and the STS stand-in of test/harness/sts-standin.ts, which answers AssumeRole as AWS
 * does (moto grants any): by the role's trust policy, the caller and the external ID presented.
 *
 * The external ID is the service's (one per tenant, unique, never chosen by a caller); a role is stored only when it
 * is our bootstrap role, in the tenant's account, not in the platform's, and answers to the external ID ALONE (a
 * wrong one and none are refused); only an operator moves a connected tenant to another account.
 */
import { randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { encryptJson, generateToken, hashToken, type Keyring } from "../../db/crypto";
import { apiTokens, integrationCredentials, organizations, tenantExternalIds } from "../../db/schema";
import { awsCredentialContext } from "../../services/core/aws-credential-store";
import { attemptConnection } from "../../services/integration/bootstrap-wait";
import { verifyBootstrapRoleWithSts } from "../../services/integration/verify-bootstrap-role";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { createBootstrapRole } from "../harness/customer-account";
import { startStsStandIn, type StsStandIn } from "../harness/sts-standin";
import { newAccountId, PLATFORM_PRINCIPAL_ARN } from "../harness/tenants";

const PLATFORM_ACCOUNT = PLATFORM_PRINCIPAL_ARN.split(":")[4]!;
/** Another of the platform's accounts, configured (PLATFORM_ACCOUNT_IDS). */
const OTHER_PLATFORM_ACCOUNT = "210987654321";
const NOT_REQUIRED = "the role's trust policy does not require the external ID";

let database: Database;
let service: TestPlatform | undefined;
let sts: StsStandIn;
let app: TestPlatform["app"];
let keyring: Keyring;
const admin = generateToken("mxdr-admin");
const savedStsEndpoint = process.env.AWS_ENDPOINT_URL_STS;

beforeAll(async () => {
  sts = await startStsStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, callerPrincipalArn: PLATFORM_PRINCIPAL_ARN });
  process.env.AWS_ENDPOINT_URL_STS = sts.url;
  service = await startTestPlatform({
    env: { PLATFORM_PRINCIPAL_ARN, PLATFORM_ACCOUNT_IDS: OTHER_PLATFORM_ACCOUNT },
    onServerError: (message) => expect.fail(message),
  });
  ({ app } = service);
  ({ database, keyring } = service.platform);
  await database.db.insert(apiTokens).values({ tokenHash: hashToken(admin), scope: "platform_admin", name: "admin" });
});

afterEach(() => {
  process.env.AWS_ENDPOINT_URL_STS = sts.url;
});

afterAll(async () => {
  if (savedStsEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_STS;
  else process.env.AWS_ENDPOINT_URL_STS = savedStsEndpoint;
  await sts?.stop();
  await service?.stop();
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

interface Tenant {
  slug: string;
  id: number;
  account: string;
  token: string;
}

async function newTenant(prefix: string, account = newAccountId()): Promise<Tenant> {
  const slug = `${prefix}-${randomBytes(3).toString("hex")}`;
  const created = await call(admin, "POST", "/v1/tenants", {
    slug,
    name: `${slug} Inc.`,
    onboarding_flow_version: "legacy",
    integration_settings: { aws_account_id: account, home_region: "us-east-1", agent_public_base_url: "https://agents.mini-xdr.example.com" },
  });
  expect(created.status, created.text).toBe(201);
  const [org] = await database.db.select().from(organizations).where(eq(organizations.slug, slug));
  const token = generateToken("mxdr-tenant");
  await database.db.insert(apiTokens).values({ tokenHash: hashToken(token), scope: "tenant", organizationId: org!.id, name: "tenant admin" });
  return { slug, id: org!.id, account, token };
}

async function externalIdOf(tenant: Tenant): Promise<string> {
  const answer = await call(tenant.token, "GET", `/v1/tenants/${tenant.slug}/integrations/aws/external-id`);
  expect(answer.status, answer.text).toBe(200);
  return answer.body.external_id;
}

/** A role in the customer's account that trusts the platform's account WITHOUT an sts:ExternalId condition. */
const createRoleWithoutCondition = (accountId: string, roleName: string) => createBootstrapRole({ accountId, roleName, externalId: null });

const stored = async (tenant: Tenant) =>
  database.db.select().from(integrationCredentials).where(eq(integrationCredentials.organizationId, tenant.id));

describe("the STS stand-in behaves as AWS does for the external ID", () => {
  it("a trust policy without an ExternalId condition admits any external ID and none; with it, only the right one", async () => {
    const account = newAccountId();
    const open = await createRoleWithoutCondition(account, "MiniXdrBootstrap");
    const guarded = await createBootstrapRole({ accountId: account, roleName: "MiniXdrBootstrap-guarded", externalId: "mxdr-ext_the-right-one" });
    const assume = (roleArn: string, externalId: string | undefined) =>
      verifyBootstrapRoleWithSts({ roleArn, externalId, region: "us-east-1", sessionName: "standin-check" });
    expect(await assume(open, "mxdr-ext_anything-at-all")).toEqual({ assumed: true });
    expect(await assume(open, undefined)).toEqual({ assumed: true });
    expect(await assume(guarded, "mxdr-ext_the-right-one")).toEqual({ assumed: true });
    expect(await assume(guarded, "mxdr-ext_a-wrong-one-0000")).toMatchObject({ assumed: false, denied: true });
    expect(await assume(guarded, undefined)).toMatchObject({ assumed: false, denied: true });
  });
});

describe("the external ID is the service's", () => {
  it("two tenants never share an external ID, and each reads the same one every time", async () => {
    const [a, b] = [await newTenant("ext-a"), await newTenant("ext-b")];
    const [idA, idB] = [await externalIdOf(a), await externalIdOf(b)];
    expect(idA).toMatch(/^mxdr-ext_[\w-]{43}$/);
    expect(idB).not.toBe(idA);
    expect(await externalIdOf(a)).toBe(idA);
    // Stored sealed, never in clear, and unique by its hash even if a row were copied to another tenant.
    const [row] = await database.db.select().from(tenantExternalIds).where(eq(tenantExternalIds.organizationId, a.id));
    expect(row!.externalIdSealed).not.toContain(idA);
    await expect(
      database.db.update(tenantExternalIds).set({ externalIdHash: row!.externalIdHash }).where(eq(tenantExternalIds.organizationId, b.id)),
    ).rejects.toThrow();
    expect(hashToken(idA)).toBe(row!.externalIdHash);
  });

  it("PUT integrations/aws refuses a chosen external ID with a 400 naming the field; the seed set accepts only the tenant's own", async () => {
    const tenant = await newTenant("ext-choose");
    const externalId = await externalIdOf(tenant);
    const roleArn = await createBootstrapRole({ accountId: tenant.account, roleName: "MiniXdrBootstrap", externalId });
    const chosen = await call(tenant.token, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, {
      bootstrap_role_arn: roleArn,
      external_id: "mxdr-ext_chosen-by-the-caller",
    });
    expect(chosen.status, chosen.text).toBe(400);
    expect(chosen.body.error.fields).toEqual([{ field: "external_id", message: expect.stringContaining("is generated by the service") }]);
    // Even the right one: the field is not the caller's to send on /v1.
    expect(
      (await call(tenant.token, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { bootstrap_role_arn: roleArn, external_id: externalId }))
        .status,
    ).toBe(400);

    const setup = (external_id: string) =>
      call(tenant.token, "POST", "/api/onboarding/v2/integrations/setup", { provider: "aws", credentials: { role_arn: roleArn, external_id } });
    // Well formed but not the tenant's: 422 (400 is for what the schema refuses).
    const wrong = await setup("mxdr-ext_chosen-by-the-caller");
    expect(wrong.status, wrong.text).toBe(422);
    expect(wrong.body.error.fields).toEqual([{ field: "credentials.external_id", message: expect.stringContaining("is generated by the service") }]);
    expect(await stored(tenant)).toEqual([]);
    expect((await setup(externalId)).status).toBe(200);
  });
});

describe("a role is stored only when it answers to the tenant's external ID alone", () => {
  it("a role whose trust policy lacks the ExternalId condition is refused (422), and nothing is stored", async () => {
    const tenant = await newTenant("no-cond");
    const roleArn = await createRoleWithoutCondition(tenant.account, "MiniXdrBootstrap");
    const before = sts.calls.length;
    const refused = await call(tenant.token, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { bootstrap_role_arn: roleArn });
    expect(refused.status, refused.text).toBe(422);
    expect(refused.body.error).toMatchObject({ code: "external_id_not_required", message: NOT_REQUIRED });
    expect(refused.body.error.fields).toEqual([{ field: "bootstrap_role_arn", message: NOT_REQUIRED }]);
    expect(await stored(tenant)).toEqual([]);
    // The platform asked with the tenant's ID (admitted) and with a wrong one (admitted too: that is the finding).
    const probes = sts.calls.slice(before);
    expect(probes.map((c) => c.admitted)).toEqual([true, true]);
    expect(probes[1]!.externalId).not.toBe(probes[0]!.externalId);

    // The seed set refuses it the same way.
    const setup = await call(tenant.token, "POST", "/api/onboarding/v2/integrations/setup", { provider: "aws", credentials: { role_arn: roleArn } });
    expect(setup.status, setup.text).toBe(422);
    expect(setup.body.error.code).toBe("external_id_not_required");
  });

  it("a role that requires the tenant's external ID is connected after a right, a wrong and a missing one were tried", async () => {
    const tenant = await newTenant("guarded");
    const externalId = await externalIdOf(tenant);
    const roleArn = await createBootstrapRole({ accountId: tenant.account, roleName: "MiniXdrBootstrap", externalId });
    const before = sts.calls.length;
    const connected = await call(tenant.token, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { bootstrap_role_arn: roleArn });
    expect(connected.status, connected.text).toBe(201);
    expect(connected.body).toMatchObject({ status: "active", external_id_masked: `****${externalId.slice(-4)}` });
    expect(
      sts.calls.slice(before).map((c) => [c.externalId === externalId ? "right" : c.externalId === null ? "none" : "wrong", c.admitted]),
    ).toEqual([
      ["right", true],
      ["wrong", false],
      ["none", false],
    ]);
  });

  it("a role the platform cannot assume is refused in neutral words: STS's text does not reach the tenant", async () => {
    const tenant = await newTenant("missing");
    const refused = await call(tenant.token, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, {
      bootstrap_role_arn: `arn:aws:iam::${tenant.account}:role/MiniXdrBootstrap`,
    });
    expect(refused.status, refused.text).toBe(422);
    expect(refused.body.error.code).toBe("credentials_rejected");
    expect(refused.text).not.toMatch(/AccessDenied|not authorized|MiniXdrPlatform/);
  });

  it("the bootstrap wait does not connect a role without the condition: it keeps waiting and says why", async () => {
    const tenant = await newTenant("wait-open");
    const externalId = await externalIdOf(tenant);
    const roleArn = await createRoleWithoutCondition(tenant.account, `MiniXdrBootstrap-${tenant.slug}`);
    const now = new Date();
    const sealed = encryptJson({ bootstrapRoleArn: roleArn, externalId }, awsCredentialContext(tenant.id), keyring);
    await database.db.insert(integrationCredentials).values({
      organizationId: tenant.id,
      provider: "aws",
      credentialType: "aws_assume_role",
      credentialData: sealed.envelope,
      encryptionKeyId: sealed.keyId,
      status: "pending",
      connectionCheck: { status: "waiting", attempts: 0, startedAt: now.toISOString(), deadline: new Date(now.getTime() + 600_000).toISOString() },
    });
    const warnings: string[] = [];
    const next = await attemptConnection(
      {
        db: database.db,
        keyring,
        verifyBootstrapRole: verifyBootstrapRoleWithSts,
        onConnected: () => expect.fail("a role without the ExternalId condition was connected"),
        warn: (message) => warnings.push(message),
      },
      tenant.id,
      now,
    );
    expect(next).toBeGreaterThan(0);
    const [row] = await stored(tenant);
    expect(row).toMatchObject({ status: "pending", connectionCheck: { status: "waiting", attempts: 1, lastError: NOT_REQUIRED } });
    expect(warnings).toEqual([expect.stringContaining("external_id_not_required")]);
  });
});

describe("the role must be ours, in the tenant's account, never in the platform's", () => {
  it("a role in another account, with another name, or in the platform's accounts is refused naming the field (400 where the schema says so, else 422)", async () => {
    const tenant = await newTenant("rules");
    const externalId = await externalIdOf(tenant);
    const victim = newAccountId();
    // The role's name is in the schema's pattern (400); the accounts depend on the tenant and the platform (422).
    const cases: Record<string, [string, number]> = {
      "another account": [await createBootstrapRole({ accountId: victim, roleName: "MiniXdrBootstrap", externalId }), 422],
      "another name": [await createBootstrapRole({ accountId: tenant.account, roleName: "OrganizationAdmin", externalId }), 400],
      "the platform principal's account": [`arn:aws:iam::${PLATFORM_ACCOUNT}:role/MiniXdrBootstrap`, 422],
      "a configured platform account": [`arn:aws:iam::${OTHER_PLATFORM_ACCOUNT}:role/MiniXdrBootstrap`, 422],
    };
    const before = sts.calls.length;
    for (const [name, [roleArn, status]] of Object.entries(cases)) {
      const refused = await call(tenant.token, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { bootstrap_role_arn: roleArn });
      expect(refused.status, `${name}: ${refused.text}`).toBe(status);
      expect(
        refused.body.error.fields.map((f: { field: string }) => f.field),
        name,
      ).toEqual(["bootstrap_role_arn"]);
    }
    expect(sts.calls.length, "no refused role was even tried").toBe(before);
    expect(await stored(tenant)).toEqual([]);
  });

  it("the platform's accounts are refused as a tenant's aws_account_id, on create and on update, even for an admin", async () => {
    for (const account of [PLATFORM_ACCOUNT, OTHER_PLATFORM_ACCOUNT]) {
      const created = await call(admin, "POST", "/v1/tenants", {
        slug: `plat-${randomBytes(3).toString("hex")}`,
        name: "Platform",
        integration_settings: { aws_account_id: account },
      });
      expect(created.status, created.text).toBe(422);
      expect(created.body.error.fields).toEqual([
        { field: "integration_settings.aws_account_id", message: expect.stringContaining("platform's own AWS accounts") },
      ]);
    }
    const tenant = await newTenant("plat-patch");
    for (const token of [admin, tenant.token]) {
      const patched = await call(token, "PATCH", `/v1/tenants/${tenant.slug}`, { integration_settings: { aws_account_id: PLATFORM_ACCOUNT } });
      expect(patched.status, patched.text).toBe(422);
    }
  });
});

describe("only an operator moves a connected tenant to another account", () => {
  it("a tenant token cannot change aws_account_id of a connected tenant (403); an admin can", async () => {
    const tenant = await newTenant("move");
    const externalId = await externalIdOf(tenant);
    // Before it is connected, the tenant may correct its own account.
    const corrected = newAccountId();
    const fixed = await call(tenant.token, "PATCH", `/v1/tenants/${tenant.slug}`, { integration_settings: { aws_account_id: corrected } });
    expect(fixed.status, fixed.text).toBe(200);
    tenant.account = corrected;
    const roleArn = await createBootstrapRole({ accountId: tenant.account, roleName: "MiniXdrBootstrap", externalId });
    expect((await call(tenant.token, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { bootstrap_role_arn: roleArn })).status).toBe(201);

    const elsewhere = newAccountId();
    const moved = await call(tenant.token, "PATCH", `/v1/tenants/${tenant.slug}`, { integration_settings: { aws_account_id: elsewhere } });
    expect(moved.status, moved.text).toBe(403);
    expect(moved.body.error).toMatchObject({ code: "account_change_forbidden", message: expect.stringContaining("only a platform admin") });
    const removed = await call(tenant.token, "PATCH", `/v1/tenants/${tenant.slug}`, { integration_settings: { aws_account_id: null } });
    expect(removed.status, removed.text).toBe(403);

    // Re-connecting to a role in another account is the same move.
    const otherRole = await createBootstrapRole({ accountId: elsewhere, roleName: "MiniXdrBootstrap", externalId });
    const reconnect = await call(tenant.token, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { bootstrap_role_arn: otherRole });
    expect(reconnect.status, reconnect.text).toBe(403);
    expect((await call(admin, "GET", `/v1/tenants/${tenant.slug}`)).body.integration_settings.aws_account_id).toBe(tenant.account);

    // The operator may: the account first (one place changes it), then the role in it.
    expect((await call(admin, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { bootstrap_role_arn: otherRole })).status).toBe(422);
    const byAdmin = await call(admin, "PATCH", `/v1/tenants/${tenant.slug}`, { integration_settings: { aws_account_id: elsewhere } });
    expect(byAdmin.status, byAdmin.text).toBe(200);
    expect(byAdmin.body.integration_settings.aws_account_id).toBe(elsewhere);
    expect((await call(admin, "PUT", `/v1/tenants/${tenant.slug}/integrations/aws`, { bootstrap_role_arn: otherRole })).status).toBe(200);
  });
});
