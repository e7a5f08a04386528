/**
 * The background key rotation (services/integration/credential-rotation-queue.ts) with local keys, on a real
 * PostgreSQL and pg-boss: two "replicas" (each its own pg-boss, as two processes would have) work the queue at once,
 * in batches of two rows; one still seals with the old key A (B staged among its previous keys), the newer one with
 * B. Every readable row ends under B; a row under a key nobody holds and a tampered row are left as they are and
 * counted; the status says what is left and whether this replica could read it.
 */
import { randomBytes } from "node:crypto";
import type { PgBoss } from "pg-boss";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { createKeyring, decryptJson, encryptJson, envelopeKeyId, type Keyring } from "../../db/crypto";
import { credentialKeyRotation, enrollmentTokens, idempotencyKeys, integrationCredentials, organizations, webhooks } from "../../db/schema";
import { startBoss } from "../../db/boss";
import { idempotencyResponseContext } from "../../lib/idempotency-context";
import { sealedRowsByKey } from "../../services/integration/credential-rotation";
import { startCredentialRotation } from "../../services/integration/credential-rotation-queue";
import { createCredentialRotationService } from "../../services/integration/credential-rotation-service";
import { webhookSecretContext } from "../../services/notification/webhook-service";
import { enrollmentTokenContext } from "../../services/core/enrollment-tokens";
import type { Principal } from "../../services/core/principal";
import { realPostgres } from "../harness/databases";
import { waitFor } from "../harness/wait-for";

const KEY_A = randomBytes(32).toString("base64");
const KEY_B = randomBytes(32).toString("base64");
const KEY_C = randomBytes(32).toString("base64");
const oldReplica = createKeyring({ key: KEY_A, previousKeys: [{ key: KEY_B }] });
const newReplica = createKeyring({ key: KEY_B, previousKeys: [{ key: KEY_A }] });
const keyIdOf = (key: string) => createKeyring({ key }).current.id;
const admin: Principal = { tokenId: 1, tokenName: "admin", scope: "platform_admin", organizationId: null, actor: "token:1" };

let database: Database;
let cleanup: () => Promise<void>;
const bosses: PgBoss[] = [];
const logs: string[] = [];
const orgIds: number[] = [];
let tamperedId: number;
let unreadableId: number;

const asRotationKeyring = (keyring: Keyring) => ({ ...keyring, refresh: async () => undefined, propagationSeconds: 0 });

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
  const { db } = database;
  for (let index = 0; index < 5; index++) {
    const [org] = await db
      .insert(organizations)
      .values({ slug: `rotq-${index}-${randomBytes(2).toString("hex")}`, name: `rotq ${index}` })
      .returning();
    orgIds.push(org!.id);
    const sealed = encryptJson({ externalId: `ext-${org!.id}` }, { organizationId: org!.id, provider: "aws" }, oldReplica);
    await db.insert(integrationCredentials).values({
      organizationId: org!.id,
      provider: "aws",
      credentialType: "aws_assume_role",
      credentialData: sealed.envelope,
      encryptionKeyId: sealed.keyId,
    });
    await db.insert(enrollmentTokens).values({
      organizationId: org!.id,
      tokenHash: randomBytes(16).toString("hex"),
      tokenSealed: encryptJson(`enroll-${org!.id}`, enrollmentTokenContext(org!.id), oldReplica).envelope,
    });
  }
  const secret = encryptJson("whsec_x", webhookSecretContext(null), oldReplica);
  await db.insert(webhooks).values({
    url: "https://hooks.example.com/x",
    events: ["run.failed"],
    secretSealed: secret.envelope,
    encryptionKeyId: secret.keyId,
    actor: "token:1",
  });
  await db.insert(idempotencyKeys).values({
    actor: "token:1",
    key: "k-1",
    method: "POST",
    path: "/v1/tenants",
    requestHash: "h",
    statusCode: 201,
    responseBody: encryptJson({ slug: "x" }, idempotencyResponseContext("token:1", "k-1"), oldReplica).envelope,
  });
  // A row under a key no replica holds, and a row under A whose ciphertext was tampered with.
  const [lost] = await db
    .insert(organizations)
    .values({ slug: `rotq-lost-${randomBytes(2).toString("hex")}`, name: "lost" })
    .returning();
  const underC = encryptJson({ externalId: "c" }, { organizationId: lost!.id, provider: "aws" }, { key: KEY_C });
  unreadableId = (
    await db
      .insert(integrationCredentials)
      .values({
        organizationId: lost!.id,
        provider: "aws",
        credentialType: "aws_assume_role",
        credentialData: underC.envelope,
        encryptionKeyId: underC.keyId,
      })
      .returning()
  )[0]!.id;
  const parts = encryptJson("t", enrollmentTokenContext(lost!.id), oldReplica).envelope.split(":");
  parts[3] = (parts[3]![0] === "A" ? "B" : "A") + parts[3]!.slice(1);
  const tampered = parts.join(":");
  tamperedId = (
    await db
      .insert(enrollmentTokens)
      .values({ organizationId: lost!.id, tokenHash: randomBytes(16).toString("hex"), tokenSealed: tampered })
      .returning()
  )[0]!.id;
});

