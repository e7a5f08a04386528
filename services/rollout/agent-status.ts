/**
 * The agent rollout as SSM sees it, per targeted instance: is it an SSM managed instance (DescribeInstanceInformation),
 * did the stack's association apply the agent document and with what result (DescribeInstanceAssociationsStatus),
 * and how did our latest retry command end there (GetCommandInvocation). The result is written onto each asset's
 * agent status, with the evidence in agent_status_detail. An agent that has checked in outranks all of it.
 */
import { recordPermissionObservation } from "../core/permission-findings";
import { deniedCallsIn } from "../core/permission-findings-fns";
import type { InstanceAssociationStatusInfo, InstanceInformation, SSMClient } from "@aws-sdk/client-ssm";
import { and, desc, eq, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { agentCommands, agents, cloudAssets, type AgentStatus, type CloudAsset } from "../../db/schema";
import { mapBounded } from "../../lib/concurrency";
import { targetingDecision, type TargetingDecision } from "../../programs/tenant/targeting-fns";
import { assetsOfStack } from "../core/account-assets";
import { TenantAwsAccessError, type TenantSession } from "../core/tenant-aws-session";
import type { RolloutSpec } from "../core/rollout-spec-fns";
import { classifyInstallFailure, type InstallFailure, type InstallOutput } from "./install-failure-fns";
import { isStoppedState } from "./stopped-instances-fns";

export const SSM_CONCURRENCY = 8;

export interface CommandResult {
  commandId: string;
  status: string;
  requestedAt: Date;
  statusDetails?: string;
}

export interface InstanceEvidence {
  /** The applied targeting's decision for the instance (targeting-fns.ts), with what SSM said about it being managed. */
  decision: TargetingDecision;
  enrolled: boolean;
  /** EC2 instance state. */
  state?: string | null;
  managed?: Pick<InstanceInformation, "PingStatus" | "PlatformType" | "AgentVersion">;
  association?: Pick<InstanceAssociationStatusInfo, "Status" | "DetailedStatus" | "ErrorCode" | "ExecutionDate" | "ExecutionSummary">;
  command?: CommandResult;
  /** What the failed install step printed (the association's or the retry command's invocation), when SSM kept it. */
  installOutput?: InstallOutput;
}

/** What SSM says about one instance (the rest of InstanceEvidence comes from our own records). */
type SsmEvidence = Pick<InstanceEvidence, "managed" | "association" | "command" | "installOutput">;

export interface DerivedStatus {
  status: AgentStatus;
  reason: string;
  /** A failed install's cause, fix and last output lines, read from what the step printed. */
  failure?: InstallFailure;
}

/** A failed install: its cause from the step's own output when there is some, else what SSM's status says. */
function failed(fallback: string, output: InstallOutput | undefined): DerivedStatus {
  if (!output || (output.stdout.trim() === "" && output.stderr.trim() === "")) return { status: "failed", reason: fallback };
  const failure = classifyInstallFailure(output);
  return { status: "failed", reason: failure.reason, failure };
}

const COMMAND_RUNNING = new Set(["Pending", "InProgress", "Delayed"]);
export const STOPPED_REASON = "stopped: the association runs when it starts";

/** Pure: the agent status an instance's evidence supports, and why. Every status but installed carries a reason. */
export function deriveAgentStatus(evidence: InstanceEvidence): DerivedStatus {
  if (evidence.enrolled) return { status: "checked_in", reason: "the agent enrolled with the service" };
  const { decision } = evidence;
  if (!decision.targeted && decision.reason !== "not_managed") return { status: "not_targeted", reason: decision.message };
  if (isStoppedState(evidence.state)) return { status: "pending", reason: STOPPED_REASON };
  if (!decision.targeted) return { status: "pending", reason: decision.message };
  if (!evidence.managed) {
    return {
      status: "pending",
      reason: "SSM has not registered the instance yet (its SSM agent has not reported in): it gets the agent once it does",
    };
  }
  const associationAt = evidence.association?.ExecutionDate?.getTime() ?? 0;
  if (evidence.command && evidence.command.requestedAt.getTime() >= associationAt) {
    const { status, commandId, statusDetails } = evidence.command;
    if (status === "Success") return { status: "installed", reason: `retry command ${commandId} succeeded` };
    if (COMMAND_RUNNING.has(status)) return { status: "installing", reason: `retry command ${commandId} is ${status}` };
    return failed(`retry command ${commandId} ended ${statusDetails ?? status}`, evidence.installOutput);
  }
  const association = evidence.association;
  if (!association) return { status: "pending", reason: "the association has not run on this instance yet" };
  switch (association.Status) {
    case "Success":
      return { status: "installed", reason: "the association applied the agent document" };
    case "Failed":
      return failed(
        `the agent document failed: ${[association.DetailedStatus, association.ErrorCode, association.ExecutionSummary].filter(Boolean).join(", ") || "no detail"}`,
        evidence.installOutput,
      );
    default:
      return { status: "installing", reason: `the association is ${association.Status ?? "running"}` };
  }
}

/** The SSM SDK module, loaded on first use rather than at start-up. */
export const loadSsm = () => import("@aws-sdk/client-ssm");

export async function ssmClient(session: TenantSession, region: string): Promise<SSMClient> {
  const { SSMClient } = await loadSsm();
  return new SSMClient({ region, credentials: session.credentials, retryMode: "adaptive", maxAttempts: 3 });
}

/** Latest recorded retry command per instance. */
async function latestCommands(
  db: DrizzleDatabase,
  organizationId: number,
): Promise<Map<string, { commandId: string; region: string; requestedAt: Date }>> {
  const rows = await db
    .select()
    .from(agentCommands)
    .where(eq(agentCommands.organizationId, organizationId))
    .orderBy(desc(agentCommands.requestedAt))
    .limit(200);
  const latest = new Map<string, { commandId: string; region: string; requestedAt: Date }>();
  for (const row of rows)
    for (const id of row.instanceIds)
      if (!latest.has(id)) latest.set(id, { commandId: row.commandId, region: row.region, requestedAt: row.requestedAt });
  return latest;
}

/** The install document's step per platform (programs/tenant/agent-document.ts): GetCommandInvocation names it. */
const INSTALL_STEP_OF_PLATFORM: Record<string, string> = { Linux: "InstallAgentLinux", Windows: "InstallAgentWindows" };

/** What a command's install step printed on the instance; undefined when SSM does not say (never fails the read). */
async function stepOutput(ssm: SSMClient, commandId: string, instanceId: string, step: string): Promise<InstallOutput | undefined> {
  const { GetCommandInvocationCommand } = await loadSsm();
  try {
    const invocation = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId, PluginName: step }));
    return { exitCode: invocation.ResponseCode ?? -1, stdout: invocation.StandardOutputContent ?? "", stderr: invocation.StandardErrorContent ?? "" };
  } catch {
    return undefined;
  }
}

