/**
 * Secrets at rest and tokens.
 *
 * Credentials (role ARN, external ID, ...) are stored as an authenticated-encryption envelope:
 * AES-256-GCM, a random 12-byte IV per record, and associated data binding the ciphertext to its
 * row (organization id + provider), so a ciphertext copied to another tenant's row does not
 * decrypt. The envelope names the key it was sealed with, so keys can be rotated: configure the
 * new key as current and keep the old one under `previousKeys` until every row is re-encrypted.
 *
 * Envelope (ASCII, no secrets in clear):  v1:<keyId>:<iv base64url>:<ciphertext||tag base64url>
 *
 * Keys are passed in (the caller reads the environment or KMS); this module never reads
 * process.env.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from "node:crypto";

const ENVELOPE_VERSION = "v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
/** What a key id looks like (it is stored in every envelope). */
export const KEY_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const BASE64URL_PATTERN = /^[A-Za-z0-9_-]+$/;

/** Why a credential could not be decrypted. The message never contains plaintext or key material. */
export type CredentialDecryptionReason =
  /** Not an envelope this module wrote (wrong shape, version, encoding or lengths). */
  | "malformed"
  /** The envelope names a key id that is not configured. */
  | "unknown_key"
  /** GCM authentication failed: wrong key, tampered data, or a different organization/provider. */
  | "authentication_failed"
  /** Authenticated, but the plaintext is not JSON (not written by encryptJson). */
  | "invalid_plaintext";

export class CredentialDecryptionError extends Error {
  override readonly name = "CredentialDecryptionError";
  constructor(
    readonly reason: CredentialDecryptionReason,
    message: string,
    readonly keyId?: string,
  ) {
    super(message);
  }
}

/** The key configuration could not be used (wrong length or encoding). Raised at start-up, not per record. */
export class EncryptionKeyError extends Error {
  override readonly name = "EncryptionKeyError";
}

export interface EncryptionKeyInput {
  /** 32 bytes, as 64 hex characters or as base64 / base64url. */
  key: string;
  /** Stable name for this key, stored in every envelope. Default: derived from the key ("k" + 16 hex of SHA-256). */
  keyId?: string;
}

export interface KeyringConfig extends EncryptionKeyInput {
  /** Older keys that may still be needed to decrypt existing rows (rotation). */
  previousKeys?: EncryptionKeyInput[];
}

export interface EncryptionKey {
  readonly id: string;
  readonly material: Buffer;
}

/** The current key (used to encrypt) and every key that may decrypt, by id. */
export interface Keyring {
  readonly current: EncryptionKey;
  readonly keys: ReadonlyMap<string, EncryptionKey>;
}

/** What a ciphertext is bound to. Decrypting with a different context fails authentication. */
export interface CredentialContext {
  organizationId: number | string;
  provider: string;
}

export interface EncryptedValue {
  /** The serialized envelope, to store as text. */
  envelope: string;
  /** The id of the key that sealed it (also inside the envelope), to store for rotation queries. */
  keyId: string;
}

/** Decodes a 32-byte key given as 64 hex characters or base64 / base64url; throws EncryptionKeyError otherwise. */
export function parseEncryptionKey(raw: string): Buffer {
  const value = raw.trim();
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, "hex");
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) {
    const normalized = value.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
    const decoded = Buffer.from(normalized, "base64");
    // Buffer.from(.., "base64") silently skips bad input; require an exact round trip.
    if (decoded.length === KEY_BYTES && decoded.toString("base64").replace(/=+$/, "") === normalized) {
      return decoded;
    }
  }
  throw new EncryptionKeyError(
    `the credential encryption key must be ${KEY_BYTES} bytes, given as 64 hex characters or as base64 (for example: openssl rand -base64 32)`,
  );
}

/** The default key id: a short fingerprint of the key (not reversible, safe to store). */
export function deriveKeyId(material: Buffer): string {
  return `k${createHash("sha256").update("mini-xdr:key-id:").update(material).digest("hex").slice(0, 16)}`;
}

function toKey(input: EncryptionKeyInput): EncryptionKey {
  const material = parseEncryptionKey(input.key);
  const id = input.keyId ?? deriveKeyId(material);
  if (!KEY_ID_PATTERN.test(id)) {
    throw new EncryptionKeyError(`key id ${JSON.stringify(id)} must be 1-64 characters of letters, digits, _ or -`);
  }
  return { id, material };
}

export function createKeyring(config: KeyringConfig): Keyring {
  const current = toKey(config);
  const keys = new Map<string, EncryptionKey>([[current.id, current]]);
  for (const input of config.previousKeys ?? []) {
    const key = toKey(input);
    const existing = keys.get(key.id);
    if (existing && !existing.material.equals(key.material)) {
      throw new EncryptionKeyError(`two different keys share the key id ${JSON.stringify(key.id)}`);
    }
    keys.set(key.id, key);
  }
  return { current, keys };
}

