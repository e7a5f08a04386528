import * as pulumi from "@pulumi/pulumi";
import { parseTenantConfig, TENANT_CONFIG_KEYS, TenantConfigError } from "./config";
import { TenantOnboarding } from "./component";

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

export interface TenantStackOutputs {
  roleArn: pulumi.Output<string>;
  externalId: pulumi.Output<string>;
  parameterName: pulumi.Output<string>;
  documentName: pulumi.Output<string>;
  associationId: pulumi.Output<string>;
  kubernetesNamespace: pulumi.Output<string | undefined>;
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
    kubernetesNamespace: tenant.kubernetesNamespace,
  };
}
