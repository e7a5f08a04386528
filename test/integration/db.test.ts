/**
 * The data layer on a real PostgreSQL server (URL from TEST_DATABASE_URL, which the test script exports from
 * scripts/postgres.sh, itself the embedded server of db/embedded-server.ts; each run works in a scratch database it
 * creates and drops), and the embedded default of `npm start` (openDatabase without a URL) as such.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { and, asc, eq } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { openDatabase, runMigrations, type Database } from "../../db/client";
import { realPostgres } from "../harness/databases";
import { CredentialDecryptionError, createKeyring, decryptJson, encryptJson, generateToken, hashToken } from "../../db/crypto";
import { allowServerUser, embeddedServerStatus } from "../../db/embedded-server";
import { apiTokens, auditLog, cloudAssets, integrationCredentials, organizations, runEvents, runs, type IntegrationSettings } from "../../db/schema";

const TABLES = [
  "agent_commands",
  "agents",
  "api_tokens",
  "audit_log",
  "browser_sessions",
  "cloud_asset_versions",
  "cloud_assets",
  "credential_data_keys",
  "credential_key_rotation",
  "discovery_scans",
  "enrollment_tokens",
  "fleet_run_tenants",
  "fleet_runs",
  "idempotency_keys",
  "integration_credentials",
  "invitations",
  "memberships",
  "organizations",
  "people",
  "permission_findings",
  "run_events",
  "run_plans",
  "runs",
  "sign_in_links",
  "tenant_aws_accounts",
  "tenant_aws_organizations",
  "tenant_external_ids",
  "webhook_deliveries",
  "webhook_delivery_attempts",
  "webhooks",
];

const quiet = { onnotice: () => undefined };

/** SQLSTATE of a failed query (drizzle wraps the driver's error in DrizzleQueryError.cause). */
async function sqlState(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    const withCode = error as { code?: string; cause?: { code?: string } };
    return withCode.cause?.code ?? withCode.code;
  }
  throw new Error("expected the query to fail");
}

