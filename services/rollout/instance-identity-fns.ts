/**
 * The EC2 instance identity document as the proof of an agent's instance. EC2 serves every instance its document
 * (account, region, instance id, ...) at /latest/dynamic/instance-identity/document and, at .../signature, a
 * base64 RSA SHA-256 signature of those exact bytes made with AWS's key for the region. Only an instance (or whoever
 * it hands them to) has a document and signature for its own id; nobody can make one for another account, region
 * or instance without AWS's key. Verified here, pure, with the certificates AWS publishes per region
 * (aws-instance-identity-certificates.json) plus any the platform adds (AGENT_IDENTITY_CERTIFICATES_FILE: a new
 * region, a rotated certificate, a test CA).
 *
 * The certificates are carriers of AWS's public keys, used as AWS's own procedure uses them (`openssl dgst -verify`
 * with the key): no chain, no dates. Which key signs for a region is what the data says.
 */
import { X509Certificate, verify, type KeyObject } from "node:crypto";
import { z } from "zod";
import { UnauthorizedError } from "../../lib/errors";
import shipped from "./aws-instance-identity-certificates.json" with { type: "json" };

/** AWS's region codes (us-east-1, us-gov-west-1, ap-southeast-5, ...). */
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

export const identityCertificatesFileSchema = z.object({
  description: z.string().optional(),
  source: z.string().optional(),
  certificates: z
    .array(
      z.strictObject({
        regions: z.array(z.string().regex(REGION, "must be AWS region codes such as us-east-1")).min(1, "must name at least one region"),
        certificate: z.string().includes("-----BEGIN CERTIFICATE-----", { message: "must be a PEM certificate" }),
      }),
    )
    .min(1, "must hold at least one certificate"),
});

/** Region -> the public keys that may sign its identity documents. */
export interface IdentityTrust {
  keysFor(region: string): KeyObject[];
  regions(): string[];
}

/** Parses and checks a certificates file (the shipped one or an extra); throws an Error naming the bad entry. */
export function parseIdentityCertificates(input: unknown, source: string): { region: string; key: KeyObject }[] {
  const parsed = identityCertificatesFileSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${source}: ${issue.path.join(".") || "(file)"} ${issue.message}`);
  }
  return parsed.data.certificates.flatMap((entry, index) => {
    let key: KeyObject;
    try {
      key = new X509Certificate(entry.certificate).publicKey;
    } catch (error) {
      throw new Error(`${source}: certificates.${index}.certificate is not a readable X.509 certificate (${(error as Error).message})`);
    }
    if (key.asymmetricKeyType !== "rsa") {
      throw new Error(`${source}: certificates.${index}.certificate must hold an RSA key (the identity signature is RSA SHA-256)`);
    }
    return entry.regions.map((region) => ({ region, key }));
  });
}

export function createIdentityTrust(entries: { region: string; key: KeyObject }[]): IdentityTrust {
  const byRegion = new Map<string, KeyObject[]>();
  for (const { region, key } of entries) byRegion.set(region, [...(byRegion.get(region) ?? []), key]);
  return {
    keysFor: (region) => byRegion.get(region) ?? [],
    regions: () => [...byRegion.keys()].sort(),
  };
}

/** AWS's published certificates, plus `extra` (parsed from AGENT_IDENTITY_CERTIFICATES_FILE) when given. */
export function awsIdentityTrust(extra: { region: string; key: KeyObject }[] = []): IdentityTrust {
  return createIdentityTrust([...parseIdentityCertificates(shipped, "aws-instance-identity-certificates.json"), ...extra]);
}

/** What enrollment needs from a verified document (AWS adds other fields; they are ignored). */
export interface InstanceIdentity {
  accountId: string;
  region: string;
  instanceId: string;
  pendingTime?: Date;
}

const documentSchema = z.object({
  accountId: z.string().regex(/^\d{12}$/),
  region: z.string().regex(REGION),
  instanceId: z.string().regex(/^i-[A-Za-z0-9-]{1,60}$/),
  pendingTime: z.iso.datetime({ offset: true }).optional(),
});

export class InvalidInstanceIdentityError extends UnauthorizedError {
  constructor(reason: string) {
    super(`the instance identity document was refused: ${reason}`, { code: "invalid_instance_identity" });
  }
}

/** Base64 as IMDS serves it: 76-character lines. */
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * The identity the document proves, once its signature verifies with a key trusted for the region it names. The
 * region is read before verifying only to pick the key: a document that lies about it finds no key that verifies.
 */
export function verifyInstanceIdentity(trust: IdentityTrust, document: string, signature: string): InstanceIdentity {
  const compact = signature.replace(/\s+/g, "");
  if (!BASE64.test(compact)) throw new InvalidInstanceIdentityError("the signature is not base64");
  let claimed: unknown;
  try {
    claimed = JSON.parse(document);
  } catch {
    throw new InvalidInstanceIdentityError("the document is not JSON");
  }
  const fields = documentSchema.safeParse(claimed);
  if (!fields.success) {
    const issue = fields.error.issues[0]!;
    throw new InvalidInstanceIdentityError(`the document's ${issue.path.join(".")} is missing or malformed`);
  }
  const keys = trust.keysFor(fields.data.region);
  if (keys.length === 0) throw new InvalidInstanceIdentityError(`no AWS certificate is trusted for region ${fields.data.region}`);
  const bytes = Buffer.from(document, "utf8");
  const signed = Buffer.from(compact, "base64");
  if (!keys.some((key) => verify("sha256", bytes, key, signed))) {
    throw new InvalidInstanceIdentityError(`the signature does not verify with AWS's certificate for region ${fields.data.region}`);
  }
  const { pendingTime, ...identity } = fields.data;
  return { ...identity, ...(pendingTime ? { pendingTime: new Date(pendingTime) } : {}) };
}
