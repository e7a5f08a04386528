/**
 * The CloudFormation template that creates the customer's bootstrap role (and the permissions boundary the roles of
 * the tenant stack carry). One template serves every tenant of a platform: the tenant slug and the external ID are
 * parameters, prefilled by the quick-create link; the platform principal is baked in.
 */
import { createHash } from "node:crypto";
import {
  BOOTSTRAP_POLICY_NAME,
  bootstrapNames,
  buildBootstrapPolicy,
  buildBootstrapTrustPolicy,
  buildPermissionsBoundaryPolicy,
  type BootstrapScope,
} from "./bootstrap-policy-fns";

/** The template's parameters, as the quick-create link names them (`param_<Name>`). */
export const BOOTSTRAP_TEMPLATE_PARAMETERS = { externalId: "ExternalId", tenantSlug: "TenantSlug" } as const;

/** The tenant slug rule of programs/tenant/config.ts (tenantSlugSchema), as a CloudFormation AllowedPattern. */
export const TENANT_SLUG_PATTERN = "^[a-z][a-z0-9-]{1,38}[a-z0-9]$";

/** The scope of a template: CloudFormation resolves these placeholders with Fn::Sub at deploy time. */
const TEMPLATE_SCOPE: BootstrapScope = {
  partition: "${AWS::Partition}",
  accountId: "${AWS::AccountId}",
  tenantSlug: "${TenantSlug}",
};

/** Wraps every string holding a `${...}` placeholder in Fn::Sub. */
function substituted(value: unknown): unknown {
  if (typeof value === "string") return value.includes("${") ? { "Fn::Sub": value } : value;
  if (Array.isArray(value)) return value.map(substituted);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, substituted(inner)]));
  }
  return value;
}

export interface BootstrapTemplateArgs {
  /** The platform's AWS principal (validated by the caller's settings schema). */
  platformPrincipalArn: string;
}

export function buildBootstrapTemplate(args: BootstrapTemplateArgs): Record<string, unknown> {
  const names = bootstrapNames("${TenantSlug}");
  const tags = [
    { Key: "mini-xdr:tenant", Value: { Ref: "TenantSlug" } },
    { Key: "mini-xdr:managed-by", Value: "mini-xdr-bootstrap" },
  ];
  return {
    AWSTemplateFormatVersion: "2010-09-09",
    Description:
      "Mini-XDR bootstrap role: lets the Mini-XDR platform (and only it, with your external ID) create the " +
      "Mini-XDR roles, SSM parameters, documents and associations in this account. Delete this stack to offboard.",
    Metadata: {
      "AWS::CloudFormation::Interface": {
        ParameterGroups: [{ Label: { default: "Mini-XDR tenant" }, Parameters: ["TenantSlug", "ExternalId"] }],
      },
    },
    Parameters: {
      [BOOTSTRAP_TEMPLATE_PARAMETERS.tenantSlug]: {
        Type: "String",
        Description: "Your Mini-XDR tenant (prefilled by the link).",
        AllowedPattern: TENANT_SLUG_PATTERN,
        ConstraintDescription: "3-40 lowercase letters, digits or dashes, starting with a letter",
      },
      // Not NoEcho: the console cannot prefill NoEcho parameters, and the external ID is no secret from the customer.
      [BOOTSTRAP_TEMPLATE_PARAMETERS.externalId]: {
        Type: "String",
        Description: "The external ID Mini-XDR presents when it assumes the role (prefilled by the link).",
        MinLength: 16,
        MaxLength: 1224,
        AllowedPattern: "^[\\w+=,.@:/-]+$",
        ConstraintDescription: "16-1224 characters of letters, digits and +=,.@:/-_",
      },
    },
    Resources: {
      PermissionsBoundary: {
        Type: "AWS::IAM::ManagedPolicy",
        Properties: substituted({
          ManagedPolicyName: `${names.boundaryPolicyName}`,
          Description: "Permissions boundary of every role the Mini-XDR tenant stack creates in this account",
          PolicyDocument: buildPermissionsBoundaryPolicy(TEMPLATE_SCOPE),
        }),
      },
      BootstrapRole: {
        Type: "AWS::IAM::Role",
        Properties: {
          ...(substituted({
            RoleName: names.bootstrapRoleName,
            Description: "Mini-XDR onboarding: manages the Mini-XDR roles and SSM resources of this account",
            MaxSessionDuration: 3600,
            AssumeRolePolicyDocument: buildBootstrapTrustPolicy({
              platformPrincipalArn: args.platformPrincipalArn,
              externalId: "${ExternalId}",
            }),
          }) as Record<string, unknown>),
          Tags: tags,
        },
      },
      // The role's inline policy as its own resource (AWS::IAM::Policy): the same inline policy in AWS.
      BootstrapPolicy: {
        Type: "AWS::IAM::Policy",
        Properties: {
          PolicyName: BOOTSTRAP_POLICY_NAME,
          PolicyDocument: substituted(buildBootstrapPolicy(TEMPLATE_SCOPE)),
          Roles: [{ Ref: "BootstrapRole" }],
        },
      },
    },
    Outputs: {
      BootstrapRoleArn: {
        Description: "Give this ARN to Mini-XDR if it does not connect by itself",
        Value: { "Fn::GetAtt": ["BootstrapRole", "Arn"] },
      },
      PermissionsBoundaryArn: {
        Description: "The boundary every Mini-XDR role in this account carries",
        Value: { Ref: "PermissionsBoundary" },
      },
    },
  };
}

/** The tag on the bootstrap role, and the stack output, that say which template version created it. */
export const BOOTSTRAP_VERSION_TAG = "mini-xdr:bootstrap-version";
const BOOTSTRAP_VERSION_OUTPUT = "BootstrapVersion";

const stableJson = (template: unknown) => `${JSON.stringify(template, null, 2)}\n`;

/**
 * The template as published: stable JSON (same input, same bytes). Its version is the hash of the template before
 * the version is written into it (the role's tag and the stack output), so the template can carry its own version.
 */
export function versionedTemplate(template: Record<string, unknown>): { body: string; version: string } {
  const version = templateVersion(stableJson(template));
  const resources = template.Resources as Record<string, { Properties: { Tags?: unknown[] } }>;
  const role = resources.BootstrapRole!;
  const stamped = {
    ...template,
    Resources: {
      ...resources,
      BootstrapRole: {
        ...role,
        Properties: { ...role.Properties, Tags: [...(role.Properties.Tags ?? []), { Key: BOOTSTRAP_VERSION_TAG, Value: version }] },
      },
    },
    Outputs: {
      ...(template.Outputs as Record<string, unknown>),
      [BOOTSTRAP_VERSION_OUTPUT]: { Description: "The Mini-XDR bootstrap template version of this stack", Value: version },
    },
  };
  return { body: stableJson(stamped), version };
}

export function renderBootstrapTemplate(args: BootstrapTemplateArgs): { body: string; version: string } {
  return versionedTemplate(buildBootstrapTemplate(args));
}

/** First 12 hex digits of the body's SHA-256: the template's content address. */
export function templateVersion(body: string): string {
  return createHash("sha256").update(body).digest("hex").slice(0, 12);
}
