/**
 * The coverage matrix, account x region (pure): in each cell the agent's SSM pieces the account's applied stack put
 * there, the instances discovered, managed by SSM and with the agent installed, or why the cell is empty, named with
 * its fix. A customer reads from it where the agent is, and what to do where it is not.
 */
import type { DiscoveryRegionResult, OnboardingStatus } from "../../db/schema";
import { permissionFix, permissionReason } from "../core/permission-findings-fns";
import { ACCESS_DENIED_CAUSES, accessDeniedDetail, type AccessDeniedCause } from "../../lib/upstream-errors";

export const COVERAGE_CELL_STATUSES = [
  "covered",
  "installing",
  "install_failed",
  "not_managed",
  "region_not_covered",
  "connected_but_empty",
  "region_not_enabled",
  "access_denied",
  "excluded_by_organization",
  "unreachable",
  "bootstrap_role_missing",
  "not_onboarded_yet",
  "not_discovered_yet",
] as const;

export type CoverageCellStatus = (typeof COVERAGE_CELL_STATUSES)[number];

export interface CoverageAccountInput {
  accountId: string;
  name: string | null;
  source: "home" | "organization";
  status: OnboardingStatus;
  /** The bootstrap role never answered (no stack run yet, action_required). */
  roleMissing: boolean;
  /** The applied stack's per-region SSM pieces (outputs.regions); undefined before its first successful up. */
  appliedRegions?: Record<string, { documentName?: unknown; associationId?: unknown; parameterName?: unknown }>;
  /** The account's latest finished discovery, per region. */
  scanRegions?: DiscoveryRegionResult[];
}

export interface InstanceCounts {
  discovered: number;
  managed: number;
  installed: number;
  failed: number;
  /** Targeted but not SSM managed instances: the agent cannot reach them. */
  unmanaged: number;
}

export interface CoverageCell {
  region: string;
  status: CoverageCellStatus;
  ssm: { parameter: boolean; document: boolean; association: boolean };
  instances: InstanceCounts;
  /** Why the cell is not covered, and what to do; null when covered. */
  reason: string | null;
  fix: string | null;
  accessDenied?: { action: string | null; cause: AccessDeniedCause; awsSays: string };
}

export interface CoverageRow {
  accountId: string;
  name: string | null;
  source: "home" | "organization";
  status: OnboardingStatus;
  /** Its stack has been applied (a successful up). */
  applied: boolean;
  cells: CoverageCell[];
  totals: InstanceCounts;
}

export interface CoverageMatrix {
  regions: string[];
  accounts: CoverageRow[];
  totals: InstanceCounts & { accounts: number; coveredCells: number; cells: number };
}

export const NO_INSTANCES: InstanceCounts = { discovered: 0, managed: 0, installed: 0, failed: 0, unmanaged: 0 };

export const addCounts = (a: InstanceCounts, b: InstanceCounts): InstanceCounts => ({
  discovered: a.discovered + b.discovered,
  managed: a.managed + b.managed,
  installed: a.installed + b.installed,
  failed: a.failed + b.failed,
  unmanaged: a.unmanaged + b.unmanaged,
});

type Explained = Pick<CoverageCell, "status" | "reason" | "fix" | "accessDenied">;

