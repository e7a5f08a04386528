/** IAM policy documents for the XDR access role. Pure functions: unit-tested without Pulumi. */

export interface PolicyStatement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal?: { AWS: string | string[] };
  Action: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

/** Read-only action families; a wildcard is only ever used after one of these verbs. */
export const READ_ONLY_VERBS = ["Describe", "List", "Get"] as const;

export function buildTrustPolicy(args: { platformPrincipalArn: string; externalId: string }): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "MiniXdrPlatformAssumeRole",
        Effect: "Allow",
        Principal: { AWS: args.platformPrincipalArn },
        Action: "sts:AssumeRole",
        // Confused-deputy protection: the platform must present this tenant's external ID.
        Condition: { StringEquals: { "sts:ExternalId": args.externalId } },
      },
    ],
  };
}

export function buildAccessPolicy(args: {
  customerAccountId: string;
  documentName: string;
  targetTag: { key: string; value: string };
}): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "Discovery",
        Effect: "Allow",
        Action: [
          "ec2:Describe*",
          "rds:Describe*",
          "rds:ListTagsForResource",
          "ssm:Describe*",
          "ssm:List*",
          "ssm:GetCommandInvocation",
          "ssm:GetDocument",
          "ssm:GetConnectionStatus",
          "ssm:GetInventory",
        ],
        Resource: "*",
      },
      {
        // AWS authorizes SendCommand against the document and each instance: both must be allowed.
        Sid: "RunAgentDocument",
        Effect: "Allow",
        Action: "ssm:SendCommand",
        Resource: [
          `arn:aws:ssm:*:${args.customerAccountId}:document/${args.documentName}`,
          `arn:aws:ec2:*:${args.customerAccountId}:instance/*`,
        ],
      },
      {
        // The targeting as a Deny (a tag the instance lacks counts as different), so every Allow statement names
        // the document SendCommand requires and policy linters can check it.
        Sid: "OnlyOnMonitoredInstances",
        Effect: "Deny",
        Action: "ssm:SendCommand",
        Resource: `arn:aws:ec2:*:${args.customerAccountId}:instance/*`,
        Condition: { StringNotEquals: { [`ssm:resourceTag/${args.targetTag.key}`]: args.targetTag.value } },
      },
    ],
  };
}

export function actionsOf(document: PolicyDocument): string[] {
  return document.Statement.flatMap((statement) =>
    Array.isArray(statement.Action) ? statement.Action : [statement.Action],
  );
}

/** True when an action pattern could match a mutating API call. */
export function isMutatingWildcard(action: string): boolean {
  if (!action.includes("*")) return false;
  const verb = action.split(":")[1] ?? "*";
  return !READ_ONLY_VERBS.some((readVerb) => verb.startsWith(readVerb));
}
