/**
 * The process's credentials keyring, from the configuration read at the edge: with CREDENTIALS_KMS_KEY_ID, the KMS
 * data keys of db/kms-keyring.ts (refreshed every CREDENTIALS_KMS_REFRESH_SECONDS so data keys of a newer KMS key
 * become readable here); otherwise the local CREDENTIALS_ENCRYPTION_KEY (or the generated key file). Either way the
 * keys of CREDENTIALS_PREVIOUS_ENCRYPTION_KEYS (and, under KMS, CREDENTIALS_ENCRYPTION_KEY) decrypt but never seal.
 */
import type { DrizzleDatabase } from "../db/client";
import { createKeyring, type EncryptionKey, type Keyring } from "../db/crypto";
import { createKmsClient, loadKmsKeyring } from "../db/kms-keyring";
import { resolveCredentialsKey, type ServiceConfig } from "./config";

export interface CredentialsKeyring extends Keyring {
  /** Loads keys other replicas added since (KMS); a no-op for a local keyring. */
  refresh(): Promise<void>;
  /** How long a key new to the database may take to reach every replica still running (twice the refresh interval). */
  readonly propagationSeconds: number;
  /** Stops the periodic refresh. */
  close(): void;
}

type KeyringConfig = Pick<
  ServiceConfig,
  | "CREDENTIALS_ENCRYPTION_KEY"
  | "CREDENTIALS_PREVIOUS_ENCRYPTION_KEYS"
  | "CREDENTIALS_KMS_KEY_ID"
  | "CREDENTIALS_KMS_REGION"
  | "CREDENTIALS_KMS_REFRESH_SECONDS"
  | "DATA_DIR"
>;

export async function loadCredentialsKeyring(
  db: DrizzleDatabase,
  config: KeyringConfig,
  log: (message: string) => void,
): Promise<CredentialsKeyring> {
  const previous = (config.CREDENTIALS_PREVIOUS_ENCRYPTION_KEYS ?? []).map((key) => ({ key }));
  if (!config.CREDENTIALS_KMS_KEY_ID) {
    const keyring = createKeyring({ key: (await resolveCredentialsKey(config, log)).key, previousKeys: previous });
    return { ...keyring, refresh: async () => undefined, propagationSeconds: 0, close: () => undefined };
  }
  const decryptOnly: EncryptionKey[] = [...(config.CREDENTIALS_ENCRYPTION_KEY ? [{ key: config.CREDENTIALS_ENCRYPTION_KEY }] : []), ...previous].map(
    (input) => createKeyring(input).current,
  );
  const kms = await loadKmsKeyring(db, await createKmsClient(config.CREDENTIALS_KMS_REGION), config.CREDENTIALS_KMS_KEY_ID, { decryptOnly });
  const timer = setInterval(
    () => void kms.refresh().catch((error: unknown) => log(`keyring refresh failed: ${error instanceof Error ? error.message : String(error)}`)),
    config.CREDENTIALS_KMS_REFRESH_SECONDS * 1000,
  );
  timer.unref();
  return {
    current: kms.current,
    keys: kms.keys,
    refresh: () => kms.refresh(),
    propagationSeconds: 2 * config.CREDENTIALS_KMS_REFRESH_SECONDS,
    close: () => clearInterval(timer),
  };
}
