/**
 * /v1/tenants/{slug}/integrations/{provider}: AWS set up (bootstrap role ARN + external ID, the
 * latter generated when absent), status, delete. The credential is stored encrypted
 * (AES-256-GCM, db/crypto.ts) and bound to (organization, provider); responses show the external
 * ID only masked. Azure and GCP answer 501.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { IntegrationCredential, Organization } from "../../db/schema";
import type { Services } from "../../services";
import type { AwsCredentialData } from "../../services/integration/aws-credential-store";
import { notSupported } from "../../services/integration/integration-service";
import { iso, maskSecret } from "../presenters";
import { createRouter } from "../router";
import {
  awsIntegrationSchema,
  bodyErrorResponses,
  errorResponse,
  errorResponses,
  putAwsIntegrationSchema,
  slugParamsSchema,
} from "../schemas";

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
  operationId: "connectAws",
  tags: ["integrations"],
  summary: "Connect (or replace) the tenant's AWS account",
  security,
  request: {
    params: slugParamsSchema,
    body: { content: { "application/json": { schema: putAwsIntegrationSchema } }, required: true },
  },
  responses: {
    200: awsJson("replaced"),
    201: awsJson("connected"),
    ...errorResponses,
    ...bodyErrorResponses,
    422: errorResponse("the bootstrap role could not be assumed with the external ID (code credentials_rejected)"),
  },
});

const getAwsRoute = createRoute({
  method: "get",
  path: "/{slug}/integrations/aws",
  operationId: "getAwsIntegration",
  tags: ["integrations"],
  summary: "The AWS integration's status",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: awsJson("the integration"), ...errorResponses },
});

const deleteAwsRoute = createRoute({
  method: "delete",
  path: "/{slug}/integrations/aws",
  operationId: "deleteAwsIntegration",
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

export function integrationsRouter({ integrations }: Pick<Services, "integrations">, link: QuickCreateLinkConfig) {
  const router = createRouter();

  router.openapi(putAwsRoute, async (c) => {
    const org = await c.var.tenant();
    const body = c.req.valid("json");
    const { row, data, created, generated } = await integrations.connectAws(c.get("principal"), org, {
      bootstrapRoleArn: body.bootstrap_role_arn,
      externalId: body.external_id,
    });
    const present = { ...presentAws(org, row, data, link), external_id_generated: generated };
    return created ? c.json(present, 201) : c.json(present, 200);
  });

  router.openapi(getAwsRoute, async (c) => {
    const org = await c.var.tenant();
    const { row, data } = await integrations.getAws(org);
    return c.json(presentAws(org, row, data, link), 200);
  });

  router.openapi(deleteAwsRoute, async (c) => {
    // Deleting credentials does not destroy the tenant's stack: offboarding does (POST /v1/tenants/{slug}/offboard).
    await integrations.remove(c.get("principal"), await c.var.tenant(), "aws");
    return c.body(null, 204);
  });

  return router;
}

const unsupportedParams = slugParamsSchema.extend({ provider: z.enum(["azure", "gcp"]) });

/** Azure and GCP: the AWS routes' methods answer 501 (after the usual tenant visibility check). */
export function unsupportedProvidersRouter() {
  const router = createRouter();
  for (const method of ["put", "get", "delete"] as const) {
    router.openapi(
      createRoute({
        method,
        path: "/{slug}/integrations/{provider}",
        operationId: `${method}UnsupportedIntegration`,
        tags: ["integrations"],
        summary: "Azure and GCP integrations are not supported yet (501)",
        security,
        request: { params: unsupportedParams },
        responses: { ...errorResponses, 501: errorResponse("not supported yet: only aws is (code not_implemented)") },
      }),
      async (c) => {
        await c.var.tenant();
        throw notSupported(c.req.valid("param").provider);
      },
    );
  }
  return router;
}
