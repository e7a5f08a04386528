/**
 * The instance identity proof (services/rollout/instance-identity-fns.ts): a document verifies only with the
 * signature of a key trusted for the region it names, byte for byte. A real document AWS signed (us-east-1, taken
 * from AWS's verification test data of github.com/rspamd/awsregioncertificates) verifies with the shipped
 * certificates; documents signed by the test CA of test/harness/instance-identity.ts verify once it is trusted.
 */
import { createPublicKey } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  awsIdentityTrust,
  createIdentityTrust,
  InvalidInstanceIdentityError,
  parseIdentityCertificates,
  verifyInstanceIdentity,
} from "../../services/rollout/instance-identity-fns";
import {
  identityDocument,
  signedIdentity,
  signIdentityDocument,
  testIdentityAuthority,
  testIdentityTrust,
  untrustedIdentityAuthority,
} from "../harness/instance-identity";
import { AWS_REGIONS } from "../../lib/aws-regions";
import { loadIdentityTrust, loadServiceConfig, ServiceConfigError } from "../../platform/config";

const AWS_SIGNED_DOCUMENT = `{
  "accountId" : "975050371289",
  "architecture" : "x86_64",
  "availabilityZone" : "us-east-1b",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0c7217cdde317cfec",
  "instanceId" : "i-0b02d936754a6d637",
  "instanceType" : "t2.micro",
  "kernelId" : null,
  "pendingTime" : "2024-02-15T14:12:11Z",
  "privateIp" : "172.31.17.154",
  "ramdiskId" : null,
  "region" : "us-east-1",
  "version" : "2017-09-30"
}`;
const AWS_SIGNATURE = `OQTgfPTsc7hXR+3OWP7dk7qY1S1RNGvVvoVPzn/WogAqJpGBtei2pSx3OfZ7F1PDMpClQswDcF9N
iZmPD09xyJSrSRwYvx8SFoBWzUXS1hd9T1ZxpqWtloe/k//YmK7h9f7rjuT3/CxDDCWrbsKp8F0N
ck+YPKGzD+dtxEm6g1g=`;

const fields = { accountId: "123456789012", region: "eu-west-1", instanceId: "i-0123456789abcdef0" };

const refusal = (run: () => unknown): string => {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInstanceIdentityError);
    expect((error as InvalidInstanceIdentityError).code).toBe("invalid_instance_identity");
    return (error as Error).message;
  }
  throw new Error("the document was accepted");
};

