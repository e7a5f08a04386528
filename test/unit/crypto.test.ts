import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  CredentialDecryptionError,
  EncryptionKeyError,
  createKeyring,
  decryptJson,
  encryptJson,
  envelopeKeyId,
  generateToken,
  hashToken,
  parseEncryptionKey,
  tokensEqual,
  type CredentialDecryptionReason,
} from "../../db/crypto";

const KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const KEY_B64 = Buffer.from(KEY_HEX, "hex").toString("base64");
const OTHER_KEY = randomBytes(32).toString("base64");
const CONTEXT = { organizationId: 2, provider: "aws" };
const SECRET = {
  roleArn: "arn:aws:iam::210987654321:role/MiniXdrBootstrap",
  externalId: "mxdr-ext-4f1c2b7e9a0d4c1b8e6f",
};

function decryptionFailure(run: () => unknown): CredentialDecryptionError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(CredentialDecryptionError);
    const failure = error as CredentialDecryptionError;
    expect(failure.name).toBe("CredentialDecryptionError");
    expect(failure.message).not.toContain(SECRET.externalId);
    return failure;
  }
  throw new Error("expected decryption to throw");
}

function expectReason(run: () => unknown, reason: CredentialDecryptionReason): void {
  expect(decryptionFailure(run).reason).toBe(reason);
}

/** Flips one bit of the base64url field at `index` of the envelope. */
function tamper(envelope: string, index: number, byte = 0): string {
  const parts = envelope.split(":");
  const bytes = Buffer.from(parts[index]!, "base64url");
  bytes[byte] = bytes[byte]! ^ 0x01;
  parts[index] = bytes.toString("base64url");
  return parts.join(":");
}

describe("parseEncryptionKey", () => {
  it("accepts 32 bytes as hex, base64 and base64url", () => {
    const expected = Buffer.from(KEY_HEX, "hex");
    expect(parseEncryptionKey(KEY_HEX).equals(expected)).toBe(true);
    expect(parseEncryptionKey(KEY_HEX.toUpperCase()).equals(expected)).toBe(true);
    expect(parseEncryptionKey(KEY_B64).equals(expected)).toBe(true);
    expect(parseEncryptionKey(Buffer.from(KEY_HEX, "hex").toString("base64url")).equals(expected)).toBe(true);
    expect(parseEncryptionKey(` ${KEY_B64}\n`).equals(expected)).toBe(true);
  });

  it("rejects other lengths and encodings without echoing the key", () => {
    const short = randomBytes(31).toString("base64");
    for (const bad of [short, randomBytes(33).toString("hex"), "not a key!", "", KEY_HEX.slice(2)]) {
      expect(() => parseEncryptionKey(bad)).toThrow(EncryptionKeyError);
    }
    try {
      parseEncryptionKey(short);
    } catch (error) {
      expect((error as Error).message).not.toContain(short);
    }
  });
});

