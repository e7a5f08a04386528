/**
 * What the deployment follow-up needs to act in a tenant's account: the XDR role and agent document its last
 * successful `up` created, the external ID from its sealed credential, and a short STS session of that role.
 * Every SSM call of a tenant signs with this session, never with the service's own identity.
 */
import { eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { appliedStackOutputs } from "../run/applied-outputs";
import { organizations, type IntegrationSettings, type TagFilter } from "../../db/schema";
import { assumeRoleCredentials, sessionNameFor, type CredentialsProvider } from "./assume-role";
import { loadAwsCredential } from "./aws-credential-store";

export const DEFAULT_TARGET_TAG: TagFilter = { key: "xdr:monitor", value: "true" };

/** The tenant has no applied stack (or no AWS integration): there is no deployment to follow yet. */
export class TenantNotDeployedError extends Error {
  override readonly name = "TenantNotDeployedError";
}

/** A call into the tenant's account failed (role not assumable, SSM refused, network). */
export class TenantAwsAccessError extends Error {
  override readonly name = "TenantAwsAccessError";
}

export interface TenantSession {
  organizationId: number;
  slug: string;
  roleArn: string;
  documentName: string;
  homeRegion: string;
  targetTag: TagFilter;
  targetAllManagedInstances: boolean;
  credentials: CredentialsProvider;
}

/** Whether the stack's association targets an asset with these tags (the same rule the program's association uses). */
export function isTargeted(tags: Record<string, string>, session: Pick<TenantSession, "targetTag" | "targetAllManagedInstances">): boolean {
  return session.targetAllManagedInstances || tags[session.targetTag.key] === session.targetTag.value;
}

export function targetingOf(settings: IntegrationSettings): Pick<TenantSession, "targetTag" | "targetAllManagedInstances"> {
  return { targetTag: settings.targetTag ?? DEFAULT_TARGET_TAG, targetAllManagedInstances: settings.targetAllManagedInstances ?? false };
}

export async function openTenantSession(db: DrizzleDatabase, keyring: Keyring, organizationId: number): Promise<TenantSession> {
  const [org] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
  if (!org) throw new TenantNotDeployedError(`organization ${organizationId} does not exist`);
  const outputs = await appliedStackOutputs(db, organizationId);
  const roleArn = outputs?.roleArn;
  const documentName = outputs?.documentName;
  if (typeof roleArn !== "string" || typeof documentName !== "string") {
    throw new TenantNotDeployedError("the tenant's stack has not been applied yet (no successful up)");
  }
  const credential = await loadAwsCredential(db, keyring, organizationId);
  if (!credential || credential.status === "revoked") throw new TenantNotDeployedError("the tenant has no AWS integration");
  const homeRegion = org.integrationSettings.homeRegion ?? org.integrationSettings.regions?.[0] ?? "us-east-1";
  return {
    organizationId,
    slug: org.slug,
    roleArn,
    documentName,
    homeRegion,
    ...targetingOf(org.integrationSettings),
    credentials: assumeRoleCredentials({
      roleArn,
      externalId: credential.data.externalId,
      sessionName: sessionNameFor(org.slug),
      region: homeRegion,
    }),
  };
}
