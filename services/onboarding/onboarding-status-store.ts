/**
 * The one writer of a tenant's onboarding status (organizations.onboarding_status and its reasons). Every move goes
 * through here; the rules of which move when are in onboarding-status-fns.ts.
 */
import { and, eq, inArray } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { organizations, type OnboardingStatus, type Organization, type StatusReason } from "../../db/schema";
import type { AroundRunRequest } from "../core/run-requests";
import { statusDuringRequest } from "./onboarding-status-fns";

type Writer = Pick<DrizzleDatabase, "update">;

/** Moves the tenant to `status`; with `from`, only when it is in one of those statuses. True when it moved. */
export async function moveOnboardingStatus(
  db: Writer,
  organizationId: number,
  status: OnboardingStatus,
  { from, reasons, offboardedAt }: { from?: readonly OnboardingStatus[]; reasons?: StatusReason[] | null; offboardedAt?: Date } = {},
): Promise<boolean> {
  const moved = await db
    .update(organizations)
    .set({ onboardingStatus: status, ...(reasons !== undefined ? { statusReasons: reasons } : {}), ...(offboardedAt ? { offboardedAt } : {}) })
    .where(and(eq(organizations.id, organizationId), from ? inArray(organizations.onboardingStatus, [...from]) : undefined))
    .returning({ id: organizations.id });
  return moved.length > 0;
}

/**
 * Sets the tenant's status before its run is queued, so the run's own follow-up (which may finish first) sees it;
 * a request that is refused puts the previous status back.
 */
export function statusAroundRunRequest(db: DrizzleDatabase): AroundRunRequest {
  return async (org: Organization, intent, request) => {
    const status = statusDuringRequest(org.onboardingStatus, intent);
    if (!status) return request();
    await moveOnboardingStatus(db, org.id, status);
    try {
      return await request();
    } catch (error) {
      await moveOnboardingStatus(db, org.id, org.onboardingStatus, { from: [status] });
      throw error;
    }
  };
}
