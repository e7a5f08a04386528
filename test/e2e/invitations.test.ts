/**
 * Invitations, members and roles without an identity provider (the embedded default): the platform admin invites a
 * tenant's admin; the link (shown once, stored hashed) signs the invitee in as the invited email, once; the admin
 * invites a viewer, who reads everything and changes nothing (403 from the service); removing a member ends their
 * sessions at once; the last admin stays; every action's audit row names the person. The real service process and
 * PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hashToken } from "../../db/crypto";
import type { Call } from "../harness/caller";
import { serviceUnderTest } from "../harness/service-under-test";

/** The call's answer, once it has the status expected (else the test fails with the body). */
async function answered(status: number, pending: Promise<Call>): Promise<Call> {
  const call = await pending;
  expect({ status: call.status, body: call.body }).toMatchObject({ status });
  return call;
}

const OPEN_INVITATIONS_CAP = 5;

describe("invitations and roles (sign-in links, no identity provider)", () => {
  const service = serviceUnderTest({
    name: "invitations",
    workspace: "data-dir",
    env: { MAX_PENDING_INVITATIONS_PER_TENANT: String(OPEN_INVITATIONS_CAP) },
  });
  const url = (path: string) => `${service.server.baseUrl}${path}`;
  const slug = `inv-${randomBytes(3).toString("hex")}`;
  const other = `inv-other-${randomBytes(3).toString("hex")}`;
  const json = { "content-type": "application/json" };

  /** Opens an invitation link as a browser does: its page, then the page's one button (a same-origin form POST). */
  async function accept(link: string): Promise<string> {
    const page = await fetch(link);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Accept and sign in");
    const accepted = await fetch(link, { method: "POST", redirect: "manual", headers: { origin: service.server.baseUrl } });
    expect(accepted.status).toBe(303);
    const cookie = accepted.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^mxdr_session=mxdr-session_[A-Za-z0-9_-]{43};.*HttpOnly/);
    return cookie.split(";")[0]!;
  }

  /** A call as a browser session: the console's own origin and the session's CSRF token on what changes. */
  async function asSession(cookie: string, method: string, path: string, body?: unknown) {
    const session = (await (await fetch(url("/v1/session"), { headers: { cookie } })).json()) as { csrf_token: string };
    const response = await fetch(url(path), {
      method,
      headers: { cookie, ...json, origin: service.server.baseUrl, "x-csrf-token": session.csrf_token },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  it("signs an invited admin in once; a viewer reads and cannot change; a removed member's session ends; the audit names people", async () => {
    await answered(201, service.call("POST", "/v1/tenants", { body: { slug, name: "Invited Corp" } }));
    await answered(201, service.call("POST", "/v1/tenants", { body: { slug: other, name: "Other Corp" } }));

    // Bad input names the field; the platform admin (a token) invites the tenant's first admin.
    const bad = await answered(400, service.call("POST", `/v1/tenants/${slug}/invitations`, { body: { email: "not-an-email", role: "owner" } }));
    expect(bad.body.error.fields.map((field: { field: string }) => field.field).sort()).toEqual(["email", "role"]);
    const invited = await answered(
      201,
      service.call("POST", `/v1/tenants/${slug}/invitations`, { body: { email: "Ada@Example.com", role: "admin" } }),
    );
    expect(invited.body).toMatchObject({ email: "ada@example.com", role: "admin", delivery: "shown_once" });
    const adminLink: string = invited.body.link;
    expect(adminLink).toMatch(new RegExp(`^${service.server.baseUrl}/auth/invitations/mxdr-invite_[A-Za-z0-9_-]{43}$`));
    const token = adminLink.split("/").pop()!;
    // Stored hashed; listed without its link.
    const [stored] = await service.sql<{ token_hash: string }[]>`select token_hash from invitations where email = 'ada@example.com'`;
    expect(stored!.token_hash).toBe(hashToken(token));
    const listed = await answered(200, service.call("GET", `/v1/tenants/${slug}/members`));
    expect(listed.body.invitations).toHaveLength(1);
    expect(JSON.stringify(listed.body)).not.toContain(token);

    // Accepting from another site is refused; from its own page it signs in, once.
    const forged = await fetch(adminLink, { method: "POST", redirect: "manual", headers: { origin: "https://evil.example" } });
    expect(forged.status).toBe(403);
    const admin = await accept(adminLink);
    const used = await fetch(adminLink);
    expect(used.status).toBe(410);
    expect(await used.text()).toContain("this invitation was used already");
    const me = (await (await fetch(url("/v1/session"), { headers: { cookie: admin } })).json()) as Record<string, unknown>;
    expect(me).toMatchObject({ kind: "session", scope: "tenant", role: "admin", email: "ada@example.com" });

    // The admin sees the tenant, not another one (the same 404 as a tenant that does not exist).
    expect((await asSession(admin, "GET", `/v1/tenants/${slug}/progress`)).status).toBe(200);
    expect((await asSession(admin, "GET", `/v1/tenants/${other}/progress`)).status).toBe(404);
    expect((await asSession(admin, "POST", `/v1/tenants/${other}/invitations`, { email: "x@example.com", role: "admin" })).status).toBe(404);

    // The admin invites a colleague as viewer.
    const viewerInvitation = await asSession(admin, "POST", `/v1/tenants/${slug}/invitations`, { email: "grace@example.com", role: "viewer" });
    expect(viewerInvitation.status).toBe(201);
    expect(viewerInvitation.body).toMatchObject({ role: "viewer", invited_by: "ada@example.com" });
    const viewer = await accept(viewerInvitation.body.link);

    // The viewer reads everything and changes nothing: 403 from the service, whatever the route.
    for (const path of ["progress", "members", "deployment", "runs", "tokens", "accounts", "coverage"]) {
      expect({ path, status: (await asSession(viewer, "GET", `/v1/tenants/${slug}/${path}`)).status }).toEqual({ path, status: 200 });
    }
    const refusals: [string, string, unknown][] = [
      ["POST", `/v1/tenants/${slug}/runs`, { kind: "preview" }],
      ["PATCH", `/v1/tenants/${slug}`, { name: "Renamed by a viewer" }],
      ["PUT", `/v1/tenants/${slug}/integrations/aws`, { bootstrap_role_arn: "arn:aws:iam::123456789012:role/MiniXdrBootstrap" }],
      ["POST", `/v1/tenants/${slug}/invitations`, { email: "eve@example.com", role: "admin" }],
      ["POST", `/v1/tenants/${slug}/deployment/retry`, {}],
      ["POST", `/v1/tenants/${slug}/discovery/scans`, {}],
      ["POST", `/v1/tenants/${slug}/offboard`, {}],
    ];
    for (const [method, path, body] of refusals) {
      const refused = await asSession(viewer, method, path, body);
      expect({ method, path, status: refused.status, code: refused.body?.error?.code }).toEqual({
        method,
        path,
        status: 403,
        code: "viewer_read_only",
      });
    }
    const [renamed] = await service.sql<{ name: string }[]>`select name from organizations where slug = ${slug}`;
    expect(renamed!.name).toBe("Invited Corp");

    // Members are listed; the last admin cannot be removed; removing the viewer ends the viewer's session at once.
    const members = await asSession(admin, "GET", `/v1/tenants/${slug}/members`);
    expect(members.body.members.map((member: { email: string; role: string }) => [member.email, member.role])).toEqual([
      ["ada@example.com", "admin"],
      ["grace@example.com", "viewer"],
    ]);
    const adminId = members.body.members[0].person_id;
    const viewerId = members.body.members[1].person_id;
    const lastAdmin = await asSession(admin, "DELETE", `/v1/tenants/${slug}/members/${adminId}`);
    expect([lastAdmin.status, lastAdmin.body.error.code]).toEqual([409, "last_admin"]);
    expect((await asSession(viewer, "DELETE", `/v1/tenants/${slug}/members/${adminId}`)).status).toBe(403);
    expect((await asSession(admin, "DELETE", `/v1/tenants/${slug}/members/${viewerId}`)).status).toBe(204);
    const ended = await fetch(url(`/v1/tenants/${slug}/progress`), { headers: { cookie: viewer } });
    expect(ended.status).toBe(401);
    expect(((await ended.json()) as { error: { code: string } }).error.code).toBe("session_revoked");

    // The audit trail names who: the person's email, issuer and subject, or the token's name.
    const audit = await service.sql<{ action: string; actor: string; details: Record<string, string> }[]>`
      select action, actor, details from audit_log where organization_id = (select id from organizations where slug = ${slug}) order by at, id`;
    const byAction = Object.fromEntries(audit.map((row) => [row.action, row]));
    expect(byAction["member.invite"]!.details).toMatchObject({
      actorName: "ada@example.com",
      actorIssuer: "link",
      actorSubject: expect.stringMatching(/^tenant-\d+:ada@example\.com$/),
    });
    expect(byAction["member.remove"]!.details).toMatchObject({ actorName: "ada@example.com", actorRole: "admin" });
    expect(byAction["member.join"]!.actor).toMatch(/^person:\d+$/);
    expect(audit[0]!.details.actorName).toBeTruthy();
    // ... and the tenant's activity shows it to whoever sees the tenant.
    const activity = await asSession(admin, "GET", `/v1/tenants/${slug}/activity?limit=5`);
    expect(activity.body.activity[0]).toMatchObject({
      action: "member.remove",
      actor_name: "ada@example.com",
      actor_issuer: "link",
      actor_subject: expect.stringMatching(/^tenant-\d+:ada@example\.com$/),
    });
    expect((await asSession(admin, "GET", `/v1/tenants/${other}/activity`)).status).toBe(404);
  });

  it("a link for the same email in another tenant signs in as that tenant's member only, never as the first's", async () => {
    const elsewhere = await answered(
      201,
      service.call("POST", `/v1/tenants/${other}/invitations`, { body: { email: "ada@example.com", role: "viewer" } }),
    );
    const second = await accept(elsewhere.body.link);
    expect((await asSession(second, "GET", `/v1/tenants/${other}/progress`)).status).toBe(200);
    // Whoever holds that link (the other tenant's admin, who was shown it) gets nothing of the first tenant.
    expect((await asSession(second, "GET", `/v1/tenants/${slug}/progress`)).status).toBe(404);
    const people = await service.sql<{ subject: string }[]>`select subject from people where email = 'ada@example.com' order by id`;
    expect(people.map((person) => person.subject)).toEqual([expect.stringMatching(/^tenant-\d+:/), expect.stringMatching(/^tenant-\d+:/)]);
    expect(new Set(people.map((person) => person.subject)).size).toBe(2);
  });

  it("refuses an expired or withdrawn invitation with a page that says so", async () => {
    const expiring = await answered(
      201,
      service.call("POST", `/v1/tenants/${slug}/invitations`, { body: { email: "late@example.com", role: "viewer" } }),
    );
    await service.sql`update invitations set expires_at = now() - interval '1 second' where id = ${expiring.body.id}`;
    const expired = await fetch(expiring.body.link);
    expect(expired.status).toBe(410);
    expect(await expired.text()).toContain("this invitation has expired");
    const late = await fetch(expiring.body.link, { method: "POST", redirect: "manual", headers: { origin: service.server.baseUrl } });
    expect(late.status).toBe(410);
    expect(late.headers.get("set-cookie")).toBeNull();

    const withdrawn = await answered(
      201,
      service.call("POST", `/v1/tenants/${slug}/invitations`, { body: { email: "gone@example.com", role: "viewer" } }),
    );
    await answered(204, service.call("DELETE", `/v1/tenants/${slug}/invitations/${withdrawn.body.id}`));
    const page = await fetch(withdrawn.body.link);
    expect(page.status).toBe(410);
    expect(await page.text()).toContain("this invitation was withdrawn");
    const unknown = await fetch(url(`/auth/invitations/mxdr-invite_${randomBytes(32).toString("base64url")}`));
    expect(unknown.status).toBe(410);
  });

  it("caps a tenant's open invitations", async () => {
    for (let i = 0; i < OPEN_INVITATIONS_CAP; i++) {
      await answered(201, service.call("POST", `/v1/tenants/${other}/invitations`, { body: { email: `p${i}@example.com`, role: "viewer" } }));
    }
    const over = await answered(
      429,
      service.call("POST", `/v1/tenants/${other}/invitations`, { body: { email: "one-too-many@example.com", role: "viewer" } }),
    );
    expect(over.body.error.code).toBe("invitation_limit");
    expect(over.headers.get("retry-after")).toBe("3600");
  });

  it("never writes an invitation link or a session ID into the service's output", () => {
    const output = service.server.stdout() + service.server.stderr();
    expect(output).not.toMatch(/mxdr-invite_[A-Za-z0-9_-]{20}/);
    expect(output).not.toMatch(/mxdr-session_[A-Za-z0-9_-]{20}/);
  });
});
