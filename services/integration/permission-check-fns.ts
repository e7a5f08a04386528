/**
 * The permission matrix of a tenant's account: each read-only call the platform makes, tried once per region, and
 * what AWS said (allowed, or denied with the action and the cause in AWS's words, or another failure), with the fix a
 * person applies. A region where the organization's policy denies reading instances (and nothing else denies or
 * fails) is excluded by the organization, not failed, as discovery says it. Pure: services/integration/permission-check.ts makes the calls.
 */
import type { AccessDeniedCause } from "../../lib/upstream-errors";
import { excludedByOrganization, permissionFix, permissionReason } from "../core/permission-findings-fns";

/** The read-only calls of discovery and the rollout reads, as IAM names them. */
export const CHECKED_ACTIONS = [
  "ec2:DescribeInstances",
  "rds:DescribeDBInstances",
  "ssm:DescribeInstanceInformation",
  "ssm:ListAssociations",
] as const;
export type CheckedAction = (typeof CHECKED_ACTIONS)[number];

export type CallOutcome =
  | { status: "allowed" }
  | { status: "denied"; action: string | null; cause: AccessDeniedCause }
  | { status: "failed"; code: string; message: string };

export interface PermissionCell {
  action: CheckedAction;
  status: "allowed" | "denied" | "failed";
  /** Denied: the cause as AWS words it; failed: what went wrong (fixed words). */
  reason: string | null;
  fix: string | null;
  cause: AccessDeniedCause | null;
}

export interface RegionPermissions {
  region: string;
  /** allowed: every call; excluded_by_organization: every call denied by a service control policy. */
  status: "allowed" | "missing_permissions" | "excluded_by_organization" | "failed";
  checks: PermissionCell[];
}

export function permissionCell(action: CheckedAction, region: string, outcome: CallOutcome): PermissionCell {
  if (outcome.status === "allowed") return { action, status: "allowed", reason: null, fix: null, cause: null };
  if (outcome.status === "failed") {
    return {
      action,
      status: "failed",
      reason: outcome.message,
      fix: "check again later; if it persists, the region's endpoint may be unreachable",
      cause: null,
    };
  }
  const denied = outcome.action ?? action;
  return {
    action,
    status: "denied",
    reason: permissionReason(denied, region, outcome.cause),
    fix: permissionFix(denied, region, outcome.cause),
    cause: outcome.cause,
  };
}

export function regionPermissions(region: string, checks: PermissionCell[]): RegionPermissions {
  const denied = checks.flatMap((check) => (check.status === "denied" && check.cause ? [{ action: check.action, cause: check.cause }] : []));
  const status = checks.every((check) => check.status === "allowed")
    ? "allowed"
    : // The same rule as discovery's: the organization's policy denies reading the region's instances, and only it denies.
      denied.length === checks.filter((check) => check.status !== "allowed").length && excludedByOrganization(denied)
      ? "excluded_by_organization"
      : denied.length > 0
        ? "missing_permissions"
        : "failed";
  return { region, status, checks };
}