function isKeyring(value: Keyring | KeyringConfig): value is Keyring {
  return typeof (value as Keyring).current === "object" && (value as Keyring).keys instanceof Map;
}

function asKeyring(keys: Keyring | KeyringConfig): Keyring {
  return isKeyring(keys) ? keys : createKeyring(keys);
}

function associatedData(version: string, keyId: string, context: CredentialContext): Buffer {
  const organizationId = String(context.organizationId);
  if (organizationId.length === 0 || context.provider.length === 0) {
    throw new TypeError("credential context needs an organization id and a provider");
  }
  // Length-prefixed fields: no two different contexts serialize the same way.
  const fields = ["mini-xdr:credential", version, keyId, organizationId, context.provider];
  return Buffer.from(fields.map((field) => `${Buffer.byteLength(field)}:${field}`).join("|"), "utf8");
}

/** Encrypts a JSON-serializable value for one organization + provider with the keyring's current key. */
export function encryptJson(value: unknown, context: CredentialContext, keys: Keyring | KeyringConfig): EncryptedValue {
  const keyring = asKeyring(keys);
  const key = keyring.current;
  const plaintext = JSON.stringify(value);
  if (plaintext === undefined) throw new TypeError("encryptJson: value is not JSON-serializable");
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key.material, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData(ENVELOPE_VERSION, key.id, context));
  const sealed = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()]);
  const envelope = [ENVELOPE_VERSION, key.id, iv.toString("base64url"), sealed.toString("base64url")].join(":");
  return { envelope, keyId: key.id };
}

/** The key id named by an envelope, or undefined when it is not an envelope. */
export function envelopeKeyId(envelope: string): string | undefined {
  const parts = envelope.split(":");
  return parts.length === 4 && parts[0] === ENVELOPE_VERSION && KEY_ID_PATTERN.test(parts[1]!) ? parts[1] : undefined;
}

/**
 * Decrypts an envelope written by encryptJson for the same organization + provider.
 * Throws CredentialDecryptionError (never returns garbage) on a wrong key, tampering or a context mismatch.
 */
export function decryptJson<T = unknown>(envelope: string, context: CredentialContext, keys: Keyring | KeyringConfig): T {
  const keyring = asKeyring(keys);
  const parts = typeof envelope === "string" ? envelope.split(":") : [];
  if (parts.length !== 4) {
    throw new CredentialDecryptionError("malformed", "credential envelope is malformed");
  }
  const [version, keyId, ivText, sealedText] = parts as [string, string, string, string];
  if (version !== ENVELOPE_VERSION) {
    throw new CredentialDecryptionError("malformed", `credential envelope version ${JSON.stringify(version)} is not supported`);
  }
  if (!KEY_ID_PATTERN.test(keyId) || !BASE64URL_PATTERN.test(ivText) || !BASE64URL_PATTERN.test(sealedText)) {
    throw new CredentialDecryptionError("malformed", "credential envelope is malformed");
  }
  const iv = Buffer.from(ivText, "base64url");
  const sealed = Buffer.from(sealedText, "base64url");
  if (iv.length !== IV_BYTES || sealed.length < TAG_BYTES) {
    throw new CredentialDecryptionError("malformed", "credential envelope is malformed", keyId);
  }
  const key = keyring.keys.get(keyId);
  if (!key) {
    throw new CredentialDecryptionError(
      "unknown_key",
      `credential was encrypted with key ${keyId}, which is not configured (wrong key, or a rotated-out key missing from previousKeys)`,
      keyId,
    );
  }
  let plaintext: string;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.material, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(associatedData(version, keyId, context));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    plaintext = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES)), decipher.final()]).toString("utf8");
  } catch {
    throw new CredentialDecryptionError(
      "authentication_failed",
      `credential failed authentication with key ${keyId} (wrong key, tampered data, or another organization/provider)`,
      keyId,
    );
  }
  try {
    return JSON.parse(plaintext) as T;
  } catch {
    throw new CredentialDecryptionError("invalid_plaintext", "credential plaintext is not JSON", keyId);
  }
}

/** SHA-256 of a token, lowercase hex: what the database stores instead of the token. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Constant-time comparison of two secrets of any length (both are hashed to 32 bytes first). */
export function tokensEqual(a: string, b: string): boolean {
  const left = createHash("sha256").update(a, "utf8").digest();
  const right = createHash("sha256").update(b, "utf8").digest();
  return timingSafeEqual(left, right);
}

/** A new random secret, `<prefix>_<43 base64url chars>` (32 random bytes = 256 bits of entropy). */
export function generateToken(prefix: string, bytes = 32): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9-]{0,31}$/.test(prefix)) {
    throw new TypeError("token prefix must be 1-32 letters, digits or dashes, starting with a letter or digit");
  }
  if (!Number.isInteger(bytes) || bytes < 32) throw new RangeError("a token needs at least 32 random bytes");
  return `${prefix}_${randomBytes(bytes).toString("base64url")}`;
}
