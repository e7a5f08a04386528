/**
 * Which of a tenant's assets a stack's session answers for. An organization member account's stack: the assets found in
 * that account. The home stack: every other asset of the tenant (its connected account, and rows from before assets
 * named their account), so that no asset is left without a stack that scans it and removes it when it is gone.
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
    or(
      isNull(cloudAssets.awsAccountId),
      stack.awsAccountId ? eq(cloudAssets.awsAccountId, stack.awsAccountId) : undefined,
      sql`${cloudAssets.awsAccountId} not in (${members})`,
    ),
  )!;
}
