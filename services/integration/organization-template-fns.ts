/**
 * The CloudFormation template a customer creates in its AWS Organization's management account (or a delegated
 * administrator) with the organization quick-create link:
 *
 * - a reader role (organizations:List* and Describe* only) that the platform assumes with the tenant's external ID to
 *   list the organization's accounts;
 * - a service-managed StackSet with automatic deployment that puts the bootstrap template (the single-account one,
 *   by its published URL) into every account of the targeted OUs, now and when accounts join; in one region only,
 *   because the bootstrap role is global (a multi-region StackSet would create it twice and fail);
 * - when the customer opts in, the bootstrap role in the management account itself, which service-managed StackSets
 *   never deploy to.
 */
import { BOOTSTRAP_TEMPLATE_PARAMETERS, buildBootstrapTemplate } from "./bootstrap-template-fns";
import type { PolicyDocument } from "../../programs/tenant/policy-document";
import { buildTrustPolicy } from "../../programs/tenant/policies";
import { customerRoleNames } from "../../programs/tenant/naming";

export const ORGANIZATION_TEMPLATE_PARAMETERS = {
  ...BOOTSTRAP_TEMPLATE_PARAMETERS,
  targetOus: "OrganizationalUnitIds",
  includeManagementAccount: "IncludeManagementAccount",
} as const;

/** Root (`r-xxxx`) and OU (`ou-xxxx-xxxxxxxx`) ids, as Organizations spells them. */
export const OU_ID_PATTERN = "^(r-[0-9a-z]{4,32}|ou-[0-9a-z]{4,32}-[a-z0-9]{8,32})$";

export function organizationNames(tenantSlug: string) {
  return {
    readerRoleName: customerRoleNames(tenantSlug).organizationReaderRoleName,
    stackName: `MiniXdr-Organization-${tenantSlug}`,
    stackSetName: `MiniXdr-Bootstrap-${tenantSlug}`,
  };
}

/** What the reader role may do: read the organization's structure, nothing else. */
export function buildOrganizationReaderPolicy(): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ReadTheOrganizationOnly",
        Effect: "Allow",
        Action: [
          "organizations:DescribeOrganization",
          "organizations:DescribeAccount",
          "organizations:DescribeOrganizationalUnit",
          "organizations:ListRoots",
          "organizations:ListAccounts",
          "organizations:ListAccountsForParent",
          "organizations:ListOrganizationalUnitsForParent",
          "organizations:ListParents",
        ],
        // Organizations' List and Describe actions on the structure take no narrower resource.
        Resource: "*",
      },
    ],
  };
}

export interface OrganizationTemplateArgs {
  platformPrincipalArn: string;
  /** The published bootstrap template (bootstrap-template-publisher.ts): what the StackSet deploys. */
  bootstrapTemplateUrl: string;
}

