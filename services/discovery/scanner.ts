/**
 * Scanning one AWS account: its enabled regions (EC2 DescribeRegions, narrowed to the tenant's
 * configured regions), then every region in parallel under a bound, each listing EC2 instances
 * (paginated; every state but terminated), RDS DB instances and EKS clusters. Clients use the SDK's adaptive
 * retry mode (client-side rate limiting on throttling). A region that fails is recorded with its
 * error; the other regions complete. No database here: assets come back as plain records.
 */
import type { Instance } from "@aws-sdk/client-ec2";
import type { DBInstance } from "@aws-sdk/client-rds";
import type { Cluster, EKSClient, Nodegroup } from "@aws-sdk/client-eks";
import type { CredentialsProvider } from "../core/assume-role";
import { mapBounded } from "../../lib/concurrency";

export const DEFAULT_REGION_CONCURRENCY = 8;
export const DEFAULT_MAX_ATTEMPTS = 3;
/** Instance states we list: all but terminated (a terminated instance is gone). */
export const LISTED_INSTANCE_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"];

export interface DiscoveredAsset {
  provider: "aws";
  assetType: "ec2" | "rds" | "eks";
  /** Instance id for EC2; DB instance ARN for RDS, cluster ARN for EKS (names are only unique per region). */
  assetId: string;
  region: string;
  tags: Record<string, string>;
  assetData: Record<string, unknown>;
  /** EC2 instance state / RDS status. */
  state?: string;
}

/** not_enabled: an opt-in region the account has not enabled; AWS answers no call there, so it is not scanned. */
export type RegionStatus = "succeeded" | "failed" | "not_enabled";

export interface RegionScanResult {
  region: string;
  status: RegionStatus;
  error?: string;
  /**
   * EKS could not be listed there (a role from before cluster discovery lacks eks:ListClusters until its next up):
   * the region's instances and databases are still scanned.
   */
  clustersError?: string;
  assets: number;
  durationMs: number;
}

export interface ScanResult {
  assets: DiscoveredAsset[];
  regions: RegionScanResult[];
}

export interface ScanOptions {
  credentials: CredentialsProvider;
  /** The tenant's configured regions; when given, only enabled regions among them are scanned. */
  regions?: readonly string[];
  /** Where DescribeRegions is called. Default: the first configured region, else us-east-1. */
  homeRegion?: string;
  /** Regions scanned at once. Default 8. */
  concurrency?: number;
  /** Per-region endpoint overrides (all services of that region); others come from the environment. */
  endpointsByRegion?: Readonly<Record<string, string>>;
  maxAttempts?: number;
  /** Per-request socket timeout, ms. Default 30 s. */
  requestTimeoutMs?: number;
}

function clientConfig(region: string, options: ScanOptions) {
  const endpoint = options.endpointsByRegion?.[region];
  return {
    region,
    credentials: options.credentials,
    retryMode: "adaptive" as const,
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    requestHandler: { requestTimeout: options.requestTimeoutMs ?? 30_000, connectionTimeout: 10_000 },
    ...(endpoint ? { endpoint } : {}),
  };
}

function tagMap(tags: readonly { Key?: string; Value?: string }[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const tag of tags ?? []) if (tag.Key !== undefined) out[tag.Key] = tag.Value ?? "";
  return out;
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const named = error.name && error.name !== "Error" ? `${error.name}: ` : "";
    const code = (error as { code?: string }).code;
    return `${named}${error.message || code || "unknown error"}`;
  }
  return String(error);
}

export interface AccountRegions {
  /** Enabled regions, narrowed to the configured ones when given (in their order). */
  enabled: string[];
  /** Configured regions the account has not opted in to. */
  notEnabled: string[];
}

