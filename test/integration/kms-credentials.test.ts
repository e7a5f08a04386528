/**
 * Credentials under KMS, against moto's KMS (reached through AWS_ENDPOINT_URL, as the service would reach AWS):
 * envelope encryption with a data key from GenerateDataKey (db/kms-keyring.ts), shared by replicas through
 * credential_data_keys, rotation to a new KMS key with every row readable throughout
 * (services/integration/credential-rotation.ts), and Pulumi's awskms:// secrets provider on a real stack run.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { CreateKeyCommand, KMSClient } from "@aws-sdk/client-kms";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configureTenantStack, destroyTenantStack, openTenantStack, stackNameFor, upTenantStack, type AutomationSettings } from "../../automation";
import type { Database } from "../../db/client";
import { decryptJson, encryptJson, envelopeKeyId } from "../../db/crypto";
import { loadKmsKeyring } from "../../db/kms-keyring";
import { credentialDataKeys, enrollmentTokens, integrationCredentials, organizations } from "../../db/schema";
import { rotateSealedRows } from "../../services/integration/credential-rotation";
import { miniCorpTenantConfig } from "../fixtures/tenant-config";
import { realPostgres } from "../harness/databases";
import { temporaryAutomationSettings } from "../harness/pulumi-project";

let database: Database;
let cleanup: () => Promise<void>;
let kms: KMSClient;
let oldKey: string;
let newKey: string;
const orgIds: number[] = [];
const secretOf = (organizationId: number) => ({
  roleArn: `arn:aws:iam::210987654321:role/R${organizationId}`,
  externalId: `ext-${organizationId}-secret`,
});

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
  kms = new KMSClient({ region: "us-east-1" });
  oldKey = (await kms.send(new CreateKeyCommand({ Description: "mini-xdr credentials (old)" }))).KeyMetadata!.KeyId!;
  newKey = (await kms.send(new CreateKeyCommand({ Description: "mini-xdr credentials (new)" }))).KeyMetadata!.KeyId!;
});

afterAll(async () => {
  kms?.destroy();
  await cleanup?.();
});

const readAll = async (keyring: Parameters<typeof decryptJson>[2]) =>
  Promise.all(
    (await database.db.select().from(integrationCredentials).orderBy(integrationCredentials.organizationId)).map((row) =>
      decryptJson(row.credentialData, { organizationId: row.organizationId, provider: row.provider }, keyring),
    ),
  );

describe("credentials sealed with a KMS data key", () => {
  it("seals with a data key that is stored only as KMS ciphertext, and a second replica opens the same rows", async () => {
    const replicaA = await loadKmsKeyring(database.db, kms, oldKey);
    const [stored] = await database.db.select().from(credentialDataKeys);
    expect(stored).toMatchObject({ id: replicaA.current.id, kmsKeyId: oldKey });
    expect(Buffer.from(stored!.encryptedKey, "base64").equals(replicaA.current.material)).toBe(false);
    expect(stored!.encryptedKey).not.toContain(replicaA.current.material.toString("base64"));

    for (const name of ["one", "two", "three"]) {
      const [org] = await database.db
        .insert(organizations)
        .values({ slug: `kms-${name}-${randomBytes(2).toString("hex")}`, name })
        .returning();
      orgIds.push(org!.id);
      const sealed = encryptJson(secretOf(org!.id), { organizationId: org!.id, provider: "aws" }, replicaA);
      await database.db.insert(integrationCredentials).values({
        organizationId: org!.id,
        provider: "aws",
        credentialType: "aws_assume_role",
        credentialData: sealed.envelope,
        encryptionKeyId: sealed.keyId,
        status: "active",
      });
      await database.db.insert(enrollmentTokens).values({
        organizationId: org!.id,
        tokenHash: randomBytes(16).toString("hex"),
        tokenSealed: encryptJson(`enroll-${org!.id}`, { organizationId: org!.id, provider: "enrollment-token" }, replicaA).envelope,
      });
    }
    const rows = await database.db.select().from(integrationCredentials);
    for (const row of rows) {
      expect(row.encryptionKeyId).toBe(replicaA.current.id);
      expect(row.credentialData).not.toContain("secret");
    }

    // Another replica starting with the same KMS key: no second data key, the same rows open.
    const replicaB = await loadKmsKeyring(database.db, kms, oldKey);
    expect(replicaB.current.id).toBe(replicaA.current.id);
    expect(await database.db.select().from(credentialDataKeys)).toHaveLength(1);
    expect(await readAll(replicaB)).toEqual(orgIds.map(secretOf));
  });

  it("rotates to a new KMS key: every row readable before, during and after; all sealed with the new data key at the end", async () => {
    const oldReplica = await loadKmsKeyring(database.db, kms, oldKey); // a replica still configured with the old key
    const rotating = await loadKmsKeyring(database.db, kms, newKey);
    expect(rotating.current.id).not.toBe(oldReplica.current.id);
    expect(rotating.keys.has(oldReplica.current.id)).toBe(true);
    expect(await readAll(rotating)).toEqual(orgIds.map(secretOf));

    // The old replica learns the new data key (it would otherwise fail on rotated rows): no restart needed.
    await oldReplica.refresh();
    expect(oldReplica.keys.has(rotating.current.id)).toBe(true);

    const keyIdsSeen = new Set<string>();
    const result = await rotateSealedRows(database.db, rotating, {
      afterRow: async () => {
        // Mid-rotation: rows of both keys, all readable by either replica.
        for (const row of await database.db.select().from(integrationCredentials)) keyIdsSeen.add(row.encryptionKeyId);
        expect(await readAll(rotating)).toEqual(orgIds.map(secretOf));
        expect(await readAll(oldReplica)).toEqual(orgIds.map(secretOf));
      },
    });
    expect(result).toEqual({
      integration_credentials: 3,
      tenant_external_ids: 0,
      enrollment_tokens: 3,
      run_plans: 0,
      webhooks: 0,
      idempotency_keys: 0,
    });
    expect(keyIdsSeen).toEqual(new Set([oldReplica.current.id, rotating.current.id]));

    const after = await database.db.select().from(integrationCredentials).orderBy(integrationCredentials.organizationId);
    for (const row of after) {
      expect(row.encryptionKeyId).toBe(rotating.current.id);
      expect(envelopeKeyId(row.credentialData)).toBe(rotating.current.id);
    }
    for (const row of await database.db.select().from(enrollmentTokens)) expect(envelopeKeyId(row.tokenSealed!)).toBe(rotating.current.id);
    expect(await readAll(rotating)).toEqual(orgIds.map(secretOf));
    // A second pass has nothing left to do.
    expect(await rotateSealedRows(database.db, rotating)).toEqual({
      integration_credentials: 0,
      tenant_external_ids: 0,
      enrollment_tokens: 0,
      run_plans: 0,
      webhooks: 0,
      idempotency_keys: 0,
    });
    const [token] = await database.db.select().from(enrollmentTokens).where(eq(enrollmentTokens.organizationId, orgIds[0]!));
    expect(decryptJson(token!.tokenSealed!, { organizationId: orgIds[0]!, provider: "enrollment-token" }, rotating)).toBe(`enroll-${orgIds[0]}`);
  });
});

describe("Pulumi's awskms:// secrets provider", () => {
  let automation: AutomationSettings;

  it("runs a tenant stack whose secrets are sealed by the KMS key", async () => {
    const base = await temporaryAutomationSettings();
    automation = { ...base, secretsProvider: `awskms://${oldKey}?region=us-east-1`, passphrase: undefined };
    const slug = `kms-${randomBytes(3).toString("hex")}`;
    const config = miniCorpTenantConfig({ tenantSlug: slug });
    const stack = await openTenantStack(automation, stackNameFor(slug), { create: true });
    await configureTenantStack(stack, config);
    const stackFile = await readFile(path.join(automation.projectDir, "stacks", `Pulumi.tenant-${slug}.yaml`), "utf8");
    expect(stackFile).toContain(`secretsprovider: awskms://${oldKey}?region=us-east-1`);
    expect(stackFile).toMatch(/encryptedkey: \S+/);
    expect(stackFile).toContain("secure:");
    expect(stackFile).not.toContain(config.externalId);
    expect(stackFile).not.toContain(config.enrollmentToken);

    const up = await upTenantStack(stack);
    expect(up.changeSummary).toEqual({ create: 8 });
    // The checkpoint as stored (the Automation API's export shows secrets in clear; the backend never holds them so).
    const checkpoint = await readFile(
      path.join(automation.backendUrl.slice("file://".length), ".pulumi", "stacks", "mini-xdr-tenant", `tenant-${slug}.json`),
      "utf8",
    );
    const exported = checkpoint;
    expect(exported).toContain(`awskms://${oldKey}`);
    expect(exported).toContain("4dabf18193072939515e22adb298388d"); // secrets present, sealed
    expect(exported).not.toContain(config.externalId);
    expect(exported).not.toContain(config.enrollmentToken);
    expect((await destroyTenantStack(stack)).changeSummary).toMatchObject({ delete: 8 });
  });
});
