/**
 * Which role a tenant may hand the platform (confused-deputy rules): one of OUR bootstrap roles, in the tenant's own
 * AWS account, never in one of the platform's own accounts. Pure; the STS probes that the role really requires the
 * tenant's external ID live in verify-bootstrap-role.ts.
 */
import { bootstrapNames } from "./bootstrap-policy-fns";

/** The role name the bootstrap template creates is `MiniXdrBootstrap-<slug>`; a hand-made role may drop the suffix. */
export const BOOTSTRAP_ROLE_NAME = "MiniXdrBootstrap";

/** What the API's schema states of a bootstrap role ARN (the `aws` partition; the suffix must be the tenant's slug). */
export const BOOTSTRAP_ROLE_ARN_PATTERN = `^arn:aws:iam::[0-9]{12}:role/(?:[A-Za-z0-9_+=,.@-]+/)*${BOOTSTRAP_ROLE_NAME}(?:-[a-z][a-z0-9-]{1,38}[a-z0-9])?$`;

export interface ParsedRoleArn {
  partition: string;
  accountId: string;
  /** `/` or `/team/infra/`. */
  path: string;
  name: string;
}

const ROLE_ARN = /^arn:(aws|aws-us-gov|aws-cn):iam::(\d{12}):role(\/(?:[\w+=,.@-]+\/)*)([\w+=,.@-]{1,64})$/;

export function parseRoleArn(arn: string): ParsedRoleArn | undefined {
  const match = ROLE_ARN.exec(arn);
  return match ? { partition: match[1]!, accountId: match[2]!, path: match[3]!, name: match[4]! } : undefined;
}

/** The 12-digit account of an IAM principal ARN (`arn:aws:iam::<account>:...`), or undefined. */
export function accountOfArn(arn: string | undefined): string | undefined {
  return arn ? /^arn:[\w-]+:(?:iam|sts)::(\d{12}):/.exec(arn)?.[1] : undefined;
}

/** The platform's own AWS accounts: the platform principal's and any configured ones. */
export function platformAccountIds(principalArn: string | undefined, configured: readonly string[] = []): ReadonlySet<string> {
  const own = accountOfArn(principalArn);
  return new Set([...configured, ...(own ? [own] : [])]);
}

export const PLATFORM_ACCOUNT_MESSAGE = "is one of the platform's own AWS accounts, which tenants cannot connect";

export function isBootstrapRoleName(name: string, tenantSlug: string): boolean {
  return name === BOOTSTRAP_ROLE_NAME || name === bootstrapNames(tenantSlug).bootstrapRoleName;
}

/**
 * Why `roleArn` is not a role this tenant may connect, or undefined when it is. `tenantAccountId` is the account the
 * role must be in (the tenant's, when it has one); the account check itself is the caller's (who may move a tenant
 * to another account depends on the principal).
 */
export function bootstrapRoleArnProblem(args: { roleArn: string; tenantSlug: string; platformAccounts: ReadonlySet<string> }): string | undefined {
  const role = parseRoleArn(args.roleArn);
  if (!role) return "must be an IAM role ARN (arn:aws:iam::<account>:role/[<path>/]<name>)";
  if (args.platformAccounts.has(role.accountId)) return `is in account ${role.accountId}, which ${PLATFORM_ACCOUNT_MESSAGE}`;
  if (!isBootstrapRoleName(role.name, args.tenantSlug)) {
    return `must name the Mini-XDR bootstrap role (${BOOTSTRAP_ROLE_NAME} or ${bootstrapNames(args.tenantSlug).bootstrapRoleName}, any path), not ${JSON.stringify(role.name)}`;
  }
  return undefined;
}
