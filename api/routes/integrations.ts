/**
 * /v1/tenants/{slug}/integrations/{provider}: AWS set up (bootstrap role ARN + external ID, the
 * latter generated when absent), status, delete. The credential is stored encrypted
 * (AES-256-GCM, db/crypto.ts) and bound to (organization, provider); responses show the external
 * ID only masked. Azure and GCP answer 501.
 */
import { createRoute } from "@hono/zod-openapi";
import { and, eq } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { decryptJson, type Keyring } from "../../db/crypto";
import { integrationCredentials, type IntegrationCredential, type Organization } from "../../db/schema";
import { recordAudit } from "../../services/tenant/audit-store";
import { loadVisibleOrganization, type AppEnv } from "../auth";
import { NotFoundError, NotImplementedError } from "../errors";
import { iso, maskSecret } from "../presenters";
import { createRouter } from "../router";
import { awsIntegrationSchema, errorResponses, putAwsIntegrationSchema, slugParamsSchema } from "../schemas";
import { awsCredentialContext, type AwsCredentialData } from "../../services/integration/aws-credential-store";
import { connectAws } from "../../services/integration/connect-aws";
import type { BootstrapRoleVerifier } from "../../services/integration/verify-bootstrap-role";
import type { Hono } from "hono";

export interface QuickCreateLinkConfig {
  /** Public https URL of the bootstrap-role CloudFormation template. */
  templateUrl?: string;
  /** The platform principal the bootstrap role trusts. */
  platformPrincipalArn?: string;
}

/**
 * A CloudFormation quick-create link for the bootstrap role. It deliberately carries no external ID
 * (responses never contain it in plaintext); the template takes it as a parameter the customer fills in.
 */
export function quickCreateUrl(org: Organization, link: QuickCreateLinkConfig): string | null {
  if (!link.templateUrl) return null;
  const region = org.integrationSettings.homeRegion ?? "us-east-1";
  const params = new URLSearchParams({ templateURL: link.templateUrl, stackName: `mini-xdr-bootstrap-${org.slug}`, param_TenantSlug: org.slug });
  if (link.platformPrincipalArn) params.set("param_PlatformPrincipalArn", link.platformPrincipalArn);
  return `https://${region}.console.aws.amazon.com/cloudformation/home?region=${region}#/stacks/quickcreate?${params.toString()}`;
}

const security = [{ bearerAuth: [] }];
const awsJson = (description: string) => ({ description, content: { "application/json": { schema: awsIntegrationSchema } } });

const putAwsRoute = createRoute({
  method: "put",
  path: "/{slug}/integrations/aws",
  tags: ["integrations"],
  summary: "Connect (or replace) the tenant's AWS account",
  security,
  request: {
    params: slugParamsSchema,
    body: { content: { "application/json": { schema: putAwsIntegrationSchema } }, required: true },
  },
  responses: { 200: awsJson("replaced"), 201: awsJson("connected"), ...errorResponses },
});

const getAwsRoute = createRoute({
  method: "get",
  path: "/{slug}/integrations/aws",
  tags: ["integrations"],
  summary: "The AWS integration's status",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: awsJson("the integration"), ...errorResponses },
});

const deleteAwsRoute = createRoute({
  method: "delete",
  path: "/{slug}/integrations/aws",
  tags: ["integrations"],
  summary: "Remove the AWS integration's credentials",
  security,
  request: { params: slugParamsSchema },
  responses: { 204: { description: "removed" }, ...errorResponses },
});

function presentAws(org: Organization, row: IntegrationCredential, data: AwsCredentialData, link: QuickCreateLinkConfig) {
  return {
    provider: "aws" as const,
    status: row.status,
    credential_type: row.credentialType,
    bootstrap_role_arn: data.bootstrapRoleArn,
    aws_account_id: data.bootstrapRoleArn.split(":")[4]!,
    external_id_masked: maskSecret(data.externalId),
    cloudformation_quick_create_url: quickCreateUrl(org, link),
    configured_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    last_used_at: iso(row.lastUsedAt),
  };
}

export function integrationsRouter(
  db: DrizzleDatabase,
  keyring: Keyring,
  link: QuickCreateLinkConfig,
  verifyBootstrapRole: BootstrapRoleVerifier,
) {
  const router = createRouter();
  const context = (org: Organization) => awsCredentialContext(org.id);

  router.openapi(putAwsRoute, async (c) => {
    const principal = c.get("principal");
    const org = await loadVisibleOrganization(db, principal, c.req.valid("param").slug);
    const body = c.req.valid("json");
    const { row, data, created, generated } = await connectAws(
      { db, keyring, verifyBootstrapRole },
      principal,
      org,
      { bootstrapRoleArn: body.bootstrap_role_arn, externalId: body.external_id },
    );
    const present = { ...presentAws(org, row, data, link), external_id_generated: generated };
    return created ? c.json(present, 201) : c.json(present, 200);
  });

  router.openapi(getAwsRoute, async (c) => {
    const org = await loadVisibleOrganization(db, c.get("principal"), c.req.valid("param").slug);
    const [row] = await db
      .select()
      .from(integrationCredentials)
      .where(and(eq(integrationCredentials.organizationId, org.id), eq(integrationCredentials.provider, "aws")));
    if (!row) throw new NotFoundError(`tenant ${JSON.stringify(org.slug)} has no AWS integration`);
    // A wrong key fails loudly here (CredentialDecryptionError -> 500), never returns garbage.
    const data = decryptJson<AwsCredentialData>(row.credentialData, context(org), keyring);
    return c.json(presentAws(org, row, data, link), 200);
  });

  router.openapi(deleteAwsRoute, async (c) => {
    const principal = c.get("principal");
    const org = await loadVisibleOrganization(db, principal, c.req.valid("param").slug);
    await db.transaction(async (tx) => {
      const deleted = await tx
        .delete(integrationCredentials)
        .where(and(eq(integrationCredentials.organizationId, org.id), eq(integrationCredentials.provider, "aws")))
        .returning({ id: integrationCredentials.id });
      if (deleted.length === 0) throw new NotFoundError(`tenant ${JSON.stringify(org.slug)} has no AWS integration`);
      await recordAudit(tx, principal, {
        action: "integration.aws.delete",
        organizationId: org.id,
        target: `tenant:${org.slug}/integrations/aws`,
      });
    });
    // Deleting credentials does not destroy the tenant's stack: offboarding does (POST /v1/tenants/{slug}/offboard).
    return c.body(null, 204);
  });

  return router;
}

/** Azure and GCP: any method answers 501 (after the usual tenant visibility check). */
export function unsupportedProviders(db: DrizzleDatabase, app: Hono<AppEnv>): void {
  app.all("/:slug/integrations/:provider", async (c) => {
    const provider = c.req.param("provider");
    if (provider !== "azure" && provider !== "gcp") throw new NotFoundError(`unknown integration provider ${JSON.stringify(provider)}`);
    await loadVisibleOrganization(db, c.get("principal"), c.req.param("slug"));
    throw new NotImplementedError(
      `${provider === "azure" ? "Azure" : "GCP"} integrations are not supported yet; only "aws" is. Connect an AWS account with PUT /v1/tenants/{slug}/integrations/aws.`,
    );
  });
}
