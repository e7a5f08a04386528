/**
 * An organization member account's onboarding after its stack is applied: the account's own discovery (its XDR role,
 * its regions), then its rollout read from SSM in that account, which move the account (not the tenant) to deploying,
 * completed, or action_required with the reasons. Followed again on every organization pass until it is completed, so
 * a replica that died between two steps leaves nothing stuck.
 */
import { and, desc, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { discoveryScans, organizations, tenantAwsAccounts, type DiscoveryScan, type OnboardingStatus, type Run } from "../../db/schema";
import { neutralUpstreamText } from "../../lib/upstream-errors";
import { systemPrincipal } from "../core/principal";
import { approvalRequired } from "../core/run-requests";
import { TenantAwsAccessError, TenantNotProvisionedError } from "../core/tenant-aws-session";
import type { ScanQueue } from "../discovery/scan-queue";
import { accountStatusAfterRollout } from "../organization/account-status-fns";
import type { OrganizationService } from "../organization/organization-service";
import { refreshMemberAccountRollout } from "../rollout/rollout-refresh";
import type { RunService } from "../run/run-service";
import { CLUSTER_DISCOVERED, clustersAwaitingUp } from "./cluster-coverage";

export interface AccountOnboardingDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  scans: Pick<ScanQueue, "request">;
  runs: Pick<RunService, "requestForAccount">;
  organizations: Pick<OrganizationService, "afterAccountRun" | "accountsFollowingRollout" | "settleAccountRollout" | "recordCompletionWhenAllDone">;
  log?(message: string): void;
}

const ACTOR = "system:organization";
/** An account still in its rollout is discovered again this long after its last scan (instances come and go). */
const RESCAN_AFTER_MS = 15 * 60_000;

export function accountOnboarding(deps: AccountOnboardingDeps) {
  const { db } = deps;

  const discover = (organizationId: number, awsAccountId: string) =>
    deps.scans.request({ organizationId, awsAccountId, trigger: "after_up", actor: ACTOR });

  /** Accounts whose stack is applied and not on its way out: a cluster a scan finds there gets its up. */
  const COVERED_ACCOUNT_STATUSES: ReadonlySet<OnboardingStatus> = new Set(["discovering", "deploying", "completed", "action_required"]);

  /** A scan of a member account found EKS clusters its stack does not cover yet: an up of its stack covers them. */
  async function coverNewClusters(organizationId: number, awsAccountId: string): Promise<void> {
    const [[org], [account]] = await Promise.all([
      db.select().from(organizations).where(eq(organizations.id, organizationId)),
      db
        .select({ accountId: tenantAwsAccounts.accountId, stackName: tenantAwsAccounts.stackName, status: tenantAwsAccounts.status })
        .from(tenantAwsAccounts)
        .where(and(eq(tenantAwsAccounts.organizationId, organizationId), eq(tenantAwsAccounts.accountId, awsAccountId))),
    ]);
    if (!org || !account?.stackName || !COVERED_ACCOUNT_STATUSES.has(account.status)) return;
    const waiting = await clustersAwaitingUp(db, org, { accountId: awsAccountId, stackName: account.stackName });
    if (waiting.length === 0) return;
    const kind = approvalRequired(org) ? "preview" : "up";
    const run = await deps.runs.requestForAccount(
      systemPrincipal(CLUSTER_DISCOVERED, org.id),
      org,
      { accountId: awsAccountId, stackName: account.stackName },
      kind,
      {
        queue: true,
      },
    );
    deps.log?.(`organization account ${awsAccountId} of ${org.slug}: ${waiting.join(", ")} found, ${kind} run ${run.runId} requested`);
  }

  /** The account's rollout, read after a finished scan of it, settles its status. */
  async function follow(scan: Pick<DiscoveryScan, "organizationId" | "awsAccountId" | "status" | "error">): Promise<void> {
    const awsAccountId = scan.awsAccountId!;
    let refresh: Awaited<ReturnType<typeof refreshMemberAccountRollout>> | undefined;
    let refreshError: string | undefined;
    if (scan.status !== "failed") {
      try {
        refresh = await refreshMemberAccountRollout(db, deps.keyring, scan.organizationId, awsAccountId);
      } catch (error) {
        if (error instanceof TenantNotProvisionedError) return;
        if (!(error instanceof TenantAwsAccessError)) throw error;
        refreshError = neutralUpstreamText(error.cause ?? error.message);
      }
    }
    const outcome = accountStatusAfterRollout({ scan, refreshError, rollout: refresh });
    if (await deps.organizations.settleAccountRollout(scan.organizationId, awsAccountId, outcome)) {
      deps.log?.(`organization account ${awsAccountId} of tenant ${scan.organizationId}: ${outcome.status}`);
      if (outcome.status === "completed") await deps.organizations.recordCompletionWhenAllDone(scan.organizationId);
    }
    if (scan.status !== "failed") {
      await coverNewClusters(scan.organizationId, awsAccountId).catch((error: unknown) =>
        deps.log?.(`organization account ${awsAccountId}: no up for its new clusters: ${error instanceof Error ? error.message : String(error)}`),
      );
    }
  }

  return {
    /** A member account's run finished: its status follows; an applied stack is discovered next. */
    async afterRun(run: Run): Promise<void> {
      const outcome = await deps.organizations.afterAccountRun(run);
      if (run.awsAccountId && outcome?.status === "discovering") await discover(run.organizationId, run.awsAccountId);
    },

    afterScan: follow,

    /**
     * Every account still in its rollout: its latest scan is followed, or one is requested when it has none since its
     * stack was applied, or its last is older than RESCAN_AFTER_MS; a completed account is discovered again then.
     */
    async followRollouts(organizationId: number): Promise<void> {
      for (const account of await deps.organizations.accountsFollowingRollout(organizationId, RESCAN_AFTER_MS)) {
        const [latest] = await db
          .select()
          .from(discoveryScans)
          .where(and(eq(discoveryScans.organizationId, organizationId), eq(discoveryScans.awsAccountId, account.accountId)))
          .orderBy(desc(discoveryScans.requestedAt))
          .limit(1);
        const sinceApplied = latest && (!account.appliedAt || latest.requestedAt >= account.appliedAt);
        const stale = latest?.finishedAt && Date.now() - latest.finishedAt.getTime() > RESCAN_AFTER_MS;
        if (!sinceApplied || stale) {
          await discover(organizationId, account.accountId);
        } else if (latest.status !== "queued" && latest.status !== "running" && account.status !== "completed") {
          await follow(latest).catch((error: unknown) => deps.log?.(`organization account ${account.accountId}: ${String(error)}`));
        }
      }
    },
  };
}