/**
 * What the association's latest run printed on the instance: its execution, the instance's target in it (whose
 * output source is the command that ran the document there), then that command's invocation.
 */
async function associationOutput(ssm: SSMClient, associationId: string, instanceId: string, step: string): Promise<InstallOutput | undefined> {
  const { DescribeAssociationExecutionsCommand, DescribeAssociationExecutionTargetsCommand } = await loadSsm();
  try {
    const { AssociationExecutions = [] } = await ssm.send(new DescribeAssociationExecutionsCommand({ AssociationId: associationId, MaxResults: 10 }));
    const latest = [...AssociationExecutions].sort((a, b) => (b.CreatedTime?.getTime() ?? 0) - (a.CreatedTime?.getTime() ?? 0))[0];
    if (!latest?.ExecutionId) return undefined;
    const { AssociationExecutionTargets = [] } = await ssm.send(
      new DescribeAssociationExecutionTargetsCommand({
        AssociationId: associationId,
        ExecutionId: latest.ExecutionId,
        Filters: [{ Key: "ResourceId", Value: instanceId }],
      }),
    );
    const commandId = AssociationExecutionTargets.find((target) => target.ResourceId === instanceId)?.OutputSource?.OutputSourceId;
    return commandId ? await stepOutput(ssm, commandId, instanceId, step) : undefined;
  } catch {
    return undefined;
  }
}

