/**
 * One discovery of a tenant: assume its XDR role, scan its regions, classify, store.
 */
import { eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { organizations, type PriorityRuleOverride } from "../../db/schema";
import type { StackOfSession } from "../core/account-assets";
import { assumeRoleCredentials, sessionNameFor, type CredentialsProvider } from "../core/assume-role";
import { classifyPriority, isAgentCompatible } from "./priority-fns";
import { scanAccount, type RegionStatus } from "./scanner";
import { storeScan, type AssetRecord } from "./asset-store";

export interface DiscoverTenantOptions {
  db: DrizzleDatabase;
  organizationId: number;
  /** The tenant's session (services/core/tenant-aws-session.ts); without it the role is assumed here. */
  credentials?: CredentialsProvider;
  /** The stack the scan is for (its account's assets); none: the tenant's assets, whichever account. */
  stack?: StackOfSession;
  roleArn?: string;
  externalId?: string;
  /** Regions to scan; default the organization's integration_settings.regions, else all enabled. */
  regions?: readonly string[];
  homeRegion?: string;
  concurrency?: number;
  endpointsByRegion?: Readonly<Record<string, string>>;
  /** STS endpoint override for AssumeRole; default from the environment (AWS_ENDPOINT_URL or AWS). */
  stsEndpoint?: string;
  /** Priority overrides; default the organization's integration_settings.priorityRules. */
  priorityRules?: readonly PriorityRuleOverride[];
  maxAttempts?: number;
  seenAt?: Date;
  lastSeenResolutionMs?: number;
}

export interface DiscoverySummary {
  assetsFound: number;
  written: number;
  inserted: number;
  updated: number;
  removed: number;
  regions: { region: string; status: RegionStatus; error?: string; clustersError?: string; assets: number; durationMs: number }[];
  /** Wall time: scanning (credentials + all regions), storing, and both. */
  scanMs: number;
  storeMs: number;
  durationMs: number;
}

export class OrganizationNotFoundError extends Error {
  override readonly name = "OrganizationNotFoundError";
}

export async function discoverTenant(options: DiscoverTenantOptions): Promise<DiscoverySummary> {
  const started = performance.now();
  const [org] = await options.db
    .select({ slug: organizations.slug, settings: organizations.integrationSettings })
    .from(organizations)
    .where(eq(organizations.id, options.organizationId));
  if (!org) throw new OrganizationNotFoundError(`organization ${options.organizationId} not found`);

  const regions = options.regions ?? org.settings.regions;
  const homeRegion = options.homeRegion ?? org.settings.homeRegion ?? regions?.[0];
  const rules = options.priorityRules ?? org.settings.priorityRules ?? [];
  if (!options.credentials && (!options.roleArn || !options.externalId)) {
    throw new TypeError("discoverTenant needs credentials, or a role ARN and an external ID");
  }
  const credentials =
    options.credentials ??
    assumeRoleCredentials({
      roleArn: options.roleArn!,
      externalId: options.externalId!,
      sessionName: sessionNameFor(org.slug),
      region: homeRegion,
      stsEndpoint: options.stsEndpoint,
    });

  const scanStarted = performance.now();
  const scan = await scanAccount({
    credentials,
    regions,
    homeRegion,
    concurrency: options.concurrency,
    endpointsByRegion: options.endpointsByRegion,
    maxAttempts: options.maxAttempts,
  });

  const scanMs = performance.now() - scanStarted;
  const storeStarted = performance.now();
  const records: AssetRecord[] = scan.assets.map((asset) => ({
    assetType: asset.assetType,
    assetId: asset.assetId,
    region: asset.region,
    tags: asset.tags,
    assetData: asset.assetData,
    priority: classifyPriority(asset, rules),
    agentCompatible: isAgentCompatible(asset),
  }));
  const stored = await storeScan(options.db, {
    organizationId: options.organizationId,
    stack: options.stack,
    assets: records,
    scannedRegions: scan.regions.filter((r) => r.status === "succeeded").map((r) => r.region),
    unlistedTypes: new Map(scan.regions.filter((r) => r.clustersError).map((r) => [r.region, ["eks"]])),
    seenAt: options.seenAt,
    lastSeenResolutionMs: options.lastSeenResolutionMs,
  });

  const storeMs = performance.now() - storeStarted;
  return {
    assetsFound: records.length,
    ...stored,
    regions: scan.regions.map(({ region, status, error, clustersError, assets, durationMs }) => ({
      region,
      status,
      assets,
      durationMs,
      ...(error ? { error } : {}),
      ...(clustersError ? { clustersError } : {}),
    })),
    scanMs,
    storeMs,
    durationMs: performance.now() - started,
  };
}
