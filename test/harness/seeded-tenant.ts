/**
 * A tenant written straight into the database, as its onboarding would have left it (an active AWS credential and,
 * when asked, a succeeded `up` whose outputs say what rollout it applied), with a tenant token, on the in-process
 * platform (test/harness/platform.ts): for integration tests that go through the API without running a stack.
 */
import { randomBytes } from "node:crypto";
import type { createApp } from "../../api/app";
import type { Database } from "../../db/client";
import { encryptJson, generateToken, hashToken, type Keyring } from "../../db/crypto";
import { apiTokens, integrationCredentials, organizations, runs, type OnboardingStatus } from "../../db/schema";
import { AWS_CREDENTIAL_TYPE, awsCredentialContext } from "../../services/core/aws-credential-store";
import type { TestPlatform } from "./platform";

export const SEEDED_REGION = "us-east-1";

export interface SeededTenant {
  organizationId: number;
  slug: string;
  token: string;
  app: ReturnType<typeof createApp>;
  /** A call through the app with the tenant's token: status and parsed JSON body. */
  call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
}

/** An active AWS integration of the tenant, sealed with `keyring`, as a connect would store it. */
export async function insertActiveAwsCredential(
  database: Database,
  keyring: Keyring,
  { organizationId, account, externalId }: { organizationId: number; account: string; externalId: string },
) {
  const sealed = encryptJson(
    { bootstrapRoleArn: `arn:aws:iam::${account}:role/MiniXdrBootstrap`, externalId },
    awsCredentialContext(organizationId),
    keyring,
  );
  await database.db.insert(integrationCredentials).values({
    organizationId,
    provider: "aws",
    credentialType: AWS_CREDENTIAL_TYPE,
    credentialData: sealed.envelope,
    encryptionKeyId: sealed.keyId,
    status: "active",
  });
}

/**
 * The row of a tenant's succeeded `up` as the run executor leaves it, with the outputs the program reports for the
 * default rollout settings (test/integration/run-queue.test.ts and the e2e suite run the real one).
 */
export function succeededUpRun({ organizationId, slug, account, region }: { organizationId: number; slug: string; account: string; region: string }) {
  return {
    organizationId,
    stackName: `tenant-${slug}`,
    kind: "up" as const,
    actor: "test",
    status: "succeeded" as const,
    startedAt: new Date(),
    finishedAt: new Date(),
    outputs: {
      roleArn: `arn:aws:iam::${account}:role/MiniXdrAccess-${slug}`,
      documentName: `MiniXdr-InstallAgent-${slug}`,
      parameterName: `/mini-xdr/${slug}/agent-config`,
      rollout: {
        targeting: { mode: "all_managed", targetTag: { key: "xdr:monitor", value: "true" }, exclusionTag: { key: "xdr:monitor", value: "false" } },
        regions: [region],
        defaultHostManagement: false,
        maxConcurrency: "10%",
        maxErrors: "10%",
      },
    },
  };
}

export async function seedTenant(
  { platform, app }: TestPlatform,
  options: { slug?: string; status?: OnboardingStatus; appliedUp?: boolean } = {},
): Promise<SeededTenant> {
  const { database, keyring } = platform;
  const { db } = database;
  const slug = options.slug ?? `seeded-${randomBytes(3).toString("hex")}`;
  const account = "123456789012";
  const [org] = await db
    .insert(organizations)
    .values({
      slug,
      name: `Seeded ${slug}`,
      awsAccountId: account,
      onboardingStatus: options.status ?? "discovering",
      integrationSettings: { homeRegion: SEEDED_REGION, regions: [SEEDED_REGION] },
    })
    .returning();
  const organizationId = org!.id;
  await insertActiveAwsCredential(database, keyring, { organizationId, account, externalId: `ext-${randomBytes(12).toString("hex")}` });
  if (options.appliedUp) await database.db.insert(runs).values(succeededUpRun({ organizationId, slug, account, region: SEEDED_REGION }));
  const token = generateToken("mxdr-tenant");
  await db.insert(apiTokens).values({ tokenHash: hashToken(token), scope: "tenant", organizationId, name: "seeded" });
  return {
    organizationId,
    slug,
    token,
    app,
    async call(method, path, body) {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (body !== undefined) headers["content-type"] = "application/json";
      const response = await app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: response.status, body: await response.json() };
    },
  };
}
