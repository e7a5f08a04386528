/**
 * A tenant's AWS Organization: connected once (the reader role in its management account), then reconciled, not
 * assumed. Each reconcile lists the organization (on connect, on the schedule, on demand), applies the scope rules,
 * registers the accounts that came into scope (once: the row is the registration) and counts the ones that left; then
 * `advance` starts at most `max_concurrent_accounts` accounts at a time: wait for the account's bootstrap role to
 * answer, then its own stack's `up` through the run service (approval rules apply). An account out of scope for two
 * complete listings is offboarded (its stack destroyed). Failed listings and failed calls never delete anything.
 *
 * Replicas: the listing runs anywhere; applying it and picking accounts to start happen under the tenant's advisory
 * lock, and a listing that started before the last applied one counts nothing out, so two replicas reconciling at once
 * neither register an account twice nor count one listing twice.
 */
import { and, eq, inArray, isNotNull, isNull, lt, sql } from "drizzle-orm";
import { stackNameFor } from "../../automation/stack-name";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import {
  auditLog,
  cloudAssets,
  discoveryScans,
  organizations,
  runs,
  tenantAwsAccounts,
  tenantAwsOrganizations,
  type OnboardingStatus,
  type Organization,
  type OrganizationListingRecord,
  type OrganizationScopeRules,
  type Run,
  type StatusReason,
  type TenantAwsAccount,
  type TenantAwsOrganization,
  TERMINAL_RUN_STATUSES,
} from "../../db/schema";
import { ConflictError, NotFoundError, RateLimitedError, UnprocessableError, UpstreamUnavailableError } from "../../lib/errors";
import { customerRoleNames } from "../../programs/tenant/naming";
import { assumeRoleCredentials, sessionNameFor, type CredentialsProvider } from "../core/assume-role";
import { recordAudit } from "../core/audit-store";
import { COMPLETED_ACTION, ORGANIZATION_CONNECTED_ACTION } from "../core/onboarding-overview";
import { isAdmin, type Principal, requireAdmin, requireTenantAdmin, systemAdminPrincipal } from "../core/principal";
import { approvalRequired, type RequestedRun, type RunRequestOptions } from "../core/run-requests";
import { tenantExternalId } from "../core/tenant-external-id";
import type { RunKind } from "../../db/schema";
import { accountScope, LISTINGS_BEFORE_OFFBOARD, reconcileAccounts, type OutOfScopeReason } from "./account-scope-fns";
import {
  ACCOUNT_BUSY_STATUSES,
  ACCOUNT_ROLLOUT_STATUSES,
  accountStatusAfterRun,
  summarizeAccounts,
  type AccountRunOutcome,
  type AccountsSummary,
} from "./account-status-fns";
import { readCoverage } from "./coverage";
import type { CoverageMatrix } from "./coverage-fns";
import type { OrganizationTree } from "./organization-listing";

/** The role check of services/integration (AssumeRole with the external ID granted, without it denied). */
export type RoleCheck = (check: {
  roleArn: string;
  externalId: string;
  sessionName: string;
}) => Promise<{ ok: true } | { ok: false; code: string; reason: string; detail: string }>;

export interface AccountRunRequester {
  requestForAccount(
    principal: Principal,
    org: Organization,
    account: { accountId: string; stackName: string },
    kind: RunKind,
    options?: RunRequestOptions,
  ): Promise<RequestedRun>;
}

export interface OrganizationServiceDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  runs: AccountRunRequester;
  checkRole: RoleCheck;
  listOrganization(credentials: CredentialsProvider): Promise<OrganizationTree>;
  /** Removes an offboarded account's stack (its resources are destroyed by then). */
  removeStack(stackName: string): Promise<void>;
  /** The platform's own AWS accounts: never a tenant's organization. */
  platformAccounts?: ReadonlySet<string>;
  /** Accounts one tenant may cover (MAX_ACCOUNTS_PER_TENANT). */
  maxAccountsPerTenant: number;
  log?(message: string): void;
}

export interface ConnectOrganizationInput {
  /** The account holding the reader role: the management account or a delegated administrator. */
  managementAccountId: string;
  scope?: Partial<OrganizationScopeRules>;
  maxConcurrentAccounts?: number;
  maxFailedAccounts?: number;
}

export interface ReconcileOutcome {
  listing: OrganizationListingRecord;
  registered: string[];
  offboarding: string[];
  started: string[];
}

export interface TenantAccounts {
  organization: TenantAwsOrganization | undefined;
  /** Why no new account starts, when the failure tolerance was reached. */
  startsStopped?: string;
  summary: AccountsSummary;
  accounts: (TenantAwsAccount & { lastRun?: Pick<Run, "id" | "kind" | "status"> })[];
}

const ACTOR = "system:organization";
const DEFAULT_SCOPE: OrganizationScopeRules = { targetOus: [], excludeOus: [], excludeAccounts: [], includeManagementAccount: false };

const OUT_OF_SCOPE_TEXT: Record<OutOfScopeReason | "not_in_organization", string> = {
  suspended: "the account is suspended or closing",
  excluded_ou: "the account is in an excluded OU",
  excluded_account: "the account is excluded",
  not_in_targeted_ous: "the account is not in a targeted OU",
  management_account_not_opted_in: "the management account is covered only when opted in",
  not_in_organization: "the account is no longer in the organization",
};

/** How long the organization lock is waited for before the call fails. */
const LOCK_WAIT_MS = 30_000;
/** A `connecting` claim older than this lost its replica (the role check takes seconds). */
const STALE_CLAIM_MS = 5 * 60_000;
/** The most accounts a tenant token may have onboarding at once (a platform admin may set up to 50). */
const TENANT_MAX_CONCURRENT_ACCOUNTS = 10;

