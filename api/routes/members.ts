/**
 * A tenant's people. GET /v1/tenants/{slug}/members: its members and the invitations still open (whoever sees the
 * tenant). POST .../invitations: invite someone as admin or viewer (tenant admin or platform operator); the link is
 * in the answer only when no mail was sent. DELETE .../members/{person_id}: remove a member, ending their sessions.
 * DELETE .../invitations/{invitation_id}: withdraw an invitation.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Invitation } from "../../db/schema";
import { MEMBER_ROLES } from "../../db/schema";
import type { Services } from "../../services";
import type { MemberView } from "../../services/identity/invitation-service";
import { json, security } from "../openapi-route-parts";
import { iso } from "../presenters";
import { createRouter } from "../router";
import { bodyErrorResponses, errorResponses, postErrorResponses, slugParamsSchema } from "../schemas";

const idSchema = (what: string) => z.coerce.number().int(`must be ${what} (an integer)`).min(1, `must be ${what} (1 or more)`).max(2_147_483_647);

const inviteSchema = z
  .strictObject({
    // A plain pattern (not format: email), so the contract says exactly what is accepted.
    email: z
      .string()
      .max(254, "must be at most 254 characters")
      .regex(/^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$/, "must be an email address such as ada@example.com"),
    role: z.enum(MEMBER_ROLES, "must be admin or viewer"),
  })
  .openapi("InviteMember");

const invitationSchema = z
  .object({
    id: z.number().int(),
    email: z.string(),
    role: z.enum(MEMBER_ROLES),
    delivery: z.enum(["email", "shown_once"]),
    invited_by: z.string(),
    created_at: z.string(),
    expires_at: z.string(),
  })
  .openapi("Invitation");

const createdInvitationSchema = invitationSchema
  .extend({ link: z.string().nullable().describe("the single-use link, when it was not mailed: shown this once") })
  .openapi("CreatedInvitation");

const memberSchema = z
  .object({
    person_id: z.number().int(),
    email: z.string().nullable(),
    name: z.string().nullable(),
    role: z.enum(MEMBER_ROLES),
    signs_in_with: z.string().describe("`link` (invitation link) or the identity provider's issuer"),
    joined_at: z.string(),
    last_sign_in_at: z.string().nullable(),
  })
  .openapi("Member");

const membersSchema = z.object({ members: z.array(memberSchema), invitations: z.array(invitationSchema) }).openapi("Members");

const membersRoute = createRoute({
  method: "get",
  path: "/{slug}/members",
  operationId: "listMembers",
  tags: ["members"],
  summary: "The tenant's members with their roles, and its invitations not yet accepted",
  security,
  request: { params: slugParamsSchema },
  responses: { 200: json(membersSchema, "members and open invitations"), ...errorResponses },
});

const inviteRoute = createRoute({
  method: "post",
  path: "/{slug}/invitations",
  operationId: "inviteMember",
  tags: ["members"],
  summary: "Invite someone to the tenant as admin or viewer (tenant admin): mailed when SMTP is configured, else the link is returned once",
  security,
  request: { params: slugParamsSchema, body: { content: { "application/json": { schema: inviteSchema } }, required: true } },
  responses: { 201: json(createdInvitationSchema, "the invitation"), ...errorResponses, ...bodyErrorResponses, ...postErrorResponses },
});

const removeMemberRoute = createRoute({
  method: "delete",
  path: "/{slug}/members/{person_id}",
  operationId: "removeMember",
  tags: ["members"],
  summary: "Remove a member (tenant admin): their sessions end now; the tenant's last admin stays (409 last_admin)",
  security,
  request: { params: slugParamsSchema.extend({ person_id: idSchema("a person id") }) },
  responses: { 204: { description: "removed" }, ...errorResponses, 409: postErrorResponses[409] },
});

const withdrawInvitationRoute = createRoute({
  method: "delete",
  path: "/{slug}/invitations/{invitation_id}",
  operationId: "withdrawInvitation",
  tags: ["members"],
  summary: "Withdraw an invitation not yet accepted (tenant admin): its link stops working",
  security,
  request: { params: slugParamsSchema.extend({ invitation_id: idSchema("an invitation id") }) },
  responses: { 204: { description: "withdrawn" }, ...errorResponses },
});

const presentInvitation = (invitation: Invitation) => ({
  id: invitation.id,
  email: invitation.email,
  role: invitation.role,
  delivery: invitation.delivery,
  invited_by: invitation.invitedByName,
  created_at: invitation.createdAt.toISOString(),
  expires_at: invitation.expiresAt.toISOString(),
});

const presentMember = (member: MemberView) => ({
  person_id: member.personId,
  email: member.email,
  name: member.name,
  role: member.role,
  signs_in_with: member.issuer,
  joined_at: member.joinedAt.toISOString(),
  last_sign_in_at: iso(member.lastSignInAt),
});

/** Under /v1/tenants. */
export function membersRouter({ invitations }: Pick<Services, "invitations">) {
  const router = createRouter();
  router.openapi(membersRoute, async (c) => {
    const { members, invitations: open } = await invitations.members(await c.var.tenant());
    return c.json({ members: members.map(presentMember), invitations: open.map(presentInvitation) }, 200);
  });
  router.openapi(inviteRoute, async (c) => {
    const body = c.req.valid("json");
    const org = await c.var.tenant();
    const { invitation, link } = await invitations.invite(c.get("principal"), org, { ...body, origin: new URL(c.req.url).origin });
    return c.json({ ...presentInvitation(invitation), link: link ?? null }, 201);
  });
  router.openapi(removeMemberRoute, async (c) => {
    const { person_id } = c.req.valid("param");
    await invitations.removeMember(c.get("principal"), await c.var.tenant(), person_id);
    return c.body(null, 204);
  });
  router.openapi(withdrawInvitationRoute, async (c) => {
    const { invitation_id } = c.req.valid("param");
    await invitations.withdrawInvitation(c.get("principal"), await c.var.tenant(), invitation_id);
    return c.body(null, 204);
  });
  return router;
}
