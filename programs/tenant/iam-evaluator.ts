/**
 * A small IAM policy evaluator for the statements our policies use: Allow/Deny, Action and Resource with `*` and `?`
 * wildcards, and the condition operators StringEquals, StringNotEquals, StringLike and StringNotLike on request keys.
 * Pure: used to check what a policy lets the platform do, since the AWS emulator does not enforce IAM.
 *
 * IAM semantics kept here: an explicit Deny wins; a request is allowed only when some Allow matches; the operators
 * of one Condition block and the keys of one operator are ANDed, the values of one key ORed; a negated operator
 * (StringNotEquals, StringNotLike) on a key the request does not carry evaluates to true, a positive one to false.
 */
import type { PolicyDocument, PolicyStatement } from "./policies";

export interface IamRequest {
  action: string;
  resource: string;
  /** Condition keys of the request, e.g. `ssm:resourceTag/xdr:monitor`. */
  context: Record<string, string | undefined>;
}

const listOf = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** IAM's wildcard match (`*` any run of characters, `?` one character); case-insensitive for actions only. */
export function iamMatch(pattern: string, value: string, caseInsensitive = false): boolean {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`, caseInsensitive ? "i" : "").test(value);
}

type Operator = (actual: string | undefined, expected: string[]) => boolean;

const OPERATORS: Record<string, Operator> = {
  StringEquals: (actual, expected) => actual !== undefined && expected.includes(actual),
  StringNotEquals: (actual, expected) => actual === undefined || !expected.includes(actual),
  StringLike: (actual, expected) => actual !== undefined && expected.some((pattern) => iamMatch(pattern, actual)),
  StringNotLike: (actual, expected) => actual === undefined || !expected.some((pattern) => iamMatch(pattern, actual)),
};

function conditionHolds(condition: PolicyStatement["Condition"], context: IamRequest["context"]): boolean {
  if (!condition) return true;
  return Object.entries(condition).every(([operator, keys]) => {
    const evaluate = OPERATORS[operator];
    if (!evaluate) throw new Error(`condition operator ${operator} is not modelled by the evaluator`);
    return Object.entries(keys).every(([key, expected]) => evaluate(context[key], listOf(expected)));
  });
}

function statementMatches(statement: PolicyStatement, request: IamRequest): boolean {
  return (
    listOf(statement.Action).some((action) => iamMatch(action, request.action, true)) &&
    listOf(statement.Resource).some((resource) => iamMatch(resource, request.resource)) &&
    conditionHolds(statement.Condition, request.context)
  );
}

/** True when the identity policy allows the request (no explicit Deny, some Allow). */
export function policyAllows(policy: PolicyDocument, request: IamRequest): boolean {
  const matching = policy.Statement.filter((statement) => statementMatches(statement, request));
  return !matching.some((statement) => statement.Effect === "Deny") && matching.some((statement) => statement.Effect === "Allow");
}
