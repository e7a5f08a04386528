import { eq, inArray } from "drizzle-orm";
import { cancelTenantStack, openTenantStack, StackNotFoundError, TENANT_STACK_PREFIX, type AutomationSettings } from "../automation";
import type { DrizzleDatabase } from "../db/client";
import { runs } from "../db/schema";

/**
 * At start-up, before workers run: runs left `running` by a crashed process are marked interrupted and their
 * stack's lock is cleared, so a new run can go. Nothing is retried automatically.
 */
export async function recoverInterruptedRuns(db: DrizzleDatabase, automation: AutomationSettings): Promise<string[]> {
  const stale = await db.select().from(runs).where(inArray(runs.status, ["running"]));
  for (const run of stale) {
    try {
      const slug = run.stackName.slice(TENANT_STACK_PREFIX.length);
      await cancelTenantStack(await openTenantStack(automation, slug, { create: false }));
    } catch (error) {
      if (!(error instanceof StackNotFoundError)) throw error;
    }
    await db
      .update(runs)
      .set({
        status: "interrupted",
        finishedAt: new Date(),
        error: { message: "the service stopped while this run was in progress; its stack lock was cleared", kind: "Interrupted" },
      })
      .where(eq(runs.id, run.id));
  }
  return stale.map((run) => run.id);
}
