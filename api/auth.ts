/**
 * Authentication (a bearer token, or a browser session's cookie) and tenant scoping, as middleware.
 *
 * A request with a session cookie that changes state must come from the service's own pages: its Origin (or Referer)
 * is the service's, and it carries the session's CSRF token in X-CSRF-Token. A forged cross-site request carries the
 * cookie at most (SameSite=Lax keeps it off cross-site POSTs in most browsers), never the token: 403.
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
import type { IdentityService } from "../services/identity/identity-service";
import { sameOrigin } from "../services/identity/session-fns";
import type { TenantService } from "../services/tenant/tenant-service";
import { ForbiddenError } from "../lib/errors";
import { sessionCookieOf } from "./session-cookie";
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

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** `publicUrl`: the console's address as browsers reach it (PUBLIC_URL), behind a proxy that is not the request's own. */
export function bearerAuth(tenants: TenantService, identity?: IdentityService, publicUrl?: string): MiddlewareHandler<AppEnv> {
  const publicOrigin = publicUrl ? new URL(publicUrl).origin : undefined;
  return async (c, next) => {
    const authorization = c.req.header("authorization");
    const match = BEARER.exec(authorization ?? "");
    const sessionId = authorization === undefined && identity ? sessionCookieOf(c) : undefined;
    if (match) {
      c.set("principal", await tenants.authenticate(match[1]!));
    } else if (sessionId && identity) {
      const principal = await identity.authenticateSession(sessionId);
      if (!SAFE_METHODS.has(c.req.method)) {
        const origins = [new URL(c.req.url).origin, ...(publicOrigin ? [publicOrigin] : [])];
        if (!sameOrigin({ origin: c.req.header("origin"), referer: c.req.header("referer") }, origins)) {
          throw new ForbiddenError("a state-changing request with a session must come from this service's own pages", { code: "cross_site_request" });
        }
        if (!(await identity.csrfMatches(sessionId, c.req.header("x-csrf-token")))) {
          throw new ForbiddenError("missing or wrong X-CSRF-Token for this session (GET /v1/session gives it)", { code: "csrf_token_invalid" });
        }
      }
      c.set("principal", principal);
    } else {
      throw new UnauthorizedError("missing bearer token (Authorization: Bearer <token>) or session");
    }
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
