/**
 * EKS clusters discovered (issue 21, part 1): per region, through the tenant's session, recorded as assets with their
 * Kubernetes version, endpoint access, authentication mode and node count, classified by the priority rules.
 *
 * Real parts: the platform in process, PostgreSQL, moto's EKS (clusters and node groups, created here as the customer
 * would), through the EKS stand-in (test/harness/eks-standin.ts) for what moto lacks: the authentication mode (moto
 * drops `accessConfig`), and AccessDenied in one region for a role from before cluster discovery (moto evaluates no
 * policy). The estate: three regions; a public cluster, a private-only one with unicode tags, one left on CONFIG_MAP
 * authentication with no node group.
 */
import { CreateClusterCommand, CreateNodegroupCommand, DeleteClusterCommand, EKSClient } from "@aws-sdk/client-eks";
import { and, eq, isNull } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cloudAssets, discoveryScans, organizations } from "../../db/schema";
import { executeScan } from "../../services/discovery/scan-runner";
import { startEksStandIn, type EksStandIn } from "../harness/eks-standin";
import { startTestPlatform, type TestPlatform } from "../harness/platform";
import { seedTenant, type SeededTenant } from "../harness/seeded-tenant";

const ACCOUNT = "123456789012";
const REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"];
const eksReadsDenied: Record<string, string[]> = { [ACCOUNT]: [] };
const saved = process.env.AWS_ENDPOINT_URL_EKS;
const suffix = Date.now().toString(36);
let eks: EksStandIn;
let service: TestPlatform;
let tenant: SeededTenant;

async function createCluster(
  region: string,
  name: string,
  options: { mode?: "API" | "API_AND_CONFIG_MAP"; publicEndpoint: boolean; tags?: Record<string, string>; nodeGroups?: number[] },
) {
  const client = new EKSClient({ region });
  try {
    await client.send(
      new CreateClusterCommand({
        name,
        version: "1.33",
        roleArn: `arn:aws:iam::${ACCOUNT}:role/eks-cluster`,
        resourcesVpcConfig: { subnetIds: ["subnet-1", "subnet-2"], endpointPublicAccess: options.publicEndpoint, endpointPrivateAccess: true },
        ...(options.mode ? { accessConfig: { authenticationMode: options.mode } } : {}),
        tags: options.tags,
      }),
    );
    for (const [index, desiredSize] of (options.nodeGroups ?? []).entries()) {
      await client.send(
        new CreateNodegroupCommand({
          clusterName: name,
          nodegroupName: `${name}-ng-${index}`,
          nodeRole: `arn:aws:iam::${ACCOUNT}:role/eks-node`,
          subnets: ["subnet-1"],
          scalingConfig: { minSize: 1, maxSize: 10, desiredSize },
        }),
      );
    }
  } finally {
    client.destroy();
  }
}

const scanNow = async () => {
  const db = service.platform.database.db;
  const [scan] = await db.insert(discoveryScans).values({ organizationId: tenant.organizationId, trigger: "manual", actor: "test" }).returning();
  await executeScan({ db, keyring: service.platform.keyring, log: (message) => expect.fail(message) }, scan!.id);
  return (await db.select().from(discoveryScans).where(eq(discoveryScans.id, scan!.id)))[0]!;
};

const clusters = async () =>
  service.platform.database.db
    .select()
    .from(cloudAssets)
    .where(and(eq(cloudAssets.organizationId, tenant.organizationId), eq(cloudAssets.assetType, "eks"), isNull(cloudAssets.removedAt)));

beforeAll(async () => {
  eks = await startEksStandIn({ motoUrl: process.env.AWS_ENDPOINT_URL!, accountOf: () => ACCOUNT, eksReadsDenied });
  process.env.AWS_ENDPOINT_URL_EKS = eks.url;
  service = await startTestPlatform();
  tenant = await seedTenant(service, { appliedUp: true });
  const db = service.platform.database.db;
  const [org] = await db.select().from(organizations).where(eq(organizations.id, tenant.organizationId));
  await db
    .update(organizations)
    .set({ integrationSettings: { ...org!.integrationSettings, regions: REGIONS } })
    .where(eq(organizations.id, tenant.organizationId));
  await createCluster("us-east-1", `shop-${suffix}`, { mode: "API_AND_CONFIG_MAP", publicEndpoint: true, nodeGroups: [3] });
  await createCluster("eu-west-1", `payments-${suffix}`, {
    mode: "API",
    publicEndpoint: false,
    tags: { environment: "prod", 名前: "決済クラスター", Role: "database" },
    nodeGroups: [2, 1],
  });
  await createCluster("eu-west-1", `legacy-${suffix}`, { publicEndpoint: true });
  await createCluster("ap-south-1", `batch-${suffix}`, { mode: "API", publicEndpoint: true, nodeGroups: [5] });
});