function explain(account: CoverageAccountInput, region: string, counts: InstanceCounts, ssm: CoverageCell["ssm"]): Explained {
  const say = (status: CoverageCellStatus, reason: string, fix: string): Explained => ({ status, reason, fix });
  if (!account.appliedRegions) {
    return account.roleMissing
      ? say(
          "bootstrap_role_missing",
          "the bootstrap role does not answer in this account",
          "check the StackSet's stack instance for this account in the management account (CloudFormation > StackSets); the next listing looks again",
        )
      : say(
          "not_onboarded_yet",
          `the account's stack is not applied yet (${account.status})`,
          "nothing to do while it onboards; a failed account is retried from the accounts view",
        );
  }
  const scanned = account.scanRegions?.find((result) => result.region === region);
  if (scanned?.status === "not_enabled") {
    return say(
      "region_not_enabled",
      `${region} is an opt-in region this account has not enabled`,
      `enable ${region} in the account (Account > AWS Regions), or remove it from the tenant's regions`,
    );
  }
  if (scanned?.status === "failed" || scanned?.status === "excluded_by_organization") {
    const denied = accessDeniedDetail(scanned.error);
    if (denied) {
      const awsSays = ACCESS_DENIED_CAUSES[denied.cause];
      const what = denied.action ?? "a read the platform needs";
      return {
        status: scanned.status === "excluded_by_organization" ? "excluded_by_organization" : "access_denied",
        reason: permissionReason(what, region, denied.cause),
        fix:
          denied.cause === "service_control_policy" || denied.cause === "resource_control_policy"
            ? permissionFix(what, region, denied.cause)
            : `retry the account: its stack restores the XDR access role's permissions (${what})`,
        accessDenied: { action: denied.action, cause: denied.cause, awsSays },
      };
    }
    return say(
      "unreachable",
      `discovery could not read ${region} in this account`,
      "the next discovery tries again; retry the account if it persists",
    );
  }
  if (counts.discovered > 0 && !ssm.association) {
    return say(
      "region_not_covered",
      `${counts.discovered} instance${counts.discovered === 1 ? "" : "s"} run here, but the tenant's regions leave ${region} out`,
      `add ${region} to integration_settings.regions; each account's next up installs the agent there`,
    );
  }
  if (!scanned)
    return say(
      "not_discovered_yet",
      "this region has not been discovered in this account yet",
      "nothing to do: discovery follows the account's stack",
    );
  if (counts.discovered === 0) {
    return say(
      "connected_but_empty",
      "connected, and no instance runs here",
      "nothing to do: instances started here later get the agent by themselves",
    );
  }
  if (counts.failed > 0) {
    return say(
      "install_failed",
      `the agent install failed on ${counts.failed} instance${counts.failed === 1 ? "" : "s"}`,
      "read each instance's reason in the assets, fix it, then retry the account",
    );
  }
  if (counts.unmanaged > 0) {
    return say(
      "not_managed",
      `${counts.unmanaged} instance${counts.unmanaged === 1 ? "" : "s"} here SSM does not manage, so the agent cannot reach them`,
      "give them an instance profile with AmazonSSMManagedInstanceCore, or set integration_settings.enable_default_host_management",
    );
  }
  if (counts.installed < counts.discovered && counts.managed > counts.installed) {
    return say(
      "installing",
      `${counts.installed} of ${counts.managed} managed instances have the agent so far`,
      "nothing to do: the association goes on",
    );
  }
  return { status: "covered", reason: null, fix: null };
}

export function coverageMatrix(input: {
  configuredRegions: readonly string[];
  accounts: readonly CoverageAccountInput[];
  /** Instance counts per account and region. */
  counts: ReadonlyMap<string, ReadonlyMap<string, InstanceCounts>>;
}): CoverageMatrix {
  const regions = [...input.configuredRegions];
  const seen = new Set(regions);
  const extra = new Set<string>();
  for (const account of input.accounts) {
    for (const region of input.counts.get(account.accountId)?.keys() ?? []) if (!seen.has(region)) extra.add(region);
    for (const region of Object.keys(account.appliedRegions ?? {})) if (!seen.has(region)) extra.add(region);
  }
  regions.push(...[...extra].sort());

  let totals = { ...NO_INSTANCES, accounts: input.accounts.length, coveredCells: 0, cells: 0 };
  const rows = input.accounts.map((account): CoverageRow => {
    let accountTotals = NO_INSTANCES;
    const cells = regions.map((region): CoverageCell => {
      const counts = input.counts.get(account.accountId)?.get(region) ?? NO_INSTANCES;
      const pieces = account.appliedRegions?.[region];
      const ssm = {
        parameter: typeof pieces?.parameterName === "string",
        document: typeof pieces?.documentName === "string",
        association: typeof pieces?.associationId === "string",
      };
      accountTotals = addCounts(accountTotals, counts);
      return { region, ssm, instances: counts, ...explain(account, region, counts, ssm) };
    });
    const covered = cells.filter((cell) => cell.status === "covered" || cell.status === "connected_but_empty").length;
    totals = {
      ...addCounts(totals, accountTotals),
      accounts: totals.accounts,
      coveredCells: totals.coveredCells + covered,
      cells: totals.cells + cells.length,
    };
    return {
      accountId: account.accountId,
      name: account.name,
      source: account.source,
      status: account.status,
      applied: account.appliedRegions !== undefined,
      cells,
      totals: accountTotals,
    };
  });
  return { regions, accounts: rows, totals };
}
