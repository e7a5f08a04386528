/**
 * The API's wire shapes (snake_case JSON), as zod schemas that both validate requests and feed
 * the OpenAPI document. Field rules come from programs/tenant/config.ts, so what the API accepts
 * is what the tenant program accepts.
 *
 * Schemas imported from there are plain zod (no `.openapi()` at runtime): do not call `.openapi()`
 * on them or on schemas derived from them.
 */
import { z } from "@hono/zod-openapi";
import { API_TOKEN_ORIGINS, API_TOKEN_SCOPES, CONNECTION_CHECK_STATUSES, ONBOARDING_FLOW_VERSIONS } from "../db/schema";
import { displayNameSchema } from "../lib/display-name";
import { useReadableZodMessages } from "../lib/zod-messages";
import { json } from "./openapi-route-parts";
import { BOOTSTRAP_ROLE_ARN_PATTERN } from "../services/integration/bootstrap-role-rules-fns";
import { CLUSTER_ROLLOUT_STATUSES } from "../services/core/cluster-scope-fns";
import {
  awsRegionListSchema,
  awsRegionSchema,
  exclusionTagSchema,
  httpsUrlSchema,
  maxConcurrencySchema,
  maxErrorsSchema,
  TARGETING_MODES,
  tenantSlugSchema,
} from "../programs/tenant/config";

// Type errors say what was expected and what came ("must be a string, got number"), not "is required".
useReadableZodMessages();

export { awsRegionSchema };
export const awsAccountIdSchema = z.string().regex(/^[0-9]{12}$/, "must be a 12-digit AWS account id");

export const slugParamsSchema = z.object({
  slug: tenantSlugSchema,
});

const targetTagSchema = z.strictObject({
  key: z.string().min(1, "must not be empty").max(128),
  value: z.string().max(256),
});

const exclusionTagInputSchema = z.strictObject({
  key: exclusionTagSchema.shape.key,
  value: exclusionTagSchema.shape.value,
});
const targetingModeSchema = z.enum(TARGETING_MODES, { message: "must be all_managed or tag" });

export const integrationSettingsInputSchema = z.strictObject({
  agent_public_base_url: httpsUrlSchema.optional(),
  regions: awsRegionListSchema.optional(),
  home_region: awsRegionSchema.optional(),
  aws_account_id: awsAccountIdSchema.optional(),
  targeting_mode: targetingModeSchema.optional(),
  target_tag: targetTagSchema.optional(),
  exclusion_tag: exclusionTagInputSchema.optional(),
  target_all_managed_instances: z.boolean().optional(),
  association_max_concurrency: maxConcurrencySchema.optional(),
  association_max_errors: maxErrorsSchema.optional(),
  enable_default_host_management: z.boolean().optional(),
  require_approval: z.boolean().optional(),
  auto_remediate: z.boolean().optional(),
});

/** PATCH: every setting optional; null removes it. */
export const integrationSettingsPatchSchema = z.strictObject({
  agent_public_base_url: httpsUrlSchema.nullable().optional(),
  regions: awsRegionListSchema.nullable().optional(),
  home_region: awsRegionSchema.nullable().optional(),
  aws_account_id: awsAccountIdSchema.nullable().optional(),
  targeting_mode: targetingModeSchema.nullable().optional(),
  target_tag: targetTagSchema.nullable().optional(),
  exclusion_tag: exclusionTagInputSchema.nullable().optional(),
  target_all_managed_instances: z.boolean().nullable().optional(),
  association_max_concurrency: maxConcurrencySchema.nullable().optional(),
  association_max_errors: maxErrorsSchema.nullable().optional(),
  enable_default_host_management: z.boolean().nullable().optional(),
  require_approval: z.boolean().nullable().optional(),
  auto_remediate: z.boolean().nullable().optional(),
});

export const createTenantSchema = z
  .strictObject({
    slug: tenantSlugSchema,
    name: displayNameSchema(200),
    onboarding_flow_version: z.enum(ONBOARDING_FLOW_VERSIONS).default("quick_start"),
    auto_discovery_enabled: z.boolean().default(true),
    integration_settings: integrationSettingsInputSchema.default({}),
  })
  .openapi("CreateTenant");

