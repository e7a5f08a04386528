/**
 * Retry of a failed rollout: re-runs the stack's agent document (SSM SendCommand) on the instances whose install
 * failed, and only those, highest priority first, in batches of SSM's limit of 50 instances per command. Each
 * command is recorded (agent_commands) so the next status refresh reads its result.
 */
import { assetsOfStack } from "../core/account-assets";
import { and, eq, inArray, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { agentCommands, cloudAssets } from "../../db/schema";
import { decisionFor, loadSsm, ssmClient } from "./agent-status";
import { byPriority } from "./rollout-summary";
import { TenantAwsAccessError, type TenantSession } from "../core/tenant-aws-session";

export const SEND_COMMAND_MAX_INSTANCES = 50;

export interface RetryCommand {
  commandId: string;
  region: string;
  instanceIds: string[];
}

export interface RetryResult {
  retried: number;
  commands: RetryCommand[];
}

export async function retryFailedDeployments(db: DrizzleDatabase, session: TenantSession, actor: string, now = new Date()): Promise<RetryResult> {
  const failed = (
    await db
      .select()
      .from(cloudAssets)
      .where(
        and(
          assetsOfStack(session.organizationId, session.stack),
          eq(cloudAssets.agentCompatible, true),
          eq(cloudAssets.agentStatus, "failed"),
          isNull(cloudAssets.removedAt),
        ),
      )
  )
    .filter((asset) => decisionFor(asset, session.applied).targeted)
    .sort(byPriority);

  const batches: { region: string; instanceIds: string[] }[] = [];
  for (const asset of failed) {
    const open = batches.find((batch) => batch.region === asset.region && batch.instanceIds.length < SEND_COMMAND_MAX_INSTANCES);
    if (open) open.instanceIds.push(asset.assetId);
    else batches.push({ region: asset.region, instanceIds: [asset.assetId] });
  }

  const commands: RetryCommand[] = [];
  for (const batch of batches) {
    const ssm = await ssmClient(session, batch.region);
    const { SendCommandCommand } = await loadSsm();
    let commandId: string | undefined;
    try {
      const sent = await ssm.send(
        new SendCommandCommand({
          DocumentName: session.documentName,
          InstanceIds: batch.instanceIds,
          Comment: "Mini-XDR: retry of a failed agent install",
        }),
      );
      commandId = sent.Command?.CommandId;
    } catch (error) {
      throw new TenantAwsAccessError(
        `SendCommand in ${batch.region} failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}` +
          (commands.length > 0 ? ` (after ${commands.length} command(s) were sent: ${commands.map((c) => c.commandId).join(", ")})` : ""),
      );
    } finally {
      ssm.destroy();
    }
    if (!commandId) throw new TenantAwsAccessError(`SendCommand in ${batch.region} returned no command id`);
    await db.transaction(async (tx) => {
      await tx.insert(agentCommands).values({
        organizationId: session.organizationId,
        commandId: commandId!,
        documentName: session.documentName,
        instanceIds: batch.instanceIds,
        region: batch.region,
        reason: "retry_failed_install",
        actor,
        requestedAt: now,
      });
      await tx
        .update(cloudAssets)
        .set({
          agentStatus: "installing",
          agentStatusAt: now,
          agentStatusDetail: { source: "retry", reason: `retry command ${commandId} sent`, commandId },
        })
        .where(and(eq(cloudAssets.organizationId, session.organizationId), inArray(cloudAssets.assetId, batch.instanceIds)));
    });
    commands.push({ commandId, region: batch.region, instanceIds: batch.instanceIds });
  }
  return { retried: failed.length, commands };
}
