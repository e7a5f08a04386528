import { tenantSlugSchema } from "../programs/tenant/config";

export const TENANT_STACK_PREFIX = "tenant-";

/** One stack per tenant: `tenant-<slug>`. */
export function stackNameFor(tenantSlug: string): string {
  return `${TENANT_STACK_PREFIX}${tenantSlugSchema.parse(tenantSlug)}`;
}

/**
 * Set in the environment of every CLI run on a stack (and so of its plugins): `MXDR_STACK=<stack name>`. Recovery,
 * timeouts and cancel find an operation's processes by it, even plugins whose CLI died (services/run/orphans.ts).
 */
export const STACK_MARKER_VARIABLE = "MXDR_STACK";