async function regionEvidence(
  session: TenantSession,
  region: string,
  assets: CloudAsset[],
  commands: Map<string, { commandId: string; requestedAt: Date }>,
): Promise<Map<string, SsmEvidence>> {
  const ssm = await ssmClient(session, region);
  const { DescribeInstanceAssociationsStatusCommand, GetCommandInvocationCommand, paginateDescribeInstanceInformation } = await loadSsm();
  try {
    const managed = new Map<string, InstanceInformation>();
    for await (const page of paginateDescribeInstanceInformation({ client: ssm }, {})) {
      for (const info of page.InstanceInformationList ?? []) if (info.InstanceId) managed.set(info.InstanceId, info);
    }
    const evidence = new Map<string, SsmEvidence>();
    await mapBounded(assets, SSM_CONCURRENCY, async (asset) => {
      const info = managed.get(asset.assetId);
      if (!info) return evidence.set(asset.assetId, {});
      const statuses = await ssm.send(new DescribeInstanceAssociationsStatusCommand({ InstanceId: asset.assetId }));
      const association = (statuses.InstanceAssociationStatusInfos ?? [])
        .filter((status) => status.Name === session.documentName)
        .sort((a, b) => (b.ExecutionDate?.getTime() ?? 0) - (a.ExecutionDate?.getTime() ?? 0))[0];
      const recorded = commands.get(asset.assetId);
      let command: CommandResult | undefined;
      if (recorded) {
        const invocation = await ssm
          .send(new GetCommandInvocationCommand({ CommandId: recorded.commandId, InstanceId: asset.assetId }))
          .catch((error: unknown) => ({ Status: "Pending", StatusDetails: `no invocation yet (${(error as Error).name})` }));
        command = {
          commandId: recorded.commandId,
          requestedAt: recorded.requestedAt,
          status: invocation.Status ?? "Pending",
          statusDetails: invocation.StatusDetails,
        };
      }
      const step = INSTALL_STEP_OF_PLATFORM[info.PlatformType ?? ""];
      const commandCounts = command && command.requestedAt.getTime() >= (association?.ExecutionDate?.getTime() ?? 0);
      let installOutput: InstallOutput | undefined;
      if (step && commandCounts && command!.status === "Failed") {
        installOutput = await stepOutput(ssm, command!.commandId, asset.assetId, step);
      } else if (step && !commandCounts && association?.Status === "Failed" && association.AssociationId) {
        installOutput = await associationOutput(ssm, association.AssociationId, asset.assetId, step);
      }
      return evidence.set(asset.assetId, {
        managed: { PingStatus: info.PingStatus, PlatformType: info.PlatformType, AgentVersion: info.AgentVersion },
        association,
        command,
        ...(installOutput ? { installOutput } : {}),
      });
    });
    return evidence;
  } finally {
    ssm.destroy();
  }
}

export interface StatusRefresh {
  instances: number;
  byStatus: Partial<Record<AgentStatus, number>>;
  /** Of them: instances the targeting leaves out because SSM does not manage them, and stopped instances. */
  unmanaged: number;
  stopped: number;
  regions: { region: string; status: "succeeded" | "failed"; error?: string }[];
}

/** The applied targeting's decision for a stored asset, before SSM says whether it is managed. */
export function decisionFor(asset: CloudAsset, applied: RolloutSpec, managed?: boolean): TargetingDecision {
  return targetingDecision(
    {
      region: asset.region,
      tags: asset.tags,
      state: typeof asset.assetData.state === "string" ? asset.assetData.state : "running",
      managed,
      metadataTags: typeof asset.assetData.metadataTags === "boolean" ? asset.assetData.metadataTags : undefined,
    },
    applied,
  );
}

export const isStopped = (asset: Pick<CloudAsset, "assetData">) => isStoppedState(asset.assetData.state);

