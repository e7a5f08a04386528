/** The IAM policy documents the tenant program and the bootstrap template write. */
export interface PolicyStatement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal?: { AWS: string | string[] } | { Service: string | string[] };
  Action: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  Version: "2012-10-17";
  Statement: PolicyStatement[];
}

/** A call AWS authorizes, as the policy checks describe it (test/harness/iam-simulation.ts decides them). */
export interface IamRequest {
  action: string;
  /** The ARNs AWS authorizes the call against (`*` for calls without resource-level permissions). */
  resources: readonly string[];
  /** Condition keys of the request, e.g. `iam:PermissionsBoundary`, `ssm:resourceTag/<key>`, `sts:ExternalId`. */
  context?: Readonly<Record<string, string>>;
}
