/**
 * The tenant's onboarding, from connect to completed (or offboarded): it alone writes the onboarding status
 * (onboarding-status-store.ts), and it owns what follows a finished run, a scan, a connect, an agent's enrollment
 * and a bootstrap wait that timed out. The quick start is one call here.
 *
 *   connect -> (quick start) up -> discovering -> deploying -> validating -> completed   (action_required and back)
 */
import { and, desc, eq } from "drizzle-orm";
import { stackNameFor } from "../../automation/stack-name";
import type { AutomationSettings } from "../../automation";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { organizations, runs, type DiscoveryScan, type Organization, type Run } from "../../db/schema";
import { ConflictError } from "../../lib/errors";
import { neutralUpstreamText } from "../../lib/upstream-errors";
import { notifyRunFinished } from "../core/notification-events";
import { loadAwsCredential } from "../core/aws-credential-store";
import { recordAudit } from "../core/audit-store";
import { recordRunPermissions } from "../core/permission-findings";
import { type Principal, requireAdmin, requireTenantAdmin, systemPrincipal } from "../core/principal";
import { approvalRequired, type RequestedRun } from "../core/run-requests";
import { TenantAwsAccessError } from "../core/tenant-aws-session";
import type { ScanQueue } from "../discovery/scan-queue";
import type { FleetCoordinator } from "../fleet/fleet-coordinator";
import type { driftFollowUp } from "../fleet/drift";
import type { OffboardingInstructions } from "../integration/bootstrap-link-fns";
import type { ConnectAwsInput, IntegrationService } from "../integration/integration-service";
import type { OrganizationCleanupStep } from "../integration/organization-template-fns";
import { refreshRollout } from "../rollout/rollout-refresh";
import type { OrganizationService } from "../organization/organization-service";
import type { RunService } from "../run/run-service";
import type { TenantService } from "../tenant/tenant-service";
import { accountOnboarding } from "./account-onboarding";
import { CLUSTER_DISCOVERED, clustersAwaitingUp } from "./cluster-coverage";
import { completeOffboarding } from "./offboarding";
import { advanceOnboardingStatus } from "./onboarding-advance";
import { COVERS_NEW_CLUSTERS, STARTS_ON_CONNECT, statusAfterRun, WAITING_FOR_CONNECT } from "./onboarding-status-fns";
import { moveOnboardingStatus } from "./onboarding-status-store";
import { tenantProgress } from "./progress";

/** What offboarding answers: the home stack's destroy (when it has one), the accounts offboarding, the customer's clean-up. */
export interface TenantOffboarding extends Partial<RequestedRun> {
  accountsOffboarding: number;
  customerCleanup?: OffboardingInstructions;
  organizationCleanup?: OrganizationCleanupStep[];
}

export interface OnboardingServiceDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  automation: AutomationSettings;
  tenants: Pick<TenantService, "reload">;
  integrations: Pick<IntegrationService, "connectAws" | "bootstrapCleanup" | "organizationCleanup">;
  runs: Pick<RunService, "request" | "requestForAccount" | "offboard">;
  scans: Pick<ScanQueue, "request">;
  /** Drift records (and remediates) what a drift run found. */
  drift: Pick<ReturnType<typeof driftFollowUp>, "onRunFinished">;
  /** A fleet run waiting on a finished run starts its next tenant without waiting for the coordinator's next poll. */
  fleet?: Pick<FleetCoordinator, "tick">;
  /** A run on an organization member account's stack moves that account, not the tenant. */
  organizations?: Pick<
    OrganizationService,
    | "afterAccountRun"
    | "offboardAccounts"
    | "liveAccounts"
    | "targetOus"
    | "accountsFollowingRollout"
    | "settleAccountRollout"
    | "recordCompletionWhenAllDone"
  >;
  log?(message: string): void;
}