type DrizzleTransaction = Parameters<Parameters<DrizzleDatabase["transaction"]>[0]>[0];

/** A tenant's own reconciles on demand, at most one per this many seconds. */
const ON_DEMAND_RECONCILE_SECONDS = 10;

/** Member accounts whose rollout is read again per pass (one scan or SSM read each). */
const ROLLOUT_FOLLOWS_PER_PASS = 20;

/** Accounts with a missing bootstrap role checked again per listing (three AssumeRole calls each). */
const RECHECKS_PER_LISTING = 50;

/** A tenant's organization accounts that are not offboarded. */
const liveMembersOf = (organizationId: number) =>
  and(eq(tenantAwsAccounts.organizationId, organizationId), eq(tenantAwsAccounts.source, "organization"), isNull(tenantAwsAccounts.offboardedAt));

const bootstrapRoleArnOf = (org: Pick<Organization, "slug">, accountId: string) =>
  `arn:aws:iam::${accountId}:role/${customerRoleNames(org.slug).bootstrapRoleName}`;

/** `tenant-<slug>_<account>`: slugs have no underscore, so no tenant's home stack can ever take this name. */
export function memberStackName(tenantSlug: string, accountId: string): string {
  return `${stackNameFor(tenantSlug)}_${accountId}`;
}