/** Reads the rollout from SSM in every region holding the tenant's targeted instances and stores it. */
export async function refreshAgentStatus(db: DrizzleDatabase, session: TenantSession, now = new Date()): Promise<StatusRefresh> {
  const assets = await db
    .select()
    .from(cloudAssets)
    .where(
      and(
        assetsOfStack(session.organizationId, session.stack),
        eq(cloudAssets.provider, "aws"),
        eq(cloudAssets.agentCompatible, true),
        isNull(cloudAssets.removedAt),
      ),
    );
  const enrolled = new Set(
    (await db.select({ instanceId: agents.instanceId }).from(agents).where(eq(agents.organizationId, session.organizationId))).map(
      (agent) => agent.instanceId,
    ),
  );
  const commands = await latestCommands(db, session.organizationId);
  const byRegion = new Map<string, CloudAsset[]>();
  for (const asset of assets) {
    if (enrolled.has(asset.assetId) || isStopped(asset) || !decisionFor(asset, session.applied).targeted) continue;
    const regionAssets = byRegion.get(asset.region) ?? [];
    regionAssets.push(asset);
    byRegion.set(asset.region, regionAssets);
  }

  const regions: StatusRefresh["regions"] = [];
  const evidenceById = new Map<string, SsmEvidence>();
  const failedRegions = new Set<string>();
  await Promise.all(
    [...byRegion].map(async ([region, regionAssets]) => {
      try {
        for (const [id, evidence] of await regionEvidence(session, region, regionAssets, commands)) evidenceById.set(id, evidence);
        regions.push({ region, status: "succeeded" });
      } catch (error) {
        failedRegions.add(region);
        regions.push({ region, status: "failed", error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
      }
    }),
  );

  const byStatus: StatusRefresh["byStatus"] = {};
  let unmanaged = 0;
  let stopped = 0;
  await db.transaction(async (tx) => {
    for (const asset of assets) {
      // A region we could not read keeps what we knew; we never guess.
      if (failedRegions.has(asset.region)) continue;
      const ssm = evidenceById.get(asset.assetId);
      const read = byRegion.get(asset.region)?.includes(asset) ?? false;
      const evidence: InstanceEvidence = {
        decision: decisionFor(asset, session.applied, read ? ssm?.managed !== undefined : undefined),
        enrolled: enrolled.has(asset.assetId),
        state: typeof asset.assetData.state === "string" ? asset.assetData.state : null,
        ...ssm,
      };
      const derived = deriveAgentStatus(evidence);
      byStatus[derived.status] = (byStatus[derived.status] ?? 0) + 1;
      if (derived.status === "pending" && !evidence.decision.targeted && evidence.decision.reason === "not_managed") unmanaged++;
      if (derived.status === "pending" && isStopped(asset)) stopped++;
      if (derived.status === "checked_in" && asset.agentStatus === "checked_in") continue;
      await tx
        .update(cloudAssets)
        .set({
          agentStatus: derived.status,
          agentStatusAt: now,
          agentStatusDetail: {
            source: "ssm",
            reason: derived.reason,
            ...(evidence.decision.targeted ? {} : { notTargeted: evidence.decision.reason }),
            ...(evidence.managed ? { pingStatus: evidence.managed.PingStatus, platformType: evidence.managed.PlatformType } : {}),
            ...(evidence.association
              ? { associationStatus: evidence.association.Status, associationExecutedAt: evidence.association.ExecutionDate?.toISOString() }
              : {}),
            ...(evidence.command ? { commandId: evidence.command.commandId, commandStatus: evidence.command.status } : {}),
            ...(derived.failure ? { failure: derived.failure } : {}),
          },
        })
        .where(eq(cloudAssets.id, asset.id));
    }
  });
  await recordPermissionObservation(db, {
    organizationId: session.organizationId,
    awsAccountId: session.stack.awsAccountId,
    source: "rollout",
    denied: regions.flatMap((region) => (region.status === "failed" ? deniedCallsIn(region.error ?? "", region.region) : [])),
    allowed: (finding) =>
      finding.action.startsWith("ssm:") && regions.some((region) => region.region === finding.region && region.status === "succeeded"),
  });
  if (regions.length > 0 && regions.every((region) => region.status === "failed")) {
    throw new TenantAwsAccessError(`could not read the agent rollout from SSM: ${regions.map((r) => `${r.region}: ${r.error}`).join("; ")}`);
  }
  return { instances: assets.length, byStatus, unmanaged, stopped, regions };
}
