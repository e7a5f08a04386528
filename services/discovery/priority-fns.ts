/**
 * Pure classification of discovered assets: priority (from the Role tag, overridable per
 * organization) and agent compatibility. No I/O.
 */
import type { AssetPriority, PriorityRuleOverride } from "../../db/schema";

/** Default priority by `Role` tag value (shared/fixtures/mini-corp.json, priority_rules_note). */
export const DEFAULT_ROLE_PRIORITIES: Readonly<Record<string, AssetPriority>> = {
  "domain-controller": "critical",
  database: "critical",
  "file-server": "high",
  "web-server": "high",
  workstation: "medium",
  honeypot: "low",
  "kubernetes-cluster": "high",
};
export const DEFAULT_PRIORITY: AssetPriority = "medium";
export const ROLE_TAG = "Role";

/** The role an asset type implies without a Role tag: a managed database is a `database`, an EKS cluster a `kubernetes-cluster`. */
const IMPLIED_ROLES: Readonly<Record<string, string>> = { rds: "database", eks: "kubernetes-cluster" };

export interface ClassifiableAsset {
  assetType: string;
  tags: Readonly<Record<string, string>>;
  /** Instance state for EC2 (`running`, `stopped`, ...). */
  state?: string;
}

/** The asset's role: its Role tag, else the role its type implies, else undefined. */
export function assetRole(asset: ClassifiableAsset): string | undefined {
  const tagged = asset.tags[ROLE_TAG]?.trim().toLowerCase();
  if (tagged) return tagged;
  return IMPLIED_ROLES[asset.assetType];
}

function matches(rule: PriorityRuleOverride, asset: ClassifiableAsset, role: string | undefined): boolean {
  const { assetType, tag, role: wantedRole } = rule.match;
  if (assetType !== undefined && assetType !== asset.assetType) return false;
  if (wantedRole !== undefined && wantedRole.toLowerCase() !== role) return false;
  if (tag !== undefined) {
    const value = asset.tags[tag.key];
    if (value === undefined) return false;
    if (tag.value !== undefined && value !== tag.value) return false;
  }
  return true;
}

/** Organization overrides first (first match wins), then the default role table, else medium. */
export function classifyPriority(asset: ClassifiableAsset, overrides: readonly PriorityRuleOverride[] = []): AssetPriority {
  const role = assetRole(asset);
  const override = overrides.find((rule) => matches(rule, asset, role));
  if (override) return override.priority;
  return (role !== undefined ? DEFAULT_ROLE_PRIORITIES[role] : undefined) ?? DEFAULT_PRIORITY;
}

/**
 * Whether our agent can be installed on the asset: an EC2 instance can, running or stopped (the association reaches a
 * stopped one when it starts); a terminated one (or one shutting down) cannot; a managed database (RDS) never can; an
 * EKS cluster gets the agent as a DaemonSet on its nodes, not through SSM.
 */
export function isAgentCompatible(asset: ClassifiableAsset): boolean {
  if (asset.assetType === "ec2") return asset.state !== undefined && asset.state !== "terminated" && asset.state !== "shutting-down";
  return false;
}
