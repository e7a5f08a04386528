/**
 * Key rotation without downtime: every sealed row (integration credentials, enrollment tokens, saved plans) whose
 * envelope names another key than the keyring's current one is decrypted and sealed again with the current key, one
 * row per statement, each update conditional on the envelope it read (a row rewritten meanwhile is left to the next
 * pass). The keyring keeps the previous keys, so every row stays readable before, during and after.
 */
import { and, eq, ne } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { decryptJson, encryptJson, type Keyring } from "../../db/crypto";
import { enrollmentTokens, integrationCredentials, runPlans } from "../../db/schema";
import { envelopeKeyId } from "../../db/crypto";

export interface RotationResult {
  credentials: number;
  enrollmentTokens: number;
  plans: number;
}

export async function rotateSealedRows(
  db: DrizzleDatabase,
  keyring: Keyring,
  { afterRow }: { afterRow?: () => Promise<void> } = {},
): Promise<RotationResult> {
  const result: RotationResult = { credentials: 0, enrollmentTokens: 0, plans: 0 };
  const current = keyring.current.id;

  for (const row of await db.select().from(integrationCredentials).where(ne(integrationCredentials.encryptionKeyId, current))) {
    const context = { organizationId: row.organizationId, provider: row.provider };
    const sealed = encryptJson(decryptJson(row.credentialData, context, keyring), context, keyring);
    const updated = await db
      .update(integrationCredentials)
      .set({ credentialData: sealed.envelope, encryptionKeyId: sealed.keyId })
      .where(and(eq(integrationCredentials.id, row.id), eq(integrationCredentials.credentialData, row.credentialData)))
      .returning({ id: integrationCredentials.id });
    result.credentials += updated.length;
    await afterRow?.();
  }

  for (const row of await db.select().from(enrollmentTokens)) {
    if (!row.tokenSealed || envelopeKeyId(row.tokenSealed) === current) continue;
    const context = { organizationId: row.organizationId, provider: "enrollment-token" };
    const sealed = encryptJson(decryptJson(row.tokenSealed, context, keyring), context, keyring);
    const updated = await db
      .update(enrollmentTokens)
      .set({ tokenSealed: sealed.envelope })
      .where(and(eq(enrollmentTokens.id, row.id), eq(enrollmentTokens.tokenSealed, row.tokenSealed)))
      .returning({ id: enrollmentTokens.id });
    result.enrollmentTokens += updated.length;
    await afterRow?.();
  }

  for (const row of await db.select().from(runPlans).where(ne(runPlans.keyId, current))) {
    const context = { organizationId: row.organizationId, provider: `run-plan:${row.id}` };
    const sealed = encryptJson(decryptJson(row.planSealed, context, keyring), context, keyring);
    const updated = await db
      .update(runPlans)
      .set({ planSealed: sealed.envelope, keyId: sealed.keyId })
      .where(and(eq(runPlans.id, row.id), eq(runPlans.planSealed, row.planSealed)))
      .returning({ id: runPlans.id });
    result.plans += updated.length;
    await afterRow?.();
  }
  return result;
}