/** The account's regions as EC2 DescribeRegions (AllRegions) reports them: enabled, and opt-in regions not enabled. */
export async function listAccountRegions(options: ScanOptions): Promise<AccountRegions> {
  const home = options.homeRegion ?? options.regions?.[0] ?? "us-east-1";
  // The EC2 client alone is about 100 MiB of code: loaded with the first scan, not at start-up.
  const { DescribeRegionsCommand, EC2Client } = await import("@aws-sdk/client-ec2");
  const ec2 = new EC2Client(clientConfig(home, options));
  try {
    const response = await ec2.send(new DescribeRegionsCommand({ AllRegions: true }));
    const named = (response.Regions ?? []).filter((r): r is typeof r & { RegionName: string } => Boolean(r.RegionName));
    const enabled = named.filter((r) => r.OptInStatus !== "not-opted-in").map((r) => r.RegionName);
    const notEnabled = named.filter((r) => r.OptInStatus === "not-opted-in").map((r) => r.RegionName);
    // Without configured regions the tenant asked for none in particular: the opt-in regions it left off are not news.
    if (!options.regions?.length) return { enabled: enabled.sort(), notEnabled: [] };
    const [enabledSet, notEnabledSet] = [new Set(enabled), new Set(notEnabled)];
    return {
      enabled: options.regions.filter((region) => enabledSet.has(region)),
      notEnabled: options.regions.filter((region) => notEnabledSet.has(region)),
    };
  } finally {
    ec2.destroy();
  }
}

export function ec2Asset(instance: Instance, region: string): DiscoveredAsset {
  const state = instance.State?.Name;
  const platform = instance.Platform?.toLowerCase() === "windows" ? "windows" : "linux";
  return {
    provider: "aws",
    assetType: "ec2",
    assetId: instance.InstanceId!,
    region,
    tags: tagMap(instance.Tags),
    state,
    assetData: {
      instanceType: instance.InstanceType ?? null,
      state: state ?? null,
      platform,
      imageId: instance.ImageId ?? null,
      privateIpAddress: instance.PrivateIpAddress ?? null,
      vpcId: instance.VpcId ?? null,
      subnetId: instance.SubnetId ?? null,
      availabilityZone: instance.Placement?.AvailabilityZone ?? null,
      launchTime: instance.LaunchTime?.toISOString() ?? null,
      // Whether the instance serves its tags in instance metadata: the install document's exclusion check reads them there.
      metadataTags: instance.MetadataOptions?.InstanceMetadataTags === "enabled",
    },
  };
}

export function rdsAsset(db: DBInstance, region: string): DiscoveredAsset {
  const identifier = db.DBInstanceIdentifier!;
  return {
    provider: "aws",
    assetType: "rds",
    assetId: db.DBInstanceArn ?? `rds:${region}:${identifier}`,
    region,
    tags: tagMap(db.TagList),
    state: db.DBInstanceStatus,
    assetData: {
      identifier,
      engine: db.Engine ?? null,
      engineVersion: db.EngineVersion ?? null,
      instanceClass: db.DBInstanceClass ?? null,
      status: db.DBInstanceStatus ?? null,
      endpoint: db.Endpoint?.Address ?? null,
      port: db.Endpoint?.Port ?? null,
      multiAz: db.MultiAZ ?? null,
    },
  };
}

/** How the cluster's API server is reached, as EKS's endpoint settings say. */
function endpointAccess(cluster: Cluster): "public" | "private" | "public_and_private" | "unknown" {
  const config = cluster.resourcesVpcConfig;
  if (!config) return "unknown";
  const publicAccess = config.endpointPublicAccess ?? true;
  const privateAccess = config.endpointPrivateAccess ?? false;
  return publicAccess && privateAccess ? "public_and_private" : publicAccess ? "public" : privateAccess ? "private" : "unknown";
}

export function eksAsset(cluster: Cluster, nodegroups: readonly Nodegroup[], region: string): DiscoveredAsset {
  const nodes = nodegroups.reduce((sum, group) => sum + (group.scalingConfig?.desiredSize ?? 0), 0);
  return {
    provider: "aws",
    assetType: "eks",
    assetId: cluster.arn ?? `eks:${region}:${cluster.name}`,
    region,
    tags: { ...(cluster.tags ?? {}) },
    state: cluster.status,
    assetData: {
      name: cluster.name ?? null,
      version: cluster.version ?? null,
      status: cluster.status ?? null,
      endpointAccess: endpointAccess(cluster),
      // API, API_AND_CONFIG_MAP or CONFIG_MAP: access entries (how the platform is granted access) need API in it.
      authenticationMode: cluster.accessConfig?.authenticationMode ?? null,
      // Where the platform reaches the API server, and the CA that signs its certificate (public, as AWS answers it).
      endpoint: cluster.endpoint ?? null,
      certificateAuthority: cluster.certificateAuthority?.data ?? null,
      nodeGroups: nodegroups.length,
      nodes,
      platformVersion: cluster.platformVersion ?? null,
    },
  };
}

