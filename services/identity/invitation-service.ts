/**
 * A tenant's members and invitations. Operators invite a tenant's first admin; tenant admins invite colleagues as
 * admins or viewers. An invitation is a single-use link that expires, stored hashed; it is mailed when SMTP is
 * configured, otherwise shown once to whoever invited. Accepting it binds the identity that opens it: the identity
 * provider's subject, or (without one) the invited email through the link itself. Removing a member ends their sessions.
 */
import { and, asc, count, desc, eq, gt, isNull, sql } from "drizzle-orm";
import type { DrizzleDatabase } from "../../db/client";
import { generateToken, hashToken } from "../../db/crypto";
import {
  browserSessions,
  invitations,
  memberships,
  organizations,
  people,
  type Invitation,
  type MemberRole,
  type Organization,
} from "../../db/schema";
import { ConflictError, ForbiddenError, GoneError, NotFoundError, RateLimitedError } from "../../lib/errors";
import { recordAudit } from "../core/audit-store";
import { actorDetails, type Principal, requireTenantAdmin } from "../core/principal";
import type { IdentityService, StartedSession } from "./identity-service";
import { LINK_ISSUER } from "./identity-service";
import type { InvitationMailer } from "./invitation-mail";
import type { ProviderIdentity } from "./provider-identity";

export interface InvitationServiceDeps {
  db: DrizzleDatabase;
  identity: Pick<IdentityService, "startSession" | "rememberPerson">;
  /** Set when SMTP is configured: invitations are mailed, not shown. */
  mailer?: InvitationMailer;
  /** The console's address for the links (PUBLIC_URL); the inviting request's origin otherwise. */
  publicUrl?: string;
  invitationSeconds: number;
  maxMembers: number;
  maxPendingInvitations: number;
}

export interface InviteInput {
  email: string;
  role: MemberRole;
  /** The origin the inviting request reached the service at (used without PUBLIC_URL). */
  origin: string;
}

export interface MemberView {
  personId: number;
  email: string | null;
  name: string | null;
  role: MemberRole;
  /** `link` for link sign-in, else the identity provider's issuer. */
  issuer: string;
  joinedAt: Date;
  lastSignInAt: Date | null;
}

const INVITATION_PATH = "/auth/invitations/";

/** The tenant's invitations that can still be accepted. */
const openInvitationsOf = (organizationId: number, now: Date) =>
  and(eq(invitations.organizationId, organizationId), isNull(invitations.acceptedAt), isNull(invitations.revokedAt), gt(invitations.expiresAt, now));