export function createOnboardingService(deps: OnboardingServiceDeps) {
  const { db } = deps;
  const accounts = deps.organizations
    ? accountOnboarding({ db, keyring: deps.keyring, scans: deps.scans, runs: deps.runs, organizations: deps.organizations, log: deps.log })
    : undefined;

  /** Starts onboarding: an `up`, or, when the tenant requires approval, a preview whose saved plan waits for a platform admin. */
  async function start(principal: Principal, org: Organization): Promise<RequestedRun & { awaitingApproval: boolean }> {
    requireTenantAdmin(principal);
    const awaitingApproval = approvalRequired(org);
    const requested = await deps.runs.request(principal, org, awaitingApproval ? "preview" : "up");
    return { ...requested, awaitingApproval };
  }

  /** Reads the rollout from SSM and moves the status on; a role that cannot be used becomes an action_required reason. */
  async function afterRolloutRead(organizationId: number): Promise<void> {
    const now = new Date();
    try {
      await refreshRollout(db, deps.keyring, organizationId, now);
    } catch (error) {
      if (error instanceof TenantAwsAccessError) {
        await advanceOnboardingStatus(db, organizationId, now, { refreshError: neutralUpstreamText(error.cause ?? error.message) });
      }
      throw error;
    }
    await advanceOnboardingStatus(db, organizationId, now);
  }

  /** Organization accounts still being offboarded hold the tenant's offboarding open. */
  const liveMembers = (organizationId: number) => deps.organizations?.liveAccounts(organizationId) ?? Promise.resolve(0);

  /**
   * An offboarding tenant is done when its home stack is gone (destroyed, or it never had one) and no organization
   * account is left.
   */
  async function completeOffboardingWhenDone(org: Organization): Promise<void> {
    if (org.onboardingStatus !== "offboarding" || (await liveMembers(org.id)) > 0) return;
    const [lastHomeRun] = await db
      .select({ kind: runs.kind, status: runs.status })
      .from(runs)
      .where(and(eq(runs.organizationId, org.id), eq(runs.stackName, stackNameFor(org.slug))))
      .orderBy(desc(runs.requestedAt))
      .limit(1);
    const homeGone = !lastHomeRun || (lastHomeRun.kind === "destroy" && lastHomeRun.status === "succeeded");
    if (homeGone) await completeOffboarding(deps, org.id, org.slug);
  }

  /** A scan found EKS clusters the home stack does not cover yet: an up covers them (cluster-coverage.ts). */
  async function coverNewClusters(organizationId: number): Promise<void> {
    const [org] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
    if (!org || !COVERS_NEW_CLUSTERS.includes(org.onboardingStatus)) return;
    const waiting = await clustersAwaitingUp(db, org, { accountId: null, stackName: stackNameFor(org.slug) });
    if (waiting.length === 0) return;
    const started = await start(systemPrincipal(CLUSTER_DISCOVERED, org.id), org);
    deps.log?.(`onboarding ${org.slug}: ${waiting.join(", ")} found, ${started.kind} run ${started.runId} requested`);
  }

  async function onboardingAfterRun(run: Run): Promise<void> {
    const [org] = await db.select().from(organizations).where(eq(organizations.id, run.organizationId));
    if (!org) return;
    const next = statusAfterRun(org.onboardingStatus, run);
    if (!next) return;
    if (next.completeOffboarding) return completeOffboardingWhenDone(org);
    await moveOnboardingStatus(db, org.id, next.status);
    if (next.discover) await deps.scans.request({ organizationId: org.id, trigger: "after_up", actor: "system:after-up" });
  }

  return {
    /** What follows a finished run: onboarding moves on, drift is recorded (and remediated), webhooks are told, the fleet goes on. */
    async afterRun(run: Run): Promise<void> {
      await recordRunPermissions(db, run);
      if (run.awsAccountId) {
        await accounts?.afterRun(run);
        const [org] = await db.select().from(organizations).where(eq(organizations.id, run.organizationId));
        if (org) await completeOffboardingWhenDone(org);
      } else {
        await onboardingAfterRun(run);
        await deps.drift.onRunFinished(run);
      }
      await notifyRunFinished(db, run);
      if (run.fleetRunId) void deps.fleet?.tick().catch(() => undefined);
    },

    /** A scan found the estate: the rollout reaches newly found instances through the association; read where it stands. */
    async afterScan(scan: DiscoveryScan): Promise<void> {
      if (scan.awsAccountId) return accounts?.afterScan(scan);
      if (scan.status === "failed") return;
      await moveOnboardingStatus(db, scan.organizationId, "deploying", { from: ["discovering"] });
      await coverNewClusters(scan.organizationId).catch((error: unknown) =>
        deps.log?.(
          `onboarding: no up for the new clusters of tenant ${scan.organizationId}: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
      await afterRolloutRead(scan.organizationId);
    },

    /** The rollout may have moved (read, an agent enrolled, a retry): the status follows. */
    afterRolloutChange: (organizationId: number, details: { refreshError?: string } = {}) =>
      advanceOnboardingStatus(db, organizationId, new Date(), details),

    /**
     * The organization's accounts moved (a reconcile settled or offboarded some): the accounts in their rollout are
     * followed, and an offboarding may be done now.
     */
    async afterAccountsChanged(organizationId: number): Promise<void> {
      await accounts?.followRollouts(organizationId);
      const [org] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
      if (org) await completeOffboardingWhenDone(org);
    },

    /** The bootstrap role answered: with the quick-start flow, the first preview/up starts by itself. */
    async afterConnect(organizationId: number): Promise<void> {
      const [org] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
      if (org?.onboardingFlowVersion !== "quick_start" || !STARTS_ON_CONNECT.includes(org.onboardingStatus)) return;
      const started = await start(systemPrincipal("system:bootstrap-wait", org.id), org);
      deps.log?.(`onboarding ${org.slug}: AWS connected, ${started.kind} run ${started.runId} requested`);
    },

    /** The bootstrap role never answered: a person has to look (the reason is the wait's last error). */
    async afterBootstrapTimeout(organizationId: number): Promise<void> {
      await moveOnboardingStatus(db, organizationId, "action_required", { from: WAITING_FOR_CONNECT });
    },

    /** The seed-compatible quick start: connect the AWS account, then start onboarding (quick-start flow only). */
    async quickStart(principal: Principal, org: Organization, aws: ConnectAwsInput) {
      requireTenantAdmin(principal);
      if (org.onboardingFlowVersion !== "quick_start") {
        throw new ConflictError(`organization ${JSON.stringify(org.slug)} uses the ${org.onboardingFlowVersion} onboarding flow, not quick_start`);
      }
      await deps.integrations.connectAws(principal, org, aws);
      return start(principal, await deps.tenants.reload(org));
    },

    /** Offboarding: destroy, then (when it succeeds) the stack is removed and the tenant's records closed; what the customer removes itself. */
    async offboard(principal: Principal, org: Organization): Promise<TenantOffboarding> {
      requireTenantAdmin(principal);
      const targetOus = await deps.organizations?.targetOus(org.id);
      if (targetOus === undefined || (await liveMembers(org.id)) === 0) {
        // No organization account to destroy: the home stack's offboarding, as for any tenant. A connected organization
        // is marked too, so that it registers nothing any more.
        const requested = await deps.runs.offboard(principal, org);
        if (targetOus !== undefined) await deps.organizations!.offboardAccounts(principal, org);
        return {
          ...requested,
          accountsOffboarding: 0,
          customerCleanup: deps.integrations.bootstrapCleanup(org),
          ...(targetOus !== undefined ? { organizationCleanup: deps.integrations.organizationCleanup(org, targetOus) } : {}),
        };
      }
      requireAdmin(principal);
      if (org.onboardingStatus === "offboarded") throw new ConflictError(`tenant ${JSON.stringify(org.slug)} was offboarded already`);
      // The home stack is destroyed as for any tenant; a tenant connected through its organization alone has none.
      const home = await loadAwsCredential(db, deps.keyring, org.id);
      const requested = home ? await deps.runs.offboard(principal, org) : undefined;
      if (!home) {
        await moveOnboardingStatus(db, org.id, "offboarding");
        await recordAudit(db, principal, { action: "tenant.offboard", organizationId: org.id, target: `tenant:${org.slug}` });
      }
      const accountsOffboarding = await deps.organizations!.offboardAccounts(principal, org);
      await completeOffboardingWhenDone(await deps.tenants.reload(org));
      return {
        ...(requested ?? {}),
        accountsOffboarding,
        customerCleanup: home ? deps.integrations.bootstrapCleanup(org) : undefined,
        organizationCleanup: deps.integrations.organizationCleanup(org, targetOus),
      };
    },

    progress: (org: Organization) => tenantProgress(db, org),
  };
}

export type OnboardingService = ReturnType<typeof createOnboardingService>;
