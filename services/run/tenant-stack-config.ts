/**
 * A tenant's stack configuration, assembled from what the database knows (organization settings, the AWS
 * credential, the enrollment token) and the platform's own settings. Checked with the tenant program's own schema
 * when a run is requested, so a tenant that is not ready is refused with the API fields to fix, not a failed run.
 */
import { and, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import type { Keyring } from "../../db/crypto";
import { organizations, tenantAwsAccounts, type Organization } from "../../db/schema";
import { UnprocessableError } from "../../lib/errors";
import { loadAwsCredential, type AwsCredentialData } from "../core/aws-credential-store";
import { activeEnrollmentToken } from "../core/enrollment-tokens";
import { tenantConfigSchema, type TenantConfigInput } from "../../programs/tenant/config";
import { customerRoleNames } from "../../programs/tenant/naming";
import { clustersInScope } from "../core/cluster-scope";
import { homeRegionOf } from "../core/rollout-spec-fns";
import { tenantExternalId } from "../core/tenant-external-id";

export interface PlatformSettings {
  /** The platform's AWS principal that customer roles trust. */
  platformPrincipalArn?: string;
  /** More of the platform's own AWS accounts (PLATFORM_ACCOUNT_IDS), besides the principal's: never a tenant's. */
  platformAccountIds?: readonly string[];
  agentVersion: string;
  /** AGENT_PUBLIC_BASE_URL: the agents' address for tenants whose settings name none. */
  agentPublicBaseUrl?: string;
}

export interface TenantConfigProblem {
  /** The API field (or service setting) to fix. */
  field: string;
  message: string;
}

export class TenantNotReadyError extends UnprocessableError {
  constructor(readonly problems: TenantConfigProblem[]) {
    super(`the tenant is not ready for stack runs: ${problems.map((p) => `${p.field} ${p.message}`).join("; ")}`, {
      code: "tenant_not_ready",
      fields: problems,
    });
  }
}

/** Tenant program config key -> where the API user sets it. */
const FIELD_OF_KEY: Record<string, string> = {
  customerAccountId: "integration_settings.aws_account_id",
  homeRegion: "integration_settings.home_region",
  regions: "integration_settings.regions",
  bootstrapRoleArn: "integrations.aws.bootstrap_role_arn",
  externalId: "integrations.aws.external_id",
  platformPrincipalArn: "service.PLATFORM_PRINCIPAL_ARN",
  agentPublicBaseUrl: "integration_settings.agent_public_base_url",
  agentVersion: "service.AGENT_VERSION",
  targetTag: "integration_settings.target_tag",
  targetingMode: "integration_settings.targeting_mode",
  exclusionTag: "integration_settings.exclusion_tag",
  targetAllManagedInstances: "integration_settings.target_all_managed_instances",
  associationMaxConcurrency: "integration_settings.association_max_concurrency",
  associationMaxErrors: "integration_settings.association_max_errors",
  enableDefaultHostManagement: "integration_settings.enable_default_host_management",
};

/** Checks everything but the enrollment token (which is issued on the first run) and returns the problems. */
export function tenantConfigProblems(
  org: Organization,
  credential: AwsCredentialData | undefined,
  platform: PlatformSettings,
): TenantConfigProblem[] {
  const candidate = draftConfig(org, credential, platform, "x".repeat(43));
  const problems: TenantConfigProblem[] = [];
  if (!credential) problems.push({ field: "integrations.aws", message: "is not connected (PUT /v1/tenants/{slug}/integrations/aws)" });
  const parsed = tenantConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? "");
      if (!credential && (key === "bootstrapRoleArn" || key === "externalId")) continue;
      const missing = issue.code === "invalid_type" && issue.input === undefined;
      problems.push({ field: FIELD_OF_KEY[key] ?? key, message: missing ? "is required" : issue.message });
    }
  }
  return problems;
}

function draftConfig(
  org: Organization,
  credential: AwsCredentialData | undefined,
  platform: PlatformSettings,
  enrollmentToken: string,
): Partial<TenantConfigInput> {
  const settings = org.integrationSettings;
  return {
    tenantSlug: org.slug,
    tenantId: String(org.id),
    customerAccountId: org.awsAccountId ?? undefined,
    // What the tenant's answer shows as its effective rollout: a tenant created without regions runs in the default one.
    homeRegion: homeRegionOf(settings),
    regions: settings.regions,
    bootstrapRoleArn: credential?.bootstrapRoleArn,
    externalId: credential?.externalId,
    platformPrincipalArn: platform.platformPrincipalArn,
    agentPublicBaseUrl: settings.agentPublicBaseUrl ?? platform.agentPublicBaseUrl,
    agentVersion: platform.agentVersion,
    enrollmentToken,
    targetingMode: settings.targetingMode,
    targetTag: settings.targetTag,
    exclusionTag: settings.exclusionTag,
    targetAllManagedInstances: settings.targetingMode === undefined ? settings.targetAllManagedInstances : undefined,
    associationMaxConcurrency: settings.associationMaxConcurrency,
    associationMaxErrors: settings.associationMaxErrors,
    enableDefaultHostManagement: settings.enableDefaultHostManagement,
  };
}

/**
 * An organization member account's credential: the bootstrap role the tenant's StackSet created in it (the same name
 * in every account) and the tenant's external ID.
 */
export async function memberAccountCredential(
  db: DrizzleDatabase,
  keyring: Keyring,
  org: Pick<Organization, "id" | "slug">,
  awsAccountId: string,
): Promise<AwsCredentialData> {
  return {
    bootstrapRoleArn: `arn:aws:iam::${awsAccountId}:role/${customerRoleNames(org.slug).bootstrapRoleName}`,
    externalId: await tenantExternalId(db, keyring, org.id),
  };
}

/**
 * The full stack config of a tenant's home account, or (awsAccountId) of one of its organization's member accounts,
 * secrets included (they only travel to the stack, encrypted there).
 */
export async function resolveTenantConfig(
  db: DrizzleDatabase,
  keyring: Keyring,
  platform: PlatformSettings,
  organizationId: number,
  awsAccountId?: string | null,
): Promise<TenantConfigInput> {
  const [org] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
  if (!org) throw new TenantNotReadyError([{ field: "tenant", message: "does not exist" }]);
  if (awsAccountId) {
    const [account] = await db
      .select({ id: tenantAwsAccounts.id })
      .from(tenantAwsAccounts)
      .where(and(eq(tenantAwsAccounts.organizationId, organizationId), eq(tenantAwsAccounts.accountId, awsAccountId)));
    if (!account) throw new TenantNotReadyError([{ field: "account_id", message: `${awsAccountId} is not one of the tenant's accounts` }]);
  }
  const member = awsAccountId ? { ...org, awsAccountId } : org;
  const credential = awsAccountId
    ? { data: await memberAccountCredential(db, keyring, org, awsAccountId) }
    : await loadAwsCredential(db, keyring, organizationId);
  const problems = tenantConfigProblems(member, credential?.data, platform);
  if (problems.length > 0) throw new TenantNotReadyError(problems);
  const token = await activeEnrollmentToken(db, keyring, organizationId);
  const clusters = await clustersInScope(
    db,
    member,
    awsAccountId ? { kind: "member", awsAccountId } : { kind: "home", awsAccountId: org.awsAccountId },
  );
  return { ...draftConfig(member, credential!.data, platform, token), clusters } as TenantConfigInput;
}
