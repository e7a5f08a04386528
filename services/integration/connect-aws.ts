/**
 * Connects (or replaces) a tenant's AWS account: the bootstrap role must be assumable with the external ID (generated
 * when not given) before anything is stored; the credential is then sealed (AES-256-GCM) and the change audited.
 */
import { and, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { encryptJson, generateToken, type Keyring } from "../../db/crypto";
import { integrationCredentials, organizations, type IntegrationCredential, type Organization } from "../../db/schema";
import { recordAudit } from "../tenant/audit-store";
import type { Principal } from "../../api/auth";
import { ApiError, ValidationError } from "../../api/errors";
import { AWS_CREDENTIAL_TYPE, awsCredentialContext, type AwsCredentialData } from "./aws-credential-store";
import type { BootstrapRoleVerifier } from "./verify-bootstrap-role";

export interface ConnectAwsDeps {
  db: DrizzleDatabase;
  keyring: Keyring;
  verifyBootstrapRole: BootstrapRoleVerifier;
}

export interface ConnectAwsInput {
  bootstrapRoleArn: string;
  externalId?: string;
}

export async function connectAws(
  { db, keyring, verifyBootstrapRole }: ConnectAwsDeps,
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
    throw new ApiError(422, "credentials_rejected", `the bootstrap role could not be assumed: ${rejection}`, {
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
