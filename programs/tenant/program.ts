import * as pulumi from "@pulumi/pulumi";
import { type Targeting, parseTenantConfig, TENANT_CONFIG_KEYS, TenantConfigError } from "./config";
import { type ClusterAgentResources, TenantOnboarding, type RegionalAgentResources } from "./component";

/** Reads the stack's configuration once; invalid config stops the run with one message listing every bad key. */
export function readTenantConfig(config = new pulumi.Config()) {
  const raw = Object.fromEntries(TENANT_CONFIG_KEYS.map((key) => [key, config.get(key)]));
  try {
    return parseTenantConfig(raw);
  } catch (error) {
    if (error instanceof TenantConfigError) throw new pulumi.RunError(error.message);
    throw error;
  }
}

/**
 * The stack's outputs. `regions` maps each region to its parameter, document and association; the top-level
 * parameterName, documentName and associationId are the home region's (kept for readers of the older outputs).
 */
export interface TenantStackOutputs {
  roleArn: pulumi.Output<string>;
  externalId: pulumi.Output<string>;
  parameterName: pulumi.Output<string>;
  documentName: pulumi.Output<string>;
  associationId: pulumi.Output<string>;
  regions: Record<string, RegionalAgentResources>;
  defaultHostManagementRoleName: pulumi.Output<string | undefined>;
  /** Per EKS cluster in scope (`<region>/<name>`): the agent's namespace, DaemonSet and its desired and ready nodes. */
  clusters: Record<string, ClusterAgentResources>;
  /** What the agent rollout applies, so the service reads the rollout from what is applied, not from settings. */
  rollout: AppliedRolloutOutput;
}

export interface AppliedRolloutOutput {
  targeting: Targeting;
  regions: string[];
  defaultHostManagement: boolean;
  maxConcurrency: string;
  maxErrors: string;
}

/** The tenant onboarding program: the same function runs from the CLI (index.ts) and the Automation API. */
export async function tenantProgram(): Promise<TenantStackOutputs> {
  const config = readTenantConfig();
  const tenant = new TenantOnboarding(config.tenantSlug, { config });
  return {
    roleArn: tenant.roleArn,
    externalId: tenant.externalId,
    parameterName: tenant.parameterName,
    documentName: tenant.documentName,
    associationId: tenant.associationId,
    regions: tenant.regions,
    defaultHostManagementRoleName: tenant.defaultHostManagementRoleName,
    clusters: tenant.clusters,
    rollout: {
      targeting: config.targeting,
      regions: config.regions,
      defaultHostManagement: config.enableDefaultHostManagement,
      maxConcurrency: config.associationMaxConcurrency,
      maxErrors: config.associationMaxErrors,
    },
  };
}