afterAll(async () => {
  if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_EKS;
  else process.env.AWS_ENDPOINT_URL_EKS = saved;
  await service?.stop();
  await eks?.stop();
});

describe("EKS cluster discovery", () => {
  it("records each region's clusters with version, endpoint access, authentication mode and node count", async () => {
    const scan = await scanNow();
    expect(scan.status).toBe("succeeded");
    const byName = Object.fromEntries((await clusters()).map((asset) => [asset.assetData.name as string, asset]));
    expect(Object.keys(byName).sort()).toEqual([`batch-${suffix}`, `legacy-${suffix}`, `payments-${suffix}`, `shop-${suffix}`]);
    expect(byName[`shop-${suffix}`]).toMatchObject({
      region: "us-east-1",
      assetId: `arn:aws:eks:us-east-1:${ACCOUNT}:cluster/shop-${suffix}`,
      priority: "high",
      agentCompatible: false,
      assetData: { version: "1.33", endpointAccess: "public_and_private", authenticationMode: "API_AND_CONFIG_MAP", nodeGroups: 1, nodes: 3 },
    });
    expect(byName[`payments-${suffix}`]).toMatchObject({
      region: "eu-west-1",
      // Its Role tag wins over the role its type implies.
      priority: "critical",
      tags: { environment: "prod", 名前: "決済クラスター", Role: "database" },
      assetData: { endpointAccess: "private", authenticationMode: "API", nodeGroups: 2, nodes: 3 },
    });
    expect(byName[`legacy-${suffix}`]).toMatchObject({ assetData: { authenticationMode: "CONFIG_MAP", nodeGroups: 0, nodes: 0 } });
    // DescribeCluster was answered in each region with the caller's own account.
    expect(new Set(eks.answered.filter((call) => call.action === "DescribeCluster").map((call) => call.region))).toEqual(new Set(REGIONS));
  });

  it("keeps a region's instances and its known clusters when only the EKS reads are denied there, and says what is missing", async () => {
    eksReadsDenied[ACCOUNT]!.push("ap-south-1");
    const scan = await scanNow();
    expect(scan.status).toBe("succeeded");
    const southAsia = scan.regions!.find((region) => region.region === "ap-south-1")!;
    expect(southAsia.status).toBe("succeeded");
    expect(southAsia.clustersError).toMatch(/AccessDenied/);
    // Not listed is not gone: the cluster found before stays.
    expect((await clusters()).map((asset) => asset.assetData.name)).toContain(`batch-${suffix}`);
    const { body: scans } = await tenant.call("GET", `/v1/tenants/${tenant.slug}/discovery/scans`);
    const shown = scans.scans
      .find((row: { id: string }) => row.id === scan.id)
      .regions.find((region: { region: string }) => region.region === "ap-south-1");
    expect(shown.clusters_error).toBe("the cloud account refused the request (access denied) (upstream_access_denied)");
    const { body: progress } = await tenant.call("GET", `/v1/tenants/${tenant.slug}/progress`);
    expect(progress.missing_permissions).toContainEqual(
      expect.objectContaining({
        region: "ap-south-1",
        action: "eks:ListClusters",
        cause: "no_allow",
        source: "discovery",
        fix: expect.stringMatching(/^the Mini-XDR roles lack eks:ListClusters: run an up/),
      }),
    );

    // The next up gave the role its reads: listed again, the finding is resolved, and a deleted cluster is gone.
    eksReadsDenied[ACCOUNT]!.length = 0;
    const client = new EKSClient({ region: "eu-west-1" });
    await client.send(new DeleteClusterCommand({ name: `legacy-${suffix}` }));
    client.destroy();
    expect((await scanNow()).regions!.every((region) => region.clustersError === undefined)).toBe(true);
    expect((await clusters()).map((asset) => asset.assetData.name).sort()).toEqual([`batch-${suffix}`, `payments-${suffix}`, `shop-${suffix}`]);
    const { body: after } = await tenant.call("GET", `/v1/tenants/${tenant.slug}/progress`);
    expect(after.missing_permissions.filter((entry: { action: string }) => entry.action.startsWith("eks:"))).toEqual([]);
  });
});