export const patchTenantSchema = z
  .strictObject({
    name: displayNameSchema(200).optional(),
    onboarding_flow_version: z.enum(ONBOARDING_FLOW_VERSIONS).optional(),
    auto_discovery_enabled: z.boolean().optional(),
    integration_settings: integrationSettingsPatchSchema.optional(),
  })
  .openapi("PatchTenant");

export const integrationSettingsSchema = z
  .object({
    agent_public_base_url: z.string().optional(),
    regions: z.array(z.string()).optional(),
    home_region: z.string().optional(),
    aws_account_id: z.string().optional(),
    targeting_mode: z.enum(TARGETING_MODES).optional(),
    target_tag: z.object({ key: z.string(), value: z.string() }).optional(),
    exclusion_tag: z.object({ key: z.string(), value: z.string() }).optional(),
    target_all_managed_instances: z.boolean().optional(),
    association_max_concurrency: z.string().optional(),
    association_max_errors: z.string().optional(),
    enable_default_host_management: z.boolean().optional(),
    require_approval: z.boolean().optional(),
    auto_remediate: z.boolean().optional(),
  })
  .openapi("IntegrationSettings");

export const driftSchema = z
  .object({
    status: z.enum(["drifted", "in_sync", "not_checked"]),
    run_id: z.string().nullable(),
    checked_at: z.string().nullable(),
    resources: z.array(z.object({ urn: z.string(), type: z.string(), op: z.string(), properties: z.array(z.string()) })),
    remediation_run_id: z.string().nullable(),
  })
  .openapi("Drift");

/** The rollout the next up applies, defaults included (the settings above show only what was set). */
export const effectiveRolloutSchema = z
  .object({
    targeting_mode: z.enum(TARGETING_MODES),
    target_tag: z.object({ key: z.string(), value: z.string() }),
    exclusion_tag: z.object({ key: z.string(), value: z.string() }),
    description: z.string(),
    regions: z.array(z.string()),
    association_max_concurrency: z.string(),
    association_max_errors: z.string(),
    enable_default_host_management: z.boolean(),
  })
  .openapi("EffectiveRollout");

export const tenantSchema = z
  .object({
    slug: z.string(),
    name: z.string(),
    onboarding_flow_version: z.enum(ONBOARDING_FLOW_VERSIONS),
    auto_discovery_enabled: z.boolean(),
    onboarding_status: z.string(),
    /** With onboarding_status action_required: what a person has to do. */
    action_required: z.array(z.object({ reason: z.string(), fix: z.string() })),
    /** The last drift check: drifted (with the resources and properties), in_sync, or not_checked. */
    drift: driftSchema,
    integration_settings: integrationSettingsSchema,
    effective_rollout: effectiveRolloutSchema,
    created_at: z.string(),
    updated_at: z.string(),
    offboarded_at: z.string().nullable(),
  })
  .openapi("Tenant");

export const tenantListSchema = z.object({ tenants: z.array(tenantSchema) }).openapi("TenantList");

/**
 * An integer query parameter: only a decimal integer string is read as a number (zod's coercion would also take "",
 * "1.0", "0x10" or " 7", which the document's `type: integer` does not allow), and the document states the type and
 * bounds exactly (an optional coerced number would come out as integer-or-null).
 */
export function integerQuery(min: number, max: number) {
  return z.preprocess(
    (value) => (typeof value === "string" && /^-?[0-9]{1,16}$/.test(value) ? Number(value) : value),
    z
      // Only the type's own message: the bounds keep theirs (lib/zod-messages.ts).
      .number({ error: (issue) => (issue.code !== "invalid_type" ? undefined : issue.input === undefined ? "is required" : "must be an integer") })
      .int("must be an integer")
      .min(min)
      .max(max),
  );
}

export const listTenantsQuerySchema = z.object({
  limit: integerQuery(1, 500).default(100),
  offset: integerQuery(0, 1_000_000).default(0),
});

/**
 * The role a tenant hands the platform: our bootstrap role by name (`MiniXdrBootstrap`, or with the tenant's slug as
 * suffix), under any path. The service also checks what a pattern cannot: the suffix is the tenant's own slug, the
 * account is the tenant's and not the platform's (services/integration/bootstrap-role-rules-fns.ts).
 */
