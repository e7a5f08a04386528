/**
 * A small, honest IAM policy evaluator for the policies this project writes: Allow/Deny, Action/NotAction and
 * Resource/NotResource with `*` and `?` wildcards, Principal (for trust policies), and the condition operators
 * listed in CONDITION_OPERATORS (with IfExists). Anything else (policy variables, ForAnyValue/ForAllValues, other
 * operators) is refused with an error rather than guessed at.
 *
 * Semantics follow AWS's documented evaluation logic for a single account: an explicit Deny wins; otherwise the
 * request is allowed only when some Allow statement matches. A request naming several resources (an SSM association
 * call is authorized against the association and its document) is allowed only when every resource is allowed.
 * A permissions boundary caps an identity policy: both must allow.
 */

export type StringOrList = string | readonly string[];

export interface IamStatement {
  Sid?: string;
  Effect: "Allow" | "Deny";
  Principal?: "*" | { AWS?: StringOrList; Service?: StringOrList };
  Action?: StringOrList;
  NotAction?: StringOrList;
  Resource?: StringOrList;
  NotResource?: StringOrList;
  Condition?: Readonly<Record<string, Readonly<Record<string, StringOrList | boolean>>>>;
}

export interface IamPolicy {
  Version?: string;
  Statement: readonly IamStatement[];
}

export interface IamRequest {
  action: string;
  /** ARNs the call is authorized against; empty for trust policies (no Resource element). */
  resources?: readonly string[];
  /** The calling principal's ARN; only trust (resource-based) policies look at it. */
  principal?: string;
  /** Condition keys of the request, e.g. `iam:PermissionsBoundary`, `sts:ExternalId`. */
  context?: Readonly<Record<string, string>>;
}

export type IamDecision = "Allow" | "ExplicitDeny" | "ImplicitDeny";

export class UnsupportedPolicyError extends Error {
  override readonly name = "UnsupportedPolicyError";
}

export const CONDITION_OPERATORS = [
  "StringEquals",
  "StringNotEquals",
  "StringLike",
  "StringNotLike",
  "ArnEquals",
  "ArnNotEquals",
  "ArnLike",
  "ArnNotLike",
  "Bool",
  "Null",
] as const;

const toList = (value: StringOrList | boolean | undefined): string[] =>
  value === undefined ? [] : typeof value === "boolean" ? [String(value)] : typeof value === "string" ? [value] : [...value];

function wildcardRegExp(pattern: string, caseInsensitive: boolean): RegExp {
  if (pattern.includes("${")) throw new UnsupportedPolicyError(`policy variables are not supported: ${pattern}`);
  const body = pattern
    .split("")
    .map((char) => (char === "*" ? ".*" : char === "?" ? "." : char.replace(/[.+^${}()|[\]\\/]/g, "\\$&")))
    .join("");
  return new RegExp(`^${body}$`, caseInsensitive ? "is" : "s");
}

/** `*` matches any run of characters (slashes included, as in IAM), `?` one character. */
export function matchesWildcard(pattern: string, value: string, options: { caseInsensitive?: boolean } = {}): boolean {
  return wildcardRegExp(pattern, options.caseInsensitive ?? false).test(value);
}

/** Actions compare case-insensitively (`ssm:getparameter` is `ssm:GetParameter`). */
export function actionMatches(pattern: string, action: string): boolean {
  return matchesWildcard(pattern, action, { caseInsensitive: true });
}

function statementCoversAction(statement: IamStatement, action: string): boolean {
  if (statement.Action !== undefined && statement.NotAction !== undefined) {
    throw new UnsupportedPolicyError(`statement ${statement.Sid ?? "?"} has both Action and NotAction`);
  }
  if (statement.NotAction !== undefined) return !toList(statement.NotAction).some((p) => actionMatches(p, action));
  return toList(statement.Action).some((p) => actionMatches(p, action));
}

function statementCoversResource(statement: IamStatement, resource: string | undefined): boolean {
  if (statement.Resource === undefined && statement.NotResource === undefined) return true; // trust policies
  if (resource === undefined) return false;
  if (statement.NotResource !== undefined) return !toList(statement.NotResource).some((p) => matchesWildcard(p, resource));
  return toList(statement.Resource).some((p) => matchesWildcard(p, resource));
}

