/**
 * Cloud integrations as a domain: connect (or replace) a tenant's AWS account, read it, remove it. The bootstrap role
 * must be assumable with the external ID (generated when not given) before anything is stored; the credential is then
 * sealed (AES-256-GCM) and the change audited. Azure and GCP are not supported yet, and say so.
 */
import { and, count, eq, isNull } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { decryptJson, encryptJson, generateToken, type Keyring } from "../../db/crypto";
import {
  cloudAssets,
  integrationCredentials,
  organizations,
  type CloudProvider,
  type ConnectionCheck,
  type IntegrationCredential,
  type Organization,
} from "../../db/schema";
import { NotFoundError, NotSupportedError, ServiceNotConfiguredError, UnprocessableError } from "../../lib/errors";
import { recordAudit } from "../tenant/audit-store";
import type { Principal } from "../tenant/principal";
import { AWS_CREDENTIAL_TYPE, awsCredentialContext, type AwsCredentialData } from "./aws-credential-store";
import { bootstrapRoleArn, type OffboardingInstructions } from "./bootstrap-link-fns";
import type { BootstrapLinkService, TenantBootstrap } from "./bootstrap-link-service";
import type { BootstrapWaitQueue } from "./bootstrap-wait";
import type { BootstrapRoleVerifier } from "./verify-bootstrap-role";

export interface IntegrationServiceDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  verifyBootstrapRole: BootstrapRoleVerifier;
  /** The quick-create link (absent when the platform has no template bucket or principal configured). */
  bootstrapLinks?: BootstrapLinkService;
  bootstrapWaits?: () => BootstrapWaitQueue;
  /** How long a wait for the bootstrap role lasts. */
  bootstrapWaitSeconds?: number;
}

export interface BootstrapView {
  link: TenantBootstrap;
  roleArn: string;
  wait: ConnectionCheck | null;
}

export interface ConnectAwsInput {
  bootstrapRoleArn: string;
  externalId?: string;
}

async function connectAws(
  { db, keyring, verifyBootstrapRole }: IntegrationServiceDeps,
  principal: Principal,
  org: Organization,
  input: ConnectAwsInput,
): Promise<{ row: IntegrationCredential; data: AwsCredentialData; created: boolean; generated: boolean }> {
  const roleAccount = input.bootstrapRoleArn.split(":")[4]!;
  if (org.awsAccountId && org.awsAccountId !== roleAccount) {
    // The request is well formed; the tenant's state refuses it (400 is kept for what the schema refuses).
    throw new UnprocessableError("the role is not in the tenant's AWS account", {
      code: "role_not_in_tenant_account",
      fields: [{ field: "bootstrap_role_arn", message: `must belong to the tenant's AWS account ${org.awsAccountId}` }],
    });
  }
  const generated = input.externalId === undefined;
  const data: AwsCredentialData = { bootstrapRoleArn: input.bootstrapRoleArn, externalId: input.externalId ?? generateToken("mxdr-ext") };
  // Checked before anything is stored or runs: the platform must be able to assume the role with this external ID.
  const rejection = await verifyBootstrapRole({
    roleArn: data.bootstrapRoleArn,
    externalId: data.externalId,
    region: org.integrationSettings.homeRegion ?? "us-east-1",
    sessionName: `mini-xdr-verify-${org.slug}`.slice(0, 64),
  });
  if (rejection) {
    throw new UnprocessableError(`the bootstrap role could not be assumed: ${rejection}`, {
      code: "credentials_rejected",
      fields: [{ field: "bootstrap_role_arn", message: `could not be assumed with the external ID: ${rejection}` }],
    });
  }
  const sealed = encryptJson(data, awsCredentialContext(org.id), keyring);
  const { row, created } = await db.transaction(async (tx) => {
    // A pending credential (a quick-create link that was opened, never connected) is not a connection to replace.
    const [existing] = await tx
      .select({ id: integrationCredentials.id, status: integrationCredentials.status })
      .from(integrationCredentials)
      .where(and(eq(integrationCredentials.organizationId, org.id), eq(integrationCredentials.provider, "aws")));
    const [saved] = await tx
      .insert(integrationCredentials)
      .values({
        organizationId: org.id,
        provider: "aws",
        credentialType: AWS_CREDENTIAL_TYPE,
        credentialData: sealed.envelope,
        encryptionKeyId: sealed.keyId,
        status: "active",
      })
      .onConflictDoUpdate({
        target: [integrationCredentials.organizationId, integrationCredentials.provider],
        set: {
          credentialType: AWS_CREDENTIAL_TYPE,
          credentialData: sealed.envelope,
          encryptionKeyId: sealed.keyId,
          status: "active",
          updatedAt: new Date(),
          lastUsedAt: null,
        },
      })
      .returning();
    if (!org.awsAccountId) {
      await tx.update(organizations).set({ awsAccountId: roleAccount }).where(eq(organizations.id, org.id));
    }
    await recordAudit(tx, principal, {
      action: existing && existing.status !== "pending" ? "integration.aws.replace" : "integration.aws.connect",
      organizationId: org.id,
      target: `tenant:${org.slug}/integrations/aws`,
      details: { bootstrapRoleArn: input.bootstrapRoleArn, externalIdGenerated: generated },
    });
    return { row: saved!, created: !existing || existing.status === "pending" };
  });
  return { row, data, created, generated };
}

