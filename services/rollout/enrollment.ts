/**
 * Agent enrollment and heartbeats. An agent proves which tenant it belongs to with the tenant's enrollment token:
 * the presented token is hashed, the stored hash looked up and compared in constant time; an unknown or revoked
 * token changes nothing. Enrollment records the agent (one row per tenant and instance), links it to the discovered
 * asset and marks that asset checked in.
 */
import { and, eq, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { hashToken, tokensEqual } from "../../db/crypto";
import { agents, auditLog, cloudAssets, enrollmentTokens, organizations, type Agent } from "../../db/schema";
import { NotFoundError, UnauthorizedError } from "../../lib/errors";

/** How often agents are told to send a heartbeat; validation treats three missed ones as stale. */
export const HEARTBEAT_INTERVAL_SECONDS = 60;
export const HEARTBEAT_STALE_AFTER_MS = 3 * HEARTBEAT_INTERVAL_SECONDS * 1000;

export class InvalidEnrollmentTokenError extends UnauthorizedError {
  constructor() {
    super("unknown or revoked enrollment token", { code: "invalid_enrollment_token" });
  }
}

export class AgentNotEnrolledError extends NotFoundError {
  constructor(readonly instanceId: string) {
    super(`no enrolled agent for instance ${instanceId}: enroll it first`, { code: "agent_not_enrolled" });
  }
}

export interface EnrollmentRequest {
  enrollmentToken: string;
  instanceId: string;
  hostname: string;
  agentVersion: string;
}

export interface HeartbeatRequest {
  enrollmentToken: string;
  instanceId: string;
  agentVersion?: string;
}

/** The organization whose active token this is; throws InvalidEnrollmentTokenError otherwise. */
async function organizationOfToken(db: DrizzleDatabase, presented: string): Promise<{ organizationId: number; tokenId: number }> {
  const presentedHash = hashToken(presented);
  const [row] = await db
    .select({ id: enrollmentTokens.id, organizationId: enrollmentTokens.organizationId, tokenHash: enrollmentTokens.tokenHash })
    .from(enrollmentTokens)
    .innerJoin(organizations, eq(organizations.id, enrollmentTokens.organizationId))
    .where(and(eq(enrollmentTokens.tokenHash, presentedHash), isNull(enrollmentTokens.revokedAt), isNull(organizations.offboardedAt)))
    .limit(1);
  if (!row || !tokensEqual(row.tokenHash, presentedHash)) throw new InvalidEnrollmentTokenError();
  return { organizationId: row.organizationId, tokenId: row.id };
}

async function markAssetCheckedIn(tx: Pick<DrizzleDatabase, "update">, organizationId: number, instanceId: string, at: Date) {
  const [asset] = await tx
    .update(cloudAssets)
    .set({ agentStatus: "checked_in", agentStatusAt: at, agentStatusDetail: { source: "agent", checkedInAt: at.toISOString() } })
    .where(and(eq(cloudAssets.organizationId, organizationId), eq(cloudAssets.assetId, instanceId), isNull(cloudAssets.removedAt)))
    .returning({ id: cloudAssets.id });
  return asset?.id ?? null;
}

export async function enrollAgent(db: DrizzleDatabase, request: EnrollmentRequest, now = new Date()): Promise<{ agent: Agent; created: boolean }> {
  const { organizationId, tokenId } = await organizationOfToken(db, request.enrollmentToken);
  return db.transaction(async (tx) => {
    const assetId = await markAssetCheckedIn(tx, organizationId, request.instanceId, now);
    const [existing] = await tx
      .select({ id: agents.id })
      .from(agents)
      .where(and(eq(agents.organizationId, organizationId), eq(agents.instanceId, request.instanceId)));
    const [agent] = await tx
      .insert(agents)
      .values({
        organizationId,
        assetId,
        instanceId: request.instanceId,
        hostname: request.hostname,
        version: request.agentVersion,
        enrolledAt: now,
        lastHeartbeatAt: now,
      })
      .onConflictDoUpdate({
        target: [agents.organizationId, agents.instanceId],
        set: { assetId, hostname: request.hostname, version: request.agentVersion, lastHeartbeatAt: now },
      })
      .returning();
    await tx.insert(auditLog).values({
      actor: `agent:${request.instanceId}`,
      organizationId,
      action: existing ? "agent.reenrolled" : "agent.enrolled",
      target: request.instanceId,
      details: { hostname: request.hostname, agentVersion: request.agentVersion, enrollmentTokenId: tokenId, linkedAsset: assetId !== null },
    });
    return { agent: agent!, created: !existing };
  });
}

export async function recordHeartbeat(db: DrizzleDatabase, request: HeartbeatRequest, now = new Date()): Promise<Agent> {
  const { organizationId } = await organizationOfToken(db, request.enrollmentToken);
  return db.transaction(async (tx) => {
    const [agent] = await tx
      .update(agents)
      .set({ lastHeartbeatAt: now, ...(request.agentVersion ? { version: request.agentVersion } : {}) })
      .where(and(eq(agents.organizationId, organizationId), eq(agents.instanceId, request.instanceId)))
      .returning();
    if (!agent) throw new AgentNotEnrolledError(request.instanceId);
    await markAssetCheckedIn(tx, organizationId, request.instanceId, now);
    return agent;
  });
}
