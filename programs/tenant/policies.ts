/** IAM policy documents for the XDR access role. Pure functions: unit-tested without Pulumi. */
import type { Targeting } from "./config";
import type { PolicyDocument } from "./policy-document";
import { sendCommandDenyCondition } from "./targeting-fns";

/** What the XDR access role reads to discover assets and follow the rollout (the bootstrap boundary allows the same). */
export const DISCOVERY_ACTIONS = [
  "ec2:Describe*",
  "rds:Describe*",
  "rds:ListTagsForResource",
  "ssm:Describe*",
  "ssm:List*",
  "ssm:GetCommandInvocation",
  "ssm:GetDocument",
  "ssm:GetConnectionStatus",
  "ssm:GetInventory",
  // EKS clusters and their node groups (services/discovery/scanner.ts): exactly the reads cluster discovery makes.
  "eks:ListClusters",
  "eks:DescribeCluster",
  "eks:ListNodegroups",
  "eks:DescribeNodegroup",
] as const;

/** Read-only action families; a wildcard is only ever used after one of these verbs. */
export const READ_ONLY_VERBS = ["Describe", "List", "Get"] as const;

/**
 * The trust of a role the platform assumes in the customer's account: the XDR access role, and the bootstrap role
 * (services/integration/bootstrap-policy-fns.ts, with its own Sid).
 */
export function buildTrustPolicy(args: { platformPrincipalArn: string; externalId: string; sid?: string }): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: args.sid ?? "MiniXdrPlatformAssumeRole",
        Effect: "Allow",
        Principal: { AWS: args.platformPrincipalArn },
        Action: "sts:AssumeRole",
        // Confused-deputy protection: the platform must present this tenant's external ID.
        Condition: { StringEquals: { "sts:ExternalId": args.externalId } },
      },
    ],
  };
}

/** Trust of the Default Host Management Configuration role: Systems Manager itself. */
export function buildDefaultHostManagementTrustPolicy(): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [{ Effect: "Allow", Principal: { Service: "ssm.amazonaws.com" }, Action: "sts:AssumeRole" }],
  };
}

/**
 * The access role's permissions: read-only discovery, and SendCommand of the agent document (in each of the
 * tenant's regions: documents are regional) on the instances the targeting covers, in those regions only.
 */
export function buildAccessPolicy(args: {
  customerAccountId: string;
  documentName: string;
  regions: readonly string[];
  targeting: Targeting;
}): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "Discovery",
        Effect: "Allow",
        Action: [...DISCOVERY_ACTIONS],
        Resource: "*",
      },
      {
        // AWS authorizes SendCommand against the document and each instance: both must be allowed.
        Sid: "RunAgentDocument",
        Effect: "Allow",
        Action: "ssm:SendCommand",
        Resource: [
          ...args.regions.map((region) => `arn:aws:ssm:${region}:${args.customerAccountId}:document/${args.documentName}`),
          ...args.regions.map((region) => `arn:aws:ec2:${region}:${args.customerAccountId}:instance/*`),
        ],
      },
      {
        // Instances outside the targeting (targeting-fns.ts sendCommandDenyCondition).
        Sid: "OnlyOnMonitoredInstances",
        Effect: "Deny",
        Action: "ssm:SendCommand",
        Resource: args.regions.map((region) => `arn:aws:ec2:${region}:${args.customerAccountId}:instance/*`),
        Condition: sendCommandDenyCondition(args.targeting),
      },
    ],
  };
}

export function actionsOf(document: PolicyDocument): string[] {
  return document.Statement.flatMap((statement) => (Array.isArray(statement.Action) ? statement.Action : [statement.Action]));
}

/** True when an action pattern could match a mutating API call. */
export function isMutatingWildcard(action: string): boolean {
  if (!action.includes("*")) return false;
  const verb = action.split(":")[1] ?? "*";
  return !READ_ONLY_VERBS.some((readVerb) => verb.startsWith(readVerb));
}
