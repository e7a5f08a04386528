/**
 * When a scan found EKS clusters that a stack does not cover yet, the up that covers them starts by itself, as the first
 * up covered the instances: not while a run of that stack is queued or running (its own after-up scan looks again),
 * nor after such an up failed (a person looks at why first), nor while such a preview waits for its approval.
 */
import { and, desc, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { runs, type Organization } from "../../db/schema";
import { clusterRollouts } from "../rollout/cluster-rollout";

/** The actor of the up a scan requests for clusters it found. */
export const CLUSTER_DISCOVERED = "system:cluster-discovered";

/**
 * `<region>/<name>` of the clusters waiting for an up of the stack (`accountId` null: the tenant's home stack), when
 * one is due; empty otherwise.
 */
export async function clustersAwaitingUp(
  db: DrizzleDatabase,
  org: Pick<Organization, "id" | "integrationSettings">,
  stack: { accountId: string | null; stackName: string },
): Promise<string[]> {
  const waiting = (await clusterRollouts(db, org.id, org.integrationSettings)).filter(
    (cluster) => cluster.stackAccountId === stack.accountId && cluster.status === "up_pending",
  );
  if (waiting.length === 0) return [];
  const [last] = await db
    .select({ status: runs.status, actor: runs.actor, kind: runs.kind })
    .from(runs)
    .where(and(eq(runs.organizationId, org.id), eq(runs.stackName, stack.stackName)))
    .orderBy(desc(runs.requestedAt))
    .limit(1);
  if (last && (last.status === "queued" || last.status === "running")) return [];
  if (last?.actor === CLUSTER_DISCOVERED && (last.status !== "succeeded" || last.kind === "preview")) return [];
  return waiting.map((cluster) => `${cluster.region}/${cluster.name}`);
}
