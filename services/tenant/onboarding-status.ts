/** Moves a tenant's onboarding status around the request of a stack run. */
import { and, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { organizations, type OnboardingStatus, type Organization } from "../../db/schema";

/**
 * Sets the tenant's onboarding status before its run is queued, so the run's own follow-up (which may finish first)
 * sees it; a request that is refused puts the previous status back.
 */
export async function withStatusDuring<T>(
  db: DrizzleDatabase,
  org: Organization,
  status: OnboardingStatus | undefined,
  request: () => Promise<T>,
): Promise<T> {
  if (!status) return request();
  await db.update(organizations).set({ onboardingStatus: status }).where(eq(organizations.id, org.id));
  try {
    return await request();
  } catch (error) {
    await db
      .update(organizations)
      .set({ onboardingStatus: org.onboardingStatus })
      .where(and(eq(organizations.id, org.id), eq(organizations.onboardingStatus, status)));
    throw error;
  }
}