export const bootstrapRoleArnSchema = z
  .string()
  .regex(
    new RegExp(BOOTSTRAP_ROLE_ARN_PATTERN),
    "must be the ARN of the Mini-XDR bootstrap role: arn:aws:iam::<account>:role/[<path>/]MiniXdrBootstrap[-<tenant slug>]",
  );

export const putAwsIntegrationSchema = z
  .strictObject({
    /** Our bootstrap role (`MiniXdrBootstrap` or `MiniXdrBootstrap-<slug>`, any path) in the tenant's own account. */
    bootstrap_role_arn: bootstrapRoleArnSchema,
    /** Never sent: the service generates the tenant's external ID (GET .../integrations/aws/external-id). */
    external_id: z
      .unknown()
      .refine((value) => value === undefined, {
        error:
          "is generated by the service and cannot be chosen: read the tenant's external ID from GET /v1/tenants/{slug}/integrations/aws/external-id and leave this field out",
      })
      .optional()
      .openapi({ not: {}, description: "never sent: the service generates the tenant's external ID" }),
  })
  .openapi("PutAwsIntegration");

export const tenantExternalIdSchema = z
  .object({
    /** Goes into the bootstrap role's trust policy as the `sts:ExternalId` condition (the quick-create link prefills it). */
    external_id: z.string(),
    /** The role name the bootstrap template creates. */
    bootstrap_role_name: z.string(),
    aws_account_id: z.string().nullable(),
    /** The principal the trust policy must name (null when the service has none configured). */
    trusted_principal_arn: z.string().nullable(),
  })
  .openapi("TenantExternalId");

export const awsIntegrationSchema = z
  .object({
    provider: z.literal("aws"),
    status: z.string(),
    credential_type: z.string(),
    bootstrap_role_arn: z.string(),
    aws_account_id: z.string(),
    /** Only the last 4 characters; the external ID itself is never returned. */
    external_id_masked: z.string().openapi({ example: "****abcd" }),
    external_id_generated: z.boolean().optional(),
    connection_check: z.lazy(() => connectionCheckSchema),
    configured_at: z.string(),
    updated_at: z.string(),
    last_used_at: z.string().nullable(),
  })
  .openapi("AwsIntegration");

export const connectionCheckSchema = z
  .object({
    status: z.enum(["not_started", ...CONNECTION_CHECK_STATUSES]),
    attempts: z.number().int(),
    started_at: z.string().nullable(),
    deadline: z.string().nullable(),
    last_checked_at: z.string().nullable(),
    /** Why the last AssumeRole was refused (STS's words). */
    last_error: z.string().nullable(),
  })
  .openapi("BootstrapWait");

export const bootstrapSchema = z
  .object({
    /** Opens the AWS console's quick-create page with everything prefilled (the external ID included). */
    quick_create_url: z.string(),
    template_url: z.string(),
    template_version: z.string(),
    stack_name: z.string(),
    region: z.string(),
    /** The role the stack creates, which the service then assumes. */
    role_arn: z.string(),
    wait: connectionCheckSchema,
  })
  .openapi("AwsBootstrap");

export const bootstrapWaitSchema = z.object({ wait: connectionCheckSchema }).openapi("AwsBootstrapWait");

/** The longest lifetime a token may be given (two years); without expires_in a token does not expire. */
export const MAX_TOKEN_LIFETIME_SECONDS = 2 * 365 * 24 * 3600;

export const createTokenSchema = z
  .strictObject({
    name: displayNameSchema(100),
    /** Seconds from now after which the token is refused; absent: it does not expire. */
    expires_in: z
      .number()
      .int("must be an integer (seconds)")
      .min(1, "must be at least 1 (seconds)")
      .max(MAX_TOKEN_LIFETIME_SECONDS, `must be at most ${MAX_TOKEN_LIFETIME_SECONDS} (two years, in seconds)`)
      .optional(),
  })
  .openapi("CreateToken");

const tokenMetadataFields = {
  id: z.number().int(),
  name: z.string(),
  scope: z.enum(API_TOKEN_SCOPES),
  /** The tenant's slug for a tenant token; null for a platform-admin token. */
  tenant: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
};