export function createInvitationService(deps: InvitationServiceDeps) {
  const { db } = deps;

  /** The invitation of `token` if it can still be accepted; GoneError otherwise, in words its holder understands. */
  async function usableInvitation(token: string, now: Date): Promise<{ invitation: Invitation; tenant: Organization }> {
    const [row] = await db
      .select({ invitation: invitations, tenant: organizations })
      .from(invitations)
      .innerJoin(organizations, eq(organizations.id, invitations.organizationId))
      .where(eq(invitations.tokenHash, hashToken(token)));
    if (!row) throw new GoneError("this invitation link is not valid: ask whoever invited you for a new one", { code: "invitation_unknown" });
    const { invitation } = row;
    if (invitation.acceptedAt)
      throw new GoneError("this invitation was used already: each link works once; sign in instead", { code: "invitation_used" });
    if (invitation.revokedAt)
      throw new GoneError("this invitation was withdrawn: ask whoever invited you for a new one", { code: "invitation_revoked" });
    if (invitation.expiresAt <= now)
      throw new GoneError("this invitation has expired: ask whoever invited you for a new one", { code: "invitation_expired" });
    if (row.tenant.offboardedAt) throw new GoneError("this tenant has been offboarded", { code: "invitation_tenant_offboarded" });
    return row;
  }

  return {
    /** Invites `email` to the tenant with `role`; the link is in the answer only when no mail was sent. */
    async invite(principal: Principal, org: Organization, input: InviteInput, now = new Date()): Promise<{ invitation: Invitation; link?: string }> {
      requireTenantAdmin(principal);
      const email = input.email.trim().toLowerCase();
      const [[members], [pending]] = await Promise.all([
        db.select({ n: count() }).from(memberships).where(eq(memberships.organizationId, org.id)),
        db.select({ n: count() }).from(invitations).where(openInvitationsOf(org.id, now)),
      ]);
      if ((members?.n ?? 0) >= deps.maxMembers) {
        throw new ConflictError(`the tenant has ${deps.maxMembers} members, its limit: remove one first`, { code: "member_limit" });
      }
      if ((pending?.n ?? 0) >= deps.maxPendingInvitations) {
        throw new RateLimitedError(`the tenant has ${deps.maxPendingInvitations} invitations not yet accepted, its limit: withdraw some or wait`, {
          code: "invitation_limit",
          retryAfterSeconds: 3600,
        });
      }
      const token = generateToken("mxdr-invite");
      const link = `${(deps.publicUrl ?? input.origin).replace(/\/+$/, "")}${INVITATION_PATH}${token}`;
      const expiresAt = new Date(now.getTime() + deps.invitationSeconds * 1000);
      const invitedByName = actorDetails(principal).actorName ?? principal.actor;
      const invitation = await db.transaction(async (tx) => {
        const [created] = await tx
          .insert(invitations)
          .values({
            organizationId: org.id,
            email,
            role: input.role,
            tokenHash: hashToken(token),
            invitedBy: principal.actor,
            invitedByName,
            delivery: deps.mailer ? "email" : "shown_once",
            createdAt: now,
            expiresAt,
          })
          .returning();
        await recordAudit(tx, principal, {
          action: "member.invite",
          organizationId: org.id,
          target: `invitation:${created!.id}`,
          details: { email, role: input.role, delivery: created!.delivery },
        });
        // Mailed inside the transaction: a mail that cannot be sent leaves no invitation behind.
        await deps.mailer?.send({ to: email, tenantName: org.name, role: input.role, invitedBy: invitedByName, link, expiresAt });
        return created!;
      });
      return deps.mailer ? { invitation } : { invitation, link };
    },

    /** The tenant's members and its invitations still open. */
    async members(org: Organization, now = new Date()): Promise<{ members: MemberView[]; invitations: Invitation[] }> {
      const [rows, open] = await Promise.all([
        db
          .select({ membership: memberships, person: people })
          .from(memberships)
          .innerJoin(people, eq(people.id, memberships.personId))
          .where(eq(memberships.organizationId, org.id))
          .orderBy(asc(memberships.createdAt)),
        db.select().from(invitations).where(openInvitationsOf(org.id, now)).orderBy(desc(invitations.createdAt)),
      ]);
      return {
        members: rows.map(({ membership, person }) => ({
          personId: person.id,
          email: person.email,
          name: person.displayName,
          role: membership.role,
          issuer: person.issuer,
          joinedAt: membership.createdAt,
          lastSignInAt: person.lastSignInAt,
        })),
        invitations: open,
      };
    },

    /** Removes a member and ends their sessions at once; the tenant keeps at least one admin. */
    async removeMember(principal: Principal, org: Organization, personId: number, now = new Date()): Promise<void> {
      requireTenantAdmin(principal);
      await db.transaction(async (tx) => {
        // Serializes removals within the tenant, so two admins removing each other cannot leave none.
        await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`members:${org.id}`}))`);
        const [member] = await tx
          .select()
          .from(memberships)
          .where(and(eq(memberships.organizationId, org.id), eq(memberships.personId, personId)));
        if (!member) throw new NotFoundError(`member ${personId} not found`);
        if (member.role === "admin") {
          const [admins] = await tx
            .select({ n: count() })
            .from(memberships)
            .where(and(eq(memberships.organizationId, org.id), eq(memberships.role, "admin")));
          if ((admins?.n ?? 0) <= 1) {
            throw new ConflictError("this is the tenant's last admin: invite another admin before removing this one", { code: "last_admin" });
          }
        }
        await tx.delete(memberships).where(and(eq(memberships.organizationId, org.id), eq(memberships.personId, personId)));
        // What they invited and nobody accepted yet is withdrawn with them.
        await tx
          .update(invitations)
          .set({ revokedAt: now })
          .where(and(openInvitationsOf(org.id, now), eq(invitations.invitedBy, `person:${personId}`)));
        await tx
          .update(browserSessions)
          .set({ revokedAt: now })
          .where(and(eq(browserSessions.personId, personId), isNull(browserSessions.revokedAt)));
        await recordAudit(tx, principal, {
          action: "member.remove",
          organizationId: org.id,
          target: `person:${personId}`,
          details: { role: member.role },
        });
      });
    },

    /** Withdraws an invitation not yet accepted. */
    async withdrawInvitation(principal: Principal, org: Organization, invitationId: number, now = new Date()): Promise<void> {
      requireTenantAdmin(principal);
      await db.transaction(async (tx) => {
        const [withdrawn] = await tx
          .update(invitations)
          .set({ revokedAt: now })
          .where(
            and(
              eq(invitations.id, invitationId),
              eq(invitations.organizationId, org.id),
              isNull(invitations.acceptedAt),
              isNull(invitations.revokedAt),
            ),
          )
          .returning();
        if (!withdrawn) throw new NotFoundError(`open invitation ${invitationId} not found`);
        await recordAudit(tx, principal, { action: "member.invitation_withdraw", organizationId: org.id, target: `invitation:${invitationId}` });
      });
    },

    /** What the invitation page shows before it is accepted; GoneError for a used, withdrawn or expired link. */
    async describe(token: string, now = new Date()): Promise<{ tenantName: string; email: string; role: MemberRole; expiresAt: Date }> {
      const { invitation, tenant } = await usableInvitation(token, now);
      return { tenantName: tenant.name, email: invitation.email, role: invitation.role, expiresAt: invitation.expiresAt };
    },

    /**
     * Accepts the invitation as `identity` (who the identity provider says signed in) or, without an identity provider,
     * as the invited email itself, and starts the session. Claimed in one statement: a link works once.
     */
    async accept(token: string, identity: ProviderIdentity | "invited_email", now = new Date()): Promise<StartedSession> {
      const { invitation } = await usableInvitation(token, now);
      // Without an identity provider, the link is the identity: one person per tenant and email, so accepting a link
      // (which whoever invited may hold) never signs in as the same email's membership of another tenant.
      const who: ProviderIdentity =
        identity === "invited_email"
          ? {
              issuer: LINK_ISSUER,
              subject: `tenant-${invitation.organizationId}:${invitation.email}`,
              email: invitation.email,
              name: null,
              operator: false,
            }
          : identity;
      if (who.email === null) {
        throw new ForbiddenError("your identity provider did not say your email address, so this invitation cannot be bound to you: ask its admin", {
          code: "invitation_email_unknown",
        });
      }
      if (who.email !== invitation.email) {
        throw new ForbiddenError(
          `this invitation is for ${invitation.email}, and you signed in as ${who.email}: sign in with that identity, or ask for an invitation to yours`,
          { code: "invitation_other_identity" },
        );
      }
      const person = await deps.identity.rememberPerson(who);
      await db.transaction(async (tx) => {
        const [claimed] = await tx
          .update(invitations)
          .set({ acceptedAt: now, acceptedBy: person.id })
          .where(
            and(eq(invitations.id, invitation.id), isNull(invitations.acceptedAt), isNull(invitations.revokedAt), gt(invitations.expiresAt, now)),
          )
          .returning({ id: invitations.id });
        if (!claimed) throw new GoneError("this invitation was used already: each link works once; sign in instead", { code: "invitation_used" });
        const [already] = await tx
          .select({ role: memberships.role })
          .from(memberships)
          .where(and(eq(memberships.organizationId, invitation.organizationId), eq(memberships.personId, person.id)));
        const [members] = await tx.select({ n: count() }).from(memberships).where(eq(memberships.organizationId, invitation.organizationId));
        if (!already && (members?.n ?? 0) >= deps.maxMembers) {
          throw new ConflictError(`the tenant has ${deps.maxMembers} members, its limit: ask its admin to remove one first`, {
            code: "member_limit",
          });
        }
        // An admin accepting a viewer's invitation stays admin: accepting never takes a tenant's last admin away.
        await tx
          .insert(memberships)
          .values({ personId: person.id, organizationId: invitation.organizationId, role: invitation.role, createdAt: now })
          .onConflictDoUpdate({
            target: [memberships.personId, memberships.organizationId],
            set: { role: sql`case when ${memberships.role} = 'admin' then 'admin' else excluded.role end` },
          });
        const principal: Principal = {
          tokenId: 0,
          tokenName: person.email ?? person.subject,
          scope: "tenant",
          organizationId: invitation.organizationId,
          actor: `person:${person.id}`,
          person: { id: person.id, email: person.email, sessionId: 0, issuer: person.issuer, subject: person.subject },
          role: invitation.role,
        };
        await recordAudit(tx, principal, {
          action: "member.join",
          organizationId: invitation.organizationId,
          target: `invitation:${invitation.id}`,
          details: { role: invitation.role, invitedBy: invitation.invitedByName },
        });
      });
      return deps.identity.startSession(person, now);
    },
  };
}

export type InvitationService = ReturnType<typeof createInvitationService>;