afterAll(async () => {
  for (const boss of bosses) await boss.stop({ graceful: true, timeout: 5_000 }).catch(() => undefined);
  await cleanup?.();
});

describe("background key rotation: two replicas, batches, rows nobody can open", () => {
  it("the replica started last makes its key the target; both work the queue; every readable row ends under B", async () => {
    const { db } = database;
    for (const keyring of [oldReplica, newReplica]) {
      const boss = await startBoss(database.connectionString, (message) => logs.push(message));
      bosses.push(boss);
      await startCredentialRotation(
        boss,
        { db, keyring: asRotationKeyring(keyring), log: (message) => logs.push(message) },
        { work: true, batchSize: 2 },
      );
    }
    const done = await waitFor(
      "the rotation to complete",
      async () => {
        const [row] = await db.select().from(credentialKeyRotation);
        return row?.completedAt ? row : undefined;
      },
      { timeoutMs: 120_000 },
    );
    expect(done).toMatchObject({ targetKeyId: newReplica.current.id, requestedBy: "system:startup", rowsResealed: 12 });

    for (const row of await db.select().from(integrationCredentials)) {
      if (row.id === unreadableId) {
        expect(envelopeKeyId(row.credentialData)).toBe(keyIdOf(KEY_C));
        continue;
      }
      expect(envelopeKeyId(row.credentialData)).toBe(newReplica.current.id);
      expect(row.encryptionKeyId).toBe(newReplica.current.id);
      // Either replica reads it.
      for (const keyring of [oldReplica, newReplica]) {
        expect(decryptJson(row.credentialData, { organizationId: row.organizationId, provider: "aws" }, keyring)).toEqual({
          externalId: `ext-${row.organizationId}`,
        });
      }
    }
    for (const row of await db.select().from(enrollmentTokens)) {
      expect(envelopeKeyId(row.tokenSealed!)).toBe(row.id === tamperedId ? oldReplica.current.id : newReplica.current.id);
    }
    const [webhook] = await db.select().from(webhooks);
    expect(decryptJson(webhook!.secretSealed, webhookSecretContext(null), oldReplica)).toBe("whsec_x");
    expect(webhook!.encryptionKeyId).toBe(newReplica.current.id);
    const [answer] = await db.select().from(idempotencyKeys);
    expect(envelopeKeyId(answer!.responseBody!)).toBe(newReplica.current.id);
    expect(logs).toEqual(
      expect.arrayContaining([expect.stringMatching(/a row of enrollment_tokens did not open \(authentication_failed\); left as it is/)]),
    );
    for (const line of logs) expect(line).not.toMatch(/ext-\d|enroll-\d|whsec_x/);
  });

  it("the status counts what is left by key, and whether this replica can read it; only a platform admin sees it", async () => {
    const service = createCredentialRotationService({ db: database.db, keyring: newReplica });
    const status = await service.status(admin);
    expect(status.currentKeyId).toBe(newReplica.current.id);
    expect(status.remaining).toEqual({
      integration_credentials: 1,
      tenant_external_ids: 0,
      enrollment_tokens: 1,
      run_plans: 0,
      webhooks: 0,
      idempotency_keys: 0,
    });
    expect(status.remainingByKey).toEqual(
      expect.arrayContaining([
        { keyId: keyIdOf(KEY_C), rows: 1, readableHere: false },
        { keyId: oldReplica.current.id, rows: 1, readableHere: true },
      ]),
    );
    expect(await sealedRowsByKey(database.db)).toEqual(
      expect.arrayContaining([{ source: "integration_credentials", keyId: newReplica.current.id, rows: 5 }]),
    );
    await expect(service.status({ ...admin, scope: "tenant", organizationId: orgIds[0]! })).rejects.toThrow(/platform admin/);
    // Without a queue in this process, starting a pass is refused as a service that lacks it.
    await expect(service.start(admin, {})).rejects.toMatchObject({ code: "service_not_configured" });
  });
});