export function notSupported(provider: Exclude<CloudProvider, "aws">): NotSupportedError {
  return new NotSupportedError(
    `${provider === "azure" ? "Azure" : "GCP"} integrations are not supported yet; only "aws" is. Connect an AWS account with PUT /v1/tenants/{slug}/integrations/aws.`,
  );
}

export interface IntegrationOverview {
  provider: CloudProvider;
  status: IntegrationCredential["status"];
  configuredAt: Date;
  regions: string[];
  assetCount: number;
}

const DEFAULT_BOOTSTRAP_WAIT_SECONDS = 15 * 60;

const homeRegionOf = (org: Organization) => org.integrationSettings.homeRegion ?? org.integrationSettings.regions?.[0] ?? "us-east-1";

export function createIntegrationService(deps: IntegrationServiceDeps) {
  const { db, keyring } = deps;

  function linkService(): BootstrapLinkService {
    if (!deps.bootstrapLinks) {
      throw new ServiceNotConfiguredError(
        "the service has no bootstrap template bucket: set BOOTSTRAP_TEMPLATE_BUCKET and PLATFORM_PRINCIPAL_ARN to offer the quick-create link",
      );
    }
    return deps.bootstrapLinks;
  }

  /**
   * The tenant's AWS credential for the quick-create flow: our bootstrap role in its account and an external ID we
   * generate once. An existing credential keeps its external ID; a new one starts `pending` until the role answers.
   */
  async function bootstrapCredential(org: Organization): Promise<{ row: IntegrationCredential; data: AwsCredentialData }> {
    if (!org.awsAccountId) {
      throw new UnprocessableError("the quick-create link needs the tenant's AWS account id", {
        code: "tenant_not_ready",
        fields: [{ field: "integration_settings.aws_account_id", message: "is required for the quick-create link" }],
      });
    }
    const roleArn = bootstrapRoleArn({ accountId: org.awsAccountId, tenantSlug: org.slug });
    const [existing] = await db
      .select()
      .from(integrationCredentials)
      .where(and(eq(integrationCredentials.organizationId, org.id), eq(integrationCredentials.provider, "aws")));
    if (existing) {
      const data = decryptJson<AwsCredentialData>(existing.credentialData, awsCredentialContext(org.id), keyring);
      if (data.bootstrapRoleArn === roleArn || existing.status === "active") return { row: existing, data };
    }
    const data: AwsCredentialData = { bootstrapRoleArn: roleArn, externalId: generateToken("mxdr-ext") };
    const sealed = encryptJson(data, awsCredentialContext(org.id), keyring);
    const [row] = await db
      .insert(integrationCredentials)
      .values({
        organizationId: org.id,
        provider: "aws",
        credentialType: AWS_CREDENTIAL_TYPE,
        credentialData: sealed.envelope,
        encryptionKeyId: sealed.keyId,
        status: "pending",
      })
      .onConflictDoUpdate({
        target: [integrationCredentials.organizationId, integrationCredentials.provider],
        set: { credentialData: sealed.envelope, encryptionKeyId: sealed.keyId, status: "pending", updatedAt: new Date(), connectionCheck: null },
      })
      .returning();
    return { row: row!, data };
  }

  return {
    /** The quick-create link for the tenant's bootstrap role, and where the wait for that role stands. */
    async bootstrap(org: Organization): Promise<BootstrapView> {
      const links = linkService();
      const { row, data } = await bootstrapCredential(org);
      const link = await links.bootstrapFor({ tenantSlug: org.slug, externalId: data.externalId, region: homeRegionOf(org) });
      return { link, roleArn: data.bootstrapRoleArn, wait: row.connectionCheck ?? null };
    },

    /** Starts (or restarts) polling AssumeRole for the bootstrap role; a connected role answers at once. */
    async waitForBootstrapRole(principal: Principal, org: Organization): Promise<ConnectionCheck> {
      linkService();
      const { row, data } = await bootstrapCredential(org);
      const now = new Date();
      if (row.status === "active") {
        return row.connectionCheck ?? { status: "connected", attempts: 0, startedAt: now.toISOString(), deadline: now.toISOString() };
      }
      if (row.connectionCheck?.status === "waiting" && Date.parse(row.connectionCheck.deadline) > now.getTime()) return row.connectionCheck;
      const seconds = deps.bootstrapWaitSeconds ?? DEFAULT_BOOTSTRAP_WAIT_SECONDS;
      const check: ConnectionCheck = {
        status: "waiting",
        attempts: 0,
        startedAt: now.toISOString(),
        deadline: new Date(now.getTime() + seconds * 1000).toISOString(),
      };
      await db.transaction(async (tx) => {
        await tx.update(integrationCredentials).set({ connectionCheck: check }).where(eq(integrationCredentials.id, row.id));
        await recordAudit(tx, principal, {
          action: "integration.aws.bootstrap_wait",
          organizationId: org.id,
          target: `tenant:${org.slug}/integrations/aws`,
          details: { bootstrapRoleArn: data.bootstrapRoleArn, waitSeconds: seconds },
        });
      });
      if (!deps.bootstrapWaits) throw new ServiceNotConfiguredError("this service process has no bootstrap wait queue");
      await deps.bootstrapWaits().schedule(org.id);
      return check;
    },

    /** What the customer does to remove our bootstrap stack once the tenant is offboarded. */
    bootstrapCleanup(org: Organization): OffboardingInstructions | undefined {
      return deps.bootstrapLinks?.offboardingFor({ tenantSlug: org.slug, region: homeRegionOf(org) });
    },

    connectAws: (principal: Principal, org: Organization, input: ConnectAwsInput) => connectAws(deps, principal, org, input),

    /** The AWS integration with its credential opened (a wrong key fails loudly, never returns garbage). */
    async getAws(org: Organization): Promise<{ row: IntegrationCredential; data: AwsCredentialData }> {
      const [row] = await db
        .select()
        .from(integrationCredentials)
        .where(and(eq(integrationCredentials.organizationId, org.id), eq(integrationCredentials.provider, "aws")));
      if (!row) throw new NotFoundError(`tenant ${JSON.stringify(org.slug)} has no AWS integration`);
      return { row, data: decryptJson<AwsCredentialData>(row.credentialData, awsCredentialContext(org.id), keyring) };
    },

    /** Removes the credentials; the tenant's stack stays (offboarding destroys it). */
    async remove(principal: Principal, org: Organization, provider: CloudProvider): Promise<void> {
      await db.transaction(async (tx) => {
        const deleted = await tx
          .delete(integrationCredentials)
          .where(and(eq(integrationCredentials.organizationId, org.id), eq(integrationCredentials.provider, provider)))
          .returning({ id: integrationCredentials.id });
        if (deleted.length === 0) throw new NotFoundError(`tenant ${JSON.stringify(org.slug)} has no ${provider} integration`);
        await recordAudit(tx, principal, {
          action: `integration.${provider}.delete`,
          organizationId: org.id,
          target: `tenant:${org.slug}/integrations/${provider}`,
        });
      });
    },

    async list(org: Organization): Promise<IntegrationOverview[]> {
      const rows = await db.select().from(integrationCredentials).where(eq(integrationCredentials.organizationId, org.id));
      const [assets] = await db
        .select({ n: count() })
        .from(cloudAssets)
        .where(and(eq(cloudAssets.organizationId, org.id), isNull(cloudAssets.removedAt)));
      const settings = org.integrationSettings;
      return rows.map((row) => ({
        provider: row.provider,
        status: row.status,
        configuredAt: row.createdAt,
        regions: settings.regions ?? (settings.homeRegion ? [settings.homeRegion] : []),
        assetCount: row.provider === "aws" ? (assets?.n ?? 0) : 0,
      }));
    },
  };
}

export type IntegrationService = ReturnType<typeof createIntegrationService>;
