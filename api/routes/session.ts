/**
 * The signed-in person's session. /v1/session: who is signed in and the session's CSRF token (which every
 * state-changing request of the console sends back), sign-out, sign-out everywhere. /auth/sign-in-link/{token}: the
 * single-use operator link the service prints at start without an identity provider: it starts a session (the cookie)
 * and opens the console.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { Hono } from "hono";
import type { Services } from "../../services";
import { GoneError } from "../../lib/errors";
import { json, security } from "../openapi-route-parts";
import { createRouter } from "../router";
import { errorResponses, postErrorResponses } from "../schemas";
import { clearSessionCookie, sessionCookieOf, setSessionCookie } from "../session-cookie";

const sessionSchema = z
  .object({
    kind: z.enum(["session", "token"]),
    actor: z.string(),
    email: z.string().nullable(),
    scope: z.enum(["platform_admin", "tenant"]),
    role: z.enum(["admin", "viewer"]),
    /** The session's CSRF token: sent back as X-CSRF-Token; null for a token. */
    csrf_token: z.string().nullable(),
  })
  .openapi("Session");

const sessionRoute = createRoute({
  method: "get",
  path: "/session",
  operationId: "getSession",
  tags: ["session"],
  summary: "Who is signed in (a browser session or a token), their scope and role, and the session's CSRF token",
  security,
  responses: { 200: json(sessionSchema, "the caller"), ...errorResponses },
});

const signOutRoute = (path: "/session/sign-out" | "/session/sign-out-everywhere", summary: string) =>
  createRoute({
    method: "post",
    path,
    operationId: path === "/session/sign-out" ? "signOut" : "signOutEverywhere",
    tags: ["session"],
    summary,
    security,
    responses: { 200: json(z.object({ sessions_ended: z.number().int() }), "signed out"), ...errorResponses, ...postErrorResponses },
  });

export function sessionRouter({ identity }: Pick<Services, "identity">) {
  const router = createRouter();
  router.openapi(sessionRoute, async (c) => {
    const principal = c.get("principal");
    const sessionId = principal.person ? sessionCookieOf(c) : undefined;
    return c.json(
      {
        kind: principal.person ? ("session" as const) : ("token" as const),
        actor: principal.actor,
        email: principal.person?.email ?? null,
        scope: principal.scope,
        role: principal.role ?? "admin",
        csrf_token: sessionId ? identity.csrfTokenOf(sessionId) : null,
      },
      200,
    );
  });
  router.openapi(signOutRoute("/session/sign-out", "End this browser session"), async (c) => {
    const principal = c.get("principal");
    await identity.signOut(principal);
    clearSessionCookie(c);
    return c.json({ sessions_ended: principal.person ? 1 : 0 }, 200);
  });
  router.openapi(signOutRoute("/session/sign-out-everywhere", "End every browser session of the signed-in person"), async (c) => {
    const ended = await identity.signOutEverywhere(c.get("principal"));
    clearSessionCookie(c);
    return c.json({ sessions_ended: ended }, 200);
  });
  return router;
}

const page = (title: string, text: string) =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title} · Mini-XDR</title><link rel="stylesheet" href="/console/console.css"></head><body><main class="signin"><h1>${title}</h1><p>${text}</p><p><a href="/">Go to the sign-in page</a></p></main></body></html>`;

/** GET /auth/sign-in-link/{token}: the session starts and the console opens; a used or expired link says so (410). */
export function signInLinkRouter({ identity }: Pick<Services, "identity">) {
  const router = new Hono();
  router.get("/sign-in-link/:token", async (c) => {
    c.header("cache-control", "no-store");
    c.header("referrer-policy", "no-referrer");
    try {
      const started = await identity.redeemOperatorSignInLink(c.req.param("token"));
      setSessionCookie(c, started.sessionId, started.expiresAt);
      return c.redirect("/", 303);
    } catch (error) {
      if (!(error instanceof GoneError)) throw error;
      return c.html(
        page("This sign-in link cannot be used", "It was used already or has expired. Each link signs in once; restart the service for a new one."),
        410,
      );
    }
  });
  return router;
}
