/**
 * What follows a finished stack run or discovery scan: the tenant's onboarding status moves on, a successful `up`
 * starts discovery, and the `destroy` of an offboarding removes the stack and closes the tenant's records (assets
 * marked removed, enrollment tokens and the credential revoked; runs, history and audit kept).
 */
import { and, eq, inArray, isNull } from "drizzle-orm";
import { openTenantStack, removeTenantStack, StackNotFoundError, type AutomationSettings } from "../../automation";
import type { DrizzleDatabase } from "../../db/client";
import {
  apiTokens,
  auditLog,
  cloudAssets,
  enrollmentTokens,
  integrationCredentials,
  organizations,
  type DiscoveryScan,
  type OnboardingStatus,
  type Run,
} from "../../db/schema";
import type { Keyring } from "../../db/crypto";
import type { ScanQueue } from "../discovery/scan-queue";
import { refreshDeployment } from "../rollout/deployment-follow-up";
import type { RunService } from "../run/run-service";
import { systemPrincipal } from "../core/principal";

export interface LifecycleDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  automation: AutomationSettings;
  scans: () => ScanQueue;
  runs: () => RunService;
  log?(message: string): void;
}

/** Statuses from which a newly connected account starts onboarding by itself (quick-start flow). */
const STARTS_ON_CONNECT: readonly OnboardingStatus[] = ["not_started", "connecting", "action_required", "failed"];

async function setStatus(db: DrizzleDatabase, organizationId: number, status: OnboardingStatus) {
  await db.update(organizations).set({ onboardingStatus: status }).where(eq(organizations.id, organizationId));
}

export function onboardingLifecycle(deps: LifecycleDeps) {
  const { db } = deps;
  return {
    async onRunFinished(run: Run): Promise<void> {
      const [org] = await db.select().from(organizations).where(eq(organizations.id, run.organizationId));
      if (!org) return;
      const offboarding = org.onboardingStatus === "offboarding";
      if (run.kind === "destroy" && offboarding) {
        if (run.status === "succeeded") await completeOffboarding(deps, org.id, org.slug);
        else await setStatus(db, org.id, "failed");
        return;
      }
      if (run.kind !== "up" || offboarding) return;
      if (run.status !== "succeeded") {
        await setStatus(db, org.id, "failed");
        return;
      }
      await setStatus(db, org.id, "discovering");
      await deps.scans().request({ organizationId: org.id, trigger: "after_up", actor: "system:after-up" });
    },

    /** The bootstrap role answered: with the quick-start flow, the first preview/up starts by itself. */
    async onAwsConnected(organizationId: number): Promise<void> {
      const [org] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
      if (!org || org.onboardingFlowVersion !== "quick_start" || !STARTS_ON_CONNECT.includes(org.onboardingStatus)) return;
      const started = await deps.runs().startOnboarding(systemPrincipal("system:bootstrap-wait", org.id), org);
      deps.log?.(`onboarding ${org.slug}: AWS connected, ${started.kind} run ${started.runId} requested`);
    },

    /** The bootstrap role never answered: a person has to look (the reason is the wait's last error). */
    async onBootstrapTimedOut(organizationId: number): Promise<void> {
      await db
        .update(organizations)
        .set({ onboardingStatus: "action_required" })
        .where(and(eq(organizations.id, organizationId), inArray(organizations.onboardingStatus, ["not_started", "connecting"])));
    },

    async onScanFinished(scan: DiscoveryScan): Promise<void> {
      if (scan.status === "failed") return;
      await db
        .update(organizations)
        .set({ onboardingStatus: "deploying" })
        .where(and(eq(organizations.id, scan.organizationId), eq(organizations.onboardingStatus, "discovering")));
      // Newly found instances get the agent through the association; read where the rollout stands.
      await refreshDeployment(db, deps.keyring, scan.organizationId);
    },
  };
}

async function completeOffboarding(deps: LifecycleDeps, organizationId: number, slug: string): Promise<void> {
  try {
    await removeTenantStack(await openTenantStack(deps.automation, slug, { create: false }));
  } catch (error) {
    if (!(error instanceof StackNotFoundError)) throw error;
  }
  const now = new Date();
  await deps.db.transaction(async (tx) => {
    await tx
      .update(cloudAssets)
      .set({ removedAt: now })
      .where(and(eq(cloudAssets.organizationId, organizationId), isNull(cloudAssets.removedAt)));
    await tx
      .update(enrollmentTokens)
      .set({ revokedAt: now })
      .where(and(eq(enrollmentTokens.organizationId, organizationId), isNull(enrollmentTokens.revokedAt)));
    await tx.update(integrationCredentials).set({ status: "revoked" }).where(eq(integrationCredentials.organizationId, organizationId));
    // The customer's own API tokens end with the tenant; platform admins keep reading its history and audit.
    await tx
      .update(apiTokens)
      .set({ revokedAt: now })
      .where(and(eq(apiTokens.organizationId, organizationId), isNull(apiTokens.revokedAt)));
    await tx.update(organizations).set({ onboardingStatus: "offboarded", offboardedAt: now }).where(eq(organizations.id, organizationId));
    await tx.insert(auditLog).values({
      actor: "system:offboarding",
      organizationId,
      action: "tenant.offboarded",
      target: `tenant:${slug}`,
      details: { stackRemoved: true },
    });
  });
}
