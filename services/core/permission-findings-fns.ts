/**
 * What AWS's AccessDenied messages (the wording since 2021) say, read from any text a run, a discovery or a rollout
 * read met: each denied action, the resource when named, the region, and the cause. Only these fixed-shape parts are
 * kept: the action and ARN are checked against their shapes, the cause is one of AWS's phrases, and nothing else of
 * the upstream text (principals, session names, request IDs) leaves this module. Pure.
 */
import type { PermissionFindingSource } from "../../db/schema";
import { ACCESS_DENIED_CAUSE_RULES, ACCESS_DENIED_CAUSES, type AccessDeniedCause } from "../../lib/upstream-errors";

/** IAM, STS and Organizations calls are not regional: their denials are recorded under this region. */
export const GLOBAL_REGION = "global";
const GLOBAL_SERVICES = new Set(["iam", "sts", "organizations", "account"]);

export interface DeniedCall {
  action: string;
  /** The ARN AWS named (`*` allowed), or null when the message names none. */
  resource: string | null;
  region: string;
  cause: AccessDeniedCause;
}

const DENIAL = /is not authorized to perform:? ([a-z0-9-]{2,32}:[A-Za-z0-9*]{2,64})(?: on resource:? (\S{1,512}?))?(?=[\s"'\\,;]|$)([^\n]{0,200})/g;
const ARN = /^arn:aws[a-z-]{0,16}:([a-z0-9-]{1,64}):([a-z]{2}(?:-gov)?-[a-z]{3,12}-\d)?:(\d{12})?:[A-Za-z0-9/._:*+=@-]{1,400}$/;
const REGION = /\b((?:af|ap|ca|cn|eu|il|me|mx|sa|us)(?:-gov)?-[a-z]{3,12}-\d)\b/;

const serviceOf = (action: string) => action.slice(0, action.indexOf(":"));

/** The cause AWS gave for this denial: in its own sentence, before any next denial. */
function causeOf(rest: string): AccessDeniedCause {
  const own = rest.split("is not authorized")[0]!;
  return ACCESS_DENIED_CAUSE_RULES.find(([pattern]) => pattern.test(own))?.[1] ?? "unknown";
}

/**
 * Every denial in `text`, once per action and region. The region comes from the resource's ARN, else `region` (where
 * the call was made), else the first region named near the denial (a Pulumi diagnostic names its provider's region),
 * and is `global` for IAM, STS and Organizations.
 */
export function deniedCallsIn(text: string, region?: string): DeniedCall[] {
  const found = new Map<string, DeniedCall>();
  for (const match of text.matchAll(DENIAL)) {
    const action = match[1]!;
    const named = match[2]?.replace(/[.)\]]+$/, "");
    const arn = named ? ARN.exec(named) : null;
    const resource = named === "*" ? "*" : arn ? named! : null;
    const nearby = text.slice(Math.max(0, match.index - 400), match.index);
    const where = GLOBAL_SERVICES.has(serviceOf(action))
      ? GLOBAL_REGION
      : (arn?.[2] ?? region ?? REGION.exec(nearby)?.[1] ?? REGION.exec(match[0])?.[1] ?? GLOBAL_REGION);
    const call = { action, resource, region: where, cause: causeOf(match[3] ?? "") };
    found.set(`${where} ${action}`, call);
  }
  return [...found.values()];
}

const denyingPolicy = (cause: AccessDeniedCause) => cause === "service_control_policy" || cause === "resource_control_policy";

/** What a person does about a denial: an organization's deny goes to its administrator; a missing allow, to the bootstrap update. */
export function permissionFix(action: string, region: string, cause: AccessDeniedCause): string {
  const where = region === GLOBAL_REGION ? "" : ` in ${region}`;
  if (denyingPolicy(cause))
    return `ask your AWS administrator to allow ${action}${where} for the Mini-XDR roles (the organization's policy denies it)`;
  if (cause === "permissions_boundary")
    return `the role's permissions boundary denies ${action}: update the bootstrap stack to the current template, then run an up`;
  return `the Mini-XDR roles lack ${action}: run an up (it restores the access role's policy); if it persists, update the bootstrap stack to the current template (Settings > AWS connection)`;
}

/** The sentence a tenant reads: AWS denied <action> in <region>: <AWS's words for the cause>. */
export function permissionReason(action: string, region: string, cause: AccessDeniedCause): string {
  return `AWS denied ${action}${region === GLOBAL_REGION ? "" : ` in ${region}`}: ${ACCESS_DENIED_CAUSES[cause]}`;
}

/** A region the organization's policy closes to the platform: every denial seen there is an SCP's, and reading instances is one. */
export function excludedByOrganization(denials: readonly Pick<DeniedCall, "action" | "cause">[]): boolean {
  return (
    denials.length > 0 &&
    denials.every((denial) => denial.cause === "service_control_policy") &&
    denials.some((denial) => denial.action === "ec2:DescribeInstances")
  );
}

/** A finding as a tenant reads it: what was denied where, AWS's cause, and the fix. */
export interface MissingPermission {
  awsAccountId: string;
  region: string;
  action: string;
  resource: string | null;
  cause: AccessDeniedCause;
  source: PermissionFindingSource;
  reason: string;
  fix: string;
  excludedByOrganization: boolean;
  firstSeenAt: Date;
  lastSeenAt: Date;
  occurrences: number;
}

export function missingPermissionOf(finding: Omit<MissingPermission, "reason" | "fix" | "excludedByOrganization">): MissingPermission {
  return {
    ...finding,
    reason: permissionReason(finding.action, finding.region, finding.cause),
    fix: permissionFix(finding.action, finding.region, finding.cause),
    excludedByOrganization: excludedByOrganization([finding]),
  };
}
