/** Who is calling: an authenticated API token or a signed-in person, as every service sees it. */
import type { ApiTokenScope, MemberRole } from "../../db/schema";
import { ForbiddenError } from "../../lib/errors";

export interface Principal {
  tokenId: number;
  tokenName: string;
  scope: ApiTokenScope;
  /** Set exactly for tenant tokens. */
  organizationId: number | null;
  /** What audit rows and runs record as the actor. */
  actor: string;
  /** When the token stops being accepted (null: never); an open event stream ends then. */
  expiresAt?: Date | null;
  /** A person signed in through a browser session (tokenId is 0 then). */
  person?: { id: number; email: string | null; sessionId: number; issuer: string; subject: string };
  /** A tenant member's role; a token or an operator acts as admin. */
  role?: MemberRole;
}

export function actorOf(token: { id: number }): string {
  return `token:${token.id}`;
}

export function isAdmin(principal: Principal): boolean {
  return principal.scope === "platform_admin";
}

/** A caller holding an API token or signed in (not the service acting on its own, as fleet runs and drift remediation do). */
export function isTokenHolder(principal: Principal): boolean {
  return principal.tokenId > 0 || principal.person !== undefined;
}

export function requireAdmin(principal: Principal): void {
  if (!isAdmin(principal)) throw new ForbiddenError("this call needs a platform admin token or a platform operator");
}

/** Changes to a tenant (connect, settings, runs, retries, members, tokens): a tenant viewer only reads. */
export function requireTenantAdmin(principal: Principal): void {
  if (principal.role === "viewer") {
    throw new ForbiddenError("your role in this tenant is viewer: it reads everything and changes nothing; ask a tenant admin", {
      code: "viewer_read_only",
    });
  }
}

/** Who acted, as the audit trail names them: the person's issuer, subject and email, or the token's name. */
export function actorDetails(principal: Principal): Record<string, string> {
  if (!principal.person) return { actorName: principal.tokenName, actorScope: principal.scope };
  return {
    actorName: principal.person.email ?? principal.tokenName,
    actorScope: principal.scope,
    actorIssuer: principal.person.issuer,
    actorSubject: principal.person.subject,
    ...(principal.role ? { actorRole: principal.role } : {}),
  };
}

/** The service acting on its own (a finished wait, a schedule): tenant-scoped, so it can do no more than the tenant. */
export function systemPrincipal(actor: `system:${string}`, organizationId: number): Principal {
  return { tokenId: 0, tokenName: actor, scope: "tenant", organizationId, actor };
}

/** The service acting on the platform's own behalf (start-up): platform-admin scope, no token. */
export function systemAdminPrincipal(actor: `system:${string}`): Principal {
  return { tokenId: 0, tokenName: actor, scope: "platform_admin", organizationId: null, actor };
}
