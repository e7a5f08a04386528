/**
 * A test CA standing in for AWS's instance identity key: a throwaway RSA key and self-signed certificate made once
 * per test process by `openssl` (as test/harness/https-server.ts does), and a certificates file in the format of
 * services/rollout/aws-instance-identity-certificates.json that trusts it for every region. The service trusts it
 * through AGENT_IDENTITY_CERTIFICATES_FILE (serverEnvFor sets it) or, in-process, `testIdentityTrust()`; it then
 * verifies these documents with its production code path. The IMDS stand-in serves them to the install script.
 */
import { execFileSync } from "node:child_process";
import { createPrivateKey, sign, type KeyObject } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AWS_REGIONS } from "../../lib/aws-regions";
import { awsIdentityTrust, parseIdentityCertificates, type IdentityTrust } from "../../services/rollout/instance-identity-fns";

export interface IdentityAuthority {
  /** The certificates file to name in AGENT_IDENTITY_CERTIFICATES_FILE. */
  trustFile: string;
  certificatePem: string;
  key: KeyObject;
}

function makeAuthority(name: string): IdentityAuthority {
  const dir = mkdtempSync(join(tmpdir(), "mxdr-identity-ca-"));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, "key.pem");
  const certFile = join(dir, "cert.pem");
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${name}`, "-days", "2", "-keyout", keyFile, "-out", certFile],
      { stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 },
    );
  } catch (error) {
    throw new Error(`openssl could not make the test identity CA (apt-get install openssl): ${(error as Error).message}`);
  }
  const certificatePem = readFileSync(certFile, "utf8");
  const trustFile = join(dir, "identity-certificates.json");
  writeFileSync(
    trustFile,
    JSON.stringify({
      description: `test CA ${name} (test/harness/instance-identity.ts)`,
      certificates: [{ regions: AWS_REGIONS, certificate: certificatePem }],
    }),
  );
  return { trustFile, certificatePem, key: createPrivateKey(readFileSync(keyFile)) };
}

let shared: IdentityAuthority | undefined;
/** The test CA every test of this process signs with (and every service it starts trusts). */
export function testIdentityAuthority(): IdentityAuthority {
  shared ??= makeAuthority("mini-xdr test instance identity CA");
  return shared;
}

/** Another CA, trusted by nobody: a forger's key. */
export function untrustedIdentityAuthority(): IdentityAuthority {
  return makeAuthority("mini-xdr untrusted CA");
}

/** AWS's certificates plus the test CA, as the service builds it from AGENT_IDENTITY_CERTIFICATES_FILE. */
export function testIdentityTrust(): IdentityTrust {
  const authority = testIdentityAuthority();
  return awsIdentityTrust(parseIdentityCertificates(JSON.parse(readFileSync(authority.trustFile, "utf8")), authority.trustFile));
}

export interface IdentityFields {
  accountId: string;
  region: string;
  instanceId: string;
  pendingTime?: string;
}

/** A document laid out as IMDS serves it (AWS's field order and ` : ` spacing, no trailing newline). */
export function identityDocument({ accountId, region, instanceId, pendingTime = "2026-01-05T08:00:00Z" }: IdentityFields): string {
  const fields: [string, unknown][] = [
    ["accountId", accountId],
    ["architecture", "x86_64"],
    ["availabilityZone", `${region}a`],
    ["billingProducts", null],
    ["devpayProductCodes", null],
    ["marketplaceProductCodes", null],
    ["imageId", "ami-0123456789abcdef0"],
    ["instanceId", instanceId],
    ["instanceType", "t3.micro"],
    ["kernelId", null],
    ["pendingTime", pendingTime],
    ["privateIp", "10.0.0.10"],
    ["ramdiskId", null],
    ["region", region],
    ["version", "2017-09-30"],
  ];
  return `{\n${fields.map(([key, value]) => `  ${JSON.stringify(key)} : ${JSON.stringify(value)}`).join(",\n")}\n}`;
}

/** IMDS's signature of `document`: base64 RSA SHA-256 in 76-character lines. */
export function signIdentityDocument(document: string, authority: IdentityAuthority = testIdentityAuthority()): string {
  const signature = sign("sha256", Buffer.from(document, "utf8"), authority.key).toString("base64");
  return signature.match(/.{1,76}/g)!.join("\n");
}

export interface SignedIdentity {
  document: string;
  signature: string;
}

/** What IMDS hands the instance: its document and the signature, by the test CA unless another authority is given. */
export function signedIdentity(fields: IdentityFields, authority?: IdentityAuthority): SignedIdentity {
  const document = identityDocument(fields);
  return { document, signature: signIdentityDocument(document, authority) };
}

/** The enrollment body an agent on that instance sends (POST /v1/agents/enroll). */
export function enrollmentBody(
  enrollmentToken: string,
  fields: IdentityFields,
  extra: { hostname?: string; agentVersion?: string; agentCredential?: string } = {},
): Record<string, string> {
  const { document, signature } = signedIdentity(fields);
  return {
    enrollment_token: enrollmentToken,
    identity_document: document,
    identity_signature: signature,
    hostname: extra.hostname ?? `ip-${fields.instanceId}`,
    agent_version: extra.agentVersion ?? "1.0.0",
    ...(extra.agentCredential ? { agent_credential: extra.agentCredential } : {}),
  };
}
