/**
 * Discovery against the moto server seeded with the Mini Corp fixture (shared/fixtures/mini-corp.json),
 * in the tenant's account (210987654321) through credentials of the tenant's XDR role: moto maps an
 * assumed role's session credentials to the role's account, so seeding and discovery both act in
 * that account, and a decoy in moto's default account must stay invisible.
 *
 * Platform: moto derives an instance's `Platform` from its AMI, so Windows hosts are launched from
 * one of moto's default Windows AMIs (found with DescribeImages platform=windows) and Linux hosts
 * from an AMI without a platform; discovery reads the platform back from DescribeInstances.
 *
 * Runs on the real PostgreSQL server of TEST_DATABASE_URL (a scratch database).
 */
import { EC2Client, RunInstancesCommand, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { STSClient, type STSClientConfig } from "@aws-sdk/client-sts";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../db/client";
import { cloudAssets, organizations } from "../../db/schema";
import { assumeRoleCredentials, type CredentialsProvider } from "../../services/core/assume-role";
import { discoverTenant } from "../../services/discovery/discover";
import { realPostgres } from "../harness/databases";
import { freePort, resetMoto } from "../harness/moto";
import { miniCorp } from "../fixtures/tenant-config";
import { amiIds, seedMiniCorp } from "../harness/mini-corp-estate";

const ACCOUNT = miniCorp.organization.aws_account_id;
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/MiniXdrAccess-mini-corp`;
const EXTERNAL_ID = "mxdr-ext-4f1c2b7e9a0d4c1b8e6f";
const HOME = miniCorp.organization.home_region;

function endpoint(): string {
  const url = process.env.AWS_ENDPOINT_URL;
  if (!url?.startsWith("http://127.0.0.1:")) throw new Error(`AWS_ENDPOINT_URL must point at moto on loopback, got ${url}`);
  return url;
}

function tenantCredentials(): CredentialsProvider {
  return assumeRoleCredentials({ roleArn: ROLE_ARN, externalId: EXTERNAL_ID, sessionName: "mini-xdr-test-seed" });
}

/** An instance in moto's default account (the service's own identity): discovery must never see it. */
async function seedDecoy(): Promise<string> {
  const ec2 = new EC2Client({ region: HOME });
  try {
    const amis = await amiIds(ec2);
    const launched = await ec2.send(
      new RunInstancesCommand({
        ImageId: amis.linux,
        MinCount: 1,
        MaxCount: 1,
        TagSpecifications: [{ ResourceType: "instance", Tags: [{ Key: "Name", Value: "DECOY" }] }],
      }),
    );
    return launched.Instances![0]!.InstanceId!;
  } finally {
    ec2.destroy();
  }
}

describe("assumed-role credentials", () => {
  it("assumes the role with the external ID for 900 s, caches, and refreshes before expiry", async () => {
    const sent: { RoleArn?: string; ExternalId?: string; DurationSeconds?: number; RoleSessionName?: string }[] = [];
    const sts = new STSClient({ region: HOME } satisfies STSClientConfig);
    const counting = {
      send: ((command: { input: (typeof sent)[number] }) => {
        sent.push(command.input);
        return sts.send(command as never);
      }) as unknown as STSClient["send"],
    };
    let clock = Date.now();
    const provider = assumeRoleCredentials({
      roleArn: ROLE_ARN,
      externalId: EXTERNAL_ID,
      sessionName: "mini-xdr-mini-corp",
      stsClient: counting,
      now: () => clock,
    });
    const [first, concurrent] = await Promise.all([provider(), provider()]);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ RoleArn: ROLE_ARN, ExternalId: EXTERNAL_ID, DurationSeconds: 900, RoleSessionName: "mini-xdr-mini-corp" });
    expect(concurrent).toBe(first);
    expect(first.sessionToken).toBeTruthy();
    const expiresAt = first.expiration!.getTime();

    clock = expiresAt - 6 * 60_000; // outside the 5-minute margin: cached
    expect(await provider()).toBe(first);
    expect(sent).toHaveLength(1);
    clock = expiresAt - 4 * 60_000; // inside the margin: refreshed
    const second = await provider();
    expect(sent).toHaveLength(2);
    expect(second.accessKeyId).not.toBe(first.accessKeyId);
    sts.destroy();
  });
});

describe.each([realPostgres])("discovery of the Mini Corp estate on $name", (backend) => {
  let database: Database;
  let cleanup: (() => Promise<void>) | undefined;
  let unavailable: unknown;
  let organizationId: number;
  let instanceIds: Map<string, string>;
  let decoyId: string;

  const discover = (extra: Partial<Parameters<typeof discoverTenant>[0]> = {}) =>
    discoverTenant({ db: database.db, organizationId, roleArn: ROLE_ARN, externalId: EXTERNAL_ID, ...extra });
  const rows = () => database.db.select().from(cloudAssets).where(eq(cloudAssets.organizationId, organizationId));

  beforeAll(async () => {
    try {
      endpoint();
      ({ database, cleanup } = await backend.open());
      await resetMoto(endpoint());
      instanceIds = await seedMiniCorp(tenantCredentials());
      decoyId = await seedDecoy();
      const [org] = await database.db
        .insert(organizations)
        .values({
          slug: miniCorp.organization.slug,
          name: miniCorp.organization.name,
          awsAccountId: ACCOUNT,
          integrationSettings: { regions: [HOME, "us-west-2", "eu-west-1"], homeRegion: HOME },
        })
        .returning();
      organizationId = org!.id;
    } catch (error) {
      unavailable = error;
    }
  });
  afterAll(async () => {
    await cleanup?.();
  });
  beforeEach(() => {
    if (unavailable) throw unavailable;
  });

  it("finds exactly the 7 instances and 1 database, with the expected priority, compatibility and platform", async () => {
    const summary = await discover();
    expect(summary.regions).toEqual([
      { region: HOME, status: "succeeded", assets: 8, durationMs: expect.any(Number) },
      { region: "us-west-2", status: "succeeded", assets: 0, durationMs: expect.any(Number) },
      { region: "eu-west-1", status: "succeeded", assets: 0, durationMs: expect.any(Number) },
    ]);
    expect(summary).toMatchObject({ assetsFound: 8, inserted: 8, updated: 0, removed: 0, written: 8 });

    const stored = await rows();
    expect(stored).toHaveLength(8);
    expect(stored.map((r) => r.assetId)).not.toContain(decoyId);
    const ec2 = stored.filter((r) => r.assetType === "ec2");
    expect(ec2).toHaveLength(miniCorp.expected_discovery.ec2_running);
    for (const instance of miniCorp.instances) {
      const row = ec2.find((r) => r.assetId === instanceIds.get(instance.name));
      expect(row, instance.name).toBeDefined();
      expect({
        name: row!.tags.Name,
        priority: row!.priority,
        agentCompatible: row!.agentCompatible,
        platform: row!.assetData.platform,
        state: row!.assetData.state,
        privateIp: row!.assetData.privateIpAddress,
        region: row!.region,
        removedAt: row!.removedAt,
      }).toEqual({
        name: instance.name,
        priority: instance.expected.priority,
        agentCompatible: instance.expected.agent_compatible,
        platform: instance.platform,
        state: instance.state,
        privateIp: instance.private_ip,
        region: instance.region,
        removedAt: null,
      });
      expect(row!.tags).toEqual(instance.tags);
    }
    const windows = ec2
      .filter((r) => r.assetData.platform === "windows")
      .map((r) => r.tags.Name)
      .sort();
    expect(windows).toEqual([...miniCorp.expected_discovery.windows].sort());
    const targets = ec2
      .filter((r) => r.agentCompatible)
      .map((r) => r.tags.Name)
      .sort();
    expect(targets).toEqual([...miniCorp.expected_discovery.agent_targets].sort());

    const rds = stored.filter((r) => r.assetType === "rds");
    expect(rds).toHaveLength(miniCorp.expected_discovery.rds);
    const expectedDb = miniCorp.databases[0]!;
    expect(rds[0]).toMatchObject({
      priority: expectedDb.expected.priority,
      agentCompatible: expectedDb.expected.agent_compatible,
      agentStatus: "not_applicable",
      region: expectedDb.region,
      assetData: { identifier: expectedDb.identifier, engine: expectedDb.engine, instanceClass: expectedDb.instance_class },
    });
    expect(rds[0]!.assetId).toMatch(new RegExp(`^arn:aws:rds:${HOME}:${ACCOUNT}:db:${expectedDb.identifier}$`));
  });

  it("a second scan of the unchanged estate writes no rows", async () => {
    const before = await rows();
    const summary = await discover();
    expect(summary).toMatchObject({ assetsFound: 8, written: 0, inserted: 0, updated: 0, removed: 0 });
    const after = await rows();
    expect(after.map((r) => [r.id, r.lastSeenAt.toISOString()]).sort()).toEqual(before.map((r) => [r.id, r.lastSeenAt.toISOString()]).sort());
  });

  it("marks a terminated instance removed (not deleted), and only that one", async () => {
    const honeypot = instanceIds.get("HP-01")!;
    const ec2 = new EC2Client({ region: HOME, credentials: tenantCredentials() });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [honeypot] }));
    ec2.destroy();

    const summary = await discover();
    expect(summary).toMatchObject({ assetsFound: 7, removed: 1, inserted: 0 });
    const stored = await rows();
    expect(stored).toHaveLength(8);
    const removed = stored.filter((r) => r.removedAt !== null).map((r) => r.assetId);
    expect(removed).toEqual([honeypot]);

    // Still gone on the next scan: nothing more to write.
    expect(await discover()).toMatchObject({ written: 0, removed: 0 });
  });

  it("reports a region whose endpoint refuses connections as failed while the others complete", async () => {
    // Something in eu-west-1 is known from a good scan; then that region's endpoint goes dead.
    const credentials = tenantCredentials();
    const ec2 = new EC2Client({ region: "eu-west-1", credentials });
    const amis = await amiIds(ec2);
    const launched = await ec2.send(new RunInstancesCommand({ ImageId: amis.linux, MinCount: 1, MaxCount: 1 }));
    ec2.destroy();
    const euInstance = launched.Instances![0]!.InstanceId!;
    expect(await discover()).toMatchObject({ inserted: 1, removed: 0 });

    const closed = `http://127.0.0.1:${await freePort()}`;
    const summary = await discover({ endpointsByRegion: { "eu-west-1": closed }, maxAttempts: 2 });
    expect(summary.regions.map((r) => [r.region, r.status])).toEqual([
      [HOME, "succeeded"],
      ["us-west-2", "succeeded"],
      ["eu-west-1", "failed"],
    ]);
    const failed = summary.regions.find((r) => r.region === "eu-west-1")!;
    expect(failed.error).toMatch(/ECONNREFUSED|connect/i);
    expect(summary).toMatchObject({ assetsFound: 7, written: 0, removed: 0 });

    // A failed region is not an absence: its asset is not marked removed.
    const [eu] = await database.db
      .select()
      .from(cloudAssets)
      .where(and(eq(cloudAssets.organizationId, organizationId), eq(cloudAssets.assetId, euInstance)));
    expect(eu!.removedAt).toBeNull();
  });
});
