/**
 * Agent enrollment and heartbeats.
 *
 * Enrolling takes three proofs: the tenant's enrollment token (which tenant; hashed, compared in constant time), the
 * instance's EC2 identity document signed by AWS (which instance: instance-identity-fns.ts), and that the instance is
 * the tenant's: its account, one of its regions, a discovered asset that was not removed. An instance discovery has
 * not seen yet is refused with a retryable 409 rather than discovered on the spot: an unauthenticated-ish call must
 * not make the platform call the tenant's AWS account, and the association runs the install again on its schedule.
 *
 * Enrollment issues the agent its own credential, shown once, stored hashed. Heartbeats authenticate with it alone
 * and count for its instance only; re-enrolling an instance whose agent holds a credential needs that credential, or
 * an operator's reset (resetAgentEnrollment). The enrollment token alone does neither.
 */
import { and, eq, inArray, isNull, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { generateToken, hashToken, tokensEqual } from "../../db/crypto";
import { agents, auditLog, cloudAssets, enrollmentTokens, organizations, tenantAwsAccounts, type Agent } from "../../db/schema";
import { ConflictError, ForbiddenError, NotFoundError, UnauthorizedError } from "../../lib/errors";
import { verifyInstanceIdentity, type IdentityTrust, type InstanceIdentity } from "./instance-identity-fns";

/** How often agents are told to send a heartbeat; validation treats three missed ones as stale. */
export const HEARTBEAT_INTERVAL_SECONDS = 60;
export const HEARTBEAT_STALE_AFTER_MS = 3 * HEARTBEAT_INTERVAL_SECONDS * 1000;

export const AGENT_CREDENTIAL_PREFIX = "mxdr-agent";

export class InvalidEnrollmentTokenError extends UnauthorizedError {
  constructor() {
    super("unknown or revoked enrollment token", { code: "invalid_enrollment_token" });
  }
}

export class InvalidAgentCredentialError extends UnauthorizedError {
  constructor() {
    super("unknown or reset agent credential for this instance: enroll again", { code: "invalid_agent_credential" });
  }
}

export class InstanceNotOfTenantError extends ForbiddenError {
  constructor(reason: string) {
    super(`the instance is not the tenant's: ${reason}`, { code: "instance_not_of_tenant" });
  }
}

export class InstanceNotDiscoveredError extends ConflictError {
  constructor(
    readonly instanceId: string,
    region: string,
  ) {
    super(`instance ${instanceId} in ${region} is not among the tenant's discovered assets (yet): retry after the next discovery`, {
      code: "instance_not_discovered",
      details: { retryable: true },
    });
  }
}

export class AgentAlreadyEnrolledError extends ConflictError {
  constructor(readonly instanceId: string) {
    super(
      `instance ${instanceId} already has an enrolled agent: re-enroll with its agent_credential, or have a platform operator reset its enrollment`,
      { code: "agent_already_enrolled" },
    );
  }
}

export class AgentCredentialMismatchError extends ForbiddenError {
  constructor(readonly instanceId: string) {
    super(`the agent_credential is not the one of instance ${instanceId}'s agent`, { code: "agent_credential_mismatch" });
  }
}

export class AgentNotEnrolledError extends NotFoundError {
  constructor(readonly instanceId: string) {
    super(`no enrolled agent for instance ${instanceId}`, { code: "agent_not_enrolled" });
  }
}

export interface EnrollmentRequest {
  enrollmentToken: string;
  /** The document exactly as IMDS served it (the signature covers these bytes). */
  identityDocument: string;
  /** IMDS's base64 RSA SHA-256 signature of the document. */
  identitySignature: string;
  hostname: string;
  agentVersion: string;
  /** The instance's current agent credential: needed to enroll an instance whose agent holds one. */
  agentCredential?: string;
}

export interface HeartbeatRequest {
  agentCredential: string;
  instanceId: string;
  agentVersion?: string;
}

export interface Enrollment {
  agent: Agent;
  created: boolean;
  /** The new agent credential: the only time it exists in clear. */
  credential: string;
}

/** The organization whose active token this is; throws InvalidEnrollmentTokenError otherwise. */
async function organizationOfToken(db: DrizzleDatabase, presented: string) {
  const presentedHash = hashToken(presented);
  const [row] = await db
    .select({
      tokenId: enrollmentTokens.id,
      tokenHash: enrollmentTokens.tokenHash,
      organizationId: organizations.id,
      awsAccountId: organizations.awsAccountId,
      settings: organizations.integrationSettings,
    })
    .from(enrollmentTokens)
    .innerJoin(organizations, eq(organizations.id, enrollmentTokens.organizationId))
    .where(and(eq(enrollmentTokens.tokenHash, presentedHash), isNull(enrollmentTokens.revokedAt), isNull(organizations.offboardedAt)))
    .limit(1);
  if (!row || !tokensEqual(row.tokenHash, presentedHash)) throw new InvalidEnrollmentTokenError();
  // The accounts whose agents enroll: the one the tenant connected, and its organization's accounts whose stack is
  // applied and that are still in scope (an excluded, leaving or offboarding account's agents are not ours any more).
  const members = await db
    .select({ accountId: tenantAwsAccounts.accountId })
    .from(tenantAwsAccounts)
    .where(
      and(
        eq(tenantAwsAccounts.organizationId, row.organizationId),
        isNull(tenantAwsAccounts.offboardedAt),
        eq(tenantAwsAccounts.listingsOutOfScope, 0),
        inArray(tenantAwsAccounts.status, ["discovering", "deploying", "validating", "completed", "action_required"]),
      ),
    );
  const accounts = new Set([...(row.awsAccountId ? [row.awsAccountId] : []), ...members.map((member) => member.accountId)]);
  return { ...row, accounts };
}

/** Account and region of a verified identity against the tenant's (the asset check follows, in the transaction). */
function checkTenantOwns(tenant: Awaited<ReturnType<typeof organizationOfToken>>, identity: InstanceIdentity): void {
  if (tenant.accounts.size === 0) throw new InstanceNotOfTenantError("the tenant has no AWS account connected");
  if (!tenant.accounts.has(identity.accountId))
    throw new InstanceNotOfTenantError(`account ${identity.accountId} is not one of the tenant's AWS accounts`);
  const regions = new Set([...(tenant.settings.regions ?? []), ...(tenant.settings.homeRegion ? [tenant.settings.homeRegion] : [])]);
  if (!regions.has(identity.region)) throw new InstanceNotOfTenantError(`region ${identity.region} is not one of the tenant's regions`);
}

type Tx = Parameters<Parameters<DrizzleDatabase["transaction"]>[0]>[0];

async function markAssetCheckedIn(tx: Pick<DrizzleDatabase, "update">, organizationId: number, instanceId: string, at: Date) {
  const [asset] = await tx
    .update(cloudAssets)
    .set({ agentStatus: "checked_in", agentStatusAt: at, agentStatusDetail: { source: "agent", checkedInAt: at.toISOString() } })
    .where(and(eq(cloudAssets.organizationId, organizationId), eq(cloudAssets.assetId, instanceId), isNull(cloudAssets.removedAt)))
    .returning({ id: cloudAssets.id });
  return asset?.id ?? null;
}

async function discoveredInstance(tx: Tx, organizationId: number, identity: InstanceIdentity): Promise<number> {
  const [asset] = await tx
    .select({ id: cloudAssets.id })
    .from(cloudAssets)
    .where(
      and(
        eq(cloudAssets.organizationId, organizationId),
        eq(cloudAssets.provider, "aws"),
        eq(cloudAssets.assetType, "ec2"),
        eq(cloudAssets.assetId, identity.instanceId),
        eq(cloudAssets.region, identity.region),
        isNull(cloudAssets.removedAt),
      ),
    );
  if (!asset) throw new InstanceNotDiscoveredError(identity.instanceId, identity.region);
  return asset.id;
}

export async function enrollAgent(db: DrizzleDatabase, trust: IdentityTrust, request: EnrollmentRequest, now = new Date()): Promise<Enrollment> {
  const tenant = await organizationOfToken(db, request.enrollmentToken);
  const identity = verifyInstanceIdentity(trust, request.identityDocument, request.identitySignature);
  checkTenantOwns(tenant, identity);
  const { organizationId } = tenant;
  const { instanceId } = identity;
  return db.transaction(async (tx) => {
    // Two enrollments of one instance at once: the second sees the first's credential.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`agent:${organizationId}:${instanceId}`}))`);
    await discoveredInstance(tx, organizationId, identity);
    const [existing] = await tx
      .select({ id: agents.id, credentialHash: agents.credentialHash })
      .from(agents)
      .where(and(eq(agents.organizationId, organizationId), eq(agents.instanceId, instanceId)));
    if (existing?.credentialHash) {
      if (request.agentCredential === undefined) throw new AgentAlreadyEnrolledError(instanceId);
      if (!tokensEqual(hashToken(request.agentCredential), existing.credentialHash)) throw new AgentCredentialMismatchError(instanceId);
    }
    const credential = generateToken(AGENT_CREDENTIAL_PREFIX);
    const assetId = await markAssetCheckedIn(tx, organizationId, instanceId, now);
    const fields = {
      assetId,
      hostname: request.hostname,
      version: request.agentVersion,
      lastHeartbeatAt: now,
      credentialHash: hashToken(credential),
    };
    const [agent] = await tx
      .insert(agents)
      .values({ organizationId, instanceId, enrolledAt: now, ...fields })
      .onConflictDoUpdate({ target: [agents.organizationId, agents.instanceId], set: fields })
      .returning();
    await tx.insert(auditLog).values({
      actor: `agent:${instanceId}`,
      organizationId,
      action: existing ? "agent.reenrolled" : "agent.enrolled",
      target: instanceId,
      details: {
        hostname: request.hostname,
        agentVersion: request.agentVersion,
        enrollmentTokenId: tenant.tokenId,
        accountId: identity.accountId,
        region: identity.region,
        ...(identity.pendingTime ? { pendingTime: identity.pendingTime.toISOString() } : {}),
      },
    });
    return { agent: agent!, created: !existing, credential };
  });
}

export async function recordHeartbeat(db: DrizzleDatabase, request: HeartbeatRequest, now = new Date()): Promise<Agent> {
  const presentedHash = hashToken(request.agentCredential);
  return db.transaction(async (tx) => {
    const [agent] = await tx
      .update(agents)
      .set({ lastHeartbeatAt: now, ...(request.agentVersion ? { version: request.agentVersion } : {}) })
      .where(
        and(
          eq(agents.credentialHash, presentedHash),
          eq(agents.instanceId, request.instanceId),
          sql`exists (select 1 from ${organizations} where ${organizations.id} = ${agents.organizationId} and ${organizations.offboardedAt} is null)`,
        ),
      )
      .returning();
    if (!agent) throw new InvalidAgentCredentialError();
    await markAssetCheckedIn(tx, agent.organizationId, request.instanceId, now);
    return agent;
  });
}

/** An operator's reset: the agent's credential stops working, and the instance may enroll again without it. */
export async function resetAgentEnrollment(db: DrizzleDatabase, organizationId: number, instanceId: string): Promise<Agent> {
  const [agent] = await db
    .update(agents)
    .set({ credentialHash: null })
    .where(and(eq(agents.organizationId, organizationId), eq(agents.instanceId, instanceId)))
    .returning();
  if (!agent) throw new AgentNotEnrolledError(instanceId);
  return agent;
}
