/**
 * Bootstrap template versions: GET /v1/tenants/{slug}/integrations/aws/bootstrap/version (which version the tenant's
 * bootstrap role runs, read from its tag now; the update, action by action, with the update link; the runs waiting
 * for it) and GET /v1/bootstrap/versions (platform admin: how many tenants run each version).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Services } from "../../services";
import type { PolicyAction } from "../../services/integration/bootstrap-version-fns";
import { iso } from "../presenters";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { errorResponse, errorResponses, slugParamsSchema } from "../schemas";

const policyActionSchema = z.object({
  policy: z.enum(["role", "boundary"]).describe("role: the bootstrap role's policy; boundary: the boundary of the roles it creates"),
  effect: z.enum(["Allow", "Deny"]),
  action: z.string(),
  statement: z.string(),
});

const bootstrapVersionSchema = z
  .object({
    current_version: z.string(),
    running_version: z
      .string()
      .nullable()
      .describe("the version tag of the tenant's bootstrap role; null: not connected, or a role older than versions"),
    read_at: z.string().nullable(),
    update_available: z.boolean(),
    changes: z
      .object({ added: z.array(policyActionSchema), removed: z.array(policyActionSchema) })
      .nullable()
      .describe("what the update changes, action by action; null when the running version's template is not known"),
    update: z
      .object({ template_url: z.string(), console_url: z.string(), cli_command: z.string() })
      .nullable()
      .describe("how the customer applies the update: CloudFormation's update page, or the AWS CLI"),
    held_runs: z.array(z.object({ run_id: z.string(), reason: z.string(), actions: z.array(z.string()), version: z.string() })),
    organization: z
      .object({
        accounts: z.array(
          z.object({
            aws_account_id: z.string(),
            running_version: z.string().nullable(),
            read_error: z.boolean().describe("the account's bootstrap role did not answer (the StackSet has not reached it yet?)"),
          }),
        ),
        update_available: z.boolean(),
        update: z
          .object({ stack_name: z.string(), template_url: z.string(), console_url: z.string(), cli_command: z.string() })
          .nullable()
          .describe("the organization stack's update, in the management account: its StackSet rolls the new version out to every account"),
      })
      .nullable()
      .describe("a tenant connected through its AWS Organization: each member account's version (at most 200 read)"),
  })
  .openapi("BootstrapVersion");

const bootstrapVersionCountsSchema = z
  .object({
    current_version: z.string().nullable(),
    versions: z.array(z.object({ version: z.string().nullable().describe("null: a role older than versions"), tenants: z.number().int() })),
  })
  .openapi("BootstrapVersionCounts");

const tenantVersionRoute = createRoute({
  method: "get",
  path: "/{slug}/integrations/aws/bootstrap/version",
  operationId: "getBootstrapVersion",
  tags: ["integrations"],
  summary: "The bootstrap template version the tenant's role runs, and the update when the platform has a newer one",
  security,
  request: { params: slugParamsSchema },
  responses: {
    200: json(bootstrapVersionSchema, "the tenant's bootstrap version"),
    ...errorResponses,
    503: errorResponse("the service has no bootstrap template bucket, or the tenant's account cannot be reached"),
  },
});

const versionCountsRoute = createRoute({
  method: "get",
  path: "/bootstrap/versions",
  operationId: "listBootstrapVersions",
  tags: ["tenants"],
  summary: "How many tenants run each bootstrap template version, as last read (platform admin)",
  security,
  responses: { 200: json(bootstrapVersionCountsSchema, "tenants per version"), ...errorResponses },
});

const presentActions = (actions: PolicyAction[]) => actions.map(({ policy, effect, action, statement }) => ({ policy, effect, action, statement }));

export function tenantBootstrapVersionRouter({ bootstrapVersions }: Pick<Services, "bootstrapVersions">) {
  const router = createRouter();
  router.openapi(tenantVersionRoute, async (c) => {
    const status = await bootstrapVersions.status(await c.var.tenant());
    return c.json(
      {
        current_version: status.current,
        running_version: status.running,
        read_at: status.readAt ? iso(status.readAt) : null,
        update_available: status.updateAvailable,
        changes: status.changes ? { added: presentActions(status.changes.added), removed: presentActions(status.changes.removed) } : null,
        update: status.update
          ? { template_url: status.update.templateUrl, console_url: status.update.consoleUrl, cli_command: status.update.cliCommand }
          : null,
        held_runs: status.heldRuns.map(({ runId, hold }) => ({ run_id: runId, ...hold })),
        organization: status.organization
          ? {
              accounts: status.organization.accounts.map((account) => ({
                aws_account_id: account.awsAccountId,
                running_version: account.running,
                read_error: account.readError,
              })),
              update_available: status.organization.updateAvailable,
              update: status.organization.update
                ? {
                    stack_name: status.organization.update.stackName,
                    template_url: status.organization.update.templateUrl,
                    console_url: status.organization.update.consoleUrl,
                    cli_command: status.organization.update.cliCommand,
                  }
                : null,
            }
          : null,
      },
      200,
    );
  });
  return router;
}

export function bootstrapVersionsRouter({ bootstrapVersions }: Pick<Services, "bootstrapVersions">) {
  const router = createRouter();
  router.openapi(versionCountsRoute, async (c) => {
    const counts = await bootstrapVersions.counts(c.get("principal"));
    return c.json({ current_version: counts.current, versions: counts.versions }, 200);
  });
  return router;
}