export function buildOrganizationTemplate(args: OrganizationTemplateArgs): Record<string, unknown> {
  const bootstrap = buildBootstrapTemplate({ platformPrincipalArn: args.platformPrincipalArn }) as {
    Parameters: Record<string, unknown>;
    Resources: Record<string, Record<string, unknown>>;
  };
  const names = organizationNames("${TenantSlug}");
  const P = ORGANIZATION_TEMPLATE_PARAMETERS;
  // The single-account template's resources, for the management account, only when the customer opts in.
  const managementAccountResources: Record<string, Record<string, unknown>> = Object.fromEntries(
    Object.entries(bootstrap.Resources).map(([name, resource]) => [`ManagementAccount${name}`, { ...resource, Condition: "CoverManagementAccount" }]),
  );
  const policy = managementAccountResources.ManagementAccountBootstrapPolicy!;
  policy.Properties = { ...(policy.Properties as Record<string, unknown>), Roles: [{ Ref: "ManagementAccountBootstrapRole" }] };
  return {
    AWSTemplateFormatVersion: "2010-09-09",
    Description:
      "Mini-XDR for an AWS Organization: a read-only role that lets Mini-XDR (with your external ID) list your accounts, " +
      "and a StackSet that creates the Mini-XDR bootstrap role in every account of the OUs you choose, including accounts " +
      "added later. Delete the StackSet's instances, then this stack, to offboard.",
    Metadata: {
      "AWS::CloudFormation::Interface": {
        ParameterGroups: [
          { Label: { default: "Mini-XDR tenant" }, Parameters: [P.tenantSlug, P.externalId] },
          { Label: { default: "Accounts to cover" }, Parameters: [P.targetOus, P.includeManagementAccount] },
        ],
      },
    },
    Parameters: {
      ...bootstrap.Parameters,
      [P.targetOus]: {
        Type: "CommaDelimitedList",
        Description:
          "The OUs whose accounts Mini-XDR covers, at any depth; your organization's root id (r-...) covers every account " +
          "(prefilled by the link when you chose OUs)",
        AllowedPattern: OU_ID_PATTERN,
        ConstraintDescription: "root ids (r-...) or OU ids (ou-...-...), separated by commas",
      },
      [P.includeManagementAccount]: {
        Type: "String",
        Description: "StackSets never deploy to the management account: 'true' creates the bootstrap role here too",
        AllowedValues: ["true", "false"],
        Default: "false",
      },
    },
    Conditions: {
      CoverManagementAccount: { "Fn::Equals": [{ Ref: P.includeManagementAccount }, "true"] },
    },
    Resources: {
      OrganizationReaderRole: {
        Type: "AWS::IAM::Role",
        Properties: {
          RoleName: { "Fn::Sub": names.readerRoleName },
          Description: "Mini-XDR lists this organization's accounts (read only)",
          MaxSessionDuration: 3600,
          AssumeRolePolicyDocument: buildTrustPolicy({
            platformPrincipalArn: args.platformPrincipalArn,
            externalId: { Ref: P.externalId } as unknown as string,
            sid: "MiniXdrPlatformOnly",
          }),
          Policies: [{ PolicyName: "mini-xdr-organization-reader", PolicyDocument: buildOrganizationReaderPolicy() }],
          Tags: [
            { Key: "mini-xdr:tenant", Value: { Ref: P.tenantSlug } },
            { Key: "mini-xdr:managed-by", Value: "mini-xdr-organization" },
          ],
        },
      },
      BootstrapStackSet: {
        Type: "AWS::CloudFormation::StackSet",
        Properties: {
          StackSetName: { "Fn::Sub": names.stackSetName },
          Description: "Mini-XDR bootstrap role in every covered account",
          PermissionModel: "SERVICE_MANAGED",
          AutoDeployment: { Enabled: true, RetainStacksOnAccountRemoval: false },
          ManagedExecution: { Active: true },
          Capabilities: ["CAPABILITY_NAMED_IAM"],
          TemplateURL: args.bootstrapTemplateUrl,
          Parameters: [
            { ParameterKey: P.tenantSlug, ParameterValue: { Ref: P.tenantSlug } },
            { ParameterKey: P.externalId, ParameterValue: { Ref: P.externalId } },
          ],
          OperationPreferences: { FailureTolerancePercentage: 10, MaxConcurrentPercentage: 25, RegionConcurrencyType: "PARALLEL" },
          StackInstancesGroup: [
            {
              DeploymentTargets: { OrganizationalUnitIds: { Ref: P.targetOus } },
              Regions: [{ Ref: "AWS::Region" }],
            },
          ],
        },
      },
      ...managementAccountResources,
    },
    Outputs: {
      OrganizationReaderRoleArn: {
        Description: "Give this ARN to Mini-XDR if it does not connect by itself",
        Value: { "Fn::GetAtt": ["OrganizationReaderRole", "Arn"] },
      },
      BootstrapStackSetId: { Description: "The StackSet that deploys the bootstrap role", Value: { Ref: "BootstrapStackSet" } },
    },
  };
}

/** Stable JSON (same input, same bytes), so its hash names its version like the bootstrap template's. */
export function renderOrganizationTemplate(args: OrganizationTemplateArgs): string {
  return `${JSON.stringify(buildOrganizationTemplate(args), null, 2)}\n`;
}

export interface OrganizationCleanupStep {
  what: string;
  consoleUrl: string;
  cliCommand: string;
}

/**
 * What the customer removes after the offboarding destroyed every account's Mini-XDR resources (the destroys use the
 * bootstrap roles, so these go last): the StackSet's stack instances (which delete the bootstrap roles), the StackSet,
 * then the organization stack (the reader role, and the management account's role when it was opted in).
 */
export function buildOrganizationCleanup(input: { tenantSlug: string; region: string; targetOus: readonly string[] }): OrganizationCleanupStep[] {
  const names = organizationNames(input.tenantSlug);
  const base = `https://${input.region}.console.aws.amazon.com/cloudformation/home?region=${input.region}`;
  const stackSetUrl = `${base}#/stacksets/${encodeURIComponent(names.stackSetName)}/info?permissions=service`;
  const ous = input.targetOus.length > 0 ? input.targetOus.join(",") : "<your root id, r-...>";
  return [
    {
      what: `Delete the stack instances of the StackSet ${names.stackSetName} (this removes the Mini-XDR bootstrap role from every member account)`,
      consoleUrl: stackSetUrl,
      cliCommand: `aws cloudformation delete-stack-instances --stack-set-name ${names.stackSetName} --deployment-targets OrganizationalUnitIds=${ous} --regions ${input.region} --no-retain-stacks --region ${input.region}`,
    },
    {
      what: `Delete the StackSet ${names.stackSetName} once its instances are gone`,
      consoleUrl: stackSetUrl,
      cliCommand: `aws cloudformation delete-stack-set --stack-set-name ${names.stackSetName} --region ${input.region}`,
    },
    {
      what: `Delete the stack ${names.stackName} in the management account (the reader role, and the management account's bootstrap role if you opted it in)`,
      consoleUrl: `${base}#/stacks?filteringText=${encodeURIComponent(names.stackName)}&filteringStatus=active&viewNested=true`,
      cliCommand: `aws cloudformation delete-stack --stack-name ${names.stackName} --region ${input.region}`,
    },
  ];
}
