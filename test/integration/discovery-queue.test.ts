/**
 * Discovery scans through the pg-boss queue on real PostgreSQL against moto: a requested scan assumes the XDR role
 * from the tenant's last successful `up` (its outputs) with the tenant's sealed external ID and records per-region
 * results; one scan per tenant at a time; the scheduled sweep picks exactly the tenants due for rediscovery.
 */
import { randomBytes } from "node:crypto";
import { EC2Client, RunInstancesCommand, DescribeImagesCommand } from "@aws-sdk/client-ec2";
import { eq } from "drizzle-orm";
import type { PgBoss } from "pg-boss";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { createKeyring, encryptJson } from "../../db/crypto";
import { cloudAssets, discoveryScans, integrationCredentials, organizations, runs } from "../../db/schema";
import { startScanQueue, type ScanQueue } from "../../services/discovery/scan-queue";
import { assumeRoleCredentials } from "../../services/core/assume-role";
import { startBoss } from "../../db/boss";
import { AWS_CREDENTIAL_TYPE, awsCredentialContext } from "../../services/core/aws-credential-store";
import { realPostgres } from "../harness/databases";

const keyring = createKeyring({ key: randomBytes(32).toString("base64") });
const ACCOUNT = "345678901234";
const EXTERNAL_ID = "mxdr-ext-queue-test-0123456789";

let database: Database;
let cleanup: () => Promise<void>;
let boss: PgBoss;
let scans: ScanQueue;

interface TenantShape {
  autoDiscovery?: boolean;
  upSucceeded?: boolean;
  offboarded?: boolean;
}

async function tenant({ autoDiscovery = true, upSucceeded = true, offboarded = false }: TenantShape = {}) {
  const slug = `scan-${randomBytes(4).toString("hex")}`;
  const { db } = database;
  const [org] = await db
    .insert(organizations)
    .values({
      slug,
      name: slug,
      autoDiscoveryEnabled: autoDiscovery,
      integrationSettings: { homeRegion: "us-east-1", regions: ["us-east-1", "eu-west-1"] },
      awsAccountId: ACCOUNT,
      ...(offboarded ? { offboardedAt: new Date(), onboardingStatus: "offboarded" as const } : {}),
    })
    .returning();
  const sealed = encryptJson(
    { bootstrapRoleArn: `arn:aws:iam::${ACCOUNT}:role/Bootstrap`, externalId: EXTERNAL_ID },
    awsCredentialContext(org!.id),
    keyring,
  );
  await db.insert(integrationCredentials).values({
    organizationId: org!.id,
    provider: "aws",
    credentialType: AWS_CREDENTIAL_TYPE,
    credentialData: sealed.envelope,
    encryptionKeyId: sealed.keyId,
    status: "active",
  });
  await db.insert(runs).values({
    organizationId: org!.id,
    stackName: `tenant-${slug}`,
    kind: "up",
    actor: "test",
    status: upSucceeded ? "succeeded" : "failed",
    finishedAt: new Date(),
    outputs: upSucceeded ? { roleArn: `arn:aws:iam::${ACCOUNT}:role/MiniXdrAccess-${slug}` } : null,
  });
  return org!;
}

async function settled(scanId: string) {
  for (let attempt = 0; attempt < 240; attempt++) {
    const [scan] = await database.db.select().from(discoveryScans).where(eq(discoveryScans.id, scanId));
    if (scan && !["queued", "running"].includes(scan.status)) return scan;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`scan ${scanId} did not finish`);
}

beforeAll(async () => {
  ({ database, cleanup } = await realPostgres.open());
  boss = await startBoss(database.connectionString);
  scans = await startScanQueue(boss, { db: database.db, keyring }, { work: true });
  // Two instances in the tenant's account (moto maps the assumed role's credentials to its account).
  const credentials = assumeRoleCredentials({ roleArn: `arn:aws:iam::${ACCOUNT}:role/Seeder`, externalId: EXTERNAL_ID });
  const ec2 = new EC2Client({ region: "us-east-1", credentials });
  const images = await ec2.send(new DescribeImagesCommand({ Owners: ["amazon"] }));
  const ami = images.Images!.find((image) => !image.Platform)!.ImageId!;
  await ec2.send(
    new RunInstancesCommand({
      ImageId: ami,
      MinCount: 2,
      MaxCount: 2,
      TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Role", Value: "web-server" }] }],
    }),
  );
  ec2.destroy();
});

afterAll(async () => {
  await boss?.stop({ graceful: false });
  await cleanup?.();
});

describe("discovery scans on the queue", () => {
  it("runs a requested scan with the tenant's role and records every region's result", async () => {
    const org = await tenant();
    const { scanId, alreadyActive } = await scans.request({ organizationId: org.id, trigger: "manual", actor: "test" });
    expect(alreadyActive).toBe(false);
    const scan = await settled(scanId);
    expect(scan.status).toBe("succeeded");
    expect(scan.regions?.map((region) => region.region).sort()).toEqual(["eu-west-1", "us-east-1"]);
    expect(scan.assetsFound).toBe(2);
    const assets = await database.db.select().from(cloudAssets).where(eq(cloudAssets.organizationId, org.id));
    expect(assets.map((asset) => asset.priority)).toEqual(["high", "high"]);
  });

  it("answers a second request while one is active with the active scan", async () => {
    const org = await tenant();
    const first = await scans.request({ organizationId: org.id, trigger: "manual", actor: "test" });
    const second = await scans.request({ organizationId: org.id, trigger: "manual", actor: "test" });
    expect(second).toEqual({ scanId: first.scanId, alreadyActive: true });
    expect((await settled(first.scanId)).status).toBe("succeeded");
  });

  it("fails a scan of a tenant whose stack was never applied, with the reason", async () => {
    const org = await tenant({ upSucceeded: false });
    const scan = await settled((await scans.request({ organizationId: org.id, trigger: "manual", actor: "test" })).scanId);
    expect(scan.status).toBe("failed");
    expect(scan.error?.message).toMatch(/has not been applied/);
  });

  it("sweeps exactly the tenants with auto-discovery on, a provisioned stack and no offboarding", async () => {
    const due = await tenant();
    const disabled = await tenant({ autoDiscovery: false });
    const unprovisioned = await tenant({ upSucceeded: false });
    const gone = await tenant({ offboarded: true });
    const requested = await scans.sweep();
    const swept = await database.db.select().from(discoveryScans).where(eq(discoveryScans.trigger, "schedule"));
    const sweptOrgs = new Set(swept.map((scan) => scan.organizationId));
    expect(sweptOrgs.has(due.id)).toBe(true);
    for (const org of [disabled, unprovisioned, gone]) expect(sweptOrgs.has(org.id)).toBe(false);
    expect(requested.length).toBe(swept.length);
    for (const scanId of requested) expect((await settled(scanId)).status).toBe("succeeded");
  });
});
