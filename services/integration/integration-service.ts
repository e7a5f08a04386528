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
  type IntegrationCredential,
  type Organization,
} from "../../db/schema";
import { NotFoundError, NotSupportedError, UnprocessableError, ValidationError } from "../../lib/errors";
import { recordAudit } from "../tenant/audit-store";
import type { Principal } from "../tenant/principal";
import { AWS_CREDENTIAL_TYPE, awsCredentialContext, type AwsCredentialData } from "./aws-credential-store";
import type { BootstrapRoleVerifier } from "./verify-bootstrap-role";

export interface IntegrationServiceDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  verifyBootstrapRole: BootstrapRoleVerifier;
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
    throw new ValidationError([
      { field: "bootstrap_role_arn", message: `must belong to the tenant's AWS account ${org.awsAccountId}` },
    ]);
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
    const [existing] = await tx
      .select({ id: integrationCredentials.id })
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
      action: existing ? "integration.aws.replace" : "integration.aws.connect",
      organizationId: org.id,
      target: `tenant:${org.slug}/integrations/aws`,
      details: { bootstrapRoleArn: input.bootstrapRoleArn, externalIdGenerated: generated },
    });
    return { row: saved!, created: !existing };
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

export function createIntegrationService(deps: IntegrationServiceDeps) {
  const { db, keyring } = deps;
  return {
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