describe("encryptJson / decryptJson", () => {
  const keyring = createKeyring({ key: KEY_B64 });

  it("round-trips JSON bound to an organization and provider", () => {
    const { envelope, keyId } = encryptJson(SECRET, CONTEXT, keyring);
    expect(keyId).toBe(keyring.current.id);
    expect(envelopeKeyId(envelope)).toBe(keyId);
    expect(decryptJson(envelope, CONTEXT, keyring)).toEqual(SECRET);
    // A key config works as well as a prepared keyring.
    expect(decryptJson(envelope, CONTEXT, { key: KEY_HEX })).toEqual(SECRET);
  });

  it("writes a v1 envelope with a fresh 12-byte IV and no plaintext", () => {
    const first = encryptJson(SECRET, CONTEXT, keyring).envelope;
    const second = encryptJson(SECRET, CONTEXT, keyring).envelope;
    expect(first).not.toBe(second);
    const [version, keyId, iv, sealed] = first.split(":");
    expect(version).toBe("v1");
    expect(keyId).toMatch(/^k[0-9a-f]{16}$/);
    expect(Buffer.from(iv!, "base64url")).toHaveLength(12);
    expect(Buffer.from(sealed!, "base64url").length).toBe(JSON.stringify(SECRET).length + 16);
    expect(iv).not.toBe(second.split(":")[2]);
    for (const text of [first, Buffer.from(first).toString("latin1")]) {
      expect(text).not.toContain(SECRET.externalId);
      expect(text).not.toContain("MiniXdrBootstrap");
    }
  });

  it("throws CredentialDecryptionError for a wrong key", () => {
    const { envelope } = encryptJson(SECRET, CONTEXT, keyring);
    // Different key, derived (different) key id: the envelope names a key we do not have.
    expectReason(() => decryptJson(envelope, CONTEXT, { key: OTHER_KEY }), "unknown_key");
    // Different key under the same configured id: authentication fails.
    const named = encryptJson(SECRET, CONTEXT, { key: KEY_B64, keyId: "primary" }).envelope;
    expectReason(() => decryptJson(named, CONTEXT, { key: OTHER_KEY, keyId: "primary" }), "authentication_failed");
  });

  it("throws for tampered data, never returning garbage", () => {
    const { envelope } = encryptJson(SECRET, CONTEXT, keyring);
    const sealedLength = Buffer.from(envelope.split(":")[3]!, "base64url").length;
    expectReason(() => decryptJson(tamper(envelope, 3, 0), CONTEXT, keyring), "authentication_failed");
    expectReason(() => decryptJson(tamper(envelope, 3, sealedLength - 1), CONTEXT, keyring), "authentication_failed");
    expectReason(() => decryptJson(tamper(envelope, 2, 5), CONTEXT, keyring), "authentication_failed");
    expectReason(() => decryptJson(envelope.replace(/^v1:[^:]+:/, "v1:kffffffffffffffff:"), CONTEXT, keyring), "unknown_key");
  });

  it("throws for another organization or provider (associated data)", () => {
    const { envelope } = encryptJson(SECRET, CONTEXT, keyring);
    expectReason(() => decryptJson(envelope, { organizationId: 3, provider: "aws" }, keyring), "authentication_failed");
    expectReason(() => decryptJson(envelope, { organizationId: 2, provider: "azure" }, keyring), "authentication_failed");
    // The organization id is bound by its decimal form: 2 and "2" are the same organization.
    expect(decryptJson(envelope, { organizationId: "2", provider: "aws" }, keyring)).toEqual(SECRET);
  });

  it("rejects malformed envelopes", () => {
    const { envelope } = encryptJson(SECRET, CONTEXT, keyring);
    const [, keyId, iv, sealed] = envelope.split(":");
    for (const bad of [
      "",
      "plaintext",
      JSON.stringify(SECRET),
      `v2:${keyId}:${iv}:${sealed}`,
      `v1:${keyId}:${iv}`,
      `v1:${keyId}:${iv}:${sealed}:extra`,
      `v1:${keyId}:AAAA:${sealed}`,
      `v1:${keyId}:${iv}:AAAA`,
      `v1:${keyId}:${iv}:${sealed}==`,
    ]) {
      expectReason(() => decryptJson(bad, CONTEXT, keyring), "malformed");
    }
  });

  it("decrypts with a previous key after rotation and encrypts with the current one", () => {
    const old = encryptJson(SECRET, CONTEXT, { key: KEY_B64 });
    const rotated = createKeyring({ key: OTHER_KEY, previousKeys: [{ key: KEY_B64 }] });
    expect(decryptJson(old.envelope, CONTEXT, rotated)).toEqual(SECRET);
    const fresh = encryptJson(SECRET, CONTEXT, rotated);
    expect(fresh.keyId).toBe(rotated.current.id);
    expect(fresh.keyId).not.toBe(old.keyId);
    expectReason(() => decryptJson(fresh.envelope, CONTEXT, { key: KEY_B64 }), "unknown_key");
  });

  it("refuses ambiguous key ids and bad contexts", () => {
    expect(() => createKeyring({ key: KEY_B64, keyId: "a", previousKeys: [{ key: OTHER_KEY, keyId: "a" }] })).toThrow(EncryptionKeyError);
    expect(() => createKeyring({ key: KEY_B64, keyId: "bad:id" })).toThrow(EncryptionKeyError);
    expect(() => encryptJson(SECRET, { organizationId: "", provider: "aws" }, keyring)).toThrow(TypeError);
  });
});

describe("tokens", () => {
  it("hashToken is SHA-256 hex", () => {
    expect(hashToken("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(hashToken("mxa_x")).toMatch(/^[0-9a-f]{64}$/);
  });

  it("tokensEqual compares in constant time, any lengths", () => {
    const token = generateToken("mxa");
    expect(tokensEqual(token, token.slice())).toBe(true);
    expect(tokensEqual(token, `${token}x`)).toBe(false);
    expect(
      tokensEqual(
        token,
        token.replace(/.$/, (c) => (c === "A" ? "B" : "A")),
      ),
    ).toBe(false);
    expect(tokensEqual("", "")).toBe(true);
    expect(tokensEqual("", "a")).toBe(false);
  });

  it("generateToken is prefixed, url-safe and has at least 256 bits", () => {
    const tokens = new Set(Array.from({ length: 200 }, () => generateToken("mxe")));
    expect(tokens.size).toBe(200);
    for (const token of tokens) {
      expect(token).toMatch(/^mxe_[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(token.slice(4), "base64url")).toHaveLength(32);
    }
    expect(generateToken("mxa", 48)).toMatch(/^mxa_[A-Za-z0-9_-]{64}$/);
    expect(() => generateToken("bad prefix")).toThrow(TypeError);
    expect(() => generateToken("")).toThrow(TypeError);
    expect(() => generateToken("mxa", 16)).toThrow(RangeError);
  });
});
