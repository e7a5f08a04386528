/**
 * A tenant's AWS Organization and its accounts: the organization quick-create link, connecting the organization
 * (the reader role), a reconcile on demand, the accounts with their status and reasons, and the operator's retry,
 * exclude and per-account runs.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ONBOARDING_STATUSES, RUN_KINDS, type TenantAwsAccount } from "../../db/schema";
import type { Services } from "../../services";
import type { ReconcileOutcome, TenantAccounts } from "../../services/organization/organization-service";
import { COVERAGE_CELL_STATUSES, type CoverageMatrix } from "../../services/organization/coverage-fns";
import { OU_ID_PATTERN } from "../../services/integration/organization-template-fns";
import { iso } from "../presenters";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import {
  accountRefSchema,
  awsAccountIdSchema,
  awsRegionSchema,
  bodyErrorResponses,
  errorResponse,
  errorResponses,
  postErrorResponses,
  slugParamsSchema,
} from "../schemas";

const ouIdSchema = z.string().regex(new RegExp(OU_ID_PATTERN), "must be a root id (r-...) or an OU id (ou-...-...)");
const OU_ID = OU_ID_PATTERN.slice(1, -1);
/** The same ids, comma-separated in a query string, at most 100 (the pattern says it, so the contract does). */
const OU_LIST_PATTERN = new RegExp(`^${OU_ID}(,${OU_ID}){0,99}$`);
/** Per-tenant caps on what a tenant sends: lists stay small, counts stay sane. */
const ouListSchema = z.array(ouIdSchema).max(100, "must name at most 100 OUs");

const linkQuerySchema = z.object({
  /** Comma-separated root or OU ids to prefill; absent: the customer enters its root id on the page. */
  target_ous: z
    .string()
    .regex(OU_LIST_PATTERN, "must be root or OU ids separated by commas (at most 100)")
    .optional()
    .transform((value) => (value ? value.split(",") : [])),
  include_management_account: z
    .enum(["true", "false"], { error: "must be true or false" })
    .optional()
    .transform((value) => value === "true"),
  region: awsRegionSchema.optional(),
});

const organizationLinkSchema = z
  .object({
    quick_create_url: z.string(),
    template_url: z.string(),
    template_version: z.string(),
    stack_name: z.string(),
    stack_set_name: z.string(),
    reader_role_name: z.string(),
    region: z.string(),
  })
  .openapi("AwsOrganizationLink");

const connectSchema = z
  .strictObject({
    /** Where the organization stack (and its reader role) was created: the management account or a delegated administrator. */
    management_account_id: awsAccountIdSchema,
    target_ous: ouListSchema.optional(),
    exclude_ous: ouListSchema.optional(),
    exclude_accounts: z.array(awsAccountIdSchema).max(1000, "must name at most 1000 accounts").optional(),
    include_management_account: z.boolean().optional(),
    max_concurrent_accounts: z.number().int("must be an integer").min(1).max(50).optional(),
    max_failed_accounts: z.number().int("must be an integer").min(1).max(1000).optional(),
  })
  .openapi("ConnectAwsOrganization");

const listingSchema = z.object({
  status: z.enum(["complete", "failed"]),
  started_at: z.string(),
  finished_at: z.string(),
  accounts: z.number().int().nullable(),
  in_scope: z.number().int().nullable(),
  error: z.string().nullable(),
});

const reconcileSchema = z
  .object({
    listing: listingSchema,
    registered: z.array(z.string()),
    offboarding: z.array(z.string()),
    started: z.array(z.string()),
  })
  .openapi("AwsOrganizationReconcile");

const statusReasonSchema = z.object({ reason: z.string(), fix: z.string() });

const accountSchema = z
  .object({
    account_id: z.string(),
    name: z.string().nullable(),
    source: z.enum(["home", "organization"]),
    ou_path: z.array(z.string()),
    stack_name: z.string(),
    status: z.enum(ONBOARDING_STATUSES),
    status_reasons: z.array(statusReasonSchema),
    out_of_scope_reason: z.string().nullable(),
    listings_out_of_scope: z.number().int(),
    last_run: z.object({ id: z.string(), kind: z.enum(RUN_KINDS), status: z.string() }).nullable(),
    offboarded_at: z.string().nullable(),
  })
  .openapi("TenantAwsAccount");

