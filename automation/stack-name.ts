import { tenantSlugSchema } from "../programs/tenant/config";

export const TENANT_STACK_PREFIX = "tenant-";

/** One stack per tenant: `tenant-<slug>`. */
export function stackNameFor(tenantSlug: string): string {
  return `${TENANT_STACK_PREFIX}${tenantSlugSchema.parse(tenantSlug)}`;
}
