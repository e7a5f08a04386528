/** Reads a tenant's coverage matrix: its accounts, their applied stacks, their latest scans and their assets' counts. */
import { and, eq, isNull, sql } from "drizzle-orm";
import { stackNameFor } from "../../automation/stack-name";
import type { DrizzleDatabase } from "../../db/client";
import {
  cloudAssets,
  tenantAwsAccounts,
  type DiscoveryRegionResult,
  type OnboardingStatus,
  type Organization,
  type StatusReason,
  type TenantAwsAccount,
} from "../../db/schema";
import { accountProgress, summarizeAccounts, type AccountsSummary } from "./account-status-fns";
import { homeRegionOf } from "../core/rollout-spec-fns";
import { addCounts, coverageMatrix, NO_INSTANCES, type CoverageAccountInput, type CoverageMatrix, type InstanceCounts } from "./coverage-fns";

/** The most accounts one matrix answers with (MAX_ACCOUNTS_PER_TENANT bounds them anyway). */
const MAX_ROWS = 1000;

const liveAccountRows = (db: DrizzleDatabase, organizationId: number) =>
  db
    .select()
    .from(tenantAwsAccounts)
    .where(and(eq(tenantAwsAccounts.organizationId, organizationId), isNull(tenantAwsAccounts.offboardedAt)))
    .orderBy(tenantAwsAccounts.source, tenantAwsAccounts.accountId)
    .limit(MAX_ROWS);

/** `liveRows`: the tenant's live account rows, when the caller read them already. */
export async function readCoverage(db: DrizzleDatabase, org: Organization, liveRows?: TenantAwsAccount[]): Promise<CoverageMatrix> {
  const rows = liveRows ?? (await liveAccountRows(db, org.id));
  const home = rows.find((row) => row.source === "home");

  // The latest successful up of each stack, and the latest finished scan of each account (null: the home stack's).
  const applied = await db.execute<{ stack_name: string; outputs: Record<string, unknown> | null }>(sql`
    select distinct on (stack_name) stack_name, outputs from runs
    where organization_id = ${org.id} and kind = 'up' and status = 'succeeded'
    order by stack_name, finished_at desc`);
  const scans = await db.execute<{ aws_account_id: string | null; regions: DiscoveryRegionResult[] | null }>(sql`
    select distinct on (aws_account_id) aws_account_id, regions from discovery_scans
    where organization_id = ${org.id} and status in ('succeeded', 'partial', 'failed')
    order by aws_account_id, requested_at desc`);
  const counted = await db
    .select({
      accountId: cloudAssets.awsAccountId,
      region: cloudAssets.region,
      discovered: sql<number>`count(*)::int`,
      managed: sql<number>`(count(*) filter (where ${cloudAssets.agentStatus} in ('installing', 'installed', 'failed', 'checked_in')
        or ${cloudAssets.agentStatusDetail} ? 'pingStatus'))::int`,
      installed: sql<number>`(count(*) filter (where ${cloudAssets.agentStatus} in ('installed', 'checked_in')))::int`,
      failed: sql<number>`(count(*) filter (where ${cloudAssets.agentStatus} = 'failed'))::int`,
      unmanaged: sql<number>`(count(*) filter (where ${cloudAssets.agentStatusDetail}->>'notTargeted' = 'not_managed'))::int`,
    })
    .from(cloudAssets)
    .where(and(eq(cloudAssets.organizationId, org.id), eq(cloudAssets.assetType, "ec2"), isNull(cloudAssets.removedAt)))
    .groupBy(cloudAssets.awsAccountId, cloudAssets.region);

  const outputsByStack = new Map(applied.map((row) => [row.stack_name, row.outputs ?? {}]));
  const members = new Set(rows.filter((row) => row.source === "organization").map((row) => row.accountId));
  // Assets of no member account are the home stack's (account-assets.ts).
  const ownerOf = (accountId: string | null) => (accountId && members.has(accountId) ? accountId : (home?.accountId ?? ""));
  const counts = new Map<string, Map<string, InstanceCounts>>();
  for (const row of counted) {
    const owner = ownerOf(row.accountId);
    const byRegion = counts.get(owner) ?? new Map<string, InstanceCounts>();
    const { accountId: _accountId, region, ...found } = row;
    byRegion.set(region, addCounts(byRegion.get(region) ?? NO_INSTANCES, found));
    counts.set(owner, byRegion);
  }
  const scanByAccount = new Map(scans.map((row) => [row.aws_account_id ?? home?.accountId ?? "", row.regions ?? []]));

  const accounts: CoverageAccountInput[] = rows.map((row) => {
    const stack = row.source === "home" ? stackNameFor(org.slug) : row.stackName;
    const outputs = outputsByStack.get(stack);
    const regional = outputs?.regions;
    return {
      accountId: row.accountId,
      name: row.name,
      source: row.source,
      // The home account's status is the tenant's (its onboarding writes it).
      status: row.source === "home" ? org.onboardingStatus : row.status,
      roleMissing: row.source === "organization" && row.status === "action_required" && row.lastRunId === null,
      appliedRegions: outputs
        ? typeof regional === "object" && regional !== null
          ? (regional as CoverageAccountInput["appliedRegions"])
          : {}
        : undefined,
      scanRegions: scanByAccount.get(row.accountId),
    };
  });
  const settings = org.integrationSettings;
  return coverageMatrix({ configuredRegions: settings.regions ?? [homeRegionOf(settings)], accounts, counts });
}

export interface AccountBreakdown {
  summary: AccountsSummary;
  accounts: {
    accountId: string;
    name: string | null;
    source: "home" | "organization";
    status: OnboardingStatus;
    progress: number;
    instances: InstanceCounts;
    reasons: StatusReason[];
  }[];
}

/**
 * The tenant's onboarding per account, for its progress: undefined for a tenant of one account (its progress is its
 * home stack's). `home`: the home stack's own status, reasons and overall progress, as read now.
 */
export async function accountBreakdown(
  db: DrizzleDatabase,
  org: Organization,
  home: { status: OnboardingStatus; reasons: StatusReason[]; progress: number },
): Promise<AccountBreakdown | undefined> {
  const [member] = await db
    .select({ id: tenantAwsAccounts.id })
    .from(tenantAwsAccounts)
    .where(and(eq(tenantAwsAccounts.organizationId, org.id), eq(tenantAwsAccounts.source, "organization")))
    .limit(1);
  if (!member) return undefined;
  const rows = await liveAccountRows(db, org.id);
  const matrix = await readCoverage(db, { ...org, onboardingStatus: home.status }, rows);
  const byAccount = new Map(matrix.accounts.map((row) => [row.accountId, row]));
  const accounts = rows.map((row) => {
    const isHome = row.source === "home";
    const status = isHome ? home.status : row.status;
    const instances = byAccount.get(row.accountId)?.totals ?? NO_INSTANCES;
    return {
      accountId: row.accountId,
      name: row.name,
      source: row.source,
      status,
      progress: isHome ? home.progress : accountProgress(status, instances, byAccount.get(row.accountId)?.applied ?? false),
      instances,
      reasons: (isHome ? home.reasons : row.statusReasons) ?? [],
    };
  });
  return { summary: summarizeAccounts(accounts.map((account) => ({ ...account, statusReasons: account.reasons }))), accounts };
}
