/**
 * Which of a tenant's assets a stack's session answers for. An organization member account's stack: the assets found in
 * that account. The home stack: every asset of no member account (its connected account, rows from before assets named
 * their account, and an account the tenant connected before), so that no asset is left without a stack that scans it
 * and removes it when it is gone. A member account is its own stack's, even when it is also the home account: two
 * stacks never judge one account's assets.
 */
import { and, eq, isNull, or, sql, type SQL } from "drizzle-orm";
import { cloudAssets, tenantAwsAccounts } from "../../db/schema";
import type { TenantSession } from "./tenant-aws-session";

export type StackOfSession = TenantSession["stack"];

export function assetsOfStack(organizationId: number, stack: StackOfSession): SQL {
  if (stack.kind === "member") return and(eq(cloudAssets.organizationId, organizationId), eq(cloudAssets.awsAccountId, stack.awsAccountId))!;
  const members = sql`select ${tenantAwsAccounts.accountId} from ${tenantAwsAccounts}
    where ${tenantAwsAccounts.organizationId} = ${organizationId} and ${tenantAwsAccounts.source} = 'organization'`;
  return and(
    eq(cloudAssets.organizationId, organizationId),
    or(isNull(cloudAssets.awsAccountId), sql`${cloudAssets.awsAccountId} not in (${members})`),
  )!;
}
