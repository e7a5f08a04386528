/**
 * The end of an offboarding, after its destroy succeeded: the stack is removed and the tenant's records closed (assets
 * marked removed, enrollment tokens, the credential and the tenant's API tokens revoked; runs, history and audit kept).
 */
import { and, eq, isNull } from "drizzle-orm";
import { openTenantStack, removeTenantStack, StackNotFoundError, stackNameFor, type AutomationSettings } from "../../automation";
import type { DrizzleDatabase } from "../../db/client";
import { apiTokens, auditLog, cloudAssets, enrollmentTokens, integrationCredentials } from "../../db/schema";
import { moveOnboardingStatus } from "./onboarding-status-store";

export async function completeOffboarding(
  deps: { db: DrizzleDatabase; automation: AutomationSettings },
  organizationId: number,
  slug: string,
): Promise<void> {
  try {
    await removeTenantStack(await openTenantStack(deps.automation, stackNameFor(slug), { create: false }));
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
    await moveOnboardingStatus(tx, organizationId, "offboarded", { offboardedAt: now });
    await tx.insert(auditLog).values({
      actor: "system:offboarding",
      organizationId,
      action: "tenant.offboarded",
      target: `tenant:${slug}`,
      details: { stackRemoved: true },
    });
  });
}
