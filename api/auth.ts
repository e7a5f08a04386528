/**
 * Bearer-token authentication and tenant scoping.
 *
 * Tokens live hashed (SHA-256, db/crypto.ts) in api_tokens with a scope: `platform_admin` (every
 * tenant) or `tenant` (exactly one organization). A tenant token asking for another tenant gets the
 * same 404 as for a tenant that does not exist, so existence does not leak.
 */
import { and, eq, isNull } from "drizzle-orm";
import type { MiddlewareHandler } from "hono";
import type { DrizzleDatabase } from "../db/client";
import { hashToken } from "../db/crypto";
import { apiTokens, organizations, type ApiTokenScope, type Organization } from "../db/schema";
import { ForbiddenError, NotFoundError, UnauthorizedError } from "./errors";

export interface Principal {
  tokenId: number;
  tokenName: string;
  scope: ApiTokenScope;
  /** Set exactly for tenant tokens. */
  organizationId: number | null;
  /** What audit rows and runs record as the actor. */
  actor: string;
}

export interface AppEnv {
  Variables: { principal: Principal };
}

export function actorOf(token: { id: number }): string {
  return `token:${token.id}`;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** Authenticates every request it guards; `last_used_at` is refreshed at most once a minute per token. */
export function bearerAuth(db: DrizzleDatabase): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const match = BEARER.exec(c.req.header("authorization") ?? "");
    if (!match) throw new UnauthorizedError("missing bearer token (Authorization: Bearer <token>)");
    const [token] = await db
      .select()
      .from(apiTokens)
      .where(and(eq(apiTokens.tokenHash, hashToken(match[1]!)), isNull(apiTokens.revokedAt)))
      .limit(1);
    if (!token) throw new UnauthorizedError("invalid or revoked token");
    const now = Date.now();
    if (!token.lastUsedAt || now - token.lastUsedAt.getTime() > 60_000) {
      await db.update(apiTokens).set({ lastUsedAt: new Date(now) }).where(eq(apiTokens.id, token.id));
    }
    c.set("principal", {
      tokenId: token.id,
      tokenName: token.name,
      scope: token.scope,
      organizationId: token.organizationId,
      actor: actorOf(token),
    });
    await next();
  };
}

export function requireAdmin(principal: Principal): void {
  if (principal.scope !== "platform_admin") throw new ForbiddenError("this call needs a platform admin token");
}

/**
 * The organization `slug` names, if this principal may see it; otherwise NotFound (also for a
 * tenant token naming another tenant: no existence leak).
 */
export async function loadVisibleOrganization(db: DrizzleDatabase, principal: Principal, slug: string): Promise<Organization> {
  const [org] = await db.select().from(organizations).where(eq(organizations.slug, slug)).limit(1);
  if (!org || (principal.scope === "tenant" && principal.organizationId !== org.id)) {
    throw new NotFoundError(`tenant ${JSON.stringify(slug)} not found`);
  }
  return org;
}
