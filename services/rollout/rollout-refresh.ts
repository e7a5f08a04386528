/** Reads where the agent rollout stands from SSM, with the tenant's own session, into the assets. */
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { openMemberAccountSession, openRolloutSession, TenantNotProvisionedError } from "../core/tenant-aws-session";
import { refreshAgentStatus, type StatusRefresh } from "./agent-status";

/** TenantAwsAccessError when the tenant's role cannot be used; TenantNotProvisionedError before its first `up`. */
export async function refreshRollout(db: DrizzleDatabase, keyring: Keyring, organizationId: number, now = new Date()): Promise<StatusRefresh> {
  const session = await openRolloutSession(db, keyring, organizationId);
  return refreshAgentStatus(db, session, now);
}

/** The same for one organization member account's stack (its own XDR role and agent document). */
export async function refreshMemberAccountRollout(
  db: DrizzleDatabase,
  keyring: Keyring,
  organizationId: number,
  awsAccountId: string,
  now = new Date(),
): Promise<StatusRefresh> {
  const session = await openMemberAccountSession(db, keyring, organizationId, awsAccountId);
  if (!session.documentName) throw new TenantNotProvisionedError(`account ${awsAccountId}'s applied stack has no agent document yet`);
  return refreshAgentStatus(db, session, now);
}