function statementCoversPrincipal(statement: IamStatement, principal: string | undefined): boolean {
  if (statement.Principal === undefined) return true; // identity policies
  if (principal === undefined) return false;
  if (statement.Principal === "*") return true;
  const aws = toList(statement.Principal.AWS);
  const services = toList(statement.Principal.Service);
  if (services.includes(principal) || aws.includes("*")) return true;
  return aws.some((entry) => {
    if (entry === principal) return true;
    // An account (`123456789012` or `arn:aws:iam::123456789012:root`) stands for every principal of that account.
    const account = /^\d{12}$/.test(entry) ? entry : /^arn:[\w-]+:iam::(\d{12}):root$/.exec(entry)?.[1];
    return account !== undefined && principal.split(":")[4] === account;
  });
}

function lookup(context: Readonly<Record<string, string>>, key: string): string | undefined {
  const wanted = key.toLowerCase(); // condition key names are case-insensitive
  for (const [name, value] of Object.entries(context)) if (name.toLowerCase() === wanted) return value;
  return undefined;
}

function evaluateOperator(operator: string, key: string, expected: string[], actual: string | undefined): boolean {
  if (operator.startsWith("ForAnyValue:") || operator.startsWith("ForAllValues:")) {
    throw new UnsupportedPolicyError(`set operators are not supported: ${operator}`);
  }
  const ifExists = operator.endsWith("IfExists");
  const base = ifExists ? operator.slice(0, -"IfExists".length) : operator;
  if (!(CONDITION_OPERATORS as readonly string[]).includes(base)) {
    throw new UnsupportedPolicyError(`condition operator ${operator} is not supported`);
  }
  if (base === "Null") {
    if (ifExists) throw new UnsupportedPolicyError("NullIfExists is not an IAM operator");
    return expected.some((value) => (value === "true") === (actual === undefined));
  }
  const negated = base.includes("Not");
  if (actual === undefined) return ifExists || negated;
  switch (base) {
    case "StringEquals":
    case "ArnEquals":
      return expected.includes(actual);
    case "StringNotEquals":
    case "ArnNotEquals":
      return !expected.includes(actual);
    case "StringLike":
    case "ArnLike":
      return expected.some((pattern) => matchesWildcard(pattern, actual));
    case "StringNotLike":
    case "ArnNotLike":
      return !expected.some((pattern) => matchesWildcard(pattern, actual));
    case "Bool":
      return expected.some((value) => value.toLowerCase() === actual.toLowerCase());
    default:
      throw new UnsupportedPolicyError(`condition operator ${operator} is not supported (key ${key})`);
  }
}

/** Every operator and every key of the block must hold (AND); several values of one key are alternatives (OR). */
function conditionsHold(statement: IamStatement, context: Readonly<Record<string, string>>): boolean {
  for (const [operator, block] of Object.entries(statement.Condition ?? {})) {
    for (const [key, values] of Object.entries(block)) {
      if (!evaluateOperator(operator, key, toList(values), lookup(context, key))) return false;
    }
  }
  return true;
}

function statementApplies(statement: IamStatement, request: IamRequest, resource: string | undefined): boolean {
  return (
    statementCoversAction(statement, request.action) &&
    statementCoversResource(statement, resource) &&
    statementCoversPrincipal(statement, request.principal) &&
    conditionsHold(statement, request.context ?? {})
  );
}

/** The decision of one or more policies of the same principal (their statements pooled, as AWS does). */
export function evaluatePolicies(policies: readonly IamPolicy[], request: IamRequest): IamDecision {
  const statements = policies.flatMap((policy) => policy.Statement);
  const resources: (string | undefined)[] = request.resources && request.resources.length > 0 ? [...request.resources] : [undefined];
  let allAllowed = true;
  for (const resource of resources) {
    const applying = statements.filter((statement) => statementApplies(statement, request, resource));
    if (applying.some((statement) => statement.Effect === "Deny")) return "ExplicitDeny";
    if (!applying.some((statement) => statement.Effect === "Allow")) allAllowed = false;
  }
  return allAllowed ? "Allow" : "ImplicitDeny";
}

export function isAllowed(policies: readonly IamPolicy[], request: IamRequest): boolean {
  return evaluatePolicies(policies, request) === "Allow";
}

/** An identity policy capped by a permissions boundary: allowed only when both allow. */
export function isAllowedWithinBoundary(identity: readonly IamPolicy[], boundary: IamPolicy, request: IamRequest): boolean {
  return isAllowed(identity, request) && isAllowed([boundary], request);
}
