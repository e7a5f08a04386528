/**
 * Bearer-token authentication and tenant scoping, as middleware.
 *
 * Tokens live hashed (SHA-256) in api_tokens with a scope: `platform_admin` (every tenant) or `tenant` (exactly one
 * organization). `tenantScope` resolves the tenant a `/v1/tenants/:slug/*` path names, once per request, as the
 * principal may see it: a tenant token asking for another tenant gets the same 404 as for a tenant that does not
 * exist, so existence does not leak. Handlers take it from the context.
 */
import type { MiddlewareHandler } from "hono";
import type { Organization } from "../db/schema";
import { UnauthorizedError, ValidationError } from "../lib/errors";
import type { Principal } from "../services/core/principal";
import type { TenantService } from "../services/tenant/tenant-service";
import { fieldErrorsFromZod } from "./errors";
import { slugParamsSchema } from "./schemas";

export interface AppEnv {
  Variables: {
    principal: Principal;
    /** The tenant of a `/:slug` path as this principal may see it; resolved on first use, once per request. */
    tenant: () => Promise<Organization>;
  };
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

export function bearerAuth(tenants: TenantService): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const match = BEARER.exec(c.req.header("authorization") ?? "");
    if (!match) throw new UnauthorizedError("missing bearer token (Authorization: Bearer <token>)");
    c.set("principal", await tenants.authenticate(match[1]!));
    await next();
  };
}

/**
 * For routes under `/:slug`: `c.var.tenant()` gives the tenant, visible to the principal. It is resolved when the
 * handler first asks, after the route has validated its input, so a bad request is a 400 whatever the slug.
 */
export function tenantScope(tenants: TenantService): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    let resolved: Promise<Organization> | undefined;
    c.set("tenant", () => {
      resolved ??= (async () => {
        const parsed = slugParamsSchema.safeParse({ slug: c.req.param("slug") });
        if (!parsed.success) throw new ValidationError(fieldErrorsFromZod(parsed.error, "param"));
        return tenants.visibleTenant(c.get("principal"), parsed.data.slug);
      })();
      return resolved;
    });
    await next();
  };
}