function uniqueSlug(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

describe.each([realPostgres])("data layer on $name", (backend) => {
  let database: Database;
  let cleanup: (() => Promise<void>) | undefined;
  let unavailable: unknown;

  beforeAll(async () => {
    try {
      ({ database, cleanup } = await backend.open());
    } catch (error) {
      unavailable = error;
    }
  });

  // A back end that cannot be opened fails every one of its tests (with the reason), never skips them.
  beforeEach(() => {
    if (unavailable) throw unavailable;
  });

  afterAll(async () => {
    await cleanup?.();
  });

  async function createOrganization(slug = uniqueSlug("org"), settings: IntegrationSettings = {}) {
    const [org] = await database.db
      .insert(organizations)
      .values({ slug, name: `Org ${slug}`, integrationSettings: settings })
      .returning();
    return org!;
  }

  it("applies the migrations, once", async () => {
    expect(database.backend).toBe("postgres");
    const tables = await database.sql<{ table_name: string }[]>`
      select table_name from information_schema.tables where table_schema = 'public' order by table_name`;
    expect(tables.map((row) => row.table_name)).toEqual(TABLES);
    const applied = await database.sql`select hash from drizzle.__drizzle_migrations`;
    expect(applied.length).toBeGreaterThan(0);
    // Running the migrator again (another replica starting) changes nothing.
    await runMigrations(database.connectionString);
    expect(await database.sql`select hash from drizzle.__drizzle_migrations`).toHaveLength(applied.length);
  });

  it("stores organizations with defaults and typed settings; slugs are unique", async () => {
    const settings: IntegrationSettings = {
      agentPublicBaseUrl: "https://agents.mini-xdr.example.com",
      regions: ["us-east-1", "eu-west-1"],
      homeRegion: "us-east-1",
      targetTag: { key: "xdr:monitor", value: "true" },
      requireApproval: true,
      priorityRules: [{ match: { role: "honeypot" }, priority: "low" }],
    };
    const org = await createOrganization(uniqueSlug("mini-corp"), settings);
    expect(org).toMatchObject({
      onboardingFlowVersion: "quick_start",
      autoDiscoveryEnabled: true,
      onboardingStatus: "not_started",
      integrationSettings: settings,
      offboardedAt: null,
    });
    expect(org.createdAt).toBeInstanceOf(Date);
    expect(await sqlState(database.db.insert(organizations).values({ slug: org.slug, name: "dup" }))).toBe("23505");

    const [updated] = await database.db
      .update(organizations)
      .set({ onboardingStatus: "provisioning" })
      .where(eq(organizations.id, org.id))
      .returning();
    expect(updated!.updatedAt.getTime()).toBeGreaterThanOrEqual(org.updatedAt.getTime());
  });

  it("upserts assets on (organization, provider, asset id), refreshing last_seen_at", async () => {
    const org = await createOrganization();
    const other = await createOrganization();
    const firstSeen = new Date("2025-01-01T00:00:00Z");
    const asset = {
      organizationId: org.id,
      provider: "aws" as const,
      assetType: "ec2",
      assetId: "i-0123456789abcdef0",
      region: "us-east-1",
      tags: { Name: "DC-01", Role: "domain-controller" },
      assetData: { platform: "windows", state: "running" },
      agentCompatible: true,
      priority: "critical" as const,
      discoveredAt: firstSeen,
      lastSeenAt: firstSeen,
    };
    const [inserted] = await database.db.insert(cloudAssets).values(asset).returning();
    expect(await sqlState(database.db.insert(cloudAssets).values(asset))).toBe("23505");

    const seenAgain = new Date("2025-01-02T12:00:00Z");
    const upsert = (lastSeenAt: Date, state: string) =>
      database.db
        .insert(cloudAssets)
        .values({ ...asset, lastSeenAt, discoveredAt: lastSeenAt, assetData: { platform: "windows", state } })
        .onConflictDoUpdate({
          target: [cloudAssets.organizationId, cloudAssets.provider, cloudAssets.assetId],
          set: { lastSeenAt, assetData: { platform: "windows", state }, removedAt: null },
        })
        .returning();
    const [upserted] = await upsert(seenAgain, "stopped");
    expect(upserted!.id).toBe(inserted!.id);
    expect(upserted!.lastSeenAt.toISOString()).toBe(seenAgain.toISOString());
    expect(upserted!.discoveredAt.toISOString()).toBe(firstSeen.toISOString());
    expect(upserted!.assetData).toEqual({ platform: "windows", state: "stopped" });

    // The same instance id in another organization is another asset.
    await database.db.insert(cloudAssets).values({ ...asset, organizationId: other.id });
    const rows = await database.db.select().from(cloudAssets).where(eq(cloudAssets.assetId, asset.assetId)).orderBy(asc(cloudAssets.organizationId));
    expect(rows.map((row) => row.organizationId)).toEqual([org.id, other.id]);
    expect(rows[0]!.lastSeenAt.toISOString()).toBe(seenAgain.toISOString());
  });

  it("keeps run events ordered by seq and unique per run", async () => {
    const org = await createOrganization();
    const [run] = await database.db
      .insert(runs)
      .values({ organizationId: org.id, stackName: `tenant-${org.slug}`, kind: "up", actor: "test" })
      .returning();
    expect(run).toMatchObject({ status: "queued", startedAt: null, processPid: null });
    expect(run!.id).toMatch(/^[0-9a-f-]{36}$/);

    // Written out of order (and concurrently), read back in order.
    await Promise.all(
      [3, 0, 2, 1, 4].map((seq) => database.db.insert(runEvents).values({ runId: run!.id, seq, event: { sequence: seq, type: `event-${seq}` } })),
    );
    const events = await database.db.select().from(runEvents).where(eq(runEvents.runId, run!.id)).orderBy(asc(runEvents.seq));
    expect(events.map((event) => event.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(events[2]!.event).toEqual({ sequence: 2, type: "event-2" });
    expect(await sqlState(database.db.insert(runEvents).values({ runId: run!.id, seq: 2, event: {} }))).toBe("23505");

    const [finished] = await database.db
      .update(runs)
      .set({
        status: "failed",
        finishedAt: new Date(),
        changeSummary: { create: 5, same: 1 },
        resourceChanges: [{ urn: "urn:pulumi:x::y::aws:iam/role:Role::xdr", type: "aws:iam/role:Role", op: "create" }],
        error: { message: "update failed", diagnostics: [{ severity: "error", message: "AccessDenied" }] },
      })
      .where(eq(runs.id, run!.id))
      .returning();
    expect(finished!.changeSummary).toEqual({ create: 5, same: 1 });
    expect(finished!.error?.diagnostics?.[0]?.message).toBe("AccessDenied");
    const byStatus = await database.db
      .select({ id: runs.id })
      .from(runs)
      .where(and(eq(runs.organizationId, org.id), eq(runs.status, "failed")));
    expect(byStatus).toEqual([{ id: run!.id }]);
  });

  it("stores credentials encrypted: no plaintext in the row, round trip, wrong key throws", async () => {
    const org = await createOrganization();
    const keyring = createKeyring({ key: randomBytes(32).toString("base64") });
    const externalId = `mxdr-ext-${randomBytes(12).toString("hex")}`;
    const roleArn = "arn:aws:iam::210987654321:role/MiniXdrBootstrapSecretName";
    const { envelope, keyId } = encryptJson({ roleArn, externalId }, { organizationId: org.id, provider: "aws" }, keyring);
    const [credential] = await database.db
      .insert(integrationCredentials)
      .values({
        organizationId: org.id,
        provider: "aws",
        credentialType: "aws_assume_role",
        credentialData: envelope,
        encryptionKeyId: keyId,
        status: "active",
      })
      .returning();

    // The raw row, every column as text, as a backup or a SQL console would show it.
    const [raw] = await database.sql<{ row: string }[]>`
      select t::text as row from integration_credentials t where id = ${credential!.id}`;
    expect(raw!.row).toContain(keyId);
    expect(raw!.row).not.toContain(externalId);
    expect(raw!.row).not.toContain("MiniXdrBootstrapSecretName");
    expect(raw!.row).not.toContain(Buffer.from(externalId).toString("base64").slice(0, 16));

    const [stored] = await database.db
      .select()
      .from(integrationCredentials)
      .where(and(eq(integrationCredentials.organizationId, org.id), eq(integrationCredentials.provider, "aws")));
    expect(decryptJson(stored!.credentialData, { organizationId: org.id, provider: "aws" }, keyring)).toEqual({
      roleArn,
      externalId,
    });
    const wrongKey = createKeyring({ key: randomBytes(32).toString("base64"), keyId });
    expect(() => decryptJson(stored!.credentialData, { organizationId: org.id, provider: "aws" }, wrongKey)).toThrow(CredentialDecryptionError);
    // Copied to another organization's row, the ciphertext does not decrypt.
    expect(() => decryptJson(stored!.credentialData, { organizationId: org.id + 1, provider: "aws" }, keyring)).toThrow(CredentialDecryptionError);

    // One credential per (organization, provider); and plaintext is refused by the column check.
    expect(await sqlState(database.db.insert(integrationCredentials).values({ ...credential!, id: undefined, credentialType: "again" }))).toBe(
      "23505",
    );
    expect(
      await sqlState(
        database.db.insert(integrationCredentials).values({
          organizationId: org.id,
          provider: "azure",
          credentialType: "plain",
          credentialData: JSON.stringify({ externalId }),
          encryptionKeyId: keyId,
        }),
      ),
    ).toBe("23514");
  });

  it("keeps api token scope and organization consistent; token hashes are unique", async () => {
    const org = await createOrganization();
    const tokenHash = hashToken(generateToken("mxa"));
    await database.db.insert(apiTokens).values({ tokenHash, scope: "tenant", organizationId: org.id, name: "tenant admin" });
    expect(await sqlState(database.db.insert(apiTokens).values({ tokenHash, scope: "tenant", organizationId: org.id, name: "dup" }))).toBe("23505");
    const noOrg = { tokenHash: hashToken(generateToken("mxa")), scope: "tenant" as const, name: "x" };
    expect(await sqlState(database.db.insert(apiTokens).values(noOrg))).toBe("23514");
    expect(await sqlState(database.db.insert(apiTokens).values({ ...noOrg, scope: "platform_admin", organizationId: org.id }))).toBe("23514");
    await database.db.insert(apiTokens).values({ ...noOrg, scope: "platform_admin" });

    const [entry] = await database.db
      .insert(auditLog)
      .values({ actor: "token:1", organizationId: org.id, action: "organization.create", target: org.slug })
      .returning();
    expect(entry).toMatchObject({ details: {}, organizationId: org.id });
    expect(typeof entry!.id).toBe("number");
  });

  it("serves concurrent clients correctly, including failing and unprepared queries", async () => {
    // Two clients on the connection string (as the app's pool and pg-boss will be), one without
    // prepared statements, interleaving successes, errors and transactions.
    const unprepared = postgres(database.connectionString, { max: 3, prepare: false, ...quiet });
    try {
      let wrong = 0;
      let failed = 0;
      await Promise.all(
        Array.from({ length: 300 }, async (_, i) => {
          switch (i % 5) {
            case 0: {
              const [row] = await database.sql`select ${i}::int as v, ${`s${i}`}::text as s`;
              if (row?.v !== i || row?.s !== `s${i}`) wrong++;
              break;
            }
            case 1: {
              const [row] = await unprepared`select ${i}::int * 2 as d`;
              if (row?.d !== i * 2) wrong++;
              break;
            }
            case 2:
              await database.sql`select * from no_such_table where x = ${i}`.catch(() => failed++);
              break;
            case 3:
              await unprepared`select ${i}::int / 0`.catch(() => failed++);
              break;
            case 4: {
              const slug = `concurrent-${i}-${randomBytes(3).toString("hex")}`;
              const rows = await database.sql.begin(async (tx) => {
                await tx`insert into organizations (slug, name) values (${slug}, ${"c"})`;
                return tx`select slug from organizations where slug = ${slug}`;
              });
              if (rows[0]?.slug !== slug) wrong++;
              break;
            }
          }
        }),
      );
      expect({ wrong, failed }).toEqual({ wrong: 0, failed: 120 });
    } finally {
      await unprepared.end({ timeout: 5 });
    }
  });

  it("rolls back the open transaction of a client that disconnects", async () => {
    const slug = uniqueSlug("abandoned");
    const client = postgres(database.connectionString, { max: 1, ...quiet });
    await client`begin`;
    await client`insert into organizations (slug, name) values (${slug}, ${"never committed"})`;
    await client.end({ timeout: 0 });
    // Other clients are not blocked, and the insert is gone.
    const found = await database.db.select().from(organizations).where(eq(organizations.slug, slug));
    expect(found).toEqual([]);
    await createOrganization(slug);
  });
});

describe("the embedded server (npm start's default)", () => {
  it("runs a real PostgreSQL under <dataDir>/postgres, persists, reopens without re-applying migrations, and stops when closed", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "mxdr-db-persist-"));
    await allowServerUser(dataDir); // as root the server runs as the `postgres` user, which must reach the directory
    try {
      const first = await openDatabase({ dataDir });
      expect(first.backend).toBe("embedded");
      expect(first.connectionString).toMatch(/^postgres:\/\/postgres:[0-9a-f]+@127\.0\.0\.1:\d+\/mini_xdr$/);
      const [{ version }] = (await first.sql`select version()`) as unknown as [{ version: string }];
      expect(version).toMatch(/^PostgreSQL 1[89]\./);
      await first.db.insert(organizations).values({ slug: "persisted", name: "Persisted" });
      const migrations = await first.sql`select hash from drizzle.__drizzle_migrations`;
      await first.close();
      await first.close(); // idempotent
      expect(await embeddedServerStatus(join(dataDir, "postgres"))).toBeUndefined();

      const second = await openDatabase({ dataDir });
      try {
        expect(await second.db.select({ slug: organizations.slug }).from(organizations)).toEqual([{ slug: "persisted" }]);
        expect(await second.sql`select hash from drizzle.__drizzle_migrations`).toHaveLength(migrations.length);
      } finally {
        await second.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("is shared: a second opener joins the running server, which keeps running until the last client closes", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "mxdr-db-shared-"));
    await allowServerUser(dataDir);
    const status = () => embeddedServerStatus(join(dataDir, "postgres"));
    try {
      const first = await openDatabase({ dataDir });
      const second = await openDatabase({ dataDir });
      expect(second.connectionString).toBe(first.connectionString);
      expect((await second.sql`select 1 as one`)[0]).toEqual({ one: 1 }); // its pool holds a connection now
      await first.close();
      expect(await status()).toBeDefined(); // `second` is still connected
      expect((await second.sql`select 2 as two`)[0]).toEqual({ two: 2 });
      await second.close();
      expect(await status()).toBeUndefined();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("keeps session advisory locks per connection (crash recovery tells live runs from dead ones with them)", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "mxdr-db-locks-"));
    await allowServerUser(dataDir);
    const database = await openDatabase({ dataDir });
    const holder = postgres(database.connectionString, { max: 1, ...quiet });
    const other = postgres(database.connectionString, { max: 1, ...quiet });
    try {
      await holder`select pg_advisory_lock(42)`;
      expect((await other`select pg_try_advisory_lock(42) as got`)[0]).toEqual({ got: false });
      await holder.end({ timeout: 1 }); // the holder's session ends, as when its process is killed
      expect((await other`select pg_try_advisory_lock(42) as got`)[0]).toEqual({ got: true });
    } finally {
      await other.end({ timeout: 1 });
      await holder.end({ timeout: 1 });
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
