/** The tenant's AWS credential (bootstrap role ARN and external ID), sealed in integration_credentials. */
import { and, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { decryptJson, type Keyring } from "../../db/crypto";
import { integrationCredentials, type CredentialStatus } from "../../db/schema";

export const AWS_CREDENTIAL_TYPE = "aws_assume_role";

/** What integration_credentials.credential_data holds (encrypted) for AWS. */
export interface AwsCredentialData {
  bootstrapRoleArn: string;
  externalId: string;
}

/** The encryption context: a row copied to another organization or provider fails authentication. */
export const awsCredentialContext = (organizationId: number) => ({ organizationId, provider: "aws" });

export async function loadAwsCredential(
  db: DrizzleDatabase,
  keyring: Keyring,
  organizationId: number,
): Promise<{ data: AwsCredentialData; status: CredentialStatus; configuredAt: Date } | undefined> {
  const [row] = await db
    .select()
    .from(integrationCredentials)
    .where(and(eq(integrationCredentials.organizationId, organizationId), eq(integrationCredentials.provider, "aws")));
  if (!row) return undefined;
  return {
    data: decryptJson<AwsCredentialData>(row.credentialData, awsCredentialContext(organizationId), keyring),
    status: row.status,
    configuredAt: row.createdAt,
  };
}
