/** The outputs of a tenant's last successful `up`: what its stack actually created (role ARN, document name, ...). */
import { and, desc, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { runs, type RunOutputs } from "../../db/schema";

export async function appliedStackOutputs(db: DrizzleDatabase, organizationId: number): Promise<RunOutputs | undefined> {
  const [lastUp] = await db
    .select({ outputs: runs.outputs })
    .from(runs)
    .where(and(eq(runs.organizationId, organizationId), eq(runs.kind, "up"), eq(runs.status, "succeeded")))
    .orderBy(desc(runs.finishedAt))
    .limit(1);
  return lastUp?.outputs ?? undefined;
}
