/**
 * The one way into a tenant's AWS account: the XDR role its last successful `up` created, the external ID from its
 * sealed credential, and a short STS session of that role. Discovery, the rollout status and the retry all sign with
 * this session, never with the service's own identity.
 *
 * Sessions are cached per (role, external ID) across requests and refreshed before they expire (assume-role.ts), so
 * a page of requests costs one AssumeRole, not one each.
 */
import { createHash } from "node:crypto";
import { and, desc, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { organizations, runs, tenantAwsAccounts, type RunOutputs } from "../../db/schema";
import { ConflictError, UpstreamUnavailableError } from "../../lib/errors";
import { appliedSpecOf, homeRegionOf, type RolloutSpec } from "./rollout-spec-fns";
import { appliedStackOutputs } from "./applied-outputs";
import { assumeRoleCredentials, sessionNameFor, type CredentialsProvider } from "./assume-role";
import { loadAwsCredential } from "./aws-credential-store";
import { tenantExternalId } from "./tenant-external-id";

/** The tenant has no applied stack or no usable AWS integration: there is nothing to act on in its account yet. */
export class TenantNotProvisionedError extends ConflictError {
  constructor(message: string) {
    super(message, { code: "tenant_not_deployed" });
  }
}

/** A call into the tenant's account failed (role not assumable, SSM refused, network). */
export class TenantAwsAccessError extends UpstreamUnavailableError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: "tenant_aws_unreachable", ...options });
  }
}

export interface TenantSession {
  organizationId: number;
  slug: string;
  /**
   * Whose stack the session acts for: the tenant's home stack (the account it connected), or one of its organization
   * member accounts (its own stack `tenant-<slug>_<account>`). Assets and rollout reads are scoped to it
   * (account-assets.ts).
   */
  stack: { kind: "home"; awsAccountId: string | null } | { kind: "member"; awsAccountId: string };
  roleArn: string;
  /** The agent install document the applied stack created. */
  documentName: string;
  homeRegion: string;
  /** What the last successful up applied: the rollout is judged by it, never by settings not applied yet. */
  applied: RolloutSpec;
  credentials: CredentialsProvider;
}

const MAX_CACHED_SESSIONS = 1000;
const sessions = new Map<string, CredentialsProvider>();

function cachedCredentials(roleArn: string, externalId: string, sessionName: string, region: string): CredentialsProvider {
  const key = createHash("sha256").update(`${roleArn}\n${externalId}\n${sessionName}\n${region}`).digest("hex");
  let provider = sessions.get(key);
  if (!provider) {
    if (sessions.size >= MAX_CACHED_SESSIONS) sessions.delete(sessions.keys().next().value!);
    provider = assumeRoleCredentials({ roleArn, externalId, sessionName, region });
    sessions.set(key, provider);
  }
  return provider;
}

export const accountOfRoleArn = (roleArn: string): string | null => /^arn:aws[a-z-]*:iam::(\d{12}):role\//.exec(roleArn)?.[1] ?? null;

/** The tenant's session for reading its account (discovery needs the role only). */
export async function openTenantSession(db: DrizzleDatabase, keyring: Keyring, organizationId: number): Promise<TenantSession> {
  const [org] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
  if (!org) throw new TenantNotProvisionedError(`organization ${organizationId} does not exist`);
  const outputs = await appliedStackOutputs(db, organizationId);
  const roleArn = outputs?.roleArn;
  const documentName = outputs?.documentName;
  if (typeof roleArn !== "string") throw new TenantNotProvisionedError("the tenant's stack has not been applied yet (no successful up)");
  const credential = await loadAwsCredential(db, keyring, organizationId);
  if (!credential || credential.status === "revoked") throw new TenantNotProvisionedError("the tenant has no AWS integration");
  const homeRegion = homeRegionOf(org.integrationSettings);
  return {
    organizationId,
    slug: org.slug,
    // The account the applied role lives in: the one this session reads, whatever the tenant's setting says since.
    stack: { kind: "home", awsAccountId: accountOfRoleArn(roleArn) ?? org.awsAccountId },
    roleArn,
    documentName: typeof documentName === "string" ? documentName : "",
    homeRegion,
    applied: appliedSpecOf(outputs, org.integrationSettings)!,
    credentials: cachedCredentials(roleArn, credential.data.externalId, sessionNameFor(org.slug), homeRegion),
  };
}

/** The session for acting on the agent rollout: the applied stack must have created the agent document. */
export async function openRolloutSession(db: DrizzleDatabase, keyring: Keyring, organizationId: number): Promise<TenantSession> {
  const session = await openTenantSession(db, keyring, organizationId);
  if (!session.documentName) throw new TenantNotProvisionedError("the tenant's applied stack has no agent document yet (run an up)");
  return session;
}

/**
 * The session of one organization member account: the XDR role its own stack's last successful `up` created there,
 * with the tenant's external ID (the StackSet put the same trust into every account).
 */
export async function openMemberAccountSession(
  db: DrizzleDatabase,
  keyring: Keyring,
  organizationId: number,
  awsAccountId: string,
): Promise<TenantSession> {
  const [row] = await db
    .select({ org: organizations, stackName: tenantAwsAccounts.stackName })
    .from(tenantAwsAccounts)
    .innerJoin(organizations, eq(organizations.id, tenantAwsAccounts.organizationId))
    .where(
      and(
        eq(tenantAwsAccounts.organizationId, organizationId),
        eq(tenantAwsAccounts.accountId, awsAccountId),
        eq(tenantAwsAccounts.source, "organization"),
      ),
    );
  if (!row) throw new TenantNotProvisionedError(`account ${awsAccountId} is not one of the tenant's organization accounts`);
  const [lastUp] = await db
    .select({ outputs: runs.outputs })
    .from(runs)
    .where(and(eq(runs.organizationId, organizationId), eq(runs.stackName, row.stackName), eq(runs.kind, "up"), eq(runs.status, "succeeded")))
    .orderBy(desc(runs.finishedAt))
    .limit(1);
  const outputs: RunOutputs | undefined = lastUp?.outputs ?? undefined;
  const roleArn = outputs?.roleArn;
  if (typeof roleArn !== "string") throw new TenantNotProvisionedError(`account ${awsAccountId}'s stack has not been applied yet (no successful up)`);
  const homeRegion = homeRegionOf(row.org.integrationSettings);
  const externalId = await tenantExternalId(db, keyring, organizationId);
  return {
    organizationId,
    slug: row.org.slug,
    stack: { kind: "member", awsAccountId },
    roleArn,
    documentName: typeof outputs?.documentName === "string" ? outputs.documentName : "",
    homeRegion,
    applied: appliedSpecOf(outputs, row.org.integrationSettings)!,
    credentials: cachedCredentials(roleArn, externalId, sessionNameFor(row.org.slug), homeRegion),
  };
}

/** The session of the home stack (no account) or of a member account's stack. */
export const openStackSession = (db: DrizzleDatabase, keyring: Keyring, organizationId: number, awsAccountId?: string | null) =>
  awsAccountId ? openMemberAccountSession(db, keyring, organizationId, awsAccountId) : openTenantSession(db, keyring, organizationId);
