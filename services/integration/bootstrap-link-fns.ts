/**
 * The CloudFormation console links for the bootstrap stack: the quick-create link that creates it with the tenant's
 * parameters prefilled, and the offboarding instructions that delete it.
 */
import { z } from "zod";
import { awsRegionSchema as regionSchema, externalIdSchema, tenantSlugSchema } from "../../programs/tenant/config";
import { bootstrapNames } from "./bootstrap-policy-fns";
import { BOOTSTRAP_TEMPLATE_PARAMETERS } from "./bootstrap-template-fns";

const stackNameSchema = z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/, "must be a CloudFormation stack name (letters, digits, dashes; 1-128)");

/** S3 https URLs in any of the forms CloudFormation accepts: virtual-hosted or path style, regional or not. */
const S3_HOST = /^(?:[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\.)?s3(?:[.-](?:dualstack\.)?[a-z]{2}(?:-gov)?-[a-z]+-\d)?\.amazonaws\.com(?:\.cn)?$/;

export const s3TemplateUrlSchema = z
  .string()
  .url("must be a URL")
  .refine((value) => {
    try {
      const url = new URL(value);
      return url.protocol === "https:" && url.port === "" && S3_HOST.test(url.hostname) && url.pathname.length > 1;
    } catch {
      return false;
    }
  }, "must be an https URL of an S3 object (https://<bucket>.s3.<region>.amazonaws.com/<key>)");

export const quickCreateLinkSchema = z.object({
  region: regionSchema,
  templateUrl: s3TemplateUrlSchema,
  stackName: stackNameSchema,
  /** Template parameter values, by parameter name (`param_<Name>` in the link). */
  parameters: z.record(z.string().regex(/^[A-Za-z0-9]+$/, "must be a template parameter name"), z.string()),
});

export type QuickCreateLinkInput = z.input<typeof quickCreateLinkSchema>;

function consoleBase(region: string): string {
  return `https://${region}.console.aws.amazon.com/cloudformation/home?region=${region}`;
}

/**
 * `https://<region>.console.aws.amazon.com/cloudformation/home?region=<region>#/stacks/quickcreate?templateURL=...`
 * with the stack name and each parameter prefilled. Throws a ZodError naming the bad field.
 */
export function buildQuickCreateUrl(input: QuickCreateLinkInput): string {
  const { region, templateUrl, stackName, parameters } = quickCreateLinkSchema.parse(input);
  const query = [
    `templateURL=${encodeURIComponent(templateUrl)}`,
    `stackName=${encodeURIComponent(stackName)}`,
    ...Object.entries(parameters).map(([name, value]) => `param_${name}=${encodeURIComponent(value)}`),
  ].join("&");
  return `${consoleBase(region)}#/stacks/quickcreate?${query}`;
}

export const bootstrapLinkSchema = z.object({
  tenantSlug: tenantSlugSchema,
  externalId: externalIdSchema,
  region: regionSchema,
  templateUrl: s3TemplateUrlSchema,
});

export interface BootstrapLink {
  stackName: string;
  region: string;
  templateUrl: string;
  quickCreateUrl: string;
  /** The role the stack creates, once the customer's account is known. */
  roleName: string;
}

/** The tenant's quick-create link for the published bootstrap template. */
export function buildBootstrapLink(input: z.input<typeof bootstrapLinkSchema>): BootstrapLink {
  const { tenantSlug, externalId, region, templateUrl } = bootstrapLinkSchema.parse(input);
  const names = bootstrapNames(tenantSlug);
  return {
    stackName: names.stackName,
    region,
    templateUrl,
    roleName: names.bootstrapRoleName,
    quickCreateUrl: buildQuickCreateUrl({
      region,
      templateUrl,
      stackName: names.stackName,
      parameters: {
        [BOOTSTRAP_TEMPLATE_PARAMETERS.tenantSlug]: tenantSlug,
        [BOOTSTRAP_TEMPLATE_PARAMETERS.externalId]: externalId,
      },
    }),
  };
}

/** The bootstrap role's ARN in the customer's account (what the service polls AssumeRole on). */
export function bootstrapRoleArn(args: { accountId: string; tenantSlug: string; partition?: string }): string {
  return `arn:${args.partition ?? "aws"}:iam::${args.accountId}:role/${bootstrapNames(args.tenantSlug).bootstrapRoleName}`;
}

export interface OffboardingInstructions {
  stackName: string;
  region: string;
  consoleUrl: string;
  cliCommand: string;
  text: string;
}

/**
 * How the customer removes the bootstrap stack, after the tenant stack has been destroyed (the destroy itself uses
 * the bootstrap role). Deleting the stack deletes the bootstrap role and the permissions boundary.
 */
export function buildOffboardingInstructions(input: { tenantSlug: string; region: string }): OffboardingInstructions {
  const tenantSlug = tenantSlugSchema.parse(input.tenantSlug);
  const region = regionSchema.parse(input.region);
  const stackName = bootstrapNames(tenantSlug).stackName;
  const consoleUrl = `${consoleBase(region)}#/stacks?filteringText=${encodeURIComponent(stackName)}&filteringStatus=active&viewNested=true`;
  const cliCommand = `aws cloudformation delete-stack --stack-name ${stackName} --region ${region}`;
  const text = [
    `Mini-XDR has removed everything it created in your AWS account for tenant ${tenantSlug}.`,
    `To finish, delete the CloudFormation stack ${stackName} in ${region}; it removes the Mini-XDR bootstrap role and its permissions boundary, and nothing of Mini-XDR is left in the account.`,
    `In the console: open ${consoleUrl}, select ${stackName} and choose Delete.`,
    `Or with the AWS CLI: ${cliCommand}`,
  ].join("\n");
  return { stackName, region, consoleUrl, cliCommand, text };
}
