/**
 * Which instances the agent rollout covers, decided once and used by the stack (association targets, the install
 * document's exclusion check, the access policy's SendCommand condition) and by the service (rollout status).
 * Pure: unit-tested without Pulumi.
 *
 * SSM associations cannot exclude by tag. In `all_managed` mode the association targets every managed instance
 * (InstanceIds=*) and the install document's steps read the instance's own tags from instance metadata (IMDSv2
 * `/latest/meta-data/tags/instance/<key>`) and exit 0 without installing when the exclusion tag is set. When an
 * instance does not serve its tags in instance metadata (off by default in EC2), the check cannot see the tag and
 * the agent is installed there anyway; the access policy still refuses SendCommand on it (its condition is on the
 * tag), which the tests' `compareTargeting` (test/harness/targeting-check.ts) reports as a disagreement.
 */
import type { Tag, Targeting } from "./config";
import type { PolicyStatement } from "./policy-document";

export interface AssociationTarget {
  key: string;
  values: string[];
}

/** The SSM association's targets for a targeting setting. */
export function associationTargets(targeting: Targeting): AssociationTarget[] {
  return targeting.mode === "all_managed"
    ? [{ key: "InstanceIds", values: ["*"] }]
    : [{ key: `tag:${targeting.targetTag.key}`, values: [targeting.targetTag.value] }];
}

/** The tag the install document checks on the instance before installing: only in all_managed mode. */
export function documentExclusionTag(targeting: Targeting): Tag | undefined {
  return targeting.mode === "all_managed" ? targeting.exclusionTag : undefined;
}

/** The condition of the access policy's SendCommand-on-instances statement (IAM keys on the instance's tags). */
/**
 * When SendCommand on an instance is denied: the instances outside the targeting. Written as a Deny so every Allow
 * statement names the document SendCommand requires (policy linters check that); in tag mode a missing tag counts as
 * different, as IAM evaluates a negated operator on a missing key.
 */
export function sendCommandDenyCondition(targeting: Targeting): NonNullable<PolicyStatement["Condition"]> {
  return targeting.mode === "all_managed"
    ? { StringEquals: { [`ssm:resourceTag/${targeting.exclusionTag.key}`]: targeting.exclusionTag.value } }
    : { StringNotEquals: { [`ssm:resourceTag/${targeting.targetTag.key}`]: targeting.targetTag.value } };
}

/** The tag rule alone: does an instance with these tags belong to the rollout? */
export function matchesTargeting(tags: Readonly<Record<string, string>>, targeting: Targeting): boolean {
  return targeting.mode === "all_managed"
    ? tags[targeting.exclusionTag.key] !== targeting.exclusionTag.value
    : tags[targeting.targetTag.key] === targeting.targetTag.value;
}

export type InstanceState = "pending" | "running" | "stopping" | "stopped" | "shutting-down" | "terminated";

export interface EstateInstance {
  instanceId: string;
  region: string;
  tags: Readonly<Record<string, string>>;
  /** An SSM managed instance (DescribeInstanceInformation lists it). */
  managed: boolean;
  state: InstanceState | (string & {});
  /**
   * false: the instance does not serve its tags in instance metadata (EC2's default for a new instance), so the
   * install document's exclusion check cannot see them. Unknown (undefined) is taken as served.
   */
  metadataTags?: boolean;
}

/** Terminated or on its way: nothing reaches it any more. */
export const isGone = (state: string) => state === "terminated" || state === "shutting-down";

export type NotTargetedReason = "terminated" | "region_not_covered" | "excluded_by_tag" | "missing_target_tag" | "not_managed";

export type TargetingDecision =
  | {
      targeted: true;
      /** Set when the instance carries the exclusion tag but cannot show it to the install document. */
      warning?: string;
    }
  | { targeted: false; reason: NotTargetedReason; message: string };

/**
 * Whether the agent association covers an instance, and why not. `managed: false` is reported last: the instance
 * belongs to the rollout but SSM cannot reach it yet.
 */
export function targetingDecision(
  instance: Pick<EstateInstance, "region" | "tags" | "state"> & { managed?: boolean; metadataTags?: boolean },
  settings: { targeting: Targeting; regions: readonly string[] },
): TargetingDecision {
  const { targeting } = settings;
  if (isGone(instance.state)) return { targeted: false, reason: "terminated", message: "terminated: nothing to install" };
  if (!settings.regions.includes(instance.region)) {
    return {
      targeted: false,
      reason: "region_not_covered",
      message: `region ${instance.region} is not one of the tenant's regions (${settings.regions.join(", ")}): add it to the regions and run an up`,
    };
  }
  const exclusionUnseen = targeting.mode === "all_managed" && instance.metadataTags === false;
  if (!matchesTargeting(instance.tags, targeting) && !exclusionUnseen) {
    return targeting.mode === "all_managed"
      ? {
          targeted: false,
          reason: "excluded_by_tag",
          message: `excluded by its tag ${targeting.exclusionTag.key}=${targeting.exclusionTag.value}`,
        }
      : {
          targeted: false,
          reason: "missing_target_tag",
          message: `not tagged ${targeting.targetTag.key}=${targeting.targetTag.value} (targeting mode: tag)`,
        };
  }
  if (instance.managed === false) {
    return {
      targeted: false,
      reason: "not_managed",
      message:
        "not an SSM managed instance: give it an instance profile with AmazonSSMManagedInstanceCore, or turn on " +
        "enableDefaultHostManagement (the instance needs the SSM agent and IMDSv2)",
    };
  }
  if (exclusionUnseen && !matchesTargeting(instance.tags, targeting)) {
    const { key, value } = targeting.exclusionTag;
    return {
      targeted: true,
      warning:
        `tagged ${key}=${value}, but its tags are not in instance metadata, so the install step cannot see the ` +
        "exclusion: turn on instance metadata tags for it (or stop it from being SSM managed)",
    };
  }
  return { targeted: true };
}

/** What one region's association does: its targets, and the exclusion check its document runs on the instance. */
export interface AssociationModel {
  region: string;
  targets: AssociationTarget[];
  exclusionTag?: Tag;
}

/** The associations the stack creates for a targeting setting, one per region. */
export function associationModels(targeting: Targeting, regions: readonly string[]): AssociationModel[] {
  return regions.map((region) => ({
    region,
    targets: associationTargets(targeting),
    exclusionTag: documentExclusionTag(targeting),
  }));
}

/** SSM target matching: every target entry must match (InstanceIds, tag:<key>, tag-key). */
export function targetsMatch(targets: readonly AssociationTarget[], instance: Pick<EstateInstance, "instanceId" | "tags">): boolean {
  if (targets.length === 0) return false;
  return targets.every((target) => {
    if (target.key === "InstanceIds") return target.values.includes("*") || target.values.includes(instance.instanceId);
    if (target.key === "tag-key") return target.values.some((key) => key in instance.tags);
    if (target.key.startsWith("tag:")) {
      const value = instance.tags[target.key.slice("tag:".length)];
      return value !== undefined && target.values.includes(value);
    }
    return false; // resource groups and other keys are not used by the stack
  });
}

/** True when the association installs the agent on the instance (runs there and the document does not skip it). */
export function associationInstalls(association: AssociationModel, instance: EstateInstance): boolean {
  if (association.region !== instance.region || !instance.managed || isGone(instance.state)) return false;
  if (!targetsMatch(association.targets, instance)) return false;
  const exclusion = association.exclusionTag;
  const skipped = exclusion !== undefined && instance.metadataTags !== false && instance.tags[exclusion.key] === exclusion.value;
  return !skipped;
}
