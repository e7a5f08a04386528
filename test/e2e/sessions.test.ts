/**
 * People sign in as people (issue 20, first part): the service process, started as `npm start` does without an
 * identity provider, prints a single-use operator sign-in link; opening it starts a browser session (an opaque ID in
 * an HttpOnly, SameSite=Lax cookie, stored hashed). The session is accepted by the API beside tokens; a state-changing
 * request with it must come from the service's own pages (Origin) and carry the session's CSRF token. Sign-out ends
 * it, sign-out everywhere ends all of them, and a used link is refused with a clear page. Real PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { hashToken } from "../../db/crypto";
import { serviceUnderTest } from "../harness/service-under-test";
import { waitFor } from "../harness/wait-for";

describe("browser sessions", () => {
  const service = serviceUnderTest({ name: "sessions", workspace: "data-dir", platformPrincipalArn: null });
  const url = (path: string) => `${service.server.baseUrl}${path}`;
  const printedLink = () =>
    waitFor("the operator sign-in link on stdout", async () => /sign in as the platform operator: (\S+) \(once/.exec(service.server.stdout())?.[1], {
      timeoutMs: 10_000,
    });

  async function signIn(link: string) {
    const opened = await fetch(link, { redirect: "manual" });
    expect(opened.status).toBe(303);
    expect(opened.headers.get("location")).toBe("/");
    const cookie = opened.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^mxdr_session=mxdr-session_[A-Za-z0-9_-]{43};/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).toMatch(/Path=\//);
    // Plain HTTP on loopback: Secure would keep the browser from sending it back.
    expect(cookie).not.toMatch(/Secure/);
    return cookie.split(";")[0]!;
  }

  const withSession = (cookie: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
    fetch(url(init.method === undefined ? "/v1/session" : "/v1/tenants"), { ...init, headers: { cookie, ...init.headers } });

  it("signs the operator in through the printed link once; the session works beside tokens; a used link says so", async () => {
    const link = await printedLink();
    expect(new URL(link).hostname).toBe("127.0.0.1");
    const cookie = await signIn(link);
    const session = await fetch(url("/v1/session"), { headers: { cookie } });
    expect(session.status).toBe(200);
    const body = (await session.json()) as { kind: string; scope: string; role: string; actor: string; csrf_token: string };
    expect(body).toMatchObject({ kind: "session", scope: "platform_admin", role: "admin", actor: expect.stringMatching(/^person:\d+$/) });
    expect(body.csrf_token).toMatch(/^[0-9a-f]{64}$/);
    // The cookie's ID is stored hashed only.
    const sessionId = cookie.split("=")[1]!;
    const rows = await service.sql<{ id_hash: string }[]>`select id_hash from browser_sessions`;
    expect(rows.map((row) => row.id_hash)).toContain(hashToken(sessionId));
    expect(JSON.stringify(rows)).not.toContain(sessionId);

    const again = await fetch(link, { redirect: "manual" });
    expect(again.status).toBe(410);
    expect(again.headers.get("set-cookie")).toBeNull();
    expect(await again.text()).toContain("was used already or has expired");
  });

  it("refuses a forged cross-site POST and one without the CSRF token; accepts the console's own", async () => {
    const link = `${service.server.baseUrl}/auth/sign-in-link/${await issueLink()}`;
    const cookie = await signIn(link);
    const csrf = ((await (await fetch(url("/v1/session"), { headers: { cookie } })).json()) as { csrf_token: string }).csrf_token;
    const slug = `sess-${randomBytes(3).toString("hex")}`;
    const body = JSON.stringify({ slug, name: "Session Corp" });
    const json = { "content-type": "application/json" };

    const forged = await withSession(cookie, { method: "POST", body, headers: { ...json, origin: "https://evil.example", "x-csrf-token": csrf } });
    expect(forged.status).toBe(403);
    expect(((await forged.json()) as { error: { code: string } }).error.code).toBe("cross_site_request");
    const noToken = await withSession(cookie, { method: "POST", body, headers: { ...json, origin: service.server.baseUrl } });
    expect(noToken.status).toBe(403);
    expect(((await noToken.json()) as { error: { code: string } }).error.code).toBe("csrf_token_invalid");
    const wrongToken = await withSession(cookie, {
      method: "POST",
      body,
      headers: { ...json, origin: service.server.baseUrl, "x-csrf-token": "0".repeat(64) },
    });
    expect(wrongToken.status).toBe(403);
    const created = await withSession(cookie, { method: "POST", body, headers: { ...json, origin: service.server.baseUrl, "x-csrf-token": csrf } });
    expect(created.status, await created.clone().text()).toBe(201);
    // The audit names the person, not a token.
    const [audit] = await service.sql<{ actor: string }[]>`select actor from audit_log where target = ${`tenant:${slug}`} order by at limit 1`;
    expect(audit?.actor).toMatch(/^person:\d+$/);
  });

  it("signs out one session, or every session of the person", async () => {
    const first = await signIn(`${service.server.baseUrl}/auth/sign-in-link/${await issueLink()}`);
    const second = await signIn(`${service.server.baseUrl}/auth/sign-in-link/${await issueLink()}`);
    const third = await signIn(`${service.server.baseUrl}/auth/sign-in-link/${await issueLink()}`);
    const post = async (cookie: string, path: string) => {
      const csrf = ((await (await fetch(url("/v1/session"), { headers: { cookie } })).json()) as { csrf_token: string }).csrf_token;
      return fetch(url(path), { method: "POST", headers: { cookie, origin: service.server.baseUrl, "x-csrf-token": csrf } });
    };
    const out = await post(first, "/v1/session/sign-out");
    expect(out.status).toBe(200);
    expect(out.headers.get("set-cookie")).toMatch(/^mxdr_session=;/);
    expect((await fetch(url("/v1/session"), { headers: { cookie: first } })).status).toBe(401);
    expect((await fetch(url("/v1/session"), { headers: { cookie: second } })).status).toBe(200);

    const everywhere = await post(second, "/v1/session/sign-out-everywhere");
    expect(((await everywhere.json()) as { sessions_ended: number }).sessions_ended).toBeGreaterThanOrEqual(2);
    for (const cookie of [second, third]) {
      const after = await fetch(url("/v1/session"), { headers: { cookie } });
      expect(after.status).toBe(401);
      expect(((await after.json()) as { error: { code: string } }).error.code).toBe("session_revoked");
    }
  });

  it("never writes a session ID into the service's output", async () => {
    const cookie = await signIn(`${service.server.baseUrl}/auth/sign-in-link/${await issueLink()}`);
    await fetch(url("/v1/session"), { headers: { cookie } });
    const sessionId = cookie.split("=")[1]!;
    expect(service.server.stdout()).not.toContain(sessionId);
    expect(service.server.stderr()).not.toContain(sessionId);
  });

  /** Another single-use link, as a restart would print (written as the service writes it: hashed). */
  async function issueLink(): Promise<string> {
    const token = `mxdr-signin_${randomBytes(32).toString("base64url")}`;
    await service.sql`insert into sign_in_links (token_hash, purpose, expires_at) values (${hashToken(token)}, 'operator', now() + interval '5 minutes')`;
    return token;
  }
});
