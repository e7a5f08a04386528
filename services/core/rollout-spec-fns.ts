/**
 * The agent rollout's spec: which instances the association targets, in which regions, with which rate control.
 * Two of them matter: the one the last successful `up` applied (read from its outputs) and the one the tenant's
 * settings ask for (what the next `up` would apply). The rollout is judged by the applied one; when they differ, the
 * answer says "change pending: run an up" and names what differs. Pure functions.
 */
import type { IntegrationSettings, RunOutputs } from "../../db/schema";
import {
  DEFAULT_EXCLUSION_TAG,
  DEFAULT_MAX_CONCURRENCY,
  DEFAULT_MAX_ERRORS,
  DEFAULT_TARGET_TAG,
  resolveTargetingMode,
  type Tag,
  type Targeting,
} from "../../programs/tenant/config";

export interface RolloutSpec {
  targeting: Targeting;
  regions: string[];
  defaultHostManagement: boolean;
  maxConcurrency: string;
  maxErrors: string;
}

export function homeRegionOf(settings: IntegrationSettings): string {
  return settings.homeRegion ?? settings.regions?.[0] ?? "us-east-1";
}

/** What the next `up` applies for these settings (the program's own defaults and old-key resolution). */
export function requestedSpecOf(settings: IntegrationSettings): RolloutSpec {
  return {
    targeting: {
      mode: resolveTargetingMode(settings),
      targetTag: settings.targetTag ?? { ...DEFAULT_TARGET_TAG },
      exclusionTag: settings.exclusionTag ?? { ...DEFAULT_EXCLUSION_TAG },
    },
    regions: settings.regions ?? [homeRegionOf(settings)],
    defaultHostManagement: settings.enableDefaultHostManagement ?? false,
    maxConcurrency: settings.associationMaxConcurrency ?? DEFAULT_MAX_CONCURRENCY,
    maxErrors: settings.associationMaxErrors ?? DEFAULT_MAX_ERRORS,
  };
}

const isTag = (value: unknown): value is Tag =>
  typeof value === "object" && value !== null && typeof (value as Tag).key === "string" && typeof (value as Tag).value === "string";

/**
 * What the last successful `up` applied, from its outputs. Stacks applied before the program reported its rollout
 * (no `rollout` output) ran the one-region program whose default was the opt-in tag: read them as that.
 */
export function appliedSpecOf(outputs: RunOutputs | undefined, settings: IntegrationSettings): RolloutSpec | undefined {
  if (!outputs || typeof outputs.roleArn !== "string") return undefined;
  const rollout = outputs.rollout as Partial<RolloutSpec> | undefined;
  const targeting = rollout?.targeting;
  if (rollout && targeting && isTag(targeting.targetTag) && isTag(targeting.exclusionTag) && Array.isArray(rollout.regions)) {
    return {
      targeting: { mode: targeting.mode === "tag" ? "tag" : "all_managed", targetTag: targeting.targetTag, exclusionTag: targeting.exclusionTag },
      regions: rollout.regions.filter((region): region is string => typeof region === "string"),
      defaultHostManagement: rollout.defaultHostManagement === true,
      maxConcurrency: typeof rollout.maxConcurrency === "string" ? rollout.maxConcurrency : DEFAULT_MAX_CONCURRENCY,
      maxErrors: typeof rollout.maxErrors === "string" ? rollout.maxErrors : DEFAULT_MAX_ERRORS,
    };
  }
  const regional = outputs.regions && typeof outputs.regions === "object" ? Object.keys(outputs.regions) : [];
  return {
    targeting: {
      mode: settings.targetAllManagedInstances === true ? "all_managed" : "tag",
      targetTag: settings.targetTag ?? { ...DEFAULT_TARGET_TAG },
      exclusionTag: { ...DEFAULT_EXCLUSION_TAG },
    },
    regions: regional.length > 0 ? regional : [homeRegionOf(settings)],
    defaultHostManagement: false,
    maxConcurrency: "25%",
    maxErrors: "25%",
  };
}

export function describeTargeting(targeting: Targeting): string {
  return targeting.mode === "all_managed"
    ? `every SSM-managed instance except those tagged ${targeting.exclusionTag.key}=${targeting.exclusionTag.value}`
    : `only instances tagged ${targeting.targetTag.key}=${targeting.targetTag.value}`;
}

/** What the settings change once an `up` applies them, in words; empty when nothing is pending. */
export function pendingChanges(applied: RolloutSpec, requested: RolloutSpec): string[] {
  const changes: string[] = [];
  const sameTag = (a: Tag, b: Tag) => a.key === b.key && a.value === b.value;
  const targetingDiffers =
    applied.targeting.mode !== requested.targeting.mode ||
    (requested.targeting.mode === "tag" && !sameTag(applied.targeting.targetTag, requested.targeting.targetTag)) ||
    (requested.targeting.mode === "all_managed" && !sameTag(applied.targeting.exclusionTag, requested.targeting.exclusionTag));
  if (targetingDiffers) {
    changes.push(`targeting: applied ${describeTargeting(applied.targeting)}; requested ${describeTargeting(requested.targeting)}`);
  }
  const added = requested.regions.filter((region) => !applied.regions.includes(region));
  const removed = applied.regions.filter((region) => !requested.regions.includes(region));
  if (added.length > 0) changes.push(`regions to add: ${added.join(", ")}`);
  if (removed.length > 0) changes.push(`regions to remove: ${removed.join(", ")}`);
  if (applied.defaultHostManagement !== requested.defaultHostManagement) {
    changes.push(
      `Default Host Management: applied ${applied.defaultHostManagement ? "on" : "off"}; requested ${requested.defaultHostManagement ? "on" : "off"}`,
    );
  }
  if (applied.maxConcurrency !== requested.maxConcurrency || applied.maxErrors !== requested.maxErrors) {
    changes.push(
      `rate control: applied max concurrency ${applied.maxConcurrency}, max errors ${applied.maxErrors}; requested ${requested.maxConcurrency}, ${requested.maxErrors}`,
    );
  }
  return changes;
}

/** The one sentence every answer carries when settings are ahead of the applied stack. */
export function changePendingMessage(changes: readonly string[]): string | null {
  return changes.length === 0 ? null : `change pending: run an up to apply it (${changes.join("; ")})`;
}