export const createdTokenSchema = z
  .object({
    ...tokenMetadataFields,
    /** Shown once; only its hash is stored. */
    token: z.string(),
  })
  .openapi("CreatedToken");

/** What is kept of a token: never the token, nor its hash. */
export const tokenMetadataSchema = z
  .object({
    ...tokenMetadataFields,
    origin: z.enum(API_TOKEN_ORIGINS),
    status: z.enum(["active", "revoked", "expired"]),
    /** Refreshed at most once a minute. */
    last_used_at: z.string().nullable(),
    revoked_at: z.string().nullable(),
  })
  .openapi("TokenMetadata");

/** A stack operation's or a scan's failure: the message, its kind, and the engine's diagnostics. */
export const runErrorSchema = z
  .object({
    message: z.string(),
    kind: z.string().optional(),
    diagnostics: z.array(z.object({ severity: z.string(), message: z.string(), urn: z.string().optional() })).optional(),
  })
  .openapi("RunError");

export const resourceChangeSchema = z
  .object({
    urn: z.string(),
    type: z.string(),
    op: z.string(),
    diffs: z.array(z.string()).optional(),
    detailedDiff: z.record(z.string(), z.object({ kind: z.string(), inputDiff: z.boolean().optional() })).optional(),
  })
  .openapi("ResourceChange");

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      fields: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    }),
  })
  .openapi("Error");

const errorJson = (description: string) => json(errorSchema, description);

/** 429: a limit was reached; Retry-After (whole seconds) says when to try again. */
export const rateLimitedResponse = (description: string) => ({
  ...errorJson(`${description}; Retry-After says in how many seconds to try again`),
  headers: z.object({
    "Retry-After": z
      .string()
      .regex(/^[1-9]\d*$/)
      .openapi({ description: "seconds to wait before trying again", example: "30" }),
  }),
});

/** What every authenticated route may answer. */
export const errorResponses = {
  400: errorJson("invalid input: `fields` names each bad field once, with what was expected and what came"),
  401: errorJson("missing or invalid token"),
  403: errorJson("the token's scope does not allow this"),
  404: errorJson("unknown tenant (or another tenant's), or nothing there"),
  413: errorJson("body too large (the connection is closed after the answer)"),
  429: rateLimitedResponse(
    "too many failed authentications from this address (code too_many_auth_failures), or a per-tenant cap reached: queued runs (queued_run_limit), open event streams (event_stream_limit)",
  ),
} as const;

/** Routes that take a JSON body: a missing or empty body is a 400; another media type a 415. */
export const bodyErrorResponses = {
  415: errorJson("the body is not application/json"),
} as const;

/** POSTs: the Idempotency-Key header may answer 409 (the same key still in progress) and 422 (reused for another request). */
export const postErrorResponses = {
  409: errorJson("conflicts with the current state, or a request with this Idempotency-Key is still in progress (`code` says which)"),
  422: errorJson(
    "well-formed but cannot be carried out as it stands, or the Idempotency-Key was used for another request (`code` and `fields` say why)",
  ),
} as const;

export const errorResponse = errorJson;

/** One of a tenant's AWS accounts, as the accounts, coverage and progress answers name it. */
export const accountRefSchema = z.object({
  account_id: z.string(),
  name: z.string().nullable(),
  source: z.enum(["home", "organization"]),
  status: z.string(),
});

/** An EKS cluster's agent rollout (services/core/cluster-scope-fns.ts), in the deployment and the progress answers. */
export const clusterRolloutSchema = z
  .object({
    aws_account_id: z.string().nullable(),
    region: z.string(),
    name: z.string(),
    arn: z.string(),
    status: z
      .enum(CLUSTER_ROLLOUT_STATUSES)
      .describe(
        "protected: the agent DaemonSet is ready on every node; deploying: not yet on all; up_pending: the next up deploys it; " +
          "excluded: by tag or region; action_required: the owner must change the cluster (reason, fix); pending: not ACTIVE yet",
      ),
    reason: z.string().nullable(),
    fix: z.string().nullable(),
    desired: z.number().int().nullable().describe("nodes the agent DaemonSet should run on, as the last up left it"),
    ready: z.number().int().nullable().describe("nodes on which the agent's pod was ready"),
  })
  .openapi("ClusterRollout");