const accountsSchema = z
  .object({
    /** Over every account: what the tenant shows for all of them. */
    status: z.enum(ONBOARDING_STATUSES),
    total: z.number().int(),
    by_status: z.record(z.string(), z.number().int()),
    needs_action: z.array(z.object({ account_id: z.string(), status: z.enum(ONBOARDING_STATUSES), reasons: z.array(statusReasonSchema) })),
    starts_stopped: z.string().nullable(),
    organization: z
      .object({
        management_account_id: z.string(),
        reader_role_arn: z.string(),
        target_ous: z.array(z.string()),
        exclude_ous: z.array(z.string()),
        exclude_accounts: z.array(z.string()),
        include_management_account: z.boolean(),
        max_concurrent_accounts: z.number().int(),
        max_failed_accounts: z.number().int(),
        last_listing: listingSchema.nullable(),
      })
      .nullable(),
    accounts: z.array(accountSchema),
  })
  .openapi("TenantAwsAccounts");

const accountParamsSchema = slugParamsSchema.extend({ account_id: awsAccountIdSchema });

const accountRunSchema = z
  .strictObject({
    kind: z.enum(["preview", "up", "refresh"], { error: 'must be one of "preview", "up", "refresh"' }),
    /** With approval required: the approved preview of this account's stack whose saved plan the up applies. */
    plan_run_id: z.string().guid("must be a run id (uuid)").optional(),
  })
  .openapi("AccountRun");

const linkRoute = createRoute({
  method: "get",
  path: "/{slug}/integrations/aws/organization/link",
  operationId: "getAwsOrganizationLink",
  tags: ["integrations"],
  summary: "The quick-create link that connects a whole AWS Organization (reader role, StackSet, the management account opted in)",
  security,
  request: { params: slugParamsSchema, query: linkQuerySchema },
  responses: {
    200: json(organizationLinkSchema, "the link"),
    ...errorResponses,
    503: errorResponse("the service offers no quick-create link: BOOTSTRAP_TEMPLATE_BUCKET and PLATFORM_PRINCIPAL_ARN are not set"),
  },
});

const connectRoute = createRoute({
  method: "put",
  path: "/{slug}/integrations/aws/organization",
  operationId: "connectAwsOrganization",
  tags: ["integrations"],
  summary: "Connect (or change) the tenant's AWS Organization: the reader role is checked, then the organization is listed and reconciled",
  security,
  request: { params: slugParamsSchema, body: { content: { "application/json": { schema: connectSchema } }, required: true } },
  responses: {
    200: json(reconcileSchema, "connected: the first listing's outcome"),
    202: json(reconcileSchema, "waiting: the reader role does not answer yet (the stack is being created); each reconcile tries again"),
    ...errorResponses,
    ...bodyErrorResponses,
    409: errorResponse("the tenant is offboarded or being offboarded"),
    422: errorResponse(
      "the reader role answers without the tenant's external ID (code external_id_not_required), or the account is the platform's (platform_account)",
    ),
    502: errorResponse("AWS STS could not check the reader role just now (code sts_unavailable)"),
  },
});

const reconcileRoute = createRoute({
  method: "post",
  path: "/{slug}/integrations/aws/organization/reconcile",
  operationId: "reconcileAwsOrganization",
  tags: ["integrations"],
  summary: "List the organization now and onboard or offboard what changed (a failed listing changes nothing; a tenant token at most every 10 s)",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: json(reconcileSchema, "the listing's outcome"), ...errorResponses, ...postErrorResponses },
});

const accountsRoute = createRoute({
  method: "get",
  path: "/{slug}/accounts",
  operationId: "listTenantAccounts",
  tags: ["accounts"],
  summary: "The tenant's AWS accounts, each with its status and reasons, and their sum",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: json(accountsSchema, "the accounts"), ...errorResponses },
});

const countsSchema = z.object({
  discovered: z.number().int(),
  managed: z.number().int(),
  installed: z.number().int(),
  failed: z.number().int(),
  unmanaged: z.number().int(),
});