/** The region's EKS clusters, each described with its node groups (their desired sizes are the node count). */
async function listClusters(eks: EKSClient): Promise<DiscoveredAsset[]> {
  const { DescribeClusterCommand, DescribeNodegroupCommand, paginateListClusters, paginateListNodegroups } = await import("@aws-sdk/client-eks");
  const names: string[] = [];
  for await (const page of paginateListClusters({ client: eks, pageSize: 100 }, {})) names.push(...(page.clusters ?? []));
  const region = await eks.config.region();
  return mapBounded(names, 4, async (name) => {
    const { cluster } = await eks.send(new DescribeClusterCommand({ name }));
    const groupNames: string[] = [];
    for await (const page of paginateListNodegroups({ client: eks, pageSize: 100 }, { clusterName: name }))
      groupNames.push(...(page.nodegroups ?? []));
    const groups = await mapBounded(
      groupNames,
      4,
      async (nodegroupName) => (await eks.send(new DescribeNodegroupCommand({ clusterName: name, nodegroupName }))).nodegroup,
    );
    return eksAsset(
      cluster ?? { name },
      groups.filter((group): group is Nodegroup => group !== undefined),
      region,
    );
  });
}

/**
 * One region: EC2 instances and RDS DB instances, paginated (throws on the first failure), and EKS clusters (whose
 * failure is the region's `clustersError`, not the region's).
 */
export async function scanRegion(region: string, options: ScanOptions): Promise<{ assets: DiscoveredAsset[]; clustersError?: string }> {
  const config = clientConfig(region, options);
  const [{ EC2Client, paginateDescribeInstances }, { RDSClient, paginateDescribeDBInstances }, { EKSClient }] = await Promise.all([
    import("@aws-sdk/client-ec2"),
    import("@aws-sdk/client-rds"),
    import("@aws-sdk/client-eks"),
  ]);
  const ec2 = new EC2Client(config);
  const rds = new RDSClient(config);
  const eks = new EKSClient(config);
  try {
    const listEc2 = async () => {
      const out: DiscoveredAsset[] = [];
      const pages = paginateDescribeInstances(
        { client: ec2, pageSize: 1000 },
        { Filters: [{ Name: "instance-state-name", Values: LISTED_INSTANCE_STATES }] },
      );
      for await (const page of pages) {
        for (const reservation of page.Reservations ?? []) {
          for (const instance of reservation.Instances ?? []) {
            if (instance.InstanceId && instance.State?.Name !== "terminated") out.push(ec2Asset(instance, region));
          }
        }
      }
      return out;
    };
    const listRds = async () => {
      const out: DiscoveredAsset[] = [];
      for await (const page of paginateDescribeDBInstances({ client: rds, pageSize: 100 }, {})) {
        for (const db of page.DBInstances ?? []) if (db.DBInstanceIdentifier) out.push(rdsAsset(db, region));
      }
      return out;
    };
    const clusters = listClusters(eks).then(
      (found) => ({ found, error: undefined }),
      (error: unknown) => ({ found: [] as DiscoveredAsset[], error: errorMessage(error) }),
    );
    const [instances, databases, eksClusters] = await Promise.all([listEc2(), listRds(), clusters]);
    return { assets: [...instances, ...databases, ...eksClusters.found], ...(eksClusters.error ? { clustersError: eksClusters.error } : {}) };
  } finally {
    ec2.destroy();
    rds.destroy();
    eks.destroy();
  }
}

/** Enabled regions, then each region under the concurrency bound; a failed region does not stop the others. */
export async function scanAccount(options: ScanOptions): Promise<ScanResult> {
  const { enabled: regions, notEnabled } = await listAccountRegions(options);
  const perRegion = await mapBounded(regions, options.concurrency ?? DEFAULT_REGION_CONCURRENCY, async (region) => {
    const started = performance.now();
    try {
      const { assets, clustersError } = await scanRegion(region, options);
      return {
        assets,
        result: {
          region,
          status: "succeeded" as const,
          assets: assets.length,
          durationMs: performance.now() - started,
          ...(clustersError ? { clustersError } : {}),
        },
      };
    } catch (error) {
      return {
        assets: [] as DiscoveredAsset[],
        result: { region, status: "failed" as const, error: errorMessage(error), assets: 0, durationMs: performance.now() - started },
      };
    }
  });
  return {
    assets: perRegion.flatMap((r) => r.assets),
    regions: [
      ...perRegion.map((r) => r.result),
      ...notEnabled.map((region) => ({ region, status: "not_enabled" as const, assets: 0, durationMs: 0 })),
    ],
  };
}
