/**
 * People and their browser sessions. A session is an opaque random ID in a cookie, stored hashed with the hash of its
 * CSRF token; it ends at its idle or absolute timeout, at sign-out, or when revoked (sign out everywhere). Without an
 * identity provider, the platform's operator signs in through a single-use link the service prints at start, as
 * Jupyter does.
 */
import { and, asc, eq, gt, isNull, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { generateToken, hashToken, tokensEqual } from "../../db/crypto";
import { browserSessions, memberships, people, signInLinks, type Person } from "../../db/schema";
import { ForbiddenError, GoneError, UnauthorizedError } from "../../lib/errors";
import type { Principal } from "../core/principal";
import type { ProviderIdentity } from "./provider-identity";
import { sessionVerdict, type SessionPolicy } from "./session-fns";

export interface IdentityServiceDeps {
  db: DrizzleDatabase;
  policy: SessionPolicy;
  /** How long a printed operator sign-in link stays usable. */
  signInLinkSeconds: number;
}

export interface StartedSession {
  /** Goes into the cookie, never stored in clear. */
  sessionId: string;
  /** Goes to the page (GET /v1/session), sent back in X-CSRF-Token on every state-changing request. */
  csrfToken: string;
  expiresAt: Date;
}

/**
 * The CSRF token of a session: a hash of its ID, which only the HttpOnly cookie carries, so only the service's own
 * pages (which read it from GET /v1/session) can send it back; another site's request carries the cookie but not this.
 */
const csrfTokenOf = (sessionId: string) => hashToken(`csrf:${sessionId}`);

/** The issuer of people who sign in through a link the service issued (no identity provider). */
export const LINK_ISSUER = "link";
const LOCAL_OPERATOR = "local-operator";

export function createIdentityService({ db, policy, signInLinkSeconds }: IdentityServiceDeps) {
  async function startSession(person: Person, now = new Date()): Promise<StartedSession> {
    const sessionId = generateToken("mxdr-session");
    const csrfToken = csrfTokenOf(sessionId);
    const expiresAt = new Date(now.getTime() + policy.absoluteSeconds * 1000);
    await db.insert(browserSessions).values({
      idHash: hashToken(sessionId),
      csrfHash: hashToken(csrfToken),
      personId: person.id,
      createdAt: now,
      lastSeenAt: now,
      expiresAt,
    });
    await db.update(people).set({ lastSignInAt: now }).where(eq(people.id, person.id));
    return { sessionId, csrfToken, expiresAt };
  }

  async function principalOf(person: Person, sessionId: number): Promise<Principal> {
    const base = {
      tokenId: 0,
      tokenName: person.email ?? person.displayName ?? `person ${person.id}`,
      actor: `person:${person.id}`,
      person: { id: person.id, email: person.email, sessionId, issuer: person.issuer, subject: person.subject },
    };
    if (person.operator) return { ...base, scope: "platform_admin", organizationId: null, role: "admin" };
    const [membership] = await db.select().from(memberships).where(eq(memberships.personId, person.id)).orderBy(asc(memberships.createdAt)).limit(1);
    if (!membership) throw new ForbiddenError("you are not a member of any tenant: ask its admin for an invitation", { code: "no_membership" });
    return { ...base, scope: "tenant", organizationId: membership.organizationId, role: membership.role };
  }

  /** The person the identity provider vouched for, as of this sign-in (email, name and operator follow the provider). */
  async function rememberPerson(identity: ProviderIdentity): Promise<Person> {
    const [person] = await db
      .insert(people)
      .values({ issuer: identity.issuer, subject: identity.subject, email: identity.email, displayName: identity.name, operator: identity.operator })
      .onConflictDoUpdate({
        target: [people.issuer, people.subject],
        set: { email: identity.email, displayName: identity.name, operator: identity.operator },
      })
      .returning();
    return person!;
  }

  return {
    startSession,
    rememberPerson,

    /**
     * A sign-in through the identity provider, without an invitation: an operator, or a member of a tenant (someone who
     * accepted an invitation with this identity before). Anyone else is refused, and no session starts.
     */
    async signInWithProvider(identity: ProviderIdentity, now = new Date()): Promise<StartedSession> {
      const person = await rememberPerson(identity);
      if (!person.operator) {
        const [membership] = await db.select().from(memberships).where(eq(memberships.personId, person.id)).limit(1);
        if (!membership) {
          throw new ForbiddenError(
            `${identity.email ?? identity.subject} is not a member of any tenant: ask a tenant admin (or the platform operator) for an invitation`,
            { code: "no_membership" },
          );
        }
      }
      return startSession(person, now);
    },

    /** The principal of a live session; UnauthorizedError for an unknown, ended or revoked one. */
    async authenticateSession(sessionId: string, now = new Date()): Promise<Principal> {
      const [row] = await db
        .select({ session: browserSessions, person: people })
        .from(browserSessions)
        .innerJoin(people, eq(people.id, browserSessions.personId))
        .where(eq(browserSessions.idHash, hashToken(sessionId)));
      if (!row) throw new UnauthorizedError("your session is not known: sign in again", { code: "session_unknown" });
      const verdict = sessionVerdict(row.session, policy, now);
      if (!verdict.live) throw new UnauthorizedError(`your session ended (${verdict.why}): sign in again`, { code: `session_${verdict.why}` });
      if (verdict.touch) await db.update(browserSessions).set({ lastSeenAt: now }).where(eq(browserSessions.id, row.session.id));
      return principalOf(row.person, row.session.id);
    },

    /** Whether the session (by row id) is still live: not revoked, not past its absolute end. */
    async sessionIsLive(sessionRowId: number, now = new Date()): Promise<boolean> {
      const [row] = await db
        .select({ id: browserSessions.id })
        .from(browserSessions)
        .where(and(eq(browserSessions.id, sessionRowId), isNull(browserSessions.revokedAt), gt(browserSessions.expiresAt, now)));
      return row !== undefined;
    },

    /** Whether `presented` is the CSRF token of the session. */
    async csrfMatches(sessionId: string, presented: string | undefined): Promise<boolean> {
      if (!presented) return false;
      const [row] = await db
        .select({ csrfHash: browserSessions.csrfHash })
        .from(browserSessions)
        .where(eq(browserSessions.idHash, hashToken(sessionId)));
      return row !== undefined && tokensEqual(row.csrfHash, hashToken(presented));
    },

    /** The session's CSRF token, for its own pages (GET /v1/session): derived from the ID only the cookie holds. */
    csrfTokenOf,

    async signOut(principal: Principal, now = new Date()): Promise<void> {
      if (!principal.person) return;
      await db
        .update(browserSessions)
        .set({ revokedAt: now })
        .where(and(eq(browserSessions.id, principal.person.sessionId), isNull(browserSessions.revokedAt)));
    },

    /** Ends every session of the person; answers how many were live. */
    async signOutEverywhere(principal: Principal, now = new Date()): Promise<number> {
      if (!principal.person) return 0;
      const ended = await db
        .update(browserSessions)
        .set({ revokedAt: now })
        .where(and(eq(browserSessions.personId, principal.person.id), isNull(browserSessions.revokedAt), gt(browserSessions.expiresAt, now)))
        .returning({ id: browserSessions.id });
      return ended.length;
    },

    /** A single-use link that signs the platform's local operator in (printed at start without an identity provider). */
    async issueOperatorSignInLink(now = new Date()): Promise<{ token: string; expiresAt: Date }> {
      const token = generateToken("mxdr-signin");
      const expiresAt = new Date(now.getTime() + signInLinkSeconds * 1000);
      await db.insert(signInLinks).values({ tokenHash: hashToken(token), purpose: "operator", createdAt: now, expiresAt });
      return { token, expiresAt };
    },

    /** Uses the link (once: the claim is one statement) and starts the operator's session; GoneError when used or expired. */
    async redeemOperatorSignInLink(token: string, now = new Date()): Promise<StartedSession> {
      const [claimed] = await db
        .update(signInLinks)
        .set({ usedAt: now })
        .where(and(eq(signInLinks.tokenHash, hashToken(token)), isNull(signInLinks.usedAt), gt(signInLinks.expiresAt, now)))
        .returning({ purpose: signInLinks.purpose });
      if (!claimed)
        throw new GoneError("this sign-in link was used already or has expired: restart the service for a new one, or sign in another way");
      const [operator] = await db
        .insert(people)
        .values({ issuer: LINK_ISSUER, subject: LOCAL_OPERATOR, displayName: "Platform operator", operator: true })
        .onConflictDoUpdate({ target: [people.issuer, people.subject], set: { operator: sql`true` } })
        .returning();
      return startSession(operator!, now);
    },
  };
}

export type IdentityService = ReturnType<typeof createIdentityService>;