const coverageSchema = z
  .object({
    regions: z.array(z.string()),
    totals: countsSchema.extend({ accounts: z.number().int(), covered_cells: z.number().int(), cells: z.number().int() }),
    accounts: z.array(
      accountRefSchema.extend({
        totals: countsSchema,
        cells: z.array(
          z.object({
            region: z.string(),
            status: z.enum(COVERAGE_CELL_STATUSES),
            ssm: z.object({ parameter: z.boolean(), document: z.boolean(), association: z.boolean() }),
            instances: countsSchema,
            reason: z.string().nullable(),
            fix: z.string().nullable(),
            access_denied: z.object({ action: z.string().nullable(), cause: z.string(), aws_says: z.string() }).nullable(),
          }),
        ),
      }),
    ),
  })
  .openapi("CoverageMatrix");

const coverageRoute = createRoute({
  method: "get",
  path: "/{slug}/coverage",
  operationId: "getTenantCoverage",
  tags: ["accounts"],
  summary: "The coverage matrix, account x region: the agent's SSM pieces, instances discovered, managed and installed, or why a cell is empty",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: json(coverageSchema, "the coverage matrix"), ...errorResponses },
});

function presentCoverage(matrix: CoverageMatrix) {
  return {
    regions: matrix.regions,
    totals: {
      discovered: matrix.totals.discovered,
      managed: matrix.totals.managed,
      installed: matrix.totals.installed,
      failed: matrix.totals.failed,
      unmanaged: matrix.totals.unmanaged,
      accounts: matrix.totals.accounts,
      covered_cells: matrix.totals.coveredCells,
      cells: matrix.totals.cells,
    },
    accounts: matrix.accounts.map((row) => ({
      account_id: row.accountId,
      name: row.name,
      source: row.source,
      status: row.status,
      totals: row.totals,
      cells: row.cells.map((cell) => ({
        region: cell.region,
        status: cell.status,
        ssm: cell.ssm,
        instances: cell.instances,
        reason: cell.reason,
        fix: cell.fix,
        access_denied: cell.accessDenied
          ? { action: cell.accessDenied.action, cause: cell.accessDenied.cause, aws_says: cell.accessDenied.awsSays }
          : null,
      })),
    })),
  };
}

const accountActionRoute = (action: "retry" | "exclude", summary: string) =>
  createRoute({
    method: "post",
    path: `/{slug}/accounts/{account_id}/${action}`,
    operationId: `${action}TenantAccount`,
    tags: ["accounts"],
    summary,
    security,
    request: { params: accountParamsSchema },
    responses: { 200: json(accountSchema, "the account"), ...errorResponses, ...postErrorResponses },
  });

const accountRunRoute = createRoute({
  method: "post",
  path: "/{slug}/accounts/{account_id}/runs",
  operationId: "requestAccountRun",
  tags: ["accounts"],
  summary: "Request a run on one organization account's stack (platform admin): an approved plan's up, a preview, a refresh",
  security,
  request: { params: accountParamsSchema, body: { content: { "application/json": { schema: accountRunSchema } }, required: true } },
  responses: {
    202: json(z.object({ run_id: z.string(), kind: z.enum(RUN_KINDS), status: z.literal("queued"), stack_name: z.string() }), "queued"),
    ...errorResponses,
    ...bodyErrorResponses,
    ...postErrorResponses,
  },
});

function presentListing(listing: ReconcileOutcome["listing"]) {
  return {
    status: listing.status,
    started_at: listing.startedAt,
    finished_at: listing.finishedAt,
    accounts: listing.accounts ?? null,
    in_scope: listing.inScope ?? null,
    error: listing.error ?? null,
  };
}

function presentReconcile(outcome: ReconcileOutcome) {
  return { listing: presentListing(outcome.listing), registered: outcome.registered, offboarding: outcome.offboarding, started: outcome.started };
}

function presentAccount(account: TenantAwsAccount & { lastRun?: { id: string; kind: (typeof RUN_KINDS)[number]; status: string } }) {
  return {
    account_id: account.accountId,
    name: account.name,
    source: account.source,
    ou_path: account.ouPath,
    stack_name: account.stackName,
    status: account.status,
    status_reasons: account.statusReasons ?? [],
    out_of_scope_reason: account.outOfScopeReason,
    listings_out_of_scope: account.listingsOutOfScope,
    last_run: account.lastRun ?? null,
    offboarded_at: iso(account.offboardedAt),
  };
}

