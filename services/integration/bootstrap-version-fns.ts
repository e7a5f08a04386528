/**
 * Bootstrap template versions: what changes between the version a tenant's role runs and the platform's current one
 * (its policies, action by action), whether a run must wait for the update, and how the customer applies it. Pure.
 */
import type { RunHold, RunKind } from "../../db/schema";
import { BOOTSTRAP_TEMPLATE_PARAMETERS } from "./bootstrap-template-fns";

/** One action one of the template's policies allows or denies (`role`: the bootstrap role's; `boundary`: the roles' boundary). */
export interface PolicyAction {
  policy: "role" | "boundary";
  effect: "Allow" | "Deny";
  action: string;
  statement: string;
}

export interface PolicyChanges {
  added: PolicyAction[];
  removed: PolicyAction[];
}

interface TemplateResource {
  Type?: string;
  Properties?: { PolicyDocument?: { Statement?: unknown } };
}

const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : value === undefined ? [] : [value]);

/** Every action of the template's bootstrap policy and boundary, once per statement. */
export function policyActionsOf(templateBody: string): PolicyAction[] {
  const template = JSON.parse(templateBody) as { Resources?: Record<string, TemplateResource> };
  const out: PolicyAction[] = [];
  for (const resource of Object.values(template.Resources ?? {})) {
    const policy = resource.Type === "AWS::IAM::Policy" ? "role" : resource.Type === "AWS::IAM::ManagedPolicy" ? "boundary" : undefined;
    if (!policy) continue;
    for (const statement of asList(resource.Properties?.PolicyDocument?.Statement) as { Sid?: string; Effect?: string; Action?: unknown }[]) {
      for (const action of asList(statement.Action)) {
        if (typeof action === "string")
          out.push({ policy, effect: statement.Effect === "Deny" ? "Deny" : "Allow", action, statement: statement.Sid ?? "" });
      }
    }
  }
  return out;
}

const keyOf = (entry: PolicyAction) => `${entry.policy} ${entry.effect} ${entry.statement} ${entry.action}`;

export function policyChanges(running: readonly PolicyAction[], current: readonly PolicyAction[]): PolicyChanges {
  const before = new Set(running.map(keyOf));
  const after = new Set(current.map(keyOf));
  return { added: current.filter((entry) => !before.has(keyOf(entry))), removed: running.filter((entry) => !after.has(keyOf(entry))) };
}

/** Actions the bootstrap role gains with the update (allowed now, not before in any statement). */
export function grantedActions(changes: PolicyChanges, running: readonly PolicyAction[]): string[] {
  const allowedBefore = new Set(running.filter((entry) => entry.policy === "role" && entry.effect === "Allow").map((entry) => entry.action));
  return [
    ...new Set(
      changes.added.filter((entry) => entry.policy === "role" && entry.effect === "Allow" && !allowedBefore.has(entry.action)).map((e) => e.action),
    ),
  ].sort();
}

/**
 * An up waits for the update when the stack needs an action only the current version grants: it would fail on it.
 * Previews read only; refreshes and destroys do what the running version already allowed when it created.
 */
export function holdFor(
  kind: RunKind,
  args: { granted: readonly string[]; needed: ReadonlySet<string>; running: string; current: string },
): RunHold | undefined {
  if (kind !== "up") return undefined;
  const actions = args.granted.filter((action) => args.needed.has(action));
  if (actions.length === 0) return undefined;
  return {
    reason: `waits for the bootstrap stack update to version ${args.current}: the stack needs ${actions.join(", ")}, which version ${args.running} does not grant`,
    actions,
    version: args.current,
  };
}

export interface UpdateInstructions {
  /** CloudFormation's update page of the stack, with the new template's URL. */
  consoleUrl: string;
  /** The same with the AWS CLI, keeping the stack's parameters. */
  cliCommand: string;
}

/**
 * The stack's update with a new template, keeping its parameters: the bootstrap stack, or (`parameters` of the
 * organization template) the management account's organization stack, whose StackSet then rolls the new bootstrap
 * template out to every member account.
 */
export function updateInstructions(args: {
  region: string;
  stackName: string;
  templateUrl: string;
  parameters?: readonly string[];
}): UpdateInstructions {
  const { region, stackName, templateUrl } = args;
  const query = new URLSearchParams({ stackId: stackName, templateURL: templateUrl });
  const keep = (args.parameters ?? Object.values(BOOTSTRAP_TEMPLATE_PARAMETERS)).map((name) => `ParameterKey=${name},UsePreviousValue=true`);
  return {
    consoleUrl: `https://${region}.console.aws.amazon.com/cloudformation/home?region=${region}#/stacks/update/template?${query.toString()}`,
    cliCommand: [
      "aws cloudformation update-stack",
      `--region ${region}`,
      `--stack-name ${stackName}`,
      `--template-url ${templateUrl}`,
      `--parameters ${keep.join(" ")}`,
      "--capabilities CAPABILITY_NAMED_IAM",
    ].join(" "),
  };
}
