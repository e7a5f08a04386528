/**
 * The credentials keyring under KMS (envelope encryption): when a KMS key is configured, the AES-256-GCM key of
 * db/crypto.ts is a data key from KMS GenerateDataKey, one per KMS key, stored only as KMS ciphertext in
 * credential_data_keys; envelopes name it by its id, so each sealed row leads to its encrypted data key. Every replica
 * decrypts the stored data keys with KMS at start-up (and on refresh(), which picks up a data key another replica
 * created for a new KMS key: rotation without restarting the replicas that still run). The plaintext data keys live
 * only in this process's memory. @aws-sdk/client-kms is loaded only when a KMS key is configured.
 */
import { createHash } from "node:crypto";
import type { KMSClient } from "@aws-sdk/client-kms";
import { eq } from "drizzle-orm";
import type { DrizzleDatabase } from "./client";
import type { EncryptionKey, Keyring } from "./crypto";
import { credentialDataKeys } from "./schema";

export interface KmsKeyring extends Keyring {
  /** The KMS key new data keys and envelopes are sealed under. */
  readonly kmsKeyId: string;
  /** Loads data keys added since (e.g. by a replica configured with a newer KMS key). */
  refresh(): Promise<void>;
}

/** A data key's id: a fingerprint of its KMS ciphertext (safe to store, names nothing secret). */
function dataKeyId(encryptedKey: Buffer): string {
  return `d${createHash("sha256").update("mini-xdr:data-key:").update(encryptedKey).digest("hex").slice(0, 16)}`;
}

export async function createKmsClient(region: string): Promise<KMSClient> {
  const { KMSClient } = await import("@aws-sdk/client-kms");
  return new KMSClient({ region });
}

/** `decryptOnly`: local keys rows may still be sealed with (a move from a local key to KMS); they never seal. */
export async function loadKmsKeyring(
  db: DrizzleDatabase,
  kms: KMSClient,
  kmsKeyId: string,
  { decryptOnly = [] }: { decryptOnly?: EncryptionKey[] } = {},
): Promise<KmsKeyring> {
  const { DecryptCommand, GenerateDataKeyCommand } = await import("@aws-sdk/client-kms");
  const keys = new Map<string, EncryptionKey>(decryptOnly.map((key) => [key.id, key]));

  async function refresh(): Promise<void> {
    for (const row of await db.select().from(credentialDataKeys)) {
      if (keys.has(row.id)) continue;
      const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from(row.encryptedKey, "base64"), KeyId: row.kmsKeyId }));
      keys.set(row.id, { id: row.id, material: Buffer.from(decrypted.Plaintext!) });
    }
  }

  // The data key of the configured KMS key: made once, by whichever replica comes first (the unique index decides).
  let [row] = await db.select().from(credentialDataKeys).where(eq(credentialDataKeys.kmsKeyId, kmsKeyId));
  if (!row) {
    const generated = await kms.send(new GenerateDataKeyCommand({ KeyId: kmsKeyId, KeySpec: "AES_256" }));
    const encryptedKey = Buffer.from(generated.CiphertextBlob!);
    await db
      .insert(credentialDataKeys)
      .values({ id: dataKeyId(encryptedKey), kmsKeyId, encryptedKey: encryptedKey.toString("base64") })
      .onConflictDoNothing();
    generated.Plaintext?.fill(0);
    [row] = await db.select().from(credentialDataKeys).where(eq(credentialDataKeys.kmsKeyId, kmsKeyId));
  }
  await refresh();
  const current = keys.get(row!.id)!;
  return { current, keys, kmsKeyId, refresh };
}