function presentAccounts(view: TenantAccounts) {
  const connection = view.organization;
  return {
    status: view.summary.status,
    total: view.summary.total,
    by_status: view.summary.byStatus as Record<string, number>,
    needs_action: view.summary.needsAction.map((entry) => ({ account_id: entry.accountId, status: entry.status, reasons: entry.reasons })),
    starts_stopped: view.startsStopped ?? null,
    organization: connection
      ? {
          management_account_id: connection.managementAccountId,
          reader_role_arn: connection.readerRoleArn,
          target_ous: connection.scopeRules.targetOus,
          exclude_ous: connection.scopeRules.excludeOus,
          exclude_accounts: connection.scopeRules.excludeAccounts,
          include_management_account: connection.scopeRules.includeManagementAccount,
          max_concurrent_accounts: connection.maxConcurrentAccounts,
          max_failed_accounts: connection.maxFailedAccounts,
          last_listing: connection.lastListing ? presentListing(connection.lastListing) : null,
        }
      : null,
    accounts: view.accounts.map(presentAccount),
  };
}

export function organizationRouter({ integrations, organizations }: Pick<Services, "integrations" | "organizations">) {
  const router = createRouter();

  router.openapi(linkRoute, async (c) => {
    const query = c.req.valid("query");
    const link = await integrations.organizationLink(await c.var.tenant(), {
      targetOus: query.target_ous,
      includeManagementAccount: query.include_management_account,
      region: query.region,
    });
    return c.json(
      {
        quick_create_url: link.quickCreateUrl,
        template_url: link.templateUrl,
        template_version: link.templateVersion,
        stack_name: link.stackName,
        stack_set_name: link.stackSetName,
        reader_role_name: link.readerRoleName,
        region: link.region,
      },
      200,
    );
  });

  router.openapi(connectRoute, async (c) => {
    const body = c.req.valid("json");
    const outcome = await organizations.connect(c.get("principal"), await c.var.tenant(), {
      managementAccountId: body.management_account_id,
      scope: {
        ...(body.target_ous ? { targetOus: body.target_ous } : {}),
        ...(body.exclude_ous ? { excludeOus: body.exclude_ous } : {}),
        ...(body.exclude_accounts ? { excludeAccounts: body.exclude_accounts } : {}),
        ...(body.include_management_account !== undefined ? { includeManagementAccount: body.include_management_account } : {}),
      },
      maxConcurrentAccounts: body.max_concurrent_accounts,
      maxFailedAccounts: body.max_failed_accounts,
    });
    return outcome.listing.status === "complete" ? c.json(presentReconcile(outcome), 200) : c.json(presentReconcile(outcome), 202);
  });

  router.openapi(reconcileRoute, async (c) => {
    const org = await c.var.tenant();
    return c.json(presentReconcile(await organizations.reconcileOnDemand(c.get("principal"), org)), 200);
  });

  router.openapi(accountsRoute, async (c) => c.json(presentAccounts(await organizations.accounts(await c.var.tenant())), 200));

  router.openapi(coverageRoute, async (c) => c.json(presentCoverage(await organizations.coverage(await c.var.tenant())), 200));

  router.openapi(accountActionRoute("retry", "Start a failed or waiting organization account over (platform admin)"), async (c) => {
    const account = await organizations.retry(c.get("principal"), await c.var.tenant(), c.req.valid("param").account_id);
    return c.json(presentAccount(account), 200);
  });

  router.openapi(accountActionRoute("exclude", "Exclude an organization account: it is offboarded and stays out (platform admin)"), async (c) => {
    const account = await organizations.exclude(c.get("principal"), await c.var.tenant(), c.req.valid("param").account_id);
    return c.json(presentAccount(account), 200);
  });

  router.openapi(accountRunRoute, async (c) => {
    const body = c.req.valid("json");
    const requested = await organizations.requestAccountRun(c.get("principal"), await c.var.tenant(), c.req.valid("param").account_id, body.kind, {
      planRunId: body.plan_run_id,
    });
    return c.json({ run_id: requested.runId, kind: requested.kind, status: "queued" as const, stack_name: requested.stackName }, 202);
  });

  return router;
}