export function createOrganizationService(deps: OrganizationServiceDeps) {
  const { db } = deps;
  /**
   * Runs `work` in a transaction holding the tenant's organization lock. A caller that does not get the lock at once
   * lets its connection go and tries again shortly: waiters never hold pool connections that the holder (which
   * requests runs, on connections of its own) may need.
   */
  async function underTenantLock<T>(organizationId: number, work: (tx: DrizzleTransaction) => Promise<T>): Promise<T> {
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      const outcome = await db.transaction(async (tx) => {
        const [got] = await tx.execute<{ locked: boolean }>(
          sql`select pg_try_advisory_xact_lock(hashtext(${`organization:${organizationId}`})) as locked`,
        );
        return got?.locked ? { done: true as const, value: await work(tx) } : { done: false as const };
      });
      if (outcome.done) return outcome.value;
      if (Date.now() > deadline) throw new Error(`the organization of tenant ${organizationId} stayed locked for ${LOCK_WAIT_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    }
  }

  async function tenantOf(organizationId: number): Promise<Organization> {
    const [org] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
    if (!org) throw new NotFoundError(`tenant ${organizationId} not found`);
    return org;
  }

  async function connectionOf(organizationId: number): Promise<TenantAwsOrganization> {
    const [connection] = await db.select().from(tenantAwsOrganizations).where(eq(tenantAwsOrganizations.organizationId, organizationId));
    if (!connection) {
      throw new NotFoundError("this tenant has no AWS Organization connected (PUT /v1/tenants/{slug}/integrations/aws/organization)");
    }
    return connection;
  }

  async function checkReader(org: Organization, readerRoleArn: string) {
    const externalId = await tenantExternalId(db, deps.keyring, org.id);
    return deps.checkRole({ roleArn: readerRoleArn, externalId, sessionName: sessionNameFor(org.slug) });
  }

  async function listing(org: Organization, connection: TenantAwsOrganization): Promise<{ tree?: OrganizationTree; error?: string }> {
    try {
      // Until a listing succeeds, the reader role is checked first: with the external ID it answers, without it it must not.
      if (connection.lastCountedListingAt === null) {
        const verdict = await checkReader(org, connection.readerRoleArn);
        if (!verdict.ok) return { error: `the reader role ${connection.readerRoleArn}: ${verdict.reason}` };
      }
      const externalId = await tenantExternalId(db, deps.keyring, org.id);
      const credentials = assumeRoleCredentials({ roleArn: connection.readerRoleArn, externalId, sessionName: sessionNameFor(org.slug) });
      return { tree: await deps.listOrganization(credentials) };
    } catch (error) {
      return { error: error instanceof Error ? error.message : String(error) };
    }
  }

  /** Applies one listing under the tenant's lock; returns the accounts registered and those set to offboard. */
  async function applyListing(
    org: Organization,
    startedAt: Date,
    result: { tree?: OrganizationTree; error?: string },
  ): Promise<{ record: OrganizationListingRecord; registered: string[]; offboarding: string[] }> {
    const finishedAt = new Date();
    return underTenantLock(org.id, async (tx) => {
      const [connection] = await tx.select().from(tenantAwsOrganizations).where(eq(tenantAwsOrganizations.organizationId, org.id));
      if (!connection) throw new NotFoundError("the tenant's organization was disconnected");
      // Offboarding began while this listing ran: it registers and counts nothing.
      if (connection.offboardingRequestedAt) {
        return {
          record: connection.lastListing ?? {
            status: "failed",
            startedAt: startedAt.toISOString(),
            finishedAt: finishedAt.toISOString(),
            error: "offboarding",
          },
          registered: [],
          offboarding: [],
        };
      }
      const base = { startedAt: startedAt.toISOString(), finishedAt: finishedAt.toISOString() };
      if (!result.tree) {
        const record: OrganizationListingRecord = { ...base, status: "failed", error: result.error };
        await tx.update(tenantAwsOrganizations).set({ lastListing: record }).where(eq(tenantAwsOrganizations.organizationId, org.id));
        return { record, registered: [], offboarding: [] };
      }
      const tree = result.tree;
      const scope = accountScope(tree.root, connection.scopeRules, tree.managementAccountId);
      const rows = await tx.select().from(tenantAwsAccounts).where(eq(tenantAwsAccounts.organizationId, org.id));
      const live = rows.filter((row) => row.offboardedAt === null);
      const homeIds = new Set(rows.filter((row) => row.source === "home").map((row) => row.accountId));
      const members = live.filter((row) => row.source === "organization");
      // A listing that began before the last applied one saw an older organization: it registers, but counts nothing out.
      const counted = !connection.lastCountedListingAt || startedAt >= connection.lastCountedListingAt;
      // The platform's own accounts are never a tenant's, whatever an organization lists.
      scope.inScope = scope.inScope.filter((account) => !deps.platformAccounts?.has(account.accountId));
      const inScopeIds = scope.inScope.map((account) => account.accountId);
      const reconciled = reconcileAccounts(
        members.map((row) => ({ accountId: row.accountId, listingsOutOfScope: row.listingsOutOfScope })),
        counted ? { complete: true, inScope: inScopeIds } : { complete: false },
      );
      const liveIds = new Set(live.map((row) => row.accountId));
      const toRegister = (counted ? reconciled.onboard : inScopeIds.filter((id) => !liveIds.has(id))).filter((id) => !homeIds.has(id));
      const room = Math.max(0, deps.maxAccountsPerTenant - live.length);
      const registering = toRegister.slice(0, room);
      const byId = new Map(scope.inScope.map((account) => [account.accountId, account]));
      for (const accountId of registering) {
        const account = byId.get(accountId)!;
        await tx
          .insert(tenantAwsAccounts)
          .values({
            organizationId: org.id,
            accountId,
            name: account.name.slice(0, 200),
            source: "organization",
            ouPath: account.ouPath,
            stackName: memberStackName(org.slug, accountId),
            status: "not_started",
          })
          // An account offboarded earlier that came back starts over on its old row (and stack name).
          .onConflictDoUpdate({
            target: [tenantAwsAccounts.organizationId, tenantAwsAccounts.accountId],
            set: {
              status: "not_started",
              statusReasons: null,
              offboardedAt: null,
              listingsOutOfScope: 0,
              outOfScopeReason: null,
              lastRunId: null,
            },
            setWhere: isNotNull(tenantAwsAccounts.offboardedAt),
          });
      }
      const reasons = new Map(scope.outOfScope.map((account) => [account.accountId, account.reason]));
      const offboarding: string[] = [];
      if (counted) {
        for (const covered of reconciled.covered) {
          const row = members.find((member) => member.accountId === covered.accountId);
          if (!row) continue;
          const inScope = byId.get(row.accountId);
          const goes = covered.listingsOutOfScope >= LISTINGS_BEFORE_OFFBOARD && row.status !== "offboarding";
          if (goes) offboarding.push(row.accountId);
          // Never started a stack: nothing to destroy, it is offboarded at once.
          const stackless = row.lastRunId === null && ["not_started", "action_required"].includes(row.status);
          await tx
            .update(tenantAwsAccounts)
            .set({
              listingsOutOfScope: covered.listingsOutOfScope,
              outOfScopeReason: inScope ? null : OUT_OF_SCOPE_TEXT[reasons.get(row.accountId) ?? "not_in_organization"],
              ...(inScope ? { name: inScope.name.slice(0, 200), ouPath: inScope.ouPath } : {}),
              ...(goes
                ? stackless
                  ? { status: "offboarded" as const, offboardedAt: new Date(), statusReasons: null }
                  : { status: "offboarding" as const, lastRunId: null, statusReasons: null }
                : {}),
            })
            .where(eq(tenantAwsAccounts.id, row.id));
        }
      }
      const record: OrganizationListingRecord = { ...base, status: "complete", accounts: tree.accounts, inScope: inScopeIds.length };
      await tx
        .update(tenantAwsOrganizations)
        .set({
          lastListing: record,
          managementAccountId: tree.managementAccountId,
          ...(counted ? { lastCountedListingAt: finishedAt } : {}),
        })
        .where(eq(tenantAwsOrganizations.organizationId, org.id));
      if (toRegister.length > registering.length) {
        deps.log?.(`organization ${org.slug}: ${toRegister.length - registering.length} account(s) over MAX_ACCOUNTS_PER_TENANT not registered`);
      }
      return { record, registered: registering, offboarding };
    });
  }

  /**
   * Starts what may start: the destroys of accounts set to offboard, then accounts waiting their turn, up to
   * max_concurrent_accounts busy at once, none while the failures reached max_failed_accounts. Picked under the
   * tenant's lock; the role checks (STS) happen outside it.
   */
  /** The account follows its finished run (once: only the run it waits for moves it). */
  async function settleAccountRun(
    run: Pick<Run, "id" | "organizationId" | "awsAccountId" | "kind" | "status" | "error">,
  ): Promise<AccountRunOutcome> {
    if (!run.awsAccountId) return;
    const [account] = await db
      .select()
      .from(tenantAwsAccounts)
      .where(and(eq(tenantAwsAccounts.organizationId, run.organizationId), eq(tenantAwsAccounts.accountId, run.awsAccountId)));
    if (account?.lastRunId !== run.id) return;
    const waitsFor = and(eq(tenantAwsAccounts.id, account.id), eq(tenantAwsAccounts.lastRunId, run.id));
    // A destroy stopped by a restart (or cancelled) while its account is being offboarded is started again.
    if (run.kind === "destroy" && ["interrupted", "cancelled"].includes(run.status)) {
      await db.update(tenantAwsAccounts).set({ status: "offboarding", lastRunId: null }).where(waitsFor);
      return;
    }
    const outcome = accountStatusAfterRun(run);
    if (!outcome) return;
    const moved = await db
      .update(tenantAwsAccounts)
      .set({ status: outcome.status, statusReasons: outcome.reasons, ...(outcome.offboarded ? { offboardedAt: new Date() } : {}) })
      .where(and(waitsFor, sql`${tenantAwsAccounts.status} <> 'offboarded'`))
      .returning({ id: tenantAwsAccounts.id });
    if (moved.length === 0) return;
    if (outcome.offboarded) {
      // Its agent is gone with its stack: its assets are no longer monitored (marked, never deleted).
      await db
        .update(cloudAssets)
        .set({ removedAt: new Date() })
        .where(
          and(eq(cloudAssets.organizationId, run.organizationId), eq(cloudAssets.awsAccountId, account.accountId), isNull(cloudAssets.removedAt)),
        );
      await deps.removeStack(account.stackName).catch((error: unknown) => deps.log?.(`removing ${account.stackName}: ${String(error)}`));
    }
    return outcome;
  }

  /**
   * Busy accounts whose run ended without its follow-up (the replica that executed it died): settled here, so a
   * restart resumes where the rows say, never stuck on a run that will not finish.
   */
  async function settleOrphanedRuns(organizationId: number): Promise<void> {
    const waiting = await db
      .select({ runId: tenantAwsAccounts.lastRunId })
      .from(tenantAwsAccounts)
      .where(
        and(
          eq(tenantAwsAccounts.organizationId, organizationId),
          inArray(tenantAwsAccounts.status, ["provisioning", "offboarding"]),
          isNotNull(tenantAwsAccounts.lastRunId),
        ),
      );
    const runIds = waiting.map((row) => row.runId!);
    if (runIds.length === 0) return;
    const finished = await db
      .select()
      .from(runs)
      .where(and(inArray(runs.id, runIds), inArray(runs.status, [...TERMINAL_RUN_STATUSES])));
    for (const run of finished) await settleAccountRun(run);
  }

  async function advance(organizationId: number): Promise<string[]> {
    const org = await tenantOf(organizationId);
    await settleOrphanedRuns(organizationId);
    const claimed = await underTenantLock(organizationId, async (tx) => {
      const [connection] = await tx.select().from(tenantAwsOrganizations).where(eq(tenantAwsOrganizations.organizationId, organizationId));
      if (!connection) return [];
      // A claim whose replica died during the role check: the account waits its turn again.
      await tx
        .update(tenantAwsAccounts)
        .set({ status: "not_started" })
        .where(
          and(
            liveMembersOf(organizationId),
            eq(tenantAwsAccounts.status, "connecting"),
            lt(tenantAwsAccounts.updatedAt, new Date(Date.now() - STALE_CLAIM_MS)),
          ),
        );
      const rows = await tx.select().from(tenantAwsAccounts).where(liveMembersOf(organizationId));
      const busy = rows.filter((row) => ACCOUNT_BUSY_STATUSES.includes(row.status)).length;
      const offboardingRunning = rows.filter((row) => row.status === "offboarding" && row.lastRunId !== null).length;
      let room = connection.maxConcurrentAccounts - busy - offboardingRunning;
      for (const row of rows.filter((r) => r.status === "offboarding" && r.lastRunId === null)) {
        if (room <= 0) break;
        room--;
        const requested = await deps.runs
          .requestForAccount(systemAdminPrincipal(ACTOR), org, row, "destroy", { queue: true })
          .catch((error: unknown) => ({ error: error instanceof Error ? error.message : String(error) }));
        await tx
          .update(tenantAwsAccounts)
          .set(
            "runId" in requested
              ? { lastRunId: requested.runId }
              : {
                  status: "failed",
                  statusReasons: [{ reason: `its offboarding could not start: ${requested.error}`, fix: "retry the account" }],
                },
          )
          .where(eq(tenantAwsAccounts.id, row.id));
      }
      const failed = rows.filter((row) => row.status === "failed").length;
      // Offboarding: destroys only, nothing new starts.
      if (connection.offboardingRequestedAt || failed >= connection.maxFailedAccounts || room <= 0) return [];
      const waiting = rows.filter((row) => row.status === "not_started").slice(0, room);
      if (waiting.length === 0) return [];
      return tx
        .update(tenantAwsAccounts)
        .set({ status: "connecting", statusReasons: null })
        .where(
          and(
            inArray(
              tenantAwsAccounts.id,
              waiting.map((row) => row.id),
            ),
            eq(tenantAwsAccounts.status, "not_started"),
          ),
        )
        .returning();
    });
    await Promise.all(claimed.map((account) => startAccount(org, account)));
    return claimed.map((account) => account.accountId);
  }

  /**
   * Accounts whose bootstrap role was missing are looked at again at each listing (the StackSet may have reached them
   * since): one whose role answers now waits its turn; the others keep their status and reason, without flapping.
   */
  async function recheckMissingRoles(org: Organization): Promise<void> {
    const missing = await db
      .select()
      .from(tenantAwsAccounts)
      .where(
        and(
          eq(tenantAwsAccounts.organizationId, org.id),
          eq(tenantAwsAccounts.source, "organization"),
          eq(tenantAwsAccounts.status, "action_required"),
          isNull(tenantAwsAccounts.lastRunId),
          isNull(tenantAwsAccounts.offboardedAt),
        ),
      )
      .limit(RECHECKS_PER_LISTING);
    const externalId = await tenantExternalId(db, deps.keyring, org.id);
    for (const account of missing) {
      const verdict = await deps.checkRole({
        roleArn: bootstrapRoleArnOf(org, account.accountId),
        externalId,
        sessionName: sessionNameFor(org.slug),
      });
      if (!verdict.ok) continue;
      await db
        .update(tenantAwsAccounts)
        .set({ status: "not_started", statusReasons: null })
        .where(and(eq(tenantAwsAccounts.id, account.id), eq(tenantAwsAccounts.status, "action_required")));
    }
  }

  /** The account's bootstrap role answers (with the external ID only): its stack's first run is requested. */
  async function startAccount(org: Organization, account: TenantAwsAccount): Promise<void> {
    const roleArn = bootstrapRoleArnOf(org, account.accountId);
    const setStatus = (status: OnboardingStatus, reasons: StatusReason[] | null, lastRunId?: string) =>
      db
        .update(tenantAwsAccounts)
        .set({ status: status, statusReasons: reasons, ...(lastRunId ? { lastRunId } : {}) })
        .where(and(eq(tenantAwsAccounts.id, account.id), eq(tenantAwsAccounts.status, "connecting")));
    try {
      const externalId = await tenantExternalId(db, deps.keyring, org.id);
      const verdict = await deps.checkRole({ roleArn, externalId, sessionName: sessionNameFor(org.slug) });
      if (!verdict.ok) {
        const missing = verdict.code === "credentials_rejected";
        await setStatus("action_required", [
          {
            reason: missing
              ? `the bootstrap role ${roleArn} does not answer: the StackSet has not created it in this account (yet)`
              : `the bootstrap role ${roleArn}: ${verdict.reason}`,
            fix: missing
              ? "check the StackSet's stack instance for this account in the management account (CloudFormation > StackSets); the next listing looks again"
              : "recreate the role from the organization's StackSet (its trust policy must require the external ID)",
          },
        ]);
        return;
      }
      const kind = approvalRequired(org) ? "preview" : "up";
      // Under the lock, and only if the account is still ours to start: an exclusion or an offboarding that came
      // during the role check wins, and no stack is created behind its back.
      const requested = await underTenantLock(org.id, async (tx) => {
        const [now] = await tx.select({ status: tenantAwsAccounts.status }).from(tenantAwsAccounts).where(eq(tenantAwsAccounts.id, account.id));
        if (now?.status !== "connecting") return undefined;
        const run = await deps.runs.requestForAccount(systemAdminPrincipal(ACTOR), org, account, kind, { queue: true });
        await tx
          .update(tenantAwsAccounts)
          .set({ status: "provisioning", statusReasons: null, lastRunId: run.runId })
          .where(eq(tenantAwsAccounts.id, account.id));
        return run;
      });
      if (requested) deps.log?.(`organization ${org.slug}: account ${account.accountId}: ${kind} run ${requested.runId} requested`);
    } catch (error) {
      await setStatus("action_required", [
        {
          reason: `its onboarding could not start: ${error instanceof Error ? error.message : String(error)}`,
          fix: "fix the cause, then retry the account",
        },
      ]);
    }
  }

  const service = {
    /** Connects (or reconnects) the tenant's organization through the reader role, then reconciles at once. */
    async connect(principal: Principal, org: Organization, input: ConnectOrganizationInput): Promise<ReconcileOutcome> {
      requireTenantAdmin(principal);
      if (org.onboardingStatus === "offboarding" || org.onboardingStatus === "offboarded") {
        throw new ConflictError(`tenant ${JSON.stringify(org.slug)} is offboarded or being offboarded`);
      }
      if (deps.platformAccounts?.has(input.managementAccountId)) {
        throw new UnprocessableError("management_account_id is one of the platform's own AWS accounts", {
          code: "platform_account",
          fields: [{ field: "management_account_id", message: "must be the customer's account" }],
        });
      }
      const [existing] = await db.select().from(tenantAwsOrganizations).where(eq(tenantAwsOrganizations.organizationId, org.id));
      if (existing?.offboardingRequestedAt) throw new ConflictError(`tenant ${JSON.stringify(org.slug)} is being offboarded`);
      const scopeRules = { ...DEFAULT_SCOPE, ...input.scope };
      // Accounts an operator excluded stay excluded when the tenant reconnects; only a platform admin lifts them.
      if (existing && !(isAdmin(principal) && input.scope?.excludeAccounts)) {
        scopeRules.excludeAccounts = [...new Set([...existing.scopeRules.excludeAccounts, ...scopeRules.excludeAccounts])];
      }
      if (!isAdmin(principal) && (input.maxConcurrentAccounts ?? 0) > TENANT_MAX_CONCURRENT_ACCOUNTS) {
        throw new UnprocessableError(`max_concurrent_accounts above ${TENANT_MAX_CONCURRENT_ACCOUNTS} is a platform admin's to set`, {
          code: "limit_exceeded",
          fields: [{ field: "max_concurrent_accounts", message: `must be at most ${TENANT_MAX_CONCURRENT_ACCOUNTS} for a tenant token` }],
        });
      }
      const readerRoleArn = `arn:aws:iam::${input.managementAccountId}:role/${customerRoleNames(org.slug).organizationReaderRoleName}`;
      // A role that answers without the external ID is refused outright; one that does not answer yet is waited for:
      // the customer is creating the stack, and each reconcile tries again until it answers.
      const verdict = await checkReader(org, readerRoleArn);
      if (!verdict.ok && verdict.code === "sts_unavailable") throw new UpstreamUnavailableError(verdict.reason, { code: verdict.code });
      if (!verdict.ok && verdict.code !== "credentials_rejected") {
        throw new UnprocessableError(`the organization reader role ${readerRoleArn}: ${verdict.reason}`, {
          code: verdict.code,
          fields: [{ field: "management_account_id", message: "holds a reader role the platform may not use" }],
        });
      }
      const values = {
        managementAccountId: input.managementAccountId,
        readerRoleArn,
        scopeRules,
        ...(input.maxConcurrentAccounts !== undefined ? { maxConcurrentAccounts: input.maxConcurrentAccounts } : {}),
        ...(input.maxFailedAccounts !== undefined ? { maxFailedAccounts: input.maxFailedAccounts } : {}),
      };
      await db
        .insert(tenantAwsOrganizations)
        .values({ organizationId: org.id, ...values })
        .onConflictDoUpdate({ target: tenantAwsOrganizations.organizationId, set: values });
      await recordAudit(db, principal, {
        action: ORGANIZATION_CONNECTED_ACTION,
        organizationId: org.id,
        target: `tenant:${org.slug}/integrations/aws/organization`,
        details: { readerRoleArn, scope: scopeRules },
      });
      return service.reconcile(org.id);
    },

    /** One listing, applied, then what may start is started. */
    async reconcile(organizationId: number): Promise<ReconcileOutcome> {
      const org = await tenantOf(organizationId);
      const connection = await connectionOf(organizationId);
      if (org.onboardingStatus === "offboarding" || org.onboardingStatus === "offboarded" || connection.offboardingRequestedAt) {
        throw new ConflictError(`tenant ${JSON.stringify(org.slug)} is offboarded or being offboarded: its organization is no longer listed`);
      }
      const startedAt = new Date();
      const listed = await listing(org, connection);
      const applied = await applyListing(org, startedAt, listed);
      if (applied.record.status === "failed") deps.log?.(`organization ${org.slug}: listing failed, nothing changed: ${applied.record.error}`);
      else await recheckMissingRoles(org);
      const started = await advance(organizationId);
      return { listing: applied.record, registered: applied.registered, offboarding: applied.offboarding, started };
    },

    /**
     * A reconcile a caller asks for. A tenant may ask at most once per ON_DEMAND_RECONCILE_SECONDS (each one lists its
     * whole organization): sooner, 429 with when to ask again.
     */
    async reconcileOnDemand(principal: Principal, org: Organization): Promise<ReconcileOutcome> {
      requireTenantAdmin(principal);
      await connectionOf(org.id);
      if (!isAdmin(principal)) {
        // Claimed in one statement: of two requests at once, one lists and the other is told when to ask again.
        const [claimed] = await db
          .update(tenantAwsOrganizations)
          .set({ onDemandReconcileAt: sql`now()` })
          .where(
            and(
              eq(tenantAwsOrganizations.organizationId, org.id),
              sql`coalesce(${tenantAwsOrganizations.onDemandReconcileAt}, '-infinity') < now() - make_interval(secs => ${ON_DEMAND_RECONCILE_SECONDS})`,
            ),
          )
          .returning({ at: tenantAwsOrganizations.onDemandReconcileAt });
        if (!claimed) {
          const [connection] = await db
            .select({ at: tenantAwsOrganizations.onDemandReconcileAt })
            .from(tenantAwsOrganizations)
            .where(eq(tenantAwsOrganizations.organizationId, org.id));
          const wait = Math.max(1, Math.ceil(((connection?.at?.getTime() ?? 0) + ON_DEMAND_RECONCILE_SECONDS * 1000 - Date.now()) / 1000));
          throw new RateLimitedError(`the organization was listed on demand less than ${ON_DEMAND_RECONCILE_SECONDS} s ago; ask again in ${wait} s`, {
            code: "reconcile_too_soon",
            retryAfterSeconds: wait,
          });
        }
      }
      return service.reconcile(org.id);
    },

    /** Every connected organization, one after the other (the schedule); `after` follows each (the onboarding's turn). */
    async reconcileAll(after?: (organizationId: number) => Promise<void>): Promise<void> {
      const connected = await db
        .select({ organizationId: tenantAwsOrganizations.organizationId, offboardingRequestedAt: tenantAwsOrganizations.offboardingRequestedAt })
        .from(tenantAwsOrganizations)
        .innerJoin(organizations, eq(organizations.id, tenantAwsOrganizations.organizationId))
        .where(isNull(organizations.offboardedAt));
      for (const { organizationId, offboardingRequestedAt } of connected) {
        // An organization being offboarded is no longer listed; its accounts' destroys go on (resumed after a restart).
        const step = offboardingRequestedAt ? advance(organizationId) : service.reconcile(organizationId);
        await step
          .then(() => after?.(organizationId))
          .catch((error: unknown) => deps.log?.(`organization reconcile of tenant ${organizationId}: ${String(error)}`));
      }
    },

    /** A member account's run finished: its status follows (answered, when it moved), and the next account may start. */
    async afterAccountRun(run: Run): Promise<AccountRunOutcome> {
      const outcome = await settleAccountRun(run);
      await advance(run.organizationId);
      return outcome;
    },

    /**
     * Member accounts whose stack is applied and whose rollout is followed (discovering, deploying, or action_required
     * after a successful up), then completed accounts whose last discovery is older than `rescanAfterMs` (their
     * instances come and go; the tenant's auto-discovery setting applies), each with when its applied up finished.
     */
    async accountsFollowingRollout(
      organizationId: number,
      rescanAfterMs: number,
      limit = ROLLOUT_FOLLOWS_PER_PASS,
    ): Promise<(TenantAwsAccount & { appliedAt: Date | null })[]> {
      const rescanned = sql`exists (select 1 from ${discoveryScans} where ${discoveryScans.organizationId} = ${organizationId}
        and ${discoveryScans.awsAccountId} = ${tenantAwsAccounts.accountId}
        and ${discoveryScans.requestedAt} > now() - make_interval(secs => ${rescanAfterMs / 1000}))`;
      const rows = await db
        .select({ account: tenantAwsAccounts, appliedAt: runs.finishedAt })
        .from(tenantAwsAccounts)
        .innerJoin(runs, eq(runs.id, tenantAwsAccounts.lastRunId))
        .innerJoin(organizations, eq(organizations.id, tenantAwsAccounts.organizationId))
        .where(
          and(
            liveMembersOf(organizationId),
            eq(runs.kind, "up"),
            eq(runs.status, "succeeded"),
            sql`(${tenantAwsAccounts.status} in ('discovering', 'deploying', 'action_required')
              or (${tenantAwsAccounts.status} = 'completed' and ${organizations.autoDiscoveryEnabled} and not ${rescanned}))`,
          ),
        )
        // Accounts in their rollout first; then the completed ones longest without a look.
        .orderBy(sql`${tenantAwsAccounts.status} = 'completed'`, tenantAwsAccounts.updatedAt)
        .limit(limit);
      return rows.map((row) => ({ ...row.account, appliedAt: row.appliedAt }));
    },

    /**
     * What an account's discovery and rollout read found: its status, only while its applied stack's rollout is what
     * it waits for (an exclusion, an offboarding or a new run since then wins).
     */
    async settleAccountRollout(
      organizationId: number,
      accountId: string,
      outcome: { status: OnboardingStatus; reasons: StatusReason[] | null },
    ): Promise<boolean> {
      const [current] = await db
        .select({
          id: tenantAwsAccounts.id,
          status: tenantAwsAccounts.status,
          reasons: tenantAwsAccounts.statusReasons,
          lastRunId: tenantAwsAccounts.lastRunId,
          kind: runs.kind,
          runStatus: runs.status,
        })
        .from(tenantAwsAccounts)
        .innerJoin(runs, eq(runs.id, tenantAwsAccounts.lastRunId))
        .where(and(liveMembersOf(organizationId), eq(tenantAwsAccounts.accountId, accountId)));
      if (current?.kind !== "up" || current.runStatus !== "succeeded" || !ACCOUNT_ROLLOUT_STATUSES.includes(current.status)) return false;
      if (current.status === outcome.status && JSON.stringify(current.reasons ?? null) === JSON.stringify(outcome.reasons)) return false;
      const moved = await db
        .update(tenantAwsAccounts)
        .set({ status: outcome.status, statusReasons: outcome.reasons })
        .where(
          and(
            eq(tenantAwsAccounts.id, current.id),
            eq(tenantAwsAccounts.lastRunId, current.lastRunId!),
            inArray(tenantAwsAccounts.status, [...ACCOUNT_ROLLOUT_STATUSES]),
          ),
        )
        .returning({ id: tenantAwsAccounts.id });
      return moved.length > 0;
    },

    async accounts(org: Organization): Promise<TenantAccounts> {
      const [connection] = await db.select().from(tenantAwsOrganizations).where(eq(tenantAwsOrganizations.organizationId, org.id));
      const rows = await db.select().from(tenantAwsAccounts).where(eq(tenantAwsAccounts.organizationId, org.id)).orderBy(tenantAwsAccounts.accountId);
      // The home account's status is the tenant's (its onboarding writes it).
      const accounts = rows.map((row) => (row.source === "home" ? { ...row, status: org.onboardingStatus, statusReasons: org.statusReasons } : row));
      const runIds = accounts.map((row) => row.lastRunId).filter((id): id is string => id !== null);
      const lastRuns = runIds.length
        ? await db.select({ id: runs.id, kind: runs.kind, status: runs.status }).from(runs).where(inArray(runs.id, runIds))
        : [];
      const runById = new Map(lastRuns.map((run) => [run.id, run]));
      const failed = accounts.filter((row) => row.source === "organization" && row.status === "failed").length;
      return {
        organization: connection,
        ...(connection && failed >= connection.maxFailedAccounts
          ? {
              startsStopped: `${failed} accounts failed (max_failed_accounts ${connection.maxFailedAccounts}): no new account starts until some are retried or excluded`,
            }
          : {}),
        summary: summarizeAccounts(accounts),
        accounts: accounts.map((row) => ({
          ...row,
          ...(row.lastRunId && runById.has(row.lastRunId) ? { lastRun: runById.get(row.lastRunId) } : {}),
        })),
      };
    },

    /**
     * Offboarding the tenant: every organization account's stack is destroyed, at most max_concurrent_accounts at a
     * time (the rows carry the state, so a restart resumes); accounts that never got a stack are offboarded at once.
     * Answers how many accounts are still being offboarded.
     */
    async offboardAccounts(principal: Principal, org: Organization): Promise<number> {
      requireTenantAdmin(principal);
      requireAdmin(principal);
      await underTenantLock(org.id, async (tx) => {
        const live = liveMembersOf(org.id);
        // From now on the organization registers and starts nothing (a listing in flight included).
        await tx
          .update(tenantAwsOrganizations)
          .set({ offboardingRequestedAt: new Date() })
          .where(and(eq(tenantAwsOrganizations.organizationId, org.id), isNull(tenantAwsOrganizations.offboardingRequestedAt)));
        // Never started a stack: nothing to destroy.
        await tx
          .update(tenantAwsAccounts)
          .set({ status: "offboarded", offboardedAt: new Date(), statusReasons: null })
          .where(and(live, isNull(tenantAwsAccounts.lastRunId), inArray(tenantAwsAccounts.status, ["not_started", "action_required"])));
        // Everything else is destroyed (an account already waiting for its destroy keeps waiting).
        await tx
          .update(tenantAwsAccounts)
          .set({ status: "offboarding", lastRunId: null, statusReasons: null })
          .where(and(live, sql`${tenantAwsAccounts.status} not in ('offboarding', 'offboarded')`));
      });
      await recordAudit(db, principal, { action: "organization.offboard", organizationId: org.id, target: `tenant:${org.slug}/accounts` });
      await advance(org.id);
      return service.liveAccounts(org.id);
    },

    /** The coverage matrix, account x region, over the tenant's accounts (its home account included). */
    coverage: (org: Organization): Promise<CoverageMatrix> => readCoverage(db, org),

    /**
     * Every account of the tenant completed (its home account too, when it has one): the onboarding milestone the KPIs
     * measure to is written, once.
     */
    async recordCompletionWhenAllDone(organizationId: number): Promise<boolean> {
      const org = await tenantOf(organizationId);
      const { summary } = await service.accounts(org);
      if (summary.status !== "completed") return false;
      const [written] = await db
        .select({ id: auditLog.id })
        .from(auditLog)
        .where(and(eq(auditLog.organizationId, organizationId), eq(auditLog.action, COMPLETED_ACTION)))
        .limit(1);
      if (written) return false;
      await db.insert(auditLog).values({ actor: ACTOR, organizationId, action: COMPLETED_ACTION, target: `tenant:${organizationId}` });
      return true;
    },

    /** Organization accounts not offboarded yet. */
    async liveAccounts(organizationId: number): Promise<number> {
      const rows = await db.select({ id: tenantAwsAccounts.id }).from(tenantAwsAccounts).where(liveMembersOf(organizationId));
      return rows.length;
    },

    /** The OUs the organization's StackSet targets (for the customer's clean-up), when one is connected. */
    async targetOus(organizationId: number): Promise<string[] | undefined> {
      const [connection] = await db.select().from(tenantAwsOrganizations).where(eq(tenantAwsOrganizations.organizationId, organizationId));
      return connection?.scopeRules.targetOus;
    },

    /** An operator starts a failed or waiting account over. */
    async retry(principal: Principal, org: Organization, accountId: string): Promise<TenantAwsAccount> {
      requireTenantAdmin(principal);
      requireAdmin(principal);
      const account = await memberAccount(org, accountId);
      if (!["failed", "action_required"].includes(account.status)) {
        throw new ConflictError(`account ${accountId} is ${account.status}; only failed or action_required accounts are retried`);
      }
      // Its destroy failed or could not start: the offboarding is what is retried, never a new stack.
      const connection = await connectionOf(org.id);
      const [lastRun] = account.lastRunId ? await db.select({ kind: runs.kind }).from(runs).where(eq(runs.id, account.lastRunId)) : [];
      const wasOffboarding =
        lastRun?.kind === "destroy" ||
        connection.offboardingRequestedAt !== null ||
        connection.scopeRules.excludeAccounts.includes(accountId) ||
        account.listingsOutOfScope >= LISTINGS_BEFORE_OFFBOARD;
      await db
        .update(tenantAwsAccounts)
        .set(wasOffboarding ? { status: "offboarding", lastRunId: null, statusReasons: null } : { status: "not_started", statusReasons: null })
        .where(eq(tenantAwsAccounts.id, account.id));
      await recordAudit(db, principal, { action: "organization.account.retry", organizationId: org.id, target: `account:${accountId}` });
      await advance(org.id);
      return memberAccount(org, accountId);
    },

    /** An operator excludes an account: it joins the scope's excluded accounts and is offboarded now. */
    async exclude(principal: Principal, org: Organization, accountId: string): Promise<TenantAwsAccount> {
      requireTenantAdmin(principal);
      requireAdmin(principal);
      const account = await memberAccount(org, accountId);
      const connection = await connectionOf(org.id);
      await underTenantLock(org.id, async (tx) => {
        const [current] = await tx.select().from(tenantAwsOrganizations).where(eq(tenantAwsOrganizations.organizationId, org.id));
        const rules = current?.scopeRules ?? connection.scopeRules;
        if (!rules.excludeAccounts.includes(accountId)) {
          await tx
            .update(tenantAwsOrganizations)
            .set({ scopeRules: { ...rules, excludeAccounts: [...rules.excludeAccounts, accountId] } })
            .where(eq(tenantAwsOrganizations.organizationId, org.id));
        }
        const [now] = await tx.select().from(tenantAwsAccounts).where(eq(tenantAwsAccounts.id, account.id));
        const stackless = now?.lastRunId === null && ["not_started", "action_required", "connecting"].includes(now.status);
        await tx
          .update(tenantAwsAccounts)
          .set(
            stackless
              ? { status: "offboarded", offboardedAt: new Date(), outOfScopeReason: OUT_OF_SCOPE_TEXT.excluded_account }
              : { status: "offboarding", lastRunId: null, statusReasons: null, outOfScopeReason: OUT_OF_SCOPE_TEXT.excluded_account },
          )
          .where(and(eq(tenantAwsAccounts.id, account.id), isNull(tenantAwsAccounts.offboardedAt)));
      });
      await recordAudit(db, principal, { action: "organization.account.exclude", organizationId: org.id, target: `account:${accountId}` });
      await advance(org.id);
      return memberAccount(org, accountId);
    },

    /** A run an operator requests on one member account's stack (an approved plan's up, a preview, a refresh). */
    async requestAccountRun(
      principal: Principal,
      org: Organization,
      accountId: string,
      kind: RunKind,
      options: RunRequestOptions,
    ): Promise<RequestedRun> {
      requireAdmin(principal);
      const account = await memberAccount(org, accountId);
      if (account.offboardedAt) throw new ConflictError(`account ${accountId} was offboarded`);
      const requested = await deps.runs.requestForAccount(principal, org, account, kind, options);
      // An up or destroy moves the account (and is the run it waits for); a preview or refresh does not.
      if (kind === "up" || kind === "destroy") {
        await db
          .update(tenantAwsAccounts)
          .set({ status: kind === "up" ? "provisioning" : "offboarding", statusReasons: null, lastRunId: requested.runId })
          .where(eq(tenantAwsAccounts.id, account.id));
      }
      return requested;
    },
  };

  async function memberAccount(org: Organization, accountId: string): Promise<TenantAwsAccount> {
    const [account] = await db
      .select()
      .from(tenantAwsAccounts)
      .where(
        and(eq(tenantAwsAccounts.organizationId, org.id), eq(tenantAwsAccounts.accountId, accountId), eq(tenantAwsAccounts.source, "organization")),
      );
    if (!account) throw new NotFoundError(`account ${accountId} is not one of this tenant's organization accounts`);
    return account;
  }

  return service;
}

export type OrganizationService = ReturnType<typeof createOrganizationService>;