describe("the instance identity proof", () => {
  it("verifies a real document signed by AWS with the shipped certificate of its region", () => {
    expect(verifyInstanceIdentity(awsIdentityTrust(), AWS_SIGNED_DOCUMENT, AWS_SIGNATURE)).toEqual({
      accountId: "975050371289",
      region: "us-east-1",
      instanceId: "i-0b02d936754a6d637",
      pendingTime: new Date("2024-02-15T14:12:11Z"),
    });
  });

  it("ships an RSA certificate for every commercial region but ap-southeast-6, and only for known regions", () => {
    const shipped = awsIdentityTrust().regions();
    expect(AWS_REGIONS.filter((region) => !shipped.includes(region))).toEqual(["ap-southeast-6"]);
    expect(shipped.filter((region) => !(AWS_REGIONS as readonly string[]).includes(region))).toEqual([]);
  });

  it("refuses AWS's real document once a byte changes, or with the certificate of another region", () => {
    const tampered = AWS_SIGNED_DOCUMENT.replace("i-0b02d936754a6d637", "i-0b02d936754a6d638");
    expect(refusal(() => verifyInstanceIdentity(awsIdentityTrust(), tampered, AWS_SIGNATURE))).toContain(
      "the signature does not verify with AWS's certificate for region us-east-1",
    );
    // Even whitespace counts: the signature covers the bytes IMDS served.
    expect(refusal(() => verifyInstanceIdentity(awsIdentityTrust(), `${AWS_SIGNED_DOCUMENT}\n`, AWS_SIGNATURE))).toContain("does not verify");
    const claimsAnotherRegion = AWS_SIGNED_DOCUMENT.replace('"region" : "us-east-1"', '"region" : "af-south-1"');
    expect(refusal(() => verifyInstanceIdentity(awsIdentityTrust(), claimsAnotherRegion, AWS_SIGNATURE))).toContain("region af-south-1");
  });

  it("verifies a document signed by the test CA once it is trusted, and returns what it proves", () => {
    const { document, signature } = signedIdentity(fields);
    expect(verifyInstanceIdentity(testIdentityTrust(), document, signature)).toEqual({ ...fields, pendingTime: new Date("2026-01-05T08:00:00Z") });
  });

  it("refuses the test CA's documents where only AWS's certificates are trusted (a wrong certificate)", () => {
    const { document, signature } = signedIdentity(fields);
    expect(refusal(() => verifyInstanceIdentity(awsIdentityTrust(), document, signature))).toContain(
      "does not verify with AWS's certificate for region eu-west-1",
    );
  });

  it("refuses a document signed by another key than the trusted one (a forger's CA)", () => {
    const { document, signature } = signedIdentity(fields, untrustedIdentityAuthority());
    expect(refusal(() => verifyInstanceIdentity(testIdentityTrust(), document, signature))).toContain("does not verify");
  });

  it("refuses a tampered document: another instance, account or region than was signed", () => {
    const { document, signature } = signedIdentity(fields);
    for (const [from, to] of [
      [fields.instanceId, "i-deadbeef-not-real"],
      [fields.accountId, "210987654321"],
      ['"region" : "eu-west-1"', '"region" : "eu-west-2"'],
    ] as const) {
      expect(refusal(() => verifyInstanceIdentity(testIdentityTrust(), document.replace(from, to), signature))).toContain("does not verify");
    }
  });

  it("refuses unsigned and malformed input, naming what is wrong", () => {
    const document = identityDocument(fields);
    const trust = testIdentityTrust();
    expect(refusal(() => verifyInstanceIdentity(trust, document, "not base64!"))).toContain("the signature is not base64");
    expect(refusal(() => verifyInstanceIdentity(trust, document, Buffer.from("unsigned").toString("base64")))).toContain("does not verify");
    expect(refusal(() => verifyInstanceIdentity(trust, "{not json", signIdentityDocument("{not json")))).toContain("not JSON");
    const noAccount = document.replace(/ {2}"accountId" : "\d+",\n/, "");
    expect(refusal(() => verifyInstanceIdentity(trust, noAccount, signIdentityDocument(noAccount)))).toContain("accountId is missing or malformed");
  });

  it("refuses a region no certificate is trusted for", () => {
    const authority = testIdentityAuthority();
    const usEast1Only = createIdentityTrust([{ region: "us-east-1", key: createPublicKey(authority.key) }]);
    const { document, signature } = signedIdentity(fields);
    expect(refusal(() => verifyInstanceIdentity(usEast1Only, document, signature))).toContain("no AWS certificate is trusted for region eu-west-1");
  });

  it("checks a certificates file entry by entry, naming the bad one", () => {
    const certificate = testIdentityAuthority().certificatePem;
    expect(() => parseIdentityCertificates({ certificates: [] }, "extra.json")).toThrow(
      "extra.json: certificates must hold at least one certificate",
    );
    expect(() => parseIdentityCertificates({ certificates: [{ regions: ["Mars"], certificate }] }, "extra.json")).toThrow(
      "extra.json: certificates.0.regions.0 must be AWS region codes such as us-east-1",
    );
    expect(() =>
      parseIdentityCertificates(
        { certificates: [{ regions: ["us-east-1"], certificate: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----" }] },
        "extra.json",
      ),
    ).toThrow(/extra\.json: certificates\.0\.certificate is not a readable X\.509 certificate/);
    expect(
      parseIdentityCertificates({ certificates: [{ regions: ["us-east-1", "eu-west-1"], certificate }] }, "extra.json").map((entry) => entry.region),
    ).toEqual(["us-east-1", "eu-west-1"]);
  });

  it("AGENT_IDENTITY_CERTIFICATES_FILE adds the certificates of a file to AWS's; a missing or bad file stops start-up naming the variable", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mxdr-identity-config-"));
    try {
      const problem = async (file: string) => {
        const error = await loadIdentityTrust(loadServiceConfig({ AGENT_IDENTITY_CERTIFICATES_FILE: file })).then(
          () => undefined,
          (reason: unknown) => reason,
        );
        expect(error).toBeInstanceOf(ServiceConfigError);
        expect((error as ServiceConfigError).problems.map((p) => p.variable)).toEqual(["AGENT_IDENTITY_CERTIFICATES_FILE"]);
        return (error as Error).message;
      };
      expect(await problem(join(dir, "missing.json"))).toContain("ENOENT");
      await writeFile(join(dir, "broken.json"), "{");
      expect(await problem(join(dir, "broken.json"))).toContain("is not JSON");
      await writeFile(
        join(dir, "region.json"),
        JSON.stringify({ certificates: [{ regions: ["moon-1"], certificate: testIdentityAuthority().certificatePem }] }),
      );
      expect(await problem(join(dir, "region.json"))).toContain("certificates.0.regions.0 must be AWS region codes");

      const { document, signature } = signedIdentity(fields);
      const withoutFile = await loadIdentityTrust(loadServiceConfig({}));
      expect(() => verifyInstanceIdentity(withoutFile, document, signature)).toThrow(InvalidInstanceIdentityError);
      const withFile = await loadIdentityTrust(loadServiceConfig({ AGENT_IDENTITY_CERTIFICATES_FILE: testIdentityAuthority().trustFile }));
      expect(verifyInstanceIdentity(withFile, document, signature).instanceId).toBe(fields.instanceId);
      expect(verifyInstanceIdentity(withFile, AWS_SIGNED_DOCUMENT, AWS_SIGNATURE).instanceId).toBe("i-0b02d936754a6d637");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
