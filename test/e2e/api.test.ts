/**
 * The API as a user sees it: the real server process (api/server.ts, bundled and run as `npm start` does) on a free
 * port on 127.0.0.1, driven with fetch, against a real PostgreSQL server (TEST_DATABASE_URL,
 * from scripts/postgres.sh; a scratch database per run); the start-up configuration on the embedded
 * default (the service's own embedded server under DATA_DIR). At the end the server is stopped with SIGTERM and the database rows are read
 * directly: credentials encrypted, audit rows with actors, no secret in any row or log line.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { asc } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../db/client";
import { decryptJson } from "../../db/crypto";
import { auditLog, integrationCredentials } from "../../db/schema";
import { allowServerUser, destroyEmbeddedServer } from "../../db/embedded-server";
import { createBootstrapRole } from "../harness/customer-account";
import { startServer, type Server } from "../harness/service-process";
import { serviceUnderTest } from "../harness/service-under-test";
import { newAccountId, tenantExternalIdThroughApi } from "../harness/tenants";

const PLATFORM_PRINCIPAL = "arn:aws:iam::999999999999:role/MiniXdrPlatform";
/** The customers' accounts in moto, fresh for this run (a role left by another run would trust another external ID). */
const ACCOUNT = newAccountId();
const OTHER_ACCOUNT = newAccountId();
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/MiniXdrBootstrap`;
const OTHER_ROLE_ARN = `arn:aws:iam::${OTHER_ACCOUNT}:role/MiniXdrBootstrap`;

describe("API on real PostgreSQL", () => {
  const service = serviceUnderTest({ name: "e2e", workspace: "data-dir", platformPrincipalArn: PLATFORM_PRINCIPAL });
  const { call, adminToken, responses } = service;
  const encryptionKey = service.encryptionKey!;
  /** Secrets that must never appear in responses (after their one showing), rows or logs. */
  const secrets: string[] = [adminToken, encryptionKey];
  let tenantToken = "";

  const slugA = `acme-${randomBytes(3).toString("hex")}`;
  const slugB = `globex-${randomBytes(3).toString("hex")}`;
  const suppliedExternalId = `ext-${randomBytes(16).toString("hex")}`;
  /** The external IDs the service generated for acme and globex. */
  const generated = { a: "", b: "" };

  it("a. answers /healthz, /openapi.json and /docs without a token", async () => {
    expect((await call("GET", "/healthz", { token: null })).body).toEqual({ status: "ok" });
    const doc = await call("GET", "/openapi.json", { token: null });
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining(["/v1/tenants", "/v1/tenants/{slug}", "/v1/tenants/{slug}/integrations/aws", "/v1/tenants/{slug}/tokens"]),
    );
    const docs = await call("GET", "/docs", { token: null });
    expect(docs.status).toBe(200);
    expect(docs.text).toContain("/openapi.json");
  });

  it("b. refuses calls without a valid token (401)", async () => {
    const missing = await call("GET", "/v1/tenants", { token: null });
    expect(missing.status).toBe(401);
    expect(missing.body.error.code).toBe("unauthorized");
    expect((await call("GET", "/v1/tenants", { token: "mxdr-admin_not-a-real-token-at-all-0000000000" })).status).toBe(401);
    expect((await call("POST", "/v1/tenants", { token: null, body: { slug: "x-y-z", name: "x" } })).status).toBe(401);
  });

  it("c. creates, gets, lists and patches tenants", async () => {
    const acmeSettings = {
      agent_public_base_url: "https://agents.mini-xdr.example.com",
      regions: ["us-east-1", "eu-west-1"],
      home_region: "us-east-1",
      aws_account_id: ACCOUNT,
      target_tag: { key: "xdr:monitor", value: "true" },
      require_approval: true,
    };
    const created = await call("POST", "/v1/tenants", { body: { slug: slugA, name: "Acme Corp", integration_settings: acmeSettings } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      slug: slugA,
      name: "Acme Corp",
      onboarding_flow_version: "quick_start",
      auto_discovery_enabled: true,
      onboarding_status: "not_started",
      integration_settings: acmeSettings,
      offboarded_at: null,
    });
    const second = await call("POST", "/v1/tenants", {
      body: { slug: slugB, name: "Globex", onboarding_flow_version: "legacy", auto_discovery_enabled: false },
    });
    expect(second.status).toBe(201);
    expect(second.body).toMatchObject({ onboarding_flow_version: "legacy", auto_discovery_enabled: false, integration_settings: {} });

    const duplicate = await call("POST", "/v1/tenants", { body: { slug: slugA, name: "again" } });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.error.code).toBe("conflict");

    expect((await call("GET", `/v1/tenants/${slugA}`)).body).toEqual(created.body);
    const list = await call("GET", "/v1/tenants");
    expect(list.status).toBe(200);
    expect(list.body.tenants.map((tenant: { slug: string }) => tenant.slug)).toEqual(expect.arrayContaining([slugA, slugB]));

    const patched = await call("PATCH", `/v1/tenants/${slugA}`, {
      body: { name: "Acme Corporation", integration_settings: { require_approval: false, target_tag: null } },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.name).toBe("Acme Corporation");
    expect(patched.body.integration_settings.require_approval).toBe(false);
    expect(patched.body.integration_settings).not.toHaveProperty("target_tag");
    expect(patched.body.integration_settings.regions).toEqual(["us-east-1", "eu-west-1"]);

    expect((await call("GET", "/v1/tenants/no-such-tenant")).status).toBe(404);
  });

  it("d (after c). connects AWS with the external ID the service generated (a chosen one is refused); the integration shows it masked", async () => {
    generated.a = await tenantExternalIdThroughApi(call, slugA);
    expect(generated.a).toMatch(/^mxdr-ext_[\w-]{43}$/);
    expect(await tenantExternalIdThroughApi(call, slugA)).toBe(generated.a);
    await createBootstrapRole({ accountId: ACCOUNT, roleName: "MiniXdrBootstrap", externalId: generated.a, trustedAccountId: "999999999999" });
    const chosen = await call("PUT", `/v1/tenants/${slugA}/integrations/aws`, {
      body: { bootstrap_role_arn: ROLE_ARN, external_id: suppliedExternalId },
    });
    expect(chosen.status).toBe(400);
    expect(chosen.body.error.fields).toEqual([{ field: "external_id", message: expect.stringContaining("is generated by the service") }]);
    secrets.push(suppliedExternalId);

    const connected = await call("PUT", `/v1/tenants/${slugA}/integrations/aws`, { body: { bootstrap_role_arn: ROLE_ARN } });
    expect(connected.status).toBe(201);
    expect(connected.body).toMatchObject({
      provider: "aws",
      status: "active",
      credential_type: "aws_assume_role",
      bootstrap_role_arn: ROLE_ARN,
      aws_account_id: ACCOUNT,
      external_id_generated: true,
    });
    expect(connected.body.external_id_masked).toBe(`****${generated.a.slice(-4)}`);
    expect(connected.body).not.toHaveProperty("external_id");
    // Connected by hand (role ARN given): no wait for a quick-create stack was involved.
    expect(connected.body.connection_check).toMatchObject({ status: "not_started", attempts: 0 });

    const status = await call("GET", `/v1/tenants/${slugA}/integrations/aws`);
    expect(status.status).toBe(200);
    expect(status.body.external_id_masked).toBe(connected.body.external_id_masked);

    // Replacing: 200, the same external ID.
    const replaced = await call("PUT", `/v1/tenants/${slugA}/integrations/aws`, { body: { bootstrap_role_arn: ROLE_ARN } });
    expect(replaced.status).toBe(200);
    expect(replaced.body.external_id_masked).toBe(connected.body.external_id_masked);
    expect(replaced.text).not.toContain(generated.a);

    // B: its own external ID; connect, then delete.
    generated.b = await tenantExternalIdThroughApi(call, slugB);
    expect(generated.b).not.toBe(generated.a);
    await createBootstrapRole({ accountId: OTHER_ACCOUNT, roleName: "MiniXdrBootstrap", externalId: generated.b, trustedAccountId: "999999999999" });
    expect((await call("PUT", `/v1/tenants/${slugB}/integrations/aws`, { body: { bootstrap_role_arn: OTHER_ROLE_ARN } })).status).toBe(201);
    expect((await call("DELETE", `/v1/tenants/${slugB}/integrations/aws`)).status).toBe(204);
    expect((await call("GET", `/v1/tenants/${slugB}/integrations/aws`)).status).toBe(404);
    expect((await call("DELETE", `/v1/tenants/${slugB}/integrations/aws`)).status).toBe(404);
    // ... and connect again, with the same external ID (it is the tenant's), which the last test looks for everywhere.
    expect((await call("PUT", `/v1/tenants/${slugB}/integrations/aws`, { body: { bootstrap_role_arn: OTHER_ROLE_ARN } })).status).toBe(201);
  });

  it("e (after c). answers 501 for azure and gcp", async () => {
    for (const provider of ["azure", "gcp"]) {
      const response = await call("PUT", `/v1/tenants/${slugA}/integrations/${provider}`, { body: { credentials: {} } });
      expect(response.status).toBe(501);
      expect(response.body.error.code).toBe("not_implemented");
      expect(response.body.error.message).toMatch(/not supported yet/);
    }
  });

  it("f (after c, d). issues a tenant token once; it sees its own tenant and nothing of another (404)", async () => {
    const issued = await call("POST", `/v1/tenants/${slugA}/tokens`, { body: { name: "acme-admin" } });
    expect(issued.status).toBe(201);
    expect(issued.body).toMatchObject({ name: "acme-admin", scope: "tenant", tenant: slugA });
    tenantToken = issued.body.token;
    expect(tenantToken).toMatch(/^mxdr-tenant_/);
    secrets.push(tenantToken);
    const seenBefore = responses.length;

    const own = await call("GET", `/v1/tenants/${slugA}`, { token: tenantToken });
    expect(own.status).toBe(200);
    const list = await call("GET", "/v1/tenants", { token: tenantToken });
    expect(list.body.tenants.map((tenant: { slug: string }) => tenant.slug)).toEqual([slugA]);
    expect((await call("GET", `/v1/tenants/${slugA}/integrations/aws`, { token: tenantToken })).status).toBe(200);

    const unknown = await call("GET", "/v1/tenants/no-such-tenant", { token: tenantToken });
    for (const [method, path, body] of [
      ["GET", `/v1/tenants/${slugB}`, undefined],
      ["PATCH", `/v1/tenants/${slugB}`, { name: "pwned" }],
      ["GET", `/v1/tenants/${slugB}/integrations/aws`, undefined],
      ["PUT", `/v1/tenants/${slugB}/integrations/aws`, { bootstrap_role_arn: OTHER_ROLE_ARN }],
      ["DELETE", `/v1/tenants/${slugB}/integrations/aws`, undefined],
      ["PUT", `/v1/tenants/${slugB}/integrations/azure`, {}],
    ] as const) {
      const response = await call(method, path, { token: tenantToken, body });
      expect(response.status, `${method} ${path}`).toBe(404);
      // Indistinguishable from a tenant that does not exist (apart from the slug in the message).
      expect(response.body.error.code).toBe(unknown.body.error.code);
    }
    expect((await call("GET", `/v1/tenants/${slugB}`)).body.name).toBe("Globex");

    // Where the agent is downloaded from, the approval gate and the onboarding flow are the platform's to change.
    const adminOnly = await call("PATCH", `/v1/tenants/${slugA}`, {
      token: tenantToken,
      body: {
        onboarding_flow_version: "legacy",
        integration_settings: { agent_public_base_url: "https://evil.example.com", require_approval: false },
      },
    });
    expect(adminOnly.status).toBe(403);
    expect(adminOnly.body.error.fields.map((field: { field: string }) => field.field)).toEqual([
      "onboarding_flow_version",
      "integration_settings.agent_public_base_url",
      "integration_settings.require_approval",
    ]);
    expect((await call("PATCH", `/v1/tenants/${slugA}`, { token: tenantToken, body: { auto_discovery_enabled: true } })).status).toBe(200);

    // Admin-only calls: 403 on its own tenant; another tenant stays invisible (404, as if it did not exist).
    expect((await call("POST", "/v1/tenants", { token: tenantToken, body: { slug: "evil-corp", name: "x" } })).status).toBe(403);
    expect((await call("POST", `/v1/tenants/${slugA}/tokens`, { token: tenantToken, body: { name: "more" } })).status).toBe(403);
    expect((await call("POST", `/v1/tenants/${slugB}/tokens`, { token: tenantToken, body: { name: "more" } })).status).toBe(404);

    // The token was shown once: nothing after its creation contained it.
    for (const text of responses.slice(seenBefore)) expect(text).not.toContain(tenantToken);
  });

  type BadInput = {
    name: string;
    method: string;
    path: () => string;
    body?: unknown;
    raw?: string;
    headers?: Record<string, string>;
    fields: string[];
    code?: string;
  };
  const badInputs: BadInput[] = [
    { name: "slug with spaces", method: "POST", path: () => "/v1/tenants", body: { slug: "Bad Slug", name: "x" }, fields: ["slug"] },
    { name: "missing name", method: "POST", path: () => "/v1/tenants", body: { slug: "ok-slug" }, fields: ["name"] },
    { name: "missing everything", method: "POST", path: () => "/v1/tenants", body: {}, fields: ["slug", "name"] },
    {
      name: "unknown flow",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: "ok-slug", name: "x", onboarding_flow_version: "v3" },
      fields: ["onboarding_flow_version"],
    },
    {
      name: "non-boolean auto discovery",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: "ok-slug", name: "x", auto_discovery_enabled: "yes" },
      fields: ["auto_discovery_enabled"],
    },
    { name: "unknown field", method: "POST", path: () => "/v1/tenants", body: { slug: "ok-slug", name: "x", colour: "red" }, fields: ["colour"] },
    {
      name: "http agent URL, bad region, bad account",
      method: "POST",
      path: () => "/v1/tenants",
      body: {
        slug: "ok-slug",
        name: "x",
        integration_settings: { agent_public_base_url: "http://agents.example.com", regions: ["us-east-1", "mars-north-1"], aws_account_id: "123" },
      },
      fields: ["integration_settings.agent_public_base_url", "integration_settings.regions.1", "integration_settings.aws_account_id"],
    },
    {
      name: "empty target tag key",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: "ok-slug", name: "x", integration_settings: { target_tag: { key: "", value: "v" } } },
      fields: ["integration_settings.target_tag.key"],
    },
    { name: "malformed JSON", method: "POST", path: () => "/v1/tenants", raw: "{not json", fields: [], code: "invalid_json" },
    { name: "bad limit", method: "GET", path: () => "/v1/tenants?limit=0", fields: ["query.limit"] },
    { name: "bad slug in path", method: "GET", path: () => "/v1/tenants/NOT_A_SLUG", fields: ["param.slug"] },
    { name: "patch: empty name", method: "PATCH", path: () => `/v1/tenants/${slugA}`, body: { name: "" }, fields: ["name"] },
    {
      name: "aws: not a role ARN",
      method: "PUT",
      path: () => `/v1/tenants/${slugA}/integrations/aws`,
      body: { bootstrap_role_arn: "arn:aws:iam::123:user/bob" },
      fields: ["bootstrap_role_arn"],
    },
    {
      name: "aws: short external ID",
      method: "PUT",
      path: () => `/v1/tenants/${slugA}/integrations/aws`,
      body: { bootstrap_role_arn: ROLE_ARN, external_id: "short" },
      fields: ["external_id"],
    },
    { name: "aws: missing role", method: "PUT", path: () => `/v1/tenants/${slugA}/integrations/aws`, body: {}, fields: ["bootstrap_role_arn"] },
    { name: "token: missing name", method: "POST", path: () => `/v1/tenants/${slugA}/tokens`, body: {}, fields: ["name"] },
    {
      name: "bad Idempotency-Key",
      method: "POST",
      path: () => `/v1/tenants/${slugA}/tokens`,
      body: { name: "x" },
      headers: { "idempotency-key": "x".repeat(300) },
      fields: ["header.idempotency-key"],
    },
  ];

  /** Well formed (the schema admits them), refused by what they contradict: 422 naming the fields. */
  const contradictions: BadInput[] = [
    {
      name: "home region outside regions",
      method: "POST",
      path: () => "/v1/tenants",
      body: { slug: "ok-slug", name: "x", integration_settings: { regions: ["eu-west-1"], home_region: "us-east-1" } },
      fields: ["integration_settings.regions"],
      code: "inconsistent_settings",
    },
    {
      name: "patch: regions without home region",
      method: "PATCH",
      path: () => `/v1/tenants/${slugA}`,
      body: { integration_settings: { regions: ["eu-west-1"] } },
      fields: ["integration_settings.regions"],
      code: "inconsistent_settings",
    },
    {
      name: "aws: role in another account",
      method: "PUT",
      path: () => `/v1/tenants/${slugA}/integrations/aws`,
      body: { bootstrap_role_arn: OTHER_ROLE_ARN },
      fields: ["bootstrap_role_arn"],
      code: "role_not_in_tenant_account",
    },
  ];

  it.each(contradictions)("g (after c). answers 422 naming the fields a well-formed request contradicts: $name", async (testCase) => {
    const response = await call(testCase.method, testCase.path(), { body: testCase.body, raw: testCase.raw, headers: testCase.headers });
    expect(response.status, response.text).toBe(422);
    expect(response.body.error.code).toBe(testCase.code);
    expect(response.body.error.fields.map((field: { field: string }) => field.field).sort()).toEqual([...testCase.fields].sort());
  });

  it.each(badInputs)("h. answers 400 naming the bad fields: $name", async (testCase) => {
    const response = await call(testCase.method, testCase.path(), { body: testCase.body, raw: testCase.raw, headers: testCase.headers });
    expect(response.status).toBe(400);
    expect(response.body.error.code).toBe(testCase.code ?? "validation_failed");
    expect(typeof response.body.error.message).toBe("string");
    if (testCase.fields.length > 0) {
      expect(response.body.error.fields.map((field: { field: string }) => field.field).sort()).toEqual([...testCase.fields].sort());
      for (const field of response.body.error.fields) expect(field.message).toEqual(expect.any(String));
    }
  });

  it("i. answers 413 to a body over the limit", async () => {
    const huge = { slug: "huge-body", name: "x".repeat(200 * 1024) };
    const response = await call("POST", "/v1/tenants", { body: huge });
    expect(response.status).toBe(413);
    expect(response.body.error.code).toBe("payload_too_large");
    expect((await call("GET", "/v1/tenants/huge-body")).status).toBe(404);
  });

  it("j. replays the first answer for a repeated Idempotency-Key from the same actor", async () => {
    const slug = `idem-${randomBytes(3).toString("hex")}`;
    const key = `key-${randomBytes(8).toString("hex")}`;
    const first = await call("POST", "/v1/tenants", { body: { slug, name: "Idem" }, headers: { "idempotency-key": key } });
    expect(first.status).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    const again = await call("POST", "/v1/tenants", { body: { slug, name: "Idem" }, headers: { "idempotency-key": key } });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    // Without the key the same request is a new one: 409, the tenant exists once.
    expect((await call("POST", "/v1/tenants", { body: { slug, name: "Idem" } })).status).toBe(409);
    // The same key for a different request is refused, not replayed.
    const reused = await call("POST", "/v1/tenants", { body: { slug: `${slug}-2`, name: "Other" }, headers: { "idempotency-key": key } });
    expect(reused.status).toBe(422);
    expect(reused.body.error.code).toBe("idempotency_key_reused");

    // A token shown once is shown again only to a retry of the same request by the same actor.
    const tokenKey = `key-${randomBytes(8).toString("hex")}`;
    const issued = await call("POST", `/v1/tenants/${slug}/tokens`, { body: { name: "ci" }, headers: { "idempotency-key": tokenKey } });
    const replayed = await call("POST", `/v1/tenants/${slug}/tokens`, { body: { name: "ci" }, headers: { "idempotency-key": tokenKey } });
    expect(issued.status).toBe(201);
    expect(replayed.body).toEqual(issued.body);
    secrets.push(issued.body.token);

    // Concurrent requests with one key: the handler runs once; the others replay it or are told it is in progress.
    const raceSlug = `race-${randomBytes(3).toString("hex")}`;
    const raceKey = `key-${randomBytes(8).toString("hex")}`;
    const racers = await Promise.all(
      Array.from({ length: 5 }, () =>
        call("POST", "/v1/tenants", { body: { slug: raceSlug, name: "Race" }, headers: { "idempotency-key": raceKey } }),
      ),
    );
    const created = racers.filter((racer) => racer.status === 201);
    expect(racers.every((racer) => racer.status === 201 || racer.status === 409)).toBe(true);
    expect(created.length).toBeGreaterThanOrEqual(1);
    for (const racer of created) expect(racer.body).toEqual(created[0]!.body);
    for (const racer of racers.filter((r) => r.status === 409)) expect(racer.body.error.message).toMatch(/in progress/);

    // A failed request releases its key: the corrected retry with the same key runs.
    const failKey = `key-${randomBytes(8).toString("hex")}`;
    expect((await call("POST", `/v1/tenants/${slug}/tokens`, { body: { name: "" }, headers: { "idempotency-key": failKey } })).status).toBe(400);
    const corrected = await call("POST", `/v1/tenants/${slug}/tokens`, { body: { name: "fixed" }, headers: { "idempotency-key": failKey } });
    expect(corrected.status).toBe(201);
    expect(corrected.headers.get("idempotent-replayed")).toBeNull();
    secrets.push(corrected.body.token);
  });

  it("k (after c, d, f, j). shuts down cleanly on SIGTERM; rows hold actors, encrypted credentials and no secret", async () => {
    const { server } = service;
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);

    const database = await openDatabase({ databaseUrl: service.databaseUrl, dataDir: service.dataDir });
    try {
      const credentials = await database.db.select().from(integrationCredentials).orderBy(asc(integrationCredentials.organizationId));
      expect(credentials).toHaveLength(2);
      const [forA, forB] = credentials.map((row) => {
        expect(row.credentialData).toMatch(/^v1:/);
        return decryptJson<{ bootstrapRoleArn: string; externalId: string }>(
          row.credentialData,
          { organizationId: row.organizationId, provider: "aws" },
          { key: encryptionKey },
        );
      });
      expect(forA).toEqual({ bootstrapRoleArn: ROLE_ARN, externalId: generated.a });
      expect(forB).toEqual({ bootstrapRoleArn: OTHER_ROLE_ARN, externalId: generated.b });
      secrets.push(generated.a, generated.b);

      const audit = await database.db.select().from(auditLog).orderBy(asc(auditLog.id));
      const actions = audit.map((row) => row.action);
      expect(actions).toEqual(
        expect.arrayContaining([
          "tenant.create",
          "tenant.update",
          "integration.aws.connect",
          "integration.aws.replace",
          "integration.aws.delete",
          "token.create",
        ]),
      );
      for (const row of audit) {
        expect(row.actor).toMatch(/^token:\d+$/);
        expect(row.details).toMatchObject({ actorName: expect.any(String), actorScope: expect.stringMatching(/^(platform_admin|tenant)$/) });
      }
      // The one change a tenant token made: its own tenant's auto-discovery setting.
      expect(audit.filter((row) => row.details.actorScope === "tenant").map((row) => row.action)).toEqual(["tenant.update"]);
      // Rejected calls (403/404/400/413) changed nothing and were not recorded as changes.
      // (acme, globex, idem and race: the race's five requests created one tenant.)
      expect(audit.filter((row) => row.action === "tenant.create")).toHaveLength(4);

      // Every row of every table, as text: no token, external ID or key in plaintext.
      const tables = await database.sql<{ table_name: string }[]>`
        select table_name from information_schema.tables where table_schema = 'public'`;
      let dump = "";
      for (const { table_name } of tables) {
        dump += JSON.stringify(await database.sql.unsafe(`select * from "${table_name}"`));
      }
      expect(dump).toContain(ROLE_ARN.split(":")[4]!); // the dump is real (the account id is not secret)
      for (const secret of secrets) expect(dump).not.toContain(secret);
    } finally {
      await database.close();
    }

    const allResponses = responses.join("\n");
    for (const secret of [adminToken, encryptionKey, suppliedExternalId]) expect(allResponses).not.toContain(secret);
    // The generated external IDs are the tenant's to read (GET .../external-id, for its role's trust policy); no other answer carries them.
    const otherResponses = responses.filter((text) => !text.includes('"bootstrap_role_name"')).join("\n");
    for (const secret of [generated.a, generated.b]) expect(otherResponses).not.toContain(secret);
    const logs = server.stdout() + server.stderr();
    for (const secret of secrets) expect(logs).not.toContain(secret);
    expect(server.stdout()).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
  });
});

describe("server start-up configuration (embedded server)", () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "mxdr-e2e-config-"));
    await allowServerUser(dataDir);
  });

  afterAll(async () => {
    await destroyEmbeddedServer(join(dataDir, "postgres"));
    await rm(dataDir, { recursive: true, force: true });
  });

  async function stop(server: Server): Promise<void> {
    server.child.kill("SIGTERM");
    expect(await server.exited).toBe(0);
  }

  it("refuses an invalid environment with one error naming each bad variable", async () => {
    const failed = startServer({
      HOST: "127.0.0.1",
      PORT: "not-a-port",
      DATA_DIR: dataDir,
      DATABASE_URL: "mysql://localhost/x",
      CREDENTIALS_ENCRYPTION_KEY: "too-short-secret-value",
      PLATFORM_PRINCIPAL_ARN: "not-an-arn",
      SHUTDOWN_GRACE_SECONDS: "-1",
      PULUMI_CLI_ENV_PASSTHROUGH: "HOME,ADMIN_TOKEN",
    });
    const error = (await failed.then(
      () => undefined,
      (reason: Error) => reason,
    ))!;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toMatch(/exited \(1\)/);
    expect(error.message).toContain("invalid service configuration");
    for (const variable of [
      "PORT",
      "DATABASE_URL",
      "CREDENTIALS_ENCRYPTION_KEY",
      "PLATFORM_PRINCIPAL_ARN",
      "SHUTDOWN_GRACE_SECONDS",
      "PULUMI_CLI_ENV_PASSTHROUGH",
    ]) {
      expect(error.message).toContain(`${variable}:`);
    }
    // The secret's value is never echoed.
    expect(error.message).not.toContain("too-short-secret-value");
  });

  it("generates the admin token into a mode-600 file the start-up line names, never printed, and the credentials key (mode 600), on first start only", async () => {
    const env = { HOST: "127.0.0.1", PORT: "0", DATA_DIR: dataDir };
    const first = await startServer(env);
    const tokenFile = join(dataDir, "admin-token");
    expect(first.stdout()).toContain(`the first admin token is in ${tokenFile}`);
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    const printed = (await readFile(tokenFile, "utf8")).trim();
    expect(printed).toMatch(/^mxdr-admin_[\w-]{43}$/);
    expect(first.stdout() + first.stderr()).not.toContain(printed);
    expect(first.stdout() + first.stderr()).not.toMatch(/mxdr-admin_/);
    expect(first.stderr()).toMatch(/credentials\.key/);
    const keyFile = await stat(join(dataDir, "credentials.key"));
    expect(keyFile.mode & 0o777).toBe(0o600);
    const key = await readFile(join(dataDir, "credentials.key"), "utf8");
    const authorized = await fetch(`${first.baseUrl}/v1/tenants`, { headers: { authorization: `Bearer ${printed}` } });
    expect(authorized.status).toBe(200);
    await stop(first);

    const second = await startServer(env);
    expect(second.stdout()).not.toMatch(/admin token/);
    expect(second.stderr()).not.toMatch(/mxdr-admin_/);
    expect(second.stderr()).not.toMatch(/generated a credentials encryption key/);
    expect(await readFile(join(dataDir, "credentials.key"), "utf8")).toBe(key);
    // The first token still works; only its hash was stored.
    const again = await fetch(`${second.baseUrl}/v1/tenants`, { headers: { authorization: `Bearer ${printed}` } });
    expect(again.status).toBe(200);
    await stop(second);

    const database = await openDatabase({ dataDir });
    try {
      const dump = JSON.stringify(await database.sql`select * from api_tokens`);
      expect(dump).toContain("bootstrap-admin");
      expect(dump).not.toContain(printed!);
    } finally {
      await database.close();
    }
  });
});
