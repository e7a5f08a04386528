/**
 * /v1/tenants/{slug}/integrations/{provider}: AWS set up (bootstrap role ARN + external ID, the
 * latter generated when absent), status, delete; the bootstrap role's quick-create link and the wait for that role.
 * The credential is stored encrypted (AES-256-GCM, db/crypto.ts) and bound to (organization, provider); responses show
 * the external ID only masked, except inside the quick-create link, which must carry it: the external ID is not a
 * secret from the customer (it guards against confused deputies, not against them). Azure and GCP answer 501.
 */
import { createRoute } from "@hono/zod-openapi";
import type { IntegrationCredential } from "../../db/schema";
import type { Services } from "../../services";
import type { AwsCredentialData } from "../../services/integration/aws-credential-store";
import { notSupported } from "../../services/integration/integration-service";
import { iso, maskSecret, presentConnectionCheck } from "../presenters";
import { createRouter } from "../router";
import {
  awsIntegrationSchema,
  bodyErrorResponses,
  bootstrapSchema,
  bootstrapWaitSchema,
  errorResponse,
  errorResponses,
  postErrorResponses,
  putAwsIntegrationSchema,
  slugParamsSchema,
} from "../schemas";

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
    422: errorResponse("the bootstrap role could not be assumed with the external ID (code credentials_rejected), or it is not in the tenant's AWS account (role_not_in_tenant_account)"),
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

function presentAws(row: IntegrationCredential, data: AwsCredentialData) {
  return {
    provider: "aws" as const,
    status: row.status,
    credential_type: row.credentialType,
    bootstrap_role_arn: data.bootstrapRoleArn,
    aws_account_id: data.bootstrapRoleArn.split(":")[4]!,
    external_id_masked: maskSecret(data.externalId),
    connection_check: presentConnectionCheck(row.connectionCheck),
    configured_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
    last_used_at: iso(row.lastUsedAt),
  };
}

const bootstrapRefusals = {
  422: errorResponse("the tenant has no AWS account id yet (code tenant_not_ready), or the Idempotency-Key was used for another request"),
  503: errorResponse("the service offers no quick-create link: BOOTSTRAP_TEMPLATE_BUCKET and PLATFORM_PRINCIPAL_ARN are not set"),
};

const bootstrapRoute = createRoute({
  method: "get",
  path: "/{slug}/integrations/aws/bootstrap",
  tags: ["integrations"],
  summary: "The CloudFormation quick-create link that creates the tenant's bootstrap role, and the wait for that role",
  security,
  request: { params: slugParamsSchema },
  responses: {
    200: { description: "the link", content: { "application/json": { schema: bootstrapSchema } } },
    ...errorResponses,
    ...bootstrapRefusals,
  },
});

const bootstrapWaitRoute = createRoute({
  method: "post",
  path: "/{slug}/integrations/aws/bootstrap/wait",
  tags: ["integrations"],
  summary: "Wait for the bootstrap role: AssumeRole is tried with backoff until it answers (then AWS is connected) or time runs out",
  security,
  request: { params: slugParamsSchema },
  responses: {
    202: { description: "waiting (or connected already)", content: { "application/json": { schema: bootstrapWaitSchema } } },
    ...errorResponses,
    ...postErrorResponses,
    ...bootstrapRefusals,
  },
});

export function integrationsRouter({ integrations }: Pick<Services, "integrations">) {
  const router = createRouter();

  router.openapi(putAwsRoute, async (c) => {
    const org = await c.var.tenant();
    const body = c.req.valid("json");
    const { row, data, created, generated } = await integrations.connectAws(c.get("principal"), org, {
      bootstrapRoleArn: body.bootstrap_role_arn,
      externalId: body.external_id,
    });
    const present = { ...presentAws(row, data), external_id_generated: generated };
    return created ? c.json(present, 201) : c.json(present, 200);
  });

  router.openapi(getAwsRoute, async (c) => {
    const { row, data } = await integrations.getAws(await c.var.tenant());
    return c.json(presentAws(row, data), 200);
  });

  router.openapi(bootstrapRoute, async (c) => {
    const view = await integrations.bootstrap(await c.var.tenant());
    return c.json(
      {
        quick_create_url: view.link.quickCreateUrl,
        template_url: view.link.templateUrl,
        template_version: view.link.templateVersion,
        stack_name: view.link.stackName,
        region: view.link.region,
        role_arn: view.roleArn,
        wait: presentConnectionCheck(view.wait),
      },
      200,
    );
  });

  router.openapi(bootstrapWaitRoute, async (c) => {
    const check = await integrations.waitForBootstrapRole(c.get("principal"), await c.var.tenant());
    return c.json({ wait: presentConnectionCheck(check) }, 202);
  });

  router.openapi(deleteAwsRoute, async (c) => {
    // Deleting credentials does not destroy the tenant's stack: offboarding does (POST /v1/tenants/{slug}/offboard).
    await integrations.remove(c.get("principal"), await c.var.tenant(), "aws");
    return c.body(null, 204);
  });

  return router;
}

/** Azure and GCP: the AWS routes' methods answer 501 (after the usual tenant visibility check). */
export function unsupportedProvidersRouter() {
  const router = createRouter();
  for (const provider of ["azure", "gcp"] as const) {
    for (const method of ["put", "get", "delete"] as const) {
      router.openapi(
        createRoute({
          method,
          path: `/{slug}/integrations/${provider}`,
          operationId: `${method}${provider === "azure" ? "Azure" : "Gcp"}Integration`,
          tags: ["integrations"],
          summary: `${provider === "azure" ? "Azure" : "GCP"} integrations are not supported yet (501)`,
          security,
          request: { params: slugParamsSchema },
          responses: { ...errorResponses, 501: errorResponse("not supported yet: only aws is (code not_implemented)") },
        }),
        async (c) => {
          await c.var.tenant();
          throw notSupported(provider);
        },
      );
    }
  }
  return router;
}
