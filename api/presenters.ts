/** Database rows -> API shapes (snake_case, ISO timestamps). Nothing secret is ever presented. */
import type { IntegrationSettings, Organization } from "../db/schema";

export function iso(date: Date | null | undefined): string | null {
  return date ? date.toISOString() : null;
}

export interface ApiIntegrationSettings {
  agent_public_base_url?: string;
  regions?: string[];
  home_region?: string;
  aws_account_id?: string;
  target_tag?: { key: string; value: string };
  target_all_managed_instances?: boolean;
  require_approval?: boolean;
}

export function presentSettings(settings: IntegrationSettings, awsAccountId: string | null): ApiIntegrationSettings {
  const out: ApiIntegrationSettings = {};
  if (settings.agentPublicBaseUrl !== undefined) out.agent_public_base_url = settings.agentPublicBaseUrl;
  if (settings.regions !== undefined) out.regions = settings.regions;
  if (settings.homeRegion !== undefined) out.home_region = settings.homeRegion;
  if (awsAccountId) out.aws_account_id = awsAccountId;
  if (settings.targetTag !== undefined) out.target_tag = settings.targetTag;
  if (settings.targetAllManagedInstances !== undefined) out.target_all_managed_instances = settings.targetAllManagedInstances;
  if (settings.requireApproval !== undefined) out.require_approval = settings.requireApproval;
  return out;
}

export function presentTenant(org: Organization) {
  return {
    slug: org.slug,
    name: org.name,
    onboarding_flow_version: org.onboardingFlowVersion,
    auto_discovery_enabled: org.autoDiscoveryEnabled,
    onboarding_status: org.onboardingStatus,
    integration_settings: presentSettings(org.integrationSettings, org.awsAccountId),
    created_at: org.createdAt.toISOString(),
    updated_at: org.updatedAt.toISOString(),
    offboarded_at: iso(org.offboardedAt),
  };
}

/** `****abcd`: enough to recognise a value, never enough to use it. */
export function maskSecret(value: string): string {
  return `****${value.length > 8 ? value.slice(-4) : ""}`;
}
