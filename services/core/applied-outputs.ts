/** The outputs of a tenant's last successful `up`: what its stack actually created (role ARN, document name, ...). */
import { and, desc, eq, isNull, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { preparedPerDatabase } from "../../db/prepared-query";
import { runs, type RunOutputs } from "../../db/schema";

const lastSucceededUpQuery = preparedPerDatabase((db) =>
  db
    .select({ outputs: runs.outputs })
    .from(runs)
    // The tenant's home stack: its organization accounts' stacks have their own outputs.
    .where(
      and(eq(runs.organizationId, sql.placeholder("organizationId")), isNull(runs.awsAccountId), eq(runs.kind, "up"), eq(runs.status, "succeeded")),
    )
    .orderBy(desc(runs.finishedAt))
    .limit(1)
    .prepare("applied_stack_outputs"),
);

export async function appliedStackOutputs(db: DrizzleDatabase, organizationId: number): Promise<RunOutputs | undefined> {
  const [lastUp] = await lastSucceededUpQuery(db).execute({ organizationId });
  return lastUp?.outputs ?? undefined;
}
